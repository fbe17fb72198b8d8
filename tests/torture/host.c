/* cs-torture: the host program of the torture suite, run under the shim.
 *
 * A server whose main thread executes the driver's commands (torture.h) and
 * whose workers (a pool of threads, or fork/clone children) each serve one
 * client at a time: read the request, make one cancellable call on an
 * upstream (recv, or poll then recv), answer, and report on the control pipe
 * whether that call failed with ECANCELED. The driver knows which clients
 * left and checks the reports.
 *
 *   cs-torture --ctl FD --cmd FD --up PORT [--gen G --listen FD]
 */
#include "torture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NWORKERS 4
#define MAXFD 1024
#define MAXJOBS 64

static int ctl_fd = -1, cmd_fd = -1, listen_fd = -1, up_port, gen;
static bool in_child; /* a fork/clone child: no other thread, no locks */

/* ---- reporting: one write() per line ---------------------------------- */

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	int saved = errno;
	(void)!write(ctl_fd, line, n);
	errno = saved;
}

/* ---- the descriptors the host knows it holds --------------------------- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char live[MAXFD]; /* 1: the host's own, never closed by a range */

static void live_lock(void)
{
	if (!in_child)
		pthread_mutex_lock(&live_mu);
}

static void live_unlock(void)
{
	if (!in_child)
		pthread_mutex_unlock(&live_mu);
}

static void live_set(int fd, bool on)
{
	if (fd >= 0 && fd < MAXFD)
		live[fd] = on;
}

static bool is_live(int fd)
{
	return fd >= 0 && fd < MAXFD && live[fd];
}

/* Dummies: /dev/null descriptors at TORTURE_DUMMY_BASE.., free to close. */
static bool dummy[MAXFD];

/* ---- jobs -------------------------------------------------------------- */

struct job {
	int cid;
	int fd;      /* the client */
	char kind;   /* r p s */
	char move[16], where[8], end[12];
	unsigned mask;
	int pair;    /* kind s: the worker's end of the socketpair */
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct job queue[MAXJOBS];
static int q_head, q_len, busy; /* busy: jobs queued or being served by threads */

/* kind s: the main thread's ends of the socketpairs, by client id */
struct pair_end {
	int cid, fd;
};
static struct pair_end pairs[MAXJOBS];

static sigset_t base_mask; /* SIGUSR1, SIGUSR2: always blocked (signalfd, sigwaitinfo) */

static sigset_t mask_of(unsigned bits)
{
	sigset_t s;
	sigemptyset(&s);
	for (int i = 0; i < TORTURE_MASK_NSIG; i++)
		if (bits & (1u << i))
			sigaddset(&s, torture_mask_signal(i));
	return s;
}

/* Move a client to another descriptor and close the original; returns the
 * new descriptor (or the old one when MOVE is none or the move failed). */
static int move_client(int fd, const char *how)
{
	int nfd = -1;
	live_lock();
	if (!strcmp(how, "dup")) {
		nfd = dup(fd);
	} else if (!strcmp(how, "dupfd")) {
		nfd = fcntl(fd, F_DUPFD, 3 + fd % 7);
	} else if (!strcmp(how, "dupfd_cloexec")) {
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3 + fd % 5);
	} else if (!strcmp(how, "dup2") || !strcmp(how, "dup3")) {
		/* a free number in the dup2 zone: no thread opens descriptors there */
		for (int t = TORTURE_DUP2_BASE + fd % 50; t < TORTURE_DUP2_BASE + 100; t++) {
			if (is_live(t) || fcntl(t, F_GETFD) >= 0)
				continue;
			nfd = how[3] == '2' ? dup2(fd, t) : dup3(fd, t, O_CLOEXEC);
			break;
		}
	} else {
		live_unlock();
		return fd;
	}
	if (nfd < 0) {
		report("fail move %s of fd %d: errno %d", how, fd, errno);
		live_unlock();
		return fd;
	}
	live_set(nfd, true);
	close(fd);
	live_set(fd, false);
	live_unlock();
	return nfd;
}

static void end_client(int fd, const char *how)
{
	live_lock();
	if (!strcmp(how, "range")) {
		if (close_range(fd, fd, 0) != 0)
			close(fd);
	} else if (!strcmp(how, "over")) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, fd); /* replaces the client */
			close(null);
		}
		close(fd);
	} else {
		close(fd);
	}
	live_set(fd, false);
	live_unlock();
}

static int connect_upstream(int *err)
{
	live_lock();
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live_set(s, true);
	live_unlock();
	if (s < 0) {
		*err = errno;
		return -1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(up_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		*err = errno;
		live_lock();
		close(s);
		live_set(s, false);
		live_unlock();
		return -1;
	}
	return s;
}

/* Read one line; returns its length, 0 at EOF before a newline, -1 on error. */
static ssize_t read_line(int fd, char *buf, size_t size, bool use_recv)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = use_recv ? recv(fd, buf + len, 1, 0) : read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		if (buf[len++] == '\n') {
			buf[len] = 0;
			return (ssize_t)len;
		}
	}
	errno = EMSGSIZE;
	return -1;
}

/* Serve one client: the whole life of a request. */
static void serve(struct job *j)
{
	char line[128];
	int fd = j->fd;
	struct timeval tv = {.tv_sec = 8};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ssize_t n = read_line(fd, line, sizeof line, false);
	int rcid = -1;
	char token[40] = "";
	if (n <= 0 || sscanf(line, "req %d %39s", &rcid, token) != 2) {
		report("noreq cid=%d errno=%d got=%zd", j->cid, n < 0 ? errno : 0, n);
		goto out_client;
	}
	if (rcid != j->cid)
		report("fail client %d got the request of client %d", j->cid, rcid);
	report("req cid=%d", j->cid);
	if (!strcmp(j->where, "worker"))
		fd = move_client(fd, j->move);

	sigset_t old, blk = mask_of(j->mask);
	if (j->mask)
		pthread_sigmask(SIG_BLOCK, &blk, &old);

	int up = j->pair, err = 0;
	const char *at = "connect";
	if (j->kind != 's') {
		up = connect_upstream(&err);
		if (up >= 0) {
			at = "send";
			char hello[32];
			int hl = snprintf(hello, sizeof hello, "up %d\n", j->cid);
			if (send(up, hello, hl, MSG_NOSIGNAL) != hl)
				err = errno;
		}
	}
	char ans[128];
	bool answered = false;
	if (!err) {
		at = "wait";
		report("enter cid=%d", j->cid);
		if (j->kind == 'p') {
			struct pollfd p = {.fd = up, .events = POLLIN};
			int r = poll(&p, 1, TORTURE_POLL_MS);
			if (r < 0)
				err = errno;
			else if (r == 0)
				err = ETIMEDOUT;
		}
		if (!err) {
			n = read_line(up, ans, sizeof ans, true);
			if (n > 0)
				answered = true;
			else
				err = n < 0 ? errno : EPIPE;
		}
	}
	if (j->mask)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	report("done cid=%d canceled=%d errno=%d at=%s", j->cid, err == ECANCELED, err, at);
	if (answered) {
		char resp[160];
		int got, rl;
		char atok[40];
		if (sscanf(ans, "ans %d %39s", &got, atok) != 2 || got != j->cid)
			report("fail client %d got upstream answer '%.40s'", j->cid, ans);
		rl = snprintf(resp, sizeof resp, "resp %d %s\n", j->cid, atok);
		if (send(fd, resp, rl, MSG_NOSIGNAL) != rl)
			report("fail client %d response not sent: errno %d", j->cid, errno);
	}
	if (up >= 0) {
		live_lock();
		close(up);
		live_set(up, false);
		live_unlock();
	}
out_client:
	end_client(fd, j->end);
}

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_mu);
		while (q_len == 0)
			pthread_cond_wait(&q_cv, &q_mu);
		struct job j = queue[q_head];
		q_head = (q_head + 1) % MAXJOBS;
		q_len--;
		pthread_mutex_unlock(&q_mu);

		serve(&j);

		pthread_mutex_lock(&q_mu);
		busy--;
		pthread_cond_broadcast(&q_cv);
		pthread_mutex_unlock(&q_mu);
	}
	return NULL;
}

/* ---- children ---------------------------------------------------------- */

static int children; /* started and not yet reaped */

static void reap(bool block_until_none)
{
	for (int waited = 0;;) {
		int st;
		pid_t p = waitpid(-1, &st, WNOHANG);
		if (p > 0) {
			report("child pid=%d status=%d", p, st);
			children--;
			continue;
		}
		if (!block_until_none || p < 0 || waited > 15000)
			return;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
		waited += 10;
	}
}

static void child_serve(struct job *j)
{
	in_child = true;
	if (!strcmp(j->where, "main"))
		j->fd = move_client(j->fd, j->move);
	bool from = !strcmp(j->end, "closefrom");
	if (from)
		strcpy(j->end, "close");
	serve(j);
	if (from)
		closefrom(3);
}

/* ---- commands ---------------------------------------------------------- */

static void cmd_accept(int no, const char *args)
{
	struct job j = {.pair = -1};
	char via[12];
	if (sscanf(args, "%d %11s %c %15s %7s %11s %x", &j.cid, via, &j.kind, j.move, j.where,
		   j.end, &j.mask) != 7) {
		report("fail bad accept command '%s'", args);
		return;
	}
	struct pollfd p = {.fd = listen_fd, .events = POLLIN};
	if (poll(&p, 1, 3000) <= 0) {
		report("ack %d accept none", no);
		return;
	}
	live_lock();
	j.fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	live_set(j.fd, true);
	live_unlock();
	if (j.fd < 0) {
		report("ack %d accept error errno=%d", no, errno);
		return;
	}
	if (!strcmp(via, "thread")) {
		if (!strcmp(j.where, "main"))
			j.fd = move_client(j.fd, j.move);
		if (j.kind == 's') {
			int sv[2];
			live_lock();
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
				live_set(sv[0], true);
				live_set(sv[1], true);
				j.pair = sv[1];
				for (int i = 0; i < MAXJOBS; i++)
					if (pairs[i].fd <= 0) {
						pairs[i] = (struct pair_end){j.cid, sv[0]};
						break;
					}
			}
			live_unlock();
		}
		pthread_mutex_lock(&q_mu);
		queue[(q_head + q_len) % MAXJOBS] = j;
		q_len++;
		busy++;
		pthread_cond_signal(&q_cv);
		pthread_mutex_unlock(&q_mu);
		report("ack %d accept thread", no);
		return;
	}
	pid_t pid;
	if (!strcmp(via, "clone"))
		pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0); /* no CLONE_VM, no atfork */
	else
		pid = fork();
	if (pid == 0) {
		if (!strcmp(via, "setuid") && (setgid(65534) != 0 || setuid(65534) != 0))
			report("fail setuid: errno %d", errno);
		child_serve(&j);
		if (!strcmp(via, "clone"))
			syscall(SYS_exit_group, 0);
		_exit(0);
	}
	int err = errno;
	live_lock();
	close(j.fd);
	live_set(j.fd, false);
	live_unlock();
	if (pid < 0) {
		report("fail %s: errno %d", via, err);
		return;
	}
	children++;
	report("ack %d accept %s pid=%d", no, via, pid);
}

static void cmd_answer(int no, const char *args)
{
	int cid;
	char token[40];
	if (sscanf(args, "%d %39s", &cid, token) != 2)
		return;
	for (int i = 0; i < MAXJOBS; i++) {
		if (pairs[i].fd > 0 && pairs[i].cid == cid) {
			char a[80];
			int n = snprintf(a, sizeof a, "ans %d %s\n", cid, token);
			if (write(pairs[i].fd, a, n) != n)
				report("fail answer %d: errno %d", cid, errno);
			live_lock();
			close(pairs[i].fd);
			live_set(pairs[i].fd, false);
			live_unlock();
			pairs[i].fd = 0;
			report("ack %d answer", no);
			return;
		}
	}
	report("ack %d answer missing", no);
}

static void cmd_vfork(int no)
{
	pid_t pid = vfork();
	if (pid == 0) {
		char *argv[] = {"true", NULL};
		char *envp[] = {NULL};
		execve("/bin/true", argv, envp);
		_exit(127);
	}
	int st = -1;
	if (pid > 0)
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	if (st != 0)
		report("fail vfork+exec /bin/true: pid %d status %d errno %d", pid, st, errno);
	report("ack %d vfork", no);
}

static void cmd_mask(int no, const char *args)
{
	char how[12], api[12];
	unsigned bits;
	if (sscanf(args, "%11s %x %11s", how, &bits, api) != 3)
		return;
	sigset_t s = mask_of(bits);
	int h = SIG_BLOCK;
	if (!strcmp(how, "unblock"))
		h = SIG_UNBLOCK;
	else if (!strcmp(how, "set")) {
		h = SIG_SETMASK;
		for (int sig = 1; sig < NSIG; sig++)
			if (sigismember(&base_mask, sig))
				sigaddset(&s, sig);
	}
	int r = !strcmp(api, "proc") ? sigprocmask(h, &s, NULL) : pthread_sigmask(h, &s, NULL);
	if (r != 0)
		report("fail mask %s: %d", args, r);
	report("ack %d mask", no);
}

static void cmd_dummies(int no, int k)
{
	live_lock();
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (int i = 0; i < k && null >= 0; i++) {
		int d = fcntl(null, F_DUPFD_CLOEXEC, TORTURE_DUMMY_BASE);
		if (d >= 0 && d < MAXFD)
			dummy[d] = true;
	}
	if (null >= 0)
		close(null);
	live_unlock();
	report("ack %d dummies", no);
}

/* Closes a range [lo, hi] the host may close: dummies and (any) unknown. */
static void close_gap(int lo, int hi, bool any, bool use_from)
{
	for (int fd = lo; fd <= hi && fd < MAXFD; fd++)
		if (is_live(fd) || (!any && !dummy[fd] && fcntl(fd, F_GETFD) >= 0))
			return; /* the caller picked a range it may not close */
	if (use_from)
		closefrom(lo);
	else
		close_range(lo, hi, 0);
	for (int fd = lo; fd <= hi && fd < MAXFD; fd++)
		dummy[fd] = false;
}

static unsigned seedish; /* the driver's randomness reaches us as arguments; this only picks among equals */

static void cmd_closerange(int no, int any)
{
	live_lock();
	int hi_live = 0;
	for (int fd = 0; fd < MAXFD; fd++)
		if (is_live(fd))
			hi_live = fd;
	if (any && seedish++ % 2) {
		/* a gap below 64 between live descriptors */
		int lo = 3 + (int)(seedish * 7 % 40);
		while (lo < 64 && is_live(lo))
			lo++;
		int hi = lo;
		while (hi + 1 < 64 && !is_live(hi + 1) && hi - lo < 6)
			hi++;
		if (lo < 64)
			close_gap(lo, hi, true, false);
	} else if (hi_live < TORTURE_DUMMY_BASE) {
		close_gap(TORTURE_DUMMY_BASE, MAXFD - 1, any, true); /* closefrom */
		if (any)
			closefrom(hi_live + 1);
	} else {
		int lo = TORTURE_DUMMY_BASE;
		while (lo < MAXFD && !dummy[lo])
			lo++;
		int hi = lo;
		while (hi + 1 < MAXFD && dummy[hi + 1])
			hi++;
		if (lo < MAXFD)
			close_gap(lo, hi, false, false);
	}
	live_unlock();
	report("ack %d closerange", no);
}

static void cmd_closeany(int no, int k)
{
	live_lock();
	for (int i = 0; i < k; i++) {
		int fd = 3 + (int)((seedish += 11) % 61);
		if (!is_live(fd))
			close(fd);
	}
	live_unlock();
	report("ack %d closeany", no);
}

#define NEPOLL 2
static int app_ep[NEPOLL] = {-1, -1}, app_ev[NEPOLL] = {-1, -1};

static void cmd_epoll(int no, int any)
{
	int slot = seedish++ % NEPOLL;
	live_lock();
	if (app_ep[slot] >= 0) {
		close(app_ep[slot]);
		close(app_ev[slot]);
		live_set(app_ep[slot], false);
		live_set(app_ev[slot], false);
	}
	/* free some numbers so the new set reuses one */
	for (int fd = TORTURE_DUMMY_BASE; fd < MAXFD; fd++)
		if (dummy[fd]) {
			close(fd);
			dummy[fd] = false;
			break;
		}
	if (any)
		for (int i = 0; i < 3; i++) {
			int fd = 3 + (int)((seedish += 5) % 20);
			if (!is_live(fd))
				close(fd);
		}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int ev = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
	live_set(ep, true);
	live_set(ev, true);
	live_unlock();
	if (ep < 0 || ev < 0) {
		report("fail epoll_create1/eventfd: errno %d", errno);
		return;
	}
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = TORTURE_EPOLL_TAG | (unsigned)ev};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) != 0)
		report("fail epoll_ctl: errno %d", errno);
	app_ep[slot] = ep;
	app_ev[slot] = ev;
	report("ack %d epoll fd=%d", no, ep);
}

static void cmd_epcheck(int no)
{
	for (int i = 0; i < NEPOLL; i++) {
		if (app_ep[i] < 0)
			continue;
		struct epoll_event evs[8];
		int n = epoll_wait(app_ep[i], evs, 8, 0);
		if (n != 1)
			report("fail application epoll set %d: %d events (want its eventfd only), errno %d",
			       app_ep[i], n, errno);
		for (int k = 0; k < n; k++)
			if (evs[k].data.u64 != (TORTURE_EPOLL_TAG | (unsigned)app_ev[i]))
				report("fail application epoll set %d returned foreign data %#llx",
				       app_ep[i], (unsigned long long)evs[k].data.u64);
	}
	report("ack %d epcheck", no);
}

static int sig_fd = -1;

static void cmd_sigfd(int no)
{
	if (sig_fd < 0) {
		sigset_t s;
		sigemptyset(&s);
		sigaddset(&s, SIGUSR1);
		live_lock();
		sig_fd = signalfd(-1, &s, SFD_CLOEXEC);
		live_set(sig_fd, true);
		live_unlock();
		if (sig_fd < 0)
			report("fail signalfd: errno %d", errno);
	}
	report("ack %d sigfd", no);
}

static void cmd_sigfdread(int no)
{
	struct pollfd p = {.fd = sig_fd, .events = POLLIN};
	struct signalfd_siginfo si;
	if (sig_fd < 0 || poll(&p, 1, 3000) != 1 || read(sig_fd, &si, sizeof si) != sizeof si ||
	    si.ssi_signo != SIGUSR1)
		report("fail signalfd did not deliver SIGUSR1: errno %d", errno);
	report("ack %d sigfdread", no);
}

static void cmd_sigwait(int no)
{
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	siginfo_t si;
	/* the driver sent it before the command: pending, so this returns at
	 * once; if it were lost, the driver's ack timeout reports the hang */
	if (sigwaitinfo(&s, &si) != SIGUSR2)
		report("fail sigwaitinfo did not return SIGUSR2: errno %d", errno);
	report("ack %d sigwait", no);
}

static void wait_idle(int ms)
{
	pthread_mutex_lock(&q_mu);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	while (busy > 0)
		if (pthread_cond_timedwait(&q_cv, &q_mu, &until) != 0)
			break;
	pthread_mutex_unlock(&q_mu);
}

static void cmd_exec(int no, char *self)
{
	wait_idle(100);
	if (busy > 0) {
		report("ack %d exec busy", no);
		return;
	}
	/* A mask set through this image's wrappers does not describe the next one. */
	pthread_sigmask(SIG_SETMASK, &base_mask, NULL);
	char a_ctl[16], a_cmd[16], a_up[16], a_gen[16], a_listen[16];
	snprintf(a_ctl, sizeof a_ctl, "%d", ctl_fd);
	snprintf(a_cmd, sizeof a_cmd, "%d", cmd_fd);
	snprintf(a_up, sizeof a_up, "%d", up_port);
	snprintf(a_gen, sizeof a_gen, "%d", gen + 1);
	snprintf(a_listen, sizeof a_listen, "%d", listen_fd);
	char *argv[] = {self, "--ctl", a_ctl, "--cmd", a_cmd, "--up", a_up,
			"--gen", a_gen, "--listen", a_listen, NULL};
	report("ack %d exec", no);
	execv("/proc/self/exe", argv);
	report("fail exec: errno %d", errno);
}

static void start_listener(void)
{
	listen_fd = socket(AF_INET, SOCK_STREAM, 0); /* no CLOEXEC: exec keeps it */
	int one = 1;
	setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(listen_fd, 128) != 0) {
		fprintf(stderr, "cs-torture: listen: %s\n", strerror(errno));
		exit(2);
	}
}

int main(int argc, char **argv)
{
	for (int i = 1; i + 1 < argc; i += 2) {
		int v = atoi(argv[i + 1]);
		if (!strcmp(argv[i], "--ctl"))
			ctl_fd = v;
		else if (!strcmp(argv[i], "--cmd"))
			cmd_fd = v;
		else if (!strcmp(argv[i], "--up"))
			up_port = v;
		else if (!strcmp(argv[i], "--gen"))
			gen = v;
		else if (!strcmp(argv[i], "--listen"))
			listen_fd = v;
	}
	if (ctl_fd < 0 || cmd_fd < 0 || !up_port) {
		fprintf(stderr, "usage: cs-torture --ctl FD --cmd FD --up PORT [--gen G --listen FD]\n");
		return 2;
	}
	sigemptyset(&base_mask);
	sigaddset(&base_mask, SIGUSR1);
	sigaddset(&base_mask, SIGUSR2);
	pthread_sigmask(SIG_SETMASK, &base_mask, NULL); /* before any thread */

	if (listen_fd < 0)
		start_listener();
	live_set(ctl_fd, true);
	live_set(cmd_fd, true);
	live_set(listen_fd, true);
	for (int i = 0; i < 3; i++)
		live_set(i, true);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	getsockname(listen_fd, (struct sockaddr *)&a, &al);
	seedish = (unsigned)getpid();

	for (int i = 0; i < NWORKERS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker_main, NULL) != 0) {
			fprintf(stderr, "cs-torture: pthread_create failed\n");
			return 2;
		}
		pthread_detach(t);
	}
	report("ready gen=%d pid=%d port=%d", gen, getpid(), ntohs(a.sin_port));

	char line[256];
	for (;;) {
		ssize_t n = read_line(cmd_fd, line, sizeof line, false);
		if (n <= 0) {
			fprintf(stderr, "cs-torture: command pipe: %s\n", n ? strerror(errno) : "EOF");
			return 3;
		}
		line[n - 1] = 0;
		int no, off = 0;
		char verb[16];
		if (sscanf(line, "%d %15s %n", &no, verb, &off) < 2) {
			report("fail bad command '%s'", line);
			continue;
		}
		const char *args = line + off;
		reap(false);
		if (!strcmp(verb, "accept"))
			cmd_accept(no, args);
		else if (!strcmp(verb, "answer"))
			cmd_answer(no, args);
		else if (!strcmp(verb, "vfork"))
			cmd_vfork(no);
		else if (!strcmp(verb, "exec"))
			cmd_exec(no, argv[0]);
		else if (!strcmp(verb, "mask"))
			cmd_mask(no, args);
		else if (!strcmp(verb, "dummies"))
			cmd_dummies(no, atoi(args));
		else if (!strcmp(verb, "closerange"))
			cmd_closerange(no, atoi(args));
		else if (!strcmp(verb, "closeany"))
			cmd_closeany(no, atoi(args));
		else if (!strcmp(verb, "epoll"))
			cmd_epoll(no, atoi(args));
		else if (!strcmp(verb, "epcheck"))
			cmd_epcheck(no);
		else if (!strcmp(verb, "sigfd"))
			cmd_sigfd(no);
		else if (!strcmp(verb, "sigfdread"))
			cmd_sigfdread(no);
		else if (!strcmp(verb, "sigwait"))
			cmd_sigwait(no);
		else if (!strcmp(verb, "quit")) {
			wait_idle(15000);
			if (busy > 0)
				report("fail quit: %d requests still being served", busy);
			cmd_epcheck(no);
			reap(true);
			if (children > 0)
				report("fail quit: %d children never exited", children);
			report("ack %d quit", no);
			return 0;
		} else
			report("fail unknown command '%s'", verb);
	}
}

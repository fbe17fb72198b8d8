/* cs-torture: the host program of the torture suite, run under the shim;
 * this file is its main thread: it accepts and executes the commands.
 *
 * A server whose main thread executes the driver's commands (torture.h) and
 * whose workers (a pool of threads, or fork/clone children) each serve one
 * client at a time: read the request, make one cancellable call on an
 * upstream (recv, or poll then recv), answer, and report on the control pipe
 * whether that call failed with ECANCELED. The driver knows which clients
 * left and checks the reports.
 *
 *   cs-torture --ctl FD --cmd FD --up PORT [--seed N] [--gen G --listen FD]
 */
#include "torture.h"
#include "host.h"


#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

static int cmd_fd = -1, listen_fd = -1, gen;

/* kind s: the main thread's ends of the socketpairs, by client id */
struct pair_end {
	int cid, fd;
};
static struct pair_end pairs[MAXJOBS];

static sigset_t base_mask; /* SIGUSR1, SIGUSR2: always blocked (signalfd, sigwaitinfo) */

/* Dummies: /dev/null descriptors at TORTURE_DUMMY_BASE.., free to close. */
static bool dummy[MAXFD];

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
		pool_submit(&j);
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

/* Which of several equal descriptors an action picks: from --seed, which the
 * driver derives from the sequence's seed, so a replay closes the same ones. */
static unsigned seedish;

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

static void check_app_epoll(void)
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
}

static void cmd_epcheck(int no)
{
	check_app_epoll();
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

static void cmd_exec(int no, char *self)
{
	if (pool_wait_idle(100) > 0) {
		report("ack %d exec busy", no);
		return;
	}
	/* A mask set through this image's wrappers does not describe the next one. */
	pthread_sigmask(SIG_SETMASK, &base_mask, NULL);
	char a_ctl[16], a_cmd[16], a_up[16], a_gen[16], a_listen[16], a_seed[16];
	snprintf(a_ctl, sizeof a_ctl, "%d", ctl_fd);
	snprintf(a_cmd, sizeof a_cmd, "%d", cmd_fd);
	snprintf(a_up, sizeof a_up, "%d", up_port);
	snprintf(a_gen, sizeof a_gen, "%d", gen + 1);
	snprintf(a_listen, sizeof a_listen, "%d", listen_fd);
	snprintf(a_seed, sizeof a_seed, "%u", seedish);
	char *argv[] = {self, "--ctl", a_ctl, "--cmd", a_cmd, "--up", a_up,
			"--gen", a_gen, "--listen", a_listen, "--seed", a_seed, NULL};
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
		else if (!strcmp(argv[i], "--seed"))
			seedish = (unsigned)strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--listen"))
			listen_fd = v;
	}
	if (ctl_fd < 0 || cmd_fd < 0 || !up_port) {
		fprintf(stderr, "usage: cs-torture --ctl FD --cmd FD --up PORT [--seed N] [--gen G --listen FD]\n");
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

	pool_start(NWORKERS);
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
			int busy = pool_wait_idle(15000);
			if (busy > 0)
				report("fail quit: %d requests still being served", busy);
			check_app_epoll();
			reap(true);
			if (children > 0)
				report("fail quit: %d children never exited", children);
			report("ack %d quit", no);
			return 0;
		} else
			report("fail unknown command '%s'", verb);
	}
}

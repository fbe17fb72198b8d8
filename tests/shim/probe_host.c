/* Odd, legal things host programs do to the shim's process, its log and its
 * signal: a child made by clone() without fork, a daemon whose descriptor 2
 * is a data file, a program that uses the shim's signal itself. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- one request served by a thread, cancelled or completed ------------- */

struct request {
	int fd, up[2];
	_Atomic pid_t tid;
	_Atomic int phase;	/* 1: first wait, 2: second wait, 3: done */
	int r1, e1, r2, e2;
};

/* Reads the request, then waits twice on its upstream: the first wait is
 * to complete (the upstream answers), the second to be cancelled. */
static void *serve_twice(void *arg)
{
	struct request *q = arg;
	char c;

	atomic_store(&q->tid, probe_gettid());
	read(q->fd, &c, 1);
	atomic_store(&q->phase, 1);
	errno = 0;
	q->r1 = (int)recv(q->up[0], &c, 1, 0);
	q->e1 = q->r1 < 0 ? errno : 0;
	atomic_store(&q->phase, 2);
	errno = 0;
	q->r2 = (int)recv(q->up[0], &c, 1, 0);
	q->e2 = q->r2 < 0 ? errno : 0;
	atomic_store(&q->phase, 3);
	return NULL;
}

/* Waits until q's thread reaches phase and blocks there (what: the failure). */
static void request_blocked(struct request *q, int phase, const char *what)
{
	while (atomic_load(&q->phase) != phase)
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&q->tid), 5000) < 0)
		die(what);
}

/* A new client of listener l (at ep) whose request a new thread t serves:
 * returns the client's descriptor once that thread is blocked upstream. */
static int request_start(struct request *q, pthread_t *t, int l, const struct endpoint *ep, const char *what)
{
	int c;

	memset(q, 0, sizeof *q);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, q->up) < 0)
		die("socketpair");
	c = probe_connect(ep);
	q->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	pthread_create(t, NULL, serve_twice, q);
	write(c, "x", 1);
	request_blocked(q, 1, what);
	return c;
}

/* After q's client left: up to 2 s for the cancel; then the upstream
 * answers, so that a missed disconnect ends the wait too, and t is joined. */
static void request_end(struct request *q, pthread_t t)
{
	struct timespec p = { 0, 1000000 };

	for (int i = 0; i < 2000 && atomic_load(&q->phase) == 1; i++)
		nanosleep(&p, NULL);
	write(q->up[1], "yy", 2);
	pthread_join(t, NULL);
}

static int wait_exit(pid_t pid, int timeout_ms)
{
	int64_t end = probe_now_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec p = { 0, 1000000 };
	int status;

	while (probe_now_ns() < end) {
		if (waitpid(pid, &status, WNOHANG | __WALL) == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		nanosleep(&p, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, __WALL);
	return -1;
}

/* ---- clone() without CLONE_VM ------------------------------------------- */

struct clone_args_ {
	int l, up, cfds[2];
};

/* The child: its own client, its own request, cancelled when that client
 * leaves. It shares nothing with the parent but what clone() copied. */
static int child_serve(void *arg)
{
	struct clone_args_ *a = arg;
	char c;
	int s;

	alarm(10);
	s = accept4(a->l, NULL, NULL, SOCK_CLOEXEC);
	if (s < 0)
		_exit(3);
	/* The parent's client sockets: only the parent holds them. */
	close(a->cfds[0]);
	close(a->cfds[1]);
	read(s, &c, 1);
	errno = 0;
	int r = (int)recv(a->up, &c, 1, 0);
	_exit(r < 0 && errno == ECANCELED ? 0 : r < 0 ? 10 + (errno & 63) : 2);
}

/* Both serve a client accepted after the clone, with the same generation
 * and the same descriptor number: the child's client leaving must cancel
 * only the child's request. */
static int rawclone(const char *how, const char *family)
{
	struct endpoint ep_parent, ep_child;
	struct request q;
	struct clone_args_ a;
	int lp = probe_listen(family, &ep_parent), lc = probe_listen(family, &ep_child), upc[2];
	pthread_t t;
	pid_t pid;

	/* Warm up: a served request starts the parent's watcher (its epoll
	 * set, or its eBPF ring), which the child would inherit. */
	{
		struct request w;
		pthread_t wt;
		int wc = request_start(&w, &wt, lp, &ep_parent, "warm-up never blocked");
		write(w.up[1], "y", 1);
		request_blocked(&w, 2, "warm-up never blocked again");
		probe_close_peer(wc, 0);
		pthread_join(wt, NULL);
		close(w.fd);
		close(w.up[0]);
		close(w.up[1]);
		if (w.e2 != ECANCELED)
			die("warm-up request not cancelled");
	}

	memset(&q, 0, sizeof q);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, q.up) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, upc) < 0)
		die("socketpair");
	a.l = lc;
	a.up = upc[0];
	a.cfds[0] = probe_connect(&ep_parent);	/* the parent's client */
	a.cfds[1] = probe_connect(&ep_child);	/* the child's client */
	write(a.cfds[0], "x", 1);
	write(a.cfds[1], "x", 1);
	if (!strcmp(how, "raw")) {
		pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
		if (pid == 0)
			child_serve(&a);
	} else {
		static char stack[256 * 1024] __attribute__((aligned(16)));
		pid = clone(child_serve, stack + sizeof stack, SIGCHLD, &a);
	}
	if (pid < 0)
		die("clone");
	q.fd = accept4(lp, NULL, NULL, SOCK_CLOEXEC);
	pthread_create(&t, NULL, serve_twice, &q);
	request_blocked(&q, 1, "parent's request never blocked");
	if (probe_wait_blocked(pid, pid, 5000) < 0)
		die("child's request never blocked");
	probe_close_peer(a.cfds[1], 0);	/* the child's client leaves */
	int child = wait_exit(pid, 3000);
	/* The parent's request is live: it must still be waiting. */
	int parent_waiting = atomic_load(&q.phase) == 1;
	write(q.up[1], "y", 1);	/* its upstream answers */
	while (atomic_load(&q.phase) == 1)
		sched_yield();
	int parent_completed = q.r1 == 1;
	if (atomic_load(&q.phase) == 2 && probe_wait_blocked(getpid(), atomic_load(&q.tid), 5000) < 0)
		die("parent's second wait never blocked");
	probe_close_peer(a.cfds[0], 1);	/* the parent's client leaves */
	pthread_join(t, NULL);
	out("clone how=%s child=%d parent_waiting=%d parent_completed=%d parent_cancelled=%d e1=%d", how, child,
	    parent_waiting, parent_completed, q.e2 == ECANCELED, q.e1);
	return 0;
}

/* ---- a daemon's descriptor 2 -------------------------------------------- */

/* With "daemon": descriptors 0, 1 and 2 closed, two opened on /dev/null and
 * the data file on 2, as daemons do. With "redirect": a log file put on 2
 * with dup2, as apache does. Then one request, cancelled (with
 * CANCELSHIM_LOG=debug the shim has plenty to say). */
static int daemonlike(const char *mode, const char *datafile)
{
	struct endpoint ep;
	struct request q;
	pthread_t t;
	int l, c;

	if (!strcmp(mode, "daemon")) {
		close(0);
		close(1);
		close(2);
		if (open("/dev/null", O_RDONLY) != 0 || open("/dev/null", O_WRONLY) != 1 ||
		    open(datafile, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644) != 2)
			_exit(4);
		write(2, "data\n", 5);
	} else if (!strcmp(mode, "redirect")) {
		/* Its error log made its stderr on purpose (apache, php-fpm). */
		int log = open(datafile, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
		if (log < 0 || dup2(log, 2) != 2)
			_exit(4);
		close(log);
	}
	l = probe_listen("v4", &ep);
	c = request_start(&q, &t, l, &ep, "never blocked");
	probe_close_peer(c, 0);
	pthread_join(t, NULL);
	if (!strcmp(mode, "daemon"))
		write(2, "more\n", 5);
	out("log mode=%s cancelled=%d", mode, q.e1 == ECANCELED);
	return q.e1 == ECANCELED ? 0 : 1;
}

/* ---- the shim's signal, used by a program that never serves -------------- */

static _Atomic int handled;

static void on_sig(int s)
{
	(void)s;
	atomic_fetch_add(&handled, 1);
}

static int sigown(void)
{
	int sig = SIGRTMAX - 1;	/* the shim's default */
	sigset_t set, old;
	siginfo_t si;
	struct timespec ts = { 2, 0 };
	struct signalfd_siginfo ssi;

	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");
	sigprocmask(SIG_SETMASK, NULL, &old);
	out("mask blocked=%d", sigismember(&old, sig));
	sigqueue(getpid(), sig, (union sigval){ .sival_int = 42 });
	memset(&si, 0, sizeof si);
	int r = sigwaitinfo(&set, &si);
	out("sigwaitinfo ok=%d value=%d", r == sig, si.si_value.sival_int);

	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	raise(sig);
	r = sigtimedwait(&set, &si, &ts);
	out("sigtimedwait ok=%d", r == sig);

	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd");
	kill(getpid(), sig);
	ssize_t n = read(sfd, &ssi, sizeof ssi);
	out("signalfd ok=%d", n == (ssize_t)sizeof ssi && (int)ssi.ssi_signo == sig);
	close(sfd);

	struct sigaction sa, back;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sig;
	sigaction(sig, &sa, NULL);
	sigaction(sig, NULL, &back);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	out("handler installed=%d ran=%d", back.sa_handler == on_sig, atomic_load(&handled));
	/* And while blocked again: a signal sent stays pending for sigpending. */
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(sig);
	sigset_t pend;
	sigpending(&pend);
	out("pending=%d", sigismember(&pend, sig));
	return 0;
}

/* ---- programs that close every descriptor they do not know -------------- */

/* The descriptors whose /proc/self/fd link contains what (the shim's: this
 * program makes no epoll set or BPF object of its own); their count. */
static int find_fds(const char *what, int *fds, int max)
{
	char path[64], link[64];
	int n = 0;

	for (int fd = 3; fd < 1024 && n < max; fd++) {
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t len = readlink(path, link, sizeof link - 1);
		if (len > 0) {
			link[len] = 0;
			if (strstr(link, what))
				fds[n++] = fd;
		}
	}
	return n;
}

static int find_epoll(void)
{
	int fd;
	return find_fds("eventpoll", &fd, 1) == 1 ? fd : -1;
}

/* The application's own epoll set (rawclose), what it registered there, and
 * the entries found there that it did not register. */
static int app_ep = -1, app_fd = -1, foreign;

/* Registrations in the application's set other than its own, read from
 * /proc/self/fdinfo ("tfd:" lines), without consuming any event. */
static int count_foreign(void)
{
	char path[64], buf[8192];
	int n = 0;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", app_ep);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0)
		return 0;
	buf[len] = 0;
	for (char *p = buf; (p = strstr(p, "tfd:")); p += 4)
		n += atoi(p + 4) != app_fd;
	return n;
}

/* One request on a fresh listener of family, whose client leaves while its
 * thread waits upstream: 1 if that wait was cancelled. */
static int one_request(const char *family)
{
	struct endpoint ep;
	struct request q;
	pthread_t t;
	int l = probe_listen(family, &ep), c;

	c = request_start(&q, &t, l, &ep, "never blocked");
	if (app_ep >= 0)
		foreign += count_foreign();
	probe_close_peer(c, 0);
	request_end(&q, t);
	close(q.fd);
	close(q.up[0]);
	close(q.up[1]);
	close(l);
	return q.e1 == ECANCELED;
}

#define MARK 0x5eedf00dull

/* closeall loop|closefrom|close_range|dup2|rawclose|rawclosebpf: a request in flight
 * (its connection watched), then the program closes what it does not know
 * (or replaces the shim's epoll descriptor), then more requests. */
static int closeall(const char *how)
{
	struct endpoint ep;
	struct request q;
	pthread_t t;
	int l = probe_listen("unix", &ep), c, known_max, shim_ep, reuse = 0;

	c = request_start(&q, &t, l, &ep, "never blocked");
	known_max = q.fd > c ? q.fd : c;
	if (q.up[1] > known_max)
		known_max = q.up[1];
	/* In mode ebpf the instance loads now: its descriptors are among
	 * those the program closes. */
	struct endpoint epx;
	probe_listen("v4", &epx);
	if ((shim_ep = find_epoll()) < 0)
		die("no epoll set of the shim's");
	if (!strcmp(how, "loop")) {
		for (int fd = known_max + 1; fd < 1024; fd++)
			close(fd);
	} else if (!strcmp(how, "closefrom")) {
		closefrom(known_max + 1);
	} else if (!strcmp(how, "close_range")) {
		close_range((unsigned)known_max + 1, ~0u, 0);
	} else if (!strcmp(how, "dup2")) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int bpf[8], n = find_fds("bpf", bpf, 8);
		if (dup2(null, shim_ep) != shim_ep)
			die("dup2");
		for (int i = 0; i < n; i++)
			if (dup3(null, bpf[i], O_CLOEXEC) != bpf[i])
				die("dup3");
		close(null);
	} else if (!strcmp(how, "rawclosebpf")) {
		/* The eBPF watcher's links (mode ebpf only), closed unseen, their
		 * numbers reused by the program's next files. */
		int bpf[8], n = find_fds("bpf_link", bpf, 8);
		for (int i = 0; i < n; i++)
			syscall(SYS_close, bpf[i]);
		for (int i = 0; i < n; i++)
			reuse += open("/dev/null", O_RDONLY | O_CLOEXEC) == bpf[i];
	} else if (!strcmp(how, "rawclose")) {
		syscall(SYS_close, shim_ep);
		app_ep = epoll_create1(EPOLL_CLOEXEC);
		reuse = app_ep == shim_ep;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = MARK };
		app_fd = q.up[1];
		epoll_ctl(app_ep, EPOLL_CTL_ADD, app_fd, &ev);
	}
	/* The request in flight: its client leaves. */
	probe_close_peer(c, 0);
	request_end(&q, t);
	int before = q.e1 == ECANCELED, after = 0;
	const char *families[] = { "unix", "v4", "unix", "v4" };
	for (int i = 0; i < 4; i++)
		after += one_request(families[i]);
	if (app_ep >= 0) {
		struct epoll_event evs[16];
		int n = epoll_wait(app_ep, evs, 16, 0);
		for (int i = 0; i < n; i++)
			foreign += evs[i].data.u64 != MARK;
	}
	out("closeall how=%s before=%d after=%d of=4 foreign=%d reuse=%d", how, before, after, foreign, reuse);
	return 0;
}

/* host clone raw|stack FAMILY | host log plain|daemon|redirect FILE | host sigown */
int scenario_host(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "clone"))
		return rawclone(argc > 2 ? argv[2] : "raw", argc > 3 ? argv[3] : "v4");
	if (argc > 2 && !strcmp(argv[1], "log"))
		return daemonlike(argv[2], argc > 3 ? argv[3] : "/dev/null");
	if (argc > 1 && !strcmp(argv[1], "sigown"))
		return sigown();
	if (argc > 2 && !strcmp(argv[1], "closeall"))
		return closeall(argv[2]);
	fprintf(stderr, "host: unknown case\n");
	return 2;
}

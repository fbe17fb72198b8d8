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
		int wc = probe_connect(&ep_parent), ws = accept4(lp, NULL, NULL, SOCK_CLOEXEC);
		struct request w;
		pthread_t wt;
		memset(&w, 0, sizeof w);
		w.fd = ws;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w.up) < 0)
			die("socketpair");
		pthread_create(&wt, NULL, serve_twice, &w);
		write(wc, "x", 1);
		while (atomic_load(&w.phase) != 1)
			sched_yield();
		if (probe_wait_blocked(getpid(), atomic_load(&w.tid), 5000) < 0)
			die("warm-up never blocked");
		write(w.up[1], "y", 1);
		while (atomic_load(&w.phase) != 2)
			sched_yield();
		if (probe_wait_blocked(getpid(), atomic_load(&w.tid), 5000) < 0)
			die("warm-up never blocked again");
		probe_close_peer(wc, 0);
		pthread_join(wt, NULL);
		close(ws);
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
	while (atomic_load(&q.phase) != 1)
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&q.tid), 5000) < 0)
		die("parent's request never blocked");
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
 * the data file on 2, as daemons do. Then one request, cancelled (with
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
	}
	l = probe_listen("v4", &ep);
	memset(&q, 0, sizeof q);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, q.up) < 0)
		die("socketpair");
	c = probe_connect(&ep);
	q.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	pthread_create(&t, NULL, serve_twice, &q);
	write(c, "x", 1);
	while (atomic_load(&q.phase) != 1)
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&q.tid), 5000) < 0)
		die("never blocked");
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

/* host clone raw|stack FAMILY | host log plain|daemon DATAFILE | host sigown */
int scenario_host(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "clone"))
		return rawclone(argc > 2 ? argv[2] : "raw", argc > 3 ? argv[3] : "v4");
	if (argc > 2 && !strcmp(argv[1], "log"))
		return daemonlike(argv[2], argc > 3 ? argv[3] : "/dev/null");
	if (argc > 1 && !strcmp(argv[1], "sigown"))
		return sigown();
	fprintf(stderr, "host: unknown case\n");
	return 2;
}

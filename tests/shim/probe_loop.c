/* Event loops, programs that never accept, and connections that die before
 * the worker that serves them gets to them. */
#include "probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct loop {
	const char *how;
	struct endpoint ep;
	int listener, a, b, up[2];
	_Atomic pid_t tid;
	_Atomic int phase;
	int wait_ret, wait_errno, after_ret, after_errno;
};

static void *loop_thread(void *arg)
{
	struct loop *l = arg;
	char c;

	atomic_store(&l->tid, probe_gettid());
	l->a = accept4(l->listener, NULL, NULL, SOCK_CLOEXEC);
	l->b = accept4(l->listener, NULL, NULL, SOCK_CLOEXEC);
	if (l->a < 0 || l->b < 0 || read(l->a, &c, 1) != 1)	/* serving A */
		die("loop setup");
	atomic_store(&l->phase, 1);
	errno = 0;
	if (!strcmp(l->how, "epoll")) {
		struct epoll_event ev = { .events = EPOLLIN }, got[8];
		int ep = epoll_create1(EPOLL_CLOEXEC);
		epoll_ctl(ep, EPOLL_CTL_ADD, l->listener, &ev);
		epoll_ctl(ep, EPOLL_CTL_ADD, l->a, &ev);
		epoll_ctl(ep, EPOLL_CTL_ADD, l->b, &ev);
		l->wait_ret = epoll_wait(ep, got, 8, 5000);
	} else {
		struct pollfd p[2] = { { l->a, POLLIN, 0 }, { l->b, POLLIN, 0 } };
		l->wait_ret = poll(p, 2, 5000);
	}
	l->wait_errno = l->wait_ret < 0 ? errno : 0;
	/* An event loop thread touches client B, then waits upstream while B
	 * goes away: it must not be cancelled. */
	write(l->b, "y", 1);
	atomic_store(&l->phase, 2);
	errno = 0;
	l->after_ret = (int)recv(l->up[0], &c, 1, 0);
	l->after_errno = l->after_ret < 0 ? errno : 0;
	return NULL;
}

/* loop epoll|poll FAMILY */
int scenario_loop(int argc, char **argv)
{
	struct loop l;
	pthread_t t;
	int ca, cb;

	memset(&l, 0, sizeof l);
	l.how = argc > 1 ? argv[1] : "epoll";
	l.listener = probe_listen(argc > 2 ? argv[2] : "v4", &l.ep);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, l.up) < 0)
		die("socketpair");
	pthread_create(&t, NULL, loop_thread, &l);
	ca = probe_connect(&l.ep);
	cb = probe_connect(&l.ep);
	write(ca, "x", 1);
	while (atomic_load(&l.phase) < 1)
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&l.tid), 5000) < 0)
		die("loop never waited");
	probe_close_peer(ca, 0);
	while (atomic_load(&l.phase) < 2)
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&l.tid), 5000) < 0)
		die("loop never waited upstream");
	probe_close_peer(cb, 1);
	/* Give a wrongful cancel time to land, then release the call. */
	struct timespec p = { 0, 300 * 1000000 };
	nanosleep(&p, NULL);
	write(l.up[1], "z", 1);
	pthread_join(t, NULL);
	out("loop how=%s wait_ret=%d wait_errno=%d after_ret=%d after_errno=%d", l.how, l.wait_ret, l.wait_errno,
	    l.after_ret, l.after_errno);
	return 0;
}

static int count_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;
	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	if (d)
		closedir(d);
	return n;
}

/* inert: a program that never accepts but uses sockets, waits and sleeps. */
int scenario_inert(int argc, char **argv)
{
	struct endpoint ep;
	int l = probe_listen("v4", &ep);
	close(l);	/* nothing listens there now: connect is refused */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = connect(fd, (struct sockaddr *)&ep.addr, ep.len);
	int err = errno;
	struct pollfd p = { fd, POLLIN, 0 };
	poll(&p, 1, 10);
	struct timespec ts = { 0, 1000000 };
	nanosleep(&ts, NULL);
	close(fd);
	out("inert connect_ret=%d connect_errno=%d threads=%d", r, r < 0 ? err : 0, count_threads());
	return 0;
}

struct late {
	int fd, up[2];
	int ret, err;
	int64_t us;
};

static void *late_worker(void *arg)
{
	struct late *w = arg;
	char c;
	int64_t t0;

	read(w->fd, &c, 1);	/* the request (or the reset): binds */
	t0 = probe_now_ns();
	errno = 0;
	w->ret = (int)recv(w->up[0], &c, 1, 0);
	w->err = w->ret < 0 ? errno : 0;
	w->us = (probe_now_ns() - t0) / 1000;
	return NULL;
}

static void *warm_worker(void *arg)
{
	char c;
	read(*(int *)arg, &c, 1);	/* binds: the process now serves clients */
	return NULL;
}

/* One connection served to the end by a worker thread: a process that has
 * served clients before (in mode ebpf its ring is being read). */
static void warm_up(int l, const struct endpoint *ep)
{
	int c = probe_connect(ep), s;
	pthread_t t;

	write(c, "w", 1);
	if ((s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		die("accept");
	pthread_create(&t, NULL, warm_worker, &s);
	pthread_join(t, NULL);
	close(s);
	close(c);
}

/* late FAMILY fin|rst [warm]: the client is gone before a worker picks the
 * connection up from the acceptor (with warm, in a process that served a
 * client before). */
int scenario_late(int argc, char **argv)
{
	struct endpoint ep;
	struct late w;
	pthread_t t;
	int l = probe_listen(argc > 1 ? argv[1] : "v4", &ep);
	if (argc > 3 && !strcmp(argv[3], "warm"))
		warm_up(l, &ep);
	int c = probe_connect(&ep), up2[2];
	char ch;

	memset(&w, 0, sizeof w);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w.up) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up2) < 0)
		die("socketpair");
	write(c, "x", 1);
	probe_close_peer(c, argc > 2 && !strcmp(argv[2], "rst"));
	/* The main thread is the acceptor: it hands the socket over unread. */
	w.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (w.fd < 0)
		die("accept");
	pthread_create(&t, NULL, late_worker, &w);
	pthread_join(t, NULL);
	/* The acceptor itself serves no one: its calls are never failed. */
	write(up2[1], "z", 1);
	errno = 0;
	int r = (int)recv(up2[0], &ch, 1, 0);
	out("late first_ret=%d first_errno=%d call_us=%lld acceptor_ret=%d acceptor_errno=%d", w.ret, w.err,
	    (long long)w.us, r, r < 0 ? errno : 0);
	return 0;
}

/* Scenarios around one served connection: a server thread accepts, reads the
 * request (binding itself to the connection), then blocks in some call while
 * the client goes away. */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

struct session {
	const char *family, *call, *variant;
	int rst;
	int expect_live_ms;	/* >0: the close must NOT cancel; release after this */
	int signo;
	struct endpoint ep;
	int listener, client, client2, server, server2;
	int up[2];
	pthread_t thread;
	_Atomic pid_t tid;
	_Atomic int ready, done;
	int first_ret, first_errno;
	int64_t t_close, t_return;
	char extra[512];
};

static _Atomic int handler_calls;
static void app_handler(int sig) { (void)sig; atomic_fetch_add(&handler_calls, 1); }

/* The blocking call under test, on the upstream socket or as a sleep. */
static int blocking_call(struct session *s, const char *call)
{
	char buf[8];
	int fd = s->up[0], r;
	/* Sizes the compiler cannot see: a fortified build then goes through
	 * __read_chk, __recv_chk and __poll_chk. */
	static volatile size_t one = 1;

	if (!strncmp(call, "deep_", 5))
		return probe_deep_call(call, fd);
	if (!strcmp(call, "recv"))
		return (int)recv(fd, buf, one, 0);
	if (!strcmp(call, "read"))
		return (int)read(fd, buf, one);
	if (!strcmp(call, "readv")) {
		struct iovec v = { buf, 1 };
		return (int)readv(fd, &v, 1);
	}
	if (!strcmp(call, "recvmsg")) {
		struct iovec v = { buf, 1 };
		struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1 };
		return (int)recvmsg(fd, &m, 0);
	}
	if (!strcmp(call, "send")) {
		/* Fill the socket buffer first so that send blocks. */
		static char big[65536];
		fcntl(fd, F_SETFL, O_NONBLOCK);
		while (send(fd, big, sizeof big, 0) > 0)
			;
		fcntl(fd, F_SETFL, 0);
		return (int)send(fd, big, sizeof big, 0);
	}
	if (!strcmp(call, "poll")) {
		struct pollfd p = { fd, POLLIN, 0 };
		return poll(&p, one, -1);
	}
	if (!strcmp(call, "ppoll")) {
		struct pollfd p = { fd, POLLIN, 0 };
		return ppoll(&p, 1, NULL, NULL);
	}
	if (!strcmp(call, "select")) {
		fd_set rs;
		FD_ZERO(&rs);
		FD_SET(fd, &rs);
		return select(fd + 1, &rs, NULL, NULL, NULL);
	}
	if (!strcmp(call, "epoll")) {
		struct epoll_event ev = { .events = EPOLLIN }, got;
		int ep = epoll_create1(EPOLL_CLOEXEC);
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
		r = epoll_wait(ep, &got, 1, -1);
		int saved = errno;
		close(ep);
		errno = saved;
		return r;
	}
	if (!strcmp(call, "nanosleep")) {
		struct timespec ts = { 20, 0 };
		return nanosleep(&ts, NULL);
	}
	if (!strcmp(call, "clock_nanosleep")) {
		struct timespec ts = { 20, 0 };
		r = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		if (r) {
			errno = r;
			return -1;
		}
		return 0;
	}
	if (!strcmp(call, "usleep"))
		return usleep(20000000);
	if (!strcmp(call, "sleep")) {
		errno = 0;
		unsigned left = sleep(20);
		return (left == 0 && errno == ECANCELED) ? -1 : (int)left;
	}
	if (!strcmp(call, "eventfd")) {
		uint64_t v;
		int efd = eventfd(0, EFD_CLOEXEC);
		r = (int)read(efd, &v, sizeof v);
		int saved = errno;
		close(efd);
		errno = saved;
		return r;
	}
	fprintf(stderr, "cs-probe: unknown call %s\n", call);
	exit(2);
}

/* What a cancelled thread can still do, and what it cannot. */
static void check_classes(struct session *s)
{
	char path[64], c = 'x';
	int fd, p[2], r, used = 0;
#define NOTE(name, expr)                                                                     \
	do {                                                                                 \
		errno = 0;                                                                   \
		r = (int)(expr);                                                             \
		used += snprintf(s->extra + used, sizeof s->extra - used, " %s=%d %s_errno=%d", \
				 name, r < 0 ? -1 : r, name, r < 0 ? errno : 0);             \
	} while (0)

	NOTE("stdout", write(1, "classes: writing to stdout\n", 27));
	NOTE("stderr", write(2, "classes: writing to stderr\n", 27));
	snprintf(path, sizeof path, "/tmp/cs-probe-file-%d", getpid());
	fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	NOTE("file", write(fd, &c, 1));
	close(fd);
	unlink(path);
	if (pipe(p) < 0)
		die("pipe");
	NOTE("pipe", write(p[1], &c, 1));
	NOTE("pipe_close", close(p[0]));
	close(p[1]);
	fcntl(s->up[0], F_SETFL, O_NONBLOCK);
	NOTE("nonblock", recv(s->up[0], &c, 1, 0));
	fcntl(s->up[0], F_SETFL, 0);
	NOTE("dontwait", recv(s->up[0], &c, 1, MSG_DONTWAIT));
	struct pollfd pf = { s->up[0], POLLIN, 0 };
	NOTE("poll0", poll(&pf, 1, 0));
#undef NOTE
}

/* Connect a fresh TCP socket to our own listener: a blocking connect by a
 * cancelled thread must fail without being issued. */
static int connect_own(struct session *s)
{
	int fd = socket(s->ep.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r = connect(fd, (struct sockaddr *)&s->ep.addr, s->ep.len);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* The variants that move the client to another descriptor before the
 * request is read, then close the original. */
static int is_move(const char *variant)
{
	return !strncmp(variant, "dup", 3);
}

static int move_client(int fd, const char *how)
{
	if (!strcmp(how, "dup"))
		return dup(fd);
	if (!strcmp(how, "dup2"))
		return dup2(fd, 200);
	if (!strcmp(how, "dup3"))
		return dup3(fd, 201, O_CLOEXEC);
	if (!strcmp(how, "dupfd"))
		return fcntl(fd, F_DUPFD, 300);
	if (!strcmp(how, "dupfd_cloexec"))
		return fcntl(fd, F_DUPFD_CLOEXEC, 310);
	fprintf(stderr, "cs-probe: unknown move %s\n", how);
	exit(2);
}

static void *serve(void *arg)
{
	struct session *s = arg;
	char c;
	int r;
	int64_t t0;

	atomic_store(&s->tid, probe_gettid());
	s->server = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC);
	if (s->server < 0)
		die("accept");
	if (!strcmp(s->variant, "other"))
		s->server2 = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC);
	if (is_move(s->variant)) {
		int d = move_client(s->server, s->variant);
		if (d < 0)
			die("moving the client to another descriptor");
		close(s->server);
		s->server = d;
	}
	if (read(s->server, &c, 1) != 1)	/* the request: binds this thread */
		die("read request");
	if (!strcmp(s->variant, "sigmask")) {
		sigset_t all;
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, NULL);
	}
	atomic_store(&s->ready, 1);
	errno = 0;
	r = blocking_call(s, s->call);
	s->t_return = probe_now_ns();
	s->first_ret = r;
	s->first_errno = r < 0 ? errno : 0;
	atomic_store(&s->done, 1);
	if (s->expect_live_ms)
		return NULL;

	int used = 0;
	/* A later blocking call fails at once, without entering the kernel. */
	t0 = probe_now_ns();
	errno = 0;
	r = blocking_call(s, s->call);
	used += snprintf(s->extra + used, sizeof s->extra - used, " second_errno=%d second_us=%lld connect_errno=%d",
			 r < 0 ? errno : 0, (long long)(probe_now_ns() - t0) / 1000, connect_own(s) < 0 ? errno : 0);
	if (!strcmp(s->variant, "sigmask")) {
		sigset_t now;
		pthread_sigmask(SIG_BLOCK, NULL, &now);
		used += snprintf(s->extra + used, sizeof s->extra - used, " mask_view=%d", sigismember(&now, s->signo));
	}
	if (!strcmp(s->variant, "classes")) {
		check_classes(s);
		return NULL;
	}
	/* The client's own socket keeps its natural results. */
	errno = 0;
	r = (int)read(s->server, &c, 1);
	used += snprintf(s->extra + used, sizeof s->extra - used, " own_ret=%d own_errno=%d", r, r < 0 ? errno : 0);

	/* What ends the cancel. */
	if (!strcmp(s->variant, "close") || is_move(s->variant) || !strcmp(s->variant, "sigmask") ||
	    !strcmp(s->variant, "handler")) {
		r = close(s->server);
		used += snprintf(s->extra + used, sizeof s->extra - used, " close_ret=%d", r);
	} else if (!strcmp(s->variant, "accept")) {
		int n = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC);
		used += snprintf(s->extra + used, sizeof s->extra - used, " accept_ret=%d", n >= 0);
	} else if (!strcmp(s->variant, "other")) {
		r = (int)write(s->server2, "y", 1);	/* I/O on another client */
		used += snprintf(s->extra + used, sizeof s->extra - used, " other_ret=%d", r);
	} else if (!strcmp(s->variant, "multiplex")) {
		struct pollfd p = { s->listener, POLLIN, 0 };
		r = poll(&p, 1, 0);	/* back in an event loop */
		used += snprintf(s->extra + used, sizeof s->extra - used, " multiplex_ret=%d", r);
	}
	if (write(s->up[1], "z", 1) != 1)
		die("write upstream");
	errno = 0;
	r = (int)recv(s->up[0], &c, 1, 0);
	snprintf(s->extra + used, sizeof s->extra - used, " after_ret=%d after_errno=%d", r, r < 0 ? errno : 0);
	return NULL;
}

/* cancel FAMILY fin|rst CALL [VARIANT] [--live MS] [--signal N]
 * VARIANT: close (default), dup, dup2, dup3, dupfd, dupfd_cloexec, accept, other, multiplex, classes, sigmask, handler, signal */
int scenario_cancel(int argc, char **argv)
{
	struct session s;

	memset(&s, 0, sizeof s);
	if (argc < 4) {
		fprintf(stderr, "usage: cancel FAMILY fin|rst CALL [VARIANT] [--live MS] [--signal N]\n");
		return 2;
	}
	s.family = argv[1];
	s.rst = !strcmp(argv[2], "rst");
	s.call = argv[3];
	s.variant = argc > 4 && argv[4][0] != '-' ? argv[4] : "close";
	s.signo = SIGRTMAX - 1;
	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--live") && i + 1 < argc)
			s.expect_live_ms = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--signal") && i + 1 < argc)
			s.signo = atoi(argv[++i]);
	}
	s.server2 = -1;
	if (!strcmp(s.variant, "handler")) {
		struct sigaction sa = { .sa_handler = app_handler }, old;
		sigemptyset(&sa.sa_mask);
		sigaction(s.signo, &sa, &old);
		out("handler_old_default=%d", old.sa_handler == SIG_DFL);
	} else if (!strcmp(s.variant, "signal")) {
		out("handler_old_default=%d", signal(s.signo, app_handler) == SIG_DFL);
		s.variant = "handler";
	}
	if (!strncmp(s.call, "deep_", 5))
		probe_deep_load();
	s.listener = probe_listen(s.family, &s.ep);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.up) < 0)
		die("socketpair");
	if (pthread_create(&s.thread, NULL, serve, &s))
		die("pthread_create");
	s.client = probe_connect(&s.ep);
	if (!strcmp(s.variant, "other"))
		s.client2 = probe_connect(&s.ep);
	if (write(s.client, "x", 1) != 1)
		die("write request");
	while (!atomic_load(&s.ready))
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&s.tid), 5000) < 0)
		die("server thread never blocked");
	s.t_close = probe_now_ns();
	probe_close_peer(s.client, s.rst);
	if (s.expect_live_ms) {
		int64_t end = probe_now_ns() + (int64_t)s.expect_live_ms * 1000000;
		while (!atomic_load(&s.done) && probe_now_ns() < end) {
			struct timespec p = { 0, 1000000 };
			nanosleep(&p, NULL);
		}
		if (!atomic_load(&s.done) && write(s.up[1], "z", 1) != 1)	/* release it */
			die("release");
	} else if (!strcmp(s.variant, "accept")) {
		s.client2 = probe_connect(&s.ep);
	}
	pthread_join(s.thread, NULL);
	if (!strcmp(s.variant, "handler")) {
		struct sigaction cur;
		pthread_kill(pthread_self(), s.signo);
		sigaction(s.signo, NULL, &cur);
		out("handler_calls=%d handler_kept=%d", atomic_load(&handler_calls), cur.sa_handler == app_handler);
	}
	out("result call=%s first_ret=%d first_errno=%d latency_us=%lld%s", s.call, s.first_ret, s.first_errno,
	    (long long)(s.t_return - s.t_close) / 1000, s.extra);
	return 0;
}

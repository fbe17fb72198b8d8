/* Thread-pool servers, reduced to the calls they make (waitress, puma,
 * gunicorn gthread, Tomcat NIO): an event loop or poller, a worker, an
 * upstream the worker waits on. The main thread is the clients (and, where
 * the server's acceptor is not the loop, the acceptor: accept ends any
 * binding, so which thread accepts does not matter).
 *
 * pool waitress|puma|puma-late|gthread|tomcat FAMILY fin|rst
 *
 * puma-late: the reactor takes A back only after B's follow-up has run (it
 * was busy, or waiting for Ruby's lock): what ends the worker's binding to A
 * is its wake-up of the reactor, not the reactor's re-arm.
 *
 * Output: "pool ... live_ret=R live_errno=E" for a request whose unrelated,
 * idle keep-alive client closed (must succeed), "dead_ret=R dead_errno=E"
 * for a request whose own client closed (ECANCELED in cancel mode, 1 in
 * observe mode; absent where the server does not let the worker read the
 * request), "loop_errors=N" for failed waits of the event loop (always 0). */
#include "probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct pool {
	const char *family;
	int rst;
	struct endpoint ep;
	int listener, up[2], wake[2], ep_fd;
	int a, b, c, z;			/* server side */
	int late;			/* puma-late */
	_Atomic int step;		/* progress, see each scenario */
	_Atomic int quit;
	_Atomic pid_t worker_tid, loop_tid;
	_Atomic int worker_done;
	int live_ret, live_errno, dead_ret, dead_errno;
	_Atomic int loop_errors;
};

/* Waits (bounded) until p->step reaches n. */
static void step_wait(struct pool *p, int n)
{
	int64_t end = probe_now_ns() + 5000000000LL;
	while (atomic_load(&p->step) < n) {
		if (probe_now_ns() > end) {
			fprintf(stderr, "stuck before step %d (at %d)\n", n, atomic_load(&p->step));
			die("step");
		}
		sched_yield();
	}
}

static void step_to(struct pool *p, int n)
{
	atomic_store(&p->step, n);
}

/* The worker's upstream call (a database, a backend): blocks until the
 * main thread releases it, or the shim cancels it. */
static void upstream(struct pool *p, int *ret, int *err)
{
	char c;
	errno = 0;
	*ret = (int)recv(p->up[0], &c, 1, 0);
	*err = *ret < 0 ? errno : 0;
}

/* Main: lets the worker's upstream call finish. */
static void release(struct pool *p)
{
	if (write(p->up[1], "u", 1) != 1)
		die("release");
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Main, with the worker blocked upstream for a request whose client is
 * still there: an idle keep-alive client fd closes. Long enough for the shim
 * to have cancelled (it takes well under a millisecond), then released. */
static void unrelated_close(struct pool *p, int client)
{
	if (probe_wait_blocked(getpid(), atomic_load(&p->worker_tid), 5000) < 0)
		die("worker never blocked");
	probe_close_peer(client, p->rst);
	pause_ms(300);
	release(p);
}

/* Main, with the worker blocked upstream for client's request: the client
 * leaves. Cancel mode ends the call at once; observe mode lets it run, so
 * it is released after a while. */
static void own_close(struct pool *p, int client, int done_step)
{
	int64_t end;

	if (probe_wait_blocked(getpid(), atomic_load(&p->worker_tid), 5000) < 0)
		die("worker never blocked");
	probe_close_peer(client, p->rst);
	end = probe_now_ns() + 1000000000LL;
	while (atomic_load(&p->step) < done_step && probe_now_ns() < end)
		pause_ms(1);
	if (atomic_load(&p->step) < done_step)
		release(p);
}

static int client_says(const struct pool *p, int *fd)
{
	*fd = probe_connect(&p->ep);
	return write(*fd, "x", 1) == 1 ? 0 : -1;
}

static void read_one(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1)
		die("read request");
}

static void respond(int fd)
{
	if (write(fd, "r", 1) != 1)
		die("respond");
}

/* The loop's epoll set and its wake-up pipe (puma, gthread). */
static void make_loop_set(struct pool *p)
{
	p->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	if (pipe2(p->wake, O_CLOEXEC) < 0)
		die("pipe");
}

/* Readable fd into the loop's set, its descriptor as the event's data. */
static void loop_add(struct pool *p, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };
	epoll_ctl(p->ep_fd, EPOLL_CTL_ADD, fd, &ev);
}

/* One wait of an epoll event loop. A loop's wait must never fail: a failure
 * is counted (loop_errors) and the loop goes on. */
static int loop_wait(struct pool *p, struct epoll_event *got, int max)
{
	int n = epoll_wait(p->ep_fd, got, max, 5000);
	if (n < 0 && errno != EINTR)
		atomic_fetch_add(&p->loop_errors, 1);
	return n;
}

/* The loop thread th[0] and the worker th[1]. */
static void start_threads(struct pool *p, void *(*loop)(void *), void *(*worker)(void *), pthread_t th[2])
{
	pthread_create(&th[0], NULL, loop, p);
	pthread_create(&th[1], NULL, worker, p);
}

/* Tells the loop to quit (wake, len bytes to its wake-up descriptor, or
 * NULL when it polls) and joins the worker, then the loop. */
static void stop_threads(struct pool *p, pthread_t th[2], const void *wake, size_t len)
{
	atomic_store(&p->quit, 1);
	if (wake && write(p->wake[1], wake, len) != (ssize_t)len)
		die("quit");
	pthread_join(th[1], NULL);
	pthread_join(th[0], NULL);
}

/* A worker's start: its tid for the main thread's waits, then its turn. */
static void worker_waits(struct pool *p, int step)
{
	atomic_store(&p->worker_tid, probe_gettid());
	step_wait(p, step);
}

/* ---- waitress: a poll loop reads every request; a worker runs them ----- */

static void *waitress_loop(void *arg)
{
	struct pool *p = arg;
	struct pollfd fds[3];

	atomic_store(&p->loop_tid, probe_gettid());
	p->a = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	fds[0] = (struct pollfd){ p->listener, POLLIN, 0 };
	fds[1] = (struct pollfd){ p->a, POLLIN, 0 };
	if (poll(fds, 2, 5000) < 0)	/* A's request arrives */
		atomic_fetch_add(&p->loop_errors, 1);
	read_one(p->a);
	step_to(p, 1);	/* A's request is for the worker */
	if (poll(fds, 2, 5000) < 0)	/* B arrives */
		atomic_fetch_add(&p->loop_errors, 1);
	p->b = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	fds[2] = (struct pollfd){ p->b, POLLIN, 0 };
	if (poll(fds, 3, 5000) < 0)	/* B's request arrives */
		atomic_fetch_add(&p->loop_errors, 1);
	read_one(p->b);
	step_to(p, 3);	/* B's request is for the worker */
	while (!atomic_load(&p->quit))
		if (poll(fds, 3, 20) < 0 && errno != EINTR)
			atomic_fetch_add(&p->loop_errors, 1);
	return NULL;
}

static void *waitress_worker(void *arg)
{
	struct pool *p = arg;

	worker_waits(p, 1);
	respond(p->a);	/* A's response: the worker never read A */
	step_to(p, 2);
	step_wait(p, 3);
	upstream(p, &p->live_ret, &p->live_errno);	/* B's app */
	step_to(p, 4);
	return NULL;
}

static void waitress(struct pool *p)
{
	pthread_t th[2];
	int ca, cb;

	start_threads(p, waitress_loop, waitress_worker, th);
	if (client_says(p, &ca) < 0)
		die("client A");
	step_wait(p, 2);
	if (client_says(p, &cb) < 0)
		die("client B");
	step_wait(p, 3);
	unrelated_close(p, ca);	/* idle A leaves while B's request runs */
	step_wait(p, 4);
	stop_threads(p, th, NULL, 0);
	close(cb);
}

/* ---- puma: a reactor with a set made at boot; workers read new clients --- */

static void *puma_reactor(void *arg)
{
	struct pool *p = arg;
	struct epoll_event got[8];

	atomic_store(&p->loop_tid, probe_gettid());
	loop_add(p, p->wake[0]);
	if (!p->late)
		step_to(p, 1);
	while (!atomic_load(&p->quit)) {
		int n = loop_wait(p, got, 8);
		for (int i = 0; i < n; i++) {
			int fd = got[i].data.fd;
			char cmd;
			if (fd == p->wake[0]) {
				if (read(fd, &cmd, 1) != 1)
					continue;
				if (cmd == 'z') {	/* an idle kept-alive client, parked */
					loop_add(p, p->z);
					step_to(p, 1);
				}
				/* A connection handed over; late: A is not taken
				 * back before it leaves (the reactor was slow). */
				if ((cmd == 'a' && !p->late) || cmd == 'b')
					loop_add(p, cmd == 'a' ? p->a : p->b);
				if (cmd == 'a')
					step_to(p, 3);
			} else if (fd == p->b && atomic_load(&p->step) < 5) {
				read_one(p->b);	/* B's follow-up, read by the reactor */
				step_to(p, 5);
			} else {
				epoll_ctl(p->ep_fd, EPOLL_CTL_DEL, fd, NULL);	/* A left */
			}
		}
	}
	return NULL;
}

static void *puma_worker(void *arg)
{
	struct pool *p = arg;
	char cmd = 'a';

	worker_waits(p, 2);
	read_one(p->a);	/* A's first request, read by the worker */
	respond(p->a);
	if (write(p->wake[1], &cmd, 1) != 1)	/* keep-alive: A to the reactor */
		die("hand over");
	step_wait(p, 5);
	upstream(p, &p->live_ret, &p->live_errno);	/* B's follow-up runs here */
	respond(p->b);
	step_to(p, 6);
	step_wait(p, 7);
	read_one(p->c);	/* C's request, read by the worker: stoppable */
	step_to(p, 8);
	upstream(p, &p->dead_ret, &p->dead_errno);
	step_to(p, 9);
	return NULL;
}

static void puma(struct pool *p)
{
	pthread_t th[2];
	int ca, cb, cc;
	char cmd = 'b';

	make_loop_set(p);
	start_threads(p, puma_reactor, puma_worker, th);
	if (p->late) {
		/* The reactor already holds a kept-alive client (its set is an
		 * event loop's) when the worker hands A over. */
		int cz = probe_connect(&p->ep);
		p->z = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
		if (cz < 0 || p->z < 0 || write(p->wake[1], "z", 1) != 1)
			die("client Z");
	}
	step_wait(p, 1);
	if (client_says(p, &ca) < 0)
		die("client A");
	p->a = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	step_to(p, 2);
	step_wait(p, 3);	/* A parked in the reactor */
	cb = probe_connect(&p->ep);
	p->b = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	if (write(p->wake[1], &cmd, 1) != 1 || write(cb, "x", 1) != 1)
		die("client B");
	step_wait(p, 5);
	unrelated_close(p, ca);	/* idle A leaves while B's follow-up runs */
	step_wait(p, 6);
	if (client_says(p, &cc) < 0)
		die("client C");
	p->c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	step_to(p, 7);
	step_wait(p, 8);
	own_close(p, cc, 9);
	step_wait(p, 9);
	stop_threads(p, th, "q", 1);
	close(cb);
}

/* ---- gunicorn gthread: the main loop's set holds the listener; a worker
 * puts its kept-alive client in it ---------------------------------------- */

static void *gthread_main(void *arg)
{
	struct pool *p = arg;
	struct epoll_event got[8];

	atomic_store(&p->loop_tid, probe_gettid());
	loop_add(p, p->listener);
	loop_add(p, p->wake[0]);
	while (!atomic_load(&p->quit)) {
		int n = loop_wait(p, got, 8);
		for (int i = 0; i < n; i++) {
			int fd = got[i].data.fd;
			if (fd == p->listener) {
				int c = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
				if (atomic_load(&p->step) < 1) {
					p->a = c;
					step_to(p, 1);	/* to the worker */
				} else {
					p->c = c;
					step_to(p, 3);
				}
			} else if (fd != p->wake[0]) {
				epoll_ctl(p->ep_fd, EPOLL_CTL_DEL, fd, NULL);	/* A left */
			}
		}
	}
	return NULL;
}

static void *gthread_worker(void *arg)
{
	struct pool *p = arg;

	worker_waits(p, 1);
	read_one(p->a);
	respond(p->a);
	loop_add(p, p->a);	/* keep-alive, into the main set */
	step_to(p, 2);
	step_wait(p, 3);
	read_one(p->c);	/* the next request it reads */
	step_to(p, 4);
	upstream(p, &p->dead_ret, &p->dead_errno);
	step_to(p, 5);
	return NULL;
}

static void gthread(struct pool *p)
{
	pthread_t th[2];
	int ca, cc;

	make_loop_set(p);
	start_threads(p, gthread_main, gthread_worker, th);
	if (client_says(p, &ca) < 0)
		die("client A");
	step_wait(p, 2);
	if (client_says(p, &cc) < 0)
		die("client C");
	step_wait(p, 4);
	own_close(p, cc, 5);
	step_wait(p, 5);
	stop_threads(p, th, "q", 1);
	close(ca);
}

/* ---- Tomcat NIO: a poller whose selector is made at start-up ------------ */

static void *tomcat_poller(void *arg)
{
	struct pool *p = arg;
	struct epoll_event got[8];

	atomic_store(&p->loop_tid, probe_gettid());
	loop_add(p, p->wake[0]);	/* its eventfd */
	step_to(p, 1);
	while (!atomic_load(&p->quit)) {
		int n = loop_wait(p, got, 8);
		for (int i = 0; i < n; i++) {
			int fd = got[i].data.fd;
			uint64_t v;
			if (fd == p->wake[0]) {
				if (read(fd, &v, sizeof v) == sizeof v && atomic_load(&p->step) == 2) {
					loop_add(p, p->a);	/* registers the accepted socket */
					step_to(p, 3);
				}
			} else if (fd == p->a && atomic_load(&p->step) == 3) {
				/* readable: interest cleared, to a worker */
				struct epoll_event none = { .events = 0, .data.fd = p->a };
				epoll_ctl(p->ep_fd, EPOLL_CTL_MOD, p->a, &none);
				step_to(p, 4);
			} else if (fd == p->a) {
				epoll_ctl(p->ep_fd, EPOLL_CTL_DEL, p->a, NULL);	/* A reset */
			}
		}
	}
	return NULL;
}

static void *tomcat_worker(void *arg)
{
	struct pool *p = arg;

	worker_waits(p, 4);
	read_one(p->a);
	step_to(p, 5);
	upstream(p, &p->dead_ret, &p->dead_errno);
	step_to(p, 6);
	return NULL;
}

static void tomcat(struct pool *p)
{
	pthread_t th[2];
	int ca;
	uint64_t one = 1;

	p->ep_fd = epoll_create1(EPOLL_CLOEXEC);
	p->wake[0] = p->wake[1] = eventfd(0, EFD_CLOEXEC);
	start_threads(p, tomcat_poller, tomcat_worker, th);
	step_wait(p, 1);
	ca = probe_connect(&p->ep);	/* the process's first client */
	p->a = accept4(p->listener, NULL, NULL, SOCK_CLOEXEC);
	step_to(p, 2);
	if (write(p->wake[1], &one, sizeof one) != sizeof one)
		die("wake");
	step_wait(p, 3);
	if (probe_wait_blocked(getpid(), atomic_load(&p->loop_tid), 5000) < 0)
		die("poller never waited");
	if (write(ca, "x", 1) != 1)
		die("client A");
	step_wait(p, 5);
	own_close(p, ca, 6);
	step_wait(p, 6);
	pause_ms(100);	/* the poller waits on through A's departure */
	stop_threads(p, th, &one, sizeof one);
}

int scenario_pool(int argc, char **argv)
{
	struct pool p;
	const char *how = argc > 1 ? argv[1] : "waitress";

	memset(&p, 0, sizeof p);
	p.family = argc > 2 ? argv[2] : "v4";
	p.rst = argc > 3 && !strcmp(argv[3], "rst");
	p.live_ret = p.dead_ret = -2;
	p.listener = probe_listen(p.family, &p.ep);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p.up) < 0)
		die("socketpair");
	if (!strcmp(how, "waitress"))
		waitress(&p);
	else if (!strcmp(how, "puma") || (p.late = !strcmp(how, "puma-late")))
		puma(&p);
	else if (!strcmp(how, "gthread"))
		gthread(&p);
	else if (!strcmp(how, "tomcat"))
		tomcat(&p);
	else
		die("pool: unknown server");
	out("pool %s live_ret=%d live_errno=%d dead_ret=%d dead_errno=%d loop_errors=%d", how, p.live_ret,
	    p.live_errno, p.dead_ret, p.dead_errno, atomic_load(&p.loop_errors));
	return 0;
}

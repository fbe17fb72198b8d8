/* The binding rules of thread-pool servers, each written as the sequence of
 * calls the server makes (as seen under the shim: strace of waitress 2.1,
 * puma 5.6, gunicorn gthread, Tomcat 10.1 NIO, PostgreSQL 15), so that a
 * reader sees why each rule exists:
 *
 *  - reading a client's request binds a thread to it; writing does not;
 *  - a client put or re-armed in an event loop's set, or named in a
 *    multiplexing wait, is parked: every binding to it ends;
 *  - a thread is an event loop by what it waits on, never by an epoll_ctl
 *    on someone else's set;
 *  - a set that outlives its clients (created before them) is an event
 *    loop's even while it holds one client; a set made for a connection
 *    already accepted (PostgreSQL's backend) is not.
 *
 * One process plays every thread of the server: each "actor" has its own
 * record and its own thread-local flags, swapped into cs_tls when it acts.
 * The calls go through the same policy functions as the wrappers. */
#include <string.h>
#include <sys/socket.h>

#include "cancel/disconnect.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "unit.h"

#define FAKE_TID 0x41000000

struct actor {
	const char *name;
	struct cs_thread *rec;
	uint8_t loop;
	int wait_epfd;
};

static struct actor *current;
static int upstream[2];	/* a socket the app talks to (a database, a backend) */

static void setup(void)
{
	unit_fake_fds_closed();
	unit_record(0);	/* the shim's globals as at start */
	atomic_store(&cs_proc.serving, 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, upstream), 0);
	current = NULL;
}

TestSuite(pools, .init = setup);

static struct actor actor(const char *name, int n)
{
	struct actor a = { .name = name };
	a.rec = cs_thread_claim(FAKE_TID + n);
	cr_assert_not_null(a.rec);
	atomic_store(&a.rec->state, 0);
	return a;
}

/* The calls that follow are made by thread a. */
static void as(struct actor *a)
{
	if (current) {
		current->loop = cs_tls.loop;
		current->wait_epfd = cs_tls.wait_epfd;
	}
	cs_tls.rec = a->rec;
	cs_tls.loop = a->loop;
	cs_tls.wait_epfd = a->wait_epfd;
	current = a;
}

/* ---- the calls, as the wrappers make them ------------------------------- */

/* accept() on the listener returning fd: a new client connection. */
static uint32_t do_accept(int fd)
{
	uint32_t gen;

	cs_fd_accept_begin();
	gen = cs_process_new_gen();
	unit_set(fd, unit_client(gen));
	atomic_store(&cs_proc.serving, 1);
	return gen;
}

static void do_read(int fd)
{
	cs_io_enter(fd, 0);
}

static void do_write(int fd)
{
	cs_io_enter_write(fd, 0);
}

/* A blocking call to the upstream: the thread whose call a cancel would
 * fail, or NULL. */
static struct cs_thread *upstream_call(void)
{
	return cs_io_enter(upstream[0], 0);
}

/* epoll_wait(epfd, ..., -1) (wrap_wait.c): the thread whose wait may be
 * failed, or NULL. */
static struct cs_thread *do_epoll_wait(int epfd)
{
	struct cs_wait_scan w = { 0 };

	cs_tls.wait_epfd = epfd + 1;
	if (!cs_wait_scanned())
		return NULL;
	cs_wait_scan_epoll(&w, epfd);
	return cs_wait_decide(cs_tls.rec, &w, 0);
}

/* poll(fds, n, -1) (wrap_wait.c). */
static struct cs_thread *do_poll(const int *fds, int n)
{
	struct cs_wait_scan w = { 0 };
	struct cs_thread *t;

	if (!cs_wait_scanned())
		return NULL;
	for (int i = 0; i < n; i++)
		cs_wait_scan_fd(&w, fds[i]);
	t = cs_wait_decide(cs_tls.rec, &w, 0);
	if (cs_tls.loop)
		for (int i = 0; i < n; i++)
			cs_conn_park(fds[i]);
	return t;
}

/* The peer of connection gen at fd closes. */
static void client_leaves(uint32_t gen, int fd)
{
	cs_disconnect(gen, fd, 0);
}

static int cancelled(const struct actor *a)
{
	return !!(unit_state(a->rec) & CS_ST_CANCEL);
}

static uint32_t bound_to(const struct actor *a)
{
	return (uint32_t)unit_state(a->rec);
}

/* ---- waitress ------------------------------------------------------------ */

/* waitress: the event loop (asyncore over poll) accepts and reads every
 * request; a worker runs the app and writes the response, but never reads
 * a client. A, kept alive and idle, closes while the same worker runs B's
 * request: B must not fail. (Before: the worker's write bound it to A.) */
Test(pools, waitress_worker_writing_a_response_is_not_bound)
{
	struct actor loop = actor("loop", 1), worker = actor("worker", 2);
	int fds[3] = { FD_LISTEN, FD_A, FD_B };
	uint32_t a;

	unit_set(FD_LISTEN, unit_listener());
	as(&loop);
	a = do_accept(FD_A);
	cr_assert_null(do_poll(fds, 2), "the loop's poll over the listener and A was made cancellable");
	cr_assert(cs_tls.loop, "a poll over a listener and a client is an event loop's");
	do_read(FD_A);	/* the request */
	as(&worker);
	cr_assert_null(upstream_call(), "a worker that never read a request was cancellable");
	do_write(FD_A);	/* A's response */
	cr_assert_eq(bound_to(&worker), 0, "writing A's response bound the worker to A");

	as(&loop);
	do_accept(FD_B);
	do_read(FD_B);	/* B's request, read by the loop */
	as(&worker);
	upstream_call();	/* B's app calls its upstream... */
	client_leaves(a, FD_A);	/* ...while idle A closes */
	cr_assert_not(cancelled(&worker), "A's close cancelled the worker running B's request");
	cr_assert_not(cancelled(&loop), "A's close cancelled the event loop");
	cr_assert_null(upstream_call());
}

/* ---- puma ----------------------------------------------------------------- */

/* puma: the reactor's set is made at boot; a worker reads a new client's
 * request itself and answers it; the kept-alive client goes back to the
 * reactor (EPOLL_CTL_ADD by the reactor), which reads the follow-up. The
 * worker then runs B: A closing must not cancel it. */
Test(pools, puma_handing_a_client_to_the_reactor_ends_the_worker_s_binding)
{
	struct actor reactor = actor("reactor", 1), worker = actor("worker", 2), server = actor("server", 3);
	uint32_t a, b;

	as(&reactor);
	cs_fd_epoll_created(FD_EP);
	do_epoll_wait(FD_EP);	/* nothing accepted yet */
	as(&server);
	a = do_accept(FD_A);
	as(&worker);
	do_read(FD_A);
	cr_assert_eq(bound_to(&worker), a, "the worker reading A's request is not bound to it");
	cr_assert_eq(upstream_call(), worker.rec, "A's request could not be stopped");
	do_write(FD_A);
	cr_assert_eq(bound_to(&worker), a, "writing its own client's response unbound the worker");

	as(&reactor);
	cs_fd_epoll_added(FD_EP, FD_A);	/* A parked for its follow-up */
	cr_assert_eq(bound_to(&worker), 0, "A parked in the reactor, the worker still bound to it");
	cr_assert(cs_tls.loop, "the reactor adding A to the set it waits on is not a loop");
	cr_assert_null(do_epoll_wait(FD_EP), "the reactor's wait was made cancellable");
	cr_assert(cs_tls.loop, "the reactor waiting on its set is not an event loop");
	cr_assert_eq(bound_to(&reactor), 0, "the reactor was bound to the single client in its set");
	do_read(FD_A);	/* the follow-up, read by the reactor */

	as(&server);
	b = do_accept(FD_B);
	as(&worker);
	upstream_call();	/* runs A's follow-up: nothing binds it */
	do_write(FD_A);
	do_read(FD_B);	/* B's request, read by the worker */
	cr_assert_eq(bound_to(&worker), b);
	client_leaves(a, FD_A);
	cr_assert_not(cancelled(&worker), "A's close cancelled the worker serving B");
	cr_assert_not(cancelled(&reactor), "A's close cancelled the reactor");
	client_leaves(b, FD_B);
	cr_assert(cancelled(&worker), "B, read by the worker, left and the worker ran on");
}

/* The re-arm (EPOLL_CTL_MOD) of a connection already in the reactor's set
 * parks it the same way. */
Test(pools, rearming_a_client_in_a_loop_s_set_parks_it)
{
	struct actor reactor = actor("reactor", 1), worker = actor("worker", 2);
	uint32_t a;

	as(&reactor);
	cs_fd_epoll_created(FD_EP);
	a = do_accept(FD_A);
	cs_fd_epoll_added(FD_EP, FD_A);
	do_epoll_wait(FD_EP);
	as(&worker);
	do_read(FD_A);
	cr_assert_eq(bound_to(&worker), a);
	as(&reactor);
	cs_fd_epoll_rearmed(FD_EP, FD_A);
	cr_assert_eq(bound_to(&worker), 0, "A re-armed in the reactor, the worker still bound to it");
	client_leaves(a, FD_A);
	cr_assert_not(cancelled(&worker));
}

/* ---- gunicorn gthread ------------------------------------------------------ */

/* gunicorn -k gthread: the main thread waits on a set holding the listener;
 * a worker reads and answers A, then registers the kept-alive A in the main
 * thread's set. Registering is not waiting: the worker is no event loop,
 * and the next request it reads (C) is stopped when C leaves. (Before: the
 * epoll_ctl made the worker an event loop, never cancelled again.) */
Test(pools, gthread_worker_registering_in_the_main_set_stays_cancellable)
{
	struct actor main_thread = actor("main", 1), worker = actor("worker", 2);
	uint32_t a, c;

	unit_set(FD_LISTEN, unit_listener());
	as(&main_thread);
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	do_epoll_wait(FD_EP);
	a = do_accept(FD_A);
	as(&worker);
	do_read(FD_A);
	cr_assert_eq(upstream_call(), worker.rec);
	do_write(FD_A);
	cs_fd_epoll_added(FD_EP, FD_A);	/* keep-alive: into the main thread's set */
	cr_assert_not(cs_tls.loop, "registering A in the main thread's set made the worker an event loop");
	cr_assert_eq(bound_to(&worker), 0, "A parked, the worker still bound to it");

	as(&main_thread);
	cr_assert_null(do_epoll_wait(FD_EP));
	cr_assert(cs_tls.loop, "the main thread waiting on the listener and A is not a loop");
	c = do_accept(FD_C);
	as(&worker);
	do_read(FD_C);
	cr_assert_eq(bound_to(&worker), c);
	cr_assert_eq(upstream_call(), worker.rec, "C's upstream call cannot be stopped");
	client_leaves(a, FD_A);
	cr_assert_not(cancelled(&worker), "idle A's close cancelled C's request");
	client_leaves(c, FD_C);
	cr_assert(cancelled(&worker), "C left and its request ran on");
}

/* ---- Tomcat NIO -------------------------------------------------------------- */

/* Tomcat: the poller's selector is made at start-up with a wake-up eventfd;
 * the acceptor accepts the process's first client, the poller adds it and
 * waits on a set holding that one client. The poller is an event loop,
 * never bound nor cancelled; the worker that reads the request is
 * cancelled when the client leaves. (Before: the poller was bound to the
 * single client and its epoll_wait failed in a tight loop.) */
static void tomcat(int earlier_clients)
{
	struct actor poller = actor("poller", 1), acceptor = actor("acceptor", 2), worker = actor("worker", 3);
	uint32_t a;

	/* The first client of a process must not be special: with earlier
	 * connections served and closed before the selector was made, the
	 * same holds. */
	as(&acceptor);
	for (int i = 0; i < earlier_clients; i++) {
		do_accept(FD_D);
		cs_fd_closing(FD_D, cs_fd_get(FD_D));
	}
	as(&poller);
	cs_fd_epoll_created(FD_EP);
	unit_set(FD_EP2, CS_OTHER_MAKE(CS_FDCLASS_WAITOBJ));	/* its eventfd */
	cs_fd_epoll_added(FD_EP, FD_EP2);
	cr_assert_null(do_epoll_wait(FD_EP));
	as(&acceptor);
	a = do_accept(FD_A);
	as(&poller);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert_null(do_epoll_wait(FD_EP), "the poller's wait on its selector was made cancellable");
	cr_assert(cs_tls.loop, "the poller is not recognised as an event loop");
	cr_assert_eq(bound_to(&poller), 0, "the poller was bound to the single client of its selector");
	as(&worker);
	do_read(FD_A);
	cr_assert_eq(upstream_call(), worker.rec);
	client_leaves(a, FD_A);
	cr_assert(cancelled(&worker), "the worker serving A ran on after A left");
	cr_assert_not(cancelled(&poller), "the poller was cancelled");
	as(&poller);
	cr_assert_null(do_epoll_wait(FD_EP), "the poller's next wait may fail");
}

Test(pools, tomcat_poller_is_never_cancelled_by_the_first_client)
{
	tomcat(0);
}

Test(pools, tomcat_poller_is_never_cancelled_by_a_later_client)
{
	tomcat(3);
}

/* ---- PostgreSQL ----------------------------------------------------------------- */

/* PostgreSQL: the postmaster accepts, the backend (a fork child) makes its
 * wait set after that, holding its latch pipe, the postmaster's pipe and
 * its client: a set made for a connection already accepted is the
 * backend's own, and its waits (pg_sleep) are cancelled when the client
 * leaves. */
Test(pools, postgresql_backend_set_made_after_accept_is_its_own)
{
	struct actor postmaster = actor("postmaster", 1), backend = actor("backend", 2);
	uint32_t a;

	unit_set(FD_LISTEN, unit_listener());
	as(&postmaster);
	a = do_accept(FD_A);
	as(&backend);
	cs_fd_epoll_created(FD_EP);
	unit_set(FD_B, CS_OTHER_MAKE(CS_FDCLASS_PIPE));	/* latch self-pipe */
	unit_set(FD_C, CS_OTHER_MAKE(CS_FDCLASS_PIPE));	/* postmaster death pipe */
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP, FD_C);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert_eq(bound_to(&backend), 0);
	cr_assert_null(do_epoll_wait(FD_EP), "waiting on its own client must pass through");
	cr_assert_not(cs_tls.loop, "the backend was taken for an event loop");
	cr_assert_eq(bound_to(&backend), a, "waiting on its client alone did not bind the backend");
	do_read(FD_A);	/* the query */
	cs_fd_epoll_created(FD_EP2);	/* pg_sleep: WaitLatch on latch + postmaster */
	cs_fd_epoll_added(FD_EP2, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_C);
	cr_assert_eq(do_epoll_wait(FD_EP2), backend.rec, "pg_sleep's wait cannot be stopped");
	cs_fd_epoll_rearmed(FD_EP, FD_A);	/* ModifyWaitEvent on its own set */
	cr_assert_eq(bound_to(&backend), a, "re-arming its own set parked the backend's client");
	client_leaves(a, FD_A);
	cr_assert(cancelled(&backend), "the backend ran on after its client left");
}

/* ---- libevent loops: memcached, nginx --------------------------------------------- */

/* memcached: each worker thread waits on its own libevent set (made at
 * start-up, with its notify pipe) before the process accepts anything; the
 * dispatcher thread accepts and notifies; the worker adds the client to its
 * set and reads it. The worker is an event loop from its first client on:
 * that client leaving flags nothing. (Before: a worker's first client made
 * it look like a one-request server, and could flag it.) */
Test(pools, memcached_worker_is_a_loop_from_its_first_client)
{
	struct actor dispatcher = actor("dispatcher", 1), worker = actor("worker", 2);
	uint32_t a;

	unit_set(FD_LISTEN, unit_listener());
	as(&worker);
	cs_fd_epoll_created(FD_EP);
	unit_set(FD_B, CS_OTHER_MAKE(CS_FDCLASS_PIPE));	/* notify pipe */
	cs_fd_epoll_added(FD_EP, FD_B);
	cr_assert_null(do_epoll_wait(FD_EP));	/* before any accept */
	as(&dispatcher);
	a = do_accept(FD_A);
	as(&worker);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert(cs_tls.loop, "adding its first client to the set it waits on did not make the worker a loop");
	do_read(FD_A);
	cr_assert_eq(bound_to(&worker), 0, "the event loop was bound to its first client");
	client_leaves(a, FD_A);
	cr_assert_not(cancelled(&worker));
}

/* nginx: the worker waits on its set (listener) before the first accept,
 * accepts, adds the client to that set and reads it: an event loop before
 * its first read. */
Test(pools, nginx_worker_is_a_loop_before_its_first_read)
{
	struct actor loop = actor("nginx", 1);

	unit_set(FD_LISTEN, unit_listener());
	as(&loop);
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	do_epoll_wait(FD_EP);
	do_accept(FD_A);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert(cs_tls.loop);
	do_read(FD_A);
	cr_assert_eq(bound_to(&loop), 0);
}

/* ---- rules shared by all ------------------------------------------------------- */

/* I/O on another client than the bound one (a write: a response for a
 * request someone else read) ends the binding, and its cancel with it. */
Test(pools, writing_to_another_client_ends_the_binding)
{
	struct actor worker = actor("worker", 1);
	uint32_t a;

	as(&worker);
	a = do_accept(FD_A);
	do_accept(FD_B);
	do_read(FD_A);
	cr_assert_eq(bound_to(&worker), a);
	do_write(FD_B);
	cr_assert_eq(bound_to(&worker), 0, "a write to B kept the binding to A");
	client_leaves(a, FD_A);
	cr_assert_not(cancelled(&worker));
	cr_assert_null(upstream_call());
}

/* Parking ends the bindings of every thread (not only the caller's), and
 * clears a cancel flag set before it: the request on that connection was
 * answered. A binding made after the parking stands. */
Test(pools, parking_ends_every_binding_even_a_cancelled_one)
{
	struct actor w1 = actor("w1", 1), w2 = actor("w2", 2), loop = actor("loop", 3);
	uint32_t a;

	as(&loop);
	cs_fd_epoll_created(FD_EP);
	a = do_accept(FD_A);
	as(&w1);
	do_read(FD_A);
	as(&w2);
	do_read(FD_A);
	atomic_fetch_or(&w2.rec->state, CS_ST_CANCEL | CS_ST_INCALL);
	cr_assert(cs_fd_get(FD_A) & CS_CLIENT_BOUND);
	as(&loop);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert_eq(unit_state(w1.rec), 0);
	cr_assert_eq(unit_state(w2.rec), CS_ST_INCALL, "parking lost INCALL or kept the binding");
	cr_assert_not(cs_fd_get(FD_A) & CS_CLIENT_BOUND);
	as(&w1);
	do_read(FD_A);	/* the loop dispatched it again: a new binding */
	cr_assert_eq(bound_to(&w1), a);
	cr_assert(cs_fd_get(FD_A) & CS_CLIENT_BOUND);
}

/* A client nobody ever bound to is parked with one load: no walk. */
Test(pools, parking_an_unbound_client_changes_nothing)
{
	struct actor w = actor("w", 1);
	uint32_t a;

	as(&w);
	a = do_accept(FD_A);
	atomic_store(&w.rec->state, a);	/* bound without the bit: not walked */
	cs_conn_park(FD_A);
	cr_assert_eq(bound_to(&w), a);
}

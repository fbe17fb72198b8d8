/* Which client a thread serves (cs_io_enter, cs_wait_decide), which calls of
 * a bound thread go through the cancellable path, and how the descriptor
 * life cycle (close, dup, close_range, new descriptors, accept) changes the
 * table and the binding. The calling thread's record is set by hand; no
 * watcher and no signal are involved. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "policy/accept.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "unit.h"

static void setup(void)
{
	unit_fake_fds_closed();
}

TestSuite(bind, .init = setup);
TestSuite(calls, .init = setup);
TestSuite(wait_decide, .init = setup);
TestSuite(fd_life, .init = setup);

/* ---- binding through I/O ------------------------------------------------- */

Test(bind, io_on_a_client_binds_the_thread)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5));

	cr_assert_null(cs_io_enter(FD_A, 0), "I/O on a client goes straight to libc");
	cr_assert_eq(unit_state(t), 5);
	cr_assert_eq(t->bound_fd, FD_A);
}

Test(bind, io_elsewhere_by_an_unbound_thread_binds_nothing)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, CS_OTHER_MAKE(CS_FDCLASS_NET));
	cr_assert_null(cs_io_enter(FD_A, 0));
	cr_assert_null(cs_io_enter(FD_B, 0));
	cr_assert_null(cs_io_enter(-1, 0));
	cr_assert_eq(unit_state(t), 0);
}

Test(bind, own_client_keeps_its_natural_result_even_when_cancelled)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	unit_set(FD_A, unit_client(5) | CS_CLIENT_DEAD);
	cr_assert_null(cs_io_enter(FD_A, 0), "the dead client's own socket was failed");
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
}

Test(bind, io_on_another_client_moves_the_binding_and_drops_the_cancel)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	unit_set(FD_A, unit_client(5) | CS_CLIENT_DEAD);
	unit_set(FD_B, unit_client(6));
	cr_assert_null(cs_io_enter(FD_B, 0));
	cr_assert_eq(unit_state(t), 6);
	cr_assert_eq(t->bound_fd, FD_B);
}

/* The wrappers' path for a read of another client (wrap/wrap_io.c): libc
 * issues it, then its result decides. */
static void read_of(int fd, long result)
{
	char c;
	cr_assert_eq(cs_io_route(fd, 0, SYS_read, fd, (long)&c, 1, 0, 0, 0), CS_PASS_READ);
	cs_io_read_done(fd, result);
}

Test(bind, a_read_that_brings_bytes_binds)
{
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	read_of(FD_B, 1);
	cr_assert_eq(unit_state(t), 6);
	cr_assert_eq(t->bound_fd, FD_B);
}

/* puma's worker looks at a new connection with a read that finds nothing
 * (or the end of file), hands it to its reactor, and runs a request the
 * reactor read for another client: it must be bound to neither. */
Test(bind, a_read_that_finds_nothing_binds_nothing_and_ends_the_binding)
{
	static const long nothing[] = { -1 /* EAGAIN, ECONNRESET... */, 0 /* end of file */ };
	for (unsigned i = 0; i < sizeof nothing / sizeof nothing[0]; i++) {
		struct cs_thread *t = unit_thread(5);
		unit_set(FD_A, unit_client(5));
		unit_set(FD_B, unit_client(6));
		read_of(FD_B, nothing[i]);
		cr_assert_eq(unit_state(t), 0, "result %ld", nothing[i]);
	}
}

Test(bind, bytes_from_a_connection_that_took_the_number_meanwhile_bind_nothing)
{
	struct cs_thread *t = unit_thread(0);
	char c;
	unit_set(FD_B, unit_client(6));
	cr_assert_eq(cs_io_route(FD_B, 0, SYS_read, FD_B, (long)&c, 1, 0, 0, 0), CS_PASS_READ);
	/* Another thread closed FD_B and accepted a new client at its number. */
	unit_set(FD_B, unit_client(7));
	cs_io_read_done(FD_B, 1);
	cr_assert_eq(unit_state(t), 0);
}

Test(bind, a_read_keeps_errno)
{
	unit_thread(0);
	unit_set(FD_B, unit_client(6));
	errno = EAGAIN;
	read_of(FD_B, -1);
	cr_assert_eq(errno, EAGAIN);
}

Test(bind, binding_to_a_dead_client_cancels_at_once)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5) | CS_CLIENT_DEAD);
	cs_io_enter(FD_A, 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
}

Test(bind, an_event_loop_thread_is_never_bound)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5));
	cs_tls.loop = 1;
	cs_io_enter(FD_A, 0);
	cr_assert_eq(unit_state(t), 0);
}

Test(bind, an_inactive_shim_binds_nothing)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5));
	atomic_store(&cs_proc.active, 0);
	cs_io_enter(FD_A, 0);
	cr_assert_eq(unit_state(t), 0);
	atomic_store(&cs_proc.active, 1);
	cs_tls.busy = 1;	/* inside the shim's own start-up */
	cs_io_enter(FD_A, 0);
	cr_assert_eq(unit_state(t), 0);
}

Test(bind, accept_ends_the_binding)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	cs_fd_accept_begin();
	cr_assert_eq(unit_state(t), 0);
}

/* ---- which calls of a bound thread can be failed -------------------------- */

Test(calls, a_bound_thread_s_socket_calls_are_cancellable)
{
	struct cs_thread *t = unit_thread(5);
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(cs_io_enter(sv[0], 0), t);
	/* classified once, and remembered */
	cr_assert_eq(cs_fd_get(sv[0]), CS_OTHER_MAKE(CS_FDCLASS_NET));
	cr_assert_eq(cs_io_enter(sv[0], 0), t);
	cr_assert_null(cs_io_enter(sv[0], 1), "MSG_DONTWAIT is never failed");
	cr_assert_eq(unit_state(t), 5, "a call elsewhere changed the binding");
	close(sv[0]);
	close(sv[1]);
}

Test(calls, stdio_is_never_failed)
{
	unit_thread(5);
	cs_proc.cfg.calls = CS_CLASS_ALL;	/* whatever 0, 1 and 2 are */
	cr_assert_null(cs_io_enter(0, 0));
	cr_assert_null(cs_io_enter(1, 0));
	cr_assert_null(cs_io_enter(2, 0));
}

Test(calls, pipes_and_files_only_when_their_class_is_on)
{
	struct cs_thread *t = unit_thread(5);
	int p[2];
	FILE *f = tmpfile();

	cr_assert_not_null(f);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	cr_assert_null(cs_io_enter(p[0], 0), "pipes are failed by default");
	cr_assert_null(cs_io_enter(fileno(f), 0), "files are failed by default");
	cr_assert_eq(cs_fd_get(p[0]), CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	cr_assert_eq(cs_fd_get(fileno(f)), CS_OTHER_MAKE(CS_FDCLASS_FILE));

	cs_proc.cfg.calls = CS_CLASS_ALL;
	cr_assert_eq(cs_io_enter(p[0], 0), t);
	cr_assert_eq(cs_io_enter(fileno(f), 0), t);

	cs_proc.cfg.calls = CS_CLASS_WAIT;
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_null(cs_io_enter(sv[0], 0), "sockets failed with CANCELSHIM_CALLS=wait");
	close(sv[0]);
	close(sv[1]);
	close(p[0]);
	close(p[1]);
	fclose(f);
}

Test(calls, wait_objects_belong_to_the_wait_class)
{
	struct cs_thread *t = unit_thread(5);
	int efd = eventfd(0, EFD_CLOEXEC);

	cr_assert_geq(efd, 0);
	cr_assert_eq(cs_io_enter(efd, 0), t);
	cr_assert_eq(CS_OTHER_CLASS(cs_fd_get(efd)), CS_FDCLASS_WAITOBJ);
	cs_proc.cfg.calls = CS_CLASS_NET;
	cr_assert_null(cs_io_enter(efd, 0));
	close(efd);
}

/* A pool worker hands its connection back to an event loop by waking it
 * (puma's reactor, Tomcat's poller: an eventfd or pipe in the loop's set;
 * waitress: a pipe in the loop's poll), then runs its next request before the
 * loop parks the connection: the wake-up ends the worker's binding. */
Test(calls, waking_an_event_loop_ends_the_binding)
{
	int efd = eventfd(0, EFD_CLOEXEC), p[2];

	cr_assert_geq(efd, 0);
	cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
	unit_set(FD_LISTEN, unit_listener());
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, efd);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);	/* an acceptor's set: a loop's */
	unit_set(FD_A, unit_client(5));

	struct cs_thread *t = unit_thread(5);
	cs_io_enter_write(efd, 0);
	cr_assert_eq(unit_state(t), 0, "still bound after waking the loop (epoll)");

	/* A pipe: the loop waits on its read end, the worker writes to the
	 * other (puma's nio4r selector). */
	cs_fd_pair_created(p[0], p[1], CS_FDCLASS_PIPE);
	cs_fd_epoll_added(FD_EP, p[0]);
	t = unit_thread(5);
	cs_io_enter_write(p[1], 0);
	cr_assert_eq(unit_state(t), 0, "still bound after waking the loop (pipe)");

	/* A loop that polls, woken through a socket pair (asyncio's self-pipe). */
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cs_fd_pair_created(sv[0], sv[1], CS_FDCLASS_NET);
	cs_fd_loop_waits_on(sv[0]);
	t = unit_thread(5);
	cs_io_enter_write(sv[1], 0);
	cr_assert_eq(unit_state(t), 0, "still bound after waking the loop (poll, socket pair)");

	/* A socket a loop waits on is no wake-up when written to itself (an
	 * upstream connection): only its pair's other end is. */
	t = unit_thread(5);
	cs_io_enter_write(sv[0], 0);
	cr_assert_eq(unit_state(t), 5);
	close(efd);
	close(p[0]);
	close(p[1]);
	close(sv[0]);
	close(sv[1]);
}

/* A thread per connection may wait on its own eventfd beside its client
 * (a set that is no loop's): writing to it is part of its request. */
Test(calls, waking_a_set_that_is_no_loop_keeps_the_binding)
{
	int efd = eventfd(0, EFD_CLOEXEC);

	cr_assert_geq(efd, 0);
	/* Its client accepted before the set was made: a set for this
	 * connection, not a dispatcher's (fdlife.c). */
	uint32_t gen = cs_process_new_gen();
	unit_set(FD_A, unit_client(gen));
	atomic_store(&cs_proc.serving, 1);
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, efd);
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert_not(CS_EPOLL_IS_LOOPS(cs_fd_get(FD_EP)));
	struct cs_thread *t = unit_thread(gen);
	cr_assert_eq(cs_io_enter_write(efd, 0), t, "the write is cancellable");
	cr_assert_eq(unit_state(t), gen);
	close(efd);
}

Test(calls, a_listening_socket_is_classified_as_a_listener)
{
	struct cs_thread *t = unit_thread(5);
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	cr_assert_geq(l, 0);
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(l, 4), 0);
	cr_assert_null(cs_io_enter(l, 0));
	cr_assert_eq(CS_SLOT_KIND(cs_fd_get(l)), CS_KIND_LISTENER);
	(void)t;
	close(l);
}

/* ---- waits ----------------------------------------------------------------- */

Test(wait_decide, several_clients_make_an_event_loop)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	struct cs_wait_scan w = { .clients = 2, .client_gen = 5, .client_fd = FD_A };
	uint64_t loops = atomic_load(&cs_stats[CS_STAT_LOOP_THREADS]);

	cr_assert_null(cs_wait_decide(t, &w, 0), "an event loop's wait was made cancellable");
	cr_assert_eq(unit_state(t), 0, "the loop kept its binding");
	cr_assert_eq(cs_tls.loop, 1);
	cr_assert_eq(atomic_load(&cs_stats[CS_STAT_LOOP_THREADS]), loops + 1);

	/* ...and is never bound again */
	unit_set(FD_B, unit_client(6));
	cs_io_enter(FD_B, 0);
	cr_assert_eq(unit_state(t), 0);
	cr_assert_null(cs_sleep_enter(0));
}

Test(wait_decide, a_listener_and_a_client_make_an_event_loop)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan w = { .clients = 1, .client_gen = 5, .client_fd = FD_A, .listener = 1 };
	unit_set(FD_A, unit_client(5));
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_eq(unit_state(t), 0);
	cr_assert_eq(cs_tls.loop, 1);
}

Test(wait_decide, a_listener_alone_unbinds_without_making_a_loop)
{
	/* An acceptor waiting for connections is done with any request, but it
	 * may hand the next one to itself: it stays bindable. */
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	struct cs_wait_scan w = { .listener = 1 };
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_eq(unit_state(t), 0);
	cr_assert_eq(cs_tls.loop, 0);
	unit_set(FD_B, unit_client(6));
	cs_io_enter(FD_B, 0);
	cr_assert_eq(unit_state(t), 6, "an acceptor could not bind afterwards");
}

Test(wait_decide, a_wait_without_clients_is_cancellable)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan none = { 0 };

	cr_assert_eq(cs_wait_decide(t, &none, 0), t);
	cr_assert_eq(unit_state(t), 5, "the binding changed");
	cr_assert_eq(cs_tls.loop, 0);
	cr_assert_eq(cs_sleep_enter(0), t);
}

Test(wait_decide, zero_timeouts_are_never_cancelled)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan none = { 0 };
	cr_assert_null(cs_wait_decide(t, &none, 1));
	cr_assert_null(cs_sleep_enter(1));
	cr_assert_eq(unit_state(t), 5);
}

Test(wait_decide, waits_are_not_failed_without_the_wait_class)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan none = { 0 };
	cs_proc.cfg.calls = CS_CLASS_NET | CS_CLASS_FILE | CS_CLASS_PIPE;
	cr_assert_null(cs_wait_decide(t, &none, 0));
	cr_assert_null(cs_sleep_enter(0));
	cr_assert_eq(unit_state(t), 5);
}

Test(wait_decide, an_unbound_thread_s_waits_are_never_cancelled)
{
	struct cs_thread *t = unit_thread(0);
	struct cs_wait_scan none = { 0 };
	cr_assert_null(cs_wait_decide(t, &none, 0));
	cr_assert_null(cs_sleep_enter(0));
	cs_tls.rec = NULL;	/* a thread that never bound has no record */
	cr_assert_null(cs_wait_decide(NULL, &none, 0));
	cr_assert_null(cs_sleep_enter(0));
	cr_assert_eq(unit_state(t), 0);
	cr_assert_eq(cs_tls.loop, 0);
}

Test(wait_decide, waits_are_scanned_once_serving_until_the_thread_is_a_loop)
{
	unit_thread(0);
	atomic_store(&cs_proc.serving, 0);
	cr_assert_not(cs_wait_scanned(), "a program that never accepted pays for scans");
	atomic_store(&cs_proc.serving, 1);
	cr_assert(cs_wait_scanned());
	cs_tls.loop = 1;
	cr_assert_not(cs_wait_scanned(), "an event loop keeps paying for scans");
}

Test(wait_decide, a_thread_without_a_record_is_recognised_as_a_loop)
{
	/* An event loop's first wait comes before its first read: no record. */
	struct cs_wait_scan two = { .clients = 2, .client_gen = 5, .client_fd = FD_A };
	struct cs_wait_scan listener = { .listener = 1 };
	unit_thread(0);
	cs_tls.rec = NULL;
	cr_assert_null(cs_wait_decide(NULL, &listener, 0));
	cr_assert_eq(cs_tls.loop, 0, "an acceptor taken for a loop");
	cr_assert_null(cs_wait_decide(NULL, &two, 0));
	cr_assert_eq(cs_tls.loop, 1);
	cr_assert_null(cs_tls.rec, "a record was made for a loop");
}

Test(wait_decide, waiting_on_the_own_client_passes_through)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	struct cs_wait_scan w = { .clients = 1, .client_gen = 5, .client_fd = FD_A };
	unit_set(FD_A, unit_client(5) | CS_CLIENT_DEAD);
	cr_assert_null(cs_wait_decide(t, &w, 0), "a wait on the client itself ends with its own events");
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
	cr_assert_eq(cs_tls.loop, 0);
}

Test(wait_decide, waiting_on_another_single_client_binds_to_it)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	struct cs_wait_scan w = { .clients = 1, .client_gen = 6, .client_fd = FD_B };
	unit_set(FD_B, unit_client(6));
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_eq(unit_state(t), 6);
	cr_assert_eq(t->bound_fd, FD_B);
	cr_assert_eq(cs_tls.loop, 0);

	/* ...and a dead one cancels the thread at once */
	unit_set(FD_C, unit_client(7) | CS_CLIENT_DEAD);
	w = (struct cs_wait_scan){ .clients = 1, .client_gen = 7, .client_fd = FD_C };
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_eq(unit_state(t), 7 | CS_ST_CANCEL);
}

/* A zero-timeout look at one client (puma's IO.select(..., 0) on a new
 * connection before its reactor takes it) is not serving it. */
Test(wait_decide, a_zero_timeout_look_at_another_client_binds_nothing)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan w = { .clients = 1, .client_gen = 6, .client_fd = FD_B };
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cr_assert_null(cs_wait_decide(t, &w, 1));
	cr_assert_eq(unit_state(t), 0, "still bound after looking for work elsewhere");
	cr_assert_null(cs_wait_decide(t, &w, 1));
	cr_assert_eq(unit_state(t), 0, "bound by a look");
	cr_assert_eq(cs_tls.loop, 0);
}

Test(wait_decide, an_inactive_shim_decides_nothing)
{
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan w = { .clients = 2 }, none = { 0 };
	atomic_store(&cs_proc.active, 0);
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_null(cs_wait_decide(t, &none, 0));
	cr_assert_eq(unit_state(t), 5);
	cr_assert_eq(cs_tls.loop, 0);
}

Test(wait_decide, scanned_epoll_loop_end_to_end)
{
	/* The path a wrapper takes for epoll_wait: scan, then decide. */
	struct cs_thread *t = unit_thread(5);
	struct cs_wait_scan w = { 0 };
	unit_set(FD_LISTEN, unit_listener());
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_wait_scan_epoll(&w, FD_EP);
	cr_assert_null(cs_wait_decide(t, &w, 0));
	cr_assert_eq(unit_state(t), 0);
	cr_assert_eq(cs_tls.loop, 1);
}

/* Adding a client to a loop's set makes the adder a loop only when it waits
 * on that set itself (nginx adds what it accepted to the set it waits on);
 * a worker handing its client to another thread's set is no loop (gunicorn
 * gthread): registering is not waiting. */
Test(wait_decide, adding_a_client_to_the_set_it_waits_on_makes_a_loop)
{
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_LISTEN, unit_listener());
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	unit_set(FD_EP, CS_SLOT_MAKE(CS_KIND_EPOLL, 100));	/* created after A and B were accepted */

	cs_tls.wait_epfd = FD_EP + 1;
	cs_fd_epoll_added(FD_EP, FD_A);	/* one client alone: not a loop */
	cr_assert_eq(cs_tls.loop, 0);
	cr_assert_eq(unit_state(t), 5);
	cs_fd_epoll_added(FD_EP, FD_B);	/* a second one: a loop */
	cr_assert_eq(cs_tls.loop, 1);
	cr_assert_eq(unit_state(t), 0);

	cs_tls.loop = 0;
	atomic_store(&t->state, 5);
	cs_tls.wait_epfd = FD_EP2 + 1;
	cs_fd_epoll_added(FD_EP2, FD_LISTEN);	/* an acceptor's set */
	cr_assert_eq(cs_tls.loop, 0);
	cs_fd_epoll_added(FD_EP2, FD_A);	/* ...that serves clients too */
	cr_assert_eq(cs_tls.loop, 1);
	cr_assert_eq(unit_state(t), 0);
}

/* ---- the descriptor life cycle -------------------------------------------- */

Test(fd_life, closing_the_bound_client_unbinds)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	uint64_t s = unit_set(FD_A, unit_client(5));
	cs_fd_closing(FD_A, s);
	cr_assert_eq(cs_fd_get(FD_A), 0);
	cr_assert_eq(unit_state(t), 0);
}

Test(fd_life, closing_another_client_keeps_the_binding)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	unit_set(FD_A, unit_client(5));
	uint64_t s = unit_set(FD_B, unit_client(6));
	cs_fd_closing(FD_B, s);
	cr_assert_eq(cs_fd_get(FD_B), 0);
	cr_assert_eq(cs_fd_get(FD_A), unit_client(5));
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);

	/* and closing a non-client changes nothing either */
	s = unit_set(FD_C, CS_OTHER_MAKE(CS_FDCLASS_NET));
	cs_fd_closing(FD_C, s);
	cr_assert_eq(cs_fd_get(FD_C), 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
}

Test(fd_life, closing_on_a_missing_page_allocates_nothing)
{
	unit_thread(0);
	cs_fd_closing(9000, 0);
	cr_assert_null(cs_fd_ref_existing(9000));
}

Test(fd_life, close_range_clears_the_range_across_pages_and_unbinds)
{
	struct cs_thread *t = unit_thread(50);
	static const int inside[] = { 100, 1023, 1024, 5000 };
	for (size_t i = 0; i < 4; i++)
		unit_set(inside[i], unit_client(5 + i));
	unit_set(99, unit_client(20));
	unit_set(5001, unit_client(21));

	cs_fd_closing_range(100, 5000);
	for (size_t i = 0; i < 4; i++)
		cr_assert_eq(cs_fd_get(inside[i]), 0, "fd %d survived close_range", inside[i]);
	cr_assert_eq(cs_fd_get(99), unit_client(20));
	cr_assert_eq(cs_fd_get(5001), unit_client(21));
	cr_assert_eq(unit_state(t), 50, "the thread was bound to none of them");

	atomic_store(&t->state, 21);
	cs_fd_closing_range(5001, ~0u);	/* closefrom(5001) */
	cr_assert_eq(cs_fd_get(5001), 0);
	cr_assert_eq(unit_state(t), 0);
}

Test(fd_life, dup_copies_the_word)
{
	struct cs_thread *t = unit_thread(5);
	uint64_t s = unit_set(FD_A, unit_client(5));
	cs_fd_duplicated(FD_A, FD_B);
	/* Both now say the connection is shared, so a disconnect marks both. */
	cr_assert_eq(cs_fd_get(FD_B), s | CS_CLIENT_SHARED);
	cr_assert_eq(cs_fd_get(FD_A), s | CS_CLIENT_SHARED);
	cr_assert_eq(unit_state(t), 5);
	/* onto a page that does not exist yet */
	cs_fd_duplicated(FD_A, 9000);
	cr_assert_eq(cs_fd_get(9000), s | CS_CLIENT_SHARED);
}

Test(fd_life, dup2_over_the_bound_client_unbinds)
{
	struct cs_thread *t = unit_thread(6 | CS_ST_CANCEL);
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_duplicated(FD_A, FD_B);
	cr_assert_eq(cs_fd_get(FD_B), unit_client(5) | CS_CLIENT_SHARED);
	cr_assert_eq(unit_state(t), 0, "dup2 closed the bound client implicitly");
}

Test(fd_life, dup2_of_a_non_client_over_the_bound_client_unbinds)
{
	struct cs_thread *t = unit_thread(6);
	unit_set(FD_B, unit_client(6));
	cs_fd_duplicated(FD_D, FD_B);	/* FD_D: nothing known */
	cr_assert_eq(cs_fd_get(FD_B), 0);
	cr_assert_eq(unit_state(t), 0);
}

Test(fd_life, dup2_within_one_connection_keeps_the_binding)
{
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(5));
	cs_fd_duplicated(FD_A, FD_B);
	cr_assert_eq(unit_state(t), 5);
	cs_fd_duplicated(FD_A, FD_A);	/* dup2(fd, fd) */
	cr_assert_eq(cs_fd_get(FD_A), unit_client(5) | CS_CLIENT_SHARED);
	cr_assert_eq(unit_state(t), 5);
}

Test(fd_life, a_new_descriptor_replaces_a_stale_client)
{
	/* The client was closed behind the shim's back (a raw syscall, an
	 * exec'd close-on-exec...): the next descriptor with that number says
	 * so. */
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_A, unit_client(5));
	cs_fd_created(FD_A, CS_FDCLASS_PIPE);
	cr_assert_eq(cs_fd_get(FD_A), CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	cr_assert_eq(unit_state(t), 0);

	unit_set(FD_B, unit_client(6));
	cs_fd_created(FD_B, 0);
	cr_assert_eq(cs_fd_get(FD_B), 0, "class unknown: found later");
}

Test(fd_life, a_new_descriptor_on_a_missing_page_allocates_nothing)
{
	unit_thread(0);
	cs_fd_created(9000, CS_FDCLASS_FILE);
	cr_assert_null(cs_fd_ref_existing(9000));
}

Test(fd_life, listening_marks_a_listener)
{
	unit_set(FD_A, CS_OTHER_MAKE(CS_FDCLASS_NET));
	cs_fd_listening(FD_A);
	cr_assert_eq(CS_SLOT_KIND(cs_fd_get(FD_A)), CS_KIND_LISTENER);
	/* what accept already learnt about it is kept */
	unit_set(FD_B, unit_listener());
	cs_fd_listening(FD_B);
	cr_assert_eq(cs_fd_get(FD_B), unit_listener());
}

Test(fd_life, epoll_created_over_a_stale_client_unbinds)
{
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_EP, unit_client(5));
	cs_fd_epoll_created(FD_EP);
	cr_assert_eq(cs_fd_get(FD_EP), CS_SLOT_MAKE(CS_KIND_EPOLL, 0));
	cr_assert_eq(unit_state(t), 0);
}

static int listening(int domain, int type)
{
	int l = socket(domain, type | SOCK_CLOEXEC, 0);
	cr_assert_geq(l, 0);
	if (domain == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
	} else {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		/* abstract address: nothing to clean up */
		int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "cancelshim-unit-%d-%d", getpid(), type);
		cr_assert_eq(bind(l, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n), 0);
	}
	cr_assert_eq(listen(l, 4), 0);
	return l;
}

Test(fd_life, accepted_stream_sockets_are_clients_with_fresh_generations)
{
	int l = listening(AF_INET, SOCK_STREAM), u = listening(AF_UNIX, SOCK_STREAM);
	unit_thread(0);
	atomic_store(&cs_proc.next_gen, 1);

	cs_accept_record(l, FD_A, 0, 0, NULL, 0);
	cs_accept_record(l, FD_B, 0, 0, NULL, 0);
	cs_accept_record(u, FD_C, 0, 0, NULL, 0);
	uint64_t a = cs_fd_get(FD_A), b = cs_fd_get(FD_B), c = cs_fd_get(FD_C);
	cr_assert_eq(CS_SLOT_KIND(a), CS_KIND_CLIENT);
	cr_assert_eq(CS_SLOT_KIND(b), CS_KIND_CLIENT);
	cr_assert_eq(CS_SLOT_KIND(c), CS_KIND_CLIENT, "an AF_UNIX stream client is a client");
	cr_assert_neq((uint32_t)a, 0);
	cr_assert_neq((uint32_t)a, (uint32_t)b);
	cr_assert_neq((uint32_t)b, (uint32_t)c);
	cr_assert_not(a & (CS_CLIENT_DEAD | CS_CLIENT_REGISTERED));
	uint64_t ls = cs_fd_get(l);
	cr_assert_eq(CS_SLOT_KIND(ls), CS_KIND_LISTENER);
	cr_assert(ls & CS_LISTENER_TYPE_KNOWN);
	cr_assert(ls & CS_LISTENER_STREAM);

	/* The same number accepted again is a new connection. */
	cs_accept_record(l, FD_A, 0, 0, NULL, 0);
	cr_assert_neq((uint32_t)cs_fd_get(FD_A), (uint32_t)a);
	close(l);
	close(u);
}

Test(fd_life, accepted_seqpacket_sockets_are_not_clients)
{
	int l = listening(AF_UNIX, SOCK_SEQPACKET);
	unit_thread(0);
	unit_set(FD_A, unit_client(5));	/* a stale word under the number */
	cs_accept_record(l, FD_A, 0, 0, NULL, 0);
	cr_assert_eq(cs_fd_get(FD_A), CS_OTHER_MAKE(CS_FDCLASS_NET));
	uint64_t ls = cs_fd_get(l);
	cr_assert(ls & CS_LISTENER_TYPE_KNOWN);
	cr_assert_not(ls & CS_LISTENER_STREAM);
	close(l);
}

Test(fd_life, generations_are_never_zero)
{
	atomic_store(&cs_proc.next_gen, 0xfffffffeu);
	cr_assert_eq(cs_process_new_gen(), 0xfffffffeu);
	cr_assert_eq(cs_process_new_gen(), 0xffffffffu);
	cr_assert_eq(cs_process_new_gen(), 1, "generation 0 (no binding) was handed out");
}

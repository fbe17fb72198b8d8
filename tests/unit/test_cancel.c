/* The cancel protocol (disconnect.c) and the cancellable call path
 * (cs_io_route, cs_wait_call), one thread at a time. Records and words are
 * set by hand; the one signal sent is to this thread with the signal
 * blocked, and is collected with sigtimedwait (no handler runs). */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cancel/disconnect.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "unit.h"

#define FAKE_TID 0x40000000

static void setup(void)
{
	unit_fake_fds_closed();
}

TestSuite(disconnect, .init = setup);
TestSuite(cancelled_calls, .init = setup);

static uint64_t counter(enum cs_stat s)
{
	return atomic_load(&cs_stats[s]);
}

/* A record of another (fictitious) thread, bound as given. */
static struct cs_thread *other_thread(int n, uint64_t state)
{
	struct cs_thread *t = cs_thread_claim(FAKE_TID + n);
	cr_assert_not_null(t);
	atomic_store(&t->state, state);
	return t;
}

/* ---- cs_disconnect --------------------------------------------------------- */

Test(disconnect, the_bound_thread_is_cancelled_and_the_connection_marked_dead)
{
	struct cs_thread *t = unit_thread(0);
	uint64_t cancels = counter(CS_STAT_CANCELS), fins = counter(CS_STAT_DISCONNECT_FIN);

	unit_set(FD_A, unit_client(5));
	atomic_store(&t->state, 5);
	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
	cr_assert_eq(cs_fd_get(FD_A), unit_client(5) | CS_CLIENT_DEAD);
	cr_assert_eq(counter(CS_STAT_CANCELS), cancels + 1);
	cr_assert_eq(counter(CS_STAT_DISCONNECT_FIN), fins + 1);
}

Test(disconnect, a_thread_bound_elsewhere_is_untouched)
{
	struct cs_thread *t = unit_thread(6);
	struct cs_thread *idle = other_thread(1, 0);
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));

	cs_disconnect(5, FD_A, 1);
	cr_assert_eq(unit_state(t), 6, "a thread serving another client was cancelled");
	cr_assert_eq(unit_state(idle), 0, "an idle thread was cancelled");
	cr_assert_eq(cs_fd_get(FD_A), unit_client(5) | CS_CLIENT_DEAD);
	cr_assert_eq(cs_fd_get(FD_B), unit_client(6), "another connection was marked dead");
}

Test(disconnect, a_reused_descriptor_is_not_marked_dead)
{
	/* The watcher reports (gen 5, fd A), but fd A was closed and now holds
	 * connection 9: connection 9 lives on; a thread still bound to 5 (its
	 * close not seen yet) is cancelled all the same. */
	struct cs_thread *t5 = unit_thread(5);
	struct cs_thread *t9 = other_thread(1, 9);
	unit_set(FD_A, unit_client(9));

	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(cs_fd_get(FD_A), unit_client(9), "the new connection on the reused fd was marked dead");
	cr_assert_eq(unit_state(t9), 9, "the new connection's thread was cancelled");
	cr_assert_eq(unit_state(t5), 5 | CS_ST_CANCEL);

	/* ...nor a descriptor that is no longer a client at all */
	unit_set(FD_B, CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	cs_disconnect(5, FD_B, 0);
	cr_assert_eq(cs_fd_get(FD_B), CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	cs_disconnect(5, 9000, 0);
	cr_assert_null(cs_fd_ref_existing(9000));
}

Test(disconnect, every_thread_bound_to_the_connection_is_cancelled)
{
	struct cs_thread *a = unit_thread(5), *b = other_thread(1, 5), *c = other_thread(2, 6);
	uint64_t cancels = counter(CS_STAT_CANCELS);

	unit_set(FD_A, unit_client(5));
	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(unit_state(a), 5 | CS_ST_CANCEL);
	cr_assert_eq(unit_state(b), 5 | CS_ST_CANCEL);
	cr_assert_eq(unit_state(c), 6);
	cr_assert_eq(counter(CS_STAT_CANCELS), cancels + 2);

	/* A second report of the same disconnect changes nothing. */
	cs_disconnect(5, FD_A, 1);
	cr_assert_eq(counter(CS_STAT_CANCELS), cancels + 2, "a thread was cancelled twice");
	cr_assert_eq(unit_state(a), 5 | CS_ST_CANCEL);
}

Test(disconnect, free_records_and_generation_zero_are_ignored)
{
	struct cs_thread *t = unit_thread(0), *gone = other_thread(1, 0);
	uint64_t fins = counter(CS_STAT_DISCONNECT_FIN);

	/* A released record whose state was left as gen 5. */
	cs_thread_release(gone);
	atomic_store(&gone->state, 5);
	unit_set(FD_A, unit_client(5));
	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(unit_state(gone), 5, "a free record was cancelled");

	/* gen 0 means "no connection": no thread is ever bound to it. */
	unit_set(FD_B, CS_SLOT_MAKE(CS_KIND_CLIENT, 0));
	cs_disconnect(0, FD_B, 0);
	cr_assert_eq(unit_state(t), 0);
	cr_assert_eq(cs_fd_get(FD_B), CS_SLOT_MAKE(CS_KIND_CLIENT, 0));
	cr_assert_eq(counter(CS_STAT_DISCONNECT_FIN), fins + 1);
}

Test(disconnect, a_later_binding_to_the_dead_connection_is_cancelled_at_once)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5));
	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(unit_state(t), 0);
	cs_io_enter(FD_A, 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);
}

/* The connection was registered through fd A and dup'ed to B (fdopen(dup(fd))
 * in inetd-style servers). The watcher reports (gen, A); a thread that first
 * binds through B after the disconnect must still be cancelled. */
Test(disconnect, a_later_binding_through_a_dup_is_cancelled_at_once)
{
	struct cs_thread *t = unit_thread(0);
	unit_set(FD_A, unit_client(5));
	cs_fd_duplicated(FD_A, FD_B);
	cs_disconnect(5, FD_A, 0);
	cs_io_enter(FD_B, 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL, "bound through the dup of a dead connection, not cancelled");
}

Test(disconnect, the_cancel_ends_with_the_binding)
{
	struct cs_thread *t = unit_thread(5);
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_disconnect(5, FD_A, 0);
	cr_assert(unit_state(t) & CS_ST_CANCEL);
	cs_fd_closing(FD_A, cs_fd_get(FD_A));
	cr_assert_eq(unit_state(t), 0, "closing the dead client left the thread cancelled");

	atomic_store(&t->state, 6);
	cs_disconnect(6, FD_B, 0);
	cs_fd_accept_begin();
	cr_assert_eq(unit_state(t), 0, "accept left the thread cancelled");
}

/* A thread inside a cancellable call is sent the cancel signal, tagged so the
 * handler can tell it from the application's; a thread outside one is not. */
Test(disconnect, a_thread_in_a_call_is_signalled)
{
	struct cs_thread *t = unit_thread(0);
	sigset_t set, pending;
	siginfo_t info;
	struct timespec wait = { 5, 0 };
	uint64_t wakeups = counter(CS_STAT_WAKEUPS);

	cs_proc.cookie = 0x5eed1234;
	sigemptyset(&set);
	sigaddset(&set, cs_proc.cfg.signo);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	atomic_store(&t->tid, unit_gettid());
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));

	/* Not in a call: flag only. */
	atomic_store(&t->state, 6);
	cs_disconnect(6, FD_B, 0);
	cr_assert_eq(unit_state(t), 6 | CS_ST_CANCEL);
	cr_assert_eq(sigpending(&pending), 0);
	cr_assert_not(sigismember(&pending, cs_proc.cfg.signo), "a thread outside a call was signalled");
	cr_assert_eq(counter(CS_STAT_WAKEUPS), wakeups);

	/* In a call: flag, then signal. */
	atomic_store(&t->state, 5 | CS_ST_INCALL);
	cs_disconnect(5, FD_A, 1);
	cr_assert_eq(unit_state(t), 5 | CS_ST_INCALL | CS_ST_CANCEL);
	cr_assert_eq(sigtimedwait(&set, &info, &wait), cs_proc.cfg.signo, "no cancel signal: %s", strerror(errno));
	cr_assert_eq(info.si_code, SI_QUEUE);
	cr_assert_eq(info.si_pid, getpid());
	cr_assert_eq((uint32_t)info.si_value.sival_int, 0x5eed1234u);
	cr_assert_eq(counter(CS_STAT_WAKEUPS), wakeups + 1);
}

/* The watcher end to end, in this process: a real connection registered with
 * it, its peer closed, and the bound thread (not in a call, so not signalled)
 * finds its cancel flag. */
static int wait_for_cancel(struct cs_thread *t, int ms)
{
	struct timespec tick = { 0, 1000000 };
	for (int i = 0; i < ms; i++) {
		if (unit_state(t) & CS_ST_CANCEL)
			return 1;
		nanosleep(&tick, NULL);
	}
	return 0;
}

Test(disconnect, the_watcher_cancels_when_the_peer_closes, .timeout = 20)
{
	struct cs_thread *t = unit_thread(0);
	int sv[2], up[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up), 0);
	/* As accept() leaves it: a client, not yet registered. */
	cs_fd_exchange(sv[0], CS_SLOT_MAKE(CS_KIND_CLIENT, 42), 1);
	cs_io_enter(sv[0], 0);	/* first I/O: binds */
	cr_assert_eq(unit_state(t), 42);
	cr_assert_not(cs_fd_get(sv[0]) & CS_CLIENT_REGISTERED, "watched before any call could be failed");
	/* The first call a cancel could fail (upstream I/O) registers it. */
	cr_assert_eq(cs_io_enter(up[0], 0), t);
	cr_assert(cs_fd_get(sv[0]) & CS_CLIENT_REGISTERED);
	cr_assert_eq(atomic_load(&cs_proc.active), 1, "registration failed and turned the shim off");
	cr_assert_not(unit_state(t) & CS_ST_CANCEL);

	close(sv[1]);
	cr_assert(wait_for_cancel(t, 5000), "the peer's close did not cancel the thread");
	cr_assert_eq(unit_state(t), 42 | CS_ST_CANCEL);
	cr_assert(cs_fd_get(sv[0]) & CS_CLIENT_DEAD);
	close(sv[0]);
	close(up[0]);
	close(up[1]);
}

/* ---- the cancellable call path -------------------------------------------- */

Test(cancelled_calls, a_cancelled_socket_call_fails_without_blocking)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	int sv[2];
	char c;
	uint64_t failed = counter(CS_STAT_FAILED_NET);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* Nothing to read: a read that entered the kernel would block for ever. */
	cr_assert_eq(cs_io_route(sv[0], 0, SYS_read, sv[0], (long)&c, 1, 0, 0, 0), -ECANCELED);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL, "INCALL left set");
	cr_assert_eq(counter(CS_STAT_FAILED_NET), failed + 1);
	close(sv[0]);
	close(sv[1]);
}

Test(cancelled_calls, a_cancelled_non_blocking_call_goes_to_libc)
{
	unit_thread(5 | CS_ST_CANCEL);
	int sv[2];
	char c;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	cr_assert_eq(cs_io_route(sv[0], 0, SYS_read, sv[0], (long)&c, 1, 0, 0, 0), CS_PASS);
	cr_assert_eq(cs_io_route(sv[0], 1, SYS_recvfrom, sv[0], (long)&c, 1, MSG_DONTWAIT, 0, 0), CS_PASS);
	close(sv[0]);
	close(sv[1]);
}

Test(cancelled_calls, calls_that_are_never_failed_go_to_libc)
{
	char c;
	unit_thread(0);
	unit_set(FD_A, unit_client(5));
	cr_assert_eq(cs_io_route(FD_A, 0, SYS_read, FD_A, (long)&c, 1, 0, 0, 0), CS_PASS_READ, "first I/O on a client");
	atomic_store(&cs_tls.rec->state, 5 | CS_ST_CANCEL);
	cr_assert_eq(cs_io_route(FD_A, 0, SYS_read, FD_A, (long)&c, 1, 0, 0, 0), CS_PASS, "the dead client's own socket");
	cr_assert_eq(cs_io_route(2, 0, SYS_write, 2, (long)"", 0, 0, 0, 0), CS_PASS, "stderr");
}

Test(cancelled_calls, a_call_that_is_not_cancelled_runs)
{
	struct cs_thread *t = unit_thread(5);
	int sv[2];
	char c = 'x', d = 0;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(cs_io_route(sv[0], 0, SYS_write, sv[0], (long)&c, 1, 0, 0, 0), 1);
	cr_assert_eq(cs_io_route(sv[1], 0, SYS_read, sv[1], (long)&d, 1, 0, 0, 0), 1);
	cr_assert_eq(d, 'x');
	close(sv[1]);
	cr_assert_eq(cs_io_route(sv[0], 0, SYS_sendto, sv[0], (long)&c, 1, MSG_NOSIGNAL, 0, 0), -EPIPE,
		     "errors come back raw");
	cr_assert_eq(unit_state(t), 5, "INCALL left set");
	close(sv[0]);
}

Test(cancelled_calls, a_cancelled_wait_fails_without_sleeping)
{
	struct cs_thread *t = unit_thread(5 | CS_ST_CANCEL);
	struct timespec ten_s = { 10, 0 }, before, after;
	uint64_t failed = counter(CS_STAT_FAILED_WAIT);

	clock_gettime(CLOCK_MONOTONIC, &before);
	cr_assert_eq(cs_wait_call(t, SYS_ppoll, 0, 0, (long)&ten_s, 0, 8, 0), -ECANCELED);
	cr_assert_eq(cs_wait_call(t, SYS_nanosleep, (long)&ten_s, 0, 0, 0, 0, 0), -ECANCELED);
	clock_gettime(CLOCK_MONOTONIC, &after);
	cr_assert_lt(after.tv_sec - before.tv_sec, 2, "the cancelled wait slept");
	cr_assert_eq(counter(CS_STAT_FAILED_WAIT), failed + 2);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL);

	/* Not cancelled: the wait runs (a zero timeout returns at once). */
	struct timespec zero = { 0, 0 };
	atomic_store(&t->state, 5);
	cr_assert_eq(cs_wait_call(t, SYS_ppoll, 0, 0, (long)&zero, 0, 8, 0), 0);
}

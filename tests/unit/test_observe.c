/* CANCELSHIM_ACTION=observe: the cancel protocol runs (the flag is set), but
 * no call is failed and no thread signalled; each binding whose call would
 * have failed is counted once (CS_STAT_WOULD_CANCEL), by the thread on
 * entering its call or by the watcher when the thread is inside one. */
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "cancel/disconnect.h"
#include "cancel/observe.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "unit.h"

static int up[2];
static sigset_t cancel_set;

static void setup(void)
{
	unit_fake_fds_closed();
	unit_record(0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up), 0);
	sigemptyset(&cancel_set);
	sigaddset(&cancel_set, cs_proc.cfg.signo);
	cr_assert_eq(pthread_sigmask(SIG_BLOCK, &cancel_set, NULL), 0);
}

TestSuite(observe, .init = setup);

/* The calling thread's record, in the state given, the shim observing
 * (unit_record resets the settings to their defaults). */
static struct cs_thread *observer(uint64_t state)
{
	struct cs_thread *t = unit_thread(state);
	cs_proc.cfg.action = CS_ACTION_OBSERVE;
	return t;
}

static uint64_t would(void)
{
	return atomic_load(&cs_stats[CS_STAT_WOULD_CANCEL]);
}

static int signal_pending(void)
{
	sigset_t pending;
	cr_assert_eq(sigpending(&pending), 0);
	return sigismember(&pending, cs_proc.cfg.signo);
}

Test(observe, a_cancelled_thread_s_call_is_issued_and_counted_once)
{
	struct cs_thread *t = observer(5 | CS_ST_CANCEL);
	uint64_t before = would(), failed = atomic_load(&cs_stats[CS_STAT_FAILED_NET]);
	char c = 0;

	cr_assert_eq(write(up[1], "xy", 2), 2);
	cr_assert_eq(cs_io_route(up[0], 0, SYS_read, up[0], (long)&c, 1, 0, 0, 0), 1, "the call was failed");
	cr_assert_eq(c, 'x');
	cr_assert_eq(would(), before + 1, "the would-cancel was not counted");
	cr_assert_eq(cs_io_route(up[0], 0, SYS_read, up[0], (long)&c, 1, 0, 0, 0), 1);
	cr_assert_eq(would(), before + 1, "counted again for the same binding");
	cr_assert_eq(atomic_load(&cs_stats[CS_STAT_FAILED_NET]), failed);
	cr_assert_eq(unit_state(t), 5 | CS_ST_CANCEL | CS_ST_OBSERVED, "INCALL left set");
	cr_assert_eq(atomic_load(&t->call_nr), SYS_read);
}

Test(observe, a_wait_is_issued_and_counted)
{
	struct cs_thread *t = observer(5 | CS_ST_CANCEL);
	uint64_t before = would();
	struct pollfd p = { .fd = up[0], .events = POLLIN };

	cr_assert_eq(write(up[1], "x", 1), 1);
	cr_assert_eq(cs_wait_call(t, SYS_ppoll, (long)&p, 1, 0, 0, 8, 0), 1, "the wait was failed");
	cr_assert_eq(would(), before + 1);
}

Test(observe, a_non_blocking_descriptor_is_not_counted)
{
	observer(5 | CS_ST_CANCEL);
	uint64_t before = would();
	char c;

	cr_assert_eq(fcntl(up[0], F_SETFL, O_NONBLOCK), 0);
	cr_assert_eq(cs_io_route(up[0], 0, SYS_read, up[0], (long)&c, 1, 0, 0, 0), -EAGAIN);
	cr_assert_eq(would(), before, "a call cancel never fails was counted");
}

/* The watcher finds the thread inside a call: it counts it there, sends no
 * signal, and the thread's call goes on. */
Test(observe, the_watcher_counts_a_thread_inside_a_call_and_signals_nobody)
{
	struct cs_thread *t = observer(0);
	uint64_t before = would(), wakeups = atomic_load(&cs_stats[CS_STAT_WAKEUPS]);

	atomic_store(&t->tid, unit_gettid());
	unit_set(FD_A, unit_client(5));
	atomic_store(&t->call_nr, SYS_recvfrom);
	atomic_store(&t->state, 5 | CS_ST_INCALL);
	cs_disconnect(5, FD_A, 0);
	cr_assert_eq(unit_state(t), 5 | CS_ST_INCALL | CS_ST_CANCEL | CS_ST_OBSERVED);
	cr_assert_eq(would(), before + 1);
	cr_assert_not(signal_pending(), "observe mode signalled the thread");
	cr_assert_eq(atomic_load(&cs_stats[CS_STAT_WAKEUPS]), wakeups);
	/* the thread leaves its call and enters another: not counted twice */
	atomic_fetch_and(&t->state, ~CS_ST_INCALL);
	char c;
	cr_assert_eq(write(up[1], "x", 1), 1);
	cr_assert_eq(cs_io_route(up[0], 0, SYS_read, up[0], (long)&c, 1, 0, 0, 0), 1);
	cr_assert_eq(would(), before + 1);
}

/* In cancel mode nothing is counted as a would-cancel. */
Test(observe, cancel_mode_counts_no_would_cancel)
{
	struct cs_thread *t = observer(5 | CS_ST_CANCEL);
	uint64_t before = would();
	char c;

	cs_proc.cfg.action = CS_ACTION_CANCEL;
	cr_assert_eq(cs_io_route(up[0], 0, SYS_read, up[0], (long)&c, 1, 0, 0, 0), -ECANCELED);
	cr_assert_eq(would(), before);
	(void)t;
}

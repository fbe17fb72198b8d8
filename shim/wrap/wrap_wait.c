/* Interposed waits and sleeps.
 *
 * The exported functions only test, inline, whether the call can go straight
 * to libc: a wait is looked at only once the process serves clients and
 * while the thread is not known to run an event loop; a sleep only when the
 * thread serves a client. The rest is in out-of-line twins (*_slow): the
 * policy tells an event loop's wait (never failed) from a wait on upstream
 * work (cancellable). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "base/raw_syscall.h"
#include "base/real.h"
#include "cancel/cancel_signal.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "wrap/export.h"

#define SLOW __attribute__((noinline, cold))

/* glibc declares poll's array write-only, so gcc thinks reading it (to scan
 * the descriptors) reads uninitialised memory. It is the caller's input. */
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

extern void __chk_fail(void) __attribute__((noreturn));

static int is_zero(const struct timespec *ts)
{
	return ts && ts->tv_sec == 0 && ts->tv_nsec == 0;
}

static struct timespec *ms_to_timespec(int ms, struct timespec *ts)
{
	if (ms < 0)
		return NULL;
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000L;
	return ts;
}

/* The kernel writes the time left into a ppoll/pselect timeout; libc's
 * wrappers hide that, and so do we. */
static struct timespec *copy_timespec(const struct timespec *in, struct timespec *out)
{
	if (!in)
		return NULL;
	*out = *in;
	return out;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An epoll timeout in milliseconds is not counted down by the kernel: after a
 * stray signal, what is left of it. */
static int ms_left(int ms, int64_t start)
{
	int64_t left;
	if (ms < 0)
		return ms;
	left = ms - (now_ms() - start);
	return left > 0 ? (int)left : 0;
}

static struct cs_thread *decide_pollfds(const struct pollfd *fds, nfds_t n, int zero)
{
	struct cs_wait_scan w = { 0 };
	struct cs_thread *t;

	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0)
			cs_wait_scan_fd(&w, fds[i].fd);
	t = cs_wait_decide(cs_tls.rec, &w, zero);
	/* A multiplexing wait (the thread's first: it is a loop now, and its
	 * waits are not looked at again) parks every client it names. */
	if (cs_tls.loop)
		for (nfds_t i = 0; i < n; i++)
			cs_fd_loop_waits_on(fds[i].fd);
	return t;
}

/* ---- poll, ppoll ---------------------------------------------------------- */

static SLOW int ppoll_slow(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = decide_pollfds(fds, n, is_zero(tmo));
	struct timespec ts, *left;
	sigset_t copy;
	const sigset_t *m;
	long r;

	if (!t)
		return cs_real.ppoll(fds, n, tmo, mask);
	m = cs_signal_strip(mask, &copy);
	left = copy_timespec(tmo, &ts);	/* the kernel counts it down */
	while ((r = cs_wait_call(t, SYS_ppoll, (long)fds, n, (long)left, (long)m, 8, 0)) == CS_RESTART)
		;
	return (int)cs_set_errno(r);
}

static SLOW int poll_slow(struct pollfd *fds, nfds_t n, int ms)
{
	struct cs_thread *t = decide_pollfds(fds, n, ms == 0);
	struct timespec ts, *left;
	long r;

	if (!t)
		return cs_real.poll(fds, n, ms);
	left = ms_to_timespec(ms, &ts);	/* the kernel counts it down */
	while ((r = cs_wait_call(t, SYS_ppoll, (long)fds, n, (long)left, 0, 8, 0)) == CS_RESTART)
		;
	return (int)cs_set_errno(r);
}

CS_EXPORT int poll(struct pollfd *fds, nfds_t n, int ms)
{
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.poll(fds, n, ms);
	return poll_slow(fds, n, ms);
}

CS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int ms, size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__chk_fail();
	return poll(fds, n, ms);
}

CS_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.ppoll(fds, n, tmo, mask);
	return ppoll_slow(fds, n, tmo, mask);
}

CS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__chk_fail();
	return ppoll(fds, n, tmo, mask);
}

/* ---- select, pselect ------------------------------------------------------ */

static struct cs_thread *decide_fdsets(int nfds, const fd_set *r, const fd_set *w, const fd_set *e, int zero)
{
	struct cs_wait_scan scan = { 0 };
	struct cs_thread *t;

	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	for (int fd = 0; fd < nfds; fd++)
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
			cs_wait_scan_fd(&scan, fd);
	t = cs_wait_decide(cs_tls.rec, &scan, zero);
	if (cs_tls.loop)	/* as in decide_pollfds */
		for (int fd = 0; fd < nfds; fd++)
			if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
				cs_fd_loop_waits_on(fd);
	return t;
}

static SLOW int select_slow(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	struct cs_thread *t = decide_fdsets(nfds, r, w, e, tv && tv->tv_sec == 0 && tv->tv_usec == 0);
	long res;

	if (!t)
		return cs_real.select(nfds, r, w, e, tv);
	/* The kernel counts *tv down, as Linux's select does. */
	while ((res = cs_wait_call(t, SYS_select, nfds, (long)r, (long)w, (long)e, (long)tv, 0)) == CS_RESTART)
		;
	return (int)cs_set_errno(res);
}

CS_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.select(nfds, r, w, e, tv);
	return select_slow(nfds, r, w, e, tv);
}

static SLOW int pselect_slow(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = decide_fdsets(nfds, r, w, e, is_zero(tmo));
	struct timespec ts, *left;
	sigset_t copy;
	long data[2], res;

	if (!t)
		return cs_real.pselect(nfds, r, w, e, tmo, mask);
	data[0] = (long)cs_signal_strip(mask, &copy);
	data[1] = 8;
	left = copy_timespec(tmo, &ts);
	while ((res = cs_wait_call(t, SYS_pselect6, nfds, (long)r, (long)w, (long)e, (long)left,
				   mask ? (long)data : 0)) == CS_RESTART)
		;
	return (int)cs_set_errno(res);
}

CS_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo, const sigset_t *mask)
{
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.pselect(nfds, r, w, e, tmo, mask);
	return pselect_slow(nfds, r, w, e, tmo, mask);
}

/* ---- epoll ---------------------------------------------------------------- */

static struct cs_thread *decide_epoll(int epfd, int zero)
{
	struct cs_wait_scan w = { 0 };
	/* The exported wrappers remember epfd in cs_tls.wait_epfd, even for
	 * the waits they pass straight through (an event loop's first waits
	 * come before the process accepts anything): a client this thread
	 * later adds to the set it waits on makes it a loop at once, before it
	 * reads from that client (policy.c, handed_to_set). */
	cs_wait_scan_epoll(&w, epfd);
	return cs_wait_decide(cs_tls.rec, &w, zero);
}

static SLOW int epoll_pwait_slow(int epfd, struct epoll_event *ev, int max, int ms, const sigset_t *mask)
{
	struct cs_thread *t = decide_epoll(epfd, ms == 0);
	int64_t start;
	sigset_t copy;
	const sigset_t *m;
	long r;

	if (!t)
		return mask ? cs_real.epoll_pwait(epfd, ev, max, ms, mask) : cs_real.epoll_wait(epfd, ev, max, ms);
	m = cs_signal_strip(mask, &copy);
	start = now_ms();
	while ((r = cs_wait_call(t, SYS_epoll_pwait, epfd, (long)ev, max, ms_left(ms, start), (long)m, 8)) == CS_RESTART)
		;
	return (int)cs_set_errno(r);
}

CS_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int ms)
{
	cs_tls.wait_epfd = epfd + 1;	/* one store: see decide_epoll */
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.epoll_wait(epfd, ev, max, ms);
	return epoll_pwait_slow(epfd, ev, max, ms, NULL);
}

CS_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int ms, const sigset_t *mask)
{
	cs_tls.wait_epfd = epfd + 1;	/* one store: see decide_epoll */
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.epoll_pwait(epfd, ev, max, ms, mask);
	return epoll_pwait_slow(epfd, ev, max, ms, mask);
}

static SLOW int epoll_pwait2_slow(int epfd, struct epoll_event *ev, int max, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = decide_epoll(epfd, is_zero(tmo));
	struct timespec deadline, left, now;
	sigset_t copy;
	const sigset_t *m;
	long r;

	if (!t)
		return cs_real.epoll_pwait2(epfd, ev, max, tmo, mask);
	m = cs_signal_strip(mask, &copy);
	if (tmo) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += tmo->tv_sec + (deadline.tv_nsec + tmo->tv_nsec) / 1000000000;
		deadline.tv_nsec = (deadline.tv_nsec + tmo->tv_nsec) % 1000000000;
		left = *tmo;
	}
	while ((r = cs_wait_call(t, SYS_epoll_pwait2, epfd, (long)ev, max, tmo ? (long)&left : 0, (long)m, 8)) ==
	       CS_RESTART) {
		if (!tmo)
			continue;
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t ns = (int64_t)(deadline.tv_sec - now.tv_sec) * 1000000000 + (deadline.tv_nsec - now.tv_nsec);
		if (ns < 0)
			ns = 0;
		left.tv_sec = ns / 1000000000;
		left.tv_nsec = ns % 1000000000;
	}
	return (int)cs_set_errno(r);
}

CS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *tmo, const sigset_t *mask)
{
	cs_tls.wait_epfd = epfd + 1;	/* one store: see decide_epoll */
	if (__builtin_expect(!cs_wait_scanned(), 1))
		return cs_real.epoll_pwait2(epfd, ev, max, tmo, mask);
	return epoll_pwait2_slow(epfd, ev, max, tmo, mask);
}

/* ---- sleeps --------------------------------------------------------------- */

/* nanosleep through the cancellable path, continuing with the time left
 * after a stray signal. NULL thread: not cancellable after all. */
static long sleep_for(struct cs_thread *t, const struct timespec *req, struct timespec *rem)
{
	struct timespec left = *req, mine;
	long r;

	if (!rem)
		rem = &mine;
	while ((r = cs_wait_call(t, SYS_nanosleep, (long)&left, (long)rem, 0, 0, 0, 0)) == CS_RESTART)
		left = *rem;
	return r;
}

static SLOW int nanosleep_slow(const struct timespec *req, struct timespec *rem)
{
	struct cs_thread *t = cs_sleep_enter(is_zero(req));
	if (!t)
		return cs_real.nanosleep(req, rem);
	return (int)cs_set_errno(sleep_for(t, req, rem));
}

CS_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	if (__builtin_expect(cs_sleep_direct(), 1))
		return cs_real.nanosleep(req, rem);
	return nanosleep_slow(req, rem);
}

/* clock_nanosleep returns the error number instead of setting errno. An
 * absolute deadline stays as it is after a stray signal; a relative one
 * continues with what is left. */
static SLOW int clock_nanosleep_slow(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
	struct cs_thread *t = cs_sleep_enter(is_zero(req));
	struct timespec left, mine;
	long r;

	if (!t)
		return cs_real.clock_nanosleep(clock, flags, req, rem);
	left = *req;
	if (!rem)
		rem = &mine;
	while ((r = cs_wait_call(t, SYS_clock_nanosleep, clock, flags, (long)&left, (long)rem, 0, 0)) == CS_RESTART)
		if (!(flags & TIMER_ABSTIME))
			left = *rem;
	return (int)-r;
}

CS_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
	if (__builtin_expect(cs_sleep_direct(), 1))
		return cs_real.clock_nanosleep(clock, flags, req, rem);
	return clock_nanosleep_slow(clock, flags, req, rem);
}

static SLOW int usleep_slow(useconds_t us)
{
	struct cs_thread *t = cs_sleep_enter(us == 0);
	struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
	if (!t)
		return cs_real.usleep(us);
	return (int)cs_set_errno(sleep_for(t, &ts, NULL));
}

CS_EXPORT int usleep(useconds_t us)
{
	if (__builtin_expect(cs_sleep_direct(), 1))
		return cs_real.usleep(us);
	return usleep_slow(us);
}

/* sleep() has no error return: a cancelled sleep ends at once and reports no
 * time left (with errno ECANCELED), so a loop that sleeps "the rest" does not
 * spin; the thread's next blocking call fails instead. */
static SLOW unsigned int sleep_slow(unsigned int seconds)
{
	struct cs_thread *t = cs_sleep_enter(seconds == 0);
	struct timespec ts = { seconds, 0 }, rem = { 0, 0 };
	long r;

	if (!t)
		return cs_real.sleep(seconds);
	r = sleep_for(t, &ts, &rem);
	if (r == -ECANCELED) {
		errno = ECANCELED;
		return 0;
	}
	if (r == -EINTR)
		return (unsigned)rem.tv_sec + (rem.tv_nsec >= 500000000);
	return 0;
}

CS_EXPORT unsigned int sleep(unsigned int seconds)
{
	if (__builtin_expect(cs_sleep_direct(), 1))
		return cs_real.sleep(seconds);
	return sleep_slow(seconds);
}

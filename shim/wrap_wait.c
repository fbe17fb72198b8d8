/* Interposed waits and sleeps.
 *
 * A wait is looked at only when the calling thread serves a client: then
 * the policy tells an event loop's wait (never failed) from a wait on
 * upstream work (cancellable). Sleeps have nothing to look at. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "cancel_signal.h"
#include "policy.h"
#include "raw_syscall.h"
#include "real.h"

#define CS_EXPORT __attribute__((visibility("default")))

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

static struct cs_thread *scan_pollfds(const struct pollfd *fds, nfds_t n, int zero)
{
	struct cs_wait_scan w = { 0 };

	if (__builtin_expect(!cs_wait_scanned(), 1))
		return NULL;
	for (nfds_t i = 0; i < n; i++)
		if (fds[i].fd >= 0)
			cs_wait_scan_fd(&w, fds[i].fd);
	return cs_wait_decide(cs_tls.rec, &w, zero);
}

static inline int do_ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = scan_pollfds(fds, n, is_zero(tmo));
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec ts;
		sigset_t copy;
		const sigset_t *m = cs_signal_strip(mask, &copy);
		struct timespec *left = copy_timespec(tmo, &ts);	/* the kernel counts it down */
		long r;
		do
			r = cs_wait_call(t, SYS_ppoll, (long)fds, n, (long)left, (long)m, 8, 0);
		while (r == CS_RESTART);
		return (int)cs_set_errno(r);
	}
	return cs_real.ppoll(fds, n, tmo, mask);
}

static inline int do_poll(struct pollfd *fds, nfds_t n, int ms)
{
	struct cs_thread *t = scan_pollfds(fds, n, ms == 0);
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec ts;
		struct timespec *left = ms_to_timespec(ms, &ts);	/* the kernel counts it down */
		long r;
		do
			r = cs_wait_call(t, SYS_ppoll, (long)fds, n, (long)left, 0, 8, 0);
		while (r == CS_RESTART);
		return (int)cs_set_errno(r);
	}
	return cs_real.poll(fds, n, ms);
}

CS_EXPORT int poll(struct pollfd *fds, nfds_t n, int ms)
{
	return do_poll(fds, n, ms);
}

CS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int ms, size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__chk_fail();
	return do_poll(fds, n, ms);
}

CS_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask)
{
	return do_ppoll(fds, n, tmo, mask);
}

CS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *tmo, const sigset_t *mask, size_t fdslen)
{
	if (fdslen / sizeof *fds < n)
		__chk_fail();
	return do_ppoll(fds, n, tmo, mask);
}

static struct cs_thread *scan_fdsets(int nfds, const fd_set *r, const fd_set *w, const fd_set *e, int zero)
{
	struct cs_wait_scan scan = { 0 };

	if (__builtin_expect(!cs_wait_scanned(), 1))
		return NULL;
	if (nfds > FD_SETSIZE)
		nfds = FD_SETSIZE;
	for (int fd = 0; fd < nfds; fd++)
		if ((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e)))
			cs_wait_scan_fd(&scan, fd);
	return cs_wait_decide(cs_tls.rec, &scan, zero);
}

CS_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
	struct cs_thread *t = scan_fdsets(nfds, r, w, e, tv && tv->tv_sec == 0 && tv->tv_usec == 0);
	if (__builtin_expect(t != NULL, 0)) {
		long res;	/* the kernel counts *tv down, as Linux's select does */
		do
			res = cs_wait_call(t, SYS_select, nfds, (long)r, (long)w, (long)e, (long)tv, 0);
		while (res == CS_RESTART);
		return (int)cs_set_errno(res);
	}
	return cs_real.select(nfds, r, w, e, tv);
}

CS_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = scan_fdsets(nfds, r, w, e, is_zero(tmo));
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec ts;
		sigset_t copy;
		long data[2] = { (long)cs_signal_strip(mask, &copy), 8 };
		struct timespec *left = copy_timespec(tmo, &ts);
		long res;
		do
			res = cs_wait_call(t, SYS_pselect6, nfds, (long)r, (long)w, (long)e, (long)left,
					   mask ? (long)data : 0);
		while (res == CS_RESTART);
		return (int)cs_set_errno(res);
	}
	return cs_real.pselect(nfds, r, w, e, tmo, mask);
}

static struct cs_thread *scan_epoll(int epfd, int zero)
{
	struct cs_wait_scan w = { 0 };

	if (__builtin_expect(!cs_wait_scanned(), 1))
		return NULL;
	cs_wait_scan_epoll(&w, epfd);
	return cs_wait_decide(cs_tls.rec, &w, zero);
}

CS_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int ms)
{
	struct cs_thread *t = scan_epoll(epfd, ms == 0);
	if (__builtin_expect(t != NULL, 0)) {
		long r;
		do
			r = cs_wait_call(t, SYS_epoll_pwait, epfd, (long)ev, max, ms, 0, 8);
		while (r == CS_RESTART);
		return (int)cs_set_errno(r);
	}
	return cs_real.epoll_wait(epfd, ev, max, ms);
}

CS_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int ms, const sigset_t *mask)
{
	struct cs_thread *t = scan_epoll(epfd, ms == 0);
	if (__builtin_expect(t != NULL, 0)) {
		sigset_t copy;
		const sigset_t *m = cs_signal_strip(mask, &copy);
		long r;
		do
			r = cs_wait_call(t, SYS_epoll_pwait, epfd, (long)ev, max, ms, (long)m, 8);
		while (r == CS_RESTART);
		return (int)cs_set_errno(r);
	}
	return cs_real.epoll_pwait(epfd, ev, max, ms, mask);
}

CS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *tmo, const sigset_t *mask)
{
	struct cs_thread *t = scan_epoll(epfd, is_zero(tmo));
	if (__builtin_expect(t != NULL, 0)) {
		sigset_t copy;
		const sigset_t *m = cs_signal_strip(mask, &copy);
		long r;
		do
			r = cs_wait_call(t, SYS_epoll_pwait2, epfd, (long)ev, max, (long)tmo, (long)m, 8);
		while (r == CS_RESTART);
		return (int)cs_set_errno(r);
	}
	return cs_real.epoll_pwait2(epfd, ev, max, tmo, mask);
}

/* nanosleep through the cancellable path, continuing with the time left
 * after a stray signal. */
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

CS_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem)
{
	struct cs_thread *t = cs_sleep_enter(is_zero(req));
	if (__builtin_expect(t != NULL, 0))
		return (int)cs_set_errno(sleep_for(t, req, rem));
	return cs_real.nanosleep(req, rem);
}

/* clock_nanosleep returns the error number instead of setting errno. */
CS_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *req, struct timespec *rem)
{
	struct cs_thread *t = cs_sleep_enter(is_zero(req));
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec left = *req, mine;
		long r;
		/* An absolute deadline stays; a relative one continues with
		 * what is left. */
		if (!rem)
			rem = &mine;
		do {
			r = cs_wait_call(t, SYS_clock_nanosleep, clock, flags, (long)&left, (long)rem, 0, 0);
			if (r == CS_RESTART && !(flags & TIMER_ABSTIME))
				left = *rem;
		} while (r == CS_RESTART);
		return (int)-r;
	}
	return cs_real.clock_nanosleep(clock, flags, req, rem);
}

CS_EXPORT int usleep(useconds_t us)
{
	struct cs_thread *t = cs_sleep_enter(us == 0);
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec ts = { us / 1000000, (long)(us % 1000000) * 1000 };
		return (int)cs_set_errno(sleep_for(t, &ts, NULL));
	}
	return cs_real.usleep(us);
}

/* sleep() has no error return: a cancelled sleep ends at once and reports no
 * time left (with errno ECANCELED), so a loop that sleeps "the rest" does not
 * spin; the thread's next blocking call fails instead. */
CS_EXPORT unsigned int sleep(unsigned int seconds)
{
	struct cs_thread *t = cs_sleep_enter(seconds == 0);
	if (__builtin_expect(t != NULL, 0)) {
		struct timespec ts = { seconds, 0 }, rem = { 0, 0 };
		long r = sleep_for(t, &ts, &rem);
		if (r == -ECANCELED) {
			errno = ECANCELED;
			return 0;
		}
		if (r == -EINTR)
			return (unsigned)rem.tv_sec + (rem.tv_nsec >= 500000000);
		return 0;
	}
	return cs_real.sleep(seconds);
}

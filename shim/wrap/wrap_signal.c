/* Interposed signal calls, for the shim's signal only, once the machinery
 * started (the first thread serving a client): the application's handler for
 * it is kept aside and still runs (cancel_signal.c), and no mask the
 * application sets can block it. Before that, and for every other signal,
 * everything passes through unchanged. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "base/process.h"
#include "base/real.h"
#include "cancel/cancel_signal.h"
#include "track/threads.h"
#include "wrap/export.h"

CS_EXPORT int sigaction(int signo, const struct sigaction *act, struct sigaction *old)
{
	if (cs_signal_is_ours(signo))
		return cs_signal_app_action(act, old);
	return cs_real.sigaction(signo, act, old);
}

static __sighandler_t set_handler(int signo, __sighandler_t handler, int flags)
{
	struct sigaction sa, old;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = handler;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	if (cs_signal_app_action(&sa, &old) < 0)
		return SIG_ERR;
	return old.sa_handler;
}

static __sighandler_t do_signal(int signo, __sighandler_t handler)
{
	if (cs_signal_is_ours(signo))
		return set_handler(signo, handler, SA_RESTART);
	return cs_real.signal(signo, handler);
}

CS_EXPORT __sighandler_t signal(int signo, __sighandler_t handler)
{
	return do_signal(signo, handler);
}

CS_EXPORT __sighandler_t bsd_signal(int signo, __sighandler_t handler)
{
	return do_signal(signo, handler);
}

CS_EXPORT __sighandler_t sysv_signal(int signo, __sighandler_t handler)
{
	if (cs_signal_is_ours(signo))
		return set_handler(signo, handler, SA_RESETHAND | SA_NODEFER);
	return cs_real.sysv_signal(signo, handler);
}

/* The application may believe our signal is blocked in this thread; it is
 * not, but it reads back what it asked for. */
static const sigset_t *filter_mask(int how, const sigset_t *set, sigset_t *copy, int *wants_blocked)
{
	int signo = cs_proc.cfg.signo, member;

	*wants_blocked = -1;
	if (!set)
		return set;
	if (!cs_signal_is_ours(signo)) {
		/* Inert so far: unchanged, but remembered (cancel_signal.h). */
		if (signo == cs_proc.cfg.signo && atomic_load_explicit(&cs_proc.active, memory_order_relaxed))
			cs_signal_mask_passed(how, set);
		return set;
	}
	member = sigismember(set, signo) == 1;
	if (how == SIG_SETMASK)
		*wants_blocked = member;
	else if (member)
		*wants_blocked = how == SIG_BLOCK;
	return how == SIG_UNBLOCK ? set : cs_signal_strip(set, copy);
}

static void report_mask(sigset_t *old, int wants_blocked)
{
	if (!cs_signal_is_ours(cs_proc.cfg.signo))
		return;
	if (old && cs_tls.app_blocked)
		sigaddset(old, cs_proc.cfg.signo);
	if (wants_blocked >= 0)
		cs_tls.app_blocked = (uint8_t)wants_blocked;
}

CS_EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	int wants;
	const sigset_t *use = filter_mask(how, set, &copy, &wants);
	int r = cs_real.pthread_sigmask(how, use, old);
	if (r == 0)
		report_mask(old, wants);
	return r;
}

CS_EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old)
{
	sigset_t copy;
	int wants;
	const sigset_t *use = filter_mask(how, set, &copy, &wants);
	int r = cs_real.sigprocmask(how, use, old);
	if (r == 0) {
		int saved = errno;
		report_mask(old, wants);
		errno = saved;
	}
	return r;
}

CS_EXPORT int sigsuspend(const sigset_t *mask)
{
	sigset_t copy;
	return cs_real.sigsuspend(cs_signal_strip(mask, &copy));
}

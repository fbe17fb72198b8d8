/* The cancel signal.
 *
 * Ours is told apart from the application's by how it was sent: the watcher
 * uses rt_tgsigqueueinfo with SI_QUEUE, our pid and a per-process cookie;
 * the eBPF program (mode ebpf, kernel-side cancel) uses bpf_send_signal_task,
 * which the kernel delivers as SI_KERNEL, pid 0, with the cookie as its
 * value. No process can send SI_KERNEL to another (rt_sigqueueinfo refuses
 * si_code >= 0 unless the target is the caller), so it cannot be forged from
 * outside. Anything else is the application's and goes to the action it
 * installed.
 *
 * The handler only moves the program counter (see syscall_cp_x86_64.S): no
 * allocation, no lock, no stdio, errno saved. */
#include "cancel/cancel_signal.h"

#include <errno.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "base/process.h"
#include "base/raw_syscall.h"
#include "base/real.h"
#include "track/threads.h"

/* The application's action for our signal. Two copies so the handler always
 * reads a whole one while sigaction() writes the other. */
static struct sigaction app_actions[2];
static _Atomic int app_current;
static _Atomic int installed;
/* Some thread may hold the signal blocked from before the handler was
 * installed (inherited across exec, or set while the shim was inert). */
static _Atomic int blocked_before;

/* Until the machinery starts (the first thread that serves a client), the
 * signal is the application's alone: its masks and actions pass through
 * unchanged, and a program that never serves cannot tell the shim is there. */
int cs_signal_is_ours(int signo)
{
	return signo == cs_proc.cfg.signo && atomic_load_explicit(&installed, memory_order_acquire) &&
	       atomic_load_explicit(&cs_proc.active, memory_order_relaxed);
}

void cs_signal_at_load(void)
{
	sigset_t now;

	if (cs_raw4(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &now, 8) == 0 && sigismember(&now, cs_proc.cfg.signo) == 1)
		atomic_store(&blocked_before, 1);
}

void cs_signal_mask_passed(int how, const sigset_t *set)
{
	if (set && how != SIG_UNBLOCK && sigismember(set, cs_proc.cfg.signo) == 1 && !atomic_load(&blocked_before))
		atomic_store(&blocked_before, 1);
}

void cs_signal_thread_claimed(void)
{
	sigset_t one, old;

	if (!atomic_load_explicit(&blocked_before, memory_order_relaxed))
		return;
	sigemptyset(&one);
	sigaddset(&one, cs_proc.cfg.signo);
	if (cs_raw4(SYS_rt_sigprocmask, SIG_UNBLOCK, &one, &old, 8) == 0 && sigismember(&old, cs_proc.cfg.signo) == 1)
		cs_tls.app_blocked = 1;	/* it still reads back as blocked */
}

static void run_app_action(int signo, siginfo_t *si, void *uc)
{
	int current = atomic_load(&app_current);
	struct sigaction *a = &app_actions[current];
	sigset_t old;

	if (a->sa_handler == SIG_IGN)
		return;
	if (a->sa_handler == SIG_DFL) {
		/* The default action of a real-time or user signal ends the
		 * process: let the kernel do it once this handler returns. */
		struct sigaction dfl = { .sa_handler = SIG_DFL };
		cs_real.sigaction(signo, &dfl, NULL);
		cs_raw3(SYS_tgkill, cs_proc.pid, cs_raw0(SYS_gettid), signo);
		return;
	}
	cs_raw4(SYS_rt_sigprocmask, SIG_BLOCK, &a->sa_mask, &old, 8);
	if (a->sa_flags & SA_SIGINFO)
		a->sa_sigaction(signo, si, uc);
	else
		a->sa_handler(signo);
	cs_raw4(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (a->sa_flags & SA_RESETHAND) {
		app_actions[!current].sa_handler = SIG_DFL;
		app_actions[!current].sa_flags = 0;
		atomic_store(&app_current, !current);
	}
}

static void on_signal(int signo, siginfo_t *si, void *ucv)
{
	int saved = errno;

	if (((si->si_code == SI_QUEUE && si->si_pid == cs_proc.pid) || si->si_code == SI_KERNEL) &&
	    (uint32_t)si->si_value.sival_int == cs_proc.cookie) {
		ucontext_t *uc = ucv;
		uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
		struct cs_thread *t = cs_tls.rec;

		if (t && (atomic_load(&t->state) & CS_ST_CANCEL)) {
			if (pc >= (uintptr_t)cs_cp_begin && pc < (uintptr_t)cs_cp_end)
				uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)cs_cp_cancel;
		} else {
			/* Sent while the thread was in a call for a request it
			 * has finished since: it may have cut short a call that
			 * the kernel does not restart. The wrapper restarts it. */
			cs_tls.strays++;
		}
	} else {
		run_app_action(signo, si, ucv);
	}
	errno = saved;
}

static void our_action(struct sigaction *sa)
{
	memset(sa, 0, sizeof *sa);
	sa->sa_sigaction = on_signal;
	/* SA_RESTART: a call the signal catches outside the cancellable range
	 * is restarted, so the application never sees a stray EINTR from us.
	 * Inside the range the handler redirects the call whatever the kernel
	 * decided about restarting it. */
	sa->sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
	sigemptyset(&sa->sa_mask);
}

void cs_signal_after_fork_child(void)
{
	struct sigaction sa;

	/* fork copies the signal actions before the memory: another thread's
	 * install can land in between, and the child then believes in a
	 * handler it does not have (its first cancel would kill it). */
	if (atomic_load(&installed)) {
		our_action(&sa);
		cs_real.sigaction(cs_proc.cfg.signo, &sa, NULL);
	}
}

int cs_signal_install(void)
{
	struct sigaction sa, old;

	our_action(&sa);
	if (cs_real.sigaction(cs_proc.cfg.signo, &sa, &old) < 0)
		return -errno;
	if (old.sa_sigaction != on_signal)
		app_actions[0] = old;
	atomic_store(&app_current, 0);
	atomic_store(&installed, 1);
	return 0;
}

int cs_signal_send(int tid)
{
	siginfo_t info;

	memset(&info, 0, sizeof info);
	info.si_signo = cs_proc.cfg.signo;
	info.si_code = SI_QUEUE;
	info.si_pid = cs_proc.pid;
	info.si_uid = getuid();
	info.si_value.sival_int = (int)cs_proc.cookie;
	return (int)cs_raw4(SYS_rt_tgsigqueueinfo, cs_proc.pid, tid, cs_proc.cfg.signo, &info);
}

int cs_signal_app_action(const struct sigaction *act, struct sigaction *old)
{
	if (!atomic_load(&installed))
		return cs_real.sigaction(cs_proc.cfg.signo, act, old);
	int current = atomic_load(&app_current);
	if (old)
		*old = app_actions[current];
	if (act) {
		app_actions[!current] = *act;
		atomic_store(&app_current, !current);
	}
	return 0;
}

const sigset_t *cs_signal_strip(const sigset_t *mask, sigset_t *copy)
{
	if (!mask || !cs_signal_is_ours(cs_proc.cfg.signo) || !sigismember(mask, cs_proc.cfg.signo))
		return mask;
	*copy = *mask;
	sigdelset(copy, cs_proc.cfg.signo);
	return copy;
}

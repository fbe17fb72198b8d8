/* The shim's life in a process: settings read at load (nothing else happens
 * then: no thread, no allocation beyond dlsym's) and the reset a new process
 * needs. The machinery starts later, when a thread first binds
 * (machinery.c); accepted connections enter the table in accept.c. Nothing
 * here is called from outside: a constructor and a fork handler. */
#include "base/process.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "base/deepbind.h"
#include "base/log.h"
#include "base/once.h"
#include "base/raw_syscall.h"
#include "base/real.h"
#include "cancel/cancel_signal.h"
#include "cancel/profile.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "track/conn_key.h"
#include "track/fdtable.h"
#include "track/kshared.h"
#include "track/scope.h"
#include "track/thread_id.h"
#include "track/threads.h"
#include "watch/ebpf_watcher.h"
#include "watch/watcher.h"

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);
static void reset_new_process(void);

static const char *env(const char *name)
{
	return getenv(name);
}

__attribute__((constructor)) static void cs_load(void)
{
	char err[256], calls[64], sig[32];
	int saved = errno;

	/* Even a shim that is off forwards every call, so resolve first. */
	cs_real_resolve();
	cs_deepbind_resolve();
	cs_log_init();
	if (cs_config_load(&cs_proc.cfg, env, err, sizeof err) < 0) {
		cs_log_level = cs_proc.cfg.log;
		cs_error("%s; the shim is off for this process", err);
		goto out;
	}
	cs_log_level = cs_proc.cfg.log;
	if (cs_proc.cfg.mode == CS_MODE_OFF) {
		cs_info("off (CANCELSHIM_MODE=off)");
		goto out;
	}
	cs_proc.pid = (int)cs_raw0(SYS_getpid);
	if (cs_raw3(SYS_getrandom, &cs_proc.cookie, sizeof cs_proc.cookie, 1 /* GRND_NONBLOCK */) != sizeof cs_proc.cookie)
		cs_proc.cookie = (uint32_t)cs_proc.pid * 2654435761u ^ (uint32_t)time(NULL);
	atomic_store(&cs_proc.next_gen, 1);
	cs_thread_id_init();
	cs_profile_at_load(cs_proc.cfg.profile, cs_proc.pid);
	cs_process_arm(reset_new_process);
	cs_signal_at_load();
	cs_calls_format(cs_proc.cfg.calls, calls, sizeof calls);
	cs_signal_format(cs_proc.cfg.signo, sig, sizeof sig);
	/* Registered now, while the process has one thread: registering it
	 * later, from the first accept, would race with a fork from another
	 * thread. glibc keeps the first handlers without allocating. */
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child)) {
		cs_log_failure(CS_LOG_ERROR, "cannot register a fork handler; the shim is off for this process");
		goto out;
	}
	/* Checks privileges and BTF only: the instance loads at the first
	 * listen() or accept() of a TCP socket. */
	cs_ebpf_set_host(&(struct cs_ebpf_host){ cs_watcher_watch_ring, cs_watcher_rewatch_all });
	cs_ebpf_configure(cs_proc.cfg.mode);
	atomic_store(&cs_proc.active, 1);
	cs_info("active: mode %s, on %s, calls %s, signal %s, profile %s%s",
		cs_ebpf_state() == CS_EBPF_IDLE ? "ebpf" : "epoll", cs_on_name(cs_proc.cfg.on), calls, sig,
		cs_profile_name(cs_profile_in_force()),
		cs_proc.cfg.action == CS_ACTION_OBSERVE ? ", action observe (nothing is failed)" : "");
	cs_scope_announce();
out:
	errno = saved;
}

/* What the parent's watchers knew is the parent's: a connection the child
 * inherits is watched anew (with epoll: the child's own eBPF instance, if it
 * ever loads one, cannot have seen it arrive), a listener's port goes into
 * the child's instance anew, and the parent's eBPF descriptors are gone. */
static void forget_parent_watchers(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);

	(void)fd, (void)arg;
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT)
		atomic_store(slot, (s & ~(CS_CLIENT_REGISTERED | CS_CLIENT_EBPF | CS_CLIENT_PENDING | CS_CLIENT_PENDING_RST)) |
				   CS_CLIENT_INHERITED);
	else if (CS_SLOT_KIND(s) == CS_KIND_LISTENER)
		atomic_fetch_and(slot, ~(CS_LISTENER_IN_MAP | CS_LISTENER_TRUSTED));
	else if (CS_SLOT_IS_OURS(s))
		atomic_store(slot, 0);
}

/* Only the forking thread exists in the child, and the parent's watcher
 * thread is not among the survivors. Nothing here takes a lock. */
static void reset_in_child(void)
{
	/* First: the memory shared with the parent's eBPF program (thread
	 * records among it) becomes the child's own copy. */
	cs_kshared_after_fork_child();
	cs_proc.pid = (int)cs_raw0(SYS_getpid);
	cs_log_after_fork_child();
	/* A thread of the parent was starting the machinery at the fork: it
	 * does not exist here, so the child starts it again itself. */
	cs_once_forget_running(&cs_proc.machinery);
	cs_signal_after_fork_child();
	cs_watcher_after_fork_child();
	cs_ebpf_after_fork_child();
	cs_stats_after_fork_child();	/* stop writing the parent's segment */
	cs_threads_after_fork_child((int)cs_raw0(SYS_gettid));
	cs_fd_for_each(0, CS_FD_MAX - 1, forget_parent_watchers, NULL);
	/* A prefork parent's loop is not the child's: the child decides anew. */
	cs_tls.loop = 0;
}

/* A prefork master loads its child's eBPF instance before the fork
 * (watch/ebpf_watcher.h): the child may drop privileges before it could
 * load one itself. */
static void atfork_prepare(void)
{
	cs_ebpf_fork_prepare();
}

static void atfork_parent(void)
{
	cs_ebpf_fork_parent();
}

static void atfork_child(void)
{
	reset_in_child();
	atomic_store(cs_process_word, CS_WORD_ARMED);	/* the kernel wiped it */
	/* Last: the registry and the descriptor table are the child's by now. */
	cs_ebpf_fork_child_adopt();
}

/* What a new process nobody announced (clone() without fork's handlers) must
 * forget, when its first thread notices (base/process.c). */
static void reset_new_process(void)
{
	cs_thread_id_distrust();	/* glibc's descriptor holds the parent's id */
	reset_in_child();
}

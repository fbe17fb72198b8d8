/* The shim's life in a process: settings read at load (nothing else happens
 * then: no thread, no allocation beyond dlsym's), the machinery started the
 * first time a thread binds to a client, and the reset a fork child needs. */
#include "process.h"
#include "profile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>

#include "cancel_signal.h"
#include "conn_key.h"
#include "ebpf_watcher.h"
#include "fdtable.h"
#include "log.h"
#include "policy.h"
#include "raw_syscall.h"
#include "real.h"
#include "scope.h"
#include "stats.h"
#include "thread_id.h"
#include "threads.h"
#include "watcher.h"

struct cs_process cs_proc = { .pid = 0, .active = 0 };

static void atfork_child(void);

enum { WORD_NEW = 0, WORD_ARMED = 1, WORD_RESETTING = 2 };

/* Where cs_process_word points while no wiped page exists (the shim is off,
 * or the kernel predates MADV_WIPEONFORK): never 0, nothing is detected. */
static _Atomic int word_fallback = WORD_ARMED;
_Atomic int *cs_process_word = &word_fallback;

/* One private anonymous page, wiped in every new process. */
static void arm_process_word(void)
{
	long p = cs_raw6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p < 0 && p > -4096)
		return;
	if (cs_raw3(SYS_madvise, p, 4096, MADV_WIPEONFORK) < 0) {
		cs_raw2(SYS_munmap, p, 4096);
		cs_info("this kernel cannot wipe a page on fork: a child made by clone() without fork is not noticed");
		return;
	}
	atomic_store((_Atomic int *)p, WORD_ARMED);
	cs_process_word = (_Atomic int *)p;
}

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
	arm_process_word();
	cs_signal_at_load();
	cs_calls_format(cs_proc.cfg.calls, calls, sizeof calls);
	cs_signal_format(cs_proc.cfg.signo, sig, sizeof sig);
	/* Registered now, while the process has one thread: registering it
	 * later, from the first accept, would race with a fork from another
	 * thread. glibc keeps the first handlers without allocating. */
	if (pthread_atfork(NULL, NULL, atfork_child)) {
		cs_log_failure(CS_LOG_ERROR, "cannot register a fork handler; the shim is off for this process");
		goto out;
	}
	/* Checks privileges and BTF only: the instance loads at the first
	 * listen() or accept() of a TCP socket. */
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

void cs_process_fail(const char *what, int err)
{
	if (atomic_exchange(&cs_proc.active, 0))
		cs_log_failure(CS_LOG_ERROR, "%s (%s); passing every call through from now on", what, strerror(err));
}

uint32_t cs_process_new_gen(void)
{
	uint32_t gen;
	do
		gen = atomic_fetch_add_explicit(&cs_proc.next_gen, 1, memory_order_relaxed);
	while (gen == 0);
	return gen;
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
	cs_proc.pid = (int)cs_raw0(SYS_getpid);
	cs_log_after_fork_child();
	/* A thread of the parent was starting the machinery at the fork: it
	 * does not exist here, so the child starts it again itself. */
	if (atomic_load(&cs_proc.machinery) == CS_MACH_STARTING)
		atomic_store(&cs_proc.machinery, CS_MACH_IDLE);
	cs_signal_after_fork_child();
	cs_watcher_after_fork_child();
	cs_ebpf_after_fork_child();
	cs_stats_after_fork_child();	/* stop writing the parent's segment */
	cs_threads_after_fork_child((int)cs_raw0(SYS_gettid));
	cs_fd_for_each(0, CS_FD_MAX - 1, forget_parent_watchers, NULL);
	/* A prefork parent's loop is not the child's: the child decides anew. */
	cs_tls.loop = 0;
}

static void atfork_child(void)
{
	reset_in_child();
	atomic_store(cs_process_word, WORD_ARMED);	/* the kernel wiped it */
}

/* A child made by clone() without CLONE_VM runs no fork handler: until now
 * it shared the parent's epoll set (its connections reported to the
 * parent's watcher, their generations colliding with the parent's), the
 * parent's eBPF descriptors and segment. The first thread to notice resets;
 * any other waits for it. */
void cs_process_changed(void)
{
	int expected = WORD_NEW;

	if (atomic_compare_exchange_strong(cs_process_word, &expected, WORD_RESETTING)) {
		cs_thread_id_distrust();	/* glibc's descriptor holds the parent's id */
		reset_in_child();
		atomic_store(cs_process_word, WORD_ARMED);
		cs_debug("a new process made without fork: the parent's watchers are forgotten");
		return;
	}
	while (atomic_load(cs_process_word) == WORD_RESETTING)
		cs_raw0(SYS_sched_yield);
}

void cs_process_accepted(int lfd, int fd, uint64_t ls_before, unsigned epoch_before, const struct sockaddr *peer,
			 socklen_t peer_len)
{
	_Atomic uint64_t *lref;
	uint64_t ls, slot, key = 0;

	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed))
		return;
	cs_process_check();
	lref = cs_fd_ref(lfd);
	ls = lref ? atomic_load(lref) : 0;
	if (CS_SLOT_KIND(ls) != CS_KIND_LISTENER || !(ls & CS_LISTENER_TYPE_KNOWN)) {
		/* Once per listener: is what it accepts a client connection? */
		int type = 0, domain = 0;
		socklen_t len = sizeof type;
		cs_raw6(SYS_getsockopt, lfd, SOL_SOCKET, SO_TYPE, (long)&type, (long)&len, 0);
		len = sizeof domain;
		cs_raw6(SYS_getsockopt, lfd, SOL_SOCKET, SO_DOMAIN, (long)&domain, (long)&len, 0);
		ls = CS_SLOT_MAKE(CS_KIND_LISTENER, 0) | CS_LISTENER_TYPE_KNOWN;
		if (type == SOCK_STREAM && (domain == AF_INET || domain == AF_INET6 || domain == AF_UNIX))
			ls |= CS_LISTENER_STREAM;
		if (lref)
			atomic_store(lref, ls);
		if ((ls & CS_LISTENER_STREAM) && domain != AF_UNIX)
			cs_ebpf_listener_met(lfd);
	}
	if (!(ls & CS_LISTENER_STREAM)) {
		cs_fd_created(fd, CS_FDCLASS_NET);
		return;
	}
	slot = CS_SLOT_MAKE(CS_KIND_CLIENT, cs_process_new_gen());
	/* Covered by the eBPF watcher if its listener was TRUSTED before the
	 * accept began (then the client queued after its port was filtered).
	 * A client CANCELSHIM_PORTS left out is never watched (scope.h). */
	if (cs_scope_excludes(lfd, lref))
		slot |= CS_CLIENT_UNSCOPED;
	else if ((ls_before & CS_LISTENER_TRUSTED) && peer)
		key = cs_conn_key_from_sockaddr(peer, peer_len, CS_LISTENER_PORT(ls_before));
	cs_conn_key_set(fd, key);
	if (key && cs_conn_key_index(fd, key) == 0)
		slot |= CS_CLIENT_EBPF;
	if (CS_SLOT_IS_OURS(cs_fd_exchange(fd, slot, 1)))
		cs_watcher_own_fd_lost(fd);	/* closed behind our back */
	if (slot & CS_CLIENT_EBPF) {
		/* Still TRUSTED now that the connection is stored? If not, the
		 * watcher started distrusting it meanwhile (ebpf_watcher.h):
		 * epoll watches this one. */
		_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
		uint64_t expected = slot;
		if (!(cs_fd_get(lfd) & CS_LISTENER_TRUSTED) && ref)
			atomic_compare_exchange_strong(ref, &expected, slot & ~CS_CLIENT_EBPF);
		else if (atomic_load(&cs_ebpf_epoch) != epoch_before)
			cs_ebpf_check_straddler(fd, slot);
		else if (atomic_load(&cs_proc.machinery) == CS_MACH_RUNNING)
			cs_ebpf_check_accepted(fd, slot, key);
	}
	if (!atomic_load_explicit(&cs_proc.serving, memory_order_relaxed))
		atomic_store(&cs_proc.serving, 1);
	cs_stat_add(CS_STAT_CONNECTIONS, 1);
	cs_stats_publish();	/* the first accept makes the process visible to cancelctl */
}

static void release_record(void *p)
{
	struct cs_thread *t = p;
	if (cs_tls.rec == t)
		cs_tls.rec = NULL;
	cs_thread_release(t);
}

/* The thread key (to free records at thread exit) and the signal handler,
 * once per process; the watcher itself starts with the first registration. */
static int start_machinery(void)
{
	int expected = CS_MACH_IDLE, err;

	if (atomic_compare_exchange_strong(&cs_proc.machinery, &expected, CS_MACH_STARTING)) {
		cs_tls.busy = 1;
		err = pthread_key_create(&cs_proc.key, release_record);
		if (err) {
			cs_process_fail("cannot create a thread key", err);
		} else if ((err = -cs_signal_install())) {
			cs_process_fail("cannot install the cancel signal handler", err);
		}
		atomic_store(&cs_proc.machinery, err ? CS_MACH_FAILED : CS_MACH_RUNNING);
		if (!err)
			cs_ebpf_machinery_started();
		cs_tls.busy = 0;
		return !err;
	}
	while (expected == CS_MACH_STARTING) {
		cs_raw0(SYS_sched_yield);
		expected = atomic_load(&cs_proc.machinery);
	}
	return expected == CS_MACH_RUNNING;
}

struct cs_thread *cs_process_thread(void)
{
	struct cs_thread *t = cs_tls.rec;

	if (t)
		return t;
	cs_process_check();
	if (atomic_load(&cs_proc.machinery) != CS_MACH_RUNNING && !start_machinery())
		return NULL;
	t = cs_thread_claim(cs_thread_id());
	if (!t) {
		cs_process_fail("cannot record another thread", ENOMEM);
		return NULL;
	}
	cs_tls.rec = t;
	pthread_setspecific(cs_proc.key, t);
	cs_signal_thread_claimed();
	return t;
}

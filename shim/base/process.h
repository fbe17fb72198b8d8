/* Process-wide state of the shim: its settings, whether it is on, and which
 * process it is in. Every layer above reads it; only the life cycle
 * (policy/lifecycle.c) fills it in. */
#ifndef CS_PROCESS_H
#define CS_PROCESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/once.h"
#include "config.h"

struct cs_process {
	struct cs_config cfg;
	_Atomic int active;	/* 0: every call passes straight through */
	int pid;		/* refreshed in a fork child */
	uint32_t cookie;	/* tags our cancel signals apart from the application's */
	cs_once machinery;	/* thread key and signal handler (policy/machinery.c) */
	pthread_key_t key;	/* its destructor frees a thread's record */
	_Atomic uint32_t next_gen;	/* connection generations */
	_Atomic int serving;	/* a client connection was accepted: waits are worth a look */
	cs_once ebpf_state;	/* enum cs_ebpf_state, the eBPF watcher's load (watch/ebpf_watcher.c) */
	_Atomic int kernel_cancels;	/* the eBPF program cancels threads itself (track/kshared.h) */
};

/* Where the eBPF watcher stands: process-wide, since the statistics name the
 * mode and accept asks about it. Its load is start-once work (base/once.h):
 * OFF where it may not be used, IDLE until the first listen() or accept(). */
enum cs_ebpf_state {
	CS_EBPF_OFF = CS_ONCE_OFF,
	CS_EBPF_IDLE = CS_ONCE_IDLE,
	CS_EBPF_LOADING = CS_ONCE_RUNNING,
	CS_EBPF_LIVE = CS_ONCE_DONE,
	CS_EBPF_FAILED = CS_ONCE_FAILED,
};

extern struct cs_process cs_proc;

/* "ebpf" while the eBPF watcher is live, else "epoll". */
static inline const char *cs_process_mode_name(void)
{
	return atomic_load(&cs_proc.ebpf_state) == CS_EBPF_LIVE ? "ebpf" : "epoll";
}

/* In mode ebpf, who cancels: "kernel" or "watcher"; "" in mode epoll. */
static inline const char *cs_process_canceller_name(void)
{
	if (atomic_load(&cs_proc.ebpf_state) != CS_EBPF_LIVE)
		return "";
	return atomic_load(&cs_proc.kernel_cancels) ? "kernel" : "watcher";
}

/* Turns the shim off for the rest of the process after an internal failure:
 * one line on stderr, every call passes through from now on. */
void cs_process_fail(const char *what, int err);

/* A generation that is never 0. */
uint32_t cs_process_new_gen(void);

/* Non-zero in the process that armed it: a private page the kernel wipes in
 * any new process (MADV_WIPEONFORK), so a child made without fork's
 * handlers (clone() without CLONE_VM) finds it 0. vfork and CLONE_VM
 * children share the memory and, rightly, the parent's state. */
extern _Atomic int *cs_process_word;

enum { CS_WORD_NEW = 0, CS_WORD_ARMED = 1, CS_WORD_RESETTING = 2 };

/* Arms cs_process_word (at load); reset: what a new process must forget,
 * called by the first thread that notices it is in one (the life cycle's
 * reset, which lives above every layer it resets). */
void cs_process_arm(void (*reset)(void));

/* A new process nobody announced: resets what the parent's watchers, eBPF
 * instance, segment and threads were (as the fork handler does). */
void cs_process_changed(void);

/* One load where the shim is about to act for the process (accept, the
 * first registration of a connection, the machinery's start). */
static inline void cs_process_check(void)
{
	if (__builtin_expect(!atomic_load_explicit(cs_process_word, memory_order_relaxed), 0))
		cs_process_changed();
}

#endif

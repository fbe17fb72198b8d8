/* Process-wide state of the shim, and its life cycle: settings at load, the
 * cancellation machinery started on the first binding, and fork. */
#ifndef CS_PROCESS_H
#define CS_PROCESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"

enum cs_machinery { CS_MACH_IDLE = 0, CS_MACH_STARTING = 1, CS_MACH_RUNNING = 2, CS_MACH_FAILED = -1 };

struct cs_process {
	struct cs_config cfg;
	_Atomic int active;	/* 0: every call passes straight through */
	int pid;		/* refreshed in a fork child */
	uint32_t cookie;	/* tags our cancel signals apart from the application's */
	_Atomic int machinery;	/* enum cs_machinery: thread key and signal handler */
	pthread_key_t key;	/* its destructor frees a thread's record */
	_Atomic uint32_t next_gen;	/* connection generations */
	_Atomic int serving;	/* a client connection was accepted: waits are worth a look */
};

extern struct cs_process cs_proc;

/* Marks fd as accepted from listener lfd (a client connection if it is a
 * stream socket). Called after a successful accept, with the listener's word
 * and cs_ebpf_epoch as they were before the accept began, and the peer's
 * address (NULL if not known). */
void cs_process_accepted(int lfd, int fd, uint64_t ls_before, unsigned epoch_before, const struct sockaddr *peer,
			 socklen_t peer_len);

/* The calling thread's record, starting the machinery on first use. NULL
 * when the shim could not start (it has then turned itself off). */
struct cs_thread *cs_process_thread(void);

/* Turns the shim off for the rest of the process after an internal failure:
 * one line on stderr, every call passes through from now on. */
void cs_process_fail(const char *what, int err);

/* Non-zero in the process that armed it: a private page the kernel wipes in
 * any new process (MADV_WIPEONFORK), so a child made without fork's
 * handlers (clone() without CLONE_VM) finds it 0. vfork and CLONE_VM
 * children share the memory and, rightly, the parent's state. */
extern _Atomic int *cs_process_word;

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

/* A generation that is never 0. */
uint32_t cs_process_new_gen(void);


#endif

/* Per-thread state: which client connection a thread serves, and whether it
 * has been cancelled.
 *
 * The watcher thread must read and change another thread's state, so the
 * state lives in a record of a process-wide registry (mmap'd chunks, never
 * freed, reused when a thread exits) rather than in TLS, which dies with its
 * thread. The owning thread reaches its record through cs_tls.rec.
 *
 * state (one atomic word, so binding and cancelling cannot interleave badly):
 *   bits 0-31  generation of the client connection the thread is bound to (0: none)
 *   bit 61     OBSERVED: (CANCELSHIM_ACTION=observe) the cancel of this
 *              binding was counted as a would-cancel already
 *   bit 62     INCALL: the thread is inside a cancellable system call
 *   bit 63     CANCEL: that connection is gone; fail blocking calls
 */
#ifndef CS_THREADS_H
#define CS_THREADS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CS_ST_GEN 0xffffffffull
#define CS_ST_OBSERVED (1ull << 61)
#define CS_ST_INCALL (1ull << 62)
#define CS_ST_CANCEL (1ull << 63)

struct cs_thread {
	_Atomic uint64_t state;
	_Atomic int tid;	/* kernel thread id; 0 when the record is free */
	int bound_fd;		/* the fd the binding was made through (owner only) */
	/* Statistics (stats.c): when the watcher cancelled connection
	 * cancel_gen (CLOCK_MONOTONIC ns, 0: no cancel pending). */
	_Atomic uint64_t cancel_ns;
	_Atomic uint32_t cancel_gen;
	/* The system call number of the cancellable call it is in or entering
	 * (set on the cancellable path only, before INCALL; 0: a call that
	 * would not be failed), for observe mode's log line. */
	_Atomic int call_nr;
	_Atomic uint32_t cancel_rst;	/* bit 0: that cancel was for a reset (cancel_log.h); bit 1: the
					 * eBPF program made it (ebpf/kcancel.h) */
	char pad[64 - 2 * sizeof(uint64_t) - 5 * sizeof(int)];
};
_Static_assert(sizeof(struct cs_thread) == 64, "a thread record is one cache line");

/* Thread-local, initial-exec: reading it is one instruction, and it is safe in
 * a signal handler. */
struct cs_tls {
	struct cs_thread *rec;	/* NULL until the thread first binds */
	uint8_t loop;		/* the thread runs an event loop: never bind it */
	uint8_t app_blocked;	/* the application believes it blocked the cancel signal */
	uint8_t busy;		/* inside the shim's own start-up: don't recurse */
	uint8_t strays;		/* cancel signals that arrived for a binding already gone */
	int wait_epfd;		/* 1 + the epoll set of the thread's last scanned wait (0: none) */
	uint32_t read_gen;	/* the client connection of the read libc is issuing (policy.h: CS_PASS_READ) */
};
extern __thread struct cs_tls cs_tls __attribute__((tls_model("initial-exec")));

/* The calling thread's record, allocating it on first use. NULL when the
 * registry is full or memory is short. */
struct cs_thread *cs_thread_claim(int tid);

/* Frees the calling thread's record (thread exit). */
void cs_thread_release(struct cs_thread *t);

/* Registry walk for the watcher: records [0, cs_threads_limit()). Entries may
 * be NULL (a chunk not yet allocated) or free (tid 0). */
size_t cs_threads_limit(void);
struct cs_thread *cs_thread_at(size_t i);

/* The kernel-side cancel (track/kshared.h): chunk0 (records records, which
 * must be one chunk's worth) becomes the registry's first chunk, and the
 * walk's bound is kept in *mirror from now on. 0, or -1 if chunk 0 exists
 * already (records were handed out before). */
int cs_threads_share(struct cs_thread *chunk0, size_t records, uint32_t *mirror);

/* A fork child still sharing its parent's chunk 0: no records, ever, and
 * cs_threads_after_fork_child leaves the registry alone. */
void cs_threads_refuse(void);

int cs_threads_refused(void);

/* The registry's first chunk (NULL until a record or the kernel-side cancel
 * made it). */
struct cs_thread *cs_threads_chunk0(void);

/* Chunk 0 is still where it was, but the memory behind its address was
 * replaced by a fresh shared value (a prefork child adopting the instance its
 * parent loaded for it, kshared.c): the walk's bound is kept in *mirror from
 * now on. */
void cs_threads_mirror(uint32_t *mirror);

/* In a fork child: only the calling thread survives. */
void cs_threads_after_fork_child(int tid);

#endif

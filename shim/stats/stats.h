/* Counters of what the shim did. Relaxed atomic adds on the rare paths only
 * (accepting, binding, cancels, failed calls); the common path counts
 * nothing.
 *
 * The counters live in a private array until the process first accepts a
 * client; then they move into the shared segment that `cancelctl stats`
 * reads (stats.c, stats_layout.h). cs_stats is the array in use:
 * cs_stats[CS_STAT_CANCELS]. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "stats_layout.h"
#include "track/threads.h"

extern _Atomic(_Atomic uint64_t *) cs_stats_where;

static inline _Atomic uint64_t *cs_stats_base(void)
{
	return atomic_load_explicit(&cs_stats_where, memory_order_acquire);
}
#define cs_stats (cs_stats_base())

static inline void cs_stat_add(enum cs_stat s, uint64_t n)
{
	atomic_fetch_add_explicit(&cs_stats_base()[s], n, memory_order_relaxed);
}

/* Per-listener counters (stats_layout.h: struct cs_seg_port), one row per
 * CANCELSHIM_PORTS entry; like cs_stats, private until published. */
extern _Atomic(struct cs_seg_port *) cs_port_stats_where;

/* Counts s on the row of entry1 (1 + the entry's index; 0: none, nothing
 * counted). The index comes from a word of the descriptor table (fdtable.h:
 * PORT): no system call. */
static inline void cs_stats_port_add(unsigned entry1, enum cs_port_stat s)
{
	if (entry1 - 1u < CS_SEG_PORTS_MAX)
		__atomic_fetch_add(&atomic_load_explicit(&cs_port_stats_where, memory_order_acquire)[entry1 - 1].c[s], 1,
				   __ATOMIC_RELAXED);
}

/* A cancel of the connection gen behind client descriptor fd (a call failed
 * with ECANCELED, or would have in observe mode): counted on its listener's
 * row if fd still is that connection. */
void cs_stats_port_cancel(int fd, uint32_t gen);

/* Creates this process's segment unless it has one (or could not have one):
 * called at the first accept and at a fork child's first binding. Cheap when
 * already done. */
void cs_stats_publish(void);

/* In a fork child (from the atfork handler: no allocation, no lock): back to
 * private counters, zeroed; the parent's segment is left to the parent. */
void cs_stats_after_fork_child(void);

/* A thread's call failed with ECANCELED for connection gen: the first such
 * call after the watcher's cancel adds the latency to the histogram. */
void cs_stats_cancel_done(struct cs_thread *t, uint32_t gen);

/* The watcher in force changed (the eBPF instance went live): the
 * segment's header says so. */
void cs_stats_mode_changed(void);

/* The process is about to change its effective uid to uid (setuid and
 * friends: wrap_uid.c). While still privileged, the segment is given to uid,
 * so that the process can still remove it at exit (/dev/shm is sticky) and
 * readers see an owner that is one of the process's uids. Returns the owner
 * to give it back to if the change fails, or -1 if nothing was done. Leaves
 * errno alone. */
long cs_stats_owner_change(uid_t uid);
void cs_stats_owner_restore(long prev);

/* CLOCK_MONOTONIC in ns (vDSO). */
uint64_t cs_stats_now_ns(void);

/* The watcher, about to set t's cancel flag for connection gen: when the
 * disconnect was processed (CLOCK_MONOTONIC ns). Only the watcher stores a
 * stamp; only the owning thread consumes it. */
static inline void cs_stats_cancel_stamp(struct cs_thread *t, uint32_t gen, uint64_t now_ns)
{
	atomic_store_explicit(&t->cancel_gen, gen, memory_order_relaxed);
	atomic_store_explicit(&t->cancel_ns, now_ns ? now_ns : 1, memory_order_relaxed);
}

#endif

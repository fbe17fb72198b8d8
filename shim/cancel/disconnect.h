/* A client's peer went away: what a watcher (watch/) reports, and what
 * follows from it. Marks the connection dead in the descriptor table, then,
 * for each thread bound to it, sets its cancel flag and wakes it if it is
 * blocked (cancel_signal.h). */
#ifndef CS_DISCONNECT_H
#define CS_DISCONNECT_H

#include <stdint.h>

/* rst is 1 for a reset, 0 for an orderly close (FIN). */
void cs_disconnect(uint32_t gen, int fd, int rst);

/* The same, for a disconnect the kernel saw at seen_ns (CLOCK_MONOTONIC):
 * the cancel latency is counted from then. */
void cs_disconnect_seen(uint32_t gen, int fd, int rst, uint64_t seen_ns);

/* The eBPF program cancelled connection gen's threads itself (it found
 * kbound of them bound): the books, read late by the watcher. fd: the
 * descriptor that still holds gen, or -1 if it was closed since. Cancels
 * any thread bound to gen that is not flagged yet (beyond the program's
 * records); never signals or counts a thread twice. */
void cs_disconnect_kernel(uint32_t gen, int fd, int rst, uint64_t seen_ns, unsigned kbound);

/* The program saw connection gen end and the watcher has not read it yet:
 * a thread it cancelled (seen) marks the descriptor DEAD and counts its
 * listener's row, unless someone did already; a descriptor closed before
 * anyone did (closed, its last word old) counts the row. */
void cs_disconnect_kernel_seen(uint32_t gen, int fd);
void cs_disconnect_kernel_closed(uint64_t old);

/* Adds the eBPF program's own cancels and wake-ups to the statistics (its
 * counters, track/kshared.h): at the watcher's ticks, and when a call fails
 * with ECANCELED. */
void cs_disconnect_fold_kernel(void);

#endif

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

#endif

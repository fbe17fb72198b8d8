/* The watcher: notices that the peer of a client connection went away and
 * hands the event to cs_disconnect(). One per process, started lazily when
 * the first thread binds; a fork child starts its own. */
#ifndef CS_WATCHER_H
#define CS_WATCHER_H

#include <stdint.h>

/* Starts watching the connection whose descriptor word is slot through fd:
 * nothing to do if the eBPF watcher covers it, else an epoll registration
 * (starting the watcher thread if needed). 0 or -errno. */
int cs_watcher_add(int fd, uint64_t slot);

/* Starts the watcher thread and its epoll set if they do not exist yet. */
int cs_watcher_start(void);

/* Adds the eBPF ring buffer (watcher_ebpf.c) to the watcher's set. */
int cs_watcher_watch_ring(int fd);

/* In a fork child: the parent's watcher thread does not exist here. */
void cs_watcher_after_fork_child(void);

/* What the watcher calls for each disconnect (disconnect.c): marks the
 * connection dead and cancels the threads bound to it. rst is 1 for a reset,
 * 0 for an orderly close (FIN). */
void cs_disconnect(uint32_t gen, int fd, int rst);

/* The same, for a disconnect the kernel saw at seen_ns (CLOCK_MONOTONIC):
 * the cancel latency is counted from then. */
void cs_disconnect_seen(uint32_t gen, int fd, int rst, uint64_t seen_ns);

#endif

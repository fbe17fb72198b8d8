/* The watcher: notices that the peer of a client connection went away and
 * hands the event to cs_disconnect(). One per process, started lazily when
 * the first thread binds; a fork child starts its own. */
#ifndef CS_WATCHER_H
#define CS_WATCHER_H

#include <stdint.h>

/* Starts watching connection gen through fd (starting the watcher thread if
 * needed). 0 or -errno. */
int cs_watcher_add(int fd, uint32_t gen);

/* In a fork child: the parent's watcher thread does not exist here. */
void cs_watcher_after_fork_child(void);

/* What the watcher calls for each disconnect (disconnect.c): marks the
 * connection dead and cancels the threads bound to it. rst is 1 for a reset,
 * 0 for an orderly close (FIN). */
void cs_disconnect(uint32_t gen, int fd, int rst);

#endif

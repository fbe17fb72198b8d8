/* The watcher: notices that the peer of a client connection went away and
 * hands the event to cs_disconnect() (cancel/disconnect.h). One per process, started lazily when
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

/* Adds the eBPF ring buffer (watch/ebpf_watcher.c) to the watcher's set. */
int cs_watcher_watch_ring(int fd);

/* The shim's own descriptors (the watcher's epoll set, the eBPF watcher's
 * links and maps), ascending; the count. The close wrappers spare them. */
#define CS_OWN_MAX_FDS 5
int cs_watcher_own_fds(int fds[CS_OWN_MAX_FDS]);

/* close(fd) on a descriptor the table says is the shim's: 1 to keep it (the
 * application cannot tell), 0 if it turned out not to be the shim's any more
 * (closed behind its back and the number reused: it is the application's). */
int cs_watcher_keeps(int fd);

/* dup2/dup3 is about to replace fd: if it is one of the shim's own, the shim
 * moves it to another number first. -1 if it could not (it will be lost). */
int cs_watcher_evict(int fd);

/* The watcher's epoll set, which was fd, is no longer there (closed behind
 * the shim's back, or the number names something else): a new set and a new
 * thread take over, with every watched connection registered again (a peer
 * that left meanwhile is reported at once). One line, the first time. */
void cs_watcher_lost(int fd);

/* Registers every watched connection with epoll, those the eBPF watcher
 * covered included (it stopped). */
void cs_watcher_rewatch_all(void);

/* A descriptor the table said was the shim's was created anew by the
 * application (so the shim's was closed behind its back). */
void cs_watcher_own_fd_lost(int fd);

/* In a fork child: the parent's watcher thread does not exist here. */
void cs_watcher_after_fork_child(void);

#endif

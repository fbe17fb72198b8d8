/* The kernel-assisted watcher (mode ebpf): an eBPF program on TCP state
 * changes and resets (ebpf/disconnect.bpf.c, embedded as a light skeleton)
 * reports the disconnects of this process's accepted TCP connections through
 * a ring buffer that the watcher thread reads (watch/watcher.c).
 *
 * Why a connection is covered, and needs no system call at all:
 *  - the instance is loaded (at the first listen() of a TCP socket, or the
 *    first accept of a process that did not listen itself: a prefork child);
 *  - its listener's port is in the program's port filter, and every
 *    connection still queued on that listener arrived after the port went in
 *    (the listener is TRUSTED: at listen() the queue is empty; otherwise the
 *    watcher waits until it sees the queue empty);
 *  - accept() returned the peer's address, so its key is known (conn_key.h).
 * Anything else (AF_UNIX, connections accepted before the instance, those a
 * fork child inherited) is watched with epoll, as in mode epoll. */
#ifndef CS_EBPF_WATCHER_H
#define CS_EBPF_WATCHER_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/process.h"

/* At load: CS_EBPF_IDLE if mode (auto or ebpf) may use the eBPF watcher
 * here, else CS_EBPF_OFF with the reason logged (warn for ebpf, info for
 * auto). Checks privileges and kernel BTF; loads nothing. */
enum cs_ebpf_state cs_ebpf_configure(enum cs_mode mode);

/* What the eBPF watcher asks of the watcher thread that reads its ring
 * (watcher.c, the layer's top), handed over at load before configuring, so
 * that the event source does not call up into its reader: watch_ring
 * starts reading the ring buffer fd (0 or -errno); rewatch_all has epoll
 * watch every connection (the instance went blind). */
struct cs_ebpf_host {
	int (*watch_ring)(int fd);
	void (*rewatch_all)(void);
};
void cs_ebpf_set_host(const struct cs_ebpf_host *host);

enum cs_ebpf_state cs_ebpf_state(void);

/* Advanced when the program starts reporting (it is quiet until a thread of
 * the process serves a client). accept() reads it before its system call: a
 * connection accepted across the change is checked once (TCP_INFO). */
extern _Atomic unsigned cs_ebpf_epoch;

/* After accept stored a covered connection that was accepted across a change
 * of cs_ebpf_epoch: its peer may have left unseen; asks the socket. */
void cs_ebpf_check_straddler(int fd, uint64_t slot);

/* listen() is about to be called on fd: a TCP listener's port goes into the
 * filter before any client can queue (loading the instance first if this is
 * the process's first), and the listener is TRUSTED. */
void cs_ebpf_before_listen(int fd);

/* Once per listener met at accept (not seen at listen: inherited, socket
 * activation): learns its port and adds it (loading the instance first if
 * needed); it becomes TRUSTED when its queue is seen empty. */
void cs_ebpf_listener_met(int lfd);

/* A connection is about to be watched while the instance is IDLE (a fork
 * child, or a process whose listeners were inherited): load it now, for the
 * connections accepted from now on (this one is watched with epoll). */
void cs_ebpf_first_watch(void);

/* fd was just accepted as a covered client with this key: did its
 * disconnect come before (while it waited in the accept queue)? */
void cs_ebpf_check_accepted(int fd, uint64_t slot, uint64_t key);

/* newfd was just made a duplicate of oldfd (dup, dup2, dup3, F_DUPFD...),
 * and its word is slot: a covered client must be findable under the new
 * number too (the original may be closed next), so its key is copied and
 * indexed; if the index has no room, newfd falls back to epoll. */
void cs_ebpf_fd_duplicated(int oldfd, int newfd, uint64_t slot);

/* The first call a cancel could fail, for a covered connection (slot):
 * if the watcher saw a disconnect with its key meanwhile (PENDING), the
 * cookie decides, and the connection is cancelled. 1 if it was. */
int cs_ebpf_confirm_pending(int fd, uint64_t slot);

/* The first thread bound to a client (policy/machinery.c): disconnects seen before
 * were not acted on, so the covered connections are checked once. */
void cs_ebpf_machinery_started(void);

/* For the watcher thread: the ring is readable; pending work to poll for
 * (ms, or -1); a wake-up happened. */
void cs_ebpf_drain(void);
int cs_ebpf_poll_ms(void);
void cs_ebpf_tick(void);

/* In a fork child: the parent's instance is the parent's. */
void cs_ebpf_after_fork_child(void);

/* The fork handlers (policy/lifecycle.c). A prefork master (its instance
 * live, serving no client itself, still privileged) loads, before each fork,
 * a complete instance for the child, which will drop privileges before it
 * could load its own: prepare loads it, the parent closes it, the child
 * adopts it at the very end of its reset (after cs_ebpf_after_fork_child
 * and the registry's reset). Nothing happens in any other process. */
void cs_ebpf_fork_prepare(void);
void cs_ebpf_fork_parent(void);
void cs_ebpf_fork_child_adopt(void);

/* The descriptors the running instance keeps open, ascending (the close
 * wrappers leave them alone); the count. */
#define CS_EBPF_MAX_FDS 4
int cs_ebpf_own_fds(int fds[CS_EBPF_MAX_FDS]);

/* Called by every wrapper that releases descriptor numbers (close,
 * close_range, closefrom, dup2/dup3 onto a number) before it does. While
 * the instance loads (10-30 ms, once), the skeleton's descriptors are not
 * known yet: a program closing every descriptor it does not know could take
 * one of them from another thread, the load would fail, and its clean-up
 * would then close whatever the program had reused that number for. Such
 * calls wait for the load instead. */
void cs_ebpf_wait_load(void);

/* One of those descriptors was moved to number to (dup2 onto it), or was
 * closed behind the shim's back (a new descriptor got its number). */
void cs_ebpf_own_fd_moved(int from, int to);
void cs_ebpf_own_fd_lost(int fd);

#endif

/* What the shim knows about each file descriptor: one 64-bit word per fd,
 * read lock-free on every intercepted call.
 *
 * The table has two levels (1024 pages of 1024 words) so it costs nothing in
 * a program that never accepts, and a page is allocated the first time a
 * descriptor in its range needs remembering. Descriptors at or above
 * CS_FD_MAX are never tracked.
 *
 * A word is 0 when nothing is known. Otherwise bits 32-34 hold its kind:
 *
 *  CLIENT    an accepted stream socket (TCP or AF_UNIX): a client connection.
 *            bits 0-31   generation: the connection's identity. A descriptor
 *                        number is reused; a generation is not (hazard: the
 *                        wrong request cancelled after fd reuse).
 *            bit 35      DEAD: the watcher saw the peer go away.
 *            bit 36      REGISTERED: the watcher watches it.
 *            bit 37      SHARED: other descriptors (dup) reach it too.
 *            bit 38      EBPF: accepted through a TRUSTED listener, its key
 *                        (conn_key.h) remembered: the eBPF watcher reports
 *                        its disconnect, no registration needed.
 *            bit 39      PENDING: the eBPF watcher saw a disconnect with this
 *                        connection's key before any thread made a call a
 *                        cancel could fail; the first such call confirms it
 *                        by the socket cookie (conn_key.h) and cancels.
 *            bit 40      PENDING_RST: that disconnect was a reset.
 *            bit 41      INHERITED: accepted by a parent before fork.
 *            bit 42      BOUND: a thread bound to it (read its request); the
 *                        connection being parked in an event loop clears it
 *                        and, only then, ends the bindings (policy.c).
 *            bit 43      UNSCOPED: accepted on a listener CANCELSHIM_PORTS
 *                        leaves out: a client for binding and for the
 *                        event-loop rule, but never watched, so its
 *                        disconnect cancels nothing (scope.h).
 *            bits 44-48  PORT: 1 + the index of the CANCELSHIM_PORTS entry its
 *                        listener matched (0: none, or CANCELSHIM_PORTS
 *                        unset), copied from the listener's word at accept,
 *                        so that the per-listener counters (stats.h) find
 *                        the listener of a disconnect or a cancel without a
 *                        system call. Copied with the word by dup.
 *  LISTENER  a listening socket.
 *            bit 35      TYPE_KNOWN, bit 36 STREAM: what accept() returns on it
 *                        counts as a client connection.
 *            bit 37      TCP: a TCP listener; bits 0-15 hold its port.
 *            bit 38      IN_MAP: its port is in the eBPF watcher's port filter.
 *            bit 39      TRUSTED: every connection still queued on it arrived
 *                        after IN_MAP, so the watcher sees its disconnect.
 *            bit 40      SCOPE_KNOWN, bit 41 OUT_OF_SCOPE: CANCELSHIM_PORTS
 *                        left it out; what it accepts is UNSCOPED (scope.h).
 *            bits 42-46  PORT: 1 + the index of the CANCELSHIM_PORTS entry it
 *                        matched, known with SCOPE_KNOWN (0: none).
 *  EPOLL     an epoll instance, summarised for the multiplexing rule.
 *            bits 35-36  client connections added (0, 1, 2 = two or more)
 *            bit 37      a listener was added
 *            bit 38      SERVED: a client was added once; a different one
 *                        added later (even after the first left) makes the
 *                        set an event loop's: it serves clients one after
 *                        another (a worker of memcached, of libevent)
 *            bit 39      DISPATCHER: its first client was accepted after the
 *                        set was created: a set that outlives its clients
 *                        (Tomcat's poller, puma's reactor), an event loop's
 *                        even while it holds a single client. A set made for
 *                        a connection already accepted (PostgreSQL's backend)
 *                        is not.
 *            bits 0-31 / 40-63  generation and fd of the single client; until
 *                        SERVED, bits 0-31 hold the set's creation stamp:
 *                        cs_proc.next_gen when it was created (0: before the
 *                        process accepted anything, or not seen created)
 *  OTHER     anything else, with its call class in bits 35-37 (enum cs_fdclass).
 *            bit 38      OURS: the shim's own (the eBPF watcher's), kept open
 *                        when the application closes it by mistake.
 *            bits 0-31   a loop's wake-up: see CS_OTHER_WAKES
 *            bits 40-63  a pipe's or socket pair's other end: CS_OTHER_PARTNER
 */
#ifndef CS_FDTABLE_H
#define CS_FDTABLE_H

#include <stdatomic.h>
#include <stdint.h>

#define CS_FD_PAGE_BITS 10
#define CS_FD_PAGE_SIZE (1u << CS_FD_PAGE_BITS)
#define CS_FD_PAGES 1024u
#define CS_FD_MAX (CS_FD_PAGE_SIZE * CS_FD_PAGES)

/* Only CLIENT has bit 0 set, so "is it a client?" is a one-bit test on the
 * hot path (CS_SLOT_IS_CLIENT). */
enum cs_kind { CS_KIND_NONE = 0, CS_KIND_CLIENT = 1, CS_KIND_LISTENER = 2, CS_KIND_OTHER = 4, CS_KIND_EPOLL = 6 };

/* Call classes of descriptors that are not client connections. */
enum cs_fdclass {
	CS_FDCLASS_NET = 1,	/* a socket */
	CS_FDCLASS_FILE = 2,	/* regular file, block device */
	CS_FDCLASS_PIPE = 3,	/* pipe, FIFO, terminal, character device */
	CS_FDCLASS_WAITOBJ = 4,	/* eventfd, timerfd, signalfd...: waiting for something */
	CS_FDCLASS_EXEMPT = 5,	/* directories, epoll: never failed */
};

#define CS_SLOT_GEN_MASK 0xffffffffull
#define CS_SLOT_KIND(s) ((enum cs_kind)(((s) >> 32) & 7))
#define CS_SLOT_IS_CLIENT(s) (((s) >> 32) & 1)
#define CS_SLOT_MAKE(kind, low32) (((uint64_t)(kind) << 32) | (uint32_t)(low32))

#define CS_CLIENT_DEAD (1ull << 35)
#define CS_CLIENT_REGISTERED (1ull << 36)
#define CS_CLIENT_SHARED (1ull << 37)
#define CS_CLIENT_EBPF (1ull << 38)
#define CS_CLIENT_PENDING (1ull << 39)
#define CS_CLIENT_PENDING_RST (1ull << 40)
#define CS_CLIENT_INHERITED (1ull << 41)
#define CS_CLIENT_BOUND (1ull << 42)
#define CS_CLIENT_UNSCOPED (1ull << 43)
#define CS_CLIENT_PORT_SHIFT 44
#define CS_CLIENT_PORT(s) ((unsigned)(((s) >> CS_CLIENT_PORT_SHIFT) & 31))
#define CS_CLIENT_WITH_PORT(idx1) ((uint64_t)((idx1) & 31) << CS_CLIENT_PORT_SHIFT)

#define CS_LISTENER_TYPE_KNOWN (1ull << 35)
#define CS_LISTENER_STREAM (1ull << 36)
#define CS_LISTENER_TCP (1ull << 37)
#define CS_LISTENER_IN_MAP (1ull << 38)
#define CS_LISTENER_TRUSTED (1ull << 39)
#define CS_LISTENER_SCOPE_KNOWN (1ull << 40)
#define CS_LISTENER_OUT_OF_SCOPE (1ull << 41)
#define CS_LISTENER_PORT(s) ((uint16_t)(s))
#define CS_LISTENER_ENTRY_SHIFT 42
#define CS_LISTENER_ENTRY(s) ((unsigned)(((s) >> CS_LISTENER_ENTRY_SHIFT) & 31))
#define CS_LISTENER_WITH_ENTRY(idx1) ((uint64_t)((idx1) & 31) << CS_LISTENER_ENTRY_SHIFT)

#define CS_EPOLL_NCLIENTS(s) ((unsigned)(((s) >> 35) & 3))
#define CS_EPOLL_WITH_NCLIENTS(s, n) (((s) & ~(3ull << 35)) | ((uint64_t)(n) << 35))
#define CS_EPOLL_LISTENER (1ull << 37)
#define CS_EPOLL_SERVED (1ull << 38)
#define CS_EPOLL_DISPATCHER (1ull << 39)
/* An event loop's set: it holds a listener, or has held two clients, or
 * outlives the clients it holds. */
#define CS_EPOLL_IS_LOOPS(s) (((s) & (CS_EPOLL_LISTENER | CS_EPOLL_DISPATCHER)) || CS_EPOLL_NCLIENTS(s) >= 2)
#define CS_EPOLL_SINGLE_FD(s) ((int)((s) >> 40))
#define CS_EPOLL_WITH_SINGLE(s, fd, gen) \
	(((s) & ~(CS_SLOT_GEN_MASK | (0xffffffull << 40))) | ((uint64_t)(fd) << 40) | (uint32_t)(gen))

#define CS_OTHER_CLASS(s) ((enum cs_fdclass)(((s) >> 35) & 7))
#define CS_OTHER_MAKE(cls) (CS_SLOT_MAKE(CS_KIND_OTHER, 0) | ((uint64_t)(cls) << 35))
#define CS_OTHER_OURS (1ull << 38)
/* A pipe or wait object (eventfd...) an event loop waits on: its low 32 bits
 * are 1 + the epoll set it was put in, or CS_OTHER_POLL_LOOP when a loop
 * named it in poll or select; 0 for any other. A bound thread that writes to
 * one is waking a loop, most often to hand it its connection back. */
#define CS_OTHER_WAKES(s) ((uint32_t)(s))
#define CS_OTHER_POLL_LOOP 0xffffffffu
/* Pipes and socket pairs made through the wrappers: bits 40-63 are 1 + the
 * other end's descriptor (0: not known). A loop waits on one end; a worker
 * wakes it through the other. */
#define CS_OTHER_PARTNER(s) ((int)((s) >> 40) - 1)
#define CS_OTHER_WITH_PARTNER(s, fd) (((s) & ~(0xffffffull << 40)) | ((uint64_t)((fd) + 1) << 40))
/* One of the shim's own descriptors (the eBPF watcher's)? */
#define CS_SLOT_IS_OURS(s) (CS_SLOT_KIND(s) == CS_KIND_OTHER && ((s) & CS_OTHER_OURS))

extern _Atomic(_Atomic uint64_t *) cs_fd_pages[CS_FD_PAGES];

/* The word for fd, or 0. A few instructions: this is on every call. */
static inline uint64_t cs_fd_get(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return 0;
	page = atomic_load_explicit(&cs_fd_pages[(unsigned)fd >> CS_FD_PAGE_BITS], memory_order_acquire);
	if (!page)
		return 0;
	return atomic_load_explicit(&page[fd & (CS_FD_PAGE_SIZE - 1)], memory_order_relaxed);
}

/* The word itself, allocating its page; NULL if fd is out of range or memory
 * is short. */
_Atomic uint64_t *cs_fd_ref(int fd);

/* The word itself if its page exists, else NULL. Never allocates. */
_Atomic uint64_t *cs_fd_ref_existing(int fd);

/* Replaces the word and returns the old one. With allocate == 0 a missing
 * page means nothing is known and nothing is stored (programs that never
 * accept stay free of allocations). */
uint64_t cs_fd_exchange(int fd, uint64_t value, int allocate);

/* Calls fn on every non-zero word in [first, last]. */
void cs_fd_for_each(unsigned first, unsigned last, void (*fn)(int fd, _Atomic uint64_t *slot, void *arg), void *arg);

#endif

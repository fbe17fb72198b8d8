/* The rules: which thread is bound to which client, which calls a cancelled
 * thread has failed, which waits are event loops. The wrappers (wrap_*.c)
 * ask these functions and do nothing else of their own.
 *
 * Fast paths are inline and a handful of instructions: a thread that serves
 * no client, or a call on the thread's own client socket, goes straight to
 * libc. */
#ifndef CS_POLICY_H
#define CS_POLICY_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/process.h"
#include "config.h"
#include "track/fdtable.h"
#include "track/threads.h"

/* A wait cut short by a stray cancel signal (see cancel_signal.c): the
 * wrapper issues it again with the time that is left. */
#define CS_RESTART (-100001L)

/* A result that means "call libc after all". */
#define CS_PASS (-100002L)

/* A read of a client connection the thread is not bound to: libc issues it,
 * then cs_io_read_done(fd, result) says what it found. Only a read that
 * brought the peer's bytes is evidence that the thread serves that client;
 * a look that found nothing (a non-blocking read's EAGAIN, an end of file,
 * an error) is a thread looking for work, done with whatever it served. */
#define CS_PASS_READ (-100003L)
void cs_io_read_done(int fd, long result);

/* 1 when I/O on fd by the calling thread goes straight to libc: the thread
 * serves no client and fd is not a client connection, or fd is the very
 * client it serves (whose socket keeps its natural results). A handful of
 * instructions, no call: this is every intercepted call's cost. */
static inline int cs_io_direct(int fd)
{
	struct cs_thread *t = cs_tls.rec;
	uint64_t slot = cs_fd_get(fd);
	uint64_t st = t ? atomic_load_explicit(&t->state, memory_order_relaxed) : 0;

	if (__builtin_expect(!CS_SLOT_IS_CLIENT(slot), 1))
		return !(st & CS_ST_GEN);
	return (uint32_t)slot == (uint32_t)st;
}

/* Everything else, out of line: binding to another client, classifying fd,
 * and issuing system call nr through the cancellable path when the call may
 * be failed. Returns the raw result (-errno, -ECANCELED), CS_PASS, or
 * CS_PASS_READ for a read of another client (see above).
 * dontwait: MSG_DONTWAIT or RWF_NOWAIT given. */
long cs_io_route(int fd, int dontwait, long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* The decision alone (binding included): the thread whose call on fd would go
 * through the cancellable path, or NULL when it goes straight to libc.
 * reads: the call read what the peer sent (read, recv... that returned
 * bytes): on a client socket, the evidence that the thread serves that
 * client. Any other call on a client that is not the thread's own ends its
 * binding. */
struct cs_thread *cs_io_decide(int fd, int dontwait, int reads);

static inline struct cs_thread *cs_io_enter(int fd, int dontwait)
{
	return cs_io_direct(fd) ? NULL : cs_io_decide(fd, dontwait, 1);
}

static inline struct cs_thread *cs_io_enter_write(int fd, int dontwait)
{
	return cs_io_direct(fd) ? NULL : cs_io_decide(fd, dontwait, 0);
}

/* The connection behind fd is parked in an event loop (put or re-armed in a
 * loop's epoll set, or named in a multiplexing wait): every thread bound to
 * it is done with it, and its binding ends. One load when no thread ever
 * bound to it. */
void cs_conn_park(int fd);

/* Waits. A wait is scanned only when the calling thread is bound. */
struct cs_wait_scan {
	int clients;		/* distinct client connections watched (up to 2) */
	uint32_t client_gen;	/* the first one */
	int client_fd;
	int listener;		/* a listening socket is watched */
	int dispatcher;		/* its client is in a set that outlives its clients */
};

/* Whether a wait is worth scanning: once the process serves clients, and
 * until the thread is known to be an event loop (then never again, so an
 * event loop pays one load per wait). Scanning unbound threads too is what
 * recognises an event loop before it first reads from a client. */
static inline int cs_wait_scanned(void)
{
	if (__builtin_expect(cs_tls.loop, 0)) {
		/* A clone() child of an event loop's thread (no fork handler
		 * cleared the verdict) is not a loop until it waits like one:
		 * one more load, on a page the kernel wiped in the child. */
		if (__builtin_expect(atomic_load_explicit(cs_process_word, memory_order_relaxed) != 0, 1))
			return 0;
		cs_process_changed();
	}
	return atomic_load_explicit(&cs_proc.serving, memory_order_relaxed);
}

void cs_wait_scan_fd(struct cs_wait_scan *w, int fd);
void cs_wait_scan_epoll(struct cs_wait_scan *w, int epfd);

/* After the scan (t: the calling thread's record, NULL if it has none): NULL
 * to pass the wait through (it is an event loop's, or
 * watches a client whose own events will end it, or has a zero timeout, or
 * waits are not a cancelled class); else the thread, and the wait goes
 * through cs_wait_call(). */
struct cs_thread *cs_wait_decide(struct cs_thread *t, const struct cs_wait_scan *w, int zero_timeout);

/* A sleep or wait with nothing to scan. */
/* 1 when the thread serves no client: a sleep goes straight to libc. */
static inline int cs_sleep_direct(void)
{
	struct cs_thread *t = cs_tls.rec;
	return !t || !(atomic_load_explicit(&t->state, memory_order_relaxed) & CS_ST_GEN);
}

static inline struct cs_thread *cs_sleep_enter(int zero_timeout)
{
	static const struct cs_wait_scan none;
	if (__builtin_expect(cs_sleep_direct(), 1))
		return NULL;
	return cs_wait_decide(cs_tls.rec, &none, zero_timeout);
}

/* Issues a wait; returns the raw result, -ECANCELED or CS_RESTART. */
long cs_wait_call(struct cs_thread *t, long nr, long a1, long a2, long a3, long a4, long a5, long a6);

/* For the descriptor life cycle (fdlife.c). A client descriptor went away
 * (closed, or replaced unseen) holding word old: the calling thread's
 * binding to it ends, unless a duplicate keeps the connection. */
void cs_conn_descriptor_gone(int fd, uint64_t old);

/* What a descriptor nobody told us about is (fstat, and whether a socket
 * listens), remembered in the table: its word. */
uint64_t cs_call_classify(int fd);

/* The thread runs an event loop: no single disconnect may cancel it. */
void cs_wait_become_loop(struct cs_thread *t);

#endif

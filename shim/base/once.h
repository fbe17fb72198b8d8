/* Work done once per process, started by whichever thread first needs it:
 * the machinery (policy/machinery.c), the watcher thread (watch/watcher.c),
 * the statistics segment (stats/stats.c), the eBPF load
 * (watch/ebpf_watcher.c).
 *
 * One atomic word: OFF (not wanted here; nobody runs it) or
 * IDLE -> RUNNING -> DONE | FAILED. The one thread that moves it from IDLE
 * to RUNNING does the work and ends it; the others either go on at once or
 * wait for the end (cs_once_wait), as each site needs. No lock, no
 * allocation: a fork can come at any moment, and the child's reset (each
 * site's after-fork code) only stores a value into the word. A word the
 * fork caught RUNNING has no worker in the child: the child puts it back
 * to IDLE so that it starts the work again itself.
 *
 * The values are the eBPF watcher's states (base/process.h, enum
 * cs_ebpf_state), which the statistics read. */
#ifndef CS_ONCE_H
#define CS_ONCE_H

#include <stdatomic.h>

enum cs_once_state { CS_ONCE_OFF = 0, CS_ONCE_IDLE = 1, CS_ONCE_RUNNING = 2, CS_ONCE_DONE = 3, CS_ONCE_FAILED = 4 };

typedef _Atomic int cs_once;

/* 1: the caller moved the word from IDLE to RUNNING and must do the work,
 * then call cs_once_end. 0: it is not idle (off, at work or over). */
static inline int cs_once_begin(cs_once *w)
{
	int expected = CS_ONCE_IDLE;
	return atomic_compare_exchange_strong(w, &expected, CS_ONCE_RUNNING);
}

/* The same from DONE: the work is done again (the watcher replacing an
 * epoll set the application closed). */
static inline int cs_once_redo(cs_once *w)
{
	int expected = CS_ONCE_DONE;
	return atomic_compare_exchange_strong(w, &expected, CS_ONCE_RUNNING);
}

/* The worker's end: DONE if ok, else FAILED. */
static inline void cs_once_end(cs_once *w, int ok)
{
	atomic_store(w, ok ? CS_ONCE_DONE : CS_ONCE_FAILED);
}

/* Waits (yielding the processor) while another thread is at work; returns
 * the state it ended in. */
int cs_once_wait(cs_once *w);

static inline int cs_once_state(cs_once *w)
{
	return atomic_load(w);
}

/* One relaxed load, for a fast path: the work is still to be done. */
static inline int cs_once_idle(cs_once *w)
{
	return atomic_load_explicit(w, memory_order_relaxed) == CS_ONCE_IDLE;
}

/* One acquire load, for a fast path: another thread is at work. */
static inline int cs_once_running(cs_once *w)
{
	return atomic_load_explicit(w, memory_order_acquire) == CS_ONCE_RUNNING;
}

static inline int cs_once_done(cs_once *w)
{
	return atomic_load(w) == CS_ONCE_DONE;
}

/* The work is to be done (again) when next needed: at load, once the site
 * knows it is wanted; in a fork child whose parent's work is not its own. */
static inline void cs_once_reset(cs_once *w)
{
	atomic_store(w, CS_ONCE_IDLE);
}

/* In a fork child whose parent's finished work it inherits: only a word
 * caught RUNNING, whose worker is not in the child, goes back to IDLE. */
static inline void cs_once_forget_running(cs_once *w)
{
	int expected = CS_ONCE_RUNNING;
	atomic_compare_exchange_strong(w, &expected, CS_ONCE_IDLE);
}

/* DONE -> FAILED, when what the work built was lost; 1 for the one caller
 * that made the change. */
static inline int cs_once_revoke(cs_once *w)
{
	int expected = CS_ONCE_DONE;
	return atomic_compare_exchange_strong(w, &expected, CS_ONCE_FAILED);
}

#endif

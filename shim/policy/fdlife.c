/* The descriptor life cycle, as the wrappers of wrap/wrap_fd.c report it:
 * accept, close, dup, a new descriptor, listen, and what goes in and out of
 * epoll sets (each set's word summarises what it holds: fdtable.h). A
 * client descriptor that goes away ends its binding (policy.c). */
#include "policy/fdlife.h"

#include <errno.h>

#include "base/process.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "track/fdtable.h"
#include "track/threads.h"
#include "watch/ebpf_watcher.h"
#include "watch/watcher.h"

void cs_fd_accept_begin(void)
{
	struct cs_thread *t = cs_tls.rec;
	/* An acceptor serves no one: accept ends the binding. */
	if (t && (atomic_load_explicit(&t->state, memory_order_relaxed) & CS_ST_GEN))
		atomic_store(&t->state, 0);
}

void cs_fd_closing(int fd, uint64_t slot)
{
	uint64_t old = cs_fd_exchange(fd, 0, 0);
	if (CS_SLOT_KIND(old) == CS_KIND_CLIENT)
		cs_conn_descriptor_gone(fd, old);
}

static void close_one(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t old;
	(void)fd, (void)arg;
	if (CS_SLOT_IS_OURS(atomic_load(slot)))
		return;	/* spared by the close_range wrapper */
	old = atomic_exchange(slot, 0);
	if (CS_SLOT_KIND(old) == CS_KIND_CLIENT)
		cs_conn_descriptor_gone(fd, old);
}

void cs_fd_closing_range(unsigned first, unsigned last)
{
	cs_fd_for_each(first, last, close_one, NULL);
}

void cs_fd_duplicated(int oldfd, int newfd)
{
	uint64_t s, prev;

	/* A clone() child moving its client: forget the parent's watchers
	 * before asking them anything (the eBPF key's recheck can cancel). */
	cs_process_check();
	s = cs_fd_get(oldfd);

	if (oldfd == newfd)	/* dup2(fd, fd) changes nothing */
		return;
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT) {
		/* Both descriptors must learn of the disconnect (disconnect.c). */
		_Atomic uint64_t *ref = cs_fd_ref_existing(oldfd);
		if (ref)
			atomic_fetch_or(ref, CS_CLIENT_SHARED);
		s |= CS_CLIENT_SHARED;
	}
	prev = cs_fd_exchange(newfd, s, 1);
	if (CS_SLOT_IS_OURS(prev))	/* ours was closed behind our back */
		cs_watcher_own_fd_lost(newfd);
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT) {
		cs_stat_add(CS_STAT_DUPLICATED, 1);
		cs_ebpf_fd_duplicated(oldfd, newfd, s);	/* findable by its key under newfd too */
	}
	/* dup2 over a client socket closed it implicitly. */
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT && (uint32_t)prev != (uint32_t)s)
		cs_conn_descriptor_gone(newfd, prev);
}

/* A new descriptor replaces whatever an unseen close left behind. */
static void replaced(int fd, uint64_t prev)
{
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT)
		cs_conn_descriptor_gone(fd, prev);
	else if (CS_SLOT_IS_OURS(prev))	/* ours was closed behind our back */
		cs_watcher_own_fd_lost(fd);
}

void cs_fd_created(int fd, enum cs_fdclass cls)
{
	replaced(fd, cs_fd_exchange(fd, cls ? CS_OTHER_MAKE(cls) : 0, 0));
}

/* Stored even before the process serves anyone (a page of the table may be
 * made for it): an event loop's wake-up pipe is made at start, and which
 * end wakes which is known only now. */
void cs_fd_pair_created(int fd0, int fd1, enum cs_fdclass cls)
{
	replaced(fd0, cs_fd_exchange(fd0, CS_OTHER_WITH_PARTNER(CS_OTHER_MAKE(cls), fd1), 1));
	replaced(fd1, cs_fd_exchange(fd1, CS_OTHER_WITH_PARTNER(CS_OTHER_MAKE(cls), fd0), 1));
}

void cs_fd_listening(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref(fd);
	uint64_t s;

	if (!ref)
		return;
	s = atomic_load(ref);
	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER)
		atomic_store(ref, CS_SLOT_MAKE(CS_KIND_LISTENER, 0));
}

void cs_fd_epoll_created(int epfd)
{
	/* Stamped with the generation the next accepted client will get: a
	 * client with that generation or a later one was accepted after the set
	 * was made (a dispatcher's set, see epoll_with). Before the process
	 * serves anyone the page need not exist: stamp 0 says "before every
	 * client" all the same. */
	int serving = atomic_load_explicit(&cs_proc.serving, memory_order_relaxed);
	uint32_t stamp = serving ? atomic_load_explicit(&cs_proc.next_gen, memory_order_relaxed) : 0;
	uint64_t prev = cs_fd_exchange(epfd, CS_SLOT_MAKE(CS_KIND_EPOLL, stamp), serving);
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT)
		cs_conn_descriptor_gone(epfd, prev);
	else if (CS_SLOT_IS_OURS(prev))	/* the application's set got our old number */
		cs_watcher_own_fd_lost(epfd);
}

/* Folds what fd is into the summary of the epoll set epfd. */
static uint64_t epoll_with(uint64_t e, int fd, uint64_t s)
{
	unsigned n = CS_EPOLL_NCLIENTS(e);

	switch (CS_SLOT_KIND(s)) {
	case CS_KIND_LISTENER:
		return e | CS_EPOLL_LISTENER;
	case CS_KIND_EPOLL:	/* a nested set counts with what it holds */
		if (s & CS_EPOLL_LISTENER)
			e |= CS_EPOLL_LISTENER;
		if (CS_EPOLL_NCLIENTS(s) >= 2)
			return CS_EPOLL_WITH_NCLIENTS(e, 2);
		if (CS_EPOLL_NCLIENTS(s) == 1)	/* as if its client were added here */
			return epoll_with(e, CS_EPOLL_SINGLE_FD(s), CS_SLOT_MAKE(CS_KIND_CLIENT, (uint32_t)s));
		return e;
	case CS_KIND_CLIENT:
		if (n >= 2)
			return e;
		if (!(e & CS_EPOLL_SERVED)) {	/* its first client */
			/* Accepted after the set was created (stamp 0: created
			 * before any client, or never seen created): the set
			 * outlives its clients, a dispatcher's (Tomcat's poller,
			 * puma's reactor). Accepted before: a set made for this
			 * connection (PostgreSQL's backend). */
			uint32_t stamp = (uint32_t)e;
			uint64_t d = (!stamp || (int32_t)((uint32_t)s - stamp) >= 0) ? CS_EPOLL_DISPATCHER : 0;
			return CS_EPOLL_WITH_SINGLE(CS_EPOLL_WITH_NCLIENTS(e, 1) | CS_EPOLL_SERVED | d, fd, (uint32_t)s);
		}
		if ((uint32_t)e == (uint32_t)s)	/* the same client again (or a dup of it) */
			return n == 1 ? e : CS_EPOLL_WITH_SINGLE(CS_EPOLL_WITH_NCLIENTS(e, 1), fd, (uint32_t)s);
		/* Another client, beside the first or after it: a set that
		 * serves clients in turn belongs to an event loop. A thread per
		 * connection makes a set per connection (PostgreSQL, selectors). */
		return CS_EPOLL_WITH_NCLIENTS(e, 2);
	default:
		return e;
	}
}

/* Client fd was put (or re-armed) in set epfd, whose summary is now e;
 * before was its summary before. In an event loop's set the connection is
 * parked: no thread serves it now, whoever did is done with it (puma's
 * reactor, Tomcat's poller, gunicorn gthread's main loop). The thread doing
 * it runs that loop only if it waits on the set itself; a worker handing
 * its client back to someone else's loop is no loop. */
static void handed_to_set(int epfd, int fd, uint64_t before, uint64_t e)
{
	if (!CS_EPOLL_IS_LOOPS(e) || !atomic_load_explicit(&cs_proc.active, memory_order_relaxed))
		return;
	cs_conn_park(fd);
	/* The set just turned into a loop's: its single client is parked too. */
	if (CS_SLOT_KIND(before) == CS_KIND_EPOLL && !CS_EPOLL_IS_LOOPS(before) && CS_EPOLL_NCLIENTS(before) == 1)
		cs_conn_park(CS_EPOLL_SINGLE_FD(before));
	if (cs_tls.wait_epfd == epfd + 1)
		cs_wait_become_loop(cs_tls.rec);
}

void cs_fd_epoll_rearmed(int epfd, int fd)
{
	uint64_t s = cs_fd_get(fd), e = cs_fd_get(epfd);
	int saved = errno;

	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && CS_SLOT_KIND(e) == CS_KIND_EPOLL)
		handed_to_set(epfd, fd, e, e);
	errno = saved;
}

/* fd, a pipe or wait object, is waited on by a loop (marker: 1 + its epoll
 * set, or CS_OTHER_POLL_LOOP). The last marker wins. */
static void mark_wakeup(int fd, uint64_t s, uint32_t marker)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);

	while (ref && CS_SLOT_KIND(s) == CS_KIND_OTHER && !(s & CS_OTHER_OURS) &&
	       (CS_OTHER_CLASS(s) == CS_FDCLASS_PIPE || CS_OTHER_CLASS(s) == CS_FDCLASS_WAITOBJ ||
		CS_OTHER_CLASS(s) == CS_FDCLASS_NET) &&
	       CS_OTHER_WAKES(s) != marker)
		if (atomic_compare_exchange_weak(ref, &s, (s & ~CS_SLOT_GEN_MASK) | marker))
			break;
}

void cs_fd_loop_waits_on(int fd)
{
	uint64_t s = cs_fd_get(fd);

	if (CS_SLOT_KIND(s) == CS_KIND_NONE && fd >= 0)
		s = cs_call_classify(fd);	/* once: a loop's first multiplexing wait */
	if (CS_SLOT_KIND(s) == CS_KIND_OTHER)
		mark_wakeup(fd, s, CS_OTHER_POLL_LOOP);
	else
		cs_conn_park(fd);
}

void cs_fd_epoll_added(int epfd, int fd)
{
	uint64_t s = cs_fd_get(fd), e, before;
	_Atomic uint64_t *ref;
	int saved = errno;

	if (CS_SLOT_KIND(s) == CS_KIND_NONE)
		s = cs_call_classify(fd);	/* a listener we did not see created */
	if (CS_SLOT_KIND(s) == CS_KIND_OTHER && epfd >= 0)
		mark_wakeup(fd, s, (uint32_t)epfd + 1);
	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT && CS_SLOT_KIND(s) != CS_KIND_LISTENER && CS_SLOT_KIND(s) != CS_KIND_EPOLL)
		goto out;
	if (!(ref = cs_fd_ref(epfd)))
		goto out;
	e = atomic_load(ref);
	for (;;) {
		uint64_t base = CS_SLOT_KIND(e) == CS_KIND_EPOLL ? e : CS_SLOT_MAKE(CS_KIND_EPOLL, 0);
		before = e;
		uint64_t next = epoll_with(base, fd, s);
		if (next == e || atomic_compare_exchange_weak(ref, &e, next)) {
			e = next;
			break;
		}
	}
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT)
		handed_to_set(epfd, fd, before, e);
out:
	errno = saved;
}

void cs_fd_epoll_removed(int epfd, int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(epfd);
	uint64_t s = cs_fd_get(fd), e;

	if (!ref || CS_SLOT_KIND(s) != CS_KIND_CLIENT)
		return;
	e = atomic_load(ref);
	if (CS_SLOT_KIND(e) == CS_KIND_EPOLL && CS_EPOLL_NCLIENTS(e) == 1 && CS_EPOLL_SINGLE_FD(e) == fd &&
	    (uint32_t)e == (uint32_t)s)
		atomic_compare_exchange_strong(ref, &e, CS_EPOLL_WITH_NCLIENTS(e, 0));
}

/* What happens when a client goes away: the connection is marked dead, so a
 * thread that binds to it later is cancelled at once, and every thread bound
 * to it now gets its cancel flag. A thread inside a cancellable call is also
 * sent the cancel signal to wake it; one busy outside any such call gets the
 * profile's cancel, if a profile is in force (profile.h).
 *
 * Order matters against bind_to() (policy/policy.c), which stores the binding and
 * then looks for DEAD: here DEAD is stored before the threads are scanned, so
 * a binding that races with this disconnect is caught by one side or the
 * other (all sequentially consistent). */
#include "cancel/disconnect.h"

#include "base/log.h"
#include "cancel/cancel_log.h"
#include "cancel/cancel_signal.h"
#include "cancel/observe.h"
#include "cancel/profile.h"
#include "stats/stats.h"
#include "track/fdtable.h"
#include "track/kshared.h"
#include "track/threads.h"

struct marking {
	uint32_t gen;
	int marked;
	unsigned port;	/* its listener's row (fdtable.h: PORT) */
};

static void mark_one(int fd, _Atomic uint64_t *slot, void *arg)
{
	struct marking *m = arg;
	uint64_t s = atomic_load(slot);

	(void)fd;
	while (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == m->gen && !(s & CS_CLIENT_DEAD))
		if (atomic_compare_exchange_weak(slot, &s, s | CS_CLIENT_DEAD)) {
			m->marked = 1;
			m->port = CS_CLIENT_PORT(s);
			break;
		}
}

/* Usually the connection is behind the fd the event names. When it was
 * duplicated, or that fd was closed while a duplicate lives on, every word
 * with its generation is marked: a rare case, worth a walk of the table.
 * 1 if this marked it (the first event for the connection), else 0; *port
 * gets its listener's row then. */
static int mark_dead(uint32_t gen, int fd, unsigned *port)
{
	_Atomic uint64_t *slot = cs_fd_ref_existing(fd);
	uint64_t s = slot ? atomic_load(slot) : 0;
	struct marking m = { gen, 0, 0 };

	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == gen && !(s & CS_CLIENT_SHARED))
		mark_one(fd, slot, &m);
	else
		cs_fd_for_each(0, CS_FD_MAX - 1, mark_one, &m);
	*port = m.port;
	return m.marked;
}

/* 1 if t was bound to gen (cancelled now or before), else 0. */
static int cancel_thread(struct cs_thread *t, uint32_t gen, int fd, int rst, uint64_t now)
{
	uint64_t s = atomic_load(&t->state);

	if ((uint32_t)s != gen)
		return 0;
	while ((uint32_t)s == gen && !(s & CS_ST_CANCEL)) {
		/* Stamped before the flag, for the latency histogram. */
		cs_stats_cancel_stamp(t, gen, now);
		cs_cancel_log_reason(t, rst);
		if (atomic_compare_exchange_weak(&t->state, &s, s | CS_ST_CANCEL)) {
			int tid = atomic_load(&t->tid);
			cs_stat_add(CS_STAT_CANCELS, 1);
			/* Observe mode signals no one: a thread inside a call
			 * cancel would fail is counted now (once per binding;
			 * one entering such a call later counts itself). */
			if (cs_observing()) {
				if ((s & CS_ST_INCALL) && atomic_load_explicit(&t->call_nr, memory_order_relaxed))
					cs_observe_would_cancel(t, gen, fd);
				cs_debug("cancel conn=%u tid=%d reason=%s (observe: nothing failed)", gen, tid,
					 rst ? "rst" : "fin");
				return 1;
			}
			/* Said before the signal: the woken thread may end the
			 * process before this thread runs again. */
			cs_debug("cancel conn=%u tid=%d reason=%s%s", gen, tid, rst ? "rst" : "fin",
				 (s & CS_ST_INCALL) ? " woken" : "");
			/* Only a thread inside a cancellable call is signalled;
			 * any other finds the flag at its next call. */
			if ((s & CS_ST_INCALL) && tid) {
				cs_signal_send(tid);
				cs_stat_add(CS_STAT_WAKEUPS, 1);
			} else if (tid) {
				/* Computing: no call to fail until the work ends.
				 * Once per binding, as the flag is set once. */
				cs_profile_cancel_busy(tid);
			}
			return 1;
		}
	}
	if (!(s & CS_ST_CANCEL))	/* rebound meanwhile: no cancel to time */
		atomic_store_explicit(&t->cancel_ns, 0, memory_order_relaxed);
	return 1;
}

void cs_disconnect(uint32_t gen, int fd, int rst)
{
	cs_disconnect_seen(gen, fd, rst, 0);
}

void cs_disconnect_seen(uint32_t gen, int fd, int rst, uint64_t seen_ns)
{
	uint64_t now = cs_stats_now_ns();
	int bound = 0, first;
	unsigned port;
	size_t n;

	if (!gen)
		return;
	if (seen_ns && seen_ns <= now) {
		cs_debug("disconnect conn=%u fd=%d %s via ebpf, %llu us after the kernel saw it", gen, fd,
			 rst ? "rst" : "fin", (unsigned long long)(now - seen_ns) / 1000);
		now = seen_ns;
	} else {
		cs_debug("disconnect conn=%u fd=%d %s", gen, fd, rst ? "rst" : "fin");
	}
	/* A connection may report several edges (FIN, then a reset when the
	 * server writes to it): counted once, by the first. */
	first = mark_dead(gen, fd, &port);
	if (first) {
		cs_stat_add(rst ? CS_STAT_DISCONNECT_RST : CS_STAT_DISCONNECT_FIN, 1);
		cs_stats_port_add(port, CS_PORT_DISCONNECTS);
	}
	n = cs_threads_limit();
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (t && atomic_load_explicit(&t->tid, memory_order_relaxed))
			bound += cancel_thread(t, gen, fd, rst, now);
	}
	/* Nobody serves it any more: the request was answered, its thread moved
	 * on to another client or turned out to run an event loop. */
	if (!bound && first)
		cs_stat_add(CS_STAT_UNBOUND, 1);
}

void cs_disconnect_kernel(uint32_t gen, int fd, int rst, uint64_t seen_ns, unsigned kbound)
{
	uint64_t now = cs_stats_now_ns();
	size_t n;

	if (!gen)
		return;
	if (seen_ns && seen_ns <= now)
		now = seen_ns;
	cs_debug("disconnect conn=%u fd=%d %s via ebpf, cancelled by the kernel (%u threads)", gen, fd,
		 rst ? "rst" : "fin", kbound);
	/* The disconnect itself (and whether anyone was bound) is counted from
	 * the program's counters (cs_disconnect_fold_kernel); its listener's row
	 * by whoever marks the descriptor DEAD first: this drain, the cancelled
	 * thread (cs_disconnect_kernel_seen) or the close (..._closed). */
	cs_disconnect_kernel_seen(gen, fd);
	/* The threads beyond the program's records, and any it could not
	 * change; those it cancelled have CANCEL and are skipped. */
	n = cs_threads_limit();
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (t && atomic_load_explicit(&t->tid, memory_order_relaxed))
			cancel_thread(t, gen, fd, rst, now);
	}
}

void cs_disconnect_kernel_seen(uint32_t gen, int fd)
{
	unsigned port;

	if (fd >= 0 && mark_dead(gen, fd, &port))
		cs_stats_port_add(port, CS_PORT_DISCONNECTS);
}

void cs_disconnect_kernel_closed(uint64_t old)
{
	cs_stats_port_add(CS_CLIENT_PORT(old), CS_PORT_DISCONNECTS);
}

void cs_disconnect_fold_kernel(void)
{
	struct cs_kshared_counts c;

	cs_kshared_take_counts(&c);
	if (c.cancels) {
		cs_stat_add(CS_STAT_CANCELS, c.cancels);
		cs_stat_add(CS_STAT_KERNEL_CANCELS, c.cancels);
	}
	if (c.wakeups)
		cs_stat_add(CS_STAT_WAKEUPS, c.wakeups);
	if (c.fin)
		cs_stat_add(CS_STAT_DISCONNECT_FIN, c.fin);
	if (c.rst)
		cs_stat_add(CS_STAT_DISCONNECT_RST, c.rst);
	if (c.unbound)
		cs_stat_add(CS_STAT_UNBOUND, c.unbound);
}

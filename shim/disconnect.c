/* What happens when a client goes away: the connection is marked dead, so a
 * thread that binds to it later is cancelled at once, and every thread bound
 * to it now gets its cancel flag. A thread inside a cancellable call is also
 * sent the cancel signal to wake it.
 *
 * Order matters against cs_bind() (policy.c), which stores the binding and
 * then looks for DEAD: here DEAD is stored before the threads are scanned, so
 * a binding that races with this disconnect is caught by one side or the
 * other (all sequentially consistent). */
#include "watcher.h"

#include "fdtable.h"
#include "log.h"
#include "cancel_signal.h"
#include "stats.h"
#include "threads.h"

static void mark_dead(uint32_t gen, int fd)
{
	_Atomic uint64_t *slot = cs_fd_ref_existing(fd);
	uint64_t s;

	if (!slot)
		return;
	s = atomic_load(slot);
	while (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == gen && !(s & CS_CLIENT_DEAD))
		if (atomic_compare_exchange_weak(slot, &s, s | CS_CLIENT_DEAD))
			break;
}

static void cancel_thread(struct cs_thread *t, uint32_t gen, int rst)
{
	uint64_t s = atomic_load(&t->state);

	while ((uint32_t)s == gen && !(s & CS_ST_CANCEL)) {
		if (atomic_compare_exchange_weak(&t->state, &s, s | CS_ST_CANCEL)) {
			int tid = atomic_load(&t->tid);
			cs_stat_add(CS_STAT_CANCELS, 1);
			/* Only a thread inside a cancellable call is signalled;
			 * any other finds the flag at its next call. */
			if ((s & CS_ST_INCALL) && tid) {
				cs_signal_send(tid);
				cs_stat_add(CS_STAT_WAKEUPS, 1);
			}
			cs_debug("cancel conn=%u tid=%d reason=%s%s", gen, tid, rst ? "rst" : "fin",
				 (s & CS_ST_INCALL) ? " woken" : "");
			return;
		}
	}
}

void cs_disconnect(uint32_t gen, int fd, int rst)
{
	size_t n;

	if (!gen)
		return;
	cs_stat_add(rst ? CS_STAT_DISCONNECT_RST : CS_STAT_DISCONNECT_FIN, 1);
	cs_debug("disconnect conn=%u fd=%d %s", gen, fd, rst ? "rst" : "fin");
	mark_dead(gen, fd);
	n = cs_threads_limit();
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (t && atomic_load_explicit(&t->tid, memory_order_relaxed))
			cancel_thread(t, gen, rst);
	}
}

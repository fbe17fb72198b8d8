/* The operator's record of each cancel: at level info, one line the first
 * time a call of a thread fails with ECANCELED for a binding, in a stable
 * format to grep and to join with a proxy's 499 lines (docs/stats.md):
 *
 *   cancelshim[PID]: info: cancel time=2026-12-01T10:00:00.123Z pid=PID tid=TID
 *     lport=8080 peer=203.0.113.7:51234 reason=fin call=recvfrom ms_since_disconnect=0.214
 *
 * (one line). lport is the client connection's local port (unix:PATH for
 * AF_UNIX), peer its remote address ([v6]:port; "-" when the kernel no longer
 * knows it, as after a reset), reason what the watcher saw (fin, rst; "-"
 * when the thread bound to a connection already gone), call the system call
 * that failed, ms_since_disconnect the time from the disconnect (mode ebpf:
 * the kernel's event; epoll: the watcher's wake-up) to the failure, "-" if
 * unknown. A slow path: two system calls, only at a cancel. */
#ifndef CS_CANCEL_LOG_H
#define CS_CANCEL_LOG_H

#include <stdatomic.h>

#include "track/threads.h"

/* The watcher notes why it cancelled t (next to the latency stamp). */
static inline void cs_cancel_log_reason(struct cs_thread *t, int rst)
{
	atomic_store_explicit(&t->cancel_rst, rst ? 1 : 0, memory_order_relaxed);
}

/* Thread t's call nr has just failed with ECANCELED; before
 * cs_stats_cancel_done, which consumes the disconnect's time stamp. */
void cs_cancel_log(struct cs_thread *t, long nr);

/* The line's fields after "cancel " (for the tests): formats into buf. */
struct sockaddr;
void cs_cancel_log_format(char *buf, unsigned len, long long realtime_ns, int pid, int tid,
			  const struct sockaddr *local, unsigned local_len,
			  const struct sockaddr *peer, unsigned peer_len,
			  int reason, long nr, long long ns_since);

#endif

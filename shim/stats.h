/* Counters of what the shim did. Relaxed atomic adds on the rare paths only
 * (binding, cancels, failed calls); the common path counts nothing. */
#ifndef CS_STATS_H
#define CS_STATS_H

#include <stdatomic.h>
#include <stdint.h>

enum cs_stat {
	CS_STAT_CONNECTIONS,	/* client connections accepted */
	CS_STAT_REGISTERED,	/* connections handed to the watcher */
	CS_STAT_DISCONNECT_FIN,
	CS_STAT_DISCONNECT_RST,
	CS_STAT_CANCELS,	/* threads whose cancel flag was set */
	CS_STAT_WAKEUPS,	/* cancel signals sent to a thread inside a call */
	CS_STAT_FAILED_NET,	/* calls failed with ECANCELED, by class */
	CS_STAT_FAILED_WAIT,
	CS_STAT_FAILED_FILE,
	CS_STAT_FAILED_PIPE,
	CS_STAT_LOOP_THREADS,	/* threads recognised as event loops */
	CS_STAT_COUNT
};

extern _Atomic uint64_t cs_stats[CS_STAT_COUNT];

static inline void cs_stat_add(enum cs_stat s, uint64_t n)
{
	atomic_fetch_add_explicit(&cs_stats[s], n, memory_order_relaxed);
}

#endif

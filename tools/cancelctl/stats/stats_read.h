/* cancelctl stats: finding and reading the statistics segments that shimmed
 * processes publish (common/stats_layout.h), and removing those whose process
 * is gone. */
#ifndef CANCELCTL_STATS_READ_H
#define CANCELCTL_STATS_READ_H

#include <stddef.h>
#include <stdint.h>

#include "stats_parse.h"

struct stats_list {
	struct stats_proc *procs;
	size_t n;
};

/* Reads every live segment of our pid namespace in dir (CS_SEG_DIR
 * normally) — or only those of pids[0..npids) when npids > 0 — sorted by
 * pid. Segments of dead processes (pid gone, pid reused, or the process
 * exec'd and no longer maps it) are removed when the caller may, each noted
 * on stderr unless quiet. What is not a regular file owned by root or by one
 * of the uids of the process it names, is not a complete segment, or belongs
 * to another pid namespace is skipped and never removed. 0, or -1 with errno
 * if dir cannot be read. */
int stats_collect(const char *dir, const int *pids, size_t npids, int quiet, struct stats_list *out);
void stats_list_free(struct stats_list *l);

/* The segment of one pid, or NULL. */
const struct stats_proc *stats_find(const struct stats_list *l, int pid);

/* Derived values. */
uint64_t stats_active(const struct stats_proc *p);	/* accepted + inherited + dup'd - closed, >= 0 */
uint64_t stats_ecanceled(const struct stats_proc *p);	/* all classes */
uint64_t stats_disconnects(const struct stats_proc *p);	/* FIN + RST */
uint64_t stats_latency_count(const struct stats_proc *p);
/* Exclusive upper bound in microseconds of the bucket holding quantile q
 * (0 < q <= 1); 0 when there are no samples; UINT64_MAX for the open last
 * bucket. */
uint64_t stats_latency_quantile_us(const struct stats_proc *p, double q);
/* Upper bound (exclusive, microseconds) of bucket b; UINT64_MAX for the last. */
uint64_t stats_bucket_upper_us(unsigned b);

#endif

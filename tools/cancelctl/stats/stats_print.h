/* cancelctl stats: the three outputs (table, JSON, Prometheus text). */
#ifndef CANCELCTL_STATS_PRINT_H
#define CANCELCTL_STATS_PRINT_H

#include <stdio.h>

#include "stats_read.h"

/* One row per process. With prev (the previous refresh, may be NULL) the
 * table gains per-second rates. */
void stats_print_table(FILE *out, const struct stats_list *now, const struct stats_list *prev);

/* A JSON array, one object per process, every counter (docs/stats.md). */
void stats_print_json(FILE *out, const struct stats_list *l);

/* Prometheus text exposition format 0.0.4 (docs/stats.md). */
void stats_print_prometheus(FILE *out, const struct stats_list *l);

#endif

/* A segment header as the shim writes it (shim/stats/stats.c), for the
 * tests that build segments by hand: the parser's, and the files planted in
 * /dev/shm. */
#ifndef CS_SEG_HEADER_H
#define CS_SEG_HEADER_H

#include <stdint.h>

#include "stats_layout.h"

/* Magic, layout version and sizes of this build, for pid in the pid
 * namespace pid_ns; every other field left as it is. */
static inline void st_header_init(struct cs_seg_header *h, int pid, uint64_t pid_ns)
{
	h->magic = CS_SEG_MAGIC;
	h->version = CS_SEG_VERSION;
	h->header_size = CS_SEG_HEADER_SIZE;
	h->ncounters = CS_STAT_COUNT;
	h->latency_first = CS_STAT_LATENCY;
	h->latency_buckets = CS_LATENCY_BUCKETS;
	h->pid = pid;
	h->pid_ns = pid_ns;
}

#endif

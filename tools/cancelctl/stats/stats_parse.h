/* cancelctl stats: turning a segment's bytes into a struct stats_proc. The
 * bytes are a private copy of a file that any local user could have planted
 * or that its owner may be rewriting as we read: every field is checked
 * before use, nothing is trusted, nothing is mapped. No I/O here (the fuzz
 * target tests/fuzz/fuzz_stats.c drives this directly). */
#ifndef CANCELCTL_STATS_PARSE_H
#define CANCELCTL_STATS_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "stats_layout.h"

/* The largest segment file read: a writer of a later version may have
 * appended counters, but never this many. */
#define STATS_SEG_MAX_BYTES 65536u

/* One process's statistics at one moment. Counters the writer's layout does
 * not have read as 0. Strings are NUL-terminated, valid UTF-8 and free of
 * control characters. */
struct stats_proc {
	int pid;
	uint32_t version;
	uint64_t pid_ns;
	uint64_t start_time;
	uint64_t created_ns;
	char mode[16], mode_requested[16], on[8], calls[32], signal[24];
	char canceller[16];	/* mode ebpf: "kernel" or "watcher"; "" otherwise or in older segments */
	char cmdline[CS_SEG_CMDLINE + 1];
	uint64_t c[CS_STAT_COUNT];
	/* The per-listener rows (0 when CANCELSHIM_PORTS is unset, or the
	 * writer's layout has no region or one of a later version). Labels are
	 * sanitized like the strings above. */
	unsigned nports;
	struct stats_port {
		char label[CS_SEG_PORT_LABEL + 1];
		uint64_t c[CS_PORT_STAT_COUNT];
	} ports[CS_SEG_PORTS_MAX];
	uint64_t read_ns;	/* CLOCK_MONOTONIC when read (for rates) */
};

/* Parses len bytes of the segment named after (pid_ns, pid) into *p. NULL
 * on success, else why the bytes are not a complete segment of that
 * process (incomplete, another layout, another process's, nonsense). */
const char *stats_parse_segment(const void *bytes, size_t len, uint64_t pid_ns, int pid, struct stats_proc *p);

/* Parses a directory entry name CS_SEG_PREFIX "<ns>.<pid>": 0 with *ns and
 * *pid set, or -1 for any other name (the old CS_SEG_PREFIX "<pid>" too). */
int stats_parse_name(const char *name, uint64_t *ns, int *pid);

#endif

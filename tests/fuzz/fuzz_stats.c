/* libFuzzer target for everything in `cancelctl stats` that reads untrusted
 * bytes: the segment parser (any local user can plant a file under a
 * segment's name), the directory-entry name parser, and the three printers
 * that show what a segment holds (table with rates, JSON, Prometheus),
 * the per-listener region (CANCELSHIM_PORTS rows) included.
 * Built by run-fuzz (FUZZ_TARGET=stats) with clang; replay.c drives the same
 * function from a plain main() so the meson test replays corpus-stats/. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "stats_parse.h"
#include "stats_print.h"
#include "stats_read.h"

static FILE *sink(void)
{
	static FILE *f;
	if (!f)
		f = fopen("/dev/null", "w");
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cs_seg_header h = { 0 };
	struct stats_proc p, q;
	char name[96];
	uint64_t ns;
	int pid;

	/* As a directory entry's name (the first bytes, NUL-terminated). */
	memcpy(name, data, size < sizeof name - 1 ? size : sizeof name - 1);
	name[size < sizeof name - 1 ? size : sizeof name - 1] = 0;
	stats_parse_name(name, &ns, &pid);

	/* As a segment named after the process it claims to be (so that the
	 * checks past "names another process" are reached), and after another. */
	memcpy(&h, data, size < sizeof h ? size : sizeof h);
	stats_parse_segment(data, size, h.pid_ns + 1, h.pid, &p);
	if (stats_parse_segment(data, size, h.pid_ns, h.pid, &p))
		return 0;
	/* What the parser promises about the per-listener rows: no more than
	 * the layout has, labels NUL-terminated inside their field. */
	if (p.nports > CS_SEG_PORTS_MAX)
		__builtin_trap();
	for (unsigned i = 0; i < p.nports; i++)
		if (strnlen(p.ports[i].label, sizeof p.ports[i].label) == sizeof p.ports[i].label)
			__builtin_trap();
	/* Everything the printers show, against a later reading of itself
	 * (rates: counters that went backwards, a zero interval). */
	q = p;
	q.read_ns = p.read_ns + (size & 1 ? 0 : 1000000000u);
	for (unsigned i = 0; i < CS_STAT_COUNT; i++)
		q.c[i] = p.c[i] + (i % 3 ? 1 : (uint64_t)-1);
	struct stats_list now = { &q, 1 }, prev = { &p, 1 };
	if (sink()) {
		stats_print_table(sink(), &now, &prev);
		stats_print_json(sink(), &now);
		stats_print_prometheus(sink(), &now);
	}
	stats_latency_quantile_us(&p, 0.5);
	stats_latency_quantile_us(&p, 0.99);
	stats_latency_quantile_us(&p, 1.0);
	return 0;
}

/* The per-listener region of a segment (stats_layout.h: struct cs_seg_ports)
 * through cancelctl's parser and printers, bytes in, no files: every field
 * of the region is checked against the bytes read, a writer without the
 * region or with a later version of it still shows, and a label is escaped
 * for JSON and Prometheus. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_parse.h"
#include "stats_print.h"
#include "stats_read.h"

#define PID 4242
#define NS 4026531836ull

static unsigned char seg[STATS_SEG_MAX_BYTES];

static struct cs_seg_ports *region(void)
{
	return (struct cs_seg_ports *)(seg + CS_SEG_PORTS_OFFSET);
}

static struct cs_seg_port *row(unsigned i)
{
	return (struct cs_seg_port *)(region() + 1) + i;
}

/* A segment as the shim writes it, with two rows. */
static void valid(void)
{
	struct cs_seg_header *h = (struct cs_seg_header *)seg;

	memset(seg, 0, sizeof seg);
	h->magic = CS_SEG_MAGIC;
	cs_seg_header_layout(h, PID, NS);
	h->ports_offset = CS_SEG_PORTS_OFFSET;
	*region() = (struct cs_seg_ports){ CS_SEG_PORTS_VERSION, 2, sizeof(struct cs_seg_port), CS_PORT_STAT_COUNT };
	strcpy(row(0)->label, "8080");
	row(0)->c[CS_PORT_ACCEPTED] = 7;
	row(0)->c[CS_PORT_DISCONNECTS] = 5;
	row(0)->c[CS_PORT_CANCELS] = 3;
	strcpy(row(1)->label, "unix:/run/app.sock");
	row(1)->c[CS_PORT_CANCELS] = 1;
}

static const char *parse(size_t len, struct stats_proc *p)
{
	return stats_parse_segment(seg, len, NS, PID, p);
}

Test(parse_ports, the_rows_the_shim_writes)
{
	struct stats_proc p;
	valid();
	cr_assert_null(parse(CS_SEG_SIZE, &p));
	cr_assert_eq(p.nports, 2);
	cr_assert_str_eq(p.ports[0].label, "8080");
	cr_assert_eq(p.ports[0].c[CS_PORT_ACCEPTED], 7);
	cr_assert_eq(p.ports[0].c[CS_PORT_DISCONNECTS], 5);
	cr_assert_eq(p.ports[0].c[CS_PORT_CANCELS], 3);
	cr_assert_str_eq(p.ports[1].label, "unix:/run/app.sock");
	cr_assert_eq(p.ports[1].c[CS_PORT_CANCELS], 1);
}

Test(parse_ports, a_writer_without_the_region_still_shows)
{
	struct stats_proc p;
	valid();
	((struct cs_seg_header *)seg)->ports_offset = 0;
	/* The size a segment had before the region existed. */
	cr_assert_null(parse(CS_SEG_HEADER_SIZE + CS_STAT_COUNT * 8, &p));
	cr_assert_eq(p.nports, 0);
}

Test(parse_ports, a_later_region_version_is_skipped_the_rest_shows)
{
	struct stats_proc p;
	valid();
	region()->version = 2;
	region()->count = 0xffffffff;	/* whatever version 2 means by it */
	cr_assert_null(parse(CS_SEG_SIZE, &p));
	cr_assert_eq(p.nports, 0);
	cr_assert_eq(p.pid, PID);
}

Test(parse_ports, appended_counters_and_larger_entries_are_read)
{
	struct stats_proc p;
	valid();
	region()->entry_size = CS_SEG_PORT_LABEL + 6 * 8;
	region()->ncounters = 6;
	unsigned char *e1 = (unsigned char *)(region() + 1) + region()->entry_size;
	memset(e1, 0, region()->entry_size);
	strcpy((char *)e1, "9000-9009");
	((uint64_t *)(e1 + CS_SEG_PORT_LABEL))[CS_PORT_CANCELS] = 11;
	((uint64_t *)(e1 + CS_SEG_PORT_LABEL))[5] = 99;
	cr_assert_null(parse(CS_SEG_SIZE + 256, &p));
	cr_assert_eq(p.nports, 2);
	cr_assert_eq(p.ports[0].c[CS_PORT_CANCELS], 3);
	cr_assert_str_eq(p.ports[1].label, "9000-9009");
	cr_assert_eq(p.ports[1].c[CS_PORT_CANCELS], 11);
}

/* Each of these makes the whole segment junk: a writer of this layout never
 * writes them, so the file is not what it claims to be. */
Test(parse_ports, bad_offsets_counts_and_sizes_are_refused)
{
	struct {
		const char *what;
		uint32_t offset, count, entry_size, ncounters;
		size_t len;
	} bad[] = {
		{ "offset past the end", 0xfffffff8u, 2, sizeof(struct cs_seg_port), 3, CS_SEG_SIZE },
		{ "offset misaligned", CS_SEG_PORTS_OFFSET + 4, 2, sizeof(struct cs_seg_port), 3, CS_SEG_SIZE },
		{ "offset inside the counters", CS_SEG_PORTS_OFFSET - 8, 2, sizeof(struct cs_seg_port), 3, CS_SEG_SIZE },
		{ "offset inside the header", 8, 2, sizeof(struct cs_seg_port), 3, CS_SEG_SIZE },
		{ "region header cut", CS_SEG_PORTS_OFFSET, 2, sizeof(struct cs_seg_port), 3, CS_SEG_PORTS_OFFSET + 8 },
		{ "more rows than entries", CS_SEG_PORTS_OFFSET, CS_SEG_PORTS_MAX + 1, sizeof(struct cs_seg_port), 3,
		  STATS_SEG_MAX_BYTES },
		{ "huge count", CS_SEG_PORTS_OFFSET, 0xffffffffu, sizeof(struct cs_seg_port), 3, STATS_SEG_MAX_BYTES },
		{ "rows past the end", CS_SEG_PORTS_OFFSET, 2, sizeof(struct cs_seg_port), 3,
		  CS_SEG_PORTS_OFFSET + sizeof(struct cs_seg_ports) + sizeof(struct cs_seg_port) },
		{ "last row cut", CS_SEG_PORTS_OFFSET, 2, sizeof(struct cs_seg_port), 3,
		  CS_SEG_PORTS_OFFSET + sizeof(struct cs_seg_ports) + 2 * sizeof(struct cs_seg_port) - 1 },
		{ "entry smaller than its counters", CS_SEG_PORTS_OFFSET, 2, CS_SEG_PORT_LABEL + 16, 3, CS_SEG_SIZE },
		{ "entry size misaligned", CS_SEG_PORTS_OFFSET, 2, sizeof(struct cs_seg_port) + 4, 3, CS_SEG_SIZE },
		{ "entry size zero", CS_SEG_PORTS_OFFSET, 2, 0, 3, CS_SEG_SIZE },
		{ "fewer counters than version 1", CS_SEG_PORTS_OFFSET, 2, sizeof(struct cs_seg_port), 2, CS_SEG_SIZE },
		{ "huge ncounters", CS_SEG_PORTS_OFFSET, 2, 0xfffffff8u, 0xffffffffu, STATS_SEG_MAX_BYTES },
		{ "ncounters wrapping entry_size", CS_SEG_PORTS_OFFSET, 1, 120, 0x20000000u, STATS_SEG_MAX_BYTES },
		{ "huge entry size", CS_SEG_PORTS_OFFSET, 1, 0xfffffff8u, 3, STATS_SEG_MAX_BYTES },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct stats_proc p;
		valid();
		((struct cs_seg_header *)seg)->ports_offset = bad[i].offset;
		region()->count = bad[i].count;
		region()->entry_size = bad[i].entry_size;
		region()->ncounters = bad[i].ncounters;
		cr_expect_not_null(parse(bad[i].len, &p), "accepted: %s", bad[i].what);
	}
	/* The good one of the same shape, for contrast. */
	struct stats_proc p;
	valid();
	cr_assert_null(parse(CS_SEG_PORTS_OFFSET + sizeof(struct cs_seg_ports) + 2 * sizeof(struct cs_seg_port), &p));
	cr_assert_eq(p.nports, 2);
}

static char *printed(void (*print)(FILE *, const struct stats_list *), struct stats_proc *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct stats_list l = { p, 1 };
	print(f, &l);
	fclose(f);
	return buf;
}

Test(parse_ports, a_hostile_label_is_bounded_sanitized_and_escaped)
{
	struct stats_proc p;
	valid();
	/* No NUL in the field, a quote, a backslash, a newline, invalid UTF-8. */
	memset(row(1)->label, 'a', CS_SEG_PORT_LABEL);
	memcpy(row(1)->label, "unix:/a\"b\\c\nd\xff\xc0", 15);
	cr_assert_null(parse(CS_SEG_SIZE, &p));
	cr_assert_eq(strlen(p.ports[1].label), CS_SEG_PORT_LABEL);
	cr_assert_eq(strncmp(p.ports[1].label, "unix:/a\"b\\c?d??", 15), 0, "%s", p.ports[1].label);

	char *json = printed(stats_print_json, &p), *prom = printed(stats_print_prometheus, &p);
	cr_assert(strstr(json, "\"ports\":[{\"port\":\"8080\",\"connections_accepted\":7,\"disconnects\":5,\"cancels\":3},"
			       "{\"port\":\"unix:/a\\\"b\\\\c?d??aaa"),
		  "%s", json);
	cr_assert(strstr(prom, "cancelshim_port_cancels_total{pid=\"4242\",command=\"\",port=\"8080\"} 3\n"), "%s", prom);
	cr_assert(strstr(prom, ",port=\"unix:/a\\\"b\\\\c?d??aaa"), "%s", prom);
	free(json);
	free(prom);
}

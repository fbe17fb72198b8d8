/* See stats_parse.h. */
#include "stats_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* A bounded field into a NUL-terminated string: stops at the first NUL or
 * at the field's end, whichever comes first. */
static void copy_field(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen < dlen - 1 ? slen : dlen - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* The command line is whatever the process had in /proc/self/cmdline, cut
 * at a byte count (and the other strings are as untrusted): make it valid
 * UTF-8 (JSON and Prometheus need it) and free of control characters (the
 * table), replacing what is not with '?'. */
static void sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
		int ok = n >= 0 && !(n == 1 && *p < 0xc2);
		for (int i = 1; ok && i <= n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok || *p < 0x20 || *p == 0x7f) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

#define FIELD(dst, src)                                            \
	do {                                                       \
		copy_field(dst, sizeof dst, src, sizeof src);      \
		sanitize(dst);                                     \
	} while (0)

/* The per-listener region at off (stats_layout.h), bounds-checked against
 * the len bytes read and the counters before it. NULL (rows copied, or none
 * for a region of a version we do not know) or why it is nonsense. */
static const char *parse_ports(const unsigned char *bytes, size_t len, uint64_t off, uint64_t counters_end,
			       struct stats_proc *p)
{
	struct cs_seg_ports r;
	uint64_t size;

	if (off == 0)
		return NULL;	/* written before the region existed */
	if (off % 8 || off < counters_end || off > len || len - off < sizeof r)
		return "per-listener region outside the file";
	memcpy(&r, bytes + off, sizeof r);
	if (r.version != CS_SEG_PORTS_VERSION)
		return NULL;	/* a later layout of the region: the rest still shows */
	if (r.count > CS_SEG_PORTS_MAX)
		return "more per-listener rows than CANCELSHIM_PORTS has entries";
	if (r.ncounters < CS_PORT_STAT_COUNT || r.ncounters > (STATS_SEG_MAX_BYTES - CS_SEG_PORT_LABEL) / 8 ||
	    r.entry_size % 8 || r.entry_size < CS_SEG_PORT_LABEL + (uint64_t)r.ncounters * 8)
		return "per-listener rows of a bad size";
	size = (uint64_t)r.count * r.entry_size;
	if (size > len - off - sizeof r)
		return "per-listener rows beyond the end of the file";
	for (unsigned i = 0; i < r.count; i++) {
		const unsigned char *e = bytes + off + sizeof r + (uint64_t)i * r.entry_size;
		copy_field(p->ports[i].label, sizeof p->ports[i].label, (const char *)e, CS_SEG_PORT_LABEL);
		sanitize(p->ports[i].label);
		memcpy(p->ports[i].c, e + CS_SEG_PORT_LABEL, sizeof p->ports[i].c);
	}
	p->nports = r.count;
	return NULL;
}

const char *stats_parse_segment(const void *bytes, size_t len, uint64_t pid_ns, int pid, struct stats_proc *p)
{
	struct cs_seg_header h;
	const char *why;
	uint32_t n;

	/* The copy may be shorter than the header (truncated while read);
	 * work on an aligned copy of the header either way. */
	if (len < CS_SEG_HEADER_SIZE)
		return "shorter than a header";
	if (len > STATS_SEG_MAX_BYTES)
		return "too large";
	memcpy(&h, bytes, sizeof h);
	if (h.magic != CS_SEG_MAGIC)
		return "no magic (being created, or not a segment)";
	if (h.version != CS_SEG_VERSION)
		return "a layout version this cancelctl does not know";
	/* The counters start at header_size, aligned, inside what was read. */
	if (h.header_size < sizeof h || h.header_size % 8 || h.header_size > len)
		return "bad header size";
	if (h.ncounters > (len - h.header_size) / 8)
		return "counters beyond the end of the file";
	/* Version 1 only ever appends counters: the histogram stays put. */
	if (h.latency_first != CS_STAT_LATENCY || h.latency_buckets != CS_LATENCY_BUCKETS ||
	    h.ncounters < CS_STAT_LATENCY + CS_LATENCY_BUCKETS)
		return "latency histogram not where version 1 has it";
	if (h.pid != pid || h.pid_ns != pid_ns)
		return "names another process";

	memset(p, 0, sizeof *p);
	p->pid = pid;
	p->version = h.version;
	p->pid_ns = h.pid_ns;
	p->start_time = h.start_time;
	p->created_ns = h.created_ns;
	FIELD(p->mode, h.mode);
	FIELD(p->canceller, h.canceller);
	FIELD(p->mode_requested, h.mode_requested);
	FIELD(p->on, h.on);
	FIELD(p->calls, h.calls);
	FIELD(p->signal, h.signal);
	FIELD(p->cmdline, h.cmdline);
	n = h.ncounters < CS_STAT_COUNT ? h.ncounters : CS_STAT_COUNT;
	memcpy(p->c, (const char *)bytes + h.header_size, (size_t)n * sizeof p->c[0]);
	why = parse_ports(bytes, len, h.ports_offset, (uint64_t)h.header_size + (uint64_t)h.ncounters * 8, p);
	return why;
}

/* Decimal digits up to the end of the string or a terminator, no sign, no
 * leading space, at most limit. */
static int parse_decimal(const char *s, const char **end, uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (v > (limit - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*end = s;
	*out = v;
	return 0;
}

int stats_parse_name(const char *name, uint64_t *ns, int *pid)
{
	size_t plen = strlen(CS_SEG_PREFIX);
	const char *s;
	uint64_t v;

	if (strncmp(name, CS_SEG_PREFIX, plen))
		return -1;
	if (parse_decimal(name + plen, &s, UINT64_MAX, ns) < 0 || *s != '.' || !*ns)
		return -1;
	if (parse_decimal(s + 1, &s, 0x7fffffff, &v) < 0 || *s || v == 0)
		return -1;
	*pid = (int)v;
	return 0;
}

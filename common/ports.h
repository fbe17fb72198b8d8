/* CANCELSHIM_PORTS: the listeners whose clients may be cancelled. A server
 * with a public port and an internal admin or replication port lets the
 * operator choose; by default (unset, empty or "all") every listener is in
 * scope. Parsing is pure, like the rest of config.h. */
#ifndef CS_PORTS_H
#define CS_PORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CS_PORTS_TCP_MAX 16	/* ports or ranges */
#define CS_PORTS_UNIX_MAX 4
#define CS_PORTS_UNIX_LEN 108	/* sun_path */

struct cs_ports {
	uint8_t n_tcp, n_unix;	/* both 0: every listener */
	struct { uint16_t lo, hi; } tcp[CS_PORTS_TCP_MAX];
	char unix_path[CS_PORTS_UNIX_MAX][CS_PORTS_UNIX_LEN];	/* "@name": abstract */
};

/* "all", or a comma list of TCP ports (8080), ranges (8000-8099) and
 * unix:PATH (unix:@NAME for an abstract socket). 0, or -1 with a message
 * naming CANCELSHIM_PORTS and the accepted values in err. */
int cs_parse_ports(const char *s, struct cs_ports *out, char *err, size_t errlen);

static inline bool cs_ports_all(const struct cs_ports *p)
{
	return !p->n_tcp && !p->n_unix;
}

/* In scope: a TCP listener on port, an AF_UNIX one bound to path (len bytes,
 * abstract names starting with '@'). */
bool cs_ports_has_tcp(const struct cs_ports *p, uint16_t port);
bool cs_ports_has_unix(const struct cs_ports *p, const char *path, size_t len);

/* Entries are numbered in the order cs_ports_entry_label lists them: the
 * TCP ports and ranges (0 .. n_tcp-1), then the unix: paths. The entry a
 * listener matches (the first, if ranges overlap), or -1 (none, or every
 * listener in scope). */
int cs_ports_tcp_entry(const struct cs_ports *p, uint16_t port);
int cs_ports_unix_entry(const struct cs_ports *p, const char *path, size_t len);
static inline unsigned cs_ports_entries(const struct cs_ports *p)
{
	return (unsigned)p->n_tcp + p->n_unix;
}

/* Entry i as written: "8080", "8000-8099", "unix:/run/x.sock". */
void cs_ports_entry_label(const struct cs_ports *p, unsigned i, char *buf, size_t len);

/* "8080,9000-9009,unix:/run/x.sock" or "all". */
void cs_ports_format(const struct cs_ports *p, char *buf, size_t len);

#endif

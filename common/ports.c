/* Parsing and matching of CANCELSHIM_PORTS (see ports.h). */
#include "ports.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ACCEPTED "accepted values: all, or a comma list of TCP ports (8080), ranges " \
		 "(8000-8099) and unix:PATH for AF_UNIX listeners (unix:@NAME: abstract)"

/* A port number 1..65535 at *p; advances *p. -1 if none. */
static long port_at(const char **p)
{
	long v = 0;
	const char *s = *p;
	if (!isdigit((unsigned char)*s))
		return -1;
	while (isdigit((unsigned char)*s) && v <= 65535)
		v = v * 10 + (*s++ - '0');
	*p = s;
	return v >= 1 && v <= 65535 ? v : -1;
}

int cs_parse_ports(const char *s, struct cs_ports *out, char *err, size_t errlen)
{
	struct cs_ports p;
	const char *why = "";

	memset(&p, 0, sizeof p);
	if (!*s || !strcasecmp(s, "all")) {
		*out = p;
		return 0;
	}
	for (const char *q = s;;) {
		size_t n = strcspn(q, ",");
		if (!strncmp(q, "unix:", 5)) {
			if (n <= 5 || n - 5 >= CS_PORTS_UNIX_LEN) {
				why = "a unix: entry needs a path shorter than 108 bytes; ";
				goto bad;
			}
			if (p.n_unix == CS_PORTS_UNIX_MAX) {
				why = "at most 4 unix: entries; ";
				goto bad;
			}
			memcpy(p.unix_path[p.n_unix++], q + 5, n - 5);
		} else {
			const char *r = q;
			long lo = port_at(&r), hi = lo;
			if (lo > 0 && *r == '-') {
				r++;
				hi = port_at(&r);
			}
			if (lo < 0 || hi < lo || r != q + n) {
				why = "";
				goto bad;
			}
			if (p.n_tcp == CS_PORTS_TCP_MAX) {
				why = "at most 16 ports or ranges; ";
				goto bad;
			}
			p.tcp[p.n_tcp].lo = (uint16_t)lo;
			p.tcp[p.n_tcp++].hi = (uint16_t)hi;
		}
		q += n;
		if (!*q)
			break;
		q++;
	}
	*out = p;
	return 0;
bad:
	snprintf(err, errlen, "CANCELSHIM_PORTS='%s' is not valid; %s" ACCEPTED, s, why);
	return -1;
}

int cs_ports_tcp_entry(const struct cs_ports *p, uint16_t port)
{
	for (unsigned i = 0; i < p->n_tcp; i++)
		if (port >= p->tcp[i].lo && port <= p->tcp[i].hi)
			return (int)i;
	return -1;
}

int cs_ports_unix_entry(const struct cs_ports *p, const char *path, size_t len)
{
	for (unsigned i = 0; i < p->n_unix; i++)
		if (strnlen(p->unix_path[i], CS_PORTS_UNIX_LEN) == len && !memcmp(p->unix_path[i], path, len))
			return (int)(p->n_tcp + i);
	return -1;
}

bool cs_ports_has_tcp(const struct cs_ports *p, uint16_t port)
{
	return cs_ports_all(p) || cs_ports_tcp_entry(p, port) >= 0;
}

bool cs_ports_has_unix(const struct cs_ports *p, const char *path, size_t len)
{
	return cs_ports_all(p) || cs_ports_unix_entry(p, path, len) >= 0;
}

void cs_ports_entry_label(const struct cs_ports *p, unsigned i, char *buf, size_t len)
{
	if (i < p->n_tcp && p->tcp[i].lo == p->tcp[i].hi)
		snprintf(buf, len, "%u", p->tcp[i].lo);
	else if (i < p->n_tcp)
		snprintf(buf, len, "%u-%u", p->tcp[i].lo, p->tcp[i].hi);
	else if (i < cs_ports_entries(p))
		snprintf(buf, len, "unix:%.*s", CS_PORTS_UNIX_LEN, p->unix_path[i - p->n_tcp]);
	else if (len)
		buf[0] = '\0';
}

void cs_ports_format(const struct cs_ports *p, char *buf, size_t len)
{
	size_t used = 0;
	if (cs_ports_all(p)) {
		snprintf(buf, len, "all");
		return;
	}
	buf[0] = '\0';
	for (unsigned i = 0; i < p->n_tcp; i++) {
		if (p->tcp[i].lo == p->tcp[i].hi)
			used += snprintf(buf + used, used < len ? len - used : 0, "%s%u", used ? "," : "",
					 p->tcp[i].lo);
		else
			used += snprintf(buf + used, used < len ? len - used : 0, "%s%u-%u", used ? "," : "",
					 p->tcp[i].lo, p->tcp[i].hi);
	}
	for (unsigned i = 0; i < p->n_unix; i++)
		used += snprintf(buf + used, used < len ? len - used : 0, "%sunix:%s", used ? "," : "",
				 p->unix_path[i]);
}

/* CANCELSHIM_PORTS at accept (see scope.h). */
#include "track/scope.h"

#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/log.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "track/fdtable.h"

/* The CANCELSHIM_PORTS entry a bound address matches (-1: none), or -2 for
 * an address of no family CANCELSHIM_PORTS speaks of. */
static int addr_entry(const struct sockaddr *sa, unsigned len)
{
	const struct cs_ports *p = &cs_proc.cfg.ports;

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		return cs_ports_tcp_entry(p, ntohs(((const struct sockaddr_in *)sa)->sin_port));
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return cs_ports_tcp_entry(p, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	if (sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		size_t n = len - offsetof(struct sockaddr_un, sun_path);
		char name[CS_PORTS_UNIX_LEN + 1];
		if (path[0] == '\0') {	/* abstract: written "@name" */
			if (n > CS_PORTS_UNIX_LEN)
				return -1;
			name[0] = '@';
			memcpy(name + 1, path + 1, n - 1);
			return cs_ports_unix_entry(p, name, n);
		}
		return cs_ports_unix_entry(p, path, strnlen(path, n));
	}
	return -2;
}

bool cs_scope_addr_in(const struct sockaddr *sa, unsigned len)
{
	int e = addr_entry(sa, len);
	return e != -2 && (cs_ports_all(&cs_proc.cfg.ports) || e >= 0);
}

bool cs_scope_excludes(int lfd, _Atomic uint64_t *lref, unsigned *entry1)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	uint64_t ls;
	int e = -1;
	bool out;

	*entry1 = 0;
	if (cs_ports_all(&cs_proc.cfg.ports))
		return false;
	ls = lref ? atomic_load(lref) : 0;
	if (ls & CS_LISTENER_SCOPE_KNOWN) {
		*entry1 = CS_LISTENER_ENTRY(ls);
		return ls & CS_LISTENER_OUT_OF_SCOPE;
	}
	if (cs_raw3(SYS_getsockname, lfd, (long)&ss, (long)&len) == 0)
		e = addr_entry((struct sockaddr *)&ss, len);
	out = e < 0;
	if (!out)
		*entry1 = (unsigned)e + 1;
	if (lref)
		atomic_fetch_or(lref, CS_LISTENER_SCOPE_KNOWN | (out ? CS_LISTENER_OUT_OF_SCOPE : 0) |
				      CS_LISTENER_WITH_ENTRY(*entry1));
	return out;
}

void cs_scope_announce(void)
{
	char list[CS_PORTS_TCP_MAX * 12 + CS_PORTS_UNIX_MAX * (CS_PORTS_UNIX_LEN + 6)];

	if (cs_ports_all(&cs_proc.cfg.ports))
		return;
	cs_ports_format(&cs_proc.cfg.ports, list, sizeof list);
	cs_info("scope: ports %s; clients of other listeners are never cancelled", list);
}

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

bool cs_scope_addr_in(const struct sockaddr *sa, unsigned len)
{
	const struct cs_ports *p = &cs_proc.cfg.ports;

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in))
		return cs_ports_has_tcp(p, ntohs(((const struct sockaddr_in *)sa)->sin_port));
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6))
		return cs_ports_has_tcp(p, ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	if (sa->sa_family == AF_UNIX && len > offsetof(struct sockaddr_un, sun_path)) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		size_t n = len - offsetof(struct sockaddr_un, sun_path);
		char name[CS_PORTS_UNIX_LEN + 1];
		if (path[0] == '\0') {	/* abstract: written "@name" */
			if (n > CS_PORTS_UNIX_LEN)
				return false;
			name[0] = '@';
			memcpy(name + 1, path + 1, n - 1);
			return cs_ports_has_unix(p, name, n);
		}
		return cs_ports_has_unix(p, path, strnlen(path, n));
	}
	return false;
}

bool cs_scope_excludes(int lfd, _Atomic uint64_t *lref)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	uint64_t ls;
	bool out;

	if (cs_ports_all(&cs_proc.cfg.ports))
		return false;
	ls = lref ? atomic_load(lref) : 0;
	if (ls & CS_LISTENER_SCOPE_KNOWN)
		return ls & CS_LISTENER_OUT_OF_SCOPE;
	out = cs_raw3(SYS_getsockname, lfd, (long)&ss, (long)&len) < 0 ||
	      !cs_scope_addr_in((struct sockaddr *)&ss, len);
	if (lref)
		atomic_fetch_or(lref, CS_LISTENER_SCOPE_KNOWN | (out ? CS_LISTENER_OUT_OF_SCOPE : 0));
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

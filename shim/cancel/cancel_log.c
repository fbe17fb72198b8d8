/* One info line per cancel (see cancel_log.h for the format). */
#include "cancel/cancel_log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "base/log.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "stats/stats.h"

/* The binding this thread last logged a cancel for: one line per binding,
 * however many of its calls fail afterwards. */
static __thread uint32_t logged_gen;

static const struct { long nr; const char *name; } names[] = {
	{ SYS_read, "read" }, { SYS_readv, "readv" }, { SYS_pread64, "pread64" },
	{ SYS_preadv, "preadv" }, { SYS_preadv2, "preadv2" }, { SYS_recvfrom, "recvfrom" },
	{ SYS_recvmsg, "recvmsg" }, { SYS_recvmmsg, "recvmmsg" }, { SYS_write, "write" },
	{ SYS_writev, "writev" }, { SYS_pwrite64, "pwrite64" }, { SYS_pwritev, "pwritev" },
	{ SYS_pwritev2, "pwritev2" }, { SYS_sendto, "sendto" }, { SYS_sendmsg, "sendmsg" },
	{ SYS_sendmmsg, "sendmmsg" }, { SYS_sendfile, "sendfile" }, { SYS_connect, "connect" },
	{ SYS_poll, "poll" }, { SYS_ppoll, "ppoll" }, { SYS_select, "select" },
	{ SYS_pselect6, "pselect6" }, { SYS_epoll_wait, "epoll_wait" },
	{ SYS_epoll_pwait, "epoll_pwait" }, { SYS_epoll_pwait2, "epoll_pwait2" },
	{ SYS_nanosleep, "nanosleep" }, { SYS_clock_nanosleep, "clock_nanosleep" },
};

static unsigned addr_text(char *buf, unsigned len, const struct sockaddr *sa, unsigned salen, int port_only)
{
	char ip[INET6_ADDRSTRLEN];
	if (!sa || !salen)
		return (unsigned)snprintf(buf, len, "-");
	if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		if (port_only)
			return (unsigned)snprintf(buf, len, "%u", ntohs(in->sin_port));
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
		return (unsigned)snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
	}
	if (sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		if (port_only)
			return (unsigned)snprintf(buf, len, "%u", ntohs(in6->sin6_port));
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
		return (unsigned)snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	}
	if (sa->sa_family == AF_UNIX) {
		const char *path = ((const struct sockaddr_un *)sa)->sun_path;
		size_t n = salen > offsetof(struct sockaddr_un, sun_path) ? salen - offsetof(struct sockaddr_un, sun_path) : 0;
		if (n && path[0] == '\0')	/* abstract */
			return (unsigned)snprintf(buf, len, "unix:@%.*s", (int)(n - 1), path + 1);
		n = strnlen(path, n);
		if (!n)		/* unnamed, as a connecting client usually is */
			return (unsigned)snprintf(buf, len, "-");
		/* A path with a space would break the fields: cut it there. */
		size_t clean = strcspn(path, " \t\n");
		return (unsigned)snprintf(buf, len, "unix:%.*s", (int)(n < clean ? n : clean), path);
	}
	return (unsigned)snprintf(buf, len, "-");
}

/* UTC calendar fields of secs since the epoch, computed here: libc's
 * gmtime_r takes its time-zone lock, which a fork child of a threaded server
 * may inherit held by another thread, and would then wait for ever
 * (days-to-civil conversion, proleptic Gregorian calendar). */
static void utc_fields(long long secs, int *y, int *mo, int *d, int *h, int *mi, int *s)
{
	long long days = secs / 86400, rem = secs % 86400, era, doe, yoe, doy, mp;

	if (rem < 0) {
		rem += 86400;
		days--;
	}
	*h = (int)(rem / 3600);
	*mi = (int)(rem / 60 % 60);
	*s = (int)(rem % 60);
	days += 719468;
	era = (days >= 0 ? days : days - 146096) / 146097;
	doe = days - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*mo = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*mo <= 2));
}

void cs_cancel_log_format(char *buf, unsigned len, long long realtime_ns, int pid, int tid,
			  const struct sockaddr *local, unsigned local_len,
			  const struct sockaddr *peer, unsigned peer_len,
			  int reason, long nr, long long ns_since)
{
	char lport[128], raddr[128], call[32], since[32], when[64];
	int y, mo, d, h, mi, sec;
	const char *name = NULL;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].nr == nr)
			name = names[i].name;
	if (name)
		snprintf(call, sizeof call, "%s", name);
	else
		snprintf(call, sizeof call, "syscall%ld", nr);
	addr_text(lport, sizeof lport, local, local_len, 1);
	addr_text(raddr, sizeof raddr, peer, peer_len, 0);
	if (ns_since >= 0)
		snprintf(since, sizeof since, "%lld.%03lld", ns_since / 1000000, ns_since / 1000 % 1000);
	else
		snprintf(since, sizeof since, "-");
	utc_fields(realtime_ns / 1000000000, &y, &mo, &d, &h, &mi, &sec);
	snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, h, mi, sec,
		 (int)(realtime_ns / 1000000 % 1000));
	snprintf(buf, len, "time=%s pid=%d tid=%d lport=%s peer=%s reason=%s call=%s ms_since_disconnect=%s",
		 when, pid, tid, lport, raddr, reason < 0 ? "-" : reason ? "rst" : "fin", call, since);
}

void cs_cancel_log(struct cs_thread *t, long nr)
{
	struct sockaddr_storage local, peer;
	socklen_t llen = sizeof local, plen = sizeof peer;
	struct timespec now;
	uint64_t st, at;
	uint32_t gen;
	long long since = -1;
	int reason = -1;
	char line[400];

	if (cs_log_level < CS_LOG_INFO || !t)
		return;
	st = atomic_load_explicit(&t->state, memory_order_relaxed);
	gen = (uint32_t)st;
	if (!gen || gen == logged_gen)
		return;
	logged_gen = gen;
	/* The watcher's stamp, if it was for this binding (not a binding to a
	 * connection already gone, which has none). */
	at = atomic_load_explicit(&t->cancel_ns, memory_order_relaxed);
	if (at && atomic_load_explicit(&t->cancel_gen, memory_order_relaxed) == gen) {
		uint64_t mono = cs_stats_now_ns();
		since = mono > at ? (long long)(mono - at) : 0;
		reason = (int)(atomic_load_explicit(&t->cancel_rst, memory_order_relaxed) & 1);
	}
	if (cs_raw3(SYS_getsockname, t->bound_fd, (long)&local, (long)&llen) < 0)
		llen = 0;
	if (cs_raw3(SYS_getpeername, t->bound_fd, (long)&peer, (long)&plen) < 0)
		plen = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	cs_cancel_log_format(line, sizeof line, (long long)now.tv_sec * 1000000000 + now.tv_nsec,
			     (int)cs_raw0(SYS_getpid), atomic_load_explicit(&t->tid, memory_order_relaxed),
			     (struct sockaddr *)&local, llen, (struct sockaddr *)&peer, plen, reason, nr, since);
	cs_info("cancel %s", line);
}

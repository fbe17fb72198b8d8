/* Counting and logging the cancels observe mode does not carry out. */
#include "cancel/observe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/log.h"
#include "base/raw_syscall.h"
#include "stats/stats.h"
#include "track/fdtable.h"

const char *cs_syscall_name(long nr)
{
	switch (nr) {
	case SYS_read: return "read";
	case SYS_write: return "write";
	case SYS_readv: return "readv";
	case SYS_writev: return "writev";
	case SYS_pread64: return "pread";
	case SYS_pwrite64: return "pwrite";
	case SYS_preadv: return "preadv";
	case SYS_pwritev: return "pwritev";
	case SYS_preadv2: return "preadv2";
	case SYS_pwritev2: return "pwritev2";
	case SYS_recvfrom: return "recv";
	case SYS_recvmsg: return "recvmsg";
	case SYS_recvmmsg: return "recvmmsg";
	case SYS_sendto: return "send";
	case SYS_sendmsg: return "sendmsg";
	case SYS_sendmmsg: return "sendmmsg";
	case SYS_sendfile: return "sendfile";
	case SYS_connect: return "connect";
	case SYS_ppoll: return "poll";
	case SYS_select: return "select";
	case SYS_pselect6: return "pselect";
	case SYS_epoll_pwait: return "epoll_wait";
	case SYS_epoll_pwait2: return "epoll_pwait2";
	case SYS_nanosleep: return "nanosleep";
	case SYS_clock_nanosleep: return "clock_nanosleep";
	default: return "?";
	}
}

/* "203.0.113.5:41234", "[::1]:5000", "unix", or "?" when the descriptor no
 * longer holds connection gen (closed, reused: never name another peer). */
static void peer_of(int fd, uint32_t gen, char *buf, size_t len)
{
	struct sockaddr_storage a;
	socklen_t alen = sizeof a;
	char host[INET6_ADDRSTRLEN];
	uint64_t s = cs_fd_get(fd);

	snprintf(buf, len, "?");
	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (uint32_t)s != gen ||
	    cs_raw3(SYS_getpeername, fd, (long)&a, (long)&alen) < 0)
		return;
	if (a.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)&a;
		if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host))
			snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else if (a.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)&a;
		if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host))
			snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (a.ss_family == AF_UNIX) {
		snprintf(buf, len, "unix");
	}
}

void cs_observe_would_cancel(struct cs_thread *t, uint32_t gen, int fd)
{
	uint64_t s = atomic_load(&t->state);
	char peer[64];

	while ((uint32_t)s == gen && gen && (s & CS_ST_CANCEL) && !(s & CS_ST_OBSERVED))
		if (atomic_compare_exchange_weak(&t->state, &s, s | CS_ST_OBSERVED)) {
			cs_stat_add(CS_STAT_WOULD_CANCEL, 1);
			cs_stats_port_cancel(fd, gen);
			if (cs_log_level >= CS_LOG_INFO) {
				peer_of(fd, gen, peer, sizeof peer);
				cs_info("observe: would cancel tid=%d conn=%u fd=%d peer=%s call=%s",
					atomic_load(&t->tid), gen, fd, peer,
					cs_syscall_name(atomic_load_explicit(&t->call_nr, memory_order_relaxed)));
			}
			return;
		}
}

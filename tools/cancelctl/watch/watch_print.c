/* Formatting of `cancelctl watch` events (see watch_print.h). */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "watch_print.h"

static int64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void watch_clock_init(struct watch_clock *c)
{
	c->realtime_minus_mono_ns = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_MONOTONIC);
}

const char *watch_kind_name(unsigned kind)
{
	switch (kind) {
	case DISCONNECT_FIN: return "FIN";
	case DISCONNECT_RST: return "RST";
	case DISCONNECT_ERR: return "ERR";
	}
	return "?";
}

static void format_addr(char *buf, size_t len, unsigned family, const __u32 addr[4])
{
	if (!inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, addr, buf, len))
		snprintf(buf, len, "?");
}

/* "in" for accepted connections, "out" for outgoing ones, "?" for
 * connections already open when the watch started. */
static const char *direction(const struct disconnect_event *e)
{
	if (!(e->flags & DISCONNECT_F_SEEN))
		return "?";
	return e->flags & DISCONNECT_F_PASSIVE ? "in" : "out";
}

static int known_age(const struct disconnect_event *e)
{
	return (e->flags & DISCONNECT_F_SEEN) && e->start_ns && e->ts_ns >= e->start_ns;
}

void watch_print_header(FILE *out)
{
	fprintf(out, "%-12s %-15s %5s %-15s %5s %-3s %-4s %11s %10s %10s\n",
		"TIME", "LADDR", "LPORT", "RADDR", "RPORT", "DIR", "KIND",
		"AGE_MS", "RX_B", "TX_B");
}

void watch_print_text(FILE *out, const struct watch_clock *c, const struct disconnect_event *e)
{
	char laddr[INET6_ADDRSTRLEN], raddr[INET6_ADDRSTRLEN], when[16], age[24];
	int64_t wall = (int64_t)e->ts_ns + c->realtime_minus_mono_ns;
	time_t secs = wall / 1000000000;
	struct tm tm;

	localtime_r(&secs, &tm);
	snprintf(when, sizeof when, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(wall % 1000000000 / 1000000));
	format_addr(laddr, sizeof laddr, e->family, e->laddr);
	format_addr(raddr, sizeof raddr, e->family, e->raddr);
	if (known_age(e))
		snprintf(age, sizeof age, "%.3f", (e->ts_ns - e->start_ns) / 1e6);
	else
		snprintf(age, sizeof age, "-");
	fprintf(out, "%-12s %-15s %5u %-15s %5u %-3s %-4s %11s %10llu %10llu\n",
		when, laddr, e->lport, raddr, e->rport, direction(e), watch_kind_name(e->kind),
		age, (unsigned long long)e->bytes_received, (unsigned long long)e->bytes_acked);
}

void watch_print_json(FILE *out, const struct watch_clock *c, const struct disconnect_event *e)
{
	char laddr[INET6_ADDRSTRLEN], raddr[INET6_ADDRSTRLEN], when[40], age[24];
	int64_t wall = (int64_t)e->ts_ns + c->realtime_minus_mono_ns;
	time_t secs = wall / 1000000000;
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	format_addr(laddr, sizeof laddr, e->family, e->laddr);
	format_addr(raddr, sizeof raddr, e->family, e->raddr);
	if (known_age(e))
		snprintf(age, sizeof age, "%llu", (unsigned long long)(e->ts_ns - e->start_ns));
	else
		snprintf(age, sizeof age, "null");
	fprintf(out, "{\"time\":\"%s.%06dZ\",\"mono_ns\":%llu,\"family\":\"%s\","
		"\"laddr\":\"%s\",\"lport\":%u,\"raddr\":\"%s\",\"rport\":%u,"
		"\"dir\":\"%s\",\"kind\":\"%s\",\"error\":%u,\"age_ns\":%s,"
		"\"rx_bytes\":%llu,\"tx_bytes\":%llu,\"netns\":%u,\"cookie\":%llu}\n",
		when, (int)(wall % 1000000000 / 1000), (unsigned long long)e->ts_ns,
		e->family == AF_INET6 ? "ipv6" : "ipv4",
		laddr, e->lport, raddr, e->rport, direction(e), watch_kind_name(e->kind),
		e->error, age, (unsigned long long)e->bytes_received,
		(unsigned long long)e->bytes_acked, e->netns, (unsigned long long)e->cookie);
}

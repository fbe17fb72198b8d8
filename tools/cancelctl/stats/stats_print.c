/* See stats_print.h. The field names of the JSON and Prometheus outputs are a
 * stable interface, documented in docs/stats.md: add, never rename. */
#include "stats_print.h"

#include <inttypes.h>
#include <string.h>

/* "<1us", "<512us", "<4.1ms", "<2.1s", ">=1074s", "-" */
static void fmt_latency(char *buf, size_t len, uint64_t us)
{
	if (us == 0)
		snprintf(buf, len, "-");
	else if (us == UINT64_MAX)
		snprintf(buf, len, ">=%" PRIu64 "s", (uint64_t)(1ull << (CS_LATENCY_BUCKETS - 2)) / 1000000);
	else if (us < 1000)
		snprintf(buf, len, "<%" PRIu64 "us", us);
	else if (us < 1000000)
		snprintf(buf, len, "<%.1fms", (double)us / 1e3);
	else
		snprintf(buf, len, "<%.1fs", (double)us / 1e6);
}

/* The command without argv[0]'s directory: "python3 app.py 8000". */
static const char *short_cmd(const struct stats_proc *p, char *buf, size_t len)
{
	const char *cmd = p->cmdline, *end = strchr(cmd, ' '), *slash = NULL;

	for (const char *c = cmd; *c && (!end || c < end); c++)
		if (*c == '/')
			slash = c;
	const char *show = !cmd[0] ? "?" : slash && slash[1] && slash[1] != ' ' ? slash + 1 : cmd;
	size_t n = strnlen(show, len - 1);	/* truncated on purpose: a column */

	while (n && (show[n] & 0xc0) == 0x80)	/* not inside a UTF-8 character */
		n--;
	memcpy(buf, show, n);
	buf[n] = 0;
	return buf;
}

static double rate(uint64_t now, uint64_t before, double secs)
{
	return secs > 0 && now >= before ? (double)(now - before) / secs : 0;
}

void stats_print_table(FILE *out, const struct stats_list *now, const struct stats_list *prev)
{
	char cmd[33], p50[16], p99[16];

	fprintf(out, "%-8s %-32s %-6s %6s %8s %8s %8s %9s %9s %9s %6s", "PID", "COMMAND", "MODE", "LIVE", "ACCEPTED",
		"DISCONN", "CANCELS", "ECANCELED", "P50", "P99", "WOULD");
	if (prev)
		fprintf(out, " %8s %8s", "DISC/s", "CANC/s");
	fprintf(out, " %-9s", "CANCELLER");	/* mode ebpf: the eBPF program ("kernel") or the watcher thread */
	fputc('\n', out);
	for (size_t i = 0; i < now->n; i++) {
		const struct stats_proc *p = &now->procs[i];
		fmt_latency(p50, sizeof p50, stats_latency_quantile_us(p, 0.50));
		fmt_latency(p99, sizeof p99, stats_latency_quantile_us(p, 0.99));
		fprintf(out, "%-8d %-32.32s %-6s %6" PRIu64 " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %9" PRIu64 " %9s %9s %6" PRIu64,
			p->pid, short_cmd(p, cmd, sizeof cmd), p->mode, stats_active(p), p->c[CS_STAT_CONNECTIONS],
			stats_disconnects(p), p->c[CS_STAT_CANCELS], stats_ecanceled(p), p50, p99, p->c[CS_STAT_WOULD_CANCEL]);
		if (prev) {
			const struct stats_proc *q = stats_find(prev, p->pid);
			double secs = q ? (double)(p->read_ns - q->read_ns) / 1e9 : 0;
			fprintf(out, " %8.1f %8.1f", q ? rate(stats_disconnects(p), stats_disconnects(q), secs) : 0.0,
				q ? rate(p->c[CS_STAT_CANCELS], q->c[CS_STAT_CANCELS], secs) : 0.0);
		}
		fprintf(out, " %-9s", p->canceller[0] ? p->canceller : "-");
		fputc('\n', out);
	}
	if (!now->n)
		fprintf(out, "(no process is publishing statistics: run one with `cancelctl run -- CMD` "
			     "and let it accept a connection)\n");
}

/* ---- JSON ---------------------------------------------------------------- */

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(out, "\\u%04x", *c);
		else
			fputc(*c, out);	/* UTF-8 passes through; bad bytes are the writer's */
	}
	fputc('"', out);
}

static void json_u(FILE *out, const char *name, uint64_t v, int comma)
{
	fprintf(out, "\"%s\":%" PRIu64 "%s", name, v, comma ? "," : "");
}

static void json_latency_q(FILE *out, const char *name, uint64_t us)
{
	if (us == 0 || us == UINT64_MAX)
		fprintf(out, "\"%s\":null,", name);
	else
		fprintf(out, "\"%s\":%" PRIu64 ",", name, us);
}

void stats_print_json(FILE *out, const struct stats_list *l)
{
	fputc('[', out);
	for (size_t i = 0; i < l->n; i++) {
		const struct stats_proc *p = &l->procs[i];
		fprintf(out, "%s{", i ? "," : "");
		fprintf(out, "\"pid\":%d,\"command\":", p->pid);
		json_str(out, p->cmdline);
		fprintf(out, ",\"layout_version\":%u,\"start_time_ticks\":%" PRIu64 ",\"published_unix_ns\":%" PRIu64 ",",
			p->version, p->start_time, p->created_ns);
		fprintf(out, "\"mode\":");
		json_str(out, p->mode);
		/* Mode ebpf: who cancels, "kernel" (the eBPF program) or
		 * "watcher"; null in mode epoll and in older segments. */
		fprintf(out, ",\"canceller\":");
		if (p->canceller[0])
			json_str(out, p->canceller);
		else
			fprintf(out, "null");
		fprintf(out, ",\"settings\":{\"mode\":");
		json_str(out, p->mode_requested);
		fprintf(out, ",\"on\":");
		json_str(out, p->on);
		fprintf(out, ",\"calls\":");
		json_str(out, p->calls);
		fprintf(out, ",\"signal\":");
		json_str(out, p->signal);
		fprintf(out, "},");
		json_u(out, "connections_accepted", p->c[CS_STAT_CONNECTIONS], 1);
		json_u(out, "connections_inherited", p->c[CS_STAT_INHERITED], 1);
		json_u(out, "connections_duplicated", p->c[CS_STAT_DUPLICATED], 1);
		json_u(out, "connections_closed", p->c[CS_STAT_CLOSED], 1);
		json_u(out, "connections_active", stats_active(p), 1);
		json_u(out, "connections_watched", p->c[CS_STAT_REGISTERED], 1);
		json_u(out, "disconnects_fin", p->c[CS_STAT_DISCONNECT_FIN], 1);
		json_u(out, "disconnects_rst", p->c[CS_STAT_DISCONNECT_RST], 1);
		json_u(out, "disconnects_unbound", p->c[CS_STAT_UNBOUND], 1);
		json_u(out, "cancels", p->c[CS_STAT_CANCELS], 1);
		json_u(out, "kernel_cancels", p->c[CS_STAT_KERNEL_CANCELS], 1);
		json_u(out, "wakeups", p->c[CS_STAT_WAKEUPS], 1);
		fprintf(out, "\"ecanceled\":{");
		json_u(out, "net", p->c[CS_STAT_FAILED_NET], 1);
		json_u(out, "wait", p->c[CS_STAT_FAILED_WAIT], 1);
		json_u(out, "file", p->c[CS_STAT_FAILED_FILE], 1);
		json_u(out, "pipe", p->c[CS_STAT_FAILED_PIPE], 0);
		fprintf(out, "},");
		json_u(out, "ecanceled_total", stats_ecanceled(p), 1);
		json_u(out, "event_loop_threads", p->c[CS_STAT_LOOP_THREADS], 1);
		json_u(out, "would_cancel", p->c[CS_STAT_WOULD_CANCEL], 1);
		fprintf(out, "\"cancel_latency_us\":{");
		json_u(out, "count", stats_latency_count(p), 1);
		json_latency_q(out, "p50", stats_latency_quantile_us(p, 0.50));
		json_latency_q(out, "p99", stats_latency_quantile_us(p, 0.99));
		fprintf(out, "\"buckets\":[");
		for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++) {
			uint64_t up = stats_bucket_upper_us(b);
			fprintf(out, "%s{\"lt\":", b ? "," : "");
			if (up == UINT64_MAX)
				fprintf(out, "null");
			else
				fprintf(out, "%" PRIu64, up);
			fprintf(out, ",\"count\":%" PRIu64 "}", p->c[CS_STAT_LATENCY + b]);
		}
		fprintf(out, "]},\"ports\":[");
		for (unsigned i = 0; i < p->nports; i++) {
			fprintf(out, "%s{\"port\":", i ? "," : "");
			json_str(out, p->ports[i].label);
			fputc(',', out);
			json_u(out, "connections_accepted", p->ports[i].c[CS_PORT_ACCEPTED], 1);
			json_u(out, "disconnects", p->ports[i].c[CS_PORT_DISCONNECTS], 1);
			json_u(out, "cancels", p->ports[i].c[CS_PORT_CANCELS], 0);
			fputc('}', out);
		}
		fprintf(out, "]}");
	}
	fprintf(out, "]\n");
}

/* ---- Prometheus ------------------------------------------------------------ */

static void prom_label(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fprintf(out, "\\n");
		else
			fputc(*s, out);
	}
	fputc('"', out);
}

static void prom_labels(FILE *out, const struct stats_proc *p, const char *extra_name, const char *extra_value)
{
	fprintf(out, "{pid=\"%d\",command=", p->pid);
	prom_label(out, p->cmdline);
	if (extra_name) {
		fprintf(out, ",%s=", extra_name);
		prom_label(out, extra_value);
	}
	fputc('}', out);
}

static void prom_family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct prom_simple {
	const char *name, *type, *help;
	int stat;	/* counter index, or -1 for connections_active */
	const char *label, *value;	/* one extra label, or NULL */
};

static const struct prom_simple simple[] = {
	{ "cancelshim_connections_accepted_total", "counter", "Client connections accepted.", CS_STAT_CONNECTIONS, NULL, NULL },
	{ "cancelshim_connections_active", "gauge", "Client connection descriptors open (accepted + inherited at fork + duplicated - closed).", -1, NULL, NULL },
	{ "cancelshim_connections_watched_total", "counter", "Client connections handed to the disconnect watcher.", CS_STAT_REGISTERED, NULL, NULL },
	{ "cancelshim_disconnects_total", "counter", "Disconnects of watched connections seen by the watcher, by reason.", CS_STAT_DISCONNECT_FIN, "reason", "fin" },
	{ NULL, NULL, NULL, CS_STAT_DISCONNECT_RST, "reason", "rst" },
	{ "cancelshim_disconnects_unbound_total", "counter", "Disconnects for which no thread was bound to the connection (nothing to cancel).", CS_STAT_UNBOUND, NULL, NULL },
	{ "cancelshim_cancels_total", "counter", "Threads cancelled because the client they served went away.", CS_STAT_CANCELS, NULL, NULL },
	{ "cancelshim_kernel_cancels_total", "counter", "Of those, cancelled by the eBPF program itself (mode ebpf, kernel-side cancel).", CS_STAT_KERNEL_CANCELS, NULL, NULL },
	{ "cancelshim_wakeups_total", "counter", "Cancelled threads woken by the cancel signal from inside a blocking call.", CS_STAT_WAKEUPS, NULL, NULL },
	{ "cancelshim_ecanceled_calls_total", "counter", "Calls failed with ECANCELED, by call class.", CS_STAT_FAILED_NET, "class", "net" },
	{ NULL, NULL, NULL, CS_STAT_FAILED_WAIT, "class", "wait" },
	{ NULL, NULL, NULL, CS_STAT_FAILED_FILE, "class", "file" },
	{ NULL, NULL, NULL, CS_STAT_FAILED_PIPE, "class", "pipe" },
	{ "cancelshim_event_loop_threads_total", "counter", "Threads recognised as event loops (never cancelled).", CS_STAT_LOOP_THREADS, NULL, NULL },
	{ "cancelshim_would_cancel_total", "counter", "CANCELSHIM_ACTION=observe: requests whose call would have failed with ECANCELED (nothing was failed).", CS_STAT_WOULD_CANCEL, NULL, NULL },
};

/* Per listener (CANCELSHIM_PORTS entry), label port="8080", "8000-8099" or
 * "unix:/run/x.sock". */
static const struct {
	const char *name, *help;
	enum cs_port_stat stat;
} port_families[] = {
	{ "cancelshim_port_connections_accepted_total", "Client connections accepted, by CANCELSHIM_PORTS entry of their listener.", CS_PORT_ACCEPTED },
	{ "cancelshim_port_disconnects_total", "Disconnects of watched connections seen by the watcher, by CANCELSHIM_PORTS entry of their listener.", CS_PORT_DISCONNECTS },
	{ "cancelshim_port_cancels_total", "Calls failed with ECANCELED (or, in observe mode, requests that would have been), by CANCELSHIM_PORTS entry of their listener.", CS_PORT_CANCELS },
};

void stats_print_prometheus(FILE *out, const struct stats_list *l)
{
	const char *hist = "cancelshim_cancel_latency_seconds";

	prom_family(out, "cancelshim_info", "gauge", "Settings of a shimmed process (value always 1).");
	for (size_t i = 0; i < l->n; i++) {
		const struct stats_proc *p = &l->procs[i];
		fprintf(out, "cancelshim_info{pid=\"%d\",command=", p->pid);
		prom_label(out, p->cmdline);
		fprintf(out, ",mode=\"%s\",requested_mode=\"%s\",on=\"%s\",calls=\"%s\",signal=\"%s\",canceller=\"%s\"} 1\n",
			p->mode, p->mode_requested, p->on, p->calls, p->signal, p->canceller);
	}
	for (size_t k = 0; k < sizeof simple / sizeof simple[0];) {
		size_t end = k + 1;
		while (end < sizeof simple / sizeof simple[0] && !simple[end].name)
			end++;
		prom_family(out, simple[k].name, simple[k].type, simple[k].help);
		for (size_t i = 0; i < l->n; i++) {
			const struct stats_proc *p = &l->procs[i];
			for (size_t j = k; j < end; j++) {
				uint64_t v = simple[j].stat < 0 ? stats_active(p) : p->c[simple[j].stat];
				fputs(simple[k].name, out);
				prom_labels(out, p, simple[j].label, simple[j].value);
				fprintf(out, " %" PRIu64 "\n", v);
			}
		}
		k = end;
	}
	for (size_t k = 0; k < sizeof port_families / sizeof port_families[0]; k++) {
		prom_family(out, port_families[k].name, "counter", port_families[k].help);
		for (size_t i = 0; i < l->n; i++) {
			const struct stats_proc *p = &l->procs[i];
			for (unsigned j = 0; j < p->nports; j++) {
				fputs(port_families[k].name, out);
				prom_labels(out, p, "port", p->ports[j].label);
				fprintf(out, " %" PRIu64 "\n", p->ports[j].c[port_families[k].stat]);
			}
		}
	}
	prom_family(out, hist, "histogram",
		    "Time from the watcher processing a disconnect to the cancelled thread's first call failing "
		    "with ECANCELED. Buckets are exact (log2 of microseconds); _sum is approximated from the "
		    "buckets (each sample counted at its bucket's midpoint).");
	for (size_t i = 0; i < l->n; i++) {
		const struct stats_proc *p = &l->procs[i];
		uint64_t cum = 0;
		double sum_us = 0;
		for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++) {
			uint64_t n = p->c[CS_STAT_LATENCY + b], up = stats_bucket_upper_us(b);
			char le[32];
			cum += n;
			/* midpoint of [2^(b-1), 2^b); bucket 0 is [0, 1); the open
			 * last bucket counts at its lower bound */
			sum_us += (double)n * (b == 0 ? 0.5 : up == UINT64_MAX ? (double)(1ull << (b - 1)) : 0.75 * (double)up);
			if (up == UINT64_MAX)
				continue;
			snprintf(le, sizeof le, "%.9g", (double)up / 1e6);
			fprintf(out, "%s_bucket", hist);
			prom_labels(out, p, "le", le);
			fprintf(out, " %" PRIu64 "\n", cum);
		}
		fprintf(out, "%s_bucket", hist);
		prom_labels(out, p, "le", "+Inf");
		fprintf(out, " %" PRIu64 "\n", cum);
		fprintf(out, "%s_sum", hist);
		prom_labels(out, p, NULL, NULL);
		fprintf(out, " %.9g\n", sum_us / 1e6);
		fprintf(out, "%s_count", hist);
		prom_labels(out, p, NULL, NULL);
		fprintf(out, " %" PRIu64 "\n", cum);
	}
}

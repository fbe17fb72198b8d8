/* cancelctl watch: a live, system-wide view of TCP connections whose peer
 * went away (FIN, RST or a timeout), like libbpf-tools' tcplife/tcpstates.
 * The kernel side is ebpf/disconnect.bpf.c, embedded here as a skeleton;
 * this file holds the options, the help and the load/poll lifecycle. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "watch_prereq.h"
#include "watch_print.h"

#ifdef CS_HAVE_BPF
#include <bpf/libbpf.h>
#include "disconnect.skel.h"
#endif

#define EXIT_CANNOT_WATCH 1
#define EXIT_USAGE        2

static const char help_text[] =
	"usage: cancelctl watch [--port N] [--accepted] [--json] [--duration SECS]\n"
	"\n"
	"Shows, as they happen, the TCP connections on this machine whose peer went\n"
	"away: an orderly close (FIN), a reset (RST) or an error such as a timeout\n"
	"(ERR). Each line gives the time, the local address and port, the peer, the\n"
	"kind, the connection's age and the payload bytes received and sent (acked).\n"
	"It reads the kernel's TCP tracepoints with an eBPF program: it sees every\n"
	"process and network namespace, costs nothing in the processes watched, and\n"
	"needs root (or CAP_BPF and CAP_PERFMON) and a kernel with BTF.\n"
	"\n"
	"options:\n"
	"  --port N          only connections whose local port is N\n"
	"  --accepted        only connections accepted since the watch started (DIR\n"
	"                    \"in\"): what a shimmed server sees. By default outgoing\n"
	"                    connections (\"out\") and ones already open (\"?\", no\n"
	"                    age) are shown too\n"
	"  --json            one JSON object per line instead of a table\n"
	"  --duration SECS   stop after SECS seconds (default: until Ctrl-C)\n"
	"  --verbose         pass libbpf's messages (the verifier's log) to stderr\n"
	"  --help\n"
	"\n"
	"JSON fields: time (UTC), mono_ns (kernel CLOCK_MONOTONIC stamp), family,\n"
	"laddr, lport, raddr, rport, dir (in|out|?), kind (FIN|RST|ERR), error\n"
	"(errno for ERR), age_ns (or null), rx_bytes, tx_bytes, netns (inode),\n"
	"cookie (SO_COOKIE).\n"
	"\n"
	"exit status: 0 done, 1 could not watch (privileges, BTF, the kernel refused,\n"
	"or built without eBPF), 2 usage error\n";

struct watch_options {
	unsigned port;		/* 0 = every port */
	bool accepted;
	bool json;
	bool verbose;
	double duration;	/* seconds; 0 = until a signal */
};

/* 0 to go on, or an exit status + 1000 for "return now". */
static int parse(int argc, char **argv, struct watch_options *o)
{
	static const struct option longopts[] = {
		{ "port",     required_argument, NULL, 'p' },
		{ "accepted", no_argument,       NULL, 'a' },
		{ "json",     no_argument,       NULL, 'j' },
		{ "duration", required_argument, NULL, 'd' },
		{ "verbose",  no_argument,       NULL, 'v' },
		{ "help",     no_argument,       NULL, 'h' },
		{ 0 }
	};
	int c;
	char *end;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || v == 0 || v > 65535) {
				fprintf(stderr, "cancelctl watch: --port takes a port number "
					"from 1 to 65535, not '%s'\n", optarg);
				return 1000 + EXIT_USAGE;
			}
			o->port = v;
			break;
		}
		case 'd':
			o->duration = strtod(optarg, &end);
			if (!*optarg || *end || !(o->duration > 0) || o->duration > INT_MAX) {
				fprintf(stderr, "cancelctl watch: --duration takes a positive "
					"number of seconds, not '%s'\n", optarg);
				return 1000 + EXIT_USAGE;
			}
			break;
		case 'a': o->accepted = true; break;
		case 'j': o->json = true; break;
		case 'v': o->verbose = true; break;
		case 'h':
			fputs(help_text, stdout);
			return 1000 + 0;
		default:
			fprintf(stderr, "cancelctl watch: %s '%s'; see 'cancelctl watch --help'\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return 1000 + EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "cancelctl watch: unexpected argument '%s'; "
			"see 'cancelctl watch --help'\n", argv[optind]);
		return 1000 + EXIT_USAGE;
	}
	return 0;
}

#ifdef CS_HAVE_BPF

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	stop_requested = 1;
}

struct watch_ctx {
	const struct watch_options *o;
	struct watch_clock clock;
};

static int on_event(void *data, void *raw, size_t size)
{
	const struct watch_ctx *ctx = data;
	const struct disconnect_event *e = raw;

	if (size < sizeof *e)
		return 0;
	if (ctx->o->json)
		watch_print_json(stdout, &ctx->clock, e);
	else
		watch_print_text(stdout, &ctx->clock, e);
	fflush(stdout);
	return 0;
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int libbpf_verbose(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return vfprintf(stderr, fmt, ap);
}

static double mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Why the kernel said no, in words, for load and attach failures. */
static void refused(const char *step, int err, bool verbose)
{
	fprintf(stderr, "cancelctl watch: the kernel refused to %s the eBPF program: %s",
		step, strerror(err));
	if (err == EPERM)
		fprintf(stderr, " (kernel lockdown, a security module, or missing CAP_BPF/CAP_PERFMON)");
	else if (err == EACCES)
		fprintf(stderr, " (the verifier rejected it: a kernel too different from the one "
			"it was written for?)");
	else
		fprintf(stderr, " (it needs BTF, tp_btf tracepoints, BPF ring buffers and socket "
			"storage: Linux 5.12 or later)");
	fprintf(stderr, "%s\n", verbose ? "" : "; --verbose shows the verifier's log");
}

/* open -> configure -> load -> attach -> ring buffer -> poll; one cleanup. */
static int watch(const struct watch_options *o)
{
	struct watch_ctx ctx = { .o = o };
	struct disconnect *skel = NULL;
	struct ring_buffer *rb = NULL;
	struct sigaction sa = { .sa_handler = on_stop_signal };	/* no SA_RESTART */
	double deadline = 0;
	int status = EXIT_CANNOT_WATCH, err;
	enum watch_prereq pre = watch_prereq_check();

	if (pre != WATCH_PREREQ_OK) {
		fprintf(stderr, "cancelctl watch: %s\n", watch_prereq_message(pre));
		return EXIT_CANNOT_WATCH;
	}
	libbpf_set_print(o->verbose ? libbpf_verbose : libbpf_quiet);

	skel = disconnect__open();
	if (!skel) {
		fprintf(stderr, "cancelctl watch: cannot open the embedded eBPF object: %s\n",
			strerror(errno));
		goto cleanup;
	}
	skel->rodata->target_lport = o->port;
	skel->rodata->passive_only = o->accepted;

	err = disconnect__load(skel);
	if (err) {
		refused("load", -err, o->verbose);
		goto cleanup;
	}
	err = disconnect__attach(skel);
	if (err) {
		refused("attach", -err, o->verbose);
		goto cleanup;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, &ctx, NULL);
	if (!rb) {
		fprintf(stderr, "cancelctl watch: cannot map the ring buffer: %s\n", strerror(errno));
		goto cleanup;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	watch_clock_init(&ctx.clock);
	if (o->duration > 0)
		deadline = mono_seconds() + o->duration;
	if (!o->json)
		watch_print_header(stdout);
	fflush(stdout);
	/* Tests and scripts wait for this line: from here on nothing is missed. */
	if (o->port)
		fprintf(stderr, "cancelctl watch: watching TCP disconnects on local port %u; "
			"Ctrl-C to stop\n", o->port);
	else
		fprintf(stderr, "cancelctl watch: watching TCP disconnects; Ctrl-C to stop\n");

	status = 0;
	while (!stop_requested) {
		int timeout_ms = 1000;

		if (deadline) {
			double left = deadline - mono_seconds();
			if (left <= 0)
				break;
			if (left * 1000 < timeout_ms)
				timeout_ms = (int)(left * 1000) + 1;
		}
		err = ring_buffer__poll(rb, timeout_ms);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "cancelctl watch: reading the ring buffer failed: %s\n",
				strerror(-err));
			status = EXIT_CANNOT_WATCH;
			break;
		}
	}
	/* What arrived just before the stop still gets printed. */
	ring_buffer__consume(rb);
	if (skel->bss->dropped)
		fprintf(stderr, "cancelctl watch: %llu events lost (ring buffer full)\n",
			(unsigned long long)skel->bss->dropped);

cleanup:
	ring_buffer__free(rb);
	disconnect__destroy(skel);
	return status;
}

#endif /* CS_HAVE_BPF */

int cmd_watch(int argc, char **argv)
{
	struct watch_options o = { 0 };
	int r = parse(argc, argv, &o);

	if (r >= 1000)
		return r - 1000;
#ifdef CS_HAVE_BPF
	return watch(&o);
#else
	fprintf(stderr, "cancelctl watch: this cancelctl was built without eBPF "
		"(meson -Dbpf=disabled, or clang, bpftool, libbpf or kernel BTF were "
		"missing at build time)\n");
	return EXIT_CANNOT_WATCH;
#endif
}

/* cancelctl stats: live statistics of every shimmed process, read from the
 * segments they publish (stats_read.c), shown as a table, JSON or Prometheus
 * text (stats_print.c). */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "stats_print.h"
#include "stats_read.h"

enum format { TABLE, JSON, PROMETHEUS };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: cancelctl stats [OPTIONS] [PID...]\n"
		"\n"
		"Live statistics of the processes running under libcancelshim.so, one row per\n"
		"process: a process appears once it has accepted its first client connection\n"
		"(a prefork child: once it serves its first request). Without PIDs, every process\n"
		"whose statistics you may read, in this pid namespace. Segments left by processes\n"
		"that died are removed; files that are not segments of the process they name\n"
		"(another user's, a link, a FIFO, truncated, garbage) are skipped.\n"
		"\n"
		"options:\n"
		"  -w, --watch[=SECS]  refresh every SECS seconds (default 1) with rates, like top;\n"
		"                      the value must be attached: -w2 or --watch=2\n"
		"  -n, --count N       with --watch: stop after N refreshes\n"
		"      --json          a JSON array, one object per process, every counter\n"
		"                      (fields: docs/stats.md; with --watch, one array per line)\n"
		"      --prometheus    Prometheus text format, for node_exporter's textfile collector\n"
		"  -q, --quiet         do not report the dead processes' segments removed\n"
		"  -h, --help          this text\n"
		"\n"
		"exit status: 0 success; 1 a PID given has no statistics, or " CS_SEG_DIR " cannot be\n"
		"read; 2 bad arguments.\n");
}

/* A usage error: what was wrong, where to look, exit status 2. */
__attribute__((format(printf, 1, 2))) static int bad(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cancelctl stats: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'cancelctl stats --help'.\n");
	return 2;
}

static int parse_pid(const char *s, int *out)
{
	char *end;
	long v;
	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v <= 0 || v > 0x7fffffff)
		return -1;
	*out = (int)v;
	return 0;
}

static void sleep_secs(double secs)
{
	struct timespec ts = { (time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One refresh: collect, print. 0, 1 (a PID missing) or -1 (cannot read). */
static int show(enum format fmt, const int *pids, size_t npids, int quiet, struct stats_list *now,
		const struct stats_list *prev, int watching, int quiet_missing)
{
	int missing = 0;

	if (stats_collect(CS_SEG_DIR, pids, npids, quiet, now) < 0) {
		fprintf(stderr, "cancelctl stats: cannot read %s: %s (is /dev/shm mounted?)\n", CS_SEG_DIR, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < npids; i++) {
		if (stats_find(now, pids[i]))
			continue;
		missing = 1;
		if (quiet_missing)
			continue;	/* it was there before: the process ended */
		fprintf(stderr,
			"cancelctl stats: no statistics for pid %d: it is not running under the shim, has not "
			"accepted a connection yet, belongs to another user, or runs in another pid namespace%s\n",
			pids[i], watching == 2 && pids[i] < 100 ? " (for a refresh interval, write --watch=SECS)" : "");
	}
	switch (fmt) {
	case TABLE:
		stats_print_table(stdout, now, watching ? prev : NULL);
		break;
	case JSON:
		stats_print_json(stdout, now);
		break;
	case PROMETHEUS:
		stats_print_prometheus(stdout, now);
		break;
	}
	fflush(stdout);
	return missing;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "watch", optional_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'p' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum format fmt = TABLE;
	int watch = 0, quiet = 0, c, rc = 0, tty;
	long count = 0;
	double interval = 1.0;
	int *pids = NULL;
	size_t npids = 0;
	struct stats_list now = { 0 }, prev = { 0 };

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":w::n:qh", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'w':
			watch = optarg ? 1 : 2;	/* 2: interval not given */
			if (optarg) {
				errno = 0;
				interval = strtod(optarg, &end);
				if (!*optarg || *end || errno || !(interval >= 0.1 && interval <= 86400))
					return bad("--watch wants seconds between 0.1 and 86400, not '%s'", optarg);
			}
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (!*optarg || *end || errno || count <= 0)
				return bad("--count wants a positive number of refreshes, not '%s'", optarg);
			break;
		case 'j':
			fmt = JSON;
			break;
		case 'p':
			fmt = PROMETHEUS;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (count && !watch)
		return bad("--count only makes sense with --watch");
	if (watch && fmt == PROMETHEUS)
		return bad("--prometheus is a snapshot: point node_exporter's textfile collector at a file "
			   "that a timer rewrites, e.g. 'cancelctl stats --prometheus > dir/cancelshim.prom.tmp && mv ...'");
	if (optind < argc && !(pids = calloc((size_t)(argc - optind), sizeof *pids)))
		return 1;
	for (int i = optind; i < argc; i++)
		if (parse_pid(argv[i], &pids[npids++]) < 0) {
			free(pids);
			return bad("'%s' is not a process id", argv[i]);
		}

	if (!watch) {
		rc = show(fmt, pids, npids, quiet, &now, NULL, 0, 0);
		stats_list_free(&now);
		free(pids);
		return rc < 0 ? 1 : rc;
	}
	tty = isatty(STDOUT_FILENO) && fmt == TABLE;
	for (long n = 0; !count || n < count; n++) {
		if (n)
			sleep_secs(interval);
		if (fmt == TABLE) {
			char when[16];
			time_t t = time(NULL);
			strftime(when, sizeof when, "%H:%M:%S", localtime(&t));
			/* In place on a terminal; one block per refresh otherwise. */
			printf(tty ? "\033[H\033[2J" "cancelctl stats  %s  every %gs  (Ctrl-C to quit)\n\n"
				   : "--- cancelctl stats %s every %gs\n", when, interval);
		}
		rc = show(fmt, pids, npids, quiet || n, &now, n ? &prev : NULL, watch, n > 0);
		stats_list_free(&prev);
		prev = now;
		now = (struct stats_list){ 0 };
		/* A PID with no statistics at the start is a mistake (-w 2 for
		 * -w2?): say so once and stop. One that ends later just leaves
		 * the table. */
		if (rc < 0 || (rc > 0 && n == 0))
			break;
		rc = 0;
	}
	stats_list_free(&prev);
	free(pids);
	return rc < 0 ? 1 : rc;
}

/* torture-drive: runs seeded sequences of host actions under the shim and
 * checks each against the oracle (drive_sequence.c).
 *
 *   torture-drive [--seed N | --first N --seeds K] [--mode epoll|ebpf|both]
 *                 [--steps N] [--enable GATES] [--budget SECONDS] [--verbose]
 *                 [--expect-fail TEXT]
 *
 * Without --seed or --first, the first seed is drawn from the clock and
 * printed. Every failure prints its seed and mode, the actions it drew and
 * the host's stderr; `--seed N --mode M` replays it. GATES is a comma list
 * of clone, closeany, ebpf-moved, ebpf-queued, move-bound, all (drive.h says why each is
 * gated). --expect-fail TEXT checks the checker: it succeeds only when every
 * sequence fails with a reason starting with TEXT (CI runs mode off, where
 * every leaving client must be a "missed cancel"). The host and the shim are found through CS_TORTURE_HOST and
 * CS_SHIM (meson sets both) or --host/--shim. */
#include "drive.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static unsigned parse_gates(const char *list)
{
	unsigned g = 0;
	char *copy = strdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strcmp(t, "clone"))
			g |= GATE_CLONE;
		else if (!strcmp(t, "closeany"))
			g |= GATE_CLOSEANY;
		else if (!strcmp(t, "ebpf-moved"))
			g |= GATE_EBPF_MOVED;
		else if (!strcmp(t, "ebpf-queued"))
			g |= GATE_EBPF_QUEUED;
		else if (!strcmp(t, "move-bound"))
			g |= GATE_MOVE_BOUND;
		else if (!strcmp(t, "all"))
			g = ~0u;
		else if (*t) {
			fprintf(stderr, "torture-drive: unknown gate '%s' (clone, closeany, ebpf-moved, "
					"ebpf-queued, move-bound, all)\n", t);
			exit(2);
		}
	}
	free(copy);
	return g;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct torture_options o = {
		.host = getenv("CS_TORTURE_HOST"),
		.shim = getenv("CS_SHIM"),
		.steps = 40,
	};
	const char *mode = "both";
	uint64_t first = 0;
	bool have_first = false;
	long seeds = 1;
	double budget = 0;
	const char *expect_fail = NULL; /* the oracle's own check: every sequence fails so */
	if (getenv("CS_TORTURE_ENABLE"))
		o.gates = parse_gates(getenv("CS_TORTURE_ENABLE"));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--verbose")) {
			o.verbose = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "torture-drive: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--seed")) {
			first = strtoull(v, NULL, 0);
			have_first = true;
			seeds = 1;
		} else if (!strcmp(a, "--first")) {
			first = strtoull(v, NULL, 0);
			have_first = true;
		} else if (!strcmp(a, "--seeds")) {
			seeds = strtol(v, NULL, 0);
		} else if (!strcmp(a, "--mode")) {
			mode = v;
		} else if (!strcmp(a, "--steps")) {
			o.steps = atoi(v);
		} else if (!strcmp(a, "--enable")) {
			o.gates |= parse_gates(v);
		} else if (!strcmp(a, "--budget")) {
			budget = atof(v);
		} else if (!strcmp(a, "--expect-fail")) {
			expect_fail = v;
		} else if (!strcmp(a, "--host")) {
			o.host = v;
		} else if (!strcmp(a, "--shim")) {
			o.shim = v;
		} else {
			fprintf(stderr, "torture-drive: unknown option %s\n", a);
			return 2;
		}
	}
	if (!o.host || !o.shim) {
		fprintf(stderr, "torture-drive: set CS_TORTURE_HOST and CS_SHIM (or --host, --shim)\n");
		return 2;
	}
	if (!have_first)
		first = (uint64_t)time(NULL) * 1000 + (uint64_t)(now_s() * 1000) % 1000;
	/* Any other mode (off, auto) is passed through: `--mode off` shows the
	 * oracle failing when nothing cancels. */
	const char *modes[2] = {mode};
	int nmodes = 1;
	if (!strcmp(mode, "both")) {
		modes[0] = "epoll";
		modes[1] = "ebpf";
		nmodes = 2;
	}
	signal(SIGPIPE, SIG_IGN);
	printf("torture: seeds %" PRIu64 "..%" PRIu64 ", mode %s, %d steps, gates enabled %#x\n",
	       first, first + seeds - 1, mode, o.steps, o.gates);
	fflush(stdout);

	long sequences = 0, failures = 0, expected = 0;
	long actions = 0, clients = 0, stayed = 0, left = 0, canceled = 0, max_cancel_ms = 0, slow = 0;
	double start = now_s();
	char failed_list[4096] = "";
	for (long k = 0; k < seeds; k++) {
		if (budget > 0 && now_s() - start > budget) {
			printf("torture: time budget of %.0f s reached\n", budget);
			break;
		}
		for (int m = 0; m < nmodes; m++) {
			struct torture_result r;
			uint64_t seed = first + (uint64_t)k;
			torture_run_sequence(&o, seed, modes[m], &r);
			sequences++;
			actions += r.actions;
			clients += r.clients;
			stayed += r.stayed;
			left += r.left;
			canceled += r.canceled;
			slow += r.slow_cancels;
			if (r.max_cancel_ms > max_cancel_ms)
				max_cancel_ms = r.max_cancel_ms;
			if (r.failed && expect_fail && !strncmp(r.why, expect_fail, strlen(expect_fail)))
				expected++;
			if (r.failed) {
				failures++;
				size_t l = strlen(failed_list);
				snprintf(failed_list + l, sizeof failed_list - l,
					 "  --seed %" PRIu64 " --mode %s: %.200s\n", seed, modes[m], r.why);
			}
			if (o.verbose || r.failed)
				printf("seed %" PRIu64 " mode %s: %s (%d actions, %d clients)\n", seed,
				       modes[m], r.failed ? "FAIL" : "ok", r.actions, r.clients);
			fflush(stdout);
		}
	}
	printf("torture: %ld sequences, %ld actions, %ld clients (%ld stayed, %ld left: %ld cancelled, "
	       "the others unread), %ld failures, slowest cancel %ld ms (%ld over %d ms), %.1f s\n",
	       sequences, actions, clients, stayed, left, canceled, failures, max_cancel_ms, slow,
	       SLOW_CANCEL_MS,
	       now_s() - start);
	if (failures)
		printf("replay with torture-drive (or tests/torture/run-long):\n%s", failed_list);
	if (expect_fail) {
		bool ok = sequences > 0 && expected == sequences;
		printf("torture: %ld of %ld sequences failed with '%s', as expected: %s\n", expected,
		       sequences, expect_fail, ok ? "ok" : "FAIL");
		return ok ? 0 : 1;
	}
	return failures ? 1 : 0;
}

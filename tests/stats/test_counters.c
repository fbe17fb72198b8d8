/* Counters against scripted scenarios, read from the segment itself and
 * through cancelctl stats. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(counters, .fini = st_cleanup);

#define N 6	/* connections */
#define K 3	/* of which aborted in the middle of their work */

static void wait_cancelled(struct tl_proc *srv, int k)
{
	for (int i = 0; i < k; i++) {
		char *line = tl_proc_wait_line(srv, "cancelled", 10000);
		struct st_segment s = { 0 };
		if (!line)
			st_segment_read(tl_proc_pid(srv), &s);
		cr_assert_not_null(line,
				   "request %d was not cancelled (accepted %llu closed %llu watched %llu fin %llu rst %llu "
				   "unbound %llu cancels %llu wakeups %llu net %llu); stdout:\n%s\nstderr:\n%s",
				   i, (unsigned long long)s.c[CS_STAT_CONNECTIONS], (unsigned long long)s.c[CS_STAT_CLOSED],
				   (unsigned long long)s.c[CS_STAT_REGISTERED], (unsigned long long)s.c[CS_STAT_DISCONNECT_FIN],
				   (unsigned long long)s.c[CS_STAT_DISCONNECT_RST], (unsigned long long)s.c[CS_STAT_UNBOUND],
				   (unsigned long long)s.c[CS_STAT_CANCELS], (unsigned long long)s.c[CS_STAT_WAKEUPS],
				   (unsigned long long)s.c[CS_STAT_FAILED_NET], tl_proc_stdout(srv), tl_proc_stderr(srv));
		cr_assert(strstr(line, "errno=125"), "%s", line);
		free(line);
	}
}

Test(counters, match_a_scenario_of_n_connections_k_aborted)
{
	struct tl_upstream *up = tl_upstream_start(60000);
	int port, fds[K];
	struct tl_proc *srv = st_server_start(tl_upstream_port(up), &port);
	struct st_segment s;
	cr_assert_not_null(srv);
	int pid = tl_proc_pid(srv);

	for (int i = 0; i < N - K; i++)
		cr_assert_eq(st_request(port, "quick", false), 0);
	for (int i = 0; i < K; i++) {
		char line[32], want[32];
		snprintf(line, sizeof line, "slow %d", i);
		snprintf(want, sizeof want, "slow %d", i);
		fds[i] = st_request(port, line, true);
		cr_assert_geq(fds[i], 0);
		/* The handler is now blocked in recv() on the upstream. */
		cr_assert(tl_upstream_wait(up, want, 10000));
	}
	for (int i = 0; i < K; i++)
		tl_abort(fds[i]);
	wait_cancelled(srv, K);

	/* The handler threads closed their clients just before printing. */
	cr_assert(st_segment_read(pid, &s));
	for (int tries = 0; tries < 200 && s.c[CS_STAT_CLOSED] < N; tries++) {
		usleep(10000);
		st_segment_read(pid, &s);
	}
	cr_assert_eq(s.c[CS_STAT_CONNECTIONS], N);
	cr_assert_eq(s.c[CS_STAT_CLOSED], N);
	cr_assert_eq(s.c[CS_STAT_DISCONNECT_FIN] + s.c[CS_STAT_DISCONNECT_RST], K);
	cr_assert_eq(s.c[CS_STAT_DISCONNECT_RST], K, "tl_abort resets");
	cr_assert_eq(s.c[CS_STAT_UNBOUND], 0);
	cr_assert_eq(s.c[CS_STAT_CANCELS], K);
	cr_assert_eq(s.c[CS_STAT_WAKEUPS], K, "every handler was blocked in recv");
	cr_assert_eq(s.c[CS_STAT_FAILED_NET], K);
	cr_assert_eq(s.c[CS_STAT_FAILED_WAIT], 0);
	cr_assert_eq(st_latency_count(&s), K, "one latency sample per cancel");
	cr_assert_eq(s.c[CS_STAT_LOOP_THREADS], 0);
	/* Loopback, an idle machine: well under a second each. */
	for (unsigned b = 21; b < CS_LATENCY_BUCKETS; b++)
		cr_assert_eq(s.c[CS_STAT_LATENCY + b], 0, "a cancel took over 2^20 us (bucket %u)", b);

	/* The same through cancelctl's table. */
	char *out = NULL, *err = NULL, *pidstr = tl_strdupf("%d", pid);
	const char *args[] = { "stats", pidstr, NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "%s", err);
	char *row = tl_find_line(out, pidstr);
	cr_assert_not_null(row, "no row for %d:\n%s", pid, out);
	char p50[16], p99[16];
	long long live, acc, disc, canc, ecan;
	/* the command has spaces: find the mode column instead */
	char *mode_col = tl_strdupf(" %s ", st_expected_mode()), *m = strstr(row, mode_col);
	cr_assert_not_null(m, "row: %s", row);
	m += strlen(mode_col) - 1;
	free(mode_col);
	cr_assert_eq(sscanf(m, " %lld %lld %lld %lld %lld %15s %15s", &live, &acc, &disc, &canc, &ecan, p50, p99), 7,
		     "row: %s", row);
	cr_assert_eq(live, 0);
	cr_assert_eq(acc, N);
	cr_assert_eq(disc, K);
	cr_assert_eq(canc, K);
	cr_assert_eq(ecan, K);
	cr_assert_eq(p50[0], '<', "p50 '%s'", p50);
	free(row);
	free(out);
	free(err);
	free(pidstr);
	tl_proc_stop(srv, SIGTERM, 10000);
	tl_upstream_stop(up);
}

/* forkserver: the parent accepts and forks; the child serves and never
 * accepts. The child publishes its own segment and the parent's counters
 * never see the child's work. */
Test(counters, a_prefork_child_publishes_its_own_segment)
{
	struct tl_upstream *up = tl_upstream_start(60000);
	char *fs = tl_helper_path("forkserver"), *portstr = tl_strdupf("%d", tl_upstream_port(up));
	const char *argv[] = { fs, portstr, "upstream", NULL };
	struct tl_proc *srv = st_track(tl_spawn(argv, NULL, TL_SHIM));
	struct st_segment parent, child;
	long long port, cpid;
	char *line, *want;
	int fd;

	cr_assert_not_null(srv);
	line = tl_proc_wait_line(srv, "listening", 10000);
	cr_assert_not_null(line);
	cr_assert_eq(tl_field(line, "port", &port), 0);
	free(line);
	int ppid = tl_proc_pid(srv);

	fd = tl_connect_tcp("127.0.0.1", (int)port, 5000);
	cr_assert_geq(fd, 0);
	cr_assert_eq(tl_write_str(fd, "WORK 3\n", 5000), 0);
	line = tl_proc_wait_line(srv, "accepted child=", 10000);
	cr_assert_not_null(line);
	cr_assert_eq(tl_field(line, "child", &cpid), 0);
	free(line);
	want = tl_strdupf("pid %lld end", cpid);
	cr_assert(tl_upstream_wait(up, want, 10000), "the child never called the upstream");

	cr_assert(st_wait_segment((int)cpid, true, 5000), "the child published nothing");
	/* Mapped now: the child _exit()s after its cancel, and a dead
	 * process's segment may be swept away before we look. */
	const void *child_map = st_segment_map((int)cpid), *parent_map = st_segment_map(ppid);
	cr_assert(st_segment_from_map(parent_map, &parent));
	cr_assert(st_segment_from_map(child_map, &child));
	cr_assert_eq(child.h.pid, cpid);
	struct st_segment file;
	cr_assert(st_segment_read((int)cpid, &file));
	cr_assert_eq(file.mode, 0600, "mode %o", (unsigned)file.mode);
	cr_assert_eq(child.c[CS_STAT_CONNECTIONS], 0, "the child accepted nothing");
	cr_assert_eq(child.c[CS_STAT_INHERITED], 1);
	cr_assert_eq(parent.c[CS_STAT_CONNECTIONS], 1);

	/* Live: cancelctl lists both. */
	char *out = NULL, *err = NULL, *p1 = tl_strdupf("%d", ppid), *p2 = tl_strdupf("%lld", cpid);
	const char *args[] = { "stats", "--json", p1, p2, NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "%s", err);
	char *src = tl_source_path("tests/stats/check_json.py"), *doc = tl_source_path("docs/stats.md");
	const char *pyargs[] = { doc, p1, p2, NULL };
	char *pyerr = NULL;
	cr_assert_eq(st_python(src, out, pyargs, &pyerr), 0, "%s\n%s", pyerr, out);

	tl_abort(fd);
	line = tl_proc_wait_line(srv, "failed", 10000);
	cr_assert_not_null(line, "the child was not cancelled");
	cr_assert(strstr(line, "call=recv errno=125"), "%s", line);
	free(line);

	/* The child _exit()s: its final counters, through our mapping. */
	cr_assert(st_segment_from_map(child_map, &child));
	cr_assert_eq(child.c[CS_STAT_DISCONNECT_RST], 1);
	cr_assert_eq(child.c[CS_STAT_CANCELS], 1);
	cr_assert_eq(child.c[CS_STAT_FAILED_NET], 1);
	cr_assert_eq(st_latency_count(&child), 1);
	cr_assert(st_segment_from_map(parent_map, &parent));
	cr_assert_eq(parent.c[CS_STAT_CONNECTIONS], 1);
	cr_assert_eq(parent.c[CS_STAT_CLOSED], 1, "the parent closes its copy after fork");
	cr_assert_eq(parent.c[CS_STAT_CANCELS], 0, "the child's cancel landed in the parent's segment");
	cr_assert_eq(parent.c[CS_STAT_FAILED_NET], 0);
	cr_assert_eq(parent.c[CS_STAT_DISCONNECT_FIN] + parent.c[CS_STAT_DISCONNECT_RST], 0);
	cr_assert_eq(st_latency_count(&parent), 0);
	cr_assert_eq(parent.c[CS_STAT_INHERITED], 0);

	tl_proc_stop(srv, SIGTERM, 10000);
	const char *clean[] = { "stats", "--quiet", NULL };
	free(out);
	free(err);
	cr_assert_eq(st_cancelctl(clean, &out, &err), 0);
	cr_assert_not(st_segment_exists((int)cpid), "the dead child's segment was not cleaned");
	cr_assert_not(st_segment_exists(ppid), "the killed parent's segment was not cleaned");
	free(out);
	free(err);
	free(p1);
	free(p2);
	free(src);
	free(doc);
	free(pyerr);
	free(want);
	free(fs);
	free(portstr);
	tl_upstream_stop(up);
}

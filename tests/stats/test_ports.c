/* Per-listener counters (CANCELSHIM_PORTS): a server listening on a TCP port
 * and a unix path that are in scope and a TCP port that is not, one answered
 * and one aborted client on each; cancelctl stats --json and --prometheus
 * show one row per in-scope entry with exactly its own counts, and none for
 * the listener left out. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(ports, .fini = st_cleanup);

enum { IN_TCP, IN_UNIX, OUT_TCP, NLISTEN };

static int request(int port, const char *path, const char *line, bool abort_later)
{
	if (port)
		return st_request(port, line, abort_later);
	return st_request_on(tl_connect_unix(path, 5000), line, abort_later);
}

static void check(const char *fmt, const char *out, const char *pid, const char *rows[2])
{
	char *script = tl_source_path("tests/stats/check_ports.py"), *err = NULL;
	const char *args[] = { fmt, pid, rows[0], rows[1], NULL };

	cr_assert_eq(st_python(script, out, args, &err), 0, "%s", err);
	free(script);
	free(err);
}

static void scenario(const char *mode_env, bool observe)
{
	struct tl_upstream *up = tl_upstream_start(60000);
	char *dir = tl_tmpdir("stats-ports");
	/* A quote and a backslash: label values must be escaped. */
	char *path = tl_strdupf("%s/l \"q\" \\x.sock", dir);
	int tcp[NLISTEN] = { tl_free_port(), 0, tl_free_port() }, fds[NLISTEN];
	while (tcp[OUT_TCP] == tcp[IN_TCP])
		tcp[OUT_TCP] = tl_free_port();
	char *script = tl_source_path("tests/stats/stats_server.py"), *upstr = tl_strdupf("%d", tl_upstream_port(up));
	char *l_in = tl_strdupf("%d", tcp[IN_TCP]), *l_unix = tl_strdupf("unix:%s", path),
	     *l_out = tl_strdupf("%d", tcp[OUT_TCP]);
	char *ports = tl_strdupf("CANCELSHIM_PORTS=%d,unix:%s", tcp[IN_TCP], path);
	const char *argv[] = { "/usr/bin/python3", script, upstr, l_in, l_unix, l_out, NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", ports, observe ? "CANCELSHIM_ACTION=observe" : mode_env, mode_env,
			      NULL };
	struct tl_proc *srv = st_track(tl_spawn(argv, env, TL_SHIM));
	struct st_segment s = { 0 };

	cr_assert_not_null(srv);
	char *line = tl_proc_wait_line(srv, "listening", 10000);
	cr_assert_not_null(line, "%s", tl_proc_stderr(srv));
	free(line);
	int pid = tl_proc_pid(srv);
	char *pidstr = tl_strdupf("%d", pid);

	for (int i = 0; i < NLISTEN; i++) {
		char slow[32];
		cr_assert_eq(request(tcp[i], path, "quick", false), 0, "listener %d", i);
		snprintf(slow, sizeof slow, "slow %d", i);
		fds[i] = request(tcp[i], path, slow, true);
		cr_assert_geq(fds[i], 0);
		/* Its handler is now blocked in recv() on the upstream. */
		cr_assert(tl_upstream_wait(up, slow, 10000), "%s", slow);
	}
	/* The one left out first: by the time the others are cancelled, its
	 * disconnect has been seen too, if it were watched. */
	tl_abort(fds[OUT_TCP]);
	tl_abort(fds[IN_TCP]);
	tl_abort(fds[IN_UNIX]);
	if (observe) {
		for (int tries = 0; tries < 1000 && s.c[CS_STAT_WOULD_CANCEL] < 2; tries++) {
			usleep(10000);
			st_segment_read(pid, &s);
		}
		cr_assert_eq(s.c[CS_STAT_WOULD_CANCEL], 2, "stderr:\n%s", tl_proc_stderr(srv));
	} else {
		for (int i = 0; i < 2; i++) {
			line = tl_proc_wait_line(srv, "cancelled", 10000);
			cr_assert_not_null(line, "stdout:\n%s\nstderr:\n%s", tl_proc_stdout(srv), tl_proc_stderr(srv));
			cr_assert(strstr(line, "errno=125") && !strstr(line, "slow 2"), "%s", line);
			free(line);
		}
		cr_assert(st_segment_read(pid, &s));
		cr_assert_eq(s.c[CS_STAT_FAILED_NET], 2);
	}
	cr_assert_eq(s.c[CS_STAT_CONNECTIONS], 6);

	/* Accepted 2, one disconnect, one cancel each; nothing for OUT_TCP. */
	char *row_tcp = tl_strdupf("%d=2,1,1", tcp[IN_TCP]), *row_unix = tl_strdupf("unix:%s=2,1,1", path);
	const char *rows[2] = { row_tcp, row_unix };
	char *out = NULL, *err = NULL;
	const char *json[] = { "stats", "--json", pidstr, NULL }, *prom[] = { "stats", "--prometheus", pidstr, NULL };
	cr_assert_eq(st_cancelctl(json, &out, &err), 0, "%s", err);
	check("json", out, pidstr, rows);
	free(out);
	free(err);
	cr_assert_eq(st_cancelctl(prom, &out, &err), 0, "%s", err);
	check("prometheus", out, pidstr, rows);
	/* ... and the exposition as a whole still parses. */
	char *pcheck = tl_source_path("tests/stats/check_prometheus.py"), *pyerr = NULL;
	const char *pargs[] = { pidstr, NULL };
	cr_assert_eq(st_python(pcheck, out, pargs, &pyerr), 0, "%s\n%s", pyerr, out);
	cr_assert(strstr(out, "cancelshim_port_cancels_total{pid=\""), "%s", out);
	cr_assert(strstr(out, ",port=\"unix:") && strstr(out, "/l \\\"q\\\" \\\\x.sock\"} 1\n"), "%s", out);

	free(pcheck);
	free(pyerr);
	free(out);
	free(err);
	free(row_tcp);
	free(row_unix);
	tl_proc_stop(srv, SIGTERM, 10000);
	st_cleanup();
	tl_upstream_stop(up);
	tl_rmtree(dir);
	free(dir);
	free(path);
	free(script);
	free(upstr);
	free(l_in);
	free(l_unix);
	free(l_out);
	free(ports);
	free(pidstr);
}

Test(ports, per_listener_counters_epoll)
{
	scenario("CANCELSHIM_MODE=epoll", false);
}

/* Mode auto: the eBPF watcher as root with BTF (TCP), epoll for the unix
 * listener. */
Test(ports, per_listener_counters_auto)
{
	scenario(NULL, false);
}

Test(ports, per_listener_would_cancels_in_observe_mode)
{
	scenario("CANCELSHIM_MODE=epoll", true);
}

/* cancelctl stats's outputs (JSON, Prometheus, --watch) and arguments, and
 * the conventions every cancelctl subcommand follows (--help, --version). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(output, .fini = st_cleanup);

static struct tl_proc *srv;
static struct tl_upstream *up;
static int srv_pid;
static char pidstr[16];

/* A server with one answered and one cancelled request behind it. */
static void one_server(void)
{
	int port, fd;
	up = tl_upstream_start(60000);
	srv = st_server_start(tl_upstream_port(up), &port);
	cr_assert_not_null(srv);
	srv_pid = tl_proc_pid(srv);
	snprintf(pidstr, sizeof pidstr, "%d", srv_pid);
	cr_assert_eq(st_request(port, "quick", false), 0);
	fd = st_request(port, "slow x", true);
	cr_assert_geq(fd, 0);
	cr_assert(tl_upstream_wait(up, "slow x", 10000));
	tl_abort(fd);
	char *line = tl_proc_wait_line(srv, "cancelled", 10000);
	cr_assert_not_null(line);
	free(line);
}

static void stop_server(void)
{
	tl_proc_stop(srv, SIGTERM, 10000);
	st_cleanup();
	tl_upstream_stop(up);
}

Test(output, json_has_every_documented_field, .init = one_server, .fini = stop_server)
{
	char *out = NULL, *err = NULL, *pyerr = NULL;
	char *check = tl_source_path("tests/stats/check_json.py"), *doc = tl_source_path("docs/stats.md");
	const char *args[] = { "stats", "--json", pidstr, NULL };
	const char *pyargs[] = { doc, pidstr, NULL };

	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "%s", err);
	cr_assert_eq(st_python(check, out, pyargs, &pyerr), 0, "%s\n%s", pyerr, out);
	cr_assert(strstr(out, "\"cancels\":1,"), "%s", out);
	cr_assert(strstr(out, "\"count\":1,\"p50\":"), "%s", out);
	free(out);
	free(err);
	free(pyerr);
	free(check);
	free(doc);
}

Test(output, prometheus_passes_a_format_check, .init = one_server, .fini = stop_server)
{
	char *out = NULL, *err = NULL, *pyerr = NULL, *check = tl_source_path("tests/stats/check_prometheus.py");
	const char *args[] = { "stats", "--prometheus", NULL };
	const char *pyargs[] = { pidstr, NULL };

	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "%s", err);
	cr_assert_eq(st_python(check, out, pyargs, &pyerr), 0, "%s\n%s", pyerr, out);
	char *want = tl_strdupf("cancelshim_cancel_latency_seconds_count{pid=\"%d\",", srv_pid);
	char *line = tl_find_line(out, want);
	cr_assert_not_null(line, "%s", out);
	cr_assert(strstr(line, "} 1"), "%s", line);
	cr_assert(strstr(out, "# HELP cancelshim_cancel_latency_seconds") && strstr(out, "approximated"));
	free(line);
	free(want);
	free(out);
	free(err);
	free(pyerr);
	free(check);
}

Test(output, watch_refreshes_with_rates, .init = one_server, .fini = stop_server)
{
	char *out = NULL, *err = NULL;
	const char *args[] = { "stats", "--watch=0.2", "--count", "2", pidstr, NULL };

	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "%s", err);
	cr_assert_eq(tl_count(out, "--- cancelctl stats"), 2, "%s", out);
	cr_assert_eq(tl_count(out, "\nPID "), 2, "%s", out);
	cr_assert_eq(tl_count(out, "CANC/s"), 1, "rates only once there is a previous refresh:\n%s", out);
	cr_assert_geq(tl_count(out, pidstr), 2, "one row per refresh:\n%s", out);
	free(out);
	free(err);
}

Test(output, watch_under_timeout_keeps_refreshing)
{
	/* No --count: stopped from outside, like a user's Ctrl-C. */
	const char *argv[] = { "timeout", "-s", "INT", "0.7", getenv("CS_CANCELCTL"), "stats", "-w0.2", NULL };
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	cr_assert_not_null(p);
	tl_proc_wait(p, 10000);
	char *out = tl_proc_stdout(p);
	cr_assert_geq(tl_count(out, "--- cancelctl stats"), 2, "%s", out);
	free(out);
	tl_proc_free(p);
}

struct bad_case {
	const char *args[6];
	const char *message;
};

Test(output, bad_arguments_exit_2_with_a_message)
{
	static const struct bad_case cases[] = {
		{ { "stats", "--bogus", NULL }, "unknown option" },
		{ { "stats", "abc", NULL }, "not a process id" },
		{ { "stats", "-5", NULL }, "unknown option" },
		{ { "stats", "--watch=0", NULL }, "--watch wants seconds" },
		{ { "stats", "-wx", NULL }, "--watch wants seconds" },
		{ { "stats", "--count", "2", NULL }, "only makes sense with --watch" },
		{ { "stats", "-w", "--count", "0", NULL }, "--count wants" },
		{ { "stats", "-w", "--prometheus", NULL }, "textfile collector" },
		{ { "stats", "--count", NULL }, "needs a value" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *out = NULL, *err = NULL;
		int rc = st_cancelctl(cases[i].args, &out, &err);
		cr_expect_eq(rc, 2, "%s %s: exit %d", cases[i].args[0], cases[i].args[1], rc);
		cr_expect(strstr(err, cases[i].message) && strstr(err, "--help"), "%s: stderr: %s", cases[i].args[1], err);
		cr_expect_eq(out[0], 0, "bad arguments printed on stdout: %s", out);
		free(out);
		free(err);
	}
}

Test(output, a_pid_without_statistics_exits_1)
{
	char *out = NULL, *err = NULL, *self = tl_strdupf("%d", getpid());
	const char *args[] = { "stats", self, NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 1);
	cr_assert(strstr(err, "no statistics for pid"), "%s", err);
	free(out);
	free(err);
	/* The same when watching: said once, then exit (not a refresh loop). */
	const char *watch[] = { "stats", "-w", self, NULL };
	cr_assert_eq(st_cancelctl(watch, &out, &err), 1);
	cr_assert_eq(tl_count(err, "no statistics for pid"), 1, "%s", err);
	free(self);
	free(out);
	free(err);
}

Test(conventions, every_subcommand_has_help_and_the_tool_a_version)
{
	static const char *const commands[] = { "run", "check", "demo", "stats", "watch" };
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		char *out = NULL, *err = NULL;
		const char *args[] = { commands[i], "--help", NULL };
		cr_expect_eq(st_cancelctl(args, &out, &err), 0, "%s --help", commands[i]);
		cr_expect(strstr(out, "usage") || strstr(out, "Usage"), "%s --help: %s", commands[i], out);
		free(out);
		free(err);
	}
	char *out = NULL, *err = NULL;
	const char *args[] = { "--version", NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0);
	cr_assert(strncmp(out, "cancelctl ", 10) == 0, "%s", out);
	free(out);
	free(err);
}

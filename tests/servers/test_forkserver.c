/* A process-per-connection server (tests/helpers/forkserver.c) under the
 * shim: the parent accepts and forks, the child serves. Two clients at once;
 * one goes away while its child is blocked in slow work. That child's call
 * must fail with ECANCELED at once, and the other child must finish. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

#define STEPS 15
#define UPSTREAM_DELAY_MS 100
/* Typically well under a millisecond; the bound leaves room for a loaded CI
 * machine (a fresh child also starts its watcher thread on first use). */
#define CANCEL_BUDGET_NS (100 * 1000000ull)

static struct tl_proc *p;
static struct tl_upstream *up;

static void cleanup(void)
{
	tl_proc_free(p);
	tl_upstream_stop(up);
}

TestSuite(servers, .fini = cleanup);

/* Connect and read the parent's "accepted child=PID" line for it. */
static int connect_child(struct tl_proc *proc, int port, long long *child)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	char *line = tl_proc_wait_line(proc, "accepted child=", 5000);
	cr_assert_not_null(line, "the parent did not accept");
	cr_assert_eq(tl_field(line, "child", child), 0);
	free(line);
	char *req = tl_strdupf("WORK %d\n", STEPS);
	cr_assert_eq(tl_write_str(fd, req, 2000), 0);
	free(req);
	return fd;
}

static void abort_one_of_two(const char *work, const char *failing_call, bool rst)
{
	up = tl_upstream_start(UPSTREAM_DELAY_MS);
	cr_assert_not_null(up);
	char *server = tl_helper_path("forkserver");
	cr_assert_not_null(server, "CS_HELPERS_DIR is not set (run through meson test)");
	char *uport = tl_strdupf("%d", tl_upstream_port(up));
	const char *argv[] = { server, uport, work, NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", NULL };
	struct tl_ready ready = { .out_line = "listening port=", .timeout_ms = 5000 };
	char *line, *why;
	p = tl_server_start(argv, env, TL_SHIM, &ready, &line, &why);
	cr_assert_not_null(p, "%s", why);
	long long port;
	cr_assert_eq(tl_field(line, "port", &port), 0);
	free(line);

	long long child_a, child_b;
	int a = connect_child(p, (int)port, &child_a);
	int b = connect_child(p, (int)port, &child_b);

	char *mark = tl_strdupf("child=%lld step=3 ", child_a);
	line = tl_proc_wait_line(p, mark, 5000);
	cr_assert_not_null(line, "child A never completed 3 steps");
	free(line);
	free(mark);
	if (!strcmp(work, "upstream")) {
		/* Leave while A's child waits for the upstream's 4th answer. */
		mark = tl_strdupf("step 4 pid %lld end", child_a);
		cr_assert(tl_upstream_wait(up, mark, 2000), "A's step 4 never reached the upstream");
		free(mark);
	}
	uint64_t t_close = tl_now_ns();
	if (rst)
		tl_abort(a);
	else
		close(a);

	cr_expect(tl_proc_wait_stderr(p, ": info: active:", 1000),
		  "the shim's start line is missing: was it loaded?");

	mark = tl_strdupf("child=%lld failed ", child_a);
	line = tl_proc_wait_line(p, mark, 2000);
	char *out = line ? NULL : tl_proc_stdout(p);
	cr_assert_not_null(line, "child A's work did not fail within 2 s; stdout:\n%s", out);
	long long err_no, t_err, step;
	cr_assert_eq(tl_field(line, "errno", &err_no), 0);
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	cr_assert_eq(tl_field(line, "step", &step), 0);
	cr_assert_eq(step, 4, "A's child failed at step %lld, not in step 4: %s", step, line);
	cr_assert_eq(err_no, ECANCELED, "child A failed with errno %lld: %s", err_no, line);
	cr_assert(strstr(line, failing_call), "expected call=%s: %s", failing_call, line);
	cr_log_info("%s: cancel %.2f ms after the client left", __func__,
		    ((double)t_err - (double)t_close) / 1e6);
	cr_assert_geq((uint64_t)t_err, t_close);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms",
		     ((uint64_t)t_err - t_close) / 1e6);
	free(line);
	free(mark);

	/* B gets its whole answer. */
	char answer[64];
	char *expect = tl_strdupf("done %d\n", STEPS);
	ssize_t n = tl_read_line(b, answer, sizeof answer, 10000);
	cr_assert_gt(n, 0, "child B sent no answer: %s", n < 0 ? strerror(errno) : "EOF");
	cr_assert_str_eq(answer, expect);
	free(expect);
	close(b);

	mark = tl_strdupf("child=%lld done", child_b);
	line = tl_proc_wait_line(p, mark, 2000);
	cr_assert_not_null(line, "child B did not report done");
	free(line);
	free(mark);

	/* Nothing more from A: no step after the failure, and (in upstream mode)
	 * the upstream heard from A at most up to the cancelled step. */
	out = tl_proc_stdout(p);
	mark = tl_strdupf("child=%lld step=", child_a);
	cr_assert_eq(tl_count(out, mark), (size_t)step - 1, "%s", out);
	free(mark);
	if (!strcmp(work, "upstream")) {
		mark = tl_strdupf("pid %lld end", child_a);
		unsigned sent = tl_upstream_count(up, mark);
		cr_assert_eq(sent, step, "upstream saw %u steps of A, failed in %lld", sent, step);
		free(mark);
		mark = tl_strdupf("pid %lld end", child_b);
		cr_assert_eq(tl_upstream_count(up, mark), STEPS);
		free(mark);
	}
	free(out);

	free(uport);
	free(server);
}

Test(servers, forkserver_upstream_recv_client_close, .timeout = 30)
{
	abort_one_of_two("upstream", "call=recv", false);
}

Test(servers, forkserver_nanosleep_client_rst, .timeout = 30)
{
	abort_one_of_two("sleep", "call=nanosleep", true);
}

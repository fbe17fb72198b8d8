/* An unmodified Python ThreadingHTTPServer (slow_http.py) under the shim. Two
 * requests run at once, each making slow upstream calls; one client goes away
 * mid-way. The aborted handler must get OSError(ECANCELED) at once and stop
 * calling the upstream; the other request must complete untouched. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "testlib.h"

#define CALLS 20
#define UPSTREAM_DELAY_MS 100
#define CANCEL_BUDGET_NS (20 * 1000000ull)

struct server {
	struct tl_upstream *up;
	struct tl_proc *proc;
	int port;
};

static struct server srv;

static void stop(void)
{
	tl_proc_free(srv.proc);
	tl_upstream_stop(srv.up);
}

TestSuite(servers, .fini = stop);

static void start(struct server *s)
{
	s->up = tl_upstream_start(UPSTREAM_DELAY_MS);
	cr_assert_not_null(s->up);
	char *script = tl_source_path("tests/servers/slow_http.py");
	cr_assert_not_null(script, "CS_SOURCE_ROOT is not set (run through meson test)");
	char *port = tl_strdupf("%d", tl_upstream_port(s->up));
	const char *argv[] = { "/usr/bin/python3", script, port, NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", "PYTHONDONTWRITEBYTECODE=1", NULL };
	struct tl_ready ready = { .out_line = "listening port=", .timeout_ms = 10000 };
	char *line, *why;
	s->proc = tl_server_start(argv, env, TL_SHIM, &ready, &line, &why);
	cr_assert_not_null(s->proc, "%s", why);
	free(script);
	free(port);

	long long p;
	cr_assert_eq(tl_field(line, "port", &p), 0);
	s->port = (int)p;
	free(line);
}

static int send_work(int port, const char *id)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	char *path = tl_strdupf("/work?id=%s&n=%d", id, CALLS);
	struct http_conn c;
	http_conn_init(&c, fd);
	cr_assert_eq(http_send_get(&c, path, false, 2000), 0);
	http_conn_free(&c);
	free(path);
	return fd;
}

static void abort_one_of_two(bool rst)
{
	struct server *s = &srv;
	start(s);

	int a = send_work(s->port, "A");
	int b = send_work(s->port, "B");

	/* A is well into its work when its client goes away. */
	char *line = tl_proc_wait_line(s->proc, "call id=A i=3 ", 5000);
	cr_assert_not_null(line, "request A never made 3 upstream calls");
	free(line);
	/* Leave while A's handler waits for the upstream's 4th answer. */
	cr_assert(tl_upstream_wait(s->up, "A 4", 2000), "A's call 4 never reached the upstream");
	uint64_t t_close = tl_now_ns();
	if (rst)
		tl_abort(a);
	else
		close(a);

	/* Reported before the assertions, which stop at the first failure:
	 * a shim that failed to load explains every other failure. */
	cr_expect(tl_proc_wait_stderr(s->proc, ": info: active:", 1000),
		  "the shim's start line is missing: was it loaded?");

	line = tl_proc_wait_line(s->proc, "error id=A ", 2000);
	char *out = line ? NULL : tl_proc_stdout(s->proc);
	cr_assert_not_null(line, "the aborted handler raised no OSError within 2 s; stdout:\n%s", out);
	long long err_no, t_err, i_err;
	cr_assert_eq(tl_field(line, "errno", &err_no), 0);
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	cr_assert_eq(tl_field(line, "i", &i_err), 0);
	cr_assert_eq(i_err, 4, "the handler failed in call %lld, not in call 4: %s", i_err, line);
	cr_assert_eq(err_no, ECANCELED, "handler failed with errno %lld, not ECANCELED: %s", err_no,
		     line);
	cr_log_info("%s: cancel %.2f ms after the client left", __func__,
		    ((double)t_err - (double)t_close) / 1e6);
	cr_assert_geq((uint64_t)t_err, t_close, "handler failed before the client closed: %s",
		      line);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS,
		     "cancel took %.1f ms (budget %llu ms)", ((uint64_t)t_err - t_close) / 1e6,
		     CANCEL_BUDGET_NS / 1000000);
	free(line);

	/* B is complete and correct; it takes long enough that a handler still
	 * working for A would have shown more upstream calls by then. */
	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, b);
	cr_assert_eq(http_read_response(&c, &r, 10000), 0, "request B: %s", r.err);
	cr_assert_eq(r.status, 200);
	char expect[CALLS * 16] = "";
	for (int i = 1; i <= CALLS; i++)
		sprintf(expect + strlen(expect), "ok B %d\n", i);
	cr_assert_str_eq(r.body, expect);
	free(r.body);
	http_conn_free(&c);
	close(b);
	line = tl_proc_wait_line(s->proc, "done id=B ", 2000);
	cr_assert_not_null(line);
	free(line);

	/* After the error: no upstream call for A (call 4 was the cancelled one). */
	out = tl_proc_stdout(s->proc);
	cr_assert_eq(tl_count(out, "call id=A "), 3, "%s", out);
	cr_assert_eq(tl_upstream_count(s->up, "A "), 4, "A kept calling the upstream");
	cr_assert_eq(tl_upstream_count(s->up, "B "), CALLS);
	free(out);

	char *err = tl_proc_stderr(s->proc);
	cr_assert(tl_count(err, ": info: active:") >= 1, "shim not active; stderr:\n%s", err);
	free(err);
}

Test(servers, python_threading_http_client_close, .timeout = 30)
{
	abort_one_of_two(false);
}

Test(servers, python_threading_http_client_rst, .timeout = 30)
{
	abort_one_of_two(true);
}

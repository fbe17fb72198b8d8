/* nginx as a reverse proxy in front of a thread-per-request backend under the
 * shim (slow_http.py: Python's ThreadingHTTPServer making slow upstream
 * calls). A browser-like client goes away mid-request: nginx (with its
 * default proxy_ignore_client_abort off) notices and closes its upstream
 * connection, and the shim in the backend turns that close into ECANCELED in
 * the handler's upstream call — the abort travels through the proxy. Over
 * TCP and over a unix socket, with and without upstream keep-alive. Another
 * client, at the same time, stays and gets its full answer; nginx itself runs
 * under the shim too and is never cancelled (it is an event loop). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nginx_conf.h"
#include "shim_check.h"
#include "slow_client.h"
#include "testlib.h"

#define CALLS 15
#define UPSTREAM_DELAY_MS 100
#define CANCEL_BUDGET_NS (100 * 1000000ull)

static char *dir;
static struct tl_upstream *up;
static struct tl_proc *backend, *nginx;
static int port;

static void stop_all(void)
{
	tl_proc_free(nginx);
	tl_proc_free(backend);
	tl_upstream_stop(up);
	if (dir)
		tl_cleanup_dir(dir);
}

TestSuite(servers, .timeout = 60, .fini = stop_all);

/* The backend listens on 127.0.0.1:<any> or on dir/backend.sock; nginx
 * proxies / to it, keeping idle upstream connections if keepalive. */
static void start(bool unix_socket, bool keepalive)
{
	cr_assert_eq(access(NGINX, X_OK), 0, NGINX " missing (package nginx-light)");
	dir = tl_tmpdir("nginx-proxy");
	cr_assert_not_null(dir);
	up = tl_upstream_start(UPSTREAM_DELAY_MS);
	cr_assert_not_null(up);

	char *script = tl_source_path("tests/servers/slow_http.py");
	cr_assert_not_null(script, "CS_SOURCE_ROOT is not set (run through meson test)");
	char *uport = tl_strdupf("%d", tl_upstream_port(up));
	char *sock = tl_strdupf("%s/backend.sock", dir);
	const char *argv[8] = { "/usr/bin/python3", script, uport };
	int n = 3;
	if (unix_socket) {
		argv[n++] = "--unix";
		argv[n++] = sock;
	}
	if (keepalive)
		argv[n++] = "--keepalive";
	argv[n] = NULL;
	const char *env[] = { "CANCELSHIM_LOG=debug", "PYTHONDONTWRITEBYTECODE=1", NULL };
	struct tl_ready ready = { .out_line = "listening ", .timeout_ms = 10000 };
	char *line, *why;
	backend = tl_server_start(argv, env, TL_SHIM, &ready, &line, &why);
	cr_assert_not_null(backend, "%s", why);
	char *server;
	long long bport;
	if (unix_socket) {
		server = tl_strdupf("unix:%s", sock);
	} else {
		cr_assert_eq(tl_field(line, "port", &bport), 0);
		server = tl_strdupf("127.0.0.1:%lld", bport);
	}
	free(line);

	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *conf = tl_strdupf(
		NGINX_CONF_HEAD("1", "256")
		"  access_log %1$s/access.log;\n"
		"  upstream backend {\n"
		"    server %2$s;\n"
		"%3$s"
		"  }\n"
		"  server {\n"
		"    listen 127.0.0.1:%4$d;\n"
		"    location / {\n"
		"      proxy_pass http://backend;\n"
		"%5$s"
		"    }\n"
		"  }\n"
		"}\n",
		dir, server, keepalive ? "    keepalive 8;\n" : "", port,
		keepalive ? "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n" : "");
	const char *nenv[] = { "CANCELSHIM_LOG=debug", NULL };
	nginx = nginx_start(dir, conf, port, nenv);
	free(script);
	free(uport);
	free(sock);
	free(server);
	free(conf);
}

/* The conn= counter of the backend's "done id=<id> " line. */
static long long done_conn(const char *id)
{
	char *mark = tl_strdupf("done id=%s ", id);
	char *line = tl_proc_wait_line(backend, mark, 5000);
	cr_assert_not_null(line, "no '%s' from the backend", mark);
	long long conn;
	cr_assert_eq(tl_field(line, "conn", &conn), 0, "%s", line);
	free(line);
	free(mark);
	return conn;
}

static void abort_through_proxy(bool unix_socket, bool keepalive)
{
	start(unix_socket, keepalive);

	/* Warm-up: with keep-alive, nginx then holds an idle upstream
	 * connection, and the next request goes over it. */
	slow_read_ok(slow_send(port, "/work", "W", 1), "W", 1);
	long long conn_w = done_conn("W");

	/* Both requests are under way; A leaves just after sending an
	 * upstream call, while its handler waits for the answer. */
	int a = slow_send(port, "/work", "A", CALLS);
	cr_assert(tl_upstream_wait(up, "A 2", 5000), "A never reached the upstream");
	int b = slow_send(port, "/work", "B", CALLS);
	cr_assert(tl_upstream_wait(up, "B 1", 5000), "B never reached the upstream");
	unsigned a_calls = tl_upstream_next_call(up, "A", 5000);
	cr_assert(a_calls, "A's next call never came");
	uint64_t t_close = tl_now_ns();
	close(a);

	char *line = tl_proc_wait_line(backend, "error id=A ", 2000);
	char *out = line ? NULL : tl_proc_stdout(backend);
	char *err = line ? NULL : tl_proc_stderr(backend);
	char *log = line ? NULL : tl_read_in(dir, "error.log");
	cr_assert_not_null(line,
			   "the backend's handler for A raised nothing within 2 s\nbackend stdout:\n%s\n"
			   "backend stderr:\n%s\nnginx error.log:\n%s",
			   out, err, log);
	long long err_no, t_err, conn_a;
	cr_assert_eq(tl_field(line, "errno", &err_no), 0);
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	cr_assert_eq(tl_field(line, "conn", &conn_a), 0);
	cr_assert_eq(err_no, ECANCELED, "handler failed with errno %lld: %s", err_no, line);
	double ms = ((double)t_err - (double)t_close) / 1e6;
	cr_log_info("nginx proxy (%s, %s): backend cancelled %.2f ms after the client left%s",
		    unix_socket ? "unix socket" : "tcp", keepalive ? "keepalive" : "no keepalive", ms,
		    keepalive && conn_a == conn_w ? " (request reused the warm-up connection)" : "");
	cr_assert_geq((uint64_t)t_err, t_close);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms", ms);
	if (keepalive)
		cr_assert_eq(conn_a, conn_w, "keep-alive: A did not reuse the warm-up connection");
	else
		cr_assert_neq(conn_a, conn_w);
	free(line);

	slow_read_ok(b, "B", CALLS);
	long long conn_b = done_conn("B");
	(void)conn_b;
	cr_assert_eq(tl_upstream_count(up, "A "), a_calls, "A made %u upstream calls, not %u",
		     tl_upstream_count(up, "A "), a_calls);
	cr_assert_eq(tl_upstream_count(up, "B "), CALLS);

	/* nginx saw the client leave (499 in its access log) and is healthy. */
	char *alog_path = tl_strdupf("%s/access.log", dir);
	cr_assert(tl_wait_file_contains(alog_path, "\" 499 ", 2000), "no 499 in nginx's access log");
	free(alog_path);
	slow_read_ok(slow_send(port, "/work", "C", 1), "C", 1);
	int st = tl_proc_stop(nginx, SIGQUIT, 10000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nginx stop status %#x", st);
	char *nerr = tl_proc_stderr(nginx);
	log = tl_read_in(dir, "error.log");
	char *both = tl_strdupf("%s\n%s", nerr, log);
	cr_assert(strstr(both, SHIM_ACTIVE_MARK), "the shim is not active in nginx");
	cr_assert_eq(shim_cancel_marks(both), 0, "nginx was cancelled:\n%s", both);
	cr_assert_null(tl_find_line(log, "[alert]"), "%s", log);
	cr_assert_null(tl_find_line(log, "[crit]"), "%s", log);
	char *berr = tl_proc_stderr(backend);
	cr_assert(strstr(berr, SHIM_ACTIVE_MARK), "the shim is not active in the backend");
	free(berr);
	free(nerr);
	free(log);
	free(both);
}

Test(servers, nginx_proxy_tcp)
{
	abort_through_proxy(false, false);
}

Test(servers, nginx_proxy_tcp_keepalive)
{
	abort_through_proxy(false, true);
}

Test(servers, nginx_proxy_unix)
{
	abort_through_proxy(true, false);
}

Test(servers, nginx_proxy_unix_keepalive)
{
	abort_through_proxy(true, true);
}

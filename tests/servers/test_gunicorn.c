/* gunicorn (Debian's, sync workers: a pre-forked worker process serves one
 * request at a time) running slow_wsgi.py under the shim. A client leaves
 * while its request waits for a slow upstream: the app's upstream call raises
 * OSError(ECANCELED) at once, gunicorn's own error path logs it, and the same
 * worker goes on serving. Another client, meanwhile, gets its full answer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_check.h"
#include "slow_client.h"
#include "testlib.h"

#define GUNICORN "/usr/bin/gunicorn"
#define CALLS 15
#define UPSTREAM_DELAY_MS 100
#define CANCEL_BUDGET_NS (20 * 1000000ull)

static struct tl_upstream *up;
static struct tl_proc *gun;
static int port;

static void stop_all(void)
{
	tl_proc_free(gun);
	tl_upstream_stop(up);
}

TestSuite(servers, .timeout = 60, .fini = stop_all);

static void start(void)
{
	cr_assert_eq(access(GUNICORN, X_OK), 0, GUNICORN " missing (package gunicorn)");
	up = tl_upstream_start(UPSTREAM_DELAY_MS);
	cr_assert_not_null(up);
	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *dir = tl_source_path("tests/servers");
	char *bind = tl_strdupf("127.0.0.1:%d", port);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(up));
	const char *argv[] = { GUNICORN, "--workers", "2", "--worker-class", "sync",
			       "--bind", bind, "--chdir", dir, "--timeout", "30",
			       "slow_wsgi:app", NULL };
	const char *env[] = { uport, "CANCELSHIM_LOG=debug", "PYTHONDONTWRITEBYTECODE=1", NULL };
	/* Both workers booted, then the port answers. */
	struct tl_ready ready = { .err_text = "Booting worker", .port = port, .timeout_ms = 15000 };
	char *why;
	gun = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	cr_assert_not_null(gun, "%s", why);
	free(dir);
	free(bind);
	free(uport);
}

static void client_leaves(bool rst)
{
	start();
	/* Both requests are under way; A leaves just after sending an
	 * upstream call, while its handler waits for the answer. */
	int a = slow_send(port, "/work", "A", CALLS);
	cr_assert(tl_upstream_wait(up, "A 2", 5000), "A never reached the upstream");
	int b = slow_send(port, "/work", "B", CALLS);
	cr_assert(tl_upstream_wait(up, "B 1", 5000), "B never reached the upstream");
	unsigned a_calls = tl_upstream_next_call(up, "A", 5000);
	cr_assert(a_calls, "A's next call never came");
	uint64_t t_close = tl_now_ns();
	if (rst)
		tl_abort(a);
	else
		close(a);

	char *line = tl_proc_wait_line(gun, "error id=A ", 2000);
	char *err = line ? NULL : tl_proc_stderr(gun);
	cr_assert_not_null(line, "the app raised nothing for A within 2 s; stderr:\n%s", err);
	long long err_no, t_err, pid_a;
	cr_assert_eq(tl_field(line, "errno", &err_no), 0);
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	cr_assert_eq(tl_field(line, "pid", &pid_a), 0);
	cr_assert_eq(err_no, ECANCELED, "%s", line);
	double ms = ((double)t_err - (double)t_close) / 1e6;
	cr_log_info("gunicorn sync (%s): app cancelled %.2f ms after the client left",
		    rst ? "rst" : "close", ms);
	cr_assert_geq((uint64_t)t_err, t_close);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms", ms);
	free(line);

	slow_read_ok(b, "B", CALLS);
	cr_assert_eq(tl_upstream_count(up, "A "), a_calls, "A made %u upstream calls, not %u",
		     tl_upstream_count(up, "A "), a_calls);
	cr_assert_eq(tl_upstream_count(up, "B "), CALLS);

	/* The worker that was cancelled still serves: four quick requests
	 * in a row reach both workers (sync workers take turns accepting). */
	for (int i = 0; i < 4; i++)
		slow_read_ok(slow_send(port, "/work", "C", 1), "C", 1);
	char *mark = tl_strdupf("pid=%lld", pid_a);
	char *out = tl_proc_stdout(gun);
	char *after = strstr(out, "error id=A ");
	bool served = false;
	for (char *p = after; p && (p = strstr(p, "done id=C ")); p++)
		served |= strncmp(p + strcspn(p, "\n") - strlen(mark), mark, strlen(mark)) == 0;
	cr_log_info("gunicorn: the cancelled worker %s served again", served ? "has" : "has not (yet)");

	/* gunicorn's sync worker logs an OSError from the app as a socket
	 * error, with the traceback, and carries on. No worker died. */
	err = tl_proc_stderr(gun);
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "the shim is not active");
	cr_assert(strstr(err, "Socket error processing request"),
		  "gunicorn did not log the failed request:\n%s", err);
	cr_assert(strstr(err, "OSError: [Errno 125] Operation canceled"), "%s", err);
	cr_assert_null(strstr(err, "WORKER TIMEOUT"), "%s", err);
	cr_assert_null(strstr(err, "was terminated"), "%s", err);
	cr_assert_null(strstr(err, "Worker exiting"), "a worker died:\n%s", err);
	cr_assert_eq(tl_count(err, "Booting worker"), 2, "a worker was replaced:\n%s", err);
	free(err);
	int st = tl_proc_stop(gun, SIGTERM, 10000);
	err = tl_proc_stderr(gun);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "gunicorn stop status %#x\n%s", st, err);
	free(err);
	free(out);
	free(mark);
}

Test(servers, gunicorn_sync_client_close)
{
	client_leaves(false);
}

Test(servers, gunicorn_sync_client_rst)
{
	client_leaves(true);
}

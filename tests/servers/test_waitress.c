/* waitress (Debian's python3-waitress 2.1) running slow_wsgi.py under the shim,
 * with one worker thread. waitress's event loop (the main thread) reads every
 * request and hands the parsed request to the worker, which runs the app and
 * writes the response: the worker never reads its client, so the shim has no
 * evidence of which request it runs and must never cancel it. An abort is
 * therefore NOT stopped (the app runs to its end, as without the shim), and
 * nothing live may fail: before issue 11 the worker stayed bound to the last
 * client it wrote to, and that client closing its idle keep-alive connection
 * failed the next, unrelated request with ECANCELED. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_scenarios.h"

#define WAITRESS "/usr/bin/waitress-serve"

static struct pool_server srv = { .name = "waitress", .path = "/work", .processes = 1 };

static void stop(void)
{
	pool_stop(&srv);
}

TestSuite(waitress, .timeout = 60, .fini = stop);

static void start(void)
{
	cr_assert_eq(access(WAITRESS, X_OK), 0, WAITRESS " missing (package python3-waitress)");
	pool_upstreams_start(&srv);
	srv.port = tl_free_port();
	cr_assert_gt(srv.port, 0);
	char *dir = tl_source_path("tests/servers");
	char *pypath = tl_strdupf("PYTHONPATH=%s", dir);
	char *listen = tl_strdupf("--listen=127.0.0.1:%d", srv.port);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(srv.slow));
	const char *argv[] = { WAITRESS, listen, "--threads=1", "slow_wsgi:app", NULL };
	const char *env[] = { uport, pypath, pool_shim_log(), "PYTHONDONTWRITEBYTECODE=1",
			      NULL };
	srv.proc = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(srv.proc, "spawn waitress: %s", strerror(errno));
	cr_assert(tl_proc_wait_stderr(srv.proc, "Serving on", 15000), "waitress did not start");
	cr_assert(tl_wait_port("127.0.0.1", srv.port, 5000), "waitress is not listening");
	free(dir);
	free(pypath);
	free(listen);
	free(uport);
}

POOL_TESTS(waitress, srv, start)

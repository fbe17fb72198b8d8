/* gunicorn with threaded workers (-k gthread: one worker process, one worker
 * thread, keep-alive 30 s) running slow_wsgi.py under the shim. The worker
 * thread reads each request and runs the app; between the requests of a
 * keep-alive connection it hands the socket to the worker's main loop (an
 * epoll set that also holds the listener), which gives it back to the pool
 * when the next request arrives. Before issue 11 that hand-over marked the
 * worker thread "event loop, never cancel": after one keep-alive response,
 * every later abort ran to its end. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_scenarios.h"

#define GUNICORN "/usr/bin/gunicorn"

static const char *const bad_log[] = { "WORKER TIMEOUT", "Worker exiting", NULL };
static struct pool_server srv = { .name = "gunicorn gthread", .path = "/work", .processes = 1,
				  .worker_reads_request = true, .bad_log = bad_log };

static void stop(void)
{
	pool_stop(&srv);
}

TestSuite(gunicorn_gthread, .timeout = 60, .fini = stop);

static void start(void)
{
	cr_assert_eq(access(GUNICORN, X_OK), 0, GUNICORN " missing (package gunicorn)");
	pool_upstreams_start(&srv);
	srv.port = tl_free_port();
	cr_assert_gt(srv.port, 0);
	char *dir = tl_source_path("tests/servers");
	char *bind = tl_strdupf("127.0.0.1:%d", srv.port);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(srv.slow));
	const char *argv[] = { GUNICORN, "--workers", "1", "--worker-class", "gthread",
			       "--threads", "1", "--keep-alive", "30", "--bind", bind,
			       "--chdir", dir, "--timeout", "30", "slow_wsgi:app", NULL };
	const char *env[] = { uport, pool_shim_log(), "PYTHONDONTWRITEBYTECODE=1", NULL };
	srv.proc = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(srv.proc, "spawn gunicorn: %s", strerror(errno));
	cr_assert(tl_proc_wait_stderr(srv.proc, "Booting worker", 15000), "gunicorn did not start");
	cr_assert(tl_wait_port("127.0.0.1", srv.port, 15000), "gunicorn is not listening");
	free(dir);
	free(bind);
	free(uport);
}

POOL_TESTS(gunicorn_gthread, srv, start)

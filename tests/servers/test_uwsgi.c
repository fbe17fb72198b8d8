/* uWSGI (Debian's uwsgi-core 2.0 with the python3 plugin) running
 * slow_wsgi.py under the shim: one process, two worker threads, HTTP/1.1
 * keep-alive on its own socket (--http11-socket). Each worker thread accepts
 * a connection, reads its requests and runs the app, and keeps the
 * connection for its follow-ups (it waits on it alone), so a thread serves
 * one client at a time: the shim's binding is right by construction. Two
 * threads, not one, because a thread holding an idle keep-alive client is
 * not free for another. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_scenarios.h"

#define UWSGI "/usr/bin/uwsgi-core"

static const char *const bad_log[] = { "DAMN ! worker", "segmentation fault", NULL };
static struct pool_server srv = { .name = "uWSGI threads", .path = "/work", .processes = 1,
				  .worker_reads_request = true, .bad_log = bad_log,
				  .app_on_stderr = true /* uWSGI sends stdout to its log */ };

static void stop(void)
{
	pool_stop(&srv);
}

TestSuite(uwsgi, .timeout = 60, .fini = stop);

static void start(void)
{
	cr_assert_eq(access(UWSGI, X_OK), 0, UWSGI " missing (package uwsgi-core)");
	pool_upstreams_start(&srv);
	srv.port = tl_free_port();
	cr_assert_gt(srv.port, 0);
	char *app = tl_source_path("tests/servers/slow_wsgi.py");
	char *bind = tl_strdupf("127.0.0.1:%d", srv.port);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(srv.slow));
	const char *argv[] = { UWSGI, "--plugin", "python3", "--http11-socket", bind,
			       "--wsgi-file", app, "--callable", "app", "--processes", "1",
			       "--threads", "2", "--socket-timeout", "30", "--need-app",
			       "--die-on-term", NULL };
	const char *env[] = { uport, pool_shim_log(), "PYTHONDONTWRITEBYTECODE=1", NULL };
	srv.proc = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(srv.proc, "spawn uwsgi: %s", strerror(errno));
	cr_assert(tl_proc_wait_stderr(srv.proc, "WSGI app 0", 15000), "uwsgi did not start");
	cr_assert(tl_wait_port("127.0.0.1", srv.port, 15000), "uwsgi is not listening");
	free(app);
	free(bind);
	free(uport);
}

POOL_TESTS(uwsgi, srv, start)

/* puma (Debian's puma 5.6 with ruby-rack) running slow_rack.ru under the
 * shim, in single mode and in cluster mode (-w 2), one worker thread per
 * process (-t 1:1). puma's thread reads a new connection's first request
 * itself; a keep-alive connection between requests goes to the reactor (an
 * event-loop thread), which reads the follow-up and hands it back to the
 * pool. Before issue 11 the worker stayed bound to the last client it served,
 * so that client leaving failed the next, unrelated request. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_scenarios.h"

#define PUMA "/usr/bin/puma"

/* After a keep-alive response puma's worker waits up to 0.2 s on the client
 * alone (Client#reset, FAST_TRACK_KA_TIMEOUT: this binds it), then hands it
 * to the reactor. The reactor's nio4r/libev selector re-arms a descriptor it
 * still holds with an EPOLL_CTL_ADD that fails with EEXIST, and no MOD (seen
 * with strace); the shim parks only on a successful ADD or MOD, so the worker
 * stays bound to that client while it runs a follow-up the reactor read for
 * another one, and the first client leaving fails it (ECANCELED, 500). */
static struct pool_server single = { .name = "puma", .path = "/work", .processes = 1,
				     .worker_reads_request = true };
static struct pool_server cluster = { .name = "puma -w 2", .path = "/work", .processes = 2,
				      .worker_reads_request = true };

static void stop(void)
{
	pool_stop(&single);
	pool_stop(&cluster);
}

TestSuite(puma, .timeout = 60, .fini = stop);
TestSuite(puma_cluster, .timeout = 60, .fini = stop);

static void start(struct pool_server *s, const char *workers)
{
	cr_assert_eq(access(PUMA, X_OK), 0, PUMA " missing (package puma)");
	pool_upstreams_start(s);
	s->port = tl_free_port();
	cr_assert_gt(s->port, 0);
	char *app = tl_source_path("tests/servers/slow_rack.ru");
	char *bind = tl_strdupf("tcp://127.0.0.1:%d", s->port);
	char *uport = tl_strdupf("SLOW_UPSTREAM_PORT=%d", tl_upstream_port(s->slow));
	const char *argv[] = { PUMA, "-b", bind, "-t", "1:1", "-w", workers, app, NULL };
	const char *env[] = { uport, pool_shim_log(), NULL };
	s->proc = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(s->proc, "spawn puma: %s", strerror(errno));
	/* Every worker booted (cluster), then the port answers. */
	for (int i = 0; i < s->processes && s->processes > 1; i++) {
		char *line = tl_proc_wait_line(s->proc, "booted", 20000);
		cr_assert_not_null(line, "puma worker %d did not boot", i);
		free(line);
	}
	cr_assert(tl_wait_port("127.0.0.1", s->port, 20000), "puma is not listening");
	free(app);
	free(bind);
	free(uport);
}

static void start_single(void)
{
	start(&single, "0");
}

static void start_cluster(void)
{
	start(&cluster, "2");
}

POOL_TESTS(puma, single, start_single)
POOL_TESTS(puma_cluster, cluster, start_cluster)

/* A Node.js HTTP server (Debian's nodejs; static_http.js: one event-loop
 * thread) under the shim at CANCELSHIM_LOG=debug, loaded by a mix of clients
 * of which many give up mid-request or mid-response. The loop serves many
 * clients, so nothing may be cancelled there: no cancel, no ECANCELED, no
 * client error, and Node still serving after. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http_load.h"
#include "shim_check.h"
#include "testlib.h"

#define NODE "/usr/bin/node"
#define BIG_LEN (400 * 1024)
#define SMALL_LEN 1000

static char *dir;
static struct tl_proc *node;

static void stop_all(void)
{
	tl_proc_free(node);
	if (dir)
		tl_cleanup_dir(dir);
}

TestSuite(servers, .timeout = 60, .fini = stop_all);

static void put(const char *name, const char *data, size_t len)
{
	char *p = tl_write_in(dir, name, data, len);
	cr_assert_not_null(p, "cannot write %s/%s", dir, name);
	free(p);
}

Test(servers, node_http_aborting_clients_under_load)
{
	cr_assert_eq(access(NODE, X_OK), 0, NODE " missing (package nodejs)");
	dir = tl_tmpdir("node");
	cr_assert_not_null(dir);
	char *big = tl_pattern(BIG_LEN, 1), *small = tl_pattern(SMALL_LEN, 2);
	put("big.bin", big, BIG_LEN);
	put("small.txt", small, SMALL_LEN);
	char *script = tl_source_path("tests/servers/static_http.js");
	cr_assert_not_null(script, "CS_SOURCE_ROOT is not set (run through meson test)");
	const char *argv[] = { NODE, script, dir, NULL };
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	struct tl_ready ready = { .out_line = "listening port=", .timeout_ms = 15000 };
	char *line, *why;
	node = tl_server_start(argv, env, TL_SHIM, &ready, &line, &why);
	cr_assert_not_null(node, "%s", why);
	long long port;
	cr_assert_eq(tl_field(line, "port", &port), 0);
	free(line);

	struct http_load_file fbig = { "/big.bin", big, BIG_LEN };
	struct http_load_file fsmall = { "/small.txt", small, SMALL_LEN };
	struct http_load_config cfg = {
		.port = (int)port, .threads = 4, .ops_per_thread = 600, .max_ms = 15000,
		.small = &fsmall, .big = &fbig,
	};
	struct http_load_result res;
	http_load_run(&cfg, &res);
	cr_log_info("node load: %u ops in %.2f s: %u responses ok, %u aborted mid-request, "
		    "%u aborted mid-response, %u errors; slowest op %.1f ms (%s)",
		    res.ops, res.elapsed_ns / 1e9, res.responses_ok, res.aborted_request,
		    res.aborted_response, res.errors, res.slowest_ns / 1e6, res.slowest_kind);
	/* Still serving: a second, short round. */
	struct http_load_config again = cfg;
	again.threads = 1;
	again.ops_per_thread = 50;
	struct http_load_result res2;
	http_load_run(&again, &res2);

	char *err = tl_proc_stderr(node);
	cr_expect(strstr(err, SHIM_ACTIVE_MARK), "the shim's start line is missing: was it loaded?");
	cr_assert_eq(res.errors, 0, "%u client errors, first: %s", res.errors, res.first_error);
	cr_assert_eq(res2.errors, 0, "after the load: %s", res2.first_error);
	cr_assert_gt(res.responses_ok, 300);
	cr_assert_gt(res.aborted_request, 50);
	cr_assert_gt(res.aborted_response, 50);
	size_t cancels = shim_cancel_marks(err);
	char *first = tl_find_line(err, "cancel conn=");
	cr_assert_eq(cancels, 0, "%zu cancel marks in node's output, e.g.: %s", cancels,
		     first ? first : "(ECANCELED)");
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "shim not active");
	cr_assert_eq(tl_proc_signal(node, 0), 0, "node died");
	free(err);
	free(script);
	free(big);
	free(small);
}

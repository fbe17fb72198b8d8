/* nginx (master + 2 workers, epoll event loops) under the shim at
 * CANCELSHIM_LOG=debug, loaded by a mix of clients of which many give up
 * mid-request or mid-response. nginx serves many clients per thread, so the
 * shim must never cancel anything there: no cancel in its log, no error in
 * nginx's, every complete response correct, and nginx still serving after. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_client.h"
#include "http_load.h"
#include "nginx_conf.h"
#include "shim_check.h"
#include "testlib.h"

#define BIG_LEN (400 * 1024)
#define SMALL_LEN 1000

static char *dir;
static struct tl_proc *nginx;
static int port, slow_port;
static char *big, *small;

static void write_site(void)
{
	char *www = tl_strdupf("%s/www", dir);
	cr_assert_eq(mkdir(www, 0755), 0);
	big = tl_pattern(BIG_LEN, 1);
	small = tl_pattern(SMALL_LEN, 2);
	char *p = tl_strdupf("%s/big.bin", www);
	cr_assert_eq(tl_write_file(p, big, BIG_LEN), 0);
	free(p);
	p = tl_strdupf("%s/small.txt", www);
	cr_assert_eq(tl_write_file(p, small, SMALL_LEN), 0);
	free(p);
	free(www);
}

static char *config(void)
{
	return tl_strdupf(
		NGINX_CONF_HEAD("2", "1024")
		"  access_log off;\n"
		"  keepalive_requests 1000;\n"
		"  sendfile on;\n"
		"  server {\n"
		"    listen 127.0.0.1:%2$d;\n"
		/* For clients that leave mid-response: a small send buffer (and
		 * their small receive window) keeps nginx mid-write while they
		 * read. Only for them: it slows complete transfers. */
		"    listen 127.0.0.1:%3$d sndbuf=32k;\n"
		"    root %1$s/www;\n"
		"  }\n"
		"}\n",
		dir, port, slow_port);
}

static void start_nginx(void)
{
	dir = tl_tmpdir("nginx");
	cr_assert_not_null(dir);
	port = tl_free_port();
	slow_port = tl_free_port();
	cr_assert_gt(port, 0);
	cr_assert_gt(slow_port, 0);
	cr_assert_neq(port, slow_port);
	write_site();
	char *conf = config();
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	nginx = nginx_start(dir, conf, port, env);
	free(conf);
}

static void stop_nginx(void)
{
	tl_proc_free(nginx);
	nginx = NULL;
	tl_cleanup_dir(dir);
	free(dir);
	free(big);
	free(small);
}

TestSuite(servers, .timeout = 60, .fini = stop_nginx);

static void get_and_check(const char *path, const char *data, size_t len)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect after load: %s", strerror(errno));
	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, fd);
	cr_assert_eq(http_send_get(&c, path, false, 2000), 0);
	cr_assert_eq(http_read_response(&c, &r, 5000), 0, "GET %s after load: %s", path, r.err);
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.body_len, len);
	cr_assert(!memcmp(r.body, data, len));
	free(r.body);
	http_conn_free(&c);
	close(fd);
}

Test(servers, nginx_aborting_clients_under_load)
{
	start_nginx();

	struct http_load_file fbig = { "/big.bin", big, BIG_LEN };
	struct http_load_file fsmall = { "/small.txt", small, SMALL_LEN };
	struct http_load_config cfg = {
		.port = port, .slow_port = slow_port, .threads = 4, .ops_per_thread = 1500, .max_ms = 20000,
		.small = &fsmall, .big = &fbig,
	};
	struct http_load_result res;
	http_load_run(&cfg, &res);
	cr_log_info("nginx load: %u ops in %.2f s: %u responses ok, %u aborted mid-request, "
		    "%u aborted mid-response, %u errors; slowest op %.1f ms (%s)",
		    res.ops, res.elapsed_ns / 1e9, res.responses_ok, res.aborted_request,
		    res.aborted_response, res.errors, res.slowest_ns / 1e6, res.slowest_kind);

	get_and_check("/small.txt", small, SMALL_LEN);
	get_and_check("/big.bin", big, BIG_LEN);

	/* A graceful stop proves the master and workers are still healthy. */
	int st = tl_proc_stop(nginx, SIGQUIT, 10000);
	char *err = tl_proc_stderr(nginx), *log = tl_read_in(dir, "error.log");
	char *both = tl_strdupf("%s\n%s", err, log);

	cr_expect(strstr(both, SHIM_ACTIVE_MARK), "the shim's start line is missing: was it loaded?");
	cr_assert_eq(res.errors, 0, "%u client errors, first: %s", res.errors, res.first_error);
	cr_assert_geq(res.ops, 500, "only %u ops in %.1f s", res.ops, res.elapsed_ns / 1e9);
	cr_assert_gt(res.aborted_request, 50);
	cr_assert_gt(res.aborted_response, 50);
	cr_assert_gt(res.responses_ok, 500);
	/* The mix did what it is for: nginx saw clients leave while it was
	 * writing a response and while it was reading a request. */
	size_t mid_write = tl_count(log, "while sending response to client");
	size_t mid_read = tl_count(log, "while reading client request");
	cr_log_info("nginx error log: %zu clients left mid-write, %zu mid-read", mid_write, mid_read);
	cr_assert_gt(mid_write, 50, "only %zu mid-write aborts seen by nginx", mid_write);
	cr_assert_gt(mid_read, 50, "only %zu mid-read aborts seen by nginx", mid_read);
	char *bad = tl_find_line(log, "[alert]");
	if (!bad)
		bad = tl_find_line(log, "[crit]");
	if (!bad)
		bad = tl_find_line(log, "[emerg]");
	cr_assert_null(bad, "nginx error log: %s", bad);
	size_t cancels = shim_cancel_marks(both);
	char *first = tl_find_line(both, "cancel conn=");
	char *ctx = shim_lines_of_same_pid(both, first, 40);
	cr_assert_eq(cancels, 0, "%zu cancel marks in nginx's output, e.g.: %s\nthat process's shim lines:\n%s",
		     cancels, first ? first : "(see error.log)", ctx);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nginx stop status %#x", st);
	cr_assert(strstr(both, SHIM_ACTIVE_MARK), "shim not active");

	free(err);
	free(log);
	free(both);
}

/* redis-server (one event-loop thread serving every client) under the shim at
 * CANCELSHIM_LOG=debug, loaded by redis-benchmark while the test runs clients
 * that vanish: half-sent commands, big MULTI/EXEC and pipelines closed before
 * the replies are read, a blocked BLPOP whose client leaves. redis must not
 * notice the shim: benchmark succeeds, no cancel, no warning, PING answers. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_check.h"
#include "testlib.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define REDIS_BENCHMARK "/usr/bin/redis-benchmark"
#define READY "Ready to accept connections"

static char *dir;
static struct tl_proc *redis, *bench;
static int port;

static void cleanup(void)
{
	tl_proc_free(bench);
	tl_proc_free(redis);
	tl_cleanup_dir(dir);
	free(dir);
}

TestSuite(servers, .timeout = 90, .fini = cleanup);

static void start_redis(void)
{
	dir = tl_tmpdir("redis");
	cr_assert_not_null(dir);
	port = tl_free_port();
	char *sport = tl_strdupf("%d", port);
	const char *argv[] = { REDIS_SERVER, "--port", sport, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", "no", "--dir", dir,
			       "--logfile", "", "--daemonize", "no", "--protected-mode", "no",
			       NULL };
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	struct tl_ready ready = { .out_line = READY, .timeout_ms = 10000 };
	char *why;
	redis = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	cr_assert_not_null(redis, "%s", why);
	free(sport);
}

/* Clients that go away at the worst moments, until told to stop. */
struct vanishing {
	atomic_bool stop;
	unsigned ops;
	unsigned errors;
	char first_error[128];
};

static void vanish(int fd, unsigned i)
{
	if (i % 2)
		tl_abort(fd);
	else
		close(fd);
}

static void one_vanishing_client(struct vanishing *v, unsigned i)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	if (fd < 0) {
		if (!v->errors++)
			snprintf(v->first_error, sizeof v->first_error, "connect: %s", strerror(errno));
		return;
	}
	static const char partial[] = "*3\r\n$3\r\nSET\r\n$7\r\nvanish:\r\n$5\r\nhel";
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	switch (i / 2 % 4) {
	case 0: /* a command cut in the middle */
		fwrite(partial, 1, 1 + i % (sizeof partial - 2), f);
		break;
	case 1: /* a transaction sent whole, replies never read */
		fputs("MULTI\r\n", f);
		for (int k = 0; k < 500; k++)
			fprintf(f, "SET vanish:%u:%d %0100d\r\n", i, k, k);
		fputs("EXEC\r\n", f);
		break;
	case 2: /* a long pipeline, replies never read */
		for (int k = 0; k < 2000; k++)
			fputs("PING\r\n", f);
		break;
	case 3: /* blocked in BLPOP when it leaves */
		fputs("CLIENT SETNAME vanishing\r\nBLPOP vanish:nothing 5\r\n", f);
		break;
	}
	fclose(f);
	if (tl_write_all(fd, buf, len, 2000) < 0 && !v->errors++)
		snprintf(v->first_error, sizeof v->first_error, "send: %s", strerror(errno));
	free(buf);
	if (i / 2 % 4 == 3) {
		/* redis runs both commands from one read: once SETNAME's +OK is
		 * here, the client is blocked in BLPOP. */
		char line[16];
		if (tl_read_line(fd, line, sizeof line, 2000) <= 0 || strcmp(line, "+OK\r\n")) {
			if (!v->errors++)
				snprintf(v->first_error, sizeof v->first_error,
					 "CLIENT SETNAME before BLPOP: no +OK");
		}
	}
	vanish(fd, i);
	v->ops++;
}

static void *vanishing_main(void *arg)
{
	struct vanishing *v = arg;
	for (unsigned i = 0; !atomic_load(&v->stop) && i < 5000; i++)
		one_vanishing_client(v, i);
	return NULL;
}

static void ping(void)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0);
	cr_assert_eq(tl_write_str(fd, "PING\r\n", 2000), 0);
	char line[64];
	cr_assert_gt(tl_read_line(fd, line, sizeof line, 2000), 0, "no answer to PING");
	cr_assert_str_eq(line, "+PONG\r\n");
	close(fd);
}

Test(servers, redis_benchmark_with_vanishing_clients)
{
	start_redis();

	char *sport = tl_strdupf("%d", port);
	const char *argv[] = { REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", sport, "-n", "20000",
			       "-c", "20", "-q", "-t", "set,get,incr,lpush,mset", NULL };
	bench = tl_spawn(argv, NULL, 0);
	cr_assert_not_null(bench);
	free(sport);

	struct vanishing v = { 0 };
	pthread_t tid;
	pthread_create(&tid, NULL, vanishing_main, &v);
	int st = tl_proc_wait(bench, 60000);
	atomic_store(&v.stop, true);
	pthread_join(tid, NULL);

	char *bout = tl_proc_stdout(bench), *berr = tl_proc_stderr(bench);
	cr_log_info("redis: %u vanishing clients during the benchmark", v.ops);
	cr_assert(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "redis-benchmark status %#x\nstdout:\n%s\nstderr:\n%s", st, bout, berr);
	cr_assert_eq(tl_count(bout, "requests per second"), 5, "%s", bout);
	cr_assert_eq(v.errors, 0, "%s", v.first_error);
	cr_assert_gt(v.ops, 20, "too few vanishing clients ran alongside the benchmark");
	free(bout);
	free(berr);

	ping();

	char *out = tl_proc_stdout(redis), *err = tl_proc_stderr(redis);
	char *both = tl_strdupf("%s\n%s", out, err);
	cr_expect(strstr(both, SHIM_ACTIVE_MARK), "the shim's start line is missing: was it loaded?");
	size_t cancels = shim_cancel_marks(both);
	char *first = tl_find_line(both, "cancel conn=");
	char *ctx = shim_lines_of_same_pid(both, first, 40);
	cr_assert_eq(cancels, 0, "%zu cancel marks in redis's output, e.g.: %s\nthat process's shim lines:\n%s",
		     cancels, first, ctx);
	/* redis marks warnings with '#'; after startup there should be none. */
	const char *running = strstr(out, READY);
	char *warn = tl_find_line(running, " # ");
	cr_assert_null(warn, "redis warned while serving: %s", warn);
	cr_assert_null(strstr(out, "BUG"), "%s", out);
	cr_assert_null(strstr(out, "crash"), "%s", out);
	cr_assert(strstr(both, SHIM_ACTIVE_MARK), "shim not active");
	free(out);
	free(err);
	free(both);

	st = tl_proc_stop(redis, SIGTERM, 10000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "redis stop status %#x", st);
}

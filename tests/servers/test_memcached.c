/* memcached (Debian's, 4 worker threads, each a libevent loop) under the shim
 * at CANCELSHIM_LOG=debug, loaded by memcaslap (libmemcached-tools) while
 * the test's own clients keep leaving: after a reply, mid-request (half a
 * value sent) and mid-response (a large value asked for and not read), with
 * FIN or RST. memcached is an event loop: nothing it does may fail — no
 * ECANCELED, no load-generator error, and it still answers afterwards.
 *
 * Known (see docs/servers.md): a worker thread watching its notify pipe and
 * exactly one client looks to the shim like a one-request server, so a
 * disconnect sends it a cancel signal; no call fails. Set
 * CS_STRICT_EVENT_LOOPS=1 to require zero cancel deliveries as well. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_check.h"
#include "testlib.h"

#define MEMCACHED "/usr/bin/memcached"
#define MEMCASLAP "/usr/bin/memcaslap"
#define BIG_LEN (512 * 1024)

static struct tl_proc *mc, *slap;
static int port;

static void stop_all(void)
{
	tl_proc_free(slap);
	tl_proc_free(mc);
}

TestSuite(servers, .timeout = 60, .fini = stop_all);

static int conn(void)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	return fd;
}

/* A set and a get that must work: memcached is healthy. */
static void set_get(const char *key, const char *value)
{
	int fd = conn();
	char *cmd = tl_strdupf("set %s 0 0 %zu\r\n%s\r\nget %s\r\n", key, strlen(value), value, key);
	cr_assert_eq(tl_write_str(fd, cmd, 2000), 0);
	char line[256];
	cr_assert_gt(tl_read_line(fd, line, sizeof line, 2000), 0);
	cr_assert_str_eq(line, "STORED\r\n");
	cr_assert_gt(tl_read_line(fd, line, sizeof line, 2000), 0);
	cr_assert(!strncmp(line, "VALUE ", 6), "%s", line);
	size_t len = strlen(value);
	char *got = calloc(1, len + 3);
	cr_assert_eq(tl_read_n(fd, got, len + 2, 5000), (ssize_t)(len + 2));
	cr_assert(!memcmp(got, value, len) && !memcmp(got + len, "\r\n", 2), "%s: wrong value", key);
	free(got);
	free(cmd);
	close(fd);
}

/* One client that leaves, in one of six ways. */
static void leave(int how)
{
	int fd = conn();
	char line[256];
	switch (how % 3) {
	case 0: /* after a complete reply */
		cr_assert_eq(tl_write_str(fd, "set k 0 0 1\r\nx\r\n", 2000), 0);
		cr_assert_gt(tl_read_line(fd, line, sizeof line, 2000), 0);
		break;
	case 1: /* mid-request: half a value */
		cr_assert_eq(tl_write_str(fd, "set half 0 0 100000\r\nxxxxxxxxxx", 2000), 0);
		break;
	case 2: /* mid-response: a big value not read */
		cr_assert_eq(tl_write_str(fd, "get big\r\n", 2000), 0);
		cr_assert_gt(tl_read_some(fd, line, sizeof line, 2000), 0);
		break;
	}
	if (how % 2)
		tl_abort(fd);
	else
		close(fd);
}

Test(servers, memcached_aborting_clients_under_load)
{
	cr_assert_eq(access(MEMCACHED, X_OK), 0, MEMCACHED " missing (package memcached)");
	cr_assert_eq(access(MEMCASLAP, X_OK), 0, MEMCASLAP " missing (package libmemcached-tools)");
	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *p = tl_strdupf("%d", port);
	const char *argv[] = { MEMCACHED, "-u", "nobody", "-l", "127.0.0.1", "-p", p, "-U", "0",
			       "-t", "4", "-m", "64", NULL };
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	struct tl_ready ready = { .port = port, .timeout_ms = 10000 };
	char *why;
	mc = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	cr_assert_not_null(mc, "%s", why);

	char *big = malloc(BIG_LEN + 1);
	memset(big, 'b', BIG_LEN);
	big[BIG_LEN] = 0;
	set_get("big", big);

	/* memcaslap: 4 connections, one per worker thread, 3 s. */
	char *servers = tl_strdupf("--servers=127.0.0.1:%d", port);
	const char *sargv[] = { MEMCASLAP, servers, "--time=3s", "--concurrency=4", NULL };
	slap = tl_spawn(sargv, NULL, 0);
	cr_assert_not_null(slap, "spawn memcaslap: %s", strerror(errno));
	unsigned left = 0;
	uint64_t t0 = tl_now_ns();
	while (tl_now_ns() - t0 < 2500000000ull)
		leave(left++);
	int st = tl_proc_wait(slap, 20000);
	char *out = tl_proc_stdout(slap), *serr = tl_proc_stderr(slap);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "memcaslap status %#x\n%s\n%s",
		  st, out, serr);
	char *summary = tl_find_line(out, "Run time:");
	cr_assert_not_null(summary, "memcaslap printed no summary:\n%s\n%s", out, serr);
	cr_assert_null(strcasestr(serr, "error"), "memcaslap: %s", serr);
	set_get("after", "still-here");

	st = tl_proc_stop(mc, SIGTERM, 5000);
	char *err = tl_proc_stderr(mc);
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "the shim is not active");
	size_t delivered = tl_count(err, "cancel conn="), failed = tl_count(err, "ECANCELED");
	cr_log_info("memcached: memcaslap %s; %u clients left; %zu cancel signals delivered, %zu "
		    "calls failed",
		    summary, left, delivered, failed);
	cr_assert_gt(left, 100);
	cr_assert_eq(failed, 0, "memcached calls failed with ECANCELED:\n%s", err);
	if (getenv("CS_STRICT_EVENT_LOOPS"))
		cr_assert_eq(delivered, 0, "%zu cancels delivered to memcached's event loops",
			     delivered);
	cr_assert(WIFEXITED(st) || (WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM), "status %#x", st);
	free(err);
	free(out);
	free(serr);
	free(summary);
	free(servers);
	free(big);
	free(p);
}

/* testlib checks itself: spawning and following output, the environment the
 * child gets, sockets with RST, and the slow upstream. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

Test(testlib, spawn_follows_lines_and_stderr)
{
	const char *argv[] = { "/bin/sh", "-c",
			       "echo one; echo \"v=$TL_X\" >&2; echo two; echo \"pre=$LD_PRELOAD\"; exit 3",
			       NULL };
	const char *env[] = { "TL_X=42", NULL };
	struct tl_proc *p = tl_spawn(argv, env, 0);
	cr_assert_not_null(p);
	char *l = tl_proc_wait_line(p, "two", 2000);
	cr_assert_str_eq(l, "two");
	free(l);
	l = tl_proc_wait_line(p, "one", 2000); /* already consumed: EOF, no match */
	cr_assert_null(l);
	cr_assert(tl_proc_wait_stderr(p, "v=42", 2000));
	int st = tl_proc_wait(p, 2000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status %#x", st);
	char *out = tl_proc_stdout(p);
	cr_assert_eq(tl_count(out, "\n"), 3);
	free(out);
	tl_proc_free(p);
}

Test(testlib, shim_flag_appends_preload)
{
	setenv("CS_SHIM", "/nonexistent/libfake.so", 1);
	setenv("LD_PRELOAD", "", 1);
	const char *argv[] = { "/bin/sh", "-c", "echo \"pre=$LD_PRELOAD\"", NULL };
	const char *env[] = { "LD_PRELOAD=/a.so", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	cr_assert_not_null(p);
	char *l = tl_proc_wait_line(p, "pre=", 2000);
	cr_assert_str_eq(l, "pre=/a.so:/nonexistent/libfake.so");
	free(l);
	tl_proc_free(p);
}

Test(testlib, stop_kills_a_silent_process)
{
	const char *argv[] = { "/bin/sleep", "30", NULL };
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	cr_assert_not_null(p);
	cr_assert_eq(tl_proc_wait(p, 50), -1);
	uint64_t t0 = tl_now_ns();
	int st = tl_proc_stop(p, SIGTERM, 2000);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	cr_assert_lt(tl_now_ns() - t0, 1000000000u);
	tl_proc_free(p);
}

Test(testlib, abort_sends_rst)
{
	int port;
	int lfd = tl_listen_tcp("127.0.0.1", 0, &port);
	cr_assert_geq(lfd, 0);
	int c = tl_connect_tcp("127.0.0.1", port, 1000);
	cr_assert_geq(c, 0);
	int s = tl_accept(lfd, 1000);
	cr_assert_geq(s, 0);
	tl_write_str(c, "hello\n", 1000);
	char line[32];
	cr_assert_eq(tl_read_line(s, line, sizeof line, 1000), 6);
	cr_assert_str_eq(line, "hello\n");
	tl_abort(c);
	char b;
	ssize_t n = tl_read_some(s, &b, 1, 1000);
	cr_assert(n < 0 && errno == ECONNRESET, "n=%zd errno=%d", n, errno);
	close(s);
	close(lfd);
}

Test(testlib, ipv6_and_unix)
{
	int port;
	int lfd = tl_listen_tcp("::1", 0, &port);
	if (lfd >= 0) {
		int c = tl_connect_tcp("::1", port, 1000);
		cr_assert_geq(c, 0);
		close(c);
		close(lfd);
	}
	char *dir = tl_tmpdir("testlib");
	cr_assert_not_null(dir);
	char *path = tl_strdupf("%s/sock", dir);
	lfd = tl_listen_unix(path);
	cr_assert_geq(lfd, 0);
	int c = tl_connect_unix(path, 1000);
	cr_assert_geq(c, 0);
	int s = tl_accept(lfd, 1000);
	cr_assert_geq(s, 0);
	close(s);
	close(c);
	close(lfd);
	cr_assert_eq(tl_rmtree(dir), 0);
	cr_assert_neq(access(dir, F_OK), 0);
	free(path);
	free(dir);
}

Test(testlib, upstream_answers_after_delay)
{
	struct tl_upstream *u = tl_upstream_start(50);
	cr_assert_not_null(u);
	int c = tl_connect_tcp("127.0.0.1", tl_upstream_port(u), 1000);
	uint64_t t0 = tl_now_ns();
	tl_write_str(c, "x\n", 1000);
	char line[32];
	cr_assert_gt(tl_read_line(c, line, sizeof line, 2000), 0);
	cr_assert_str_eq(line, "ok x\n");
	cr_assert_geq(tl_now_ns() - t0, 50000000u);
	cr_assert_eq(tl_upstream_requests(u), 1);
	close(c);
	tl_upstream_stop(u);
}

Test(testlib, text_helpers)
{
	cr_assert_eq(tl_count("a cancel conn=1\nb cancel conn=2\n", "cancel conn="), 2);
	cr_assert_eq(tl_count("", "x"), 0);
	char *l = tl_find_line("first\nsecond hit\nthird", "hit");
	cr_assert_str_eq(l, "second hit");
	free(l);
}

Test(testlib, upstream_next_call_waits_for_the_call_after_the_last)
{
	struct tl_upstream *u = tl_upstream_start(0);
	cr_assert_not_null(u);
	int c = tl_connect_tcp("127.0.0.1", tl_upstream_port(u), 1000);
	char line[32];
	/* Each call answered before the next: the upstream has them all. */
	tl_write_str(c, "A 1\n", 1000);
	cr_assert_gt(tl_read_line(c, line, sizeof line, 2000), 0);
	tl_write_str(c, "A 2\n", 1000);
	cr_assert_gt(tl_read_line(c, line, sizeof line, 2000), 0);
	/* A call already made is not the next one: A 3 never comes. (The
	 * servers tests see it come: their handler makes it meanwhile.) */
	cr_assert_eq(tl_upstream_next_call(u, "A", 100), 0);
	cr_assert_eq(tl_upstream_next_call(u, "B", 100), 0);
	close(c);
	tl_upstream_stop(u);
}

Test(testlib, server_start_waits_for_every_sign_of_readiness)
{
	/* A server that logs, then listens, then says so on stdout. */
	char *dir = tl_tmpdir("tl-server");
	cr_assert_not_null(dir);
	char *log = tl_strdupf("%s/server.log", dir);
	int port = tl_free_port();
	cr_assert_gt(port, 0);
	char *script = tl_strdupf("echo booting >&2; echo ready > %s; sleep 0.2; "
				  "exec python3 -c 'import socket,sys; s=socket.socket(); "
				  "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"127.0.0.1\", %d)); "
				  "s.listen(); print(\"listening port=%d\", flush=True); sys.stdin.read(); s.accept()'",
				  log, port, port);
	const char *argv[] = { "/bin/sh", "-c", script, NULL };
	struct tl_ready ready = { .file = log, .file_text = "ready", .err_text = "booting", .out_line = "listening",
				  .port = port, .timeout_ms = 10000 };
	char *line, *why;
	struct tl_proc *p = tl_server_start(argv, NULL, 0, &ready, &line, &why);
	cr_assert_not_null(p, "%s", why);
	cr_assert_null(why);
	long long got;
	cr_assert_eq(tl_field(line, "port", &got), 0, "%s", line);
	cr_assert_eq(got, port);
	free(line);
	tl_proc_free(p);
	tl_cleanup_dir(dir);
}

Test(testlib, server_start_says_what_never_came)
{
	char *dir = tl_tmpdir("tl-server");
	cr_assert_not_null(dir);
	char *log = tl_write_in(dir, "server.log", "bad config\n", 11);
	cr_assert_not_null(log);
	const char *argv[] = { "/bin/sh", "-c", "echo cannot bind >&2; exit 1", NULL };
	struct tl_ready ready = { .out_line = "listening", .timeout_ms = 2000, .log = log };
	char *line = (char *)"unset", *why;
	struct tl_proc *p = tl_server_start(argv, NULL, 0, &ready, &line, &why);
	cr_assert_null(p);
	cr_assert_null(line);
	cr_assert_not_null(why);
	cr_assert(strstr(why, "waiting for listening"), "%s", why);
	cr_assert(strstr(why, "cannot bind"), "the server's stderr: %s", why);
	cr_assert(strstr(why, "bad config"), "the log: %s", why);
	char *text = tl_read_in(dir, "server.log");
	cr_assert_str_eq(text, "bad config\n");
	free(text);
	text = tl_wait_file_line(log, "config", 1000);
	cr_assert_str_eq(text, "bad config");
	free(text);
	cr_assert_null(tl_wait_file_line(log, "listening", 50));
	text = tl_read_in(dir, "absent");
	cr_assert_str_eq(text, "");
	free(text);
	free(why);
	tl_cleanup_dir(dir);
}

Test(testlib, pattern_is_letters_decided_by_the_seed)
{
	char *a = tl_pattern(1000, 1), *b = tl_pattern(1000, 1), *c = tl_pattern(1000, 2);
	cr_assert_eq(memcmp(a, b, 1000), 0);
	cr_assert_neq(memcmp(a, c, 1000), 0);
	for (int i = 0; i < 1000; i++)
		cr_assert(a[i] >= 'a' && a[i] <= 'z');
	free(a);
	free(b);
	free(c);
}

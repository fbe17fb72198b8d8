/* PostgreSQL 15 (Debian's /usr/lib/postgresql/15) under the shim. The
 * postmaster accepts and forks a backend per connection; the backend inherits
 * the client socket and the shim tracks it across the fork. A client running
 * a long query goes away: its backend must stop within 300 ms, the cluster
 * must stay healthy (no crash-restart) and the other sessions untouched.
 *
 * The client is a raw socket speaking the simple protocol (pg_wire.c), so the
 * test decides exactly when and how (FIN or RST) it leaves, and learns the
 * backend's pid from BackendKeyData. "Stopped" means the pid is gone or a
 * zombie (the postmaster has not reaped it yet). The server runs as the
 * unprivileged user "postgres" when the test runs as root (postgres refuses
 * root). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_wire.h"
#include "shim_check.h"
#include "testlib.h"

#define PGBIN "/usr/lib/postgresql/15/bin"
#define STOP_BUDGET_MS 300
/* A CPU-bound backend competes for the CPU with its own watcher thread:
 * ~10 ms on an idle machine, seen at 330 ms with a load of 6 on 2 cores.
 * Still three orders below the query's own length (minutes), which is what
 * it runs without the profile. */
#define CPU_STOP_BUDGET_MS 1000

static char *dir;
static struct tl_proc *pg;
static int port;
static char *sockpath; /* the unix socket PostgreSQL creates in dir */

static void stop_cluster(void)
{
	if (pg)
		tl_proc_stop(pg, SIGINT, 10000); /* fast shutdown */
	tl_proc_free(pg);
	pg = NULL;
	if (dir)
		tl_cleanup_dir(dir);
}

TestSuite(servers, .timeout = 90, .fini = stop_cluster);

/* argv prefix that drops root for postgres; empty when not root. */
static int as_postgres(const char **argv)
{
	if (geteuid() != 0)
		return 0;
	argv[0] = "/usr/bin/setpriv";
	argv[1] = "--reuid=postgres";
	argv[2] = "--regid=postgres";
	argv[3] = "--clear-groups";
	/* In mode ebpf the server keeps what loading the program needs
	 * (ambient, so the exec of postgres inherits it); without it the
	 * shim falls back to epoll and mode ebpf would go untested. */
	const char *mode = getenv("CANCELSHIM_MODE");
	if (mode && !strcmp(mode, "ebpf")) {
		argv[4] = "--inh-caps=+bpf,+perfmon";
		argv[5] = "--ambient-caps=+bpf,+perfmon";
		return 6;
	}
	return 4;
}

/* profile: CANCELSHIM_PROFILE for the server, or NULL to leave it unset
 * (auto: the postgresql profile, the executable being "postgres"). */
static void start_cluster_with(const char *profile)
{
	cr_assert_eq(access(PGBIN "/postgres", X_OK), 0, PGBIN "/postgres missing (postgresql-15)");
	dir = tl_tmpdir("pg");
	cr_assert_not_null(dir);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		cr_assert_not_null(pw, "no user postgres (package postgresql-15 creates it)");
		cr_assert_eq(chown(dir, pw->pw_uid, pw->pw_gid), 0);
	}
	char *data = tl_strdupf("%s/data", dir);

	const char *argv[24];
	int n = as_postgres(argv);
	argv[n++] = PGBIN "/initdb";
	argv[n++] = "-D";
	argv[n++] = data;
	argv[n++] = "-A";
	argv[n++] = "trust";
	argv[n++] = "-U";
	argv[n++] = "postgres";
	argv[n++] = "--no-sync";
	argv[n++] = "--no-instructions";
	argv[n++] = "-E";
	argv[n++] = "UTF8";
	argv[n++] = "--locale=C";
	argv[n] = NULL;
	struct tl_proc *init = tl_spawn(argv, NULL, 0);
	cr_assert_not_null(init, "spawn initdb: %s", strerror(errno));
	int st = tl_proc_wait(init, 60000);
	char *out = tl_proc_stderr(init);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "initdb failed (%#x):\n%s", st,
		  out);
	free(out);
	tl_proc_free(init);

	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *portstr = tl_strdupf("%d", port);
	char *sockopt = tl_strdupf("unix_socket_directories=%s", dir);
	sockpath = tl_strdupf("%s/.s.PGSQL.%d", dir, port);
	n = as_postgres(argv);
	const char *rest[] = { PGBIN "/postgres", "-D", data, "-p", portstr,
			       "-c", "listen_addresses=127.0.0.1", "-c", sockopt,
			       "-c", "fsync=off", "-c", "logging_collector=off",
			       "-c", "log_min_messages=info", NULL };
	for (int i = 0; rest[i]; i++)
		argv[n++] = rest[i];
	argv[n] = NULL;
	char *profile_env = profile ? tl_strdupf("CANCELSHIM_PROFILE=%s", profile) : NULL;
	const char *env[] = { "CANCELSHIM_LOG=debug", profile_env, NULL };
	struct tl_ready ready = { .err_text = "database system is ready to accept connections", .timeout_ms = 30000 };
	char *why;
	pg = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	free(profile_env);
	cr_assert_not_null(pg, "%s", why);
	free(data);
	free(portstr);
	free(sockopt);
}

static void start_cluster(void)
{
	start_cluster_with(NULL);
}

static void open_or_fail(struct pg_conn *c, bool unix_socket)
{
	cr_assert_eq(pg_open(c, unix_socket ? sockpath : NULL, port, 5000), 0, "connect: %s",
		     c->err);
	cr_assert_gt(c->backend_pid, 0);
}

/* 'R', 'S'... from /proc/PID/stat; 0 if the process is gone. */
static char proc_state(int pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command may contain spaces */
	return p && p[1] == ' ' ? p[2] : 0;
}

static bool stopped(int pid)
{
	char s = proc_state(pid);
	return s == 0 || s == 'Z' || s == 'X';
}

/* Milliseconds until pid stops, polling every millisecond; -1 after limit. */
static double ms_until_stopped(int pid, uint64_t since, int limit_ms)
{
	while (!stopped(pid)) {
		if (tl_now_ns() - since > (uint64_t)limit_ms * 1000000)
			return -1;
		usleep(1000);
	}
	return (tl_now_ns() - since) / 1e6;
}

/* Poll pg_stat_activity (from the monitor session) until the backend pid is
 * running the query and, if wait_event is given, waiting in it. */
static void wait_activity(struct pg_conn *mon, int pid, const char *wait_event)
{
	char sql[256], v[64];
	snprintf(sql, sizeof sql,
		 "select coalesce(state,'') || '/' || coalesce(wait_event,'') "
		 "from pg_stat_activity where pid = %d",
		 pid);
	char want[64];
	snprintf(want, sizeof want, "active/%s", wait_event ? wait_event : "");
	uint64_t t0 = tl_now_ns();
	for (;;) {
		cr_assert_eq(pg_query(mon, sql, v, sizeof v, 5000), 0, "monitor: %s", mon->err);
		if (wait_event ? !strcmp(v, want) : !strncmp(v, "active/", 7))
			return;
		cr_assert_lt(tl_now_ns() - t0, 10000000000ull, "backend %d never reached %s (last %s)",
			     pid, want, v);
		usleep(2000);
	}
}

/* Nothing in the log says the postmaster lost a child abnormally or
 * reinitialised; the cluster still answers a new session. */
static void assert_healthy(void)
{
	struct pg_conn c;
	open_or_fail(&c, false);
	char v[32];
	cr_assert_eq(pg_query(&c, "select 6*7", v, sizeof v, 5000), 0, "%s", c.err);
	cr_assert_str_eq(v, "42");
	pg_close(&c);
	char *log = tl_proc_stderr(pg);
	static const char *bad[] = { "terminated by signal", "exited with exit code",
				     "was terminated", "PANIC", "all server processes terminated",
				     "reinitializing", "database system was interrupted", NULL };
	for (int i = 0; bad[i]; i++) {
		char *line = tl_find_line(log, bad[i]);
		cr_assert_null(line, "postgres log: %s", line);
	}
	cr_assert(strstr(log, SHIM_ACTIVE_MARK), "the shim's start line is missing: was it loaded?");
	free(log);
}

/* The client stays: results are complete and correct, and its backend saw no
 * cancel while the client was connected. */
static void assert_stayer(struct pg_conn *b, uint64_t sent_ns)
{
	char v[64];
	cr_assert_eq(pg_result(b, v, sizeof v, 20000), 0, "staying session: %s", b->err);
	cr_assert_str_eq(v, "B");
	cr_assert_geq(tl_now_ns() - sent_ns, 1000000000ull, "pg_sleep(1) returned early");
	cr_assert_eq(pg_query(b, "select count(*) from generate_series(1, 1000000)", v, sizeof v,
			      20000),
		     0, "%s", b->err);
	cr_assert_str_eq(v, "1000000");
	char *log = tl_proc_stderr(pg);
	char mark[64];
	snprintf(mark, sizeof mark, "cancelshim[%d]: debug: cancel", b->backend_pid);
	cr_assert_null(strstr(log, mark), "the staying session's backend was cancelled:\n%s", log);
	snprintf(mark, sizeof mark, "[%d] ERROR", b->backend_pid);
	cr_assert_null(strstr(log, mark), "the staying session got an error:\n%s", log);
	free(log);
}

static void pg_sleep_client_leaves(bool unix_socket, bool rst)
{
	start_cluster();
	struct pg_conn mon, a, b;
	open_or_fail(&mon, true);
	open_or_fail(&b, unix_socket);
	open_or_fail(&a, unix_socket);

	uint64_t b_sent = tl_now_ns();
	cr_assert_eq(pg_send(&b, "select 'B' from pg_sleep(1)", 2000), 0);
	cr_assert_eq(pg_send(&a, "select pg_sleep(20)", 2000), 0);
	wait_activity(&mon, a.backend_pid, "PgSleep");

	uint64_t t0 = tl_now_ns();
	if (rst)
		tl_abort(a.fd);
	else
		close(a.fd);
	double ms = ms_until_stopped(a.backend_pid, t0, 5000);
	cr_log_info("%s%s: backend stopped %.1f ms after the client left", unix_socket ? "unix" : "tcp",
		    rst ? " rst" : " close", ms);
	char *log = ms < 0 || ms > STOP_BUDGET_MS ? tl_proc_stderr(pg) : NULL;
	cr_assert_geq(ms, 0, "backend %d still running 5 s after its client left:\n%s",
		      a.backend_pid, log);
	cr_assert_leq(ms, STOP_BUDGET_MS, "backend took %.1f ms to stop:\n%s", ms, log);

	/* It stopped through PostgreSQL's own error path. */
	char mark[64];
	snprintf(mark, sizeof mark, "[%d] FATAL:  connection to client lost", a.backend_pid);
	cr_assert(tl_proc_wait_stderr(pg, mark, 2000), "no '%s' in the log", mark);

	/* B's pg_sleep(1) ran through all of this and ends normally. */
	assert_stayer(&b, b_sent);
	pg_close(&b);
	pg_close(&mon);
	assert_healthy();
}

Test(servers, postgres_pg_sleep_tcp_client_close)
{
	pg_sleep_client_leaves(false, false);
}

Test(servers, postgres_pg_sleep_tcp_client_rst)
{
	pg_sleep_client_leaves(false, true);
}

Test(servers, postgres_pg_sleep_unix_client_close)
{
	pg_sleep_client_leaves(true, false);
}

/* Without a profile (CANCELSHIM_PROFILE=none), a CPU-bound query makes no
 * blocking call the shim could fail: the backend works on until the query
 * ends (or until it next talks to the client), and only then notices the
 * client is gone. PostgreSQL's own client_connection_check_interval stops it
 * during the work; under the shim it still does, and the two do not get in
 * each other's way. */
static double cpu_query_client_leaves(const char *interval)
{
	struct pg_conn mon, a;
	open_or_fail(&mon, true);
	open_or_fail(&a, false);
	char sql[128];
	snprintf(sql, sizeof sql, "set client_connection_check_interval = %s", interval);
	cr_assert_eq(pg_query(&a, sql, NULL, 0, 5000), 0, "%s", a.err);
	cr_assert_eq(pg_send(&a, "select sum(g) from generate_series(1, 10000000) g", 2000), 0);
	wait_activity(&mon, a.backend_pid, NULL);
	uint64_t t0 = tl_now_ns();
	close(a.fd);
	double ms = ms_until_stopped(a.backend_pid, t0, 30000);
	cr_assert_geq(ms, 0, "backend %d still running 30 s after its client left", a.backend_pid);
	/* With the check, PostgreSQL says why it stopped; without, the
	 * backend finishes, sends its result into the void, reads EOF and
	 * exits without a word. */
	char mark[64];
	snprintf(mark, sizeof mark, "[%d] FATAL:  connection to client lost", a.backend_pid);
	char *log = strcmp(interval, "0") == 0 || tl_proc_wait_stderr(pg, mark, 2000)
			    ? NULL
			    : tl_proc_stderr(pg);
	cr_assert_null(log, "no '%s' in the log:\n%s", mark, log);
	pg_close(&mon);
	return ms;
}

Test(servers, postgres_cpu_query_client_close)
{
	start_cluster_with("none");
	/* How long the query takes with its client staying, for reference. */
	struct pg_conn b;
	open_or_fail(&b, false);
	char v[64];
	uint64_t t0 = tl_now_ns();
	cr_assert_eq(pg_query(&b, "select sum(g) from generate_series(1, 10000000) g", v, sizeof v,
			      30000),
		     0, "%s", b.err);
	double alone = (tl_now_ns() - t0) / 1e6;
	cr_assert_str_eq(v, "50000005000000");
	pg_close(&b);

	double off = cpu_query_client_leaves("0");
	double checked = cpu_query_client_leaves("100");
	cr_log_info("cpu query (%.0f ms alone): backend stopped %.0f ms after the client left with "
		    "client_connection_check_interval off, %.0f ms with 100 ms",
		    alone, off, checked);
	cr_assert_lt(checked, 1000, "with client_connection_check_interval = 100 ms the backend "
		     "took %.0f ms to stop", checked);
	assert_healthy();
}

/* ---- the postgresql profile: CPU-bound queries ---------------------------- */

/* Computes for minutes without a single blocking call: a set-returning
 * function in the target list is evaluated row by row (in FROM it would be
 * materialised into a temporary file first). */
#define CPU_QUERY "select count(*) from (select generate_series(1, 2000000000)) s"

/* The session mon watches from stays; idle also stays, connected and idle
 * through it all, and must still answer. */
static void cpu_query_profile(bool unix_socket, bool rst)
{
	start_cluster();
	struct pg_conn mon, a, b, idle;
	open_or_fail(&mon, true);
	open_or_fail(&idle, unix_socket);
	open_or_fail(&b, unix_socket);
	open_or_fail(&a, unix_socket);

	uint64_t b_sent = tl_now_ns();
	cr_assert_eq(pg_send(&b, "select 'B' from pg_sleep(1)", 2000), 0);
	cr_assert_eq(pg_send(&a, CPU_QUERY, 2000), 0);
	wait_activity(&mon, a.backend_pid, NULL);
	usleep(300000); /* well into its work, no call in sight */
	cr_assert_neq(stopped(a.backend_pid), true);

	uint64_t t0 = tl_now_ns();
	if (rst)
		tl_abort(a.fd);
	else
		close(a.fd);
	double ms = ms_until_stopped(a.backend_pid, t0, 5000);
	cr_log_info("%s%s: CPU-bound backend stopped %.1f ms after the client left",
		    unix_socket ? "unix" : "tcp", rst ? " rst" : " close", ms);
	char *log = ms < 0 || ms > CPU_STOP_BUDGET_MS ? tl_proc_stderr(pg) : NULL;
	cr_assert_geq(ms, 0, "CPU-bound backend %d still running 5 s after its client left:\n%s",
		      a.backend_pid, log);
	cr_assert_leq(ms, CPU_STOP_BUDGET_MS, "CPU-bound backend took %.1f ms to stop:\n%s", ms, log);

	/* It stopped the way pg_cancel_backend() stops a statement. */
	char mark[96];
	snprintf(mark, sizeof mark, "[%d] ERROR:  canceling statement due to user request",
		 a.backend_pid);
	cr_assert(tl_proc_wait_stderr(pg, mark, 2000), "no '%s' in the log", mark);
	snprintf(mark, sizeof mark, "cancelshim[%d]: debug: profile postgresql: SIGINT",
		 a.backend_pid);
	cr_assert(tl_proc_wait_stderr(pg, mark, 2000), "no '%s' in the log", mark);
	/* The client was watched from the binding. In mode ebpf the postmaster
	 * (it keeps CAP_BPF) runs the eBPF watcher; a backend, a fork child,
	 * watches its inherited client with epoll (shim/policy/lifecycle.c). */
	const char *mode = getenv("CANCELSHIM_MODE");
	snprintf(mark, sizeof mark, "cancelshim[%d]: debug: watch conn=", a.backend_pid);
	log = tl_proc_stderr(pg);
	cr_assert(strstr(log, mark), "the client of %d was never watched:\n%s", a.backend_pid, log);
	cr_assert(!mode || strcmp(mode, "ebpf") || strstr(log, "info: eBPF watcher attached"),
		  "mode ebpf, but the postmaster did not attach the eBPF watcher:\n%s", log);
	free(log);

	assert_stayer(&b, b_sent);
	char v[32];
	cr_assert_eq(pg_query(&idle, "select 'still here'", v, sizeof v, 5000), 0, "%s", idle.err);
	cr_assert_str_eq(v, "still here");
	log = tl_proc_stderr(pg);
	snprintf(mark, sizeof mark, "[%d] ERROR", idle.backend_pid);
	cr_assert_null(strstr(log, mark), "the idle session got an error:\n%s", log);
	free(log);
	pg_close(&idle);
	pg_close(&b);
	pg_close(&mon);
	assert_healthy();
}

Test(servers, postgres_cpu_query_profile_tcp_client_close)
{
	cpu_query_profile(false, false);
}

Test(servers, postgres_cpu_query_profile_tcp_client_rst)
{
	cpu_query_profile(false, true);
}

Test(servers, postgres_cpu_query_profile_unix_client_close)
{
	cpu_query_profile(true, false);
}

/* CANCELSHIM_PROFILE=none: the same query runs on after its client left
 * (what every CPU-bound query did before the profile). */
Test(servers, postgres_cpu_query_runs_on_without_profile)
{
	start_cluster_with("none");
	struct pg_conn mon, a;
	open_or_fail(&mon, true);
	open_or_fail(&a, false);
	cr_assert_eq(pg_send(&a, CPU_QUERY, 2000), 0);
	wait_activity(&mon, a.backend_pid, NULL);
	usleep(100000);
	close(a.fd);
	double ms = ms_until_stopped(a.backend_pid, tl_now_ns(), 1000);
	cr_assert_lt(ms, 0, "without the profile the backend stopped %.1f ms after its client left", ms);
	char *log = tl_proc_stderr(pg);
	char mark[96];
	snprintf(mark, sizeof mark, "cancelshim[%d]: debug: profile", a.backend_pid);
	cr_assert_null(strstr(log, mark), "profile none sent a signal:\n%s", log);
	free(log);
	char sql[96];
	snprintf(sql, sizeof sql, "select pg_terminate_backend(%d)", a.backend_pid);
	cr_assert_eq(pg_query(&mon, sql, NULL, 0, 5000), 0, "%s", mon.err);
	cr_assert_geq(ms_until_stopped(a.backend_pid, tl_now_ns(), 5000), 0);
	pg_close(&mon);
	assert_healthy();
}

/* What the profile relies on, checked on the real server: a SIGINT that
 * reaches a backend idle between statements (its query ended just before
 * its client left) is dropped; the session goes on. */
Test(servers, postgres_sigint_to_idle_backend_is_harmless)
{
	start_cluster();
	struct pg_conn a;
	open_or_fail(&a, false);
	char v[32];
	cr_assert_eq(pg_query(&a, "select 1", v, sizeof v, 5000), 0, "%s", a.err);
	cr_assert_eq(kill(a.backend_pid, SIGINT), 0);
	usleep(50000);
	cr_assert_eq(pg_query(&a, "select 'after'", v, sizeof v, 5000), 0, "%s", a.err);
	cr_assert_str_eq(v, "after");
	pg_close(&a);
	assert_healthy();
}

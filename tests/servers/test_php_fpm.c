/* PHP-FPM (Debian's php8.2-fpm, static pool of 2 workers, each serving one
 * request at a time) behind nginx over FastCGI on a unix socket; both run
 * under the shim. When the browser leaves, nginx (fastcgi_ignore_client_abort
 * off, its default) closes the FastCGI connection, and the shim in the PHP
 * worker fails the script's blocking calls: a slow upstream read returns
 * false at once, sleep() returns early. By default PHP would run the script
 * to its end for nobody. Another client, meanwhile, gets its full answer..
 *
 * The upstream calls are made three ways: PHP's own streams (slow.php), and
 * two shared extensions PHP loads with dlopen(RTLD_DEEPBIND), whose libc
 * calls bind to libc, not to the preloaded shim, until the shim's dlopen
 * hook rebinds them: ext/sockets (sockets.php) and ext/curl with libcurl
 * (curl.php). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http_client.h"
#include "nginx_conf.h"
#include "shim_check.h"
#include "slow_client.h"
#include "testlib.h"

#define FPM "/usr/sbin/php-fpm8.2"
#define CALLS 15
#define UPSTREAM_DELAY_MS 100
#define CANCEL_BUDGET_NS (100 * 1000000ull)

static char *dir, *events;
static struct tl_upstream *up;
static struct tl_proc *fpm, *nginx, *pg;
static char *pgdir;
static int pgport;
static int port;

static void stop_all(void)
{
	if (pg)
		tl_proc_stop(pg, SIGQUIT, 10000);	/* immediate shutdown */
	tl_proc_free(pg);
	if (pgdir)
		tl_cleanup_dir(pgdir);
	tl_proc_free(nginx);
	tl_proc_free(fpm);
	tl_upstream_stop(up);
	if (dir)
		tl_cleanup_dir(dir);
}

TestSuite(servers, .timeout = 60, .fini = stop_all);

static void start(void)
{
	cr_assert_eq(access(FPM, X_OK), 0, FPM " missing (package php8.2-fpm)");
	dir = tl_tmpdir("php-fpm");
	cr_assert_not_null(dir);
	events = tl_strdupf("%s/events.log", dir);
	cr_assert_eq(tl_write_file(events, "", 0), 0);
	up = tl_upstream_start(UPSTREAM_DELAY_MS);
	cr_assert_not_null(up);

	char *fconf = tl_strdupf("[global]\n"
				 "pid = %1$s/fpm.pid\n"
				 "error_log = %1$s/fpm.log\n"
				 "log_level = notice\n"
				 "daemonize = no\n"
				 "[www]\n"
				 "listen = %1$s/fpm.sock\n"
				 "pm = static\n"
				 "pm.max_children = 2\n"
				 "catch_workers_output = yes\n",
				 dir);
	char *fpath = tl_write_in(dir, "php-fpm.conf", fconf, strlen(fconf)), *why;
	cr_assert_not_null(fpath);
	/* -R: the test runs as root; -n: no php.ini, PHP's defaults. */
	/* The two extensions the scripts use, loaded as Debian's php.ini
	 * would: shared objects, with RTLD_DEEPBIND. */
	const char *fargv[] = { FPM, "-F", "-R", "-n", "-d", "extension=sockets", "-d", "extension=curl",
				"-d", "extension=pdo", "-d", "extension=pdo_pgsql", "-y", fpath, NULL };
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	char *fpmlog = tl_strdupf("%s/fpm.log", dir);
	struct tl_ready fready = { .file = fpmlog, .file_text = "ready to handle connections", .timeout_ms = 15000,
				   .log = fpmlog };
	fpm = tl_server_start(fargv, env, TL_SHIM, &fready, NULL, &why);
	cr_assert_not_null(fpm, "%s", why);

	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *root = tl_source_path("tests/servers/php");
	char *nconf = tl_strdupf(
		NGINX_CONF_HEAD("1", "256")
		"  access_log %1$s/access.log;\n"
		"  server {\n"
		"    listen 127.0.0.1:%2$d;\n"
		"    root %3$s;\n"
		"    location ~ \\.php$ {\n"
		"      fastcgi_pass unix:%1$s/fpm.sock;\n"
		"      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n"
		"      fastcgi_param QUERY_STRING $query_string;\n"
		"      fastcgi_param REQUEST_METHOD $request_method;\n"
		"      fastcgi_param EVENTS %4$s;\n"
		"      fastcgi_param UPSTREAM_PORT %5$d;\n"
		"    }\n"
		"  }\n"
		"}\n",
		dir, port, root, events, tl_upstream_port(up));
	nginx = nginx_start(dir, nconf, port, env);
	free(fconf);
	free(fpath);
	free(fpmlog);
	free(root);
	free(nconf);
}

/* PostgreSQL 15 for the pdo_pgsql test, not under the shim (what is tested
 * is the PHP worker's libpq): initdb and postgres as the user postgres. */
#define PGBIN "/usr/lib/postgresql/15/bin"
static void start_postgres(void)
{
	cr_assert_eq(access(PGBIN "/postgres", X_OK), 0, PGBIN "/postgres missing (postgresql-15)");
	struct passwd *pw = getpwnam("postgres");
	cr_assert_not_null(pw, "no user postgres (package postgresql-15 creates it)");
	pgdir = tl_tmpdir("php-pg");
	cr_assert_not_null(pgdir);
	cr_assert_eq(chown(pgdir, pw->pw_uid, pw->pw_gid), 0);
	char *data = tl_strdupf("%s/data", pgdir);
	const char *init[] = { "/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
			       PGBIN "/initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync",
			       "--no-instructions", "-E", "UTF8", "--locale=C", NULL };
	struct tl_proc *p = tl_spawn(init, NULL, 0);
	cr_assert_not_null(p, "spawn initdb: %s", strerror(errno));
	int st = tl_proc_wait(p, 60000);
	char *out = tl_proc_stderr(p);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "initdb failed (%#x):\n%s", st, out);
	free(out);
	tl_proc_free(p);
	pgport = tl_free_port();
	cr_assert_gt(pgport, 0);
	char *portstr = tl_strdupf("%d", pgport), *sockopt = tl_strdupf("unix_socket_directories=%s", pgdir);
	const char *run[] = { "/usr/bin/setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups",
			      PGBIN "/postgres", "-D", data, "-p", portstr, "-c", "listen_addresses=127.0.0.1",
			      "-c", sockopt, "-c", "fsync=off", NULL };
	struct tl_ready ready = { .err_text = "database system is ready to accept connections", .timeout_ms = 30000 };
	char *why;
	pg = tl_server_start(run, NULL, 0, &ready, NULL, &why);
	cr_assert_not_null(pg, "%s", why);
	free(data);
	free(portstr);
	free(sockopt);
}

/* The number of sessions running a query that contains mark (psql). */
static int pg_active(const char *mark)
{
	char *sql = tl_strdupf("select count(*) from pg_stat_activity where state = 'active' and "
			       "query like '%%%s%%' and query not like '%%pg_stat_activity%%'", mark);
	char *portstr = tl_strdupf("%d", pgport);
	const char *argv[] = { "/usr/bin/psql", "-h", "127.0.0.1", "-p", portstr, "-U", "postgres", "-At",
			       "-c", sql, "postgres", NULL };
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	int n = -1;
	if (p && tl_proc_wait(p, 10000) == 0) {
		char *out = tl_proc_stdout(p);
		n = out ? atoi(out) : -1;
		free(out);
	}
	tl_proc_free(p);
	free(sql);
	free(portstr);
	return n;
}

/* php-fpm's master logs what its workers write on stderr (the shim's lines
 * too) into its error_log, quoted. */
static bool fpm_said(const char *text)
{
	char *path = tl_strdupf("%s/fpm.log", dir);
	bool found = tl_wait_file_contains(path, text, 1000);
	free(path);
	return found;
}

static int get(int port, const char *url)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	struct http_conn c;
	http_conn_init(&c, fd);
	cr_assert_eq(http_send_get(&c, url, false, 2000), 0);
	http_conn_free(&c);
	return fd;
}

/* The first line of the events file containing mark, waiting for it. */
static char *event(const char *mark, int timeout_ms)
{
	return tl_wait_file_line(events, mark, timeout_ms);
}

/* After the test: both servers healthy and never harmed where they must not
 * be — nginx never cancelled, no PHP worker died. */
static void assert_healthy(void)
{
	slow_read_ok(slow_send(port, "/slow.php", "C", 1), "C", 1);
	char *log = tl_read_in(dir, "fpm.log");
	cr_assert_null(strstr(log, "exited on signal"), "%s", log);
	cr_assert_null(strstr(log, "exited with code"), "%s", log);
	int st = tl_proc_stop(nginx, SIGQUIT, 10000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "nginx stop status %#x", st);
	char *nerr = tl_proc_stderr(nginx), *nlog = tl_read_in(dir, "error.log");
	char *both = tl_strdupf("%s\n%s", nerr, nlog);
	cr_assert(strstr(both, SHIM_ACTIVE_MARK), "the shim is not active in nginx");
	cr_assert_eq(shim_cancel_marks(both), 0, "nginx was cancelled:\n%s", both);
	char *ferr = tl_proc_stderr(fpm);
	cr_assert(strstr(ferr, SHIM_ACTIVE_MARK), "the shim is not active in php-fpm");
	free(log);
	free(nerr);
	free(nlog);
	free(both);
	free(ferr);
}

static void upstream_client_close(const char *script)
{
	start();
	int a = slow_send(port, script, "A", CALLS);
	cr_assert(tl_upstream_wait(up, "A 2", 5000), "A never reached the upstream");
	int b = slow_send(port, script, "B", CALLS);
	cr_assert(tl_upstream_wait(up, "B 1", 5000), "B never reached the upstream");
	unsigned a_calls = tl_upstream_next_call(up, "A", 5000);
	cr_assert(a_calls, "A's next call never came");
	uint64_t t_close = tl_now_ns();
	close(a);

	char *line = event("error id=A ", 2000);
	char *ev = line ? NULL : tl_read_in(dir, "events.log");
	char *ferr = line ? NULL : tl_proc_stderr(fpm);
	cr_assert_not_null(line, "the script for A saw no error within 2 s\nevents:\n%s\nfpm:\n%s", ev,
			   ferr);
	long long t_err;
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	double ms = ((double)t_err - (double)t_close) / 1e6;
	cr_log_info("php-fpm upstream (%s): script's call failed %.2f ms after the client left (%s)", script, ms,
		    line);
	/* PHP's fgets() just returns false; the shim's log says why. */
	long long pid;
	cr_assert_eq(tl_field(line, "pid", &pid), 0);
	char *mark = tl_strdupf("cancelshim[%lld]: debug: ECANCELED", pid);
	cr_assert(fpm_said(mark), "no '%s' in php-fpm's log", mark);
	free(mark);
	cr_assert_geq((uint64_t)t_err, t_close);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms", ms);
	free(line);

	slow_read_ok(b, "B", CALLS);
	cr_assert_eq(tl_upstream_count(up, "A "), a_calls, "A made %u upstream calls, not %u",
		     tl_upstream_count(up, "A "), a_calls);
	assert_healthy();
}

Test(servers, php_fpm_upstream_client_close)
{
	upstream_client_close("/slow.php");
}

/* ext/sockets: socket_read() of a deep-bound sockets.so. */
Test(servers, php_fpm_sockets_client_close)
{
	upstream_client_close("/sockets.php");
}

/* ext/curl: libcurl's own poll and recv, in a deep-bound curl.so's library. */
Test(servers, php_fpm_curl_client_close)
{
	upstream_client_close("/curl.php");
}

/* pdo_pgsql: libpq waits for the query's answer (its own poll); the client
 * leaves: the query call fails at once with a PDOException. */
Test(servers, php_fpm_pdo_pgsql_client_close)
{
	start_postgres();
	start();
	char *url_a = tl_strdupf("/pgsql.php?id=A&s=20&port=%d", pgport);
	char *url_b = tl_strdupf("/pgsql.php?id=B&s=1&port=%d", pgport);
	int a = get(port, url_a);
	char *line = event("start id=A ", 10000);
	cr_assert_not_null(line, "pgsql.php never connected for A");
	free(line);
	uint64_t t_wait = tl_now_ns();
	while (pg_active("/* A */") != 1 && tl_now_ns() - t_wait < 10000000000ull)
		usleep(20000);
	cr_assert_eq(pg_active("/* A */"), 1, "A's query is not running");
	int b = get(port, url_b);
	uint64_t t_close = tl_now_ns();
	close(a);

	line = event("error id=A ", 2000);
	char *ev = line ? NULL : tl_read_in(dir, "events.log");
	cr_assert_not_null(line, "the query for A did not fail within 2 s\nevents:\n%s", ev);
	long long t_err;
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	double ms = ((double)t_err - (double)t_close) / 1e6;
	cr_log_info("php-fpm pdo_pgsql: the query call failed %.2f ms after the client left (%s)", ms, line);
	cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms", ms);
	free(line);

	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, b);
	cr_assert_eq(http_read_response(&c, &r, 10000), 0, "B: %s", r.err);
	cr_assert_eq(r.status, 200, "B: %d %s", r.status, r.body);
	cr_assert_str_eq(r.body, "slept B\n");
	free(r.body);
	http_conn_free(&c);
	close(b);
	free(url_a);
	free(url_b);
	assert_healthy();
}

Test(servers, php_fpm_sleep_client_close)
{
	start();
	/* A would sleep 20 s, B sleeps 2 s and stays for its answer. */
	int a = get(port, "/sleep.php?id=A&s=20");
	int b = get(port, "/sleep.php?id=B&s=2");
	char *line = event("start id=A ", 5000);
	cr_assert_not_null(line, "sleep.php never started for A");
	free(line);
	line = event("start id=B ", 5000);
	cr_assert_not_null(line, "sleep.php never started for B");
	free(line);
	uint64_t t_close = tl_now_ns();
	close(a);
	line = event("woke id=A ", 2000);
	char *ev = line ? NULL : tl_read_in(dir, "events.log");
	cr_assert_not_null(line, "sleep() for A did not end within 2 s\nevents:\n%s", ev);
	long long t_woke, left, pid;
	cr_assert_eq(tl_field(line, "t", &t_woke), 0);
	cr_assert_eq(tl_field(line, "left", &left), 0);
	double ms = ((double)t_woke - (double)t_close) / 1e6;
	cr_log_info("php-fpm sleep(): returned %.2f ms after the client left (%s)", ms, line);
	/* What sleep() returned is logged as left=: the shim's sleep()
	 * returns 0 when cancelled (with errno ECANCELED), so PHP's sleep()
	 * cannot tell the script it was cut short. The script just goes on,
	 * quickly, to its end. */
	cr_assert_eq(tl_field(line, "pid", &pid), 0);
	char *mark = tl_strdupf("cancelshim[%lld]: debug: ECANCELED", pid);
	cr_assert(fpm_said(mark), "no '%s' in php-fpm's log", mark);
	free(mark);
	cr_assert_lt((uint64_t)t_woke - t_close, CANCEL_BUDGET_NS, "cancel took %.1f ms", ms);
	free(line);

	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, b);
	cr_assert_eq(http_read_response(&c, &r, 10000), 0, "B: %s", r.err);
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body, "slept B\n");
	free(r.body);
	http_conn_free(&c);
	close(b);
	line = event("start id=B ", 100);
	long long t_start;
	cr_assert_eq(tl_field(line, "t", &t_start), 0);
	free(line);
	line = event("woke id=B ", 2000);
	cr_assert_not_null(line);
	cr_assert_eq(tl_field(line, "t", &t_woke), 0);
	cr_assert_geq(t_woke - t_start, 2000000000ll, "B's sleep(2) was cut short: %s", line);
	free(line);
	assert_healthy();
}

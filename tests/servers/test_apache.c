/* Apache httpd 2.4 (Debian's apache2) under the shim, run from its binary
 * with a config of our own (no Debian apache2.conf, no system service).
 *
 * mpm_prefork + mod_cgi: a child process per connection runs a CGI script
 * and waits for its output (a poll on the pipe). A client leaves while the
 * script sleeps: the shim fails that poll, mod_cgi logs it and ends the
 * request, and Apache's cleanup kills the script — without the shim it would
 * sleep to its end. Another client, meanwhile, gets its full answer.
 *
 * mpm_event: worker threads plus a listener thread (an event loop). Loaded
 * with static-file clients of which many leave mid-request or mid-response:
 * no error for the clients that stay, no crash, a clean stop. */
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
#include "shim_check.h"
#include "testlib.h"

#define APACHE "/usr/sbin/apache2"
#define MODS "/usr/lib/apache2/modules"
#define STOP_BUDGET_MS 300
#define BIG_LEN (400 * 1024)
#define SMALL_LEN 1000

static char *dir, *events;
static struct tl_proc *httpd;
static int port;

static void stop_all(void)
{
	if (httpd)
		tl_proc_stop(httpd, SIGTERM, 10000);
	tl_proc_free(httpd);
	if (dir)
		tl_cleanup_dir(dir);
}

TestSuite(servers, .timeout = 90, .fini = stop_all);

/* mpm is "prefork" or "event"; extra is appended to the config. */
static void start(const char *mpm, const char *extra)
{
	cr_assert_eq(access(APACHE, X_OK), 0, APACHE " missing (package apache2)");
	dir = tl_tmpdir("apache");
	cr_assert_not_null(dir);
	/* Children run as www-data: they write the events file. */
	cr_assert_eq(chmod(dir, 0755), 0);
	events = tl_strdupf("%s/events.log", dir);
	cr_assert_eq(tl_write_file(events, "", 0), 0);
	cr_assert_eq(chmod(events, 0666), 0);
	port = tl_free_port();
	cr_assert_gt(port, 0);
	char *conf = tl_strdupf("ServerRoot \"%1$s\"\n"
				"DefaultRuntimeDir \"%1$s\"\n"
				"PidFile \"%1$s/httpd.pid\"\n"
				"Listen 127.0.0.1:%2$d\n"
				"ServerName localhost\n"
				"User www-data\n"
				"Group www-data\n"
				"ErrorLog \"%1$s/error.log\"\n"
				"LogLevel info\n"
				"LoadModule mpm_%3$s_module " MODS "/mod_mpm_%3$s.so\n"
				"LoadModule authz_core_module " MODS "/mod_authz_core.so\n"
				"LoadModule alias_module " MODS "/mod_alias.so\n"
				"LoadModule env_module " MODS "/mod_env.so\n"
				"LogFormat \"%%r %%>s %%D\" simple\n"
				"CustomLog \"%1$s/access.log\" simple\n"
				"SetEnv EVENTS %4$s\n"
				"%5$s",
				dir, port, mpm, events, extra);
	char *path = tl_write_in(dir, "httpd.conf", conf, strlen(conf));
	cr_assert_not_null(path);
	const char *argv[] = { APACHE, "-f", path, "-DFOREGROUND", NULL };
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	char *log = tl_strdupf("%s/error.log", dir), *why;
	struct tl_ready ready = { .port = port, .timeout_ms = 15000, .log = log };
	httpd = tl_server_start(argv, env, TL_SHIM, &ready, NULL, &why);
	cr_assert_not_null(httpd, "%s", why);
	free(log);
	free(conf);
	free(path);
}

/* HTTP/1.0: mod_cgi streams a script's output, chunked for HTTP/1.1, which
 * http_client does not read; for 1.0 the body ends at EOF. */
static int get(const char *url)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert_geq(fd, 0, "connect: %s", strerror(errno));
	char *req = tl_strdupf("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", url);
	cr_assert_eq(tl_write_str(fd, req, 2000), 0);
	free(req);
	return fd;
}

static void read_body(int fd, const char *body)
{
	struct http_conn c;
	struct http_resp r;
	http_conn_init(&c, fd);
	cr_assert_eq(http_read_response(&c, &r, 10000), 0, "%s", r.err);
	cr_assert_eq(r.status, 200, "status %d: %s", r.status, r.body);
	cr_assert_str_eq(r.body, body);
	free(r.body);
	http_conn_free(&c);
	close(fd);
}

static char *event(const char *mark, int timeout_ms)
{
	return tl_wait_file_line(events, mark, timeout_ms);
}

static bool stopped(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return true;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return !p || p[2] == 'Z' || p[2] == 'X';
}

/* No child died of a signal, nothing alarming in the error log. */
static void assert_error_log_clean(void)
{
	char *log = tl_read_in(dir, "error.log");
	static const char *bad[] = { "exit signal", "[core:alert]", "[mpm_prefork:alert]",
				     "[mpm_event:alert]", "[core:crit]", "Segmentation", NULL };
	for (int i = 0; bad[i]; i++)
		cr_assert_null(strstr(log, bad[i]), "apache error log: %s\n%s", bad[i], log);
	free(log);
}

/* In mode ebpf: every child that served a client (a "bind" line at debug)
 * uses the instance the master (root) loaded for it before its fork: it
 * drops to www-data before its first accept, and could not load its own. */
static void assert_serving_children_in_mode_ebpf(const char *err)
{
	const char *mode = getenv("CANCELSHIM_MODE"), *p;
	int children = 0;

	if (!mode || strcmp(mode, "ebpf"))
		return;
	cr_assert_null(strstr(err, "Operation not permitted"), "a child tried to load its own instance:\n%s", err);
	for (p = err; (p = strstr(p, ": debug: bind conn=")); p++) {
		const char *b = p;
		while (b > err && b[-1] != '\n')
			b--;
		long long pid = 0;
		if (sscanf(b, "cancelshim[%lld]", &pid) != 1)
			continue;
		char *mark = tl_strdupf("cancelshim[%lld]: info: eBPF watcher: the instance the parent loaded for this child",
					pid);
		cr_assert(strstr(err, mark), "child %lld served without the instance its master loaded for it:\n%s", pid,
			  err);
		free(mark);
		children++;
	}
	cr_assert_gt(children, 0, "no child served a client?\n%s", err);
}

Test(servers, apache_prefork_cgi_client_close)
{
	char *src = tl_source_path("tests/servers/cgi");
	cr_assert_not_null(src, "CS_SOURCE_ROOT is not set (run through meson test)");
	char *extra = tl_strdupf("LoadModule cgi_module " MODS "/mod_cgi.so\n"
				 "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n"
				 "ScriptAlias /cgi/ %1$s/\n"
				 "<Directory %1$s>\n  Require all granted\n</Directory>\n",
				 src);
	start("prefork", extra);
	free(extra);
	free(src);

	int a = get("/cgi/sleep.py?id=A&s=20");
	int b = get("/cgi/sleep.py?id=B&s=2");
	char *line = event("start id=A ", 10000);
	cr_assert_not_null(line, "the CGI script never started for A");
	long long pid_a;
	cr_assert_eq(tl_field(line, "pid", &pid_a), 0);
	free(line);
	line = event("start id=B ", 10000);
	cr_assert_not_null(line, "the CGI script never started for B");
	free(line);

	uint64_t t0 = tl_now_ns();
	close(a);
	while (!stopped((pid_t)pid_a) && tl_now_ns() - t0 < 5000000000ull)
		usleep(1000);
	double ms = (tl_now_ns() - t0) / 1e6;
	cr_log_info("apache prefork: CGI script gone %.1f ms after the client left", ms);
	char *log = ms > STOP_BUDGET_MS ? tl_read_in(dir, "error.log") : NULL;
	cr_assert_leq(ms, STOP_BUDGET_MS, "the CGI script (pid %lld) still ran %.0f ms after its "
		      "client left:\n%s", pid_a, ms, log);
	char *elog = tl_strdupf("%s/error.log", dir);
	cr_assert(tl_wait_file_contains(elog, "(125)Operation canceled", 2000),
		  "mod_cgi did not log the cancelled wait");
	free(elog);

	read_body(b, "slept B\n");
	line = event("done id=B ", 2000);
	cr_assert_not_null(line, "B's script did not finish");
	free(line);
	cr_assert_null(event("done id=A ", 0), "A's script ran to its end");
	/* The child that served A serves again. */
	for (int i = 0; i < 3; i++)
		read_body(get("/cgi/sleep.py?id=C&s=0"), "slept C\n");
	assert_error_log_clean();
	char *err = tl_proc_stderr(httpd);
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "the shim is not active");
	/* The children's stderr is the error log (Apache moves it there). */
	char *elog_text = tl_read_in(dir, "error.log");
	assert_serving_children_in_mode_ebpf(elog_text);
	free(elog_text);
	free(err);
}

/* mpm_prefork + mod_php (Debian's libapache2-mod-php8.2 with its own php.ini
 * and conf.d, where ext/sockets and ext/curl are enabled): a script makes
 * slow upstream calls through ext/sockets or ext/curl, shared extensions
 * PHP loads with dlopen(RTLD_DEEPBIND). When its client leaves, the shim in
 * the Apache child fails the extension's call (its dlopen hook rebound it);
 * without the hook the script ran all its calls for nobody. */
static void mod_php_upstream_client_close(const char *script)
{
	const int calls = 15;
	struct tl_upstream *up = tl_upstream_start(100);
	cr_assert_not_null(up);
	char *php = tl_source_path("tests/servers/php");
	cr_assert_not_null(php, "CS_SOURCE_ROOT is not set (run through meson test)");
	cr_assert_eq(access(MODS "/libphp8.2.so", R_OK), 0, "mod_php missing (package libapache2-mod-php8.2)");
	char *extra = tl_strdupf("LoadModule php_module " MODS "/libphp8.2.so\n"
				 "StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n"
				 "SetEnv UPSTREAM_PORT %2$d\n"
				 "Alias /php/ %1$s/\n"
				 "<Directory %1$s>\n  Require all granted\n"
				 "  <FilesMatch \"\\.php$\">\n    SetHandler application/x-httpd-php\n  </FilesMatch>\n"
				 "</Directory>\n",
				 php, tl_upstream_port(up));
	start("prefork", extra);
	free(extra);
	free(php);

	char *url_a = tl_strdupf("/php/%s?id=A&n=%d", script, calls), *url_b = tl_strdupf("/php/%s?id=B&n=%d", script, calls);
	int a = get(url_a);
	cr_assert(tl_upstream_wait(up, "A 2", 10000), "A never reached the upstream");
	int b = get(url_b);
	cr_assert(tl_upstream_wait(up, "B 1", 10000), "B never reached the upstream");
	unsigned a_calls = tl_upstream_next_call(up, "A", 5000);
	cr_assert(a_calls, "A's next call never came");
	uint64_t t_close = tl_now_ns();
	close(a);

	char *line = event("error id=A ", 2000);
	char *ev = line ? NULL : tl_read_file(events, NULL);
	cr_assert_not_null(line, "the script for A saw no error within 2 s\nevents:\n%s", ev);
	long long t_err;
	cr_assert_eq(tl_field(line, "t", &t_err), 0);
	double ms = ((double)t_err - (double)t_close) / 1e6;
	cr_log_info("apache prefork + mod_php (%s): script's call failed %.2f ms after the client left (%s)", script,
		    ms, line);
	cr_assert_lt((uint64_t)t_err - t_close, 100 * 1000000ull, "cancel took %.1f ms", ms);
	free(line);

	/* B gets its full answer: "ok B 1\n" ... */
	size_t size = (size_t)calls * 32 + 1, len = 0;
	char *expect = malloc(size);
	expect[0] = 0;
	for (int i = 1; i <= calls; i++)
		len += snprintf(expect + len, size - len, "ok B %d\n", i);
	read_body(b, expect);
	free(expect);
	cr_assert_eq(tl_upstream_count(up, "A "), a_calls, "A made %u upstream calls, not %u",
		     tl_upstream_count(up, "A "), a_calls);
	assert_error_log_clean();
	char *err = tl_proc_stderr(httpd);
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "the shim is not active");
	free(err);
	free(url_a);
	free(url_b);
	tl_proc_stop(httpd, SIGTERM, 10000);
	tl_upstream_stop(up);
}

Test(servers, apache_prefork_mod_php_sockets_client_close)
{
	mod_php_upstream_client_close("sockets.php");
}

Test(servers, apache_prefork_mod_php_curl_client_close)
{
	mod_php_upstream_client_close("curl.php");
}

Test(servers, apache_event_aborting_clients_under_load)
{
	char *www = NULL;
	char *extra = NULL;
	/* The site lives in the temp dir, made before the config names it. */
	char *big = tl_pattern(BIG_LEN, 1), *small = tl_pattern(SMALL_LEN, 2);
	char *site = tl_tmpdir("apache-www");
	cr_assert_not_null(site);
	cr_assert_eq(chmod(site, 0755), 0);
	www = tl_strdupf("%s/big.bin", site);
	cr_assert_eq(tl_write_file(www, big, BIG_LEN), 0);
	free(www);
	www = tl_strdupf("%s/small.txt", site);
	cr_assert_eq(tl_write_file(www, small, SMALL_LEN), 0);
	free(www);
	extra = tl_strdupf("StartServers 1\nServerLimit 2\nThreadsPerChild 16\n"
			   "MaxRequestWorkers 32\nKeepAlive On\nMaxKeepAliveRequests 1000\n"
			   "DocumentRoot %1$s\n"
			   "<Directory %1$s>\n  Require all granted\n</Directory>\n",
			   site);
	start("event", extra);
	free(extra);

	struct http_load_file fbig = { "/big.bin", big, BIG_LEN };
	struct http_load_file fsmall = { "/small.txt", small, SMALL_LEN };
	struct http_load_config cfg = {
		.port = port, .threads = 4, .ops_per_thread = 600, .max_ms = 15000,
		.small = &fsmall, .big = &fbig,
	};
	struct http_load_result res;
	http_load_run(&cfg, &res);
	cr_log_info("apache event load: %u ops in %.2f s: %u responses ok, %u aborted mid-request, "
		    "%u aborted mid-response, %u errors; slowest op %.1f ms (%s)",
		    res.ops, res.elapsed_ns / 1e9, res.responses_ok, res.aborted_request,
		    res.aborted_response, res.errors, res.slowest_ns / 1e6, res.slowest_kind);
	cr_assert_eq(res.errors, 0, "%u client errors, first: %s", res.errors, res.first_error);
	cr_assert_gt(res.responses_ok, 300);
	cr_assert_gt(res.aborted_request + res.aborted_response, 50);

	int st = tl_proc_stop(httpd, SIGTERM, 15000);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "apache stop status %#x", st);
	assert_error_log_clean();
	/* The children's stderr is the error log: the shim's lines are there. */
	char *err = tl_proc_stderr(httpd), *log = tl_read_in(dir, "error.log");
	char *both = tl_strdupf("%s\n%s", err, log);
	cr_assert(strstr(both, SHIM_ACTIVE_MARK), "the shim is not active");
	cr_assert(tl_count(log, "debug: bind conn="), "no shim line from the children");
	/* Worker threads serve one connection at a time, so a cancel there
	 * can only hit a request whose client has gone; report how many. */
	cr_log_info("apache event: %zu cancels delivered, %zu calls failed with ECANCELED",
		    tl_count(both, "cancel conn="), tl_count(both, "ECANCELED"));
	free(err);
	free(log);
	free(both);
	free(big);
	free(small);
	tl_cleanup_dir(site);
	free(site);
}

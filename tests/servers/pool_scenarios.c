/* See pool_scenarios.h. */
#include "pool_scenarios.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"
#include "shim_check.h"

#define ABORT_CALLS 8     /* the aborted request's upstream calls */
#define LONG_CALLS 6      /* B's, in the keep-alive scenario */
#define CANCEL_BUDGET_NS (100 * 1000000ull) /* generous: a JVM on a shared CI core */
#define RESP_MS 10000
#define MAX_BUSY 4        /* worker processes kept busy in (a) */

void pool_upstreams_start(struct pool_server *s)
{
	s->slow = tl_upstream_start(POOL_SLOW_MS);
	s->fast = tl_upstream_start(POOL_FAST_MS);
	cr_assert(s->slow && s->fast, "upstreams did not start");
}

void pool_stop(struct pool_server *s)
{
	tl_proc_free(s->proc);
	s->proc = NULL;
	tl_upstream_stop(s->slow);
	tl_upstream_stop(s->fast);
	s->slow = s->fast = NULL;
}

/* Everything the app printed so far (malloc'd). */
static char *app_text(struct pool_server *s)
{
	return s->app_on_stderr ? tl_proc_stderr(s->proc) : tl_proc_stdout(s->proc);
}

/* The first line the app printed containing one of marks (NULL-terminated),
 * waiting for it up to timeout_ms; malloc'd, or NULL. */
static char *app_find(struct pool_server *s, const char *const marks[], int timeout_ms)
{
	uint64_t end = tl_now_ns() + (uint64_t)timeout_ms * 1000000;
	for (;;) {
		char *text = app_text(s), *line = NULL;
		for (const char *const *m = marks; *m && !line; m++)
			line = tl_find_line(text, *m);
		free(text);
		if (line || tl_now_ns() >= end)
			return line;
		/* Until the app prints more (or 10 ms pass). */
		if (s->app_on_stderr)
			tl_proc_wait_stderr(s->proc, marks[0], 10);
		else
			free(tl_proc_wait_line(s->proc, NULL, 10));
	}
}

/* The upstream lines (untagged what, e.g. "A 2") and waits for them. */
static unsigned up_count(struct pool_server *s, struct tl_upstream *u, const char *what)
{
	char *mark = tl_strdupf("%s%s", s->tag, what);
	unsigned n = tl_upstream_count(u, mark);
	free(mark);
	return n;
}

static bool up_wait(struct pool_server *s, struct tl_upstream *u, const char *what, int ms)
{
	char *mark = tl_strdupf("%s%s", s->tag, what);
	bool ok = tl_upstream_wait(u, mark, ms);
	free(mark);
	return ok;
}

/* Whether the app printed "<event> id=<tag><what>". */
static bool app_printed(struct pool_server *s, const char *event, const char *what)
{
	char *mark = tl_strdupf("%s id=%s%s", event, s->tag, what);
	char *text = app_text(s);
	bool found = strstr(text, mark) != NULL;
	free(text);
	free(mark);
	return found;
}

/* ---- One request ----------------------------------------------------- */

static char *url_of(struct pool_server *s, const char *id, int calls, bool fast)
{
	if (fast)
		return tl_strdupf("%s?id=%s%s&n=%d&port=%d", s->path, s->tag, id, calls,
				  tl_upstream_port(s->fast));
	return tl_strdupf("%s?id=%s%s&n=%d", s->path, s->tag, id, calls);
}

static int conn_open(struct pool_server *s)
{
	int fd = tl_connect_tcp("127.0.0.1", s->port, 2000);
	cr_assert_geq(fd, 0, "%s: connect: %s", s->name, strerror(errno));
	return fd;
}

static void send_req(struct pool_server *s, struct http_conn *c, const char *id, int calls,
		     bool keepalive)
{
	char *url = url_of(s, id, calls, false);
	cr_assert_eq(http_send_get(c, url, keepalive, 2000), 0, "%s: send %s: %s", s->name, id,
		     strerror(errno));
	free(url);
}

/* Every id the scenarios use goes out with the server's tag in front. */
static char *expected_body(struct pool_server *s, const char *id, int calls)
{
	size_t size = (size_t)calls * 48 + 1, len = 0;
	char *b = malloc(size);
	b[0] = 0;
	for (int i = 1; i <= calls; i++)
		len += snprintf(b + len, size - len, "ok %s%s %d\n", s->tag, id, i);
	return b;
}

/* Read one response, assert 200 and the body of (id, calls). */
static void read_ok(struct pool_server *s, struct http_conn *c, const char *id, int calls)
{
	struct http_resp r;
	int rc = http_read_response(c, &r, RESP_MS);
	char *out = NULL, *err = NULL;
	if (rc != 0 || r.status != 200) {
		out = tl_proc_stdout(s->proc);
		err = tl_proc_stderr(s->proc);
	}
	/* The end of stderr: the server's traceback, the shim's last lines. */
	const char *err_end = err && strlen(err) > 6000 ? err + strlen(err) - 6000 : err;
	cr_assert_eq(rc, 0, "%s: request %s: %s\nstdout:\n%s\nstderr (end):\n%s", s->name, id,
		     r.err, out, err_end);
	cr_assert_eq(r.status, 200, "%s: request %s: status %d\n%s\nstdout:\n%s\nstderr (end):\n%s",
		     s->name, id, r.status, r.body, out, err_end);
	char *expect = expected_body(s, id, calls);
	cr_assert_str_eq(r.body, expect, "%s: request %s: wrong body", s->name, id);
	free(expect);
	free(r.body);
}

/* A request on a fresh connection, answered and closed. */
static void one_request_ok(struct pool_server *s, const char *id, int calls)
{
	struct http_conn c;
	http_conn_init(&c, conn_open(s));
	send_req(s, &c, id, calls, false);
	read_ok(s, &c, id, calls);
	close(c.fd);
	http_conn_free(&c);
}

/* The pid of the process that answered id (its "done" line). */
static long long done_pid(struct pool_server *s, const char *id)
{
	char *mark = tl_strdupf("done id=%s%s ", s->tag, id);
	const char *marks[] = { mark, NULL };
	char *line = app_find(s, marks, 5000);
	cr_assert_not_null(line, "%s: no '%s' line", s->name, mark);
	long long pid;
	cr_assert_eq(tl_field(line, "pid", &pid), 0, "%s", line);
	free(line);
	free(mark);
	return pid;
}

static void leave(int fd, bool rst)
{
	if (rst)
		tl_abort(fd);
	else
		close(fd);
}

const char *pool_shim_log(void)
{
	static char env[64];
	const char *level = getenv("CS_POOL_SHIM_LOG");
	snprintf(env, sizeof env, "CANCELSHIM_LOG=%s", level && *level ? level : "info");
	return env;
}

void pool_check_healthy(struct pool_server *s)
{
	cr_assert_eq(tl_proc_wait(s->proc, 0), -1, "%s exited", s->name);
	char *err = tl_proc_stderr(s->proc);
	cr_assert(strstr(err, SHIM_ACTIVE_MARK), "%s: the shim is not active:\n%s", s->name, err);
	for (const char *const *b = s->bad_log; b && *b; b++)
		cr_assert_null(strstr(err, *b), "%s logged '%s':\n%.4000s", s->name, *b,
			       strstr(err, *b));
	free(err);
}

/* ---- (a) abort mid-request -------------------------------------------- */

void pool_abort_mid_request(struct pool_server *s, bool rst)
{
	/* W: answered, then parked in keep-alive (gunicorn gthread hands it
	 * to its main loop, puma to its reactor, Tomcat to its poller). */
	struct http_conn w;
	http_conn_init(&w, conn_open(s));
	send_req(s, &w, "W1", 1, true);
	read_ok(s, &w, "W1", 1);

	/* Every worker thread busy while A's request arrives, so that A is
	 * accepted with its request already there and a worker reads it.
	 * Otherwise puma may find nothing to read yet and hand A to its
	 * reactor, which reads the request: then nothing shows the shim
	 * whose request the worker runs, and it rightly does not stop it. */
	struct http_conn busy[MAX_BUSY];
	int n_busy = s->processes < MAX_BUSY ? s->processes : MAX_BUSY;
	for (int k = 0; k < n_busy; k++) {
		char id[16], first[24];
		snprintf(id, sizeof id, "P%d", k);
		snprintf(first, sizeof first, "P%d 1", k);
		http_conn_init(&busy[k], conn_open(s));
		send_req(s, &busy[k], id, 1, false);
		cr_assert(up_wait(s, s->slow, first, 5000), "%s: %s never ran", s->name, id);
	}
	int a = conn_open(s);
	struct http_conn ca;
	http_conn_init(&ca, a);
	send_req(s, &ca, "A", ABORT_CALLS, false);
	http_conn_free(&ca);
	for (int k = 0; k < n_busy; k++) {
		char id[16];
		snprintf(id, sizeof id, "P%d", k);
		read_ok(s, &busy[k], id, 1);
		close(busy[k].fd);
		http_conn_free(&busy[k]);
	}
	cr_assert(up_wait(s, s->slow, "A 2", 5000), "%s: A never reached the upstream",
		  s->name);
	/* Leave just after A's next call went out: its handler waits for
	 * the answer. */
	unsigned a_calls = up_count(s, s->slow, "A ") + 1;
	char *a_next = tl_strdupf("A %u", a_calls);
	cr_assert(up_wait(s, s->slow, a_next, 5000), "%s: A's call %u never came", s->name,
		  a_calls);
	free(a_next);
	uint64_t t_close = tl_now_ns();
	leave(a, rst);

	/* A's outcome: its "error" or "done" line. */
	char *a_err = tl_strdupf("error id=%sA ", s->tag), *a_done = tl_strdupf("done id=%sA ", s->tag);
	const char *outcome[] = { a_err, a_done, NULL };
	char *line = app_find(s, outcome, ABORT_CALLS * POOL_SLOW_MS + 5000);
	free(a_err);
	free(a_done);
	char *out = line ? NULL : app_text(s);
	cr_assert_not_null(line, "%s: A neither failed nor finished:\n%s", s->name, out);
	if (s->worker_reads_request) {
		long long err_no, t_err;
		char *err = strncmp(line, "error ", 6) == 0 ? NULL : tl_proc_stderr(s->proc);
		const char *err_end = err && strlen(err) > 6000 ? err + strlen(err) - 6000 : err;
		cr_assert_null(err, "%s: A was not stopped: %s\nstderr (end):\n%s", s->name, line,
			       err_end);
		cr_assert_eq(tl_field(line, "errno", &err_no), 0, "%s", line);
		cr_assert_eq(tl_field(line, "t", &t_err), 0, "%s", line);
		cr_assert_eq(err_no, ECANCELED, "%s: %s", s->name, line);
		double ms = ((double)t_err - (double)t_close) / 1e6;
		cr_log_info("%s (%s): the app's call failed %.2f ms after the client left", s->name,
			    rst ? "rst" : "close", ms);
		cr_assert_geq((uint64_t)t_err, t_close, "%s: failed before the client left",
			      s->name);
		cr_assert_lt((uint64_t)t_err - t_close, CANCEL_BUDGET_NS, "%s: cancel took %.1f ms",
			     s->name, ms);
	} else {
		/* The event loop read A's request and handed it to the
		 * worker: nothing shows which request the worker runs. */
		cr_assert(strncmp(line, "done ", 5) == 0, "%s: A should run to its end: %s",
			  s->name, line);
		cr_log_info("%s (%s): A ran to its end (the event loop read it)", s->name,
			    rst ? "rst" : "close");
	}
	free(line);

	/* The parked client and a new one are served; by then A made no
	 * more calls (stopped) or all of them (not stopped). */
	send_req(s, &w, "W2", 2, true);
	read_ok(s, &w, "W2", 2);
	one_request_ok(s, "C", 1);
	unsigned want = s->worker_reads_request ? a_calls : ABORT_CALLS;
	cr_assert_eq(up_count(s, s->slow, "A "), want, "%s: A made %u upstream calls, not %u",
		     s->name, up_count(s, s->slow, "A "), want);
	close(w.fd);
	http_conn_free(&w);
	pool_check_healthy(s);
}

/* ---- (b) A idle in keep-alive, B long on the same worker, A leaves ------ */

#define MAX_IDLE 12

void pool_keepalive_idle_then_close(struct pool_server *s, bool rst)
{
	/* One idle A per worker process at least: each A is answered by
	 * its process's only worker thread, which later serves B. */
	int idle[MAX_IDLE], n_idle = 0;
	long long pids[MAX_IDLE];
	int covered = 0;
	while (covered < s->processes && n_idle < MAX_IDLE) {
		char id[16];
		snprintf(id, sizeof id, "A%d", n_idle);
		struct http_conn c;
		http_conn_init(&c, conn_open(s));
		send_req(s, &c, id, 1, true);
		read_ok(s, &c, id, 1);
		cr_assert_eq(c.len, 0, "%s: extra bytes after %s's response", s->name, id);
		http_conn_free(&c);
		long long pid = done_pid(s, id);
		bool seen = false;
		for (int i = 0; i < n_idle; i++)
			seen |= pids[i] == pid;
		covered += !seen;
		pids[n_idle] = pid;
		idle[n_idle++] = c.fd;
	}
	cr_log_info("%s: %d idle keep-alive clients cover %d of %d worker processes", s->name,
		    n_idle, covered, s->processes);

	int b = conn_open(s);
	struct http_conn cb;
	http_conn_init(&cb, b);
	send_req(s, &cb, "B", LONG_CALLS, false);
	/* B's handler is waiting for its second upstream answer. */
	cr_assert(up_wait(s, s->slow, "B 2", 5000), "%s: B never made its second call",
		  s->name);
	for (int i = 0; i < n_idle; i++)
		leave(idle[i], rst);

	read_ok(s, &cb, "B", LONG_CALLS);
	close(b);
	http_conn_free(&cb);
	cr_assert_not(app_printed(s, "error", "B "), "%s: B failed", s->name);
	cr_assert_eq(up_count(s, s->slow, "B "), LONG_CALLS);
	one_request_ok(s, "C", 1);
	pool_check_healthy(s);
}

/* ---- (c) keep-alive follow-ups parked by the server -------------------- */

void pool_followups_gate(struct pool_server *s)
{
	const char *gaps = getenv("CS_POOL_KNOWN_GAPS");
	if (s->followups_gap && !(gaps && strcmp(gaps, "1") == 0))
		cr_skip_test("%s: known gap, run with CS_POOL_KNOWN_GAPS=1: %s", s->name,
			     s->followups_gap);
}

void pool_followups(struct pool_server *s)
{
	struct http_conn k[2];
	for (int i = 0; i < 2; i++)
		http_conn_init(&k[i], conn_open(s));
	char id[16];
	for (int round = 1; round <= 3; round++)
		for (int i = 0; i < 2; i++) {
			snprintf(id, sizeof id, "K%dr%d", i, round);
			send_req(s, &k[i], id, 1, true);
			read_ok(s, &k[i], id, 1);
		}
	/* K0's follow-up, then K1's on the same worker thread: K0 leaves
	 * while K1's runs, K1 goes on. */
	send_req(s, &k[0], "K0r4", 1, true);
	read_ok(s, &k[0], "K0r4", 1);
	send_req(s, &k[1], "K1r5", 4, true);
	cr_assert(up_wait(s, s->slow, "K1r5 2", 5000), "%s: K1r5 never made its 2nd call",
		  s->name);
	close(k[0].fd);
	read_ok(s, &k[1], "K1r5", 4);
	send_req(s, &k[1], "K1r6", 1, true);
	read_ok(s, &k[1], "K1r6", 1);
	close(k[1].fd);
	for (int i = 0; i < 2; i++)
		http_conn_free(&k[i]);
	cr_assert_not(app_printed(s, "error", "K"), "%s: a follow-up failed", s->name);
	pool_check_healthy(s);
}

/* ---- (d) bounded load with aborting clients ---------------------------- */

#define LOAD_THREADS 4
#define LOAD_REQUESTS 300
#define LOAD_SESSION 3 /* requests per keep-alive connection */

struct load {
	struct pool_server *s;
	int thread;
	unsigned ok, aborted, errors;
	char first_error[256];
};

static void load_error(struct load *l, const char *id, const char *what)
{
	if (l->errors++ == 0)
		snprintf(l->first_error, sizeof l->first_error, "%s: %s", id, what);
}

/* A client that leaves once its request is running (its first upstream
 * call arrived), or after 3 s if it never runs. */
static void load_abort(struct load *l, const char *id, bool rst)
{
	int fd = tl_connect_tcp("127.0.0.1", l->s->port, 2000);
	if (fd < 0)
		return load_error(l, id, "connect failed");
	char *url = url_of(l->s, id, 3, true);
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", url);
	free(url);
	if (tl_write_all(fd, req, n, 2000) != 0) {
		close(fd);
		return load_error(l, id, "send failed");
	}
	char first[48];
	snprintf(first, sizeof first, "%s 1", id);
	up_wait(l->s, l->s->fast, first, 3000);
	leave(fd, rst);
	l->aborted++;
}

static void *load_thread(void *arg)
{
	struct load *l = arg;
	struct http_conn c = { .fd = -1 };
	int used = 0;
	char id[32];
	for (int i = l->thread; i < LOAD_REQUESTS; i += LOAD_THREADS) {
		snprintf(id, sizeof id, "L%dx%d", l->thread, i);
		if (i % 10 == 7) {
			/* One client at a time per thread: end the session
			 * first (uWSGI holds a thread per open connection). */
			if (c.fd >= 0)
				close(c.fd);
			c.fd = -1;
			load_abort(l, id, (i / 10) % 2);
			continue;
		}
		if (c.fd < 0 || used == LOAD_SESSION) {
			if (c.fd >= 0)
				close(c.fd);
			http_conn_free(&c);
			http_conn_init(&c, tl_connect_tcp("127.0.0.1", l->s->port, 2000));
			used = 0;
			if (c.fd < 0) {
				load_error(l, id, "connect failed");
				continue;
			}
		}
		int calls = 1 + i % 2;
		used++;
		char *url = url_of(l->s, id, calls, true);
		int rc = http_send_get(&c, url, true, 2000);
		free(url);
		struct http_resp r = { 0 };
		if (rc == 0)
			rc = http_read_response(&c, &r, RESP_MS);
		if (rc != 0) {
			load_error(l, id, rc == 0 ? r.err : "send failed");
			close(c.fd);
			c.fd = -1;
			continue;
		}
		char *expect = expected_body(l->s, id, calls);
		char what[200];
		if (r.status != 200) {
			snprintf(what, sizeof what, "status %d: %.120s", r.status, r.body);
			load_error(l, id, what);
		} else if (strcmp(r.body, expect) != 0) {
			load_error(l, id, "wrong body");
		} else {
			l->ok++;
		}
		free(expect);
		free(r.body);
		if (r.close || r.status != 200) {
			close(c.fd);
			c.fd = -1;
		}
	}
	if (c.fd >= 0)
		close(c.fd);
	http_conn_free(&c);
	return NULL;
}

void pool_load(struct pool_server *s)
{
	struct load loads[LOAD_THREADS];
	pthread_t th[LOAD_THREADS];
	uint64_t t0 = tl_now_ns();
	for (int t = 0; t < LOAD_THREADS; t++) {
		loads[t] = (struct load){ .s = s, .thread = t };
		cr_assert_eq(pthread_create(&th[t], NULL, load_thread, &loads[t]), 0);
	}
	unsigned ok = 0, aborted = 0, errors = 0;
	const char *first = "";
	for (int t = 0; t < LOAD_THREADS; t++) {
		pthread_join(th[t], NULL);
		ok += loads[t].ok;
		aborted += loads[t].aborted;
		errors += loads[t].errors;
		if (loads[t].errors && !*first)
			first = loads[t].first_error;
	}
	/* The load's requests the shim stopped. */
	char *out = app_text(s), *mark = tl_strdupf(" id=%sL", s->tag);
	unsigned cancelled = 0;
	for (char *p = out; (p = strstr(p, "errno=125 ")); p++) {
		char *bol = p;
		while (bol > out && bol[-1] != '\n')
			bol--;
		cancelled += strncmp(bol, "error", 5) == 0 && strstr(bol, mark) && strstr(bol, mark) < p;
	}
	free(mark);
	free(out);
	cr_log_info("%s: load %u ok, %u aborted (%u stopped by ECANCELED), %u errors, %.2f s",
		    s->name, ok, aborted, cancelled, errors, (tl_now_ns() - t0) / 1e9);
	if (errors) {
		/* What the shim said it cancelled, to find whose binding was wrong. */
		char *err = tl_proc_stderr(s->proc);
		for (char *line = strtok(err, "\n"); line; line = strtok(NULL, "\n"))
			if (strstr(line, "cancelshim"))
				cr_log_error("%s", line);
		free(err);
	}
	cr_assert_eq(errors, 0, "%s: %u errors on live requests, first: %s", s->name, errors,
		     first);
	cr_assert_eq(ok + aborted, LOAD_REQUESTS);
	cr_assert_leq(cancelled, aborted, "%s: more cancels than aborting clients", s->name);
	one_request_ok(s, "C", 2);
	pool_check_healthy(s);
}

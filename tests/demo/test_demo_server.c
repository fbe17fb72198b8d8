/* The demo server and its storage alone, without the shim: jobs run to the
 * end, /stats tells the truth in valid JSON, a failing storage call stops the
 * job and is recorded, and an abandoned job is NOT noticed (the demo's
 * premise: only the shim makes the server stop). */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo_testlib.h"

static struct proc storage, server;
static int storage_port, server_port;

static void start_both(void)
{
	char port[16];

	storage_port = start_demo_server(&storage, "--storage", "0");
	snprintf(port, sizeof port, "%d", storage_port);
	server_port = start_demo_server(&server, "0", port);
}

static void stop_both(void)
{
	proc_kill(&server);
	proc_kill(&storage);
}

TestSuite(demo_server, .init = start_both, .fini = stop_both, .timeout = 60);

/* The job's record, checked and flattened by Python's json module (a real
 * parser, not ours): "state done total errno error call ordered duration". */
struct record {
	char state[16], error[32], call[16];
	int done, total, err, ordered;
	double duration_ms;
};

static void stats_record(int port, const char *id, struct record *r)
{
	static const char script[] =
		"import json, sys\n"
		"d = json.loads(sys.argv[1])\n"
		"j = d['jobs'][sys.argv[2]]\n"
		"want = {'state', 'chunks_total', 'chunks_done', 'started_ms', 'last_chunk_ms',\n"
		"        'ended_ms', 'errno', 'error', 'failed_call', 'cancel_ms', 'chunks_at_cancel'}\n"
		"assert set(j) == want, sorted(j)\n"
		"times = [t for t in (j['started_ms'], j['last_chunk_ms'], j['ended_ms'],\n"
		"                     d['now_ms']) if t is not None]\n"
		"end = j['ended_ms'] if j['ended_ms'] is not None else d['now_ms']\n"
		"print(j['state'], j['chunks_done'], j['chunks_total'], j['errno'], j['error'],\n"
		"      j['failed_call'], int(times == sorted(times)), end - j['started_ms'])\n";
	static char json[65536];
	struct proc py;

	cr_assert_eq(http_get(port, "/stats", json, sizeof json), 200);
	proc_start(&py, (char *[]){ "/usr/bin/python3", "-c", (char *)script, json,
				    (char *)id, NULL }, NULL);
	cr_assert_eq(proc_wait(&py, 10000), 0, "stats JSON rejected: %s\nJSON: %s", py.buf, json);
	cr_assert_eq(sscanf(py.buf, "%15s %d %d %d %31s %15s %d %lf", r->state, &r->done,
			    &r->total, &r->err, r->error, r->call, &r->ordered,
			    &r->duration_ms), 8, "python said: %s", py.buf);
}

Test(demo_server, job_runs_to_the_end)
{
	char body[4096];
	struct record r;
	double t0 = now_ms();

	cr_assert_eq(http_get(server_port, "/job?id=t1&chunks=5&ms=20", body, sizeof body), 200);
	cr_assert_str_eq(body, "job t1 finished: 5 chunks stored\n");
	/* Each chunk really waited for storage. */
	cr_assert_geq(now_ms() - t0, 5 * 20);

	stats_record(server_port, "t1", &r);
	cr_assert_str_eq(r.state, "finished");
	cr_assert_eq(r.done, 5);
	cr_assert_eq(r.total, 5);
	cr_assert_eq(r.err, 0);
	cr_assert_str_eq(r.error, "None");
	cr_assert_str_eq(r.call, "None");
	cr_assert_eq(r.ordered, 1, "times must read started <= last chunk <= ended <= now");
	cr_assert_geq(r.duration_ms, 5 * 20);
}

/* Without the shim, the server does not notice that its client has gone:
 * the job runs to the end. This is what the demo shows next to the shim. */
Test(demo_server, abandoned_job_runs_on_without_the_shim)
{
	char req[] = "GET /job?id=t2&chunks=30&ms=20 HTTP/1.1\r\nHost: x\r\n\r\n";
	struct record r;
	int fd = connect_port(server_port);
	double deadline;

	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	deadline = now_ms() + 10000;
	do {
		cr_assert_lt(now_ms(), deadline, "the job never stored 3 chunks");
		poll(NULL, 0, 10);
		stats_record(server_port, "t2", &r);
	} while (r.done < 3);
	cr_assert_str_eq(r.state, "running");
	cr_assert_str_eq(r.call, "None");
	close(fd);	/* the user presses Cancel */

	deadline = now_ms() + 10000;
	do {
		cr_assert_lt(now_ms(), deadline, "the job never ended");
		poll(NULL, 0, 20);
		stats_record(server_port, "t2", &r);
	} while (!strcmp(r.state, "running"));
	cr_assert_str_eq(r.state, "finished");
	cr_assert_eq(r.done, 30);
}

/* /mark-cancel notes the moment of Cancel on the server's clock and the
 * chunks done by then; the job itself takes no notice and runs on. */
Test(demo_server, mark_cancel_is_noted_not_acted_on)
{
	static const char script[] =
		"import json, sys\n"
		"j = json.loads(sys.argv[1])['jobs']['t5']\n"
		"print(j['state'], j['chunks_done'], j['chunks_at_cancel'],\n"
		"      int(j['started_ms'] < j['cancel_ms'] < j['ended_ms']))\n";
	char req[] = "GET /job?id=t5&chunks=12&ms=50 HTTP/1.1\r\nHost: x\r\n\r\n";
	char body[4096], state[16] = "";
	static char json[65536];
	const char *p;
	struct proc py;
	int fd = connect_port(server_port), done = -1, at_cancel = -1, ordered = 0;
	double deadline = now_ms() + 10000;

	cr_assert_eq(http_get(server_port, "/mark-cancel?id=t5", body, sizeof body), 404);
	cr_assert_eq(http_get(server_port, "/mark-cancel", body, sizeof body), 400);
	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	/* Mark it mid-job (quickly: no Python in this loop). */
	do {
		cr_assert_lt(now_ms(), deadline, "the job never stored 3 chunks");
		poll(NULL, 0, 10);
		cr_assert_eq(http_get(server_port, "/stats", json, sizeof json), 200);
		p = strstr(json, "\"chunks_done\":");
	} while (!p || atoi(p + 14) < 3);
	cr_assert_eq(http_get(server_port, "/mark-cancel?id=t5", body, sizeof body), 200);
	cr_assert_eq(http_get(server_port, "/mark-cancel?id=t5", body, sizeof body), 409,
		     "a second mark must not move the first");

	/* The job runs to the end all the same; its client reads the answer. */
	ssize_t n = 0, got;
	while ((got = recv(fd, body + n, sizeof body - 1 - (size_t)n, 0)) > 0)
		n += got;
	body[n] = '\0';
	close(fd);
	cr_assert(strstr(body, "job t5 finished: 12 chunks stored"), "response: %s", body);

	cr_assert_eq(http_get(server_port, "/stats", json, sizeof json), 200);
	proc_start(&py, (char *[]){ "/usr/bin/python3", "-c", (char *)script, json, NULL }, NULL);
	cr_assert_eq(proc_wait(&py, 10000), 0, "python: %s\nJSON: %s", py.buf, json);
	cr_assert_eq(sscanf(py.buf, "%15s %d %d %d", state, &done, &at_cancel, &ordered), 4,
		     "python said: %s", py.buf);
	cr_assert_str_eq(state, "finished");
	cr_assert_eq(done, 12);
	cr_assert(at_cancel >= 3 && at_cancel < 12, "chunks at cancel: %d", at_cancel);
	cr_assert_eq(ordered, 1, "cancel_ms must lie between started_ms and ended_ms");
}

/* CORS: answers name the page's origin only if the server was told to allow
 * it (cancelctl demo passes the page's origin). */
static void get_with_origin(int port, const char *origin, char *resp, size_t size)
{
	char req[512];
	size_t len = 0;
	ssize_t n;
	int fd = connect_port(port);

	cr_assert_geq(fd, 0);
	snprintf(req, sizeof req, "GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: %s\r\n\r\n",
		 origin);
	cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	while (len < size - 1 && (n = recv(fd, resp + len, size - 1 - len, 0)) > 0)
		len += (size_t)n;
	resp[len] = '\0';
	close(fd);
	cr_assert(!strncmp(resp, "HTTP/1.1 200 ", 13), "response: %s", resp);
}

Test(demo_server, cors_only_for_allowed_origins)
{
	char resp[8192], port[16];
	struct proc web;
	int web_port;
	char path[4096];

	/* Without --allow-origin: no CORS header for anyone. */
	get_with_origin(server_port, "http://127.0.0.1:8080", resp, sizeof resp);
	cr_assert(!strcasestr(resp, "Access-Control-Allow-Origin"), "response: %s", resp);

	snprintf(port, sizeof port, "%d", storage_port);
	snprintf(path, sizeof path, "%s/tools/cancelshim-demo-server", getenv("CS_BUILD_ROOT"));
	proc_start(&web, (char *[]){ path, "--allow-origin", "http://127.0.0.1:8080",
				     "--allow-origin", "http://localhost:8080", "0", port, NULL }, NULL);
	cr_assert(proc_read_until(&web, "\n", 5000), "server said: %s", web.buf);
	cr_assert_eq(sscanf(web.buf, "listening on 127.0.0.1:%d", &web_port), 1, "%s", web.buf);

	get_with_origin(web_port, "http://localhost:8080", resp, sizeof resp);
	cr_assert(strstr(resp, "\r\nAccess-Control-Allow-Origin: http://localhost:8080\r\n"),
		  "response: %s", resp);
	get_with_origin(web_port, "http://127.0.0.1:8080", resp, sizeof resp);
	cr_assert(strstr(resp, "\r\nAccess-Control-Allow-Origin: http://127.0.0.1:8080\r\n"),
		  "response: %s", resp);
	get_with_origin(web_port, "http://127.0.0.1:8081", resp, sizeof resp);
	cr_assert(!strcasestr(resp, "Access-Control-Allow-Origin"), "response: %s", resp);
	proc_kill(&web);
}

/* A storage call that fails ends the job, and /stats says why. */
Test(demo_server, storage_failure_stops_the_job)
{
	char body[4096], port[16];
	struct proc lonely;
	struct record r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	int dead_port;

	/* A port nobody listens on: bound, never listened, then closed. */
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	dead_port = ntohs(a.sin_port);
	close(fd);
	snprintf(port, sizeof port, "%d", dead_port);
	int lonely_port = start_demo_server(&lonely, "0", port);

	cr_assert_eq(http_get(lonely_port, "/job?id=t3&chunks=3&ms=10", body, sizeof body), 500);
	cr_assert(strstr(body, "stopped after 0 of 3 chunks"), "body: %s", body);
	stats_record(lonely_port, "t3", &r);
	cr_assert_str_eq(r.state, "stopped");
	cr_assert_eq(r.done, 0);
	cr_assert_eq(r.err, ECONNREFUSED);
	cr_assert_str_eq(r.error, "ECONNREFUSED");
	cr_assert_str_eq(r.call, "connect");
	/* It said why on stderr too, for its operator. */
	cr_assert(proc_read_until(&lonely, "job t3 stopped after 0 of 3 chunks: connect: ECONNREFUSED",
				  5000), "server output: %s", lonely.buf);
	proc_kill(&lonely);
}

/* Storage that goes away mid-job: the next storage call fails. */
Test(demo_server, storage_lost_mid_job)
{
	char body[4096];
	struct record r;

	/* Kill storage once the job is under way. */
	char req[] = "GET /job?id=t4&chunks=50&ms=20 HTTP/1.1\r\nHost: x\r\n\r\n";
	int fd = connect_port(server_port);
	double deadline = now_ms() + 10000;

	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
	do {
		cr_assert_lt(now_ms(), deadline, "the job never stored 2 chunks");
		poll(NULL, 0, 10);
		stats_record(server_port, "t4", &r);
	} while (r.done < 2);
	proc_kill(&storage);

	ssize_t n = 0, got;
	while ((got = recv(fd, body + n, sizeof body - 1 - (size_t)n, 0)) > 0)
		n += got;
	body[n] = '\0';
	close(fd);
	cr_assert(strstr(body, "HTTP/1.1 500 "), "response: %s", body);
	stats_record(server_port, "t4", &r);
	cr_assert_str_eq(r.state, "stopped");
	cr_assert_lt(r.done, 50);
	cr_assert_neq(r.err, 0);
	cr_assert(!strcmp(r.call, "recv") || !strcmp(r.call, "send"), "failed call: %s", r.call);
}

Test(demo_server, other_requests)
{
	char body[4096];

	cr_assert_eq(http_get(server_port, "/", body, sizeof body), 200);
	cr_assert(strstr(body, "<title>cancelshim demo</title>"), "page: %s", body);
	cr_assert_eq(http_get(server_port, "/nope", body, sizeof body), 404);
	cr_assert_eq(http_get(server_port, "/job?id=bad%20id&chunks=1&ms=1", body, sizeof body), 400);
	cr_assert_eq(http_get(server_port, "/job?id=x&chunks=0&ms=1", body, sizeof body), 400);
	cr_assert_eq(http_get(server_port, "/job?id=x&ms=1", body, sizeof body), 400);
	cr_assert_eq(http_get(server_port, "/stats", body, sizeof body), 200);
	cr_assert_str_eq(body + strcspn(body, ","), ",\"jobs\":{}}\n", "stats: %s", body);
}

/* The storage protocol: a chunk is acknowledged after the delay it asks for. */
Test(demo_server, storage_acks_after_the_delay)
{
	char msg[] = "CHUNK 7 80 5\nhello", ack[32] = "";
	int fd = connect_port(storage_port);
	double t0 = now_ms();
	ssize_t n;

	cr_assert_geq(fd, 0);
	cr_assert_eq(send(fd, msg, strlen(msg), 0), (ssize_t)strlen(msg));
	n = recv(fd, ack, sizeof ack - 1, 0);
	cr_assert_gt(n, 0);
	cr_assert_str_eq(ack, "ACK 7\n");
	cr_assert_geq(now_ms() - t0, 80);
	close(fd);
}

/* cancelshim-demo-server: the server of `cancelctl demo`, written the way
 * many real servers are: one thread per connection, blocking sockets, and a
 * long job that forwards an upload to slow storage chunk by chunk.
 *
 *   cancelshim-demo-server PORT STORAGE_PORT   serve HTTP on 127.0.0.1:PORT
 *   cancelshim-demo-server --storage PORT      be the slow storage
 *
 * PORT 0 picks a free port; either way the first line on stdout is
 * "listening on 127.0.0.1:PORT" once connections are accepted.
 *
 * The job never writes to its client until it is over, like an upload
 * handler or a report generator: nothing in it notices that the client has
 * gone. That is the point: without the shim it works on for nobody; under
 * the shim its storage call fails with ECANCELED and its ordinary error path
 * ends the job. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo_jobs.h"
#include "demo_net.h"
#include "demo_storage.h"

#define MAX_CHUNKS 100000
#define MAX_CHUNK_MS 60000

static int storage_port;

/* ---- HTTP, just enough of it ---- */

struct request {
	char method[8];
	char path[256];
	const char *query;	/* points into path, after the '?'; "" if none */
};

/* Read the request head (we take no bodies) and split its first line. */
static int read_request(int fd, struct request *req)
{
	char head[8192], target[256];
	size_t len = 0;

	while (len < sizeof head - 1) {
		ssize_t n = recv(fd, head + len, sizeof head - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		head[len] = '\0';
		if (strstr(head, "\r\n\r\n") || strstr(head, "\n\n"))
			break;
	}
	if (sscanf(head, "%7s %255s HTTP/1.%*c", req->method, target) != 2)
		return -1;
	strcpy(req->path, target);
	char *q = strchr(req->path, '?');
	if (q)
		*q++ = '\0';
	req->query = q ? q : "";
	return 0;
}

/* The value of `name` in "a=1&b=2", or NULL. No %-decoding: ids are plain. */
static const char *query_param(const char *query, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name);

	for (const char *p = query; *p; p += strcspn(p, "&"), p += (*p == '&')) {
		if (strncmp(p, name, nlen) || p[nlen] != '=')
			continue;
		size_t vlen = strcspn(p + nlen + 1, "&");
		if (vlen >= size)
			return NULL;
		memcpy(buf, p + nlen + 1, vlen);
		buf[vlen] = '\0';
		return buf;
	}
	return NULL;
}

static int int_param(const char *query, const char *name, int min, int max, int *out)
{
	char buf[16], *end;
	long v;

	if (!query_param(query, name, buf, sizeof buf))
		return -1;
	v = strtol(buf, &end, 10);
	if (end == buf || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* Every response closes the connection: one request per connection keeps
 * "the client went away" unambiguous. Write errors are ignored: the client
 * may be gone, and that is its business. */
static void respond(int fd, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];

	snprintf(head, sizeof head,
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		 status, type, len);
	if (net_write_all(fd, head, strlen(head)) == 0)
		net_write_all(fd, body, len);
}

static void respond_text(int fd, const char *status, const char *text)
{
	respond(fd, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- endpoints ---- */

/* GET / : the browser demo's page (a later issue; a placeholder for now). */
static void serve_page(int fd, const char *query)
{
	static const char page[] =
		"<!doctype html>\n<meta charset=\"utf-8\">\n<title>cancelshim demo</title>\n"
		"<h1>cancelshim demo</h1>\n"
		"<p>The browser demo is not written yet. Run <code>cancelctl demo --cli</code>.</p>\n"
		"<p>Endpoints: <code>/job?id=ID&amp;chunks=N&amp;ms=M</code>, "
		"<a href=\"/stats\"><code>/stats</code></a>.</p>\n";

	respond(fd, "200 OK", "text/html; charset=utf-8", page, sizeof page - 1);
}

/* GET /stats : every job's figures as JSON (see demo_jobs.h). */
static void serve_stats(int fd, const char *query)
{
	char *json = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&json, &len);

	if (!out) {
		respond_text(fd, "500 Internal Server Error", "out of memory\n");
		return;
	}
	jobs_write_json(out);
	fclose(out);
	respond(fd, "200 OK", "application/json", json, len);
	free(json);
}

/* GET /job?id=ID&chunks=N&ms=M : store N chunks, each taking M ms. */
static void serve_job(int fd, const char *query)
{
	char id[JOB_ID_MAX + 2], reply[256];
	const char *failed_call = "connect";
	int chunks, ms, done = 0, err = 0, sfd;
	struct job *job;

	if (!query_param(query, "id", id, sizeof id) ||
	    int_param(query, "chunks", 1, MAX_CHUNKS, &chunks) < 0 ||
	    int_param(query, "ms", 0, MAX_CHUNK_MS, &ms) < 0) {
		respond_text(fd, "400 Bad Request",
			     "usage: /job?id=ID&chunks=1..100000&ms=0..60000\n");
		return;
	}
	job = jobs_start(id, chunks);
	if (!job) {
		respond_text(fd, errno == EBUSY ? "409 Conflict" : errno == ENOSPC ?
			     "503 Service Unavailable" : "400 Bad Request",
			     errno == EBUSY ? "a job with this id is running\n" :
			     errno == ENOSPC ? "too many running jobs\n" :
			     "id: 1-32 of A-Z a-z 0-9 - _ .\n");
		return;
	}

	sfd = net_connect(storage_port);
	if (sfd < 0)
		err = errno;
	while (!err && done < chunks) {
		if (storage_put_chunk(sfd, done + 1, ms, &failed_call) < 0) {
			err = errno;
			break;
		}
		done++;
		jobs_chunk_done(job);
	}
	jobs_end(job, err, failed_call);
	if (sfd >= 0)
		close(sfd);

	if (err) {
		fprintf(stderr, "demo-server[%d]: job %s stopped after %d of %d chunks: %s: %s\n",
			(int)getpid(), id, done, chunks, failed_call, strerrorname_np(err));
		snprintf(reply, sizeof reply, "job %s stopped after %d of %d chunks: %s: %s\n",
			 id, done, chunks, failed_call, strerror(err));
		respond_text(fd, "500 Internal Server Error", reply);
	} else {
		snprintf(reply, sizeof reply, "job %s finished: %d chunks stored\n", id, done);
		respond_text(fd, "200 OK", reply);
	}
}

static const struct route {
	const char *method;
	const char *path;
	void (*serve)(int fd, const char *query);
} routes[] = {
	{ "GET", "/",      serve_page },
	{ "GET", "/job",   serve_job },
	{ "GET", "/stats", serve_stats },
};

/* One thread per connection, one request per connection. */
static void *serve_connection(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct request req;

	if (read_request(fd, &req) == 0) {
		const struct route *r = NULL;

		for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
			if (!strcmp(req.method, routes[i].method) && !strcmp(req.path, routes[i].path))
				r = &routes[i];
		if (r)
			r->serve(fd, req.query);
		else
			respond_text(fd, "404 Not Found", "not found\n");
	}
	close(fd);
	return NULL;
}

static int serve_http(int port)
{
	int bound;
	int lfd = net_listen(port, &bound);

	if (lfd < 0) {
		fprintf(stderr, "demo-server: cannot listen on port %d: %s\n", port, strerror(errno));
		return 1;
	}
	printf("listening on 127.0.0.1:%d\n", bound);
	fflush(stdout);
	for (;;) {
		pthread_t t;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		if (pthread_create(&t, NULL, serve_connection, (void *)(intptr_t)fd) != 0) {
			close(fd);
			continue;
		}
		pthread_detach(t);
	}
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return (end == s || *end || v < 0 || v > 65535) ? -1 : (int)v;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: cancelshim-demo-server PORT STORAGE_PORT   serve the demo on 127.0.0.1:PORT\n"
		"       cancelshim-demo-server --storage PORT      run the slow storage service\n"
		"PORT 0 picks a free port; the first stdout line is \"listening on 127.0.0.1:PORT\".\n"
		"Endpoints: GET /job?id=ID&chunks=N&ms=M, GET /stats (JSON), GET / (page).\n");
}

int main(int argc, char **argv)
{
	int port;

	/* A client that has gone must not kill the server through SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "--storage") && (port = parse_port(argv[2])) >= 0)
		return storage_serve(port);
	if (argc == 3 && (port = parse_port(argv[1])) >= 0 &&
	    (storage_port = parse_port(argv[2])) > 0)
		return serve_http(port);
	usage(stderr);
	return 2;
}

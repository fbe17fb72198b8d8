/* cancelshim-demo-server: the server of `cancelctl demo`, written the way
 * many real servers are: one thread per connection, blocking sockets, and a
 * long job that forwards an upload to slow storage chunk by chunk.
 *
 *   cancelshim-demo-server [--allow-origin ORIGIN]... PORT STORAGE_PORT
 *                                              serve HTTP on 127.0.0.1:PORT
 *   cancelshim-demo-server --storage PORT      be the slow storage
 *
 * PORT 0 picks a free port; either way the first line on stdout is
 * "listening on 127.0.0.1:PORT" once connections are accepted.
 *
 * The job never writes to its client until it is over, like an upload
 * handler or a report generator: nothing in it notices that the client has
 * gone. That is the point: without the shim it works on for nobody; under
 * the shim its storage call fails with ECANCELED and its ordinary error path
 * ends the job.
 *
 * --allow-origin: the browser demo's page comes from another port (cancelctl
 * serves it), so the page may read our answers only if we name its origin in
 * Access-Control-Allow-Origin. Every request the page makes is a "simple"
 * GET (no preflight), and its /job goes straight to us: the browser's abort
 * closes OUR client connection, as in the scenario the demo is about. */
#include <errno.h>
#include <getopt.h>
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
#define MAX_ORIGINS 4

static int storage_port;
static const char *allowed_origins[MAX_ORIGINS];
static int n_allowed_origins;

/* ---- HTTP, just enough of it ---- */

struct request {
	char method[8];
	char path[256];
	const char *query;	/* points into path, after the '?'; "" if none */
	const char *cors_origin;	/* its Origin if allowed, to echo; else NULL */
};

/* The request's Origin header if it is one we allow, else NULL. */
static const char *allowed_origin(const char *head)
{
	const char *h = strcasestr(head, "\nOrigin:");
	char origin[256];

	if (!h)
		return NULL;
	h += strlen("\nOrigin:");
	h += strspn(h, " \t");
	snprintf(origin, sizeof origin, "%.*s", (int)strcspn(h, " \t\r\n"), h);
	for (int i = 0; i < n_allowed_origins; i++)
		if (!strcmp(origin, allowed_origins[i]))
			return allowed_origins[i];
	return NULL;
}

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
	req->cors_origin = allowed_origin(head);
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
static void respond(int fd, const struct request *req, const char *status, const char *type,
		    const char *body, size_t len)
{
	char head[512], cors[320] = "";

	if (req->cors_origin)
		snprintf(cors, sizeof cors, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
			 req->cors_origin);
	snprintf(head, sizeof head,
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		 "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
		 status, type, len, cors);
	if (net_write_all(fd, head, strlen(head)) == 0)
		net_write_all(fd, body, len);
}

static void respond_text(int fd, const struct request *req, const char *status, const char *text)
{
	respond(fd, req, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* ---- endpoints ---- */

/* GET / : what this is. The demo's page itself is served by cancelctl. */
static void serve_page(int fd, const struct request *req)
{
	static const char page[] =
		"<!doctype html>\n<meta charset=\"utf-8\">\n<title>cancelshim demo</title>\n"
		"<h1>cancelshim demo</h1>\n"
		"<p>This is one of the demo's servers. The demo's page is served by "
		"<code>cancelctl demo</code>, which prints its address.</p>\n"
		"<p>Endpoints: <code>/job?id=ID&amp;chunks=N&amp;ms=M</code>, "
		"<code>/mark-cancel?id=ID</code>, "
		"<a href=\"/stats\"><code>/stats</code></a>.</p>\n";

	respond(fd, req, "200 OK", "text/html; charset=utf-8", page, sizeof page - 1);
}

/* GET /stats : every job's figures as JSON (see demo_jobs.h). */
static void serve_stats(int fd, const struct request *req)
{
	char *json = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&json, &len);

	if (!out) {
		respond_text(fd, req, "500 Internal Server Error", "out of memory\n");
		return;
	}
	jobs_write_json(out);
	fclose(out);
	respond(fd, req, "200 OK", "application/json", json, len);
	free(json);
}

/* GET /mark-cancel?id=ID : the page's user pressed Cancel on job ID. The
 * page asks this just before it aborts the job's fetch, so the server's
 * clock marks the moment; the job itself never looks at the mark. */
static void serve_mark_cancel(int fd, const struct request *req)
{
	char id[JOB_ID_MAX + 2];

	if (!query_param(req->query, "id", id, sizeof id)) {
		respond_text(fd, req, "400 Bad Request", "usage: /mark-cancel?id=ID\n");
		return;
	}
	if (jobs_mark_cancel(id) == 0)
		respond_text(fd, req, "200 OK", "noted\n");
	else if (errno == EALREADY)
		respond_text(fd, req, "409 Conflict", "already noted\n");
	else
		respond_text(fd, req, "404 Not Found", "no such job\n");
}

/* GET /job?id=ID&chunks=N&ms=M : store N chunks, each taking M ms. */
static void serve_job(int fd, const struct request *req)
{
	const char *query = req->query;
	char id[JOB_ID_MAX + 2], reply[256];
	const char *failed_call = "connect";
	int chunks, ms, done = 0, err = 0, sfd;
	struct job *job;

	if (!query_param(query, "id", id, sizeof id) ||
	    int_param(query, "chunks", 1, MAX_CHUNKS, &chunks) < 0 ||
	    int_param(query, "ms", 0, MAX_CHUNK_MS, &ms) < 0) {
		respond_text(fd, req, "400 Bad Request",
			     "usage: /job?id=ID&chunks=1..100000&ms=0..60000\n");
		return;
	}
	job = jobs_start(id, chunks);
	if (!job) {
		respond_text(fd, req, errno == EBUSY ? "409 Conflict" : errno == ENOSPC ?
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
		respond_text(fd, req, "500 Internal Server Error", reply);
	} else {
		snprintf(reply, sizeof reply, "job %s finished: %d chunks stored\n", id, done);
		respond_text(fd, req, "200 OK", reply);
	}
}

static const struct route {
	const char *method;
	const char *path;
	void (*serve)(int fd, const struct request *req);
} routes[] = {
	{ "GET", "/",            serve_page },
	{ "GET", "/job",         serve_job },
	{ "GET", "/mark-cancel", serve_mark_cancel },
	{ "GET", "/stats",       serve_stats },
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
			r->serve(fd, &req);
		else
			respond_text(fd, &req, "404 Not Found", "not found\n");
	}
	close(fd);
	return NULL;
}

static int serve_http(int port)
{
	return net_serve_threads(port, "demo-server", serve_connection);
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
		"usage: cancelshim-demo-server [--allow-origin ORIGIN]... PORT STORAGE_PORT\n"
		"                                 serve the demo on 127.0.0.1:PORT\n"
		"       cancelshim-demo-server --storage PORT      run the slow storage service\n"
		"PORT 0 picks a free port; the first stdout line is \"listening on 127.0.0.1:PORT\".\n"
		"Endpoints: GET /job?id=ID&chunks=N&ms=M, GET /mark-cancel?id=ID, GET /stats (JSON),\n"
		"GET / (what this is). --allow-origin (up to %d times, e.g. http://127.0.0.1:8080)\n"
		"lets pages from ORIGIN read the answers (CORS).\n", MAX_ORIGINS);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "allow-origin", required_argument, NULL, 'o' },
		{ "storage",      no_argument,       NULL, 's' },
		{ "help",         no_argument,       NULL, 'h' },
		{ 0 }
	};
	int opt, storage = 0, bad = 0, port;

	/* A client that has gone must not kill the server through SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);

	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			if (n_allowed_origins == MAX_ORIGINS || strlen(optarg) > 200)
				bad = 1;
			else
				allowed_origins[n_allowed_origins++] = optarg;
			break;
		case 's': storage = 1; break;
		case 'h': usage(stdout); return 0;
		default: bad = 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (!bad && storage && argc == 1 && (port = parse_port(argv[0])) >= 0)
		return storage_serve(port);
	if (!bad && !storage && argc == 2 && (port = parse_port(argv[0])) >= 0 &&
	    (storage_port = parse_port(argv[1])) > 0)
		return serve_http(port);
	usage(stderr);
	return 2;
}

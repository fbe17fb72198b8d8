/* See demo_http.h: the few HTTP requests and JSON fields the demo needs of
 * its servers. The servers' answers are ours (demo_jobs.c), flat and
 * small: finding a key is all the parsing needed. */
#include "demo_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "demo_net.h"

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Connect and send a GET; the socket is left open for the answer. */
int http_send_get(int port, const char *target)
{
	char req[256];
	int fd = net_connect(port);

	if (fd < 0)
		return -1;
	set_timeouts(fd, 3000);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
	if (net_write_all(fd, req, strlen(req)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* GET target; the body of a 200 answer into buf. */
int http_get(int port, const char *target, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd = http_send_get(port, target);
	char *body;

	if (fd < 0)
		return -1;
	while (len < size - 1 && (n = recv(fd, buf + len, size - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.1 200 ", 13) || !body)
		return -1;
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return 0;
}

/* The text after "name": in the object [obj, end), or NULL. */
static const char *json_value(const char *obj, const char *end, const char *name)
{
	char key[48];
	const char *p;

	snprintf(key, sizeof key, "\"%s\":", name);
	p = strstr(obj, key);
	return p && p < end ? p + strlen(key) : NULL;
}

static double json_number(const char *obj, const char *end, const char *name)
{
	const char *v = json_value(obj, end, name);

	return v && *v != 'n' ? strtod(v, NULL) : -1;	/* null -> -1 */
}

static void json_string(const char *obj, const char *end, const char *name, char *out, size_t size)
{
	const char *v = json_value(obj, end, name);

	if (v && *v == '"')
		snprintf(out, size, "%.*s", (int)strcspn(v + 1, "\""), v + 1);
	else
		snprintf(out, size, "-");
}

/* Job JOB_ID as the server on port reports it; state "pending" while the server has
 * not started it yet. The server's JSON is flat per job (see demo_jobs.h),
 * so finding the braces is all the parsing needed. */
int http_get_job(int port, struct job_view *v)
{
	char json[32768];	/* room for the server's 64 job records */
	const char *obj, *end;

	if (http_get(port, "/stats", json, sizeof json) < 0 ||
	    !(obj = strstr(json, "\"jobs\":{")))
		return -1;
	if (!(obj = strstr(obj + 8, "\"" JOB_ID "\":{")) || !(end = strchr(obj, '}'))) {
		*v = (struct job_view){ .state = "pending", .last_chunk_ms = -1, .ended_ms = -1 };
		return 0;
	}
	json_string(obj, end, "state", v->state, sizeof v->state);
	v->chunks_total = (int)json_number(obj, end, "chunks_total");
	v->chunks_done = (int)json_number(obj, end, "chunks_done");
	v->last_chunk_ms = json_number(obj, end, "last_chunk_ms");
	v->ended_ms = json_number(obj, end, "ended_ms");
	json_string(obj, end, "error", v->error, sizeof v->error);
	json_string(obj, end, "failed_call", v->failed_call, sizeof v->failed_call);
	return 0;
}

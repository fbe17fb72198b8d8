/* See http_load.h. Each thread owns a seeded PRNG so a failing mix can be
 * replayed; counters are merged under a lock at the end of each op. */
#include "http_load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_client.h"
#include "testlib.h"

#define IO_TIMEOUT_MS 5000

struct worker {
	const struct http_load_config *cfg;
	struct http_load_result *res;
	pthread_mutex_t *mu;
	uint64_t end_ns;
	unsigned seed;
};

static void fail(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct worker *w, const char *fmt, ...)
{
	pthread_mutex_lock(w->mu);
	if (!w->res->errors++) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(w->res->first_error, sizeof w->res->first_error, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(w->mu);
}

static void count(struct worker *w, unsigned *counter)
{
	pthread_mutex_lock(w->mu);
	(*counter)++;
	pthread_mutex_unlock(w->mu);
}

static int connect_or_fail(struct worker *w)
{
	int fd = tl_connect_tcp("127.0.0.1", w->cfg->port, IO_TIMEOUT_MS);
	if (fd < 0)
		fail(w, "connect: %s", strerror(errno));
	return fd;
}

/* A client with a small receive window: the buffer must be set before
 * connect (the window scale is fixed by the SYN; shrinking it later stalls
 * the transfer on the persist timer). Loopback connects complete at once. */
static int connect_small_window(struct worker *w)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rcvbuf = 16384;
	int port = w->cfg->slow_port ? w->cfg->slow_port : w->cfg->port;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0 ||
	    connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		fail(w, "connect (small window): %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void leave(int fd, bool rst)
{
	if (rst)
		tl_abort(fd);
	else
		close(fd);
}

/* Request f on c and check the answer. True if it was complete and right. */
static bool fetch(struct worker *w, struct http_conn *c, const struct http_load_file *f,
		  bool keepalive, bool *server_closes)
{
	struct http_resp r;
	if (http_send_get(c, f->path, keepalive, IO_TIMEOUT_MS) < 0) {
		fail(w, "send GET %s: %s", f->path, strerror(errno));
		return false;
	}
	if (http_read_response(c, &r, IO_TIMEOUT_MS) < 0) {
		fail(w, "GET %s: %s", f->path, r.err);
		return false;
	}
	bool ok = r.status == 200 && r.body_len == f->len && !memcmp(r.body, f->data, f->len);
	if (!ok)
		fail(w, "GET %s: status %d, %zu bytes (want 200, %zu bytes)%s", f->path, r.status,
		     r.body_len, f->len, r.body_len == f->len ? ", content differs" : "");
	*server_closes = r.close;
	free(r.body);
	if (ok)
		count(w, &w->res->responses_ok);
	return ok;
}

/* Several requests on one connection, then close (or let the server close). */
static void keepalive_session(struct worker *w)
{
	int fd = connect_or_fail(w);
	if (fd < 0)
		return;
	struct http_conn c;
	http_conn_init(&c, fd);
	int n = 2 + rand_r(&w->seed) % 5;
	for (int i = 0; i < n; i++) {
		const struct http_load_file *f = i % 2 ? w->cfg->big : w->cfg->small;
		bool last = i == n - 1 && rand_r(&w->seed) % 2;
		bool closes;
		if (!fetch(w, &c, f, !last, &closes))
			break;
		if (last || closes) {
			/* The server must close after Connection: close. */
			char b;
			if (tl_read_some(fd, &b, 1, IO_TIMEOUT_MS) != 0)
				fail(w, "no EOF after Connection: close");
			break;
		}
	}
	http_conn_free(&c);
	close(fd);
}

static void one_shot(struct worker *w)
{
	int fd = connect_or_fail(w);
	if (fd < 0)
		return;
	struct http_conn c;
	http_conn_init(&c, fd);
	bool closes;
	fetch(w, &c, rand_r(&w->seed) % 2 ? w->cfg->big : w->cfg->small, false, &closes);
	http_conn_free(&c);
	close(fd);
}

/* Send part of a request line/headers, then go. */
static void abort_mid_request(struct worker *w)
{
	int fd = connect_or_fail(w);
	if (fd < 0)
		return;
	char req[256];
	int len = snprintf(req, sizeof req,
			   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: cancelshim-test\r\n\r\n",
			   w->cfg->big->path);
	int cut = rand_r(&w->seed) % (len - 1); /* never the final '\n' */
	if (cut && tl_write_all(fd, req, cut, IO_TIMEOUT_MS) < 0)
		fail(w, "partial send: %s", strerror(errno));
	leave(fd, rand_r(&w->seed) % 2);
	count(w, &w->res->aborted_request);
}

/* Ask for the big file, read part of it, go. A small receive buffer makes
 * the server wait for us, so we really leave in the middle. */
static void abort_mid_response(struct worker *w)
{
	int fd = connect_small_window(w);
	if (fd < 0)
		return;
	struct http_conn c;
	http_conn_init(&c, fd);
	if (http_send_get(&c, w->cfg->big->path, true, IO_TIMEOUT_MS) < 0) {
		fail(w, "send: %s", strerror(errno));
		close(fd);
		return;
	}
	size_t want = 1 + rand_r(&w->seed) % (w->cfg->big->len / 2);
	char buf[16384];
	size_t got = 0;
	while (got < want) {
		ssize_t n = tl_read_some(fd, buf, sizeof buf, IO_TIMEOUT_MS);
		if (n <= 0) {
			fail(w, "mid-response read after %zu bytes: %s", got,
			     n ? strerror(errno) : "EOF");
			break;
		}
		got += n;
	}
	http_conn_free(&c);
	leave(fd, rand_r(&w->seed) % 2);
	count(w, &w->res->aborted_response);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	for (int i = 0; i < w->cfg->ops_per_thread && tl_now_ns() < w->end_ns; i++) {
		int kind = rand_r(&w->seed) % 10;
		const char *name;
		uint64_t t0 = tl_now_ns();
		if (kind < 3)
			keepalive_session(w), name = "keep-alive session";
		else if (kind < 5)
			one_shot(w), name = "one-shot request";
		else if (kind < 7)
			abort_mid_request(w), name = "abort mid-request";
		else
			abort_mid_response(w), name = "abort mid-response";
		uint64_t took = tl_now_ns() - t0;
		pthread_mutex_lock(w->mu);
		w->res->ops++;
		if (took > w->res->slowest_ns) {
			w->res->slowest_ns = took;
			w->res->slowest_kind = name;
		}
		pthread_mutex_unlock(w->mu);
	}
	return NULL;
}

void http_load_run(const struct http_load_config *cfg, struct http_load_result *res)
{
	memset(res, 0, sizeof *res);
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_t tids[cfg->threads];
	struct worker ws[cfg->threads];
	uint64_t t0 = tl_now_ns();
	for (int i = 0; i < cfg->threads; i++) {
		ws[i] = (struct worker){ cfg, res, &mu, t0 + (uint64_t)cfg->max_ms * 1000000u,
					 0xC0FFEEu + i };
		pthread_create(&tids[i], NULL, worker_main, &ws[i]);
	}
	for (int i = 0; i < cfg->threads; i++)
		pthread_join(tids[i], NULL);
	res->elapsed_ns = tl_now_ns() - t0;
}

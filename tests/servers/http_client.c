/* See http_client.h. Strict on purpose: anything unexpected is an error the
 * test reports, since a half-served response is what we are looking for. */
#include "http_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "testlib.h"

void http_conn_init(struct http_conn *c, int fd)
{
	memset(c, 0, sizeof *c);
	c->fd = fd;
}

void http_conn_free(struct http_conn *c)
{
	free(c->buf);
	c->buf = NULL;
	c->len = c->cap = 0;
}

int http_send_get(struct http_conn *c, const char *path, bool keepalive, int timeout_ms)
{
	char req[512];
	int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path,
			 keepalive ? "" : "Connection: close\r\n");
	return tl_write_all(c->fd, req, n, timeout_ms);
}

/* Receive more bytes into the buffer. >0 bytes, 0 EOF, -1 error. */
static ssize_t fill(struct http_conn *c, uint64_t end)
{
	if (c->cap - c->len < 65536) {
		c->cap = c->cap ? c->cap * 2 : 131072;
		c->buf = realloc(c->buf, c->cap);
		if (!c->buf)
			abort();
	}
	uint64_t now = tl_now_ns();
	int left = now >= end ? 0 : (int)((end - now) / 1000000) + 1;
	ssize_t n = tl_read_some(c->fd, c->buf + c->len, c->cap - c->len - 1, left);
	if (n > 0)
		c->len += n;
	return n;
}

static void consume(struct http_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* The value of a header in the header block, or NULL. */
static const char *header(const char *head, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	for (const char *p = strstr(head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2;
		if (!strncasecmp(h, name, nl) && h[nl] == ':') {
			h += nl + 1;
			while (*h == ' ')
				h++;
			size_t vl = strcspn(h, "\r\n");
			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, h, vl);
			out[vl] = 0;
			return out;
		}
	}
	return NULL;
}

int http_read_response(struct http_conn *c, struct http_resp *r, int timeout_ms)
{
	uint64_t end = tl_now_ns() + (uint64_t)timeout_ms * 1000000u;
	memset(r, 0, sizeof *r);
	char *eoh;
	for (;;) {
		if (c->buf) {
			c->buf[c->len] = 0;
			if ((eoh = strstr(c->buf, "\r\n\r\n")))
				break;
		}
		ssize_t n = fill(c, end);
		if (n <= 0) {
			snprintf(r->err, sizeof r->err, "headers: %s after %zu bytes",
				 n == 0 ? "EOF" : strerror(errno), c->len);
			return -1;
		}
	}
	size_t head_len = eoh - c->buf + 4;
	char *head = strndup(c->buf, head_len);
	consume(c, head_len);

	int minor = 0;
	if (sscanf(head, "HTTP/1.%d %d", &minor, &r->status) != 2) {
		snprintf(r->err, sizeof r->err, "bad status line: %.60s", head);
		free(head);
		return -1;
	}
	char v[64];
	const char *conn = header(head, "Connection", v, sizeof v);
	r->close = conn ? !strcasecmp(conn, "close") : minor == 0;
	long long clen = -1;
	if (header(head, "Content-Length", v, sizeof v))
		clen = atoll(v);
	bool chunked = header(head, "Transfer-Encoding", v, sizeof v) != NULL;
	free(head);
	if (chunked) {
		snprintf(r->err, sizeof r->err, "chunked encoding not supported by this client");
		return -1;
	}
	if (clen < 0)
		r->close = true; /* body runs to EOF */

	for (;;) {
		if (clen >= 0 && c->len >= (size_t)clen)
			break;
		ssize_t n = fill(c, end);
		if (n < 0) {
			snprintf(r->err, sizeof r->err, "body: %s after %zu of %lld bytes",
				 strerror(errno), c->len, clen);
			return -1;
		}
		if (n == 0) {
			if (clen < 0)
				break;
			snprintf(r->err, sizeof r->err, "body: EOF after %zu of %lld bytes", c->len,
				 clen);
			return -1;
		}
	}
	r->body_len = clen >= 0 ? (size_t)clen : c->len;
	r->body = malloc(r->body_len + 1);
	memcpy(r->body, c->buf, r->body_len);
	r->body[r->body_len] = 0;
	consume(c, r->body_len);
	return 0;
}

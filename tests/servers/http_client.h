/* A minimal HTTP/1.x client for the servers suite: enough to send a GET and
 * read one response (Content-Length or read-to-EOF bodies), with deadlines,
 * over one connection that may carry several keep-alive requests. */
#ifndef CS_HTTP_CLIENT_H
#define CS_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

struct http_conn {
	int fd;
	char *buf;        /* bytes received and not yet consumed */
	size_t len, cap;
};

struct http_resp {
	int status;
	bool close;       /* "Connection: close" or HTTP/1.0 without keep-alive */
	char *body;       /* malloc'd, body_len bytes (+ NUL) */
	size_t body_len;
	char err[128];    /* why http_read_response failed */
};

void http_conn_init(struct http_conn *c, int fd);
void http_conn_free(struct http_conn *c); /* frees the buffer, not the fd */

/* Send "GET path HTTP/1.1" with Host and, unless keepalive, Connection: close. */
int http_send_get(struct http_conn *c, const char *path, bool keepalive, int timeout_ms);

/* Read one response. 0, or -1 with r->err set. Free r->body yourself. */
int http_read_response(struct http_conn *c, struct http_resp *r, int timeout_ms);

#endif

/* See pg_wire.h. Messages are a type byte, a big-endian int32 length that
 * counts itself, then the payload; the startup message has no type byte. */
#include "pg_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

static void put32(char *p, uint32_t v)
{
	v = htonl(v);
	memcpy(p, &v, 4);
}

static uint32_t get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return ntohl(v);
}

/* One message: *type, payload malloc'd into *body (len bytes). */
static int read_msg(struct pg_conn *c, char *type, char **body, uint32_t *len, int timeout_ms)
{
	char head[5];
	ssize_t n = tl_read_n(c->fd, head, 5, timeout_ms);
	if (n != 5) {
		snprintf(c->err, sizeof c->err, "connection lost or timed out reading a message (%s)",
			 n < 0 ? strerror(errno) : "EOF");
		return -1;
	}
	*type = head[0];
	*len = get32(head + 1) - 4;
	if (*len > (64u << 20)) {
		snprintf(c->err, sizeof c->err, "absurd message length %u", *len);
		return -1;
	}
	*body = malloc(*len + 1);
	if (*len && tl_read_n(c->fd, *body, *len, timeout_ms) != (ssize_t)*len) {
		snprintf(c->err, sizeof c->err, "short message body");
		free(*body);
		return -1;
	}
	(*body)[*len] = 0;
	return 0;
}

/* The 'M' field of an ErrorResponse: the human-readable message. */
static void error_text(struct pg_conn *c, const char *body, uint32_t len)
{
	for (uint32_t i = 0; i < len && body[i];) {
		const char *field = body + i + 1;
		if (body[i] == 'M') {
			snprintf(c->err, sizeof c->err, "server error: %s", field);
			return;
		}
		i += 1 + strlen(field) + 1;
	}
	snprintf(c->err, sizeof c->err, "server error");
}

int pg_open(struct pg_conn *c, const char *path, int port, int timeout_ms)
{
	c->backend_pid = -1;
	c->err[0] = 0;
	c->fd = path ? tl_connect_unix(path, timeout_ms) : tl_connect_tcp("127.0.0.1", port, timeout_ms);
	if (c->fd < 0) {
		snprintf(c->err, sizeof c->err, "connect: %s", strerror(errno));
		return -1;
	}
	static const char params[] = "user\0postgres\0database\0postgres\0";
	char msg[8 + sizeof params];
	put32(msg, sizeof msg);
	put32(msg + 4, 3u << 16); /* protocol 3.0 */
	memcpy(msg + 8, params, sizeof params); /* ends with the list's extra NUL */
	if (tl_write_all(c->fd, msg, sizeof msg, timeout_ms) < 0) {
		snprintf(c->err, sizeof c->err, "send startup: %s", strerror(errno));
		return -1;
	}
	for (;;) {
		char type;
		char *body;
		uint32_t len;
		if (read_msg(c, &type, &body, &len, timeout_ms) < 0)
			return -1;
		int rc = 1;
		if (type == 'R' && (len < 4 || get32(body) != 0)) {
			snprintf(c->err, sizeof c->err, "server asks for authentication (want trust)");
			rc = -1;
		} else if (type == 'K' && len >= 8) {
			c->backend_pid = (int)get32(body);
		} else if (type == 'E') {
			error_text(c, body, len);
			rc = -1;
		} else if (type == 'Z') {
			rc = 0;
		}
		free(body);
		if (rc <= 0)
			return rc;
	}
}

int pg_send(struct pg_conn *c, const char *sql, int timeout_ms)
{
	size_t n = strlen(sql) + 1;
	char *msg = malloc(5 + n);
	msg[0] = 'Q';
	put32(msg + 1, (uint32_t)(4 + n));
	memcpy(msg + 5, sql, n);
	int rc = tl_write_all(c->fd, msg, 5 + n, timeout_ms);
	if (rc < 0)
		snprintf(c->err, sizeof c->err, "send query: %s", strerror(errno));
	free(msg);
	return rc;
}

int pg_result(struct pg_conn *c, char *value, size_t size, int timeout_ms)
{
	bool have_value = false, failed = false;
	if (value && size)
		value[0] = 0;
	for (;;) {
		char type;
		char *body;
		uint32_t len;
		if (read_msg(c, &type, &body, &len, timeout_ms) < 0)
			return -1;
		if (type == 'D' && !have_value && len >= 6 && value && size) {
			/* int16 column count, then int32 length (-1 = NULL) + bytes. */
			int32_t vlen = (int32_t)get32(body + 2);
			if (vlen > 0 && (uint32_t)vlen <= len - 6)
				snprintf(value, size, "%.*s", (int)vlen, body + 6);
			have_value = true;
		} else if (type == 'E') {
			error_text(c, body, len);
			failed = true;
		}
		free(body);
		if (type == 'Z')
			return failed ? -1 : 0;
	}
}

int pg_query(struct pg_conn *c, const char *sql, char *value, size_t size, int timeout_ms)
{
	if (pg_send(c, sql, timeout_ms) < 0)
		return -1;
	return pg_result(c, value, size, timeout_ms);
}

void pg_close(struct pg_conn *c)
{
	if (c->fd < 0)
		return;
	char msg[5] = { 'X' };
	put32(msg + 1, 4);
	tl_write_all(c->fd, msg, sizeof msg, 1000);
	close(c->fd);
	c->fd = -1;
}

/* A load generator for static-file HTTP servers: a few threads, each running
 * a mix of clients — keep-alive sessions, one-shot requests, and clients that
 * give up mid-request or mid-response (close or RST). Every response it reads
 * to the end is checked byte for byte against the file it asked for. */
#ifndef CS_HTTP_LOAD_H
#define CS_HTTP_LOAD_H

#include <stddef.h>
#include <stdint.h>

struct http_load_file {
	const char *path;     /* URL path, e.g. "/big.bin" */
	const char *data;     /* expected body */
	size_t len;
};

struct http_load_config {
	int port;             /* 127.0.0.1:port */
	int slow_port;        /* for clients leaving mid-response (0: port); a
				 listener with a small send buffer keeps the
				 server mid-write while they read */
	int threads;
	int ops_per_thread;   /* one op = one client (session, request or abort) */
	int max_ms;           /* stop early after this long */
	const struct http_load_file *small, *big;
};

struct http_load_result {
	unsigned ops;
	unsigned responses_ok;   /* complete, verified responses */
	unsigned aborted_request;   /* clients that left mid-request */
	unsigned aborted_response;  /* clients that left mid-response */
	unsigned errors;         /* anything else: wrong status, short body... */
	char first_error[256];
	uint64_t elapsed_ns;
	uint64_t slowest_ns;     /* the longest single op, and what it was */
	const char *slowest_kind;
};

void http_load_run(const struct http_load_config *cfg, struct http_load_result *res);

#endif

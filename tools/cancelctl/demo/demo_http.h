/* The demo's HTTP/JSON client: GET a server's page, read one job's record
 * from its /stats (demo_http.c). */
#ifndef CS_DEMO_HTTP_H
#define CS_DEMO_HTTP_H

#include <stddef.h>

#define JOB_ID "demo"

/* One job as the server's /stats reports it. */
struct job_view {
	char state[16];
	int chunks_total;
	int chunks_done;
	double last_chunk_ms;	/* < 0: none */
	double ended_ms;	/* < 0: running */
	char error[32];
	char failed_call[16];
};

/* Connects to 127.0.0.1:port and sends GET target; the socket, left open
 * for the answer, or -1. */
int http_send_get(int port, const char *target);

/* GET target; the body of a 200 answer into buf. */
int http_get(int port, const char *target, char *buf, size_t size);

/* Job JOB_ID as the server on port reports it; state "pending" while the
 * server has not started it yet. */
int http_get_job(int port, struct job_view *v);

#endif

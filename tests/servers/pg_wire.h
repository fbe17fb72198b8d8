/* Just enough of PostgreSQL's frontend/backend protocol (version 3, simple
 * query, trust authentication) for the servers suite to talk to a real server
 * over a raw socket it controls: it can close or reset that socket whenever it
 * likes, which is the whole point — a client that goes away. */
#ifndef CS_PG_WIRE_H
#define CS_PG_WIRE_H

#include <stddef.h>

struct pg_conn {
	int fd;
	int backend_pid;   /* from BackendKeyData: the process serving us */
	char err[256];     /* why the last call failed (server message or ours) */
};

/* Connect to 127.0.0.1:port (path NULL) or the unix socket at path, start up
 * as user/database "postgres" and wait for ReadyForQuery. 0 or -1 (c->err). */
int pg_open(struct pg_conn *c, const char *path, int port, int timeout_ms);

/* Send one simple-protocol query; do not wait for its result. */
int pg_send(struct pg_conn *c, const char *sql, int timeout_ms);

/* Read until ReadyForQuery. The first column of the first row (text, NULL
 * shown as "") goes to value. 0 if the query succeeded, -1 on a server error
 * (c->err holds its message), a timeout or a lost connection. */
int pg_result(struct pg_conn *c, char *value, size_t size, int timeout_ms);

/* pg_send + pg_result. */
int pg_query(struct pg_conn *c, const char *sql, char *value, size_t size, int timeout_ms);

/* Close politely (Terminate message, then close). */
void pg_close(struct pg_conn *c);

#endif

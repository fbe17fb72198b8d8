/* The client side of the "slow work" servers (slow_http.py, slow_wsgi.py,
 * slow.php behind a proxy): GET /work?id=ID&n=N makes N slow upstream calls
 * and answers "ok ID 1\n" ... "ok ID N\n". Criterion assertions inside: call
 * these from a test only. */
#ifndef CS_SLOW_CLIENT_H
#define CS_SLOW_CLIENT_H

/* Connect to 127.0.0.1:port and send GET <path>?id=<id>&n=<calls>; returns
 * the connected fd (the response is not read). */
int slow_send(int port, const char *path, const char *id, int calls);

/* Read the response on fd, assert it is 200 with the N expected lines,
 * close fd. */
void slow_read_ok(int fd, const char *id, int calls);

#endif

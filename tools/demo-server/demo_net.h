/* Blocking loopback sockets for the demo server and its storage: listen,
 * connect, write everything, read a line. Nothing clever: the demo must use
 * the plain blocking calls a real server uses, because those are the calls
 * the shim cancels. */
#ifndef DEMO_NET_H
#define DEMO_NET_H

#include <stddef.h>
#include <sys/types.h>

/* Listen on 127.0.0.1:port (0 = any free port); *bound_port gets the port. */
int net_listen(int port, int *bound_port);

/* Listens on 127.0.0.1:port, prints "listening on 127.0.0.1:N", then serves
 * each accepted connection in a detached thread running serve((void *)fd),
 * for ever. Returns 1 (said on stderr, prefixed with who) if it cannot
 * listen. Both demo servers are thread-per-connection servers like this. */
int net_serve_threads(int port, const char *who, void *(*serve)(void *));

/* Connect to 127.0.0.1:port. Returns the socket or -1 with errno set. */
int net_connect(int port);

/* Send all of buf (no SIGPIPE). 0, or -1 with errno set. */
int net_write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes. 0, or -1 with errno set (EPIPE on early EOF). */
int net_read_exact(int fd, void *buf, size_t len);

/* Read one '\n'-terminated line (the '\n' is dropped, a '\r' before it too).
 * Returns its length (0 for an empty line or end of stream before any byte:
 * neither is a valid demo message), -1 with errno set (EPIPE at end of stream
 * within a line, EMSGSIZE if the line does not fit). One byte per call: the
 * lines are short and a buffer would only hide bytes from the next reader. */
ssize_t net_read_line(int fd, char *buf, size_t size);

/* CLOCK_MONOTONIC in milliseconds: the clock all demo figures use. */
double mono_ms(void);

#endif

/* The demo's slow storage: a service that takes chunks and acknowledges each
 * one after a delay, and the client side the demo server uses to talk to it.
 *
 * Protocol, one exchange per chunk over one TCP connection per job:
 *   server -> storage   "CHUNK <seq> <ms> <len>\n" then <len> bytes
 *   storage -> server   "ACK <seq>\n"            (after waiting <ms> ms)
 */
#ifndef DEMO_STORAGE_H
#define DEMO_STORAGE_H

/* Run the storage service on 127.0.0.1:port (0 = any free port); prints
 * "listening on 127.0.0.1:PORT" on stdout once it accepts. Never returns
 * unless listening fails (then returns 1). */
int storage_serve(int port);

/* Store one chunk: send it and block until storage acknowledges it.
 * 0, or -1 with errno set; *failed_call names the call that failed. */
int storage_put_chunk(int fd, int seq, int ms, const char **failed_call);

#endif

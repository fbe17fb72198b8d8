/* The browser demo's page server, inside cancelctl. It serves two things on
 * 127.0.0.1: GET / is the page (tools/demo_page.html, embedded at build
 * time) and GET /demo.json tells the page where the two demo servers are,
 * how the job is set and what the shim said about its mode. The page then
 * talks to the demo servers directly (they allow its origin, see
 * demo_server.c), so that the browser's abort closes their connections. */
#ifndef DEMO_WEB_H
#define DEMO_WEB_H

#include <stddef.h>

/* Wait up to wait_ms for a connection on the listening socket lfd and
 * answer it in a thread of its own, with a short deadline. config_json must
 * stay valid and unchanged while the demo runs. Returns 1 if a connection
 * was taken, 0 if none came (or a signal arrived), -1 on a broken listener. */
int web_serve_one(int lfd, const char *config_json, int wait_ms);

/* s as a JSON string body (no quotes) into out; truncated to fit. */
void web_json_escape(const char *s, char *out, size_t size);

#endif

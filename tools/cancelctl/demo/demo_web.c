#include "demo_web.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo_net.h"
#include "demo_page.h"	/* generated from demo_page.html: demo_page[] */

#define CLIENT_DEADLINE_MS 2000

static const char *config;	/* /demo.json, set before the first request */

static void respond(int fd, const char *status, const char *type, const char *body, size_t len)
{
	char head[256];

	snprintf(head, sizeof head,
		 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		 "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
		 "Connection: close\r\n\r\n", status, type, len);
	if (net_write_all(fd, head, strlen(head)) == 0)
		net_write_all(fd, body, len);
}

/* Read the request head; copy its method and path (query dropped). */
static int read_head(int fd, char *method, size_t msize, char *path, size_t psize)
{
	char head[4096], m[8], target[512];
	size_t len = 0;

	while (len < sizeof head - 1) {
		ssize_t n = recv(fd, head + len, sizeof head - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;	/* gone, or the deadline (SO_RCVTIMEO) */
		len += (size_t)n;
		head[len] = '\0';
		if (strstr(head, "\r\n\r\n"))
			break;
	}
	if (sscanf(head, "%7s %511s HTTP/1.%*c", m, target) != 2)
		return -1;
	target[strcspn(target, "?#")] = '\0';
	snprintf(method, msize, "%s", m);
	snprintf(path, psize, "%s", target);
	return 0;
}

/* One connection, in its own thread: a browser opens sockets it uses later
 * or never (preconnects), and one of those must not hold up the page. */
static void *serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char method[8], path[512];

	if (read_head(fd, method, sizeof method, path, sizeof path) < 0)
		goto out;
	if (strcmp(method, "GET"))
		respond(fd, "405 Method Not Allowed", "text/plain", "GET only\n", 9);
	else if (!strcmp(path, "/") || !strcmp(path, "/index.html"))
		respond(fd, "200 OK", "text/html; charset=utf-8", demo_page, sizeof demo_page - 1);
	else if (!strcmp(path, "/demo.json"))
		respond(fd, "200 OK", "application/json", config, strlen(config));
	else
		respond(fd, "404 Not Found", "text/plain", "not found\n", 10);
out:
	close(fd);
	return NULL;
}

int web_serve_one(int lfd, const char *config_json, int wait_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	struct timeval tv = { .tv_sec = CLIENT_DEADLINE_MS / 1000,
			      .tv_usec = (CLIENT_DEADLINE_MS % 1000) * 1000 };
	pthread_t t;
	int n = poll(&p, 1, wait_ms), fd;

	config = config_json;

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	if (n == 0)
		return 0;
	if (p.revents & (POLLERR | POLLNVAL))
		return -1;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return 0;	/* the client gave up already, or a signal */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	/* Ctrl-C is for the main thread, which checks for it between waits. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	n = pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (n != 0) {
		close(fd);
		return 0;
	}
	pthread_detach(t);
	return 1;
}

void web_json_escape(const char *s, char *out, size_t size)
{
	size_t k = 0;

	for (; *s && k + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			k += (size_t)snprintf(out + k, size - k, "\\%c", c);
		else if (c < 0x20)
			k += (size_t)snprintf(out + k, size - k, "\\u%04x", c);
		else
			out[k++] = (char)c;
	}
	out[k] = '\0';
}

/* `cancelctl demo` without --cli, without a browser: it serves the page and
 * /demo.json, the servers it names accept the page's origin (CORS), the
 * shim's mode is said from the shim's own line, and Ctrl-C ends it and every
 * server it started. The browser itself is tests/browser's business. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo_testlib.h"

TestSuite(demo_web, .timeout = 60);

static char *cancelctl(void)
{
	char *path = getenv("CS_CANCELCTL");

	cr_assert(path, "CS_CANCELCTL is not set (run through meson test)");
	return path;
}

/* GET target with an Origin header; the whole response (head and body). */
static void get_raw(int port, const char *target, const char *origin, char *resp, size_t size)
{
	char req[512];
	struct timeval tv = { .tv_sec = 5 };
	size_t len = 0;
	ssize_t n;
	int fd = connect_port(port);

	cr_assert_geq(fd, 0, "connect to %d: %s", port, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: %s\r\n\r\n",
		 target, origin);
	cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	while (len < size - 1 && (n = recv(fd, resp + len, size - 1 - len, 0)) > 0)
		len += (size_t)n;
	resp[len] = '\0';
	close(fd);
}

static int json_int(const char *json, const char *key)
{
	const char *p = strstr(json, key);
	int v = -1;

	cr_assert(p && sscanf(p + strlen(key), "%d", &v) == 1, "no %s in %s", key, json);
	return v;
}

static void assert_refused(int port)
{
	int fd = connect_port(port);

	if (fd >= 0)
		close(fd);
	cr_assert(fd < 0 && errno == ECONNREFUSED, "port %d still accepts after cancelctl exited",
		  port);
}

Test(demo_web, serves_the_page_and_ends_on_ctrl_c)
{
	static char resp[262144];
	struct proc demo;
	char origin[64];
	const char *open_line;
	int page_port = -1, ports[3], plain_port, shimmed_port, status;

	proc_start(&demo, (char *[]){ cancelctl(), "demo", "--chunks", "20", "--ms", "50", NULL },
		   NULL);
	cr_assert(proc_read_until(&demo, "Ctrl-C here ends the demo.", 15000), "output:\n%s",
		  demo.buf);
	open_line = strstr(demo.buf, "Open http://127.0.0.1:");
	cr_assert(open_line && sscanf(open_line, "Open http://127.0.0.1:%d/", &page_port) == 1,
		  "output:\n%s", demo.buf);
	cr_assert(sscanf(strstr(demo.buf, "storage on "), "storage on 127.0.0.1:%d, plain server on "
			 "127.0.0.1:%d, shimmed server on 127.0.0.1:%d", &ports[0], &ports[1],
			 &ports[2]) == 3, "output:\n%s", demo.buf);
	/* The mode in force, from the shim's own line. */
	cr_assert(strstr(demo.buf, "mode: CANCELSHIM_MODE=auto; the shim says: active: mode "),
		  "output:\n%s", demo.buf);

	/* The page, embedded in cancelctl. */
	get_raw(page_port, "/", "null", resp, sizeof resp);
	cr_assert(!strncmp(resp, "HTTP/1.1 200 ", 13), "%.300s", resp);
	cr_assert(strstr(resp, "Content-Type: text/html"), "%.300s", resp);
	cr_assert(strstr(resp, "<title>cancelshim demo</title>"), "%.300s", resp);
	cr_assert(strstr(resp, "AbortController"), "the page has no AbortController");
	cr_assert(strstr(resp, "</html>"), "the page is cut short");

	/* Where the servers are, the job, and the shim's line. */
	get_raw(page_port, "/demo.json", "null", resp, sizeof resp);
	cr_assert(!strncmp(resp, "HTTP/1.1 200 ", 13), "%.300s", resp);
	plain_port = json_int(resp, "\"plain\":{\"port\":");
	shimmed_port = json_int(resp, "\"shimmed\":{\"port\":");
	cr_assert_eq(plain_port, ports[1]);
	cr_assert_eq(shimmed_port, ports[2]);
	cr_assert_eq(json_int(resp, "\"chunks\":"), 20);
	cr_assert_eq(json_int(resp, "\"ms\":"), 50);
	cr_assert(strstr(resp, "\"active\":\"mode "), "%s", resp);

	get_raw(page_port, "/nothing", "null", resp, sizeof resp);
	cr_assert(!strncmp(resp, "HTTP/1.1 404 ", 13), "%.300s", resp);

	/* Both servers let the page read their answers, and only the page. */
	snprintf(origin, sizeof origin, "http://127.0.0.1:%d", page_port);
	for (int i = 0; i < 2; i++) {
		int port = i ? shimmed_port : plain_port;
		char want[128];

		snprintf(want, sizeof want, "\r\nAccess-Control-Allow-Origin: %s\r\n", origin);
		get_raw(port, "/stats", origin, resp, sizeof resp);
		cr_assert(strstr(resp, want), "port %d: %s", port, resp);
		get_raw(port, "/stats", "http://example.com", resp, sizeof resp);
		cr_assert(!strstr(resp, "Access-Control-Allow-Origin"), "port %d: %s", port, resp);
	}

	/* Ctrl-C is the normal end: status 0, nothing left listening. */
	kill(demo.pid, SIGINT);
	status = proc_wait(&demo, 10000);
	cr_assert_eq(status, 0, "exit status %d; output:\n%s", status, demo.buf);
	cr_assert(strstr(demo.buf, "the servers and the storage have ended"), "output:\n%s", demo.buf);
	assert_refused(page_port);
	for (int i = 0; i < 3; i++)
		assert_refused(ports[i]);
}

/* --port P: the page on P, the storage and servers on P+1..P+3; a P that is
 * taken fails at once, before any server starts. */
Test(demo_web, port_option)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof a;
	struct proc demo;
	char port[16];
	int fd = socket(AF_INET, SOCK_STREAM, 0), status;

	/* A port someone listens on. */
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(listen(fd, 1), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	snprintf(port, sizeof port, "%d", ntohs(a.sin_port));

	proc_start(&demo, (char *[]){ cancelctl(), "demo", "--port", port, NULL }, NULL);
	status = proc_wait(&demo, 10000);
	close(fd);
	cr_assert_eq(status, 1, "exit status %d; output:\n%s", status, demo.buf);
	cr_assert(strstr(demo.buf, "cannot listen on 127.0.0.1:"), "output:\n%s", demo.buf);
	cr_assert(!strstr(demo.buf, "storage on"), "servers started anyway:\n%s", demo.buf);
}

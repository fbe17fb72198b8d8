/* fault-host: an ordinary server for the fault-injection suite; nothing in
 * it knows about cancelshim.
 *
 *   fault-host threads|single UPSTREAM_PORT
 *
 * Listens on 127.0.0.1:0 and prints "listening port=P". Each client sends
 * one line "ID N": the server makes N calls to the upstream (connect, send
 * "ID I\n", blocking recv of the one-line answer, close), then answers
 * "ok ID N\n" and closes. "threads" serves each client on its own thread
 * (thread per connection); "single" serves them one after the other on the
 * main thread and never creates a thread, so that every clone() in the
 * process is the shim's. The request "quit 0" ends the program with exit
 * status 0.
 *
 * Every event is one stdout line, without times or descriptor numbers, so
 * that two runs with the same requests print the same lines:
 *   done id=ID n=N
 *   error id=ID i=I errno=E        (a call to the upstream failed)
 *   lost id=ID errno=E             (the answer to the client could not be sent)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int upstream_port;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&out_lock);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
}

/* Reads up to a newline; returns its length without it, or -1. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len - 1) {
		ssize_t n = recv(fd, buf + got, 1, 0);
		if (n <= 0)
			return -1;
		if (buf[got] == '\n')
			break;
		got++;
	}
	buf[got] = 0;
	return (int)got;
}

static int upstream_call(const char *id, int i)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port) };
	char line[128];
	int fd, n, e = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return errno;
	n = snprintf(line, sizeof line, "%s %d\n", id, i);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 || send(fd, line, (size_t)n, MSG_NOSIGNAL) != n)
		e = errno;
	else if (read_line(fd, line, sizeof line) < 0)
		e = errno ? errno : EPIPE;
	close(fd);
	return e;
}

static void serve(int fd)
{
	char req[128], id[64], answer[128];
	int n = 0, e = 0, len;

	if (read_line(fd, req, sizeof req) < 0 || sscanf(req, "%63s %d", id, &n) != 2) {
		close(fd);
		return;
	}
	if (!strcmp(id, "quit")) {
		say("bye");
		exit(0);
	}
	for (int i = 1; i <= n; i++)
		if ((e = upstream_call(id, i))) {
			say("error id=%s i=%d errno=%d", id, i, e);
			close(fd);
			return;
		}
	len = snprintf(answer, sizeof answer, "ok %s %d\n", id, n);
	if (send(fd, answer, (size_t)len, MSG_NOSIGNAL) != len)
		say("lost id=%s errno=%d", id, errno);
	else
		say("done id=%s n=%d", id, n);
	close(fd);
}

static void *serve_thread(void *arg)
{
	serve((int)(long)arg);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof a;
	int threads, l;

	if (argc != 3 || (strcmp(argv[1], "threads") && strcmp(argv[1], "single"))) {
		fprintf(stderr, "usage: fault-host threads|single UPSTREAM_PORT\n");
		return 2;
	}
	threads = !strcmp(argv[1], "threads");
	upstream_port = atoi(argv[2]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(l, 64) < 0 || getsockname(l, (struct sockaddr *)&a, &alen) < 0) {
		perror("fault-host: listen");
		return 1;
	}
	say("listening port=%d", ntohs(a.sin_port));
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		int e;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("fault-host: accept");
			return 1;
		}
		if (!threads)
			serve(c);
		else if ((e = pthread_create(&t, NULL, serve_thread, (void *)(long)c)) == 0)
			pthread_detach(t);
		else {
			say("nothread errno=%d", e);
			close(c);
		}
	}
}

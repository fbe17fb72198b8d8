/* A tiny thread-per-connection HTTP server for the throughput and
 * connection-rate figures (bench/run): one detached thread per accepted
 * connection, blocking reads, a 2-byte response to every request, keep-alive
 * unless the request says "Connection: close". It is the kind of server the
 * shim binds threads in, so every request goes through the shim's bound path.
 *
 *     tpc_server [PORT]     prints "port=N pid=P" once listening (0 = any)
 *
 * With TPC_WAIT_US=N in the environment, each request first sleeps N µs: a
 * call a cancel could fail, so the shim starts watching the connection (in
 * mode epoll with one epoll_ctl, in mode ebpf with none). bench/run counts
 * system calls per connection both ways.
 */
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
static const char reply_close[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

static long wait_us;	/* TPC_WAIT_US */

static void *serve(void *arg)
{
	int c = (int)(long)arg;
	char buf[4096];
	size_t have = 0;

	for (;;) {
		ssize_t n = read(c, buf + have, sizeof buf - 1 - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		buf[have] = 0;
		char *end;
		/* Pipelined requests are answered one by one. */
		while ((end = strstr(buf, "\r\n\r\n"))) {
			*end = 0;
			if (wait_us) {
				struct timespec ts = { wait_us / 1000000, wait_us % 1000000 * 1000 };
				nanosleep(&ts, NULL);
			}
			int close_it = strcasestr(buf, "connection: close") != NULL;
			const char *r = close_it ? reply_close : reply;
			size_t len = close_it ? sizeof reply_close - 1 : sizeof reply - 1;
			if (write(c, r, len) != (ssize_t)len || close_it)
				goto out;
			have -= (size_t)(end + 4 - buf);
			memmove(buf, end + 4, have + 1);
		}
		if (have == sizeof buf - 1)
			break;	/* a header this large is not ours */
	}
out:
	close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 0, one = 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	pthread_attr_t attr;

	signal(SIGPIPE, SIG_IGN);
	if (getenv("TPC_WAIT_US"))
		wait_us = atol(getenv("TPC_WAIT_US"));
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096) ||
	    getsockname(l, (struct sockaddr *)&a, &al)) {
		perror("tpc_server: listen");
		return 1;
	}
	printf("port=%d pid=%d\n", ntohs(a.sin_port), (int)getpid());
	fflush(stdout);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 128 * 1024);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		if (c < 0)
			continue;
		if (pthread_create(&t, &attr, serve, (void *)(long)c))
			close(c);
	}
}

/* The "wasted work" server (bench/wasted_work.py): thread-per-connection; a
 * request "ID STEPS\n" runs STEPS steps of one upstream call (a line to the
 * upstream, its answer) followed by CPU_MS of computation, then answers
 * "done\n". A server that does not notice its client leaving runs every
 * step; under the shim the upstream call after the disconnect fails with
 * ECANCELED and the request ends there (its error path).
 *
 *     wasted_server UPSTREAM_PORT CPU_MS     prints "port=N" once listening
 *
 * On stdout, for the driver to measure the work done after the abort:
 *     mark ID T_NS CPU_NS        at every change between waiting and computing
 *     end ID T_NS CPU_NS STEPS ERRNO
 * T_NS is CLOCK_MONOTONIC, CPU_NS the thread's CPU time.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int upstream_port, cpu_ms;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static long long clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void say(const char *what, long id, const char *tail)
{
	char line[160];
	int n = snprintf(line, sizeof line, "%s %ld %lld %lld%s\n", what, id, clock_ns(CLOCK_MONOTONIC),
			 clock_ns(CLOCK_THREAD_CPUTIME_ID), tail);
	pthread_mutex_lock(&out_lock);
	(void)!write(1, line, (size_t)n);
	pthread_mutex_unlock(&out_lock);
}

static volatile unsigned long sink;

static void compute(int ms)
{
	long long until = clock_ns(CLOCK_THREAD_CPUTIME_ID) + ms * 1000000LL;
	unsigned long x = sink;
	while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < until)
		for (int i = 0; i < 10000; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

/* One upstream call: a line out, a line back. -1 with errno on failure. */
static int upstream_call(int u, long id, int step)
{
	char line[64], b;
	int n = snprintf(line, sizeof line, "%ld %d\n", id, step);
	if (send(u, line, (size_t)n, MSG_NOSIGNAL) != n)
		return -1;
	do {
		ssize_t r = recv(u, &b, 1, 0);
		if (r <= 0) {
			if (r == 0)
				errno = ECONNRESET;
			return -1;
		}
	} while (b != '\n');
	return 0;
}

static void *serve(void *arg)
{
	int c = (int)(long)arg, u = -1, done = 0, err = 0, steps = 0;
	long id = -1;
	char req[64];
	ssize_t n = read(c, req, sizeof req - 1);

	if (n <= 0 || (req[n] = 0, sscanf(req, "%ld %d", &id, &steps) != 2))
		goto out;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(upstream_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	say("mark", id, "");
	if (connect(u, (struct sockaddr *)&a, sizeof a) < 0) {
		err = errno;
		goto end;
	}
	for (; done < steps; done++) {
		if (upstream_call(u, id, done) < 0) {
			err = errno;
			break;
		}
		say("mark", id, "");
		compute(cpu_ms);
		say("mark", id, "");
	}
end:;
	char tail[40];
	snprintf(tail, sizeof tail, " %d %d", done, err);
	say("end", id, tail);
	(void)!write(c, "done\n", 5);
out:
	if (u >= 0)
		close(u);
	close(c);
	return NULL;
}

int main(int argc, char **argv)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	char line[32];

	if (argc != 3)
		return 2;
	upstream_port = atoi(argv[1]);
	cpu_ms = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 128) || getsockname(l, (struct sockaddr *)&a, &al))
		return 1;
	int len = snprintf(line, sizeof line, "port=%d\n", ntohs(a.sin_port));
	(void)!write(1, line, (size_t)len);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		if (c >= 0 && pthread_create(&t, NULL, serve, (void *)(long)c) == 0)
			pthread_detach(t);
		else if (c >= 0)
			close(c);
	}
}

/* Cancel latency: from the moment a client closes its connection to the
 * moment the server thread's blocked upstream call returns ECANCELED. Both
 * ends read CLOCK_MONOTONIC on the same machine, so the difference is the
 * whole path: the FIN or RST through the loopback, the shim's watcher waking,
 * the cancel signal, the call's return.
 *
 *     cancel_latency run SHIM N fin|rst OUT    spawns "serve" under SHIM,
 *         aborts N requests one after the other, writes each latency (ns)
 *         to OUT, one a line, and prints "n=.. missed=.. p50_us=.. ..."
 *     cancel_latency serve                     the server (run by "run")
 *
 * The environment is passed on to the server, so CANCELSHIM_MODE etc. reach
 * the shim. One request at a time: each latency is measured alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stats_layout.h"	/* common/: the statistics segment's layout */

#include "bench_util.h"

/* ---- server ---- */

static int upstream;	/* a socket nobody ever writes to: the "slow upstream" */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void *serve_one(void *arg)
{
	int c = (int)(long)arg;
	char b;

	if (read(c, &b, 1) == 1 && write(c, "R", 1) == 1) {
		/* The thread is bound to c (it did I/O on it); now it waits for
		 * an upstream that never answers, as a request doing real work
		 * would. Only a cancel ends this call. */
		ssize_t n = recv(upstream, &b, 1, 0);
		long long t = now_ns();
		int e = n < 0 ? errno : 0;
		char line[64];
		int len = snprintf(line, sizeof line, "%lld %d\n", t, e);
		pthread_mutex_lock(&out_lock);
		(void)!write(1, line, (size_t)len);
		pthread_mutex_unlock(&out_lock);
	}
	close(c);
	return NULL;
}

static int serve(void)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), sv[2], one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	pthread_attr_t attr;
	char line[32];

	signal(SIGPIPE, SIG_IGN);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || bind(l, (struct sockaddr *)&a, sizeof a) ||
	    listen(l, 128) || getsockname(l, (struct sockaddr *)&a, &al))
		return 1;
	upstream = sv[0];
	int len = snprintf(line, sizeof line, "port=%d\n", ntohs(a.sin_port));
	(void)!write(1, line, (size_t)len);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;
		if (c >= 0 && pthread_create(&t, &attr, serve_one, (void *)(long)c))
			close(c);
	}
}

/* ---- client ---- */

/* The shim's own latency histogram from the server's statistics segment:
 * from the moment the disconnect was known (in mode ebpf the kernel's
 * timestamp of the TCP event; in mode epoll the watcher's wake-up) to the
 * cancelled call's return. Log2 buckets, so percentiles are bucket bounds:
 * "p99_le_us=256" means 99% took under 256 µs. */
static void shim_histogram(pid_t pid, char *out, size_t len)
{
	char path[64];
	uint64_t c[CS_LATENCY_BUCKETS], total = 0, seen = 0;
	double want[] = { 0.5, 0.99 };
	const char *name[] = { "shim_p50_le_us", "shim_p99_le_us" };
	int fd, w = 0;
	size_t used = 0;

	out[0] = 0;
	struct stat ns;
	snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)pid);
	if (stat(path, &ns) < 0)
		return;
	snprintf(path, sizeof path, CS_SEG_DIR "/" CS_SEG_PREFIX "%llu.%d", (unsigned long long)ns.st_ino, (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (pread(fd, c, sizeof c, CS_SEG_HEADER_SIZE + CS_STAT_LATENCY * sizeof(uint64_t)) != (ssize_t)sizeof c) {
		close(fd);
		return;
	}
	close(fd);
	for (int b = 0; b < CS_LATENCY_BUCKETS; b++)
		total += c[b];
	for (int b = 0; b < CS_LATENCY_BUCKETS && w < 2 && total; b++) {
		seen += c[b];
		while (w < 2 && seen >= want[w] * total) {
			used += (size_t)snprintf(out + used, len - used, " %s=%llu", name[w], 1ull << b);
			w++;
		}
	}
}

static int run(const char *shim, long n, int rst, const char *out_path)
{
	int out, port;
	char line[128];
	long long *lat = calloc((size_t)n, sizeof *lat);
	long got = 0, missed = 0, wrong = 0;
	pid_t pid;

	if (!lat || (pid = spawn_server("cancel_latency", shim, NULL, 5000, &out, &port)) < 0)
		return 2;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	for (long i = 0; i < n; i++) {
		int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char b = 'x';
		if (connect(s, (struct sockaddr *)&a, sizeof a) || write(s, &b, 1) != 1 || read(s, &b, 1) != 1) {
			close(s);
			missed++;
			continue;
		}
		/* The server wrote "R" just before entering its upstream call;
		 * give it a moment to be inside it, so we time a blocked call. */
		struct timespec pause = { 0, 100 * 1000 };
		nanosleep(&pause, NULL);
		if (rst) {
			struct linger lg = { 1, 0 };
			setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		}
		long long t0 = now_ns();
		close(s);
		long long t1;
		int e;
		if (read_line(out, line, sizeof line, 2000) || sscanf(line, "%lld %d", &t1, &e) != 2) {
			missed++;	/* the call was not cancelled within 2 s */
			continue;
		}
		if (e != ECANCELED)
			wrong++;
		lat[got++] = t1 - t0;
	}
	char hist[128];
	shim_histogram(pid, hist, sizeof hist);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	FILE *f = fopen(out_path, "w");
	if (!f)
		return 2;
	for (long i = 0; i < got; i++)
		fprintf(f, "%lld\n", lat[i]);
	fclose(f);
	qsort(lat, (size_t)got, sizeof *lat, cmp_ll);
#define PCT(p) (got ? lat[(long)((p) * (got - 1))] / 1000.0 : -1)
	printf("n=%ld missed=%ld not_ecanceled=%ld p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f%s\n",
	       got, missed, wrong, PCT(0.5), PCT(0.9), PCT(0.99), got ? lat[got - 1] / 1000.0 : -1, hist);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc == 6 && !strcmp(argv[1], "run"))
		return run(argv[2], atol(argv[3]), !strcmp(argv[4], "rst"), argv[5]);
	fprintf(stderr, "usage: %s run SHIM N fin|rst OUT | serve\n", argv[0]);
	return 2;
}

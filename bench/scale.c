/* Scale: N concurrent tracked connections, then a storm of N disconnects.
 *
 *     scale run SHIM N KEEP OUT.json    (SHIM "" = without the shim)
 *     scale serve N                     the server (run by "run")
 *
 * The server is a pool of N+KEEP worker threads (64 KiB stacks) fed by one
 * acceptor. A worker reads the client's 4-byte index (now it is bound to that
 * connection), answers "R", and waits on an upstream that never answers, the
 * way a request doing real work waits. When that call returns it prints
 * "INDEX ERRNO T_NS".
 *
 * The client opens N+KEEP connections, waits for every "R", reads the
 * server's RSS and the CPU time of its watcher thread (the one named
 * "cancelshim"), closes the first N connections as fast as it can (the
 * storm), and collects the server's lines: a closed connection whose call
 * returned ECANCELED is cancelled, one that never returned is lost, and any
 * of the KEEP connections still open whose call returned is spurious.
 */
#include <dirent.h>
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
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static void raise_nofile(void)
{
	struct rlimit r;
	/* As high as the hard limit allows (raising the hard limit needs
	 * CAP_SYS_RESOURCE, which a container may not grant). */
	if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
		r.rlim_cur = r.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &r))
			perror("scale: RLIMIT_NOFILE");
	}
}

/* ---- server: an acceptor and a pool of workers ---- */

static int upstream;
static int *queue, q_head, q_tail, q_size;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER, out_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;

static void *worker(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&q_lock);
		while (q_head == q_tail)
			pthread_cond_wait(&q_cond, &q_lock);
		int c = queue[q_head++ % q_size];
		pthread_mutex_unlock(&q_lock);

		int idx;
		char b;
		if (read(c, &idx, sizeof idx) == sizeof idx && write(c, "R", 1) == 1) {
			ssize_t n = recv(upstream, &b, 1, 0);
			char line[64];
			int len = snprintf(line, sizeof line, "%d %d %lld\n", idx, n < 0 ? errno : 0, now_ns());
			pthread_mutex_lock(&out_lock);
			(void)!write(1, line, (size_t)len);
			pthread_mutex_unlock(&out_lock);
		}
		close(c);
	}
	return arg;
}

static int serve(int n)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), sv[2], one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	pthread_attr_t attr;
	char line[64];

	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || bind(l, (struct sockaddr *)&a, sizeof a) ||
	    listen(l, 4096) || getsockname(l, (struct sockaddr *)&a, &al))
		return 1;
	upstream = sv[0];
	q_size = 2 * n + 16;
	queue = calloc((size_t)q_size, sizeof *queue);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, &attr, worker, NULL)) {
			fprintf(stderr, "scale: only %d workers\n", i);
			return 1;
		}
	}
	int len = snprintf(line, sizeof line, "port=%d\n", ntohs(a.sin_port));
	(void)!write(1, line, (size_t)len);
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		pthread_mutex_lock(&q_lock);
		queue[q_tail++ % q_size] = c;
		pthread_cond_signal(&q_cond);
		pthread_mutex_unlock(&q_lock);
	}
}

/* ---- client ---- */

static long rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

/* CPU seconds (utime+stime) of the server's thread named "cancelshim", or -1. */
static double watcher_cpu(pid_t pid)
{
	char path[320], buf[1024];
	double s = -1;
	snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%d/task/%s/stat", (int)pid, e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *close_paren = strrchr(buf, ')');
		if (!strstr(buf, "(cancelshim)") || !close_paren)
			continue;
		/* Fields after the command: state is field 3, utime 14, stime 15. */
		unsigned long ut, st;
		if (sscanf(close_paren + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
			s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
	}
	if (d)
		closedir(d);
	return s;
}

static int run(const char *shim, int n, int keep, const char *out_path)
{
	int total = n + keep, out, port;
	char line[128], count[32];
	pid_t pid;

	raise_nofile();
	snprintf(count, sizeof count, "%d", total);
	if ((pid = spawn_server("scale", shim, count, 30000, &out, &port)) < 0)
		return 2;
	long rss_idle = rss_kb(pid);
	int *s = calloc((size_t)total, sizeof *s);
	long long *closed_at = calloc((size_t)n, sizeof *closed_at), *lat = calloc((size_t)n, sizeof *lat);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	/* Open in batches, each waited for, so the listen backlog never overflows. */
	for (int b0 = 0; b0 < total; b0 += 500) {
		int b1 = b0 + 500 < total ? b0 + 500 : total;
		for (int i = b0; i < b1; i++) {
			s[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (s[i] < 0 || connect(s[i], (struct sockaddr *)&a, sizeof a) ||
			    write(s[i], &i, sizeof i) != sizeof i) {
				fprintf(stderr, "scale: connection %d: %s\n", i, strerror(errno));
				kill(pid, SIGKILL);
				return 2;
			}
		}
		for (int i = b0; i < b1; i++) {
			char r;
			if (read(s[i], &r, 1) != 1) {
				fprintf(stderr, "scale: connection %d got no answer\n", i);
				kill(pid, SIGKILL);
				return 2;
			}
		}
	}
	/* Every worker is now blocked, bound to its connection. Let the
	 * watcher finish registering the last ones before measuring. */
	usleep(300 * 1000);
	long rss_loaded = rss_kb(pid);
	double cpu0 = watcher_cpu(pid);
	long long t0 = now_ns();
	for (int i = 0; i < n; i++) {
		closed_at[i] = now_ns();
		close(s[i]);
	}
	long long storm_ns = now_ns() - t0;

	int cancelled = 0, other = 0, spurious = 0, got = 0;
	char *seen = calloc((size_t)total, 1);
	while (got < n && read_line(out, line, sizeof line, 5000) == 0) {
		int idx, e;
		long long t;
		if (sscanf(line, "%d %d %lld", &idx, &e, &t) != 3 || idx < 0 || idx >= total || seen[idx])
			continue;
		seen[idx] = 1;
		if (idx >= n) {
			spurious++;
			continue;
		}
		if (e == ECANCELED)
			lat[cancelled++] = t - closed_at[idx];
		else
			other++;
		got++;
	}
	long long done_ns = now_ns() - t0;
	/* Anything still arriving for the connections left open is spurious. */
	while (read_line(out, line, sizeof line, 500) == 0) {
		int idx;
		if (sscanf(line, "%d", &idx) == 1 && idx >= n && idx < total && !seen[idx]++)
			spurious++;
	}
	double cpu1 = watcher_cpu(pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	for (int i = n; i < total; i++)
		close(s[i]);

	qsort(lat, (size_t)cancelled, sizeof *lat, cmp_ll);
	FILE *f = fopen(out_path, "w");
	if (!f)
		return 2;
	fprintf(f, "{\"connections\": %d, \"kept_open\": %d, \"cancelled\": %d, \"returned_otherwise\": %d, "
		   "\"lost\": %d, \"spurious\": %d, \"storm_close_s\": %.3f, \"all_returned_s\": %.3f, "
		   "\"rss_idle_kb\": %ld, \"rss_loaded_kb\": %ld, \"watcher_cpu_s\": %.2f, "
		   "\"latency_p50_us\": %.1f, \"latency_p99_us\": %.1f, \"latency_max_us\": %.1f}\n",
		n, keep, cancelled, other, n - got, spurious, storm_ns / 1e9, done_ns / 1e9, rss_idle, rss_loaded,
		cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1.0,
		cancelled ? lat[cancelled / 2] / 1e3 : -1.0, cancelled ? lat[(long)(0.99 * (cancelled - 1))] / 1e3 : -1.0,
		cancelled ? lat[cancelled - 1] / 1e3 : -1.0);
	fclose(f);
	printf("%s: %d connections: cancelled %d, lost %d, spurious %d; storm %.3f s, all back in %.3f s; "
	       "RSS %ld -> %ld kB; watcher CPU %.2f s\n", *shim ? "shim" : "plain", n, cancelled, n - got, spurious,
	       storm_ns / 1e9, done_ns / 1e9, rss_idle, rss_loaded, cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1.0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "run"))
		return run(argv[2], atoi(argv[3]), atoi(argv[4]), argv[5]);
	fprintf(stderr, "usage: %s run SHIM N KEEP OUT.json | serve N\n", argv[0]);
	return 2;
}

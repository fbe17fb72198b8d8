/* What the benchmark programs that run their own server under the shim
 * share (cancel_latency.c, scale.c): the clock, reading the server's stdout
 * line by line, sorting samples, and starting "PROGRAM serve [ARG]" with
 * LD_PRELOAD on the server only. Header-only: bench/run compiles each
 * program from one file. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static inline long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* One line from fd, or -1 after timeout_ms. */
static inline int read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	size_t n = 0;
	while (n + 1 < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, timeout_ms) <= 0 || read(fd, buf + n, 1) != 1)
			return -1;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return 0;
}

static inline int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

/* Starts this program as "serve [arg]" with our environment plus
 * LD_PRELOAD=shim (none if shim is ""): only the server is shimmed, never
 * the client measuring it. Its stdout comes back through *out; waits up to
 * timeout_ms for its "port=N" line. The server's pid, or -1 (said on stderr,
 * prefixed with name). */
static inline pid_t spawn_server(const char *name, const char *shim, const char *arg, int timeout_ms, int *out,
				 int *port)
{
	char pre[4096], self[4096], line[128];
	char *argv[] = { self, "serve", (char *)arg, NULL };
	posix_spawn_file_actions_t fa;
	int envc = 0, k = 0, pipefd[2];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	pid_t pid;

	while (environ[envc])
		envc++;
	char **env = calloc((size_t)envc + 2, sizeof *env);
	if (!env || sl <= 0 || pipe2(pipefd, O_CLOEXEC))
		return -1;
	self[sl] = 0;
	for (int i = 0; i < envc; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	snprintf(pre, sizeof pre, "LD_PRELOAD=%s", shim);
	if (*shim)
		env[k++] = pre;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	if (posix_spawn(&pid, self, &fa, NULL, argv, env))
		return -1;
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	close(pipefd[1]);
	if (read_line(pipefd[0], line, sizeof line, timeout_ms) || sscanf(line, "port=%d", port) != 1) {
		fprintf(stderr, "%s: server did not start\n", name);
		kill(pid, SIGKILL);
		return -1;
	}
	*out = pipefd[0];
	return pid;
}

#endif

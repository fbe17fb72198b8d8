/* See proc.h. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

struct buf {
	char *p;
	size_t n, cap;
};

static void buf_read(int fd, struct buf *b, bool *open)
{
	if (b->cap - b->n < 4096) {
		b->cap = b->cap * 2 + 8192;
		b->p = realloc(b->p, b->cap);
	}
	ssize_t got = read(fd, b->p + b->n, b->cap - b->n - 1);
	if (got > 0)
		b->n += (size_t)got;
	else if (got == 0 || errno != EINTR)
		*open = false;
	b->p[b->n] = '\0';
}

void proc_run(const char *const argv[], const char *const env[], int timeout_ms,
	      struct proc_result *r)
{
	*r = (struct proc_result){ .status = -1 };
	int out[2], err[2];
	if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
		abort();
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	pid_t pid;
	int rc = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, (char *const *)env);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	struct buf bo = { calloc(1, 1), 0, 1 }, be = { calloc(1, 1), 0, 1 };
	bool oo = rc == 0, eo = rc == 0;
	long long deadline = now_ms() + timeout_ms;
	while (oo || eo) {
		struct pollfd p[2] = { { oo ? out[0] : -1, POLLIN, 0 }, { eo ? err[0] : -1, POLLIN, 0 } };
		long long left = deadline - now_ms();
		if (left <= 0 || poll(p, 2, (int)left) == 0) {
			r->timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		if (p[0].revents)
			buf_read(out[0], &bo, &oo);
		if (p[1].revents)
			buf_read(err[0], &be, &eo);
	}
	close(out[0]);
	close(err[0]);
	r->out = bo.p;
	r->err = be.p;
	if (rc != 0)
		return;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void proc_free(struct proc_result *r)
{
	free(r->out);
	free(r->err);
	*r = (struct proc_result){ 0 };
}

const char *const *proc_env(const char *const extra[])
{
	static const char *env[64];
	size_t n = 0;
	env[n++] = "PATH=/usr/bin:/bin:/usr/sbin:/sbin";
	env[n++] = "HOME=/root";
	env[n++] = "LC_ALL=C";
	for (size_t i = 0; extra && extra[i] && n < 63; i++) {
		size_t kl = strcspn(extra[i], "=") + 1;
		size_t k = 0;
		while (k < n && strncmp(env[k], extra[i], kl))
			k++;
		env[k] = extra[i];	/* replaces a base entry of the same name */
		if (k == n)
			n++;
	}
	env[n] = NULL;
	return env;
}

const char *proc_line_value(const char *text, const char *key, char *buf, int size)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, key, kl) && p[kl] == '=') {
			const char *v = p + kl + 1;
			snprintf(buf, (size_t)size, "%.*s", (int)strcspn(v, "\n"), v);
			return buf;
		}
	}
	return NULL;
}

/* Spawned programs: posix_spawn with an explicit environment, stdout/stderr
 * captured by one reader thread per program so the test can wait for lines
 * (events) instead of sleeping. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct capture {
	int fd;     /* read end, -1 once at EOF */
	char *buf;  /* always NUL-terminated */
	size_t len, cap;
};

struct tl_proc {
	pid_t pid;
	bool reaped;
	int status;

	pthread_t reader;
	int stop_pipe[2]; /* written by tl_proc_free to stop the reader early */
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast on new output and at EOF */
	struct capture out, err;
	size_t line_pos; /* tl_proc_wait_line has consumed stdout up to here */
};

static void capture_append(struct capture *c, const char *data, size_t n)
{
	if (c->len + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 4096;
		while (cap < c->len + n + 1)
			cap *= 2;
		char *b = realloc(c->buf, cap);
		if (!b)
			abort();
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, data, n);
	c->len += n;
	c->buf[c->len] = 0;
}

static void *reader_main(void *arg)
{
	struct tl_proc *p = arg;
	char chunk[16384];

	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = p->out.fd, .events = POLLIN },
			{ .fd = p->err.fd, .events = POLLIN },
			{ .fd = p->stop_pipe[0], .events = POLLIN },
		};
		if (p->out.fd < 0 && p->err.fd < 0)
			break;
		if (poll(fds, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[2].revents)
			break;
		for (int i = 0; i < 2; i++) {
			struct capture *c = i ? &p->err : &p->out;
			if (!fds[i].revents)
				continue;
			ssize_t n = read(c->fd, chunk, sizeof chunk);
			if (n < 0 && errno == EINTR)
				continue;
			pthread_mutex_lock(&p->mu);
			if (n > 0) {
				capture_append(c, chunk, n);
			} else {
				close(c->fd);
				c->fd = -1;
			}
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
	pthread_mutex_lock(&p->mu);
	for (int i = 0; i < 2; i++) {
		struct capture *c = i ? &p->err : &p->out;
		if (c->fd >= 0) {
			close(c->fd);
			c->fd = -1;
		}
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Deadline as an absolute CLOCK_MONOTONIC timespec (the condvar's clock). */
static struct timespec deadline_after(int timeout_ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Wait on p->cv (mutex held) until the deadline. False once it has passed. */
static bool wait_until(struct tl_proc *p, const struct timespec *dl, int timeout_ms)
{
	if (timeout_ms < 0)
		return pthread_cond_wait(&p->cv, &p->mu) == 0;
	return pthread_cond_timedwait(&p->cv, &p->mu, dl) != ETIMEDOUT;
}

static bool name_matches(const char *entry, const char *other)
{
	size_t n = strcspn(entry, "=");
	return strncmp(entry, other, n) == 0 && other[n] == '=';
}

/* The child's environment: ours, overridden by env, plus the shim. */
static char **build_env(const char *const env[], unsigned flags, char **ld_preload_out)
{
	size_t n_environ = 0, n_env = 0;
	while (environ[n_environ])
		n_environ++;
	while (env && env[n_env])
		n_env++;
	char **out = calloc(n_environ + n_env + 2, sizeof *out);
	if (!out)
		return NULL;
	size_t k = 0;
	const char *preload = NULL;

	for (size_t i = 0; i < n_environ; i++) {
		bool replaced = false;
		for (size_t j = 0; j < n_env && !replaced; j++)
			replaced = name_matches(env[j], environ[i]);
		if ((flags & TL_SHIM) && name_matches("LD_PRELOAD=", environ[i])) {
			if (!replaced)
				preload = environ[i] + strlen("LD_PRELOAD=");
			continue;
		}
		if (!replaced)
			out[k++] = environ[i];
	}
	for (size_t j = 0; j < n_env; j++) {
		if ((flags & TL_SHIM) && name_matches("LD_PRELOAD=", env[j])) {
			preload = env[j] + strlen("LD_PRELOAD=");
			continue;
		}
		out[k++] = (char *)env[j];
	}
	*ld_preload_out = NULL;
	if (flags & TL_SHIM) {
		const char *shim = tl_shim_path();
		if (!shim) {
			free(out);
			errno = ENOENT;
			return NULL;
		}
		if (preload && *preload)
			*ld_preload_out = tl_strdupf("LD_PRELOAD=%s:%s", preload, shim);
		else
			*ld_preload_out = tl_strdupf("LD_PRELOAD=%s", shim);
		out[k++] = *ld_preload_out;
	}
	out[k] = NULL;
	return out;
}

struct tl_proc *tl_spawn(const char *const argv[], const char *const env[], unsigned flags)
{
	char *ld_preload = NULL;
	char **envp = build_env(env, flags, &ld_preload);
	if (!envp)
		return NULL;

	struct tl_proc *p = calloc(1, sizeof *p);
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int rc = -1, saved;

	p->stop_pipe[0] = p->stop_pipe[1] = -1;
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    pipe2(p->stop_pipe, O_CLOEXEC) < 0)
		goto fail;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);

	/* Own process group (to kill nginx's workers with the master), and no
	 * signal state inherited from the runner (an ignored SIGPIPE would
	 * survive exec and change how the server behaves). */
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					 POSIX_SPAWN_SETSIGDEF);

	rc = posix_spawnp(&p->pid, argv[0], &fa, &attr, (char *const *)argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		errno = rc;
		goto fail;
	}
	close(outp[1]);
	close(errp[1]);
	p->out.fd = outp[0];
	p->err.fd = errp[0];
	capture_append(&p->out, "", 0);
	capture_append(&p->err, "", 0);

	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->mu, NULL);
	if (pthread_create(&p->reader, NULL, reader_main, p) != 0)
		abort();
	free(envp);
	free(ld_preload);
	return p;

fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (outp[i] >= 0)
			close(outp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (p->stop_pipe[i] >= 0)
			close(p->stop_pipe[i]);
	}
	free(p);
	free(envp);
	free(ld_preload);
	errno = saved;
	return NULL;
}

pid_t tl_proc_pid(const struct tl_proc *p)
{
	return p->pid;
}

char *tl_proc_wait_line(struct tl_proc *p, const char *substr, int timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	char *found = NULL;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		char *nl;
		while ((nl = memchr(p->out.buf + p->line_pos, '\n', p->out.len - p->line_pos))) {
			char *line = p->out.buf + p->line_pos;
			size_t n = nl - line;
			p->line_pos += n + 1;
			if (!substr || !*substr || memmem(line, n, substr, strlen(substr))) {
				found = strndup(line, n);
				goto out;
			}
		}
		if (p->out.fd < 0) {
			/* EOF: a last line without '\n' still counts. */
			char *line = p->out.buf + p->line_pos;
			size_t n = p->out.len - p->line_pos;
			p->line_pos = p->out.len;
			if (n && (!substr || memmem(line, n, substr, strlen(substr))))
				found = strndup(line, n);
			goto out;
		}
		if (!wait_until(p, &dl, timeout_ms))
			goto out;
	}
out:
	pthread_mutex_unlock(&p->mu);
	return found;
}

bool tl_proc_wait_stderr(struct tl_proc *p, const char *substr, int timeout_ms)
{
	struct timespec dl = deadline_after(timeout_ms);
	bool found;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		found = strstr(p->err.buf, substr) != NULL;
		if (found || p->err.fd < 0 || !wait_until(p, &dl, timeout_ms))
			break;
	}
	pthread_mutex_unlock(&p->mu);
	return found;
}

static char *copy_capture(struct tl_proc *p, struct capture *c)
{
	pthread_mutex_lock(&p->mu);
	char *s = strdup(c->buf);
	pthread_mutex_unlock(&p->mu);
	return s;
}

char *tl_proc_stdout(struct tl_proc *p)
{
	return copy_capture(p, &p->out);
}

char *tl_proc_stderr(struct tl_proc *p)
{
	return copy_capture(p, &p->err);
}

int tl_proc_signal(struct tl_proc *p, int sig)
{
	if (p->reaped) {
		errno = ESRCH;
		return -1;
	}
	return kill(p->pid, sig);
}

/* Wait for both pipes to reach EOF, until the deadline. */
static void drain(struct tl_proc *p, const struct timespec *dl, int timeout_ms)
{
	pthread_mutex_lock(&p->mu);
	while ((p->out.fd >= 0 || p->err.fd >= 0) && wait_until(p, dl, timeout_ms))
		;
	pthread_mutex_unlock(&p->mu);
}

int tl_proc_wait(struct tl_proc *p, int timeout_ms)
{
	if (p->reaped)
		return p->status;
	struct timespec dl = deadline_after(timeout_ms);
	uint64_t end = tl_now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		int st;
		pid_t r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid) {
			p->reaped = true;
			p->status = st;
			break;
		}
		if (r < 0 && errno != EINTR)
			return -1;
		if (timeout_ms >= 0 && tl_now_ns() >= end) {
			errno = ETIMEDOUT;
			return -1;
		}
		/* Reaping has no event to wait on without pidfds; 1 ms polls
		 * keep the latency negligible. */
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
	drain(p, &dl, timeout_ms);
	return p->status;
}

int tl_proc_stop(struct tl_proc *p, int sig, int timeout_ms)
{
	if (p->reaped)
		return p->status;
	kill(p->pid, sig);
	int st = tl_proc_wait(p, timeout_ms);
	if (st >= 0)
		return st;
	killpg(p->pid, SIGKILL);
	kill(p->pid, SIGKILL);
	return tl_proc_wait(p, 5000);
}

void tl_proc_free(struct tl_proc *p)
{
	if (!p)
		return;
	/* Descendants (nginx workers, a forking server's children) die with
	 * the group even when the leader already exited. */
	killpg(p->pid, SIGKILL);
	if (!p->reaped) {
		kill(p->pid, SIGKILL);
		tl_proc_wait(p, 5000);
	}
	struct timespec dl = deadline_after(1000);
	drain(p, &dl, 1000);
	/* A descendant outside the group may still hold the pipes: stop anyway. */
	(void)!write(p->stop_pipe[1], "x", 1);
	pthread_join(p->reader, NULL);
	close(p->stop_pipe[0]);
	close(p->stop_pipe[1]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->out.buf);
	free(p->err.buf);
	free(p);
}

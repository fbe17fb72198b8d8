/* See demo_child.h: the demo's children, started with fork+exec. Each
 * one's stdout is a pipe that gives us its "listening on" line; its stderr is
 * a memfd we read afterwards (the shim's log, shown on failure or -v). Each
 * dies with us (PR_SET_PDEATHSIG) and is reaped on every path out. */
#include "demo_child.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_net.h"

#define READY_TIMEOUT_MS 5000
#define POLL_EVERY_MS 10

extern char **environ;

volatile sig_atomic_t demo_interrupted;

/* Directory of the running cancelctl, symlinks resolved. */
static int self_dir(char *out, size_t size)
{
	char exe[PATH_MAX];

	if (!realpath("/proc/self/exe", exe))
		return -1;
	snprintf(out, size, "%s", dirname(exe));
	return 0;
}

/* The demo server is installed (and built) next to cancelctl. */
int child_find_server(char *out, size_t size)
{
	char dir[PATH_MAX];

	if (self_dir(dir, sizeof dir) < 0)
		return -1;
	snprintf(out, size, "%s/cancelshim-demo-server", dir);
	return access(out, X_OK);
}

/* Our environment without any preload or shim setting, plus `add` (NULL-
 * terminated). For the shimmed server the caller adds LD_PRELOAD and the
 * mode, and keeps the user's other CANCELSHIM_* settings (keep_shim_vars). */
char **child_env(int keep_shim_vars, char *const add[])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	for (size_t i = 0; add[i]; i++)
		n++;
	env = calloc(n + 1, sizeof *env);
	if (!env)
		return NULL;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11) || !strncmp(*e, "CANCELSHIM_MODE=", 16) ||
		    !strncmp(*e, "CANCELSHIM_LIB=", 15))
			continue;
		if (!keep_shim_vars && !strncmp(*e, "CANCELSHIM_", 11))
			continue;
		env[k++] = *e;
	}
	for (size_t i = 0; add[i]; i++)
		env[k++] = add[i];
	env[k] = NULL;
	return env;
}

int child_spawn(struct child *c, char *const argv[], char *const envp[])
{
	int out[2];
	pid_t parent = getpid();

	c->log_fd = memfd_create(c->name, MFD_CLOEXEC);
	if (c->log_fd < 0 || pipe2(out, O_CLOEXEC) < 0) {
		fprintf(stderr, "cancelctl demo: %s: %s\n", c->name, strerror(errno));
		return -1;
	}
	c->pid = fork();
	if (c->pid < 0) {
		fprintf(stderr, "cancelctl demo: fork: %s\n", strerror(errno));
		c->pid = 0;
		close(out[0]);
		close(out[1]);
		return -1;
	}
	if (c->pid == 0) {
		/* Die with cancelctl, even if it is killed with SIGKILL. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(out[1], STDOUT_FILENO);
		dup2(c->log_fd, STDERR_FILENO);
		execve(argv[0], argv, envp);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	c->out_fd = out[0];
	return 0;
}

/* Reap c if it has exited. Returns 1 if it is gone. */
int child_gone(struct child *c)
{
	if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->pid = 0;
	return c->pid == 0;
}

void child_describe_exit(struct child *c)
{
	c->failed = 1;
	if (WIFSIGNALED(c->status))
		fprintf(stderr, "cancelctl demo: the %s died: %s\n", c->name,
			strsignal(WTERMSIG(c->status)));
	else
		fprintf(stderr, "cancelctl demo: the %s exited with status %d\n", c->name,
			WEXITSTATUS(c->status));
}

/* Print the child's stderr so far (its last `max` bytes), each line indented. */
void child_show_log(const struct child *c, size_t max, FILE *out)
{
	off_t size = c->log_fd >= 0 ? lseek(c->log_fd, 0, SEEK_END) : -1;
	off_t from = size > (off_t)max ? size - (off_t)max : 0;
	char *buf;

	if (c->log_fd < 0)
		return;	/* never started */
	if (size <= 0) {
		fprintf(out, "--- the %s wrote nothing on stderr ---\n", c->name);
		return;
	}
	if (!(buf = malloc((size_t)(size - from) + 1)))
		return;
	ssize_t n = pread(c->log_fd, buf, (size_t)(size - from), from);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(out, "--- stderr of the %s%s ---\n", c->name, from ? " (end)" : "");
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			fprintf(out, "  | %s\n", line);
	}
	free(buf);
}

/* Find `needle` in the child's stderr; copy the rest of that line to out. */
int child_find_in_log(const struct child *c, const char *needle, char *out, size_t size)
{
	char buf[65536];
	ssize_t n = c->log_fd >= 0 ? pread(c->log_fd, buf, sizeof buf - 1, 0) : -1;
	char *p;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, needle);
	if (!p)
		return -1;
	p += strlen(needle);
	snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
	return 0;
}

void child_stop(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		for (int i = 0; i < 100 && !child_gone(c); i++)
			poll(NULL, 0, POLL_EVERY_MS);
		if (c->pid > 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			c->pid = 0;
		}
	}
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->log_fd >= 0)
		close(c->log_fd);
	c->out_fd = c->log_fd = -1;
}

/* Wait for "listening on 127.0.0.1:PORT" on the child's stdout, then check
 * that the port accepts a connection. */
int child_wait_listening(struct child *c)
{
	char line[128];
	size_t len = 0;
	double deadline = mono_ms() + READY_TIMEOUT_MS;

	while (!memchr(line, '\n', len)) {
		struct pollfd p = { .fd = c->out_fd, .events = POLLIN };
		int left = (int)(deadline - mono_ms());
		ssize_t n;

		if (demo_interrupted)
			return -1;
		if (left <= 0) {
			fprintf(stderr, "cancelctl demo: the %s did not start within %d ms\n",
				c->name, READY_TIMEOUT_MS);
			c->failed = 1;
			return -1;
		}
		if (poll(&p, 1, left) <= 0)
			continue;
		n = read(c->out_fd, line + len, sizeof line - 1 - len);
		if (n <= 0 || (len += (size_t)n) >= sizeof line - 1) {
			poll(NULL, 0, 50);	/* let it finish dying, for the message */
			if (child_gone(c))
				child_describe_exit(c);
			else
				fprintf(stderr, "cancelctl demo: the %s said no 'listening on' line\n",
					c->name);
			c->failed = 1;
			return -1;
		}
	}
	line[len] = '\0';
	if (sscanf(line, "listening on 127.0.0.1:%d", &c->port) != 1) {
		fprintf(stderr, "cancelctl demo: the %s said: %s", c->name, line);
		c->failed = 1;
		return -1;
	}
	int fd = net_connect(c->port);
	if (fd < 0) {
		fprintf(stderr, "cancelctl demo: the %s does not accept on port %d: %s\n",
			c->name, c->port, strerror(errno));
		c->failed = 1;
		return -1;
	}
	close(fd);
	return 0;
}

#include "demo_testlib.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

extern char **environ;

double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

void proc_start(struct proc *p, char *const argv[], char *const envp[])
{
	int fds[2];
	pid_t parent = getpid();

	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	memset(p, 0, sizeof *p);
	p->pid = fork();
	cr_assert_geq(p->pid, 0, "fork: %s", strerror(errno));
	if (p->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		execve(argv[0], argv, envp ? envp : environ);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	p->out = fds[0];
}

/* One read with a deadline: 1 if bytes came, 0 at EOF, -1 on timeout. */
static int read_some(struct proc *p, double deadline)
{
	struct pollfd pfd = { .fd = p->out, .events = POLLIN };
	int left = (int)(deadline - now_ms());
	ssize_t n;

	if (left <= 0 || poll(&pfd, 1, left) <= 0)
		return -1;
	if (p->len >= sizeof p->buf - 1)
		return 0;	/* full: treat as the end */
	n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
	if (n <= 0)
		return 0;
	p->len += (size_t)n;
	p->buf[p->len] = '\0';
	return 1;
}

int proc_read_until(struct proc *p, const char *needle, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;

	while (!strstr(p->buf, needle))
		if (read_some(p, deadline) <= 0)
			return 0;
	return 1;
}

int proc_wait(struct proc *p, int timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	int r;

	while ((r = read_some(p, deadline)) > 0)
		;
	if (r < 0) {
		proc_kill(p);
		return -1;
	}
	while (p->pid > 0) {
		if (waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
			p->pid = 0;
			break;
		}
		if (now_ms() > deadline) {
			proc_kill(p);
			return -1;
		}
		poll(NULL, 0, 10);
	}
	return WIFEXITED(p->status) ? WEXITSTATUS(p->status) : 128 + WTERMSIG(p->status);
}

void proc_kill(struct proc *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		waitpid(p->pid, &p->status, 0);
		p->pid = 0;
	}
	if (p->out > 0)
		close(p->out);
	p->out = -1;
}

int start_demo_server(struct proc *p, const char *arg1, const char *arg2)
{
	const char *root = getenv("CS_BUILD_ROOT");
	char path[4096];
	const char *line;
	int port = -1;

	cr_assert(root, "CS_BUILD_ROOT is not set (run through meson test)");
	snprintf(path, sizeof path, "%s/tools/cancelshim-demo-server", root);
	proc_start(p, (char *[]){ path, (char *)arg1, (char *)arg2, NULL }, NULL);
	cr_assert(proc_read_until(p, "\n", 5000), "%s %s %s said: %s", path, arg1, arg2, p->buf);
	line = strstr(p->buf, "listening on 127.0.0.1:");
	cr_assert(line && sscanf(line, "listening on 127.0.0.1:%d", &port) == 1,
		  "unexpected first line: %s", p->buf);
	return port;
}

int connect_port(int port)
{
	return tl_connect_tcp("127.0.0.1", port, 5000);
}

int http_get(int port, const char *target, char *body, size_t size)
{
	char req[512], resp[65536];
	struct timeval tv = { .tv_sec = 10 };
	size_t len = 0;
	ssize_t n;
	int status = -1;
	int fd = connect_port(port);
	char *b;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		close(fd);
		return -1;
	}
	while (len < sizeof resp - 1 && (n = recv(fd, resp + len, sizeof resp - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	resp[len] = '\0';
	b = strstr(resp, "\r\n\r\n");
	if (sscanf(resp, "HTTP/1.1 %d ", &status) != 1 || !b)
		return -1;
	snprintf(body, size, "%s", b + 4);
	return status;
}

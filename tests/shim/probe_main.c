#include "probe.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

void out(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void die(const char *what)
{
	fprintf(stderr, "cs-probe: %s: %s\n", what, strerror(errno));
	exit(3);
}

int64_t probe_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

pid_t probe_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

int probe_listen(const char *family, struct endpoint *ep)
{
	int fd;
	memset(ep, 0, sizeof *ep);
	if (!strcmp(family, "unix")) {
		static _Atomic int serial;
		struct sockaddr_un *un = (struct sockaddr_un *)&ep->addr;
		ep->family = AF_UNIX;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof un->sun_path, "/tmp/cs-probe-%d-%d.sock", getpid(), atomic_fetch_add(&serial, 1));
		unlink(un->sun_path);
		ep->len = sizeof *un;
	} else if (!strcmp(family, "v6")) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ep->addr;
		ep->family = AF_INET6;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		ep->len = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ep->addr;
		ep->family = AF_INET;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ep->len = sizeof *in;
	}
	fd = socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (ep->family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ep->addr, ep->len) < 0)
		die("bind");
	if (listen(fd, 512) < 0)
		die("listen");
	getsockname(fd, (struct sockaddr *)&ep->addr, &ep->len);
	return fd;
}

int probe_connect(const struct endpoint *ep)
{
	int fd = socket(ep->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, (const struct sockaddr *)&ep->addr, ep->len) < 0)
		die("connect");
	return fd;
}

void probe_close_peer(int fd, int rst)
{
	if (rst) {
		struct linger l = { 1, 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(fd);
}

int probe_wait_blocked(pid_t pid, pid_t tid, int timeout_ms)
{
	char path[64], buf[256];
	int64_t end = probe_now_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec pause = { 0, 50000 };

	snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
	while (probe_now_ns() < end) {
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 && errno == EMFILE) {
			/* A test that exhausts descriptors on purpose: all that
			 * can be done is to give the thread time to block. */
			struct timespec grace = { 0, 200000000 };
			nanosleep(&grace, NULL);
			return 0;
		}
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n > 0) {
			buf[n] = 0;
			char *p = strrchr(buf, ')');
			if (p && p[1] == ' ' && p[2] == 'S') {
				char sys[64];
				snprintf(path, sizeof path, "/proc/%d/task/%d/syscall", pid, tid);
				fd = open(path, O_RDONLY | O_CLOEXEC);
				n = fd >= 0 ? read(fd, sys, sizeof sys - 1) : -1;
				if (fd >= 0)
					close(fd);
				snprintf(path, sizeof path, "/proc/%d/task/%d/stat", pid, tid);
				if (n > 0) {
					sys[n] = 0;
					if (strncmp(sys, "202 ", 4) && strncmp(sys, "running", 7))
						return 0;
				}
			}
		}
		nanosleep(&pause, NULL);
	}
	errno = ETIMEDOUT;
	return -1;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} scenarios[] = {
	{ "cancel", scenario_cancel }, { "loop", scenario_loop },     { "inert", scenario_inert },     { "late", scenario_late },
	{ "fork", scenario_fork },     { "race", scenario_race },
	{ "churn", scenario_churn },   { "spawn", scenario_spawn },     { "errno", scenario_errno },
	{ "host", scenario_host },
	{ "backlog", scenario_backlog },
	{ "pool", scenario_pool },
	{ "deepown", scenario_deepown },
	{ "kcancel", scenario_kcancel },
};

int main(int argc, char **argv)
{
	/* A descriptor limit, to make the shim's own resources run out:
	 * CS_PROBE_NOFILE=+N leaves room for N more descriptors. */
	if (getenv("CS_PROBE_NOFILE")) {
		int room = atoi(getenv("CS_PROBE_NOFILE") + 1), fds[64], last = 0;
		for (int i = 0; i < room && i < 64; i++)
			last = fds[i] = fcntl(0, F_DUPFD_CLOEXEC, 0);
		for (int i = 0; i < room && i < 64; i++)
			close(fds[i]);
		struct rlimit rl = { (rlim_t)last + 1, (rlim_t)last + 1 };
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	/* A lost wake-up would hang a scenario: end it instead. */
	alarm(getenv("CS_PROBE_ALARM") ? (unsigned)atoi(getenv("CS_PROBE_ALARM")) : 60);
	if (argc < 2) {
		fprintf(stderr, "usage: cs-probe SCENARIO [ARGS...]\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
		if (!strcmp(argv[1], scenarios[i].name))
			return scenarios[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cs-probe: unknown scenario %s\n", argv[1]);
	return 2;
}

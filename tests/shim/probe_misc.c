/* Processes started by a thread serving a client, and errno across the
 * shim's bookkeeping. */
#include "probe.h"

#include <errno.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct spawned {
	int fd, up[2];
	int spawn_status, vfork_status, system_status, ret, err;
	_Atomic pid_t tid;
	_Atomic int ready;
};

static void *spawn_server(void *arg)
{
	struct spawned *s = arg;
	char c, *argv[] = { "/bin/sh", "-c", "exit 7", NULL };
	pid_t pid;
	int st;

	atomic_store(&s->tid, probe_gettid());
	read(s->fd, &c, 1);	/* bound from here on */
	if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0 && waitpid(pid, &st, 0) == pid)
		s->spawn_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	pid = vfork();
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", "exit 8", (char *)NULL);
		_exit(127);
	}
	if (pid > 0 && waitpid(pid, &st, 0) == pid)
		s->vfork_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	st = system("exit 9");
	s->system_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	atomic_store(&s->ready, 1);
	errno = 0;
	s->ret = (int)recv(s->up[0], &c, 1, 0);
	s->err = s->ret < 0 ? errno : 0;
	return NULL;
}

/* spawn: a bound thread runs posix_spawn, vfork+exec and system(); then the
 * client goes away and its upstream call is still cancelled. */
int scenario_spawn(int argc, char **argv)
{
	struct endpoint ep;
	struct spawned s;
	pthread_t t;
	int l = probe_listen("v4", &ep), c;

	memset(&s, 0, sizeof s);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.up) < 0)
		die("socketpair");
	c = probe_connect(&ep);
	s.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	pthread_create(&t, NULL, spawn_server, &s);
	write(c, "x", 1);
	while (!atomic_load(&s.ready))
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&s.tid), 5000) < 0)
		die("never blocked");
	close(c);
	pthread_join(t, NULL);
	out("spawn posix_spawn=%d vfork=%d system=%d first_errno=%d", s.spawn_status, s.vfork_status,
	    s.system_status, s.err);
	return 0;
}

/* errno: successful calls that make the shim do bookkeeping (accept,
 * binding I/O, dup, epoll_ctl, close) leave errno as the program set it. */
int scenario_errno(int argc, char **argv)
{
	struct endpoint ep;
	int l = probe_listen("v4", &ep), c = probe_connect(&ep), changed = 0, s, d, ep_fd;
	char ch = 'x';

#define KEEPS(expr)                          \
	do {                                 \
		errno = EDOM;                \
		(void)(expr);                \
		changed += errno != EDOM;    \
	} while (0)
	KEEPS(s = accept4(l, NULL, NULL, SOCK_CLOEXEC));
	KEEPS(write(c, &ch, 1));
	KEEPS(read(s, &ch, 1));	/* binds: starts the watcher and the signal handler */
	KEEPS(write(s, &ch, 1));
	KEEPS(d = dup(s));
	KEEPS(ep_fd = epoll_create1(0));
	struct epoll_event ev = { .events = EPOLLIN };
	KEEPS(epoll_ctl(ep_fd, EPOLL_CTL_ADD, d, &ev));
	KEEPS(close(d));
	KEEPS(close(ep_fd));
	KEEPS(close(s));
	KEEPS(close(c));
#undef KEEPS
	out("errno changed=%d", changed);
	return 0;
}

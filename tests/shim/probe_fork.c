/* fork: children of a process whose other threads are busy inside the shim,
 * and prefork serving (accept in the parent, serve in the child). */
#include "probe.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static _Atomic int stop;

/* Accepts, binds, closes, over and over: the registry, the table and the
 * watcher are all in use when the main thread forks. */
static void *noise(void *arg)
{
	struct endpoint ep;
	int l = probe_listen("unix", &ep);
	char c;
	(void)arg;
	while (!atomic_load(&stop)) {
		int cl = probe_connect(&ep), s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		write(cl, "x", 1);
		read(s, &c, 1);
		struct pollfd p = { s, POLLIN, 0 };
		poll(&p, 1, 0);
		close(s);
		close(cl);
	}
	close(l);
	return NULL;
}

struct served {
	int fd, up[2], ret, err;
	_Atomic pid_t tid;
	_Atomic int ready;
};

static void *serve_one(void *arg)
{
	struct served *s = arg;
	char c;
	atomic_store(&s->tid, probe_gettid());
	read(s->fd, &c, 1);
	atomic_store(&s->ready, 1);
	errno = 0;
	s->ret = (int)recv(s->up[0], &c, 1, 0);
	s->err = s->ret < 0 ? errno : 0;
	return NULL;
}

/* In a child: one full cancel. Exit status 0 when the call was cancelled. */
static int child_cancel(void)
{
	struct endpoint ep;
	struct served s;
	pthread_t t;
	int l = probe_listen("v4", &ep), c;

	memset(&s, 0, sizeof s);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s.up) < 0)
		return 3;
	c = probe_connect(&ep);
	s.fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	pthread_create(&t, NULL, serve_one, &s);
	write(c, "x", 1);
	while (!atomic_load(&s.ready))
		sched_yield();
	if (probe_wait_blocked(getpid(), atomic_load(&s.tid), 5000) < 0)
		return 4;
	close(c);
	pthread_join(t, NULL);
	if (s.err != ECANCELED)
		fprintf(stderr, "child %d: recv returned %d errno %d\n", (int)getpid(), s.ret, s.err);
	return s.err == ECANCELED ? 0 : 1;
}

static int wait_child(pid_t pid, int timeout_ms, int *status)
{
	int64_t end = probe_now_ns() + (int64_t)timeout_ms * 1000000;
	struct timespec p = { 0, 1000000 };
	while (probe_now_ns() < end) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		nanosleep(&p, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

static int threaded_forks(int n)
{
	pthread_t th[2];
	int ok = 0, hung = 0, failed = 0;

	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, noise, NULL);
	for (int i = 0; i < n; i++) {
		struct timespec p = { 0, (i % 7) * 100000 };
		nanosleep(&p, NULL);
		pid_t pid = fork();
		if (pid == 0) {
			alarm(10);
			_exit(child_cancel());
		}
		int status;
		if (wait_child(pid, 15000, &status) < 0)
			hung++;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
		else {
			failed++;
			fprintf(stderr, "child %d: status %#x\n", (int)pid, status);
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	out("fork children=%d ok=%d failed=%d hung=%d", n, ok, failed, hung);
	return 0;
}

/* The parent accepts and forks; the child reads the request and works;
 * the client (in the parent) goes away. */
static int prefork(int n, const char *family)
{
	struct endpoint ep;
	int l = probe_listen(family, &ep), ok = 0;

	for (int i = 0; i < n; i++) {
		int up[2], c = probe_connect(&ep), s = accept4(l, NULL, NULL, SOCK_CLOEXEC), status;
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up) < 0)
			die("socketpair");
		pid_t pid = fork();
		if (pid == 0) {
			char ch;
			alarm(10);
			close(l);
			close(c);	/* only the parent holds the client side */
			read(s, &ch, 1);
			errno = 0;
			int r = (int)recv(up[0], &ch, 1, 0);
			_exit(r < 0 && errno == ECANCELED ? 0 : 1);
		}
		close(s);
		write(c, "x", 1);
		if (probe_wait_blocked(pid, pid, 5000) < 0)
			die("child never blocked");
		probe_close_peer(c, i % 2);
		if (wait_child(pid, 5000, &status) == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
		close(up[0]);
		close(up[1]);
	}
	out("prefork children=%d ok=%d", n, ok);
	return 0;
}

/* fork threaded N | fork prefork N FAMILY */
int scenario_fork(int argc, char **argv)
{
	int n = argc > 2 ? atoi(argv[2]) : 10;
	if (argc > 1 && !strcmp(argv[1], "prefork"))
		return prefork(n, argc > 3 ? argv[3] : "v4");
	return threaded_forks(n);
}

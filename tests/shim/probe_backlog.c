/* Clients that leave while still in the accept queue: a server that has
 * served before (its watcher runs) stops accepting, N clients connect, send
 * a request and leave (FIN or RST), and only once the kernel has processed
 * every one of those closes does the server accept them all. Each is served
 * by its own thread, which reads the request and then waits on an upstream
 * socket: every wait must be cancelled (its client is gone), none may run to
 * its timeout. */
#include "probe.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <spawn.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 3000	/* a wait that was not cancelled ends here: a miss */

struct backlog {
	int up[2];
	_Atomic int cancelled, missed, other;
};

struct worker {
	struct backlog *b;
	int fd;
	pthread_t thread;
};

static void *serve_one(void *arg)
{
	struct worker *w = arg;
	struct pollfd p = { w->b->up[0], POLLIN, 0 };
	char c;
	int r;

	(void)!read(w->fd, &c, 1);	/* the request (or ECONNRESET): binds this thread */
	r = poll(&p, 1, WAIT_MS);
	if (r < 0 && errno == ECANCELED)
		atomic_fetch_add(&w->b->cancelled, 1);
	else if (r == 0)
		atomic_fetch_add(&w->b->missed, 1);
	else
		atomic_fetch_add(&w->b->other, 1);
	close(w->fd);
	return NULL;
}

/* Server-side connections on port still ESTABLISHED (or SYN-RECV): their
 * client's close has not been processed yet. Asked of the kernel (ss). */
static int not_yet_closed(const struct endpoint *ep)
{
	char cmd[160], line[256];
	int port = ntohs(((const struct sockaddr_in *)&ep->addr)->sin_port), n = 0;
	FILE *f;

	snprintf(cmd, sizeof cmd, "ss -Htn state established state syn-recv '( sport = :%d )' 2>/dev/null", port);
	if (!(f = popen(cmd, "r")))
		die("popen ss");
	while (fgets(line, sizeof line, f))
		n++;
	pclose(f);
	return n;
}

/* The shim's watcher thread (named "cancelshim"), or 0. */
static pid_t watcher_tid(void)
{
	char path[300], comm[32];
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t tid = 0;

	while (d && !tid && (e = readdir(d))) {
		FILE *f;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (fgets(comm, sizeof comm, f) && !strcmp(comm, "cancelshim\n"))
				tid = atoi(e->d_name);
			fclose(f);
		}
	}
	if (d)
		closedir(d);
	return tid;
}

/* The process is stopped (SIGSTOP) by a child, which plays the clients and
 * continues it once the kernel has processed their closes. */
static void clients_while_stopped(const struct endpoint *ep, int n, int rst)
{
	pid_t parent = getpid(), child = fork();
	char path[64], buf[512];

	if (child < 0)
		die("fork");
	if (child > 0)
		return;
	kill(parent, SIGSTOP);
	snprintf(path, sizeof path, "/proc/%d/stat", (int)parent);
	for (;;) {	/* until the whole process is stopped */
		FILE *f = fopen(path, "r");
		char *p = f && fgets(buf, sizeof buf, f) ? strrchr(buf, ')') : NULL;
		if (f)
			fclose(f);
		if (p && p[2] == 'T')
			break;
		sched_yield();
	}
	for (int i = 0; i < n; i++) {
		int c = probe_connect(ep);
		if (write(c, "x", 1) != 1)
			_exit(3);
		probe_close_peer(c, rst);
	}
	while (not_yet_closed(ep))
		;
	kill(parent, SIGCONT);
	_exit(0);
}

/* Workers that each accept, spawn a program (posix_spawn, which vforks)
 * and wait for it, read the request, then wait upstream: while the clients
 * come and go in a burst, most of them wait in the queue behind the spawns. */
struct spawner {
	struct backlog *b;
	int listener, n, vfork;
	_Atomic int taken;
};

static void *spawn_worker(void *arg)
{
	struct spawner *sp = arg;
	char *const argv[] = { "true", NULL };
	extern char **environ;

	while (atomic_fetch_add(&sp->taken, 1) < sp->n) {
		struct worker w = { .b = sp->b };
		pid_t pid;
		if ((w.fd = accept(sp->listener, NULL, NULL)) < 0)
			die("accept");
		if (sp->vfork) {
			/* The child shares our memory, the shim's tables
			 * included, until it execs: what it closes is its own. */
			if ((pid = vfork()) == 0) {
				close(w.fd);
				execvp("true", argv);
				_exit(127);
			}
			if (pid > 0)
				waitpid(pid, NULL, 0);
		} else if (posix_spawnp(&pid, "true", NULL, NULL, argv, environ) == 0) {
			waitpid(pid, NULL, 0);
		}
		serve_one(&w);
	}
	return NULL;
}

static void spawn_storm(int listener, const struct endpoint *ep, struct backlog *b, int n, int rst, int use_vfork)
{
	struct spawner sp = { .b = b, .listener = listener, .n = n, .vfork = use_vfork };
	pthread_t t[8];

	for (int i = 0; i < 8; i++)
		if (pthread_create(&t[i], NULL, spawn_worker, &sp))
			die("pthread_create");
	for (int i = 0; i < n; i++) {
		int c = probe_connect(ep);
		if (write(c, "x", 1) != 1)
			die("write request");
		probe_close_peer(c, rst);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
}

/* backlog FAMILY N fin|rst [--no-wait|--stop|--spawn]
 * --spawn: 8 workers accept and posix_spawn per request meanwhile;
 * --vfork: the same with vfork, the child closing the client, then exec.
 * --stop: the clients come and go while the whole process is stopped.
 * --no-wait: accept as soon as the kernel has processed the closes, racing
 * the shim's watcher thread (which may not have read them yet). */
int scenario_backlog(int argc, char **argv)
{
	struct backlog b = { 0 };
	struct endpoint ep;
	struct worker *w;
	pthread_attr_t attr;
	int listener, n, rst, c, s;
	char ch;

	if (argc < 4) {
		fprintf(stderr, "usage: backlog FAMILY N fin|rst [--no-wait]\n");
		return 2;
	}
	n = atoi(argv[2]);
	rst = !strcmp(argv[3], "rst");
	listener = probe_listen(argv[1], &ep);
	if (listen(listener, 4096) < 0)	/* room for every client */
		die("listen");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b.up) < 0)
		die("socketpair");

	/* One client served first: the shim's watcher is running. */
	c = probe_connect(&ep);
	if (write(c, "x", 1) != 1 || (s = accept(listener, NULL, NULL)) < 0 || read(s, &ch, 1) != 1)
		die("warm-up");
	close(s);
	close(c);

	if (argc > 4 && (!strcmp(argv[4], "--spawn") || !strcmp(argv[4], "--vfork"))) {
		spawn_storm(listener, &ep, &b, n, rst, !strcmp(argv[4], "--vfork"));
		out("result n=%d cancelled=%d missed=%d other=%d", n, atomic_load(&b.cancelled), atomic_load(&b.missed),
		    atomic_load(&b.other));
		return 0;
	}
	if (argc > 4 && !strcmp(argv[4], "--stop")) {
		clients_while_stopped(&ep, n, rst);
		goto accept_all;
	}
	/* The burst, while nobody accepts. */
	for (int i = 0; i < n; i++) {
		c = probe_connect(&ep);
		if (write(c, "x", 1) != 1)
			die("write request");
		probe_close_peer(c, rst);
	}
	for (int64_t end = probe_now_ns() + 10000000000; not_yet_closed(&ep);)
		if (probe_now_ns() > end)
			die("the clients' closes were never processed");
	/* And the shim's watcher has read what the kernel reported (it sleeps
	 * again): the disconnects all came before their accept. */
	pid_t watcher = argc > 4 && !strcmp(argv[4], "--no-wait") ? 0 : watcher_tid();
	if (watcher && probe_wait_blocked(getpid(), watcher, 5000) < 0)
		die("the watcher thread never went back to sleep");

accept_all:
	w = calloc((size_t)n, sizeof *w);
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < n; i++) {
		w[i].b = &b;
		if ((w[i].fd = accept(listener, NULL, NULL)) < 0)
			die("accept");
		if (pthread_create(&w[i].thread, &attr, serve_one, &w[i]))
			die("pthread_create");
	}
	for (int i = 0; i < n; i++)
		pthread_join(w[i].thread, NULL);
	while (waitpid(-1, NULL, 0) > 0)
		;
	out("result n=%d cancelled=%d missed=%d other=%d", n, atomic_load(&b.cancelled), atomic_load(&b.missed),
	    atomic_load(&b.other));
	free(w);
	return 0;
}

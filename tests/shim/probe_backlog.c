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
#include <sys/resource.h>
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

/* n clients on each of the nl endpoints: connect, send, leave; then wait
 * until the kernel has processed every close. */
static void clients_come_and_go(const struct endpoint *ep, int nl, int n, int rst)
{
	for (int l = 0; l < nl; l++)
		for (int i = 0; i < n; i++) {
			int c = probe_connect(&ep[l]);
			if (write(c, "x", 1) != 1)
				die("write request");
			probe_close_peer(c, rst);
		}
	for (int l = 0; l < nl; l++)
		for (int64_t end = probe_now_ns() + 20000000000; not_yet_closed(&ep[l]);)
			if (probe_now_ns() > end)
				die("the clients' closes were never processed");
}

/* The process is stopped (SIGSTOP) by a child, which plays the clients and
 * continues it once the kernel has processed their closes. */
static void clients_while_stopped(const struct endpoint *ep, int nl, int n, int rst)
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
	clients_come_and_go(ep, nl, n, rst);
	kill(parent, SIGCONT);
	_exit(0);
}

/* Accepts n clients from each listener, then serves them all with a pool
 * of threads. */
struct pool {
	struct backlog *b;
	int *fds, n;
	_Atomic int next;
};

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	int i;

	while ((i = atomic_fetch_add(&p->next, 1)) < p->n) {
		struct worker w = { .b = p->b, .fd = p->fds[i] };
		serve_one(&w);
	}
	return NULL;
}

static void serve_all(const int *listeners, int nl, int n, struct backlog *b)
{
	struct pool p = { .b = b, .n = nl * n };
	pthread_t t[64];
	pthread_attr_t attr;
	int nt = p.n < 64 ? p.n : 64;

	if (!(p.fds = calloc((size_t)p.n, sizeof *p.fds)))
		die("calloc");
	for (int l = 0; l < nl; l++)
		for (int i = 0; i < n; i++)
			if ((p.fds[l * n + i] = accept(listeners[l], NULL, NULL)) < 0)
				die("accept");
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < nt; i++)
		if (pthread_create(&t[i], &attr, pool_worker, &p))
			die("pthread_create");
	for (int i = 0; i < nt; i++)
		pthread_join(t[i], NULL);
	free(p.fds);
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

/* backlog FAMILY N fin|rst [--no-wait|--stop|--cold|--overflow|--spawn|--vfork]
 * --no-wait: accept as soon as the kernel has processed the closes, racing
 *   the shim's watcher thread (which may not have read them yet);
 * --stop: the clients come and go while the whole process is stopped;
 * --cold: before the process has served anyone;
 * --overflow: the same with N clients on each of two listeners, more events
 *   than the shim's ring buffer holds (N = 3000: 6000 events);
 * --spawn: 8 workers accept and posix_spawn per request meanwhile;
 * --vfork: the same with vfork, the child closing the client, then exec. */
int scenario_backlog(int argc, char **argv)
{
	const char *how = argc > 4 ? argv[4] : "";
	struct backlog b = { 0 };
	struct endpoint ep[2];
	int listeners[2], nl = !strcmp(how, "--overflow") ? 2 : 1, n, rst, c, s;
	char ch;

	if (argc < 4) {
		fprintf(stderr, "usage: backlog FAMILY N fin|rst [--no-wait|--stop|--cold|--overflow|--spawn|--vfork]\n");
		return 2;
	}
	n = atoi(argv[2]);
	rst = !strcmp(argv[3], "rst");
	/* A descriptor per client, all at once. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int l = 0; l < nl; l++) {
		listeners[l] = probe_listen(argv[1], &ep[l]);
		if (listen(listeners[l], 4096) < 0)	/* room for every client */
			die("listen");
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b.up) < 0)
		die("socketpair");

	/* One client served first: the shim's watcher is running (--cold: not
	 * yet, the eBPF program is quiet while the clients come and go). */
	if (!strcmp(how, "--cold"))
		goto burst;
	c = probe_connect(&ep[0]);
	if (write(c, "x", 1) != 1 || (s = accept(listeners[0], NULL, NULL)) < 0 || read(s, &ch, 1) != 1)
		die("warm-up");
	close(s);
	close(c);

burst:
	if (!strcmp(how, "--spawn") || !strcmp(how, "--vfork")) {
		spawn_storm(listeners[0], &ep[0], &b, n, rst, !strcmp(how, "--vfork"));
	} else {
		if (!strcmp(how, "--stop") || !strcmp(how, "--overflow")) {
			clients_while_stopped(ep, nl, n, rst);
		} else {
			/* The burst, while nobody accepts. */
			clients_come_and_go(ep, nl, n, rst);
			/* And the shim's watcher has read what the kernel
			 * reported (it sleeps again): the disconnects all came
			 * before their accept. */
			pid_t watcher = !strcmp(how, "--no-wait") ? 0 : watcher_tid();
			if (watcher && probe_wait_blocked(getpid(), watcher, 5000) < 0)
				die("the watcher thread never went back to sleep");
		}
		serve_all(listeners, nl, n, &b);
		while (waitpid(-1, NULL, 0) > 0)
			;
	}
	out("result n=%d cancelled=%d missed=%d other=%d", nl * n, atomic_load(&b.cancelled), atomic_load(&b.missed),
	    atomic_load(&b.other));
	return 0;
}

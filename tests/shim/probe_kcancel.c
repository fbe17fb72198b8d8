/* Scenarios for mode ebpf's kernel-side cancel (ebpf/kcancel.bpf.h): who
 * cancelled (the program or the watcher thread), how fast, and that two
 * connections sharing a key are never confused.
 *
 *   kcancel block N      N clients leave while their server thread is blocked
 *                        in read() on another socket; the watcher thread's
 *                        voluntary context switches are counted meanwhile.
 *   kcancel busy         the client leaves while its thread computes (no
 *                        call); its next call fails at once.
 *   kcancel fork         a thread blocked for its client while the process
 *                        forks a child (which only waits): the client
 *                        leaves; the parent's thread is cancelled (the
 *                        child's reset must not touch the parent's thread
 *                        records, which live in memory shared with the
 *                        kernel).
 *   kcancel drop WHEN    a root server that drops to nobody (setuid 65534)
 *                        after its listen (WHEN=listen) or after serving a
 *                        first client (WHEN=accept): the program loaded as
 *                        root keeps cancelling.
 *   kcancel prefork N    a root master listens (and loads), then forks N
 *                        children that each drop to nobody right after the
 *                        fork and, one after the other, serve a client that
 *                        leaves while the child's thread is blocked in
 *                        read(): each child's line says who cancelled, in
 *                        which mode (the master loaded an instance for each
 *                        child before its fork).
 *   kcancel many N       N threads each blocked for its own client (N above
 *                        the 256 records the program sees): every client
 *                        leaves; every thread must be cancelled.
 *   kcancel ambiguous    two live connections with one key (the same peer
 *                        address and port reaching 127.0.0.1 and 127.0.0.2 of
 *                        a wildcard listener): the first's client leaves;
 *                        only the first's thread may be cancelled.
 * Each prints one "kcancel ..." line, with the process's own statistics
 * (its segment in /dev/shm). */
#include "probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_layout.h"

/* ---- the process's own statistics and watcher thread ------------------- */

static struct cs_seg_header *own_segment(void)
{
	static struct cs_seg_header *h;
	struct stat st;
	char path[128];
	int fd;

	if (h)
		return h;
	if (stat("/proc/self/ns/pid", &st) < 0)
		return NULL;
	snprintf(path, sizeof path, CS_SEG_DIR "/" CS_SEG_PREFIX "%llu.%d", (unsigned long long)st.st_ino, getpid());
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	h = mmap(NULL, CS_SEG_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return h == MAP_FAILED ? (h = NULL) : h;
}

static unsigned long long stat_of(unsigned i)
{
	struct cs_seg_header *h = own_segment();
	return h && i < h->ncounters ? ((volatile uint64_t *)((char *)h + h->header_size))[i] : 0;
}

static const char *canceller(void)
{
	struct cs_seg_header *h = own_segment();
	return h && h->canceller[0] ? h->canceller : "-";
}

/* The shim's watcher thread (named "cancelshim"), or 0. */
static pid_t watcher_tid(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	pid_t found = 0;

	while (d && (e = readdir(d))) {
		char path[64], comm[32] = "";
		FILE *f;
		snprintf(path, sizeof path, "/proc/self/task/%.20s/comm", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (fgets(comm, sizeof comm, f) && !strncmp(comm, "cancelshim", 10))
			found = atoi(e->d_name);
		fclose(f);
	}
	if (d)
		closedir(d);
	return found;
}

static long voluntary_switches(pid_t tid)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "voluntary_ctxt_switches:", 24))
			n = atol(line + 24);
	fclose(f);
	return n;
}

/* ---- one served connection --------------------------------------------- */

struct served {
	int listener, conn;
	int up[2];		/* what the thread blocks on */
	int busy;		/* compute until go, then call */
	pthread_t thread;
	_Atomic pid_t tid;
	_Atomic int bound, go, done;
	int ret, err;
	int64_t t_return;
};

static void *serve(void *arg)
{
	struct served *s = arg;
	char c;

	atomic_store(&s->tid, probe_gettid());
	s->conn = accept(s->listener, NULL, NULL);
	if (s->conn < 0)
		die("accept");
	if (read(s->conn, &c, 1) != 1)	/* the request: binds this thread */
		die("read request");
	atomic_store(&s->bound, 1);
	if (s->busy)
		while (!atomic_load(&s->go))
			;	/* computing: no call the shim could fail */
	errno = 0;
	s->ret = (int)read(s->up[0], &c, 1);
	s->err = s->ret < 0 ? errno : 0;
	s->t_return = probe_now_ns();
	atomic_store(&s->done, 1);
	return NULL;
}

static void start(struct served *s, int listener, int busy)
{
	memset(s, 0, sizeof *s);
	s->listener = listener;
	s->busy = busy;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->up) < 0)
		die("socketpair");
	pthread_create(&s->thread, NULL, serve, s);
}

static void finish(struct served *s)
{
	pthread_join(s->thread, NULL);
	close(s->conn);
	close(s->up[0]);
	close(s->up[1]);
}

/* Waits (bounded) until the server's end of the connection saw the FIN. */
static void wait_close_wait(int fd)
{
	for (int i = 0; i < 100000; i++) {
		struct tcp_info ti;
		socklen_t len = sizeof ti;
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE_WAIT)
			return;
		usleep(10);
	}
	die("no FIN seen");
}

static int wait_done(struct served *s, int ms)
{
	int64_t until = probe_now_ns() + (int64_t)ms * 1000000;
	while (!atomic_load(&s->done) && probe_now_ns() < until)
		usleep(100);
	return atomic_load(&s->done);
}

/* A client whose request the server thread started in s is blocked on: its
 * descriptor. */
static int client_blocked(struct served *s, const struct endpoint *ep)
{
	int fd = probe_connect(ep);

	if (write(fd, "x", 1) != 1)
		die("write");
	while (!atomic_load(&s->bound))
		;
	if (probe_wait_blocked(getpid(), atomic_load(&s->tid), 2000) < 0)
		die("server thread never blocked");
	return fd;
}

/* The client fd leaves; the served request ends (cancelled, or released
 * after 2 s). Microseconds from the close to the call's return, or -1 if the
 * call was not cancelled. */
static long client_leaves(struct served *s, int fd)
{
	int64_t t_close = probe_now_ns();

	close(fd);
	if (!wait_done(s, 2000) && write(s->up[1], "z", 1) != 1)
		die("release");
	finish(s);
	return s->ret < 0 && s->err == ECANCELED ? (long)((s->t_return - t_close) / 1000) : -1;
}

static void print_stats(const char *what, long n, long cancelled, long worst_us, long switches, long elapsed_ms)
{
	out("kcancel %s n=%ld cancelled=%ld worst_us=%ld watcher_switches=%ld elapsed_ms=%ld kernel_cancels=%llu "
	    "cancels=%llu wakeups=%llu canceller=%s",
	    what, n, cancelled, worst_us, switches, elapsed_ms, stat_of(CS_STAT_KERNEL_CANCELS), stat_of(CS_STAT_CANCELS),
	    stat_of(CS_STAT_WAKEUPS), canceller());
}

/* ---- the scenarios ------------------------------------------------------ */

static int by_value(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

static int blocked(long n)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep);
	long cancelled = 0, worst = 0, before = -1, switches, *lat = calloc((size_t)n + 1, sizeof *lat);
	pid_t wt = 0;
	int64_t t0 = 0;

	for (long i = 0; i < n; i++) {
		struct served s;
		int fd;

		start(&s, listener, 0);
		fd = client_blocked(&s, &ep);
		if (before < 0 && (wt = watcher_tid())) {
			/* Counted from the first blocked call on: the watcher
			 * thread started with the first binding. */
			before = voluntary_switches(wt);
			t0 = probe_now_ns();
		}
		long us = client_leaves(&s, fd);
		if (us >= 0) {
			lat[cancelled++] = us;
			if (us > worst)
				worst = us;
		}
	}

	switches = wt && before >= 0 ? voluntary_switches(wt) - before : -1;
	print_stats("block", n, cancelled, worst, switches, t0 ? (long)((probe_now_ns() - t0) / 1000000) : -1);
	/* From the client's close to the call's return, microseconds (after
	 * the line above: tests look for the first line with "kcancel"). */
	qsort(lat, (size_t)cancelled, sizeof *lat, by_value);
	out("latency_us p50=%ld p99=%ld", cancelled ? lat[cancelled / 2] : -1,
	    cancelled ? lat[(cancelled * 99) / 100] : -1);
	free(lat);
	return 0;
}

static int busy(void)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep);
	struct served s;
	int fd;

	start(&s, listener, 1);
	fd = probe_connect(&ep);
	if (write(fd, "x", 1) != 1)
		die("write");
	while (!atomic_load(&s.bound))
		;
	close(fd);
	wait_close_wait(s.conn);	/* the program has run: the FIN is in */
	int64_t t_go = probe_now_ns();
	atomic_store(&s.go, 1);
	if (!wait_done(&s, 2000) && write(s.up[1], "z", 1) != 1)
		die("release");
	finish(&s);
	print_stats("busy", 1, s.ret < 0 && s.err == ECANCELED, (long)((s.t_return - t_go) / 1000), -1, -1);
	return 0;
}

/* A client socket bound to 127.0.0.1:port (shared), connected to dst. */
static int client_from(uint16_t port, const char *dst, uint16_t dport)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
		return -1;
	a.sin_port = htons(dport);
	inet_pton(AF_INET, dst, &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	return fd;
}

static int ambiguous(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	socklen_t len = sizeof a;
	int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), c1 = -1, c2 = -1;
	struct served s1, s2;
	uint16_t port = 0;

	if (bind(listener, (struct sockaddr *)&a, sizeof a) < 0 || listen(listener, 16) < 0 ||
	    getsockname(listener, (struct sockaddr *)&a, &len) < 0)
		die("wildcard listener");
	/* A free source port both clients can share (SO_REUSEADDR, neither
	 * listens). */
	for (uint16_t p = 40000 + (uint16_t)(getpid() % 20000); c1 < 0; p++) {
		c1 = client_from(p, "127.0.0.1", ntohs(a.sin_port));
		port = p;
	}
	start(&s1, listener, 0);
	if (write(c1, "x", 1) != 1)
		die("write 1");
	while (!atomic_load(&s1.bound))
		;
	if ((c2 = client_from(port, "127.0.0.2", ntohs(a.sin_port))) < 0)
		die("second client on the same port");
	start(&s2, listener, 0);
	if (write(c2, "x", 1) != 1)
		die("write 2");
	while (!atomic_load(&s2.bound))
		;
	probe_wait_blocked(getpid(), atomic_load(&s1.tid), 2000);
	probe_wait_blocked(getpid(), atomic_load(&s2.tid), 2000);
	close(c1);
	int first = wait_done(&s1, 3000);
	if (!first && write(s1.up[1], "z", 1) != 1)
		die("release 1");
	/* The second request is live: give a wrong cancel time to land, then
	 * answer it. */
	usleep(200000);
	int second_early = atomic_load(&s2.done);
	if (write(s2.up[1], "z", 1) != 1)
		die("release 2");
	wait_done(&s2, 3000);
	finish(&s1);
	finish(&s2);
	close(c2);
	out("kcancel ambiguous first_errno=%d second_ret=%d second_errno=%d second_early=%d kernel_cancels=%llu "
	    "canceller=%s",
	    s1.ret < 0 ? s1.err : 0, s2.ret, s2.ret < 0 ? s2.err : 0, second_early, stat_of(CS_STAT_KERNEL_CANCELS),
	    canceller());
	return 0;
}

static int forked(void)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep), ready[2], hold[2], fd;
	struct served s;
	pid_t child;
	char c;

	start(&s, listener, 0);
	fd = client_blocked(&s, &ep);
	if (pipe(ready) < 0 || pipe(hold) < 0)
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		/* The fork handlers have run: say so, then wait. The client's
		 * end is the parent's to close. */
		close(fd);
		close(ready[0]);
		close(hold[1]);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (read(hold[0], &c, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	if (read(ready[0], &c, 1) != 1)
		die("child");
	long us = client_leaves(&s, fd);
	close(hold[1]);	/* the child ends */
	waitpid(child, NULL, 0);
	print_stats("fork", 1, us >= 0, us, -1, -1);
	return 0;
}

/* One client served to its end (the first, before a drop). */
static void serve_one(int listener, const struct endpoint *ep)
{
	int fd = probe_connect(ep), s;
	char c;

	if (write(fd, "x", 1) != 1)
		die("write");
	s = accept(listener, NULL, NULL);
	if (s < 0 || read(s, &c, 1) != 1 || write(s, "r", 1) != 1)
		die("serve one");
	close(s);
	if (read(fd, &c, 1) != 1)
		die("reply");
	close(fd);
}

static void become_nobody(void)
{
	if (setgid(65534) < 0 || setuid(65534) < 0)
		die("setuid");
	/* /proc/self/task/.../syscall stays ours to read (probe_wait_blocked). */
	prctl(PR_SET_DUMPABLE, 1);
}

static int dropped(const char *when)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep), fd;
	struct served s;

	if (!strcmp(when, "listen"))
		become_nobody();
	else
		serve_one(listener, &ep);
	if (strcmp(when, "listen"))
		become_nobody();
	start(&s, listener, 0);
	fd = client_blocked(&s, &ep);
	long us = client_leaves(&s, fd);
	print_stats("drop", 1, us >= 0, us, -1, -1);
	out("kcancel uid=%d", (int)getuid());
	return 0;
}

static const char *mode_name(void)
{
	struct cs_seg_header *h = own_segment();
	return h && h->mode[0] ? h->mode : "-";
}

/* The eBPF descriptors (anon_inode:bpf-*) this process holds, and how many
 * of them an exec would keep (no FD_CLOEXEC). */
static void bpf_fds(int *n, int *kept_by_exec)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	*n = *kept_by_exec = 0;
	while (d && (e = readdir(d))) {
		char path[64], target[64] = "";
		snprintf(path, sizeof path, "/proc/self/fd/%.20s", e->d_name);
		if (readlink(path, target, sizeof target - 1) < 0 || strncmp(target, "anon_inode:bpf", 14))
			continue;
		(*n)++;
		if (!(fcntl(atoi(e->d_name), F_GETFD) & FD_CLOEXEC))
			(*kept_by_exec)++;
	}
	if (d)
		closedir(d);
}

/* One prefork child: nobody from the start, then one client that leaves
 * while the thread serving it is blocked. */
static void prefork_child(int listener, const struct endpoint *ep, int ready, int go, long i)
{
	struct served s;
	char c;
	int fd;

	become_nobody();
	if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
		_exit(1);
	start(&s, listener, 0);
	fd = client_blocked(&s, ep);
	long us = client_leaves(&s, fd);
	char what[32];
	snprintf(what, sizeof what, "prefork child=%ld", i);
	print_stats(what, 1, us >= 0, us, -1, -1);
	int nfds, kept;
	bpf_fds(&nfds, &kept);
	out("kcancel prefork child=%ld uid=%d mode=%s bpf_fds=%d bpf_fds_kept_by_exec=%d", i, (int)getuid(), mode_name(),
	    nfds, kept);
	_exit(0);
}

static int prefork(long n)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep), go[16][2], ready[2], status, failed = 0;
	pid_t child[16];
	int64_t fork_us = 0;	/* the fork() calls, in the master (a load each in mode ebpf) */
	char c;

	if (n < 1 || n > 16)
		die("prefork: 1 to 16 children");
	if (pipe(ready) < 0)
		die("pipe");
	/* Each child is ready (its fork handler ran, it is nobody) before the
	 * next fork: a client queued while a child's handler runs would make
	 * that child's first client one for epoll (its listener waits to be
	 * seen empty). */
	for (long i = 0; i < n; i++) {
		if (pipe(go[i]) < 0)
			die("pipe");
		int64_t t0 = probe_now_ns();
		child[i] = fork();
		if (child[i] < 0)
			die("fork");
		if (child[i] > 0)
			fork_us += (probe_now_ns() - t0) / 1000;
		if (child[i] == 0) {
			close(go[i][1]);
			close(ready[0]);
			prefork_child(listener, &ep, ready[1], go[i][0], i);
		}
		close(go[i][0]);
		if (read(ready[0], &c, 1) != 1)
			die("child not ready");
	}
	/* One child at a time accepts: a client is served by the child that
	 * made it. */
	for (long i = 0; i < n; i++) {
		if (write(go[i][1], "g", 1) != 1)
			die("go");
		if (waitpid(child[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
			failed++;
		close(go[i][1]);
	}
	int nfds, kept;
	bpf_fds(&nfds, &kept);
	out("kcancel prefork master children=%ld failed=%d fork_us_avg=%lld bpf_fds=%d", n, failed,
	    (long long)(fork_us / n), nfds);
	return failed != 0;
}

static int many(long n)
{
	struct endpoint ep;
	int listener = probe_listen("v4", &ep);
	struct served *s = calloc((size_t)n, sizeof *s);
	int *fds = calloc((size_t)n, sizeof *fds);
	long cancelled = 0;

	/* One at a time, so that thread i serves client i. */
	for (long i = 0; i < n; i++) {
		start(&s[i], listener, 0);
		fds[i] = probe_connect(&ep);
		if (write(fds[i], "x", 1) != 1)
			die("write");
		while (!atomic_load(&s[i].bound))
			;
	}
	for (long i = 0; i < n; i++)
		if (probe_wait_blocked(getpid(), atomic_load(&s[i].tid), 5000) < 0)
			die("a server thread never blocked");
	for (long i = 0; i < n; i++)
		close(fds[i]);
	int64_t t_closed = probe_now_ns();
	long worst = 0;
	for (long i = 0; i < n; i++) {
		if (!wait_done(&s[i], 3000) && write(s[i].up[1], "z", 1) != 1)
			die("release");
		finish(&s[i]);
		if (s[i].ret < 0 && s[i].err == ECANCELED) {
			cancelled++;
			if ((s[i].t_return - t_closed) / 1000 > worst)
				worst = (long)((s[i].t_return - t_closed) / 1000);
		}
	}
	print_stats("many", n, cancelled, worst, -1, -1);
	free(s);
	free(fds);
	return 0;
}

int scenario_kcancel(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "many"))
		return many(argc > 2 ? atol(argv[2]) : 300);
	if (argc > 1 && !strcmp(argv[1], "prefork"))
		return prefork(argc > 2 ? atol(argv[2]) : 2);
	if (argc > 2 && !strcmp(argv[1], "drop"))
		return dropped(argv[2]);
	if (argc > 1 && !strcmp(argv[1], "fork"))
		return forked();
	if (argc > 1 && !strcmp(argv[1], "block"))
		return blocked(argc > 2 ? atol(argv[2]) : 20);
	if (argc > 1 && !strcmp(argv[1], "busy"))
		return busy();
	if (argc > 1 && !strcmp(argv[1], "ambiguous"))
		return ambiguous();
	fprintf(stderr, "usage: kcancel block [N] | busy | fork | drop listen|accept | prefork [N] | many [N] | ambiguous\n");
	return 2;
}

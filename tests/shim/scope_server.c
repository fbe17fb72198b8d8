/* scope-server: a server with two listeners, "public" and "admin", run under
 * the shim by test_scope.c to check CANCELSHIM_PORTS.
 *
 *   scope-server tcp PUBLIC_PORT ADMIN_PORT
 *   scope-server unix PUBLIC_PATH ADMIN_PATH
 *   (a fourth argument: how long public waits to be cancelled, ms; 10000)
 *
 * For each listener a client connects and sends one byte; a server thread
 * accepts, reads that byte (the request: it now serves that client), then
 * blocks in recv() on an upstream socket that never answers. Both clients
 * then leave (FIN; RST when SCOPE_RST=1 is set), admin's first. The public thread's recv ends when the
 * shim cancels it (or after 10 s); the admin thread gets 300 ms more to be
 * cancelled, then its upstream answers. Prints, per listener:
 *   NAME ret=R errno=E cancelled=0|1
 *
 * With SCOPE_SWITCH=1, one thread serves both, as a pool worker does: it
 * reads public's request, then admin's (it serves admin now), and blocks in
 * recv() on the upstream; public's client leaves. That must not cancel the
 * admin request being served. Prints "switch ret=R errno=E cancelled=0|1". */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct side {
	const char *name;
	int listener, client, up[2];
	pthread_t thread;
	_Atomic int ready, done;
	int ret, err;
};

static void die(const char *what)
{
	fprintf(stderr, "scope-server: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int listen_on(const char *family, const char *where, struct sockaddr_storage *addr, socklen_t *len)
{
	int fd, one = 1;
	memset(addr, 0, sizeof *addr);
	if (!strcmp(family, "tcp")) {
		struct sockaddr_in *in = (struct sockaddr_in *)addr;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(where));
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		*len = sizeof *in;
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	} else {
		struct sockaddr_un *un = (struct sockaddr_un *)addr;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof un->sun_path, "%s", where);
		unlink(where);
		*len = sizeof *un;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	if (fd < 0 || bind(fd, (struct sockaddr *)addr, *len) < 0 || listen(fd, 4) < 0)
		die(where);
	return fd;
}

static void *serve(void *arg)
{
	struct side *s = arg;
	char c;
	int fd = accept(s->listener, NULL, NULL);
	if (fd < 0 || recv(fd, &c, 1, 0) != 1)
		die("accept or read the request");
	atomic_store(&s->ready, 1);
	errno = 0;
	s->ret = (int)recv(s->up[0], &c, 1, 0);
	s->err = s->ret < 0 ? errno : 0;
	atomic_store(&s->done, 1);
	close(fd);
	return NULL;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_flag(_Atomic int *flag, int ms)
{
	int64_t end = now_ms() + ms;
	while (!atomic_load(flag) && now_ms() < end)
		usleep(1000);
	return atomic_load(flag);
}

static int handed[2];	/* the accepted public and admin connections */

/* The worker never accepts (the acceptor hands it connections): only
 * reading a request tells whom it serves. */
static void *serve_both(void *arg)
{
	struct side *s = arg;
	char c;
	for (int i = 0; i < 2; i++)
		if (recv(handed[i], &c, 1, 0) != 1)
			die("read a request");
	atomic_store(&s->ready, 1);
	errno = 0;
	s->ret = (int)recv(s->up[0], &c, 1, 0);
	s->err = s->ret < 0 ? errno : 0;
	atomic_store(&s->done, 1);
	return NULL;
}

/* SCOPE_SWITCH: sides already listening and connected, requests sent. */
static int run_switch(struct side sides[2])
{
	struct side worker = { .name = "switch" };
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, worker.up) < 0)
		die("socketpair");
	for (int i = 0; i < 2; i++)
		if ((handed[i] = accept(sides[i].listener, NULL, NULL)) < 0)
			die("accept");
	pthread_create(&worker.thread, NULL, serve_both, &worker);
	if (!wait_flag(&worker.ready, 10000))
		die("the worker never read both requests");
	close(sides[0].client);		/* public's client leaves */
	wait_flag(&worker.done, 300);
	if (!atomic_load(&worker.done) && write(worker.up[1], "x", 1) != 1)
		die("release");
	pthread_join(worker.thread, NULL);
	printf("switch ret=%d errno=%d cancelled=%d\n", worker.ret, worker.err,
	       worker.ret < 0 && worker.err == ECANCELED);
	return 0;
}

int main(int argc, char **argv)
{
	struct side sides[2] = { { .name = "public" }, { .name = "admin" } };
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: scope-server tcp|unix PUBLIC ADMIN\n");
		return 2;
	}
	for (int i = 0; i < 2; i++) {
		struct side *s = &sides[i];
		struct sockaddr_storage addr;
		socklen_t len;
		s->listener = listen_on(argv[1], argv[2 + i], &addr, &len);
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->up) < 0)
			die("socketpair");
		s->client = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s->client < 0 || connect(s->client, (struct sockaddr *)&addr, len) < 0 ||
		    send(s->client, "r", 1, 0) != 1)
			die("connect");
		if (getenv("SCOPE_SWITCH"))
			continue;
		pthread_create(&s->thread, NULL, serve, s);
		if (!wait_flag(&s->ready, 10000))
			die("server thread never read its request");
	}
	if (getenv("SCOPE_SWITCH"))
		return run_switch(sides);
	/* Admin's client first: if its disconnect were acted on, it would be
	 * by the time public's, sent after it, has been. */
	if (getenv("SCOPE_RST")) {
		struct linger hard = { 1, 0 };
		setsockopt(sides[1].client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
		setsockopt(sides[0].client, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
	}
	close(sides[1].client);
	close(sides[0].client);
	wait_flag(&sides[0].done, argc == 5 ? atoi(argv[4]) : 10000);
	wait_flag(&sides[1].done, 300);
	for (int i = 0; i < 2; i++) {
		struct side *s = &sides[i];
		if (!atomic_load(&s->done) && write(s->up[1], "x", 1) != 1)
			die("release");
		pthread_join(s->thread, NULL);
		printf("%s ret=%d errno=%d cancelled=%d\n", s->name, s->ret, s->err,
		       s->ret < 0 && s->err == ECANCELED);
	}
	if (!strcmp(argv[1], "unix")) {
		unlink(argv[2]);
		unlink(argv[3]);
	}
	return 0;
}

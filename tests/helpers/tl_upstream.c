/* A slow upstream run inside the test process (never under the shim): the
 * program under test calls it, and each answer takes delay_ms, so a request
 * that makes many calls stays busy long enough to be aborted mid-way. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct tl_upstream {
	int listen_fd;
	int port;
	int delay_ms;
	int stop_pipe[2]; /* readable once tl_upstream_stop runs */
	atomic_uint requests;
	char *seen;      /* every line received, '\n'-separated (under mu) */
	size_t seen_len;
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast on every line received */
	pthread_t *conn_threads; /* every connection's thread, joined at stop */
	int *conn_fds;
	int nconns, cap;
};

struct conn_arg {
	struct tl_upstream *u;
	int fd;
};

/* Sleep delay_ms unless stopping: the stop pipe doubles as the timer. */
static bool delay_or_stop(struct tl_upstream *u)
{
	struct pollfd pfd = { .fd = u->stop_pipe[0], .events = POLLIN };
	return poll(&pfd, 1, u->delay_ms) == 0;
}

/* Turns the request line "GET /call/ID/I HTTP/1.x" into "ID I" and reads
 * the headers up to the blank line. False if the request is cut short. */
static bool http_call(int fd, char *line)
{
	char hdr[512], *path = line + 10, *end = strchr(path, ' ');

	if (end)
		*end = 0;
	for (char *c = path; *c; c++)
		if (*c == '/')
			*c = ' ';
	memmove(line, path, strlen(path) + 1);
	for (;;) {
		ssize_t n = tl_read_line(fd, hdr, sizeof hdr, 1000);
		if (n <= 0)
			return false;
		if (hdr[0] == '\r' || hdr[0] == '\n')
			return true;
	}
}

static void *conn_main(void *arg)
{
	struct conn_arg *ca = arg;
	struct tl_upstream *u = ca->u;
	int fd = ca->fd;
	free(ca);
	char line[512];

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = u->stop_pipe[0], .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		ssize_t n = tl_read_line(fd, line, sizeof line, 1000);
		if (n <= 0)
			break;
		line[strcspn(line, "\r\n")] = 0;
		/* An HTTP client (PHP's curl): "GET /call/ID/I HTTP/1.x" is
		 * the call "ID I", answered as HTTP, one call per connection. */
		bool http = !strncmp(line, "GET /call/", 10);
		if (http && !http_call(fd, line))
			break;
		pthread_mutex_lock(&u->mu);
		size_t n_line = strlen(line);
		char *seen = realloc(u->seen, u->seen_len + n_line + 2);
		if (!seen)
			abort();
		memcpy(seen + u->seen_len, line, n_line);
		u->seen_len += n_line;
		seen[u->seen_len++] = '\n';
		seen[u->seen_len] = 0;
		u->seen = seen;
		atomic_fetch_add(&u->requests, 1);
		pthread_cond_broadcast(&u->cv);
		pthread_mutex_unlock(&u->mu);
		if (!delay_or_stop(u))
			break;
		char reply[700];
		int len = snprintf(reply, sizeof reply, "ok %s\n", line);
		if (http)
			len = snprintf(reply, sizeof reply,
				       "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\nok %s\n",
				       len, line);
		if (tl_write_all(fd, reply, len, 1000) < 0 || http)
			break;
	}
	return NULL;
}

static void *acceptor_main(void *arg)
{
	struct tl_upstream *u = arg;
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = u->listen_fd, .events = POLLIN },
			{ .fd = u->stop_pipe[0], .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!pfd[0].revents)
			continue;
		int fd = accept4(u->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&u->mu);
		if (u->nconns == u->cap) {
			u->cap = u->cap ? 2 * u->cap : 64;
			u->conn_threads = realloc(u->conn_threads, u->cap * sizeof *u->conn_threads);
			u->conn_fds = realloc(u->conn_fds, u->cap * sizeof *u->conn_fds);
			if (!u->conn_threads || !u->conn_fds)
				abort();
		}
		struct conn_arg *ca = malloc(sizeof *ca);
		ca->u = u;
		ca->fd = fd;
		u->conn_fds[u->nconns] = fd;
		if (pthread_create(&u->conn_threads[u->nconns], NULL, conn_main, ca) == 0)
			u->nconns++;
		else {
			close(fd);
			free(ca);
		}
		pthread_mutex_unlock(&u->mu);
	}
	return NULL;
}

struct tl_upstream *tl_upstream_start(int delay_ms)
{
	struct tl_upstream *u = calloc(1, sizeof *u);
	if (!u)
		return NULL;
	u->delay_ms = delay_ms;
	u->listen_fd = tl_listen_tcp("127.0.0.1", 0, &u->port);
	if (u->listen_fd < 0 || pipe2(u->stop_pipe, O_CLOEXEC) < 0) {
		if (u->listen_fd >= 0)
			close(u->listen_fd);
		free(u);
		return NULL;
	}
	pthread_mutex_init(&u->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&u->acceptor, NULL, acceptor_main, u) != 0)
		abort();
	return u;
}

int tl_upstream_port(const struct tl_upstream *u)
{
	return u->port;
}

unsigned tl_upstream_requests(const struct tl_upstream *u)
{
	return atomic_load(&((struct tl_upstream *)u)->requests);
}

static unsigned count_locked(struct tl_upstream *u, const char *substr)
{
	unsigned n = 0;
	for (char *line = u->seen; line && *line;) {
		char *nl = strchr(line, '\n');
		*nl = 0;
		n += strstr(line, substr) != NULL;
		*nl = '\n';
		line = nl + 1;
	}
	return n;
}

unsigned tl_upstream_count(struct tl_upstream *u, const char *substr)
{
	pthread_mutex_lock(&u->mu);
	unsigned n = count_locked(u, substr);
	pthread_mutex_unlock(&u->mu);
	return n;
}

bool tl_upstream_wait(struct tl_upstream *u, const char *substr, int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&u->mu);
	bool found;
	while (!(found = count_locked(u, substr) > 0) &&
	       pthread_cond_timedwait(&u->cv, &u->mu, &dl) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&u->mu);
	return found;
}

unsigned tl_upstream_next_call(struct tl_upstream *u, const char *id, int timeout_ms)
{
	char *prefix = tl_strdupf("%s ", id);
	unsigned n = tl_upstream_count(u, prefix) + 1;
	char *next = tl_strdupf("%s %u", id, n);
	bool came = tl_upstream_wait(u, next, timeout_ms);

	free(prefix);
	free(next);
	return came ? n : 0;
}

void tl_upstream_stop(struct tl_upstream *u)
{
	if (!u)
		return;
	(void)!write(u->stop_pipe[1], "x", 1);
	pthread_join(u->acceptor, NULL);
	for (int i = 0; i < u->nconns; i++) {
		pthread_join(u->conn_threads[i], NULL);
		close(u->conn_fds[i]);
	}
	close(u->listen_fd);
	close(u->stop_pipe[0]);
	close(u->stop_pipe[1]);
	pthread_mutex_destroy(&u->mu);
	pthread_cond_destroy(&u->cv);
	free(u->conn_threads);
	free(u->conn_fds);
	free(u->seen);
	free(u);
}

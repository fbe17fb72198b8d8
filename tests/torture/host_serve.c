/* cs-torture's workers: what serving one client is (read the request, one
 * cancellable call on the upstream, answer, report), the descriptors the
 * host knows it holds, and the pool of worker threads. */
#include "host.h"


#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


int ctl_fd = -1, up_port;
bool in_child;

/* ---- reporting: one write() per line ---------------------------------- */

void report(const char *fmt, ...)
{
	char line[400];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	int saved = errno;
	(void)!write(ctl_fd, line, n);
	errno = saved;
}

/* ---- the descriptors the host knows it holds --------------------------- */

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned char live[MAXFD]; /* 1: the host's own, never closed by a range */

void live_lock(void)
{
	if (!in_child)
		pthread_mutex_lock(&live_mu);
}

void live_unlock(void)
{
	if (!in_child)
		pthread_mutex_unlock(&live_mu);
}

void live_set(int fd, bool on)
{
	if (fd >= 0 && fd < MAXFD)
		live[fd] = on;
}

bool is_live(int fd)
{
	return fd >= 0 && fd < MAXFD && live[fd];
}


/* ---- jobs -------------------------------------------------------------- */

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cv = PTHREAD_COND_INITIALIZER;
static struct job queue[MAXJOBS];
static int q_head, q_len, busy; /* busy: jobs queued or being served by threads */


sigset_t mask_of(unsigned bits)
{
	sigset_t s;
	sigemptyset(&s);
	for (int i = 0; i < TORTURE_MASK_NSIG; i++)
		if (bits & (1u << i))
			sigaddset(&s, torture_mask_signal(i));
	return s;
}

/* Move a client to another descriptor and close the original; returns the
 * new descriptor (or the old one when MOVE is none or the move failed). */
int move_client(int fd, const char *how)
{
	int nfd = -1;
	live_lock();
	if (!strcmp(how, "dup")) {
		nfd = dup(fd);
	} else if (!strcmp(how, "dupfd")) {
		nfd = fcntl(fd, F_DUPFD, 3 + fd % 7);
	} else if (!strcmp(how, "dupfd_cloexec")) {
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3 + fd % 5);
	} else if (!strcmp(how, "dup2") || !strcmp(how, "dup3")) {
		/* a free number in the dup2 zone: no thread opens descriptors there */
		for (int t = TORTURE_DUP2_BASE + fd % 50; t < TORTURE_DUP2_BASE + 100; t++) {
			if (is_live(t) || fcntl(t, F_GETFD) >= 0)
				continue;
			nfd = how[3] == '2' ? dup2(fd, t) : dup3(fd, t, O_CLOEXEC);
			break;
		}
	} else {
		live_unlock();
		return fd;
	}
	if (nfd < 0) {
		report("fail move %s of fd %d: errno %d", how, fd, errno);
		live_unlock();
		return fd;
	}
	live_set(nfd, true);
	close(fd);
	live_set(fd, false);
	live_unlock();
	return nfd;
}

static void end_client(int fd, const char *how)
{
	live_lock();
	if (!strcmp(how, "range")) {
		if (close_range(fd, fd, 0) != 0)
			close(fd);
	} else if (!strcmp(how, "over")) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, fd); /* replaces the client */
			close(null);
		}
		close(fd);
	} else {
		close(fd);
	}
	live_set(fd, false);
	live_unlock();
}

static int connect_upstream(int *err)
{
	live_lock();
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	live_set(s, true);
	live_unlock();
	if (s < 0) {
		*err = errno;
		return -1;
	}
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(up_port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
		*err = errno;
		live_lock();
		close(s);
		live_set(s, false);
		live_unlock();
		return -1;
	}
	return s;
}

/* Read one line; returns its length, 0 at EOF before a newline, -1 on error. */
ssize_t read_line(int fd, char *buf, size_t size, bool use_recv)
{
	size_t len = 0;
	while (len + 1 < size) {
		ssize_t n = use_recv ? recv(fd, buf + len, 1, 0) : read(fd, buf + len, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		if (buf[len++] == '\n') {
			buf[len] = 0;
			return (ssize_t)len;
		}
	}
	errno = EMSGSIZE;
	return -1;
}

/* Serve one client: the whole life of a request. */
void serve(struct job *j)
{
	char line[128];
	int fd = j->fd;
	struct timeval tv = {.tv_sec = 8};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ssize_t n = read_line(fd, line, sizeof line, false);
	int rcid = -1;
	char token[40] = "";
	if (n <= 0 || sscanf(line, "req %d %39s", &rcid, token) != 2) {
		report("noreq cid=%d errno=%d got=%zd", j->cid, n < 0 ? errno : 0, n);
		goto out_client;
	}
	if (rcid != j->cid)
		report("fail client %d got the request of client %d", j->cid, rcid);
	report("req cid=%d", j->cid);
	if (!strcmp(j->where, "worker"))
		fd = move_client(fd, j->move);

	sigset_t old, blk = mask_of(j->mask);
	if (j->mask)
		pthread_sigmask(SIG_BLOCK, &blk, &old);

	int up = j->pair, err = 0;
	const char *at = "connect";
	if (j->kind != 's') {
		up = connect_upstream(&err);
		if (up >= 0) {
			at = "send";
			char hello[32];
			int hl = snprintf(hello, sizeof hello, "up %d\n", j->cid);
			if (send(up, hello, hl, MSG_NOSIGNAL) != hl)
				err = errno;
		}
	}
	char ans[128];
	bool answered = false;
	if (!err) {
		at = "wait";
		report("enter cid=%d", j->cid);
		if (j->kind == 'p') {
			struct pollfd p = {.fd = up, .events = POLLIN};
			int r = poll(&p, 1, TORTURE_POLL_MS);
			if (r < 0)
				err = errno;
			else if (r == 0)
				err = ETIMEDOUT;
		}
		if (!err) {
			n = read_line(up, ans, sizeof ans, true);
			if (n > 0)
				answered = true;
			else
				err = n < 0 ? errno : EPIPE;
		}
	}
	if (j->mask)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	report("done cid=%d canceled=%d errno=%d at=%s", j->cid, err == ECANCELED, err, at);
	if (answered) {
		char resp[160];
		int got, rl;
		char atok[40];
		if (sscanf(ans, "ans %d %39s", &got, atok) != 2 || got != j->cid)
			report("fail client %d got upstream answer '%.40s'", j->cid, ans);
		rl = snprintf(resp, sizeof resp, "resp %d %s\n", j->cid, atok);
		if (send(fd, resp, rl, MSG_NOSIGNAL) != rl)
			report("fail client %d response not sent: errno %d", j->cid, errno);
	}
	if (up >= 0) {
		live_lock();
		close(up);
		live_set(up, false);
		live_unlock();
	}
out_client:
	end_client(fd, j->end);
}

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_mu);
		while (q_len == 0)
			pthread_cond_wait(&q_cv, &q_mu);
		struct job j = queue[q_head];
		q_head = (q_head + 1) % MAXJOBS;
		q_len--;
		pthread_mutex_unlock(&q_mu);

		serve(&j);

		pthread_mutex_lock(&q_mu);
		busy--;
		pthread_cond_broadcast(&q_cv);
		pthread_mutex_unlock(&q_mu);
	}
	return NULL;
}

void pool_start(int n)
{
	for (int i = 0; i < n; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, worker_main, NULL) != 0) {
			fprintf(stderr, "cs-torture: pthread_create failed\n");
			exit(2);
		}
		pthread_detach(t);
	}
}

void pool_submit(const struct job *j)
{
	pthread_mutex_lock(&q_mu);
	queue[(q_head + q_len) % MAXJOBS] = *j;
	q_len++;
	busy++;
	pthread_cond_signal(&q_cv);
	pthread_mutex_unlock(&q_mu);
}

int pool_wait_idle(int ms)
{
	pthread_mutex_lock(&q_mu);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	while (busy > 0)
		if (pthread_cond_timedwait(&q_cv, &q_mu, &until) != 0)
			break;
	int left = busy;
	pthread_mutex_unlock(&q_mu);
	return left;
}

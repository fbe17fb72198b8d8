/* forkserver: a process-per-connection server, the shape of a prefork or
 * inetd-style daemon (and of PostgreSQL: the parent accepts, a child serves).
 *
 *   forkserver UPSTREAM_PORT [upstream|sleep]
 *
 * Listens on 127.0.0.1 (a free port), prints "listening port=N". For each
 * connection the parent forks; the child reads one request line "WORK n",
 * then does n slow steps — by default a blocking call to a slow upstream on
 * 127.0.0.1:UPSTREAM_PORT (connect, send, blocking recv of the answer), or
 * with "sleep" a 100 ms nanosleep — and finally answers "done n\n".
 * Every event is one stdout line, written with a single write(2) so lines of
 * concurrent children never mix:
 *   accepted child=PID
 *   child=PID request n=N
 *   child=PID step=I t=NS            (a step completed, CLOCK_MONOTONIC ns)
 *   child=PID failed step=I call=NAME errno=E t=NS
 *   child=PID done t=NS
 * The test reads these lines to know what the child did and when. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

/* One line, one write: children share the stdout pipe. */
static void say(const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof buf - 2)
		n = sizeof buf - 2;
	buf[n++] = '\n';
	(void)!write(1, buf, n);
}

static int upstream_port;
static int use_sleep;

/* One step against the upstream: connect, send, wait for the answer. On
 * failure *call names the call that failed and errno is kept. */
static int upstream_step(int step, const char **call)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(upstream_port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*call = "socket";
		return -1;
	}
	char msg[64], reply[128];
	int len = snprintf(msg, sizeof msg, "step %d pid %d end\n", step, (int)getpid());
	int rc = -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		*call = "connect";
	} else if (send(fd, msg, len, MSG_NOSIGNAL) != len) {
		*call = "send";
	} else {
		ssize_t n = recv(fd, reply, sizeof reply, 0);
		if (n > 0)
			rc = 0;
		else {
			*call = "recv";
			if (n == 0)
				errno = ECONNRESET;
		}
	}
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static int sleep_step(const char **call)
{
	struct timespec ts = { 0, 100 * 1000000L };
	*call = "nanosleep";
	return nanosleep(&ts, NULL);
}

/* Read the request line byte by byte (it is short). */
static int read_request(int fd, int *n)
{
	char line[64];
	size_t len = 0;
	while (len + 1 < sizeof line) {
		ssize_t r = read(fd, line + len, 1);
		if (r <= 0)
			return -1;
		if (line[len++] == '\n')
			break;
	}
	line[len] = 0;
	return sscanf(line, "WORK %d", n) == 1 ? 0 : -1;
}

static void serve(int fd)
{
	int n;
	pid_t me = getpid();
	if (read_request(fd, &n) < 0) {
		say("child=%d bad-request errno=%d", (int)me, errno);
		_exit(1);
	}
	say("child=%d request n=%d", (int)me, n);
	for (int i = 1; i <= n; i++) {
		const char *call = "?";
		int rc = use_sleep ? sleep_step(&call) : upstream_step(i, &call);
		if (rc < 0) {
			int e = errno;
			say("child=%d failed step=%d call=%s errno=%d t=%llu", (int)me, i, call, e,
			    (unsigned long long)now_ns());
			_exit(2);
		}
		say("child=%d step=%d t=%llu", (int)me, i, (unsigned long long)now_ns());
	}
	char answer[32];
	int len = snprintf(answer, sizeof answer, "done %d\n", n);
	(void)!send(fd, answer, len, MSG_NOSIGNAL);
	say("child=%d done t=%llu", (int)me, (unsigned long long)now_ns());
	close(fd);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: forkserver UPSTREAM_PORT [upstream|sleep]\n");
		return 2;
	}
	upstream_port = atoi(argv[1]);
	use_sleep = argc > 2 && !strcmp(argv[2], "sleep");
	signal(SIGCHLD, SIG_IGN); /* children are reaped by the kernel */

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t alen = sizeof a;
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 64) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0) {
		perror("forkserver: listen");
		return 1;
	}
	say("listening port=%d", ntohs(a.sin_port));

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			perror("forkserver: accept");
			return 1;
		}
		pid_t pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(fd);
		}
		if (pid < 0)
			perror("forkserver: fork");
		else
			say("accepted child=%d", (int)pid);
		close(fd);
	}
}

/* Sockets for tests: listen, connect, abort with RST, and reads/writes that
 * give up at a deadline instead of hanging the suite. */
#include "testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Fill a sockaddr for a numeric IPv4/IPv6 host. */
static socklen_t make_addr(const char *host, int port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	if (!host)
		host = "127.0.0.1";
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		return sizeof *a4;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		return sizeof *a6;
	}
	errno = EINVAL;
	return 0;
}

static int remaining_ms(uint64_t end_ns, int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	uint64_t now = tl_now_ns();
	return now >= end_ns ? 0 : (int)((end_ns - now + 999999) / 1000000);
}

static uint64_t end_after(int timeout_ms)
{
	return tl_now_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u;
}

/* poll one fd for events until the deadline: 1 ready, 0 timeout (ETIMEDOUT). */
static int wait_fd(int fd, short events, uint64_t end, int timeout_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, remaining_ms(end, timeout_ms));
		if (r > 0)
			return 1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return 0;
		}
		if (errno != EINTR)
			return -1;
	}
}

int tl_listen_tcp(const char *host, int port, int *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(host, port, &ss);
	if (!len)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 512) < 0)
		goto fail;
	if (port_out) {
		len = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			goto fail;
		*port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
							  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	return fd;
fail:;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

int tl_free_port(void)
{
	int port = -1;
	int fd = tl_listen_tcp("127.0.0.1", 0, &port);
	if (fd < 0)
		return -1;
	close(fd);
	return port;
}

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

int tl_listen_unix(const char *path)
{
	struct sockaddr_un sun;
	if (unix_addr(path, &sun) < 0)
		return -1;
	unlink(path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 512) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Non-blocking connect with a deadline, then back to blocking. */
static int connect_deadline(int fd, const struct sockaddr *sa, socklen_t len, int timeout_ms)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	int r = connect(fd, sa, len);
	if (r < 0 && errno == EINPROGRESS) {
		if (wait_fd(fd, POLLOUT, end_after(timeout_ms), timeout_ms) <= 0)
			return -1;
		int err = 0;
		socklen_t el = sizeof err;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err) {
			errno = err;
			return -1;
		}
		r = 0;
	}
	if (r < 0)
		return -1;
	fcntl(fd, F_SETFL, fl);
	return 0;
}

int tl_connect_tcp(const char *host, int port, int timeout_ms)
{
	struct sockaddr_storage ss;
	socklen_t len = make_addr(host, port, &ss);
	if (!len)
		return -1;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_deadline(fd, (struct sockaddr *)&ss, len, timeout_ms) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

int tl_connect_unix(const char *path, int timeout_ms)
{
	struct sockaddr_un sun;
	if (unix_addr(path, &sun) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect_deadline(fd, (struct sockaddr *)&sun, sizeof sun, timeout_ms) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

bool tl_wait_port(const char *host, int port, int timeout_ms)
{
	uint64_t end = end_after(timeout_ms);
	for (;;) {
		int fd = tl_connect_tcp(host, port, 200);
		if (fd >= 0) {
			close(fd);
			return true;
		}
		if (tl_now_ns() >= end)
			return false;
		/* Nothing to wait on until the server listens: retry briefly. */
		struct pollfd none;
		poll(&none, 0, 5);
	}
}

int tl_accept(int listen_fd, int timeout_ms)
{
	if (wait_fd(listen_fd, POLLIN, end_after(timeout_ms), timeout_ms) <= 0)
		return -1;
	return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

int tl_abort(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	return close(fd);
}

int tl_write_all(int fd, const void *buf, size_t len, int timeout_ms)
{
	uint64_t end = end_after(timeout_ms);
	const char *p = buf;
	while (len) {
		if (wait_fd(fd, POLLOUT, end, timeout_ms) <= 0)
			return -1;
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			if (errno == ENOTSOCK)
				n = write(fd, p, len);
			if (n < 0)
				return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

int tl_write_str(int fd, const char *s, int timeout_ms)
{
	return tl_write_all(fd, s, strlen(s), timeout_ms);
}

ssize_t tl_read_some(int fd, void *buf, size_t len, int timeout_ms)
{
	for (;;) {
		if (wait_fd(fd, POLLIN, end_after(timeout_ms), timeout_ms) <= 0)
			return -1;
		ssize_t n = read(fd, buf, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n;
	}
}

ssize_t tl_read_line(int fd, char *buf, size_t size, int timeout_ms)
{
	uint64_t end = end_after(timeout_ms);
	size_t n = 0;
	while (n + 1 < size) {
		if (wait_fd(fd, POLLIN, end, timeout_ms) <= 0)
			return -1;
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = 0;
	return n;
}

ssize_t tl_read_n(int fd, void *buf, size_t len, int timeout_ms)
{
	uint64_t end = end_after(timeout_ms);
	size_t got = 0;
	while (got < len) {
		if (wait_fd(fd, POLLIN, end, timeout_ms) <= 0)
			return -1;
		ssize_t r = read(fd, (char *)buf + got, len - got);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += r;
	}
	return got;
}

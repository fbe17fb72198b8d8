/* The common path of intercepted calls: a million calls each of read, write,
 * recv, send, poll and epoll_wait that return at once, by a thread serving no
 * client (as in a program's start-up, a helper thread, an event loop).
 * Run it with and without the shim under callgrind: the difference in
 * instructions, divided by the number of calls, is the shim's cost per call
 * (bench/hotpath.sh). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	const char *which = argc > 2 ? argv[2] : "read";
	int sv[2], ep = epoll_create1(0);
	char c = 'x';
	struct pollfd p;
	struct epoll_event ev = { .events = EPOLLOUT }, got;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0 || ep < 0)
		return 1;
	p.fd = sv[0];
	p.events = POLLOUT;
	epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev);
	for (long i = 0; i < n; i++) {
		switch (which[0] + which[1]) {
		case 'r' + 'e':	/* read: nothing to read, EAGAIN at once */
			if (which[2] == 'a')
				(void)!read(sv[0], &c, 1);
			else
				(void)!recv(sv[0], &c, 1, 0);
			break;
		case 'w' + 'r':	/* write: one byte, read back to keep the buffer empty */
			(void)!write(sv[0], &c, 1);
			(void)!recv(sv[1], &c, 1, 0);
			break;
		case 's' + 'e':
			(void)!send(sv[0], &c, 1, 0);
			(void)!recv(sv[1], &c, 1, 0);
			break;
		case 'p' + 'o':
			poll(&p, 1, 0);
			break;
		case 'e' + 'p':
			epoll_wait(ep, &got, 1, 0);
			break;
		}
	}
	return 0;
}

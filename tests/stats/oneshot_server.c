/* A plain C server for the statistics tests, run unmodified under the shim:
 *
 *     stats-oneshot-server [--clients N] [--setuid UID]
 *
 * Listens on 127.0.0.1 (any port), prints "port N", then serves N clients
 * (default 1) one after the other: accepts, with --setuid drops to UID right
 * after the first accept (as a server started as root does once it holds
 * its socket), reads one line, answers "ok <line>", closes, prints
 * "served <line>". Exits 0 after the last client; 1 on any failure, saying
 * which call failed on stderr. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	long clients = 1, drop_to = -1;
	int ls;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--clients"))
			clients = atol(argv[i + 1]);
		else if (!strcmp(argv[i], "--setuid"))
			drop_to = atol(argv[i + 1]);
	}
	if ((ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return fail("socket");
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 16) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		return fail("bind/listen");
	printf("port %d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (long n = 0; n < clients; n++) {
		char line[256], reply[300];
		size_t len = 0;
		int c = accept(ls, NULL, NULL);

		if (c < 0)
			return fail("accept");
		if (n == 0 && drop_to >= 0 && setuid((uid_t)drop_to) < 0)
			return fail("setuid");
		while (len < sizeof line - 1) {
			ssize_t r = read(c, line + len, 1);
			if (r <= 0 || line[len] == '\n')
				break;
			len++;
		}
		line[len] = 0;
		snprintf(reply, sizeof reply, "ok %s\n", line);
		if (write(c, reply, strlen(reply)) < 0)
			return fail("write");
		close(c);
		printf("served %s\n", line);
		fflush(stdout);
	}
	return 0;
}

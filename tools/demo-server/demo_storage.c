#include "demo_storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "demo_net.h"

/* Every chunk carries this much data, so that a chunk is an upload of
 * something rather than an empty round trip. */
#define CHUNK_BYTES 4096
#define MAX_CHUNK_BYTES (1 << 20)

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Read and drop len bytes: storage keeps nothing, it only takes time. */
static int discard(int fd, size_t len)
{
	char buf[4096];

	while (len > 0) {
		size_t n = len < sizeof buf ? len : sizeof buf;
		if (net_read_exact(fd, buf, n) < 0)
			return -1;
		len -= n;
	}
	return 0;
}

/* One storage connection: take chunks until the server goes away. */
static void *storage_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[128], ack[64];
	int seq, ms, len;

	while (net_read_line(fd, line, sizeof line) > 0) {
		if (sscanf(line, "CHUNK %d %d %d", &seq, &ms, &len) != 3 ||
		    ms < 0 || len < 0 || len > MAX_CHUNK_BYTES)
			break;
		if (discard(fd, (size_t)len) < 0)
			break;
		sleep_ms(ms);
		snprintf(ack, sizeof ack, "ACK %d\n", seq);
		if (net_write_all(fd, ack, strlen(ack)) < 0)
			break;
	}
	close(fd);
	return NULL;
}

int storage_serve(int port)
{
	return net_serve_threads(port, "demo storage", storage_conn);
}

int storage_put_chunk(int fd, int seq, int ms, const char **failed_call)
{
	/* Head and data in one send: two small writes in a row would meet
	 * Nagle and delayed ACKs and add 40 ms to every chunk. */
	char msg[64 + CHUNK_BYTES], ack[64];
	int head = snprintf(msg, 64, "CHUNK %d %d %d\n", seq, ms, CHUNK_BYTES);
	int got;
	ssize_t n;

	memset(msg + head, 'x', CHUNK_BYTES);	/* what we upload does not matter */
	*failed_call = "send";
	if (net_write_all(fd, msg, (size_t)head + CHUNK_BYTES) < 0)
		return -1;
	*failed_call = "recv";
	n = net_read_line(fd, ack, sizeof ack);
	if (n < 0)
		return -1;
	if (n == 0 || sscanf(ack, "ACK %d", &got) != 1 || got != seq) {
		errno = EPROTO;	/* storage went away or answered nonsense */
		return -1;
	}
	return 0;
}

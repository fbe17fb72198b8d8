/* See lskel_ring.h. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>

#include "lskel_ring.h"

bool lskel_ring_open(struct lskel_ring *r, int fd, size_t size)
{
	int err = cs_bpf_ring_map(&r->ring, fd, size);

	r->fd = fd;
	if (err)
		errno = -err;
	return !err;
}

bool lskel_ring_next(struct lskel_ring *r, struct disconnect_event *e, int timeout_ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	struct timespec now;
	long long deadline_ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	deadline_ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + timeout_ms;
	/* The ring is readable while anything is unconsumed: poll returns as
	 * soon as the producer moves past us (a record still BUSY makes it
	 * return at once; the deadline bounds that). */
	while (!cs_bpf_ring_take(&r->ring, e, sizeof *e)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long left = deadline_ms - (now.tv_sec * 1000LL + now.tv_nsec / 1000000);
		if (left <= 0 || poll(&p, 1, (int)left) < 0)
			return false;
	}
	return true;
}

void lskel_ring_close(struct lskel_ring *r)
{
	cs_bpf_ring_unmap(&r->ring);
	r->fd = -1;
}

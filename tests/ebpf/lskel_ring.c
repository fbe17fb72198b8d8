/* See lskel_ring.h. The layout is the kernel's (kernel/bpf/ringbuf.c): a
 * consumer position page, a producer position page, then the data area
 * mapped twice in a row. Each record starts with an 8-byte header whose
 * first word is its length plus two flags: BUSY while the producer is still
 * writing it, DISCARD if it was abandoned. */
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>

#include "lskel_ring.h"

bool lskel_ring_open(struct lskel_ring *r, int fd, size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	void *cons, *prod;

	memset(r, 0, sizeof *r);
	cons = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (cons == MAP_FAILED)
		return false;
	prod = mmap(NULL, page + 2 * size, PROT_READ, MAP_SHARED, fd, page);
	if (prod == MAP_FAILED) {
		munmap(cons, page);
		return false;
	}
	r->fd = fd;
	r->size = size;
	r->consumer = cons;
	r->producer = prod;
	r->data = (const char *)prod + page;
	return true;
}

/* One record if there is a complete one; skips discarded records. */
static bool take(struct lskel_ring *r, struct disconnect_event *e)
{
	unsigned long cons = __atomic_load_n(r->consumer, __ATOMIC_RELAXED);

	while (cons < __atomic_load_n(r->producer, __ATOMIC_ACQUIRE)) {
		const __u32 *hdr = (const __u32 *)(r->data + (cons & (r->size - 1)));
		__u32 len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
		__u32 body = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		bool keep = !(len & BPF_RINGBUF_DISCARD_BIT) && body >= sizeof *e;

		if (len & BPF_RINGBUF_BUSY_BIT)
			return false;
		if (keep)
			memcpy(e, hdr + 2, sizeof *e);
		cons += (body + BPF_RINGBUF_HDR_SZ + 7) & ~7UL;
		__atomic_store_n(r->consumer, cons, __ATOMIC_RELEASE);
		if (keep)
			return true;
	}
	return false;
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
	while (!take(r, e)) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long left = deadline_ms - (now.tv_sec * 1000LL + now.tv_nsec / 1000000);
		if (left <= 0 || poll(&p, 1, (int)left) < 0)
			return false;
	}
	return true;
}

void lskel_ring_close(struct lskel_ring *r)
{
	long page = sysconf(_SC_PAGESIZE);

	if (r->consumer)
		munmap(r->consumer, page);
	if (r->producer)
		munmap((void *)r->producer, page + 2 * r->size);
	memset(r, 0, sizeof *r);
}

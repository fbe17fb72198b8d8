/* See bpf_ring.h. The layout is the kernel's (kernel/bpf/ringbuf.c): a
 * consumer position page, a producer position page, then the data area
 * mapped twice in a row. Each record starts with an 8-byte header whose
 * first word is its length plus two flags: BUSY while the producer is still
 * writing it, DISCARD if it was abandoned. */
#include "watch/bpf_ring.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/bpf.h>

#include "base/raw_syscall.h"

#define PAGE 4096L

int cs_bpf_ring_map(struct cs_bpf_ring *r, int fd, size_t size)
{
	long cons, prod;

	memset(r, 0, sizeof *r);
	cons = cs_raw6(SYS_mmap, 0, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (cons < 0 && cons > -4096)
		return (int)cons;
	prod = cs_raw6(SYS_mmap, 0, PAGE + 2 * (long)size, PROT_READ, MAP_SHARED, fd, PAGE);
	if (prod < 0 && prod > -4096) {
		cs_raw2(SYS_munmap, cons, PAGE);
		return (int)prod;
	}
	r->consumer = (_Atomic unsigned long *)cons;
	r->producer = (_Atomic unsigned long *)prod;
	r->data = (const char *)prod + PAGE;
	r->size = size;
	return 0;
}

void cs_bpf_ring_unmap(struct cs_bpf_ring *r)
{
	if (r->consumer)
		cs_raw2(SYS_munmap, r->consumer, PAGE);
	if (r->producer)
		cs_raw2(SYS_munmap, r->producer, PAGE + 2 * (long)r->size);
	memset(r, 0, sizeof *r);
}

int cs_bpf_ring_take(struct cs_bpf_ring *r, void *out, size_t len)
{
	unsigned long cons = atomic_load_explicit(r->consumer, memory_order_relaxed);

	while (cons < atomic_load_explicit(r->producer, memory_order_acquire)) {
		const _Atomic uint32_t *hdr = (const _Atomic uint32_t *)(r->data + (cons & (r->size - 1)));
		uint32_t word = atomic_load_explicit(hdr, memory_order_acquire);
		uint32_t body = word & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
		int keep = !(word & BPF_RINGBUF_DISCARD_BIT) && body >= len;

		if (word & BPF_RINGBUF_BUSY_BIT)
			return 0;
		if (keep)
			memcpy(out, (const char *)hdr + BPF_RINGBUF_HDR_SZ, len);
		cons += (body + BPF_RINGBUF_HDR_SZ + 7) & ~7ul;
		atomic_store_explicit(r->consumer, cons, memory_order_release);
		if (keep)
			return 1;
	}
	return 0;
}

/* A reader of a BPF ring buffer map without libbpf: what a process that
 * loads a light skeleton needs (the shim's eBPF watcher; the lskel test uses
 * the same code). Raw system calls only, no allocation. One consumer per
 * ring: its position is ours to write. */
#ifndef CS_BPF_RING_H
#define CS_BPF_RING_H

#include <stdatomic.h>
#include <stddef.h>

struct cs_bpf_ring {
	_Atomic unsigned long *consumer;	/* page 0, ours to write */
	_Atomic unsigned long *producer;	/* page 1, the kernel's */
	const char *data;			/* mapped twice, so records never wrap */
	size_t size;				/* data area, a power of two */
};

/* Maps the ring buffer map fd whose data area is size bytes: 0 or -errno. */
int cs_bpf_ring_map(struct cs_bpf_ring *r, int fd, size_t size);

/* Unmaps (nothing if not mapped) and clears r. */
void cs_bpf_ring_unmap(struct cs_bpf_ring *r);

/* Copies the next complete record of at least len bytes (its first len
 * bytes) to out, skipping discarded and shorter ones: 1, or 0 if none is
 * ready (a record the kernel is still writing stops the reading). */
int cs_bpf_ring_take(struct cs_bpf_ring *r, void *out, size_t len);

#endif

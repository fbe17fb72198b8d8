/* A minimal reader of a BPF ring buffer map, with no libbpf: what a process
 * that loads the light skeleton (disconnect.lskel.h) needs to receive
 * struct disconnect_event records. Used by test_lskel.c to prove that path
 * works before the shim relies on it. */
#ifndef TESTS_EBPF_LSKEL_RING_H
#define TESTS_EBPF_LSKEL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "disconnect.h"

struct lskel_ring {
	int fd;
	size_t size;			/* data area, a power of two */
	unsigned long *consumer;	/* page 0, ours to write */
	const unsigned long *producer;	/* page 1, the kernel's */
	const char *data;		/* mapped twice, so records never wrap */
};

/* Maps the ring buffer map fd of `size` bytes; false with errno set. */
bool lskel_ring_open(struct lskel_ring *r, int fd, size_t size);

/* Waits up to timeout_ms for the next record and copies it to *e.
 * false on timeout. */
bool lskel_ring_next(struct lskel_ring *r, struct disconnect_event *e, int timeout_ms);

void lskel_ring_close(struct lskel_ring *r);

#endif

/* Waiting for struct disconnect_event records in a BPF ring buffer map,
 * with no libbpf: the shim's own reader (shim/watch/bpf_ring.c), plus a poll with
 * a deadline for the tests. Used by test_lskel.c, which loads the light
 * skeleton as the shim does. */
#ifndef TESTS_EBPF_LSKEL_RING_H
#define TESTS_EBPF_LSKEL_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "disconnect.h"

#include "watch/bpf_ring.h"

struct lskel_ring {
	int fd;
	struct cs_bpf_ring ring;
};

/* Maps the ring buffer map fd of `size` bytes; false with errno set. */
bool lskel_ring_open(struct lskel_ring *r, int fd, size_t size);

/* Waits up to timeout_ms for the next record and copies it to *e.
 * false on timeout. */
bool lskel_ring_next(struct lskel_ring *r, struct disconnect_event *e, int timeout_ms);

void lskel_ring_close(struct lskel_ring *r);

#endif

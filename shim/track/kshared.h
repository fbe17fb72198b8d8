/* The memory the shim shares with its eBPF program for the kernel-side
 * cancel (ebpf/kcancel.h): the first chunk of the thread registry, an index
 * of covered connections by key, and the kernel's counters. The eBPF watcher
 * maps it after loading and installs it here; NULL (the fallback: the
 * watcher thread cancels) until then, in a fork child, and whenever the
 * kernel-side cancel is off.
 *
 * Everything here is memory operations only: no system call at accept, at
 * binding or at close. */
#ifndef CS_KSHARED_H
#define CS_KSHARED_H

#include <stdint.h>

struct kc_shared;

/* Mapping size of the shared value (whole pages). */
unsigned long cs_kshared_bytes(void);

/* Installs the mapped memory: its records become chunk 0 of the thread
 * registry. 0, or -1 if records were handed out already (they live
 * elsewhere: the kernel could not see them). */
int cs_kshared_install(struct kc_shared *sh);

/* Puts fd's connection (key, generation gen) in the index: its entry + 1,
 * or 0 (kernel-side cancel off, or no room near the key: the watcher then
 * handles its disconnect, as in the fallback). At most one entry per key:
 * an entry with the key is taken over. *took_dead is set to 1 when that
 * entry carried the kernel's DEAD mark: the program may have found it for
 * this very connection's disconnect, before this entry was stored (a
 * program that finds the entry mid-rewrite fails its compare-and-swap and
 * leaves the event to the watcher), so the caller asks the socket. */
unsigned cs_kshared_index(int fd, uint64_t key, uint32_t gen, int *took_dead);

/* Connection gen's descriptor was closed: its entry no longer names it (an
 * event for a socket the process has let go of must find nothing). */
void cs_kshared_closed(unsigned kidx1, uint32_t gen);

/* Did the kernel see connection gen (entry kidx1) end? 1 (and *rst), or 0.
 * A couple of loads. */
int cs_kshared_dead(unsigned kidx1, uint32_t gen, int *rst);

/* The kernel's counts since the last call: any thread, any time; each
 * count is handed out once. */
struct cs_kshared_counts {
	uint64_t cancels;	/* thread states it set CANCEL on */
	uint64_t wakeups;	/* ... and signalled */
	uint64_t fin, rst;	/* connections it saw end (first edge) */
	uint64_t unbound;	/* ... with no thread bound */
};
void cs_kshared_take_counts(struct cs_kshared_counts *c);

/* In a fork child, before anything else touches it: the memory is the
 * parent's (MAP_SHARED), so the child gets a private copy at the same
 * address, and the kernel-side cancel is off for it. */
void cs_kshared_after_fork_child(void);

/* In a prefork child, at the end of its fork handler: fresh (mapped,
 * MAP_SHARED of map_fd) is the shared value of the instance its parent
 * loaded for it (ebpf_watcher.c), and becomes the child's, at the address
 * of the parent's copy so that chunk 0 of the registry stays where it is
 * (mmap MAP_FIXED of map_fd; the records are copied over), or installed as
 * usual if there is no chunk 0. Where the value is now (fresh, or the old
 * address: then fresh was unmapped), or NULL (the kernel-side cancel stays
 * off; the caller unmaps fresh). */
struct kc_shared *cs_kshared_adopt(struct kc_shared *fresh, int map_fd);

/* The program is gone (a failed attach, its descriptors lost): off, the
 * memory stays mapped (chunk 0 of the registry lives there). */
void cs_kshared_stop(void);

/* 1 in a fork child (or its descendants) of a process that had it: its
 * registry's chunk 0 is a copy, so its own instance cannot share it. */
int cs_kshared_inherited(void);

/* Is it on (installed, not forked)? */
int cs_kshared_on(void);

#endif

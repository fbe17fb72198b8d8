/* kcancel.h — the memory the shim and disconnect.bpf.c share for the
 * kernel-side cancel (docs/ebpf-design.md, "Kernel-side cancel"): one value
 * of the BPF_F_MMAPABLE array map `shared`, mapped MAP_SHARED by the shim
 * right after load. __u* fields only, no holes. Include <linux/types.h>
 * (user space) or vmlinux.h (BPF) first.
 *
 *  - records: chunk 0 of the shim's thread registry (shim/track/threads.c):
 *    struct cs_thread, 64 bytes each, state word at 0, tid at 8, cancel_ns at
 *    16, cancel_gen at 24, cancel_rst at 32 (static-asserted in threads.h).
 *  - index: the covered connections by key, written by accept (no system
 *    call), open addressing over KC_PROBES slots; stale entries are
 *    overwritten, never deleted (a stale generation has no bound thread).
 *  - header: counters the kernel keeps and the shim folds into its
 *    statistics, and what the shim tells the kernel. */
#ifndef CANCELSHIM_KCANCEL_H
#define CANCELSHIM_KCANCEL_H

#define KC_VERSION		1
#define KC_RECORDS		256	/* = threads.c's CHUNK_RECORDS */
#define KC_RECORD_BYTES		64
#define KC_INDEX_BITS		13
#define KC_INDEX_SIZE		(1u << KC_INDEX_BITS)
#define KC_PROBES		16

/* Thread state word bits (threads.h) */
#define KC_ST_GEN		0xffffffffull
#define KC_ST_INCALL		(1ull << 62)
#define KC_ST_CANCEL		(1ull << 63)

/* cancel_rst as the program writes it: bit 0 a reset, bit 1 "set by the
 * program" (the shim's debug line says who cancelled). */
#define KC_RST_BY_KERNEL	0x2

/* An index entry's second word: the descriptor word's generation (0: the
 * entry is free, or being rewritten), flags, and the descriptor + 1 (for the
 * shim's own staleness test). */
#define KC_ENTRY_GEN		0xffffffffull
#define KC_ENTRY_DEAD_BIT	(1ull << 32)	/* the kernel saw its peer leave */
#define KC_ENTRY_RST_BIT	(1ull << 33)	/* ... by a reset (or an error) */
#define KC_ENTRY_FD_SHIFT	40		/* descriptor + 1, 24 bits */

struct kc_record {
	__u64 state;
	__s32 tid;
	__s32 bound_fd;
	__u64 cancel_ns;
	__u32 cancel_gen;
	__s32 call_nr;
	__u32 cancel_rst;
	__u32 pad[7];
};

struct kc_entry {
	__u64 key;	/* 0: never used */
	__u64 genflags;	/* KC_ENTRY_*: written after the key (see the shim's kshared.c) */
};

struct kc_header {
	__u32 version;		/* KC_VERSION, written by the shim */
	__u32 records_limit;	/* records handed out by threads.c (may exceed KC_RECORDS) */
	__u64 cancels;		/* thread states the kernel set CANCEL on */
	__u64 wakeups;		/* ... and signalled (they were INCALL) */
	__u64 wake_failed;	/* bpf_send_signal_task failed: left to the watcher */
	__u64 fin;		/* connections it saw end, by their first edge */
	__u64 rst;
	__u64 ambiguous;	/* not handled: two live sockets with the key */
	__u64 unmatched;	/* not handled: no index entry (not accepted yet) */
	__u64 handled_seq;	/* advanced before each index lookup (a count, for debugging) */
	__u64 unbound;		/* of fin + rst, those with no thread bound */
	__u64 spare[6];
};

struct kc_shared {
	struct kc_header h;
	struct kc_record records[KC_RECORDS];
	struct kc_entry index[KC_INDEX_SIZE];
};

/* Event flags beyond disconnect.h's DISCONNECT_F_*: the kernel handled the
 * event (gen set, threads it found cancelled); a signal it could not send
 * (krec = the record's index + 1). */
#define DISCONNECT_F_KHANDLED	0x4
#define DISCONNECT_F_KSIGFAIL	0x8

/* The key of a connection: both sides compute it the same way (the shim at
 * accept from the peer's address, the program from the socket). addr: the
 * peer as IPv6 in network order, IPv4 mapped as ::ffff:a.b.c.d. */
static inline __u64 kc_mix(__u64 h, __u64 v)
{
	h ^= v;
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 33);
}

static inline __u64 kc_key(const __u32 addr[4], __u16 rport, __u16 lport)
{
	__u64 h = 0x9e3779b97f4a7c15ull;
	for (int i = 0; i < 4; i++)
		h = kc_mix(h, addr[i]);
	h = kc_mix(h, ((__u64)rport << 16) | lport);
	return h ? h : 1;
}

#endif

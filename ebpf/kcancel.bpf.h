/* kcancel.bpf.h — the kernel-side cancel, included by disconnect.bpf.c.
 *
 * When the shim turns it on (rodata `kcancel`), the program acts on a
 * disconnect itself with the shim's own protocol (shim/cancel/disconnect.c):
 * it finds the connection in the index the shim's accept fills (map
 * `shared`, kcancel.h), marks the entry DEAD, sets CANCEL on every thread
 * record bound to its generation with a compare-and-swap, and signals a
 * thread that was INCALL with the shim's signal and cookie. What it cannot
 * prove (no entry, two live sockets with the key, a socket it did not count,
 * more threads than the shared records hold) goes to the ring with a
 * wake-up, and the watcher does it as before; what it did goes to the ring
 * without one, for the watcher's bookkeeping when it next wakes.
 * docs/ebpf-design.md, "Kernel-side cancel", has the ordering argument. */
#ifndef CANCELSHIM_KCANCEL_BPF_H
#define CANCELSHIM_KCANCEL_BPF_H

#include "kcancel.h"

/* Not in a vmlinux.h made by bpftool 7.1: declared here, weak, so that the
 * object still loads on a kernel without them: the verifier drops the calls
 * as dead code when the rodata knob `kcancel` is false, which the shim sets
 * on kernels before 6.13 (bpf_send_signal_task). bpf_ksym_exists() cannot
 * be used: the light skeleton of libbpf 1.1 resolves a weak kfunc for a
 * call but leaves its address (the ld_imm64 that macro tests) at 0. If the
 * load with kcancel fails anyway, the shim loads the object again without. */
extern struct task_struct *bpf_task_from_pid(s32 pid) __ksym __weak;
extern void bpf_task_release(struct task_struct *p) __ksym __weak;
extern int bpf_send_signal_task(struct task_struct *task, int sig, enum pid_type type, u64 value) __ksym __weak;


const volatile bool kcancel = false;	/* the shim mapped `shared` and wants it */
const volatile bool kc_rst_only = false; /* CANCELSHIM_ON=rst: a FIN cancels nothing */
const volatile int kc_signo = 0;	/* the shim's cancel signal */
const volatile __u32 kc_cookie = 0;	/* its per-process cookie (si_value) */
const volatile __s32 kc_tgid = 0;	/* its pid, global: records name its threads */

/* The owner's pid when kc_tgid is 0: an instance a prefork parent loaded
 * for a child it is about to fork (the child's pid is not known at load).
 * The child writes its pid here in its fork handler, while still
 * privileged, freezes the map and closes the descriptor: a process can never
 * point the program at another process's threads. 0 (unset): nobody is
 * signalled. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __s32);
} owner SEC(".maps");

static __always_inline __s32 kc_owner(void)
{
	__u32 zero = 0;
	__s32 *o;

	if (kc_tgid)
		return kc_tgid;
	o = bpf_map_lookup_elem(&owner, &zero);
	return o ? *o : 0;
}
/* Set by the shim (mmap'ed .bss) when it could not share its records after
 * all: everything goes to the watcher, as without kcancel. */
volatile bool kc_off = false;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kc_shared);
} shared SEC(".maps");

/* Live counted sockets per key bucket (a key's low bits): a count above 1
 * means two connections may share the key, and the program leaves the
 * event to the watcher, which tells them apart by cookie. Buckets, not a
 * hash map: nothing to delete (a delete racing an increment would lose
 * it), and a collision only makes the program more careful. */
#define KC_LIVE_BITS 16
struct kc_live {
	__u32 n[1u << KC_LIVE_BITS];
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kc_live);
} live SEC(".maps");

static __always_inline struct kc_shared *kc_shared_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&shared, &zero);
}

static __always_inline __u32 *kc_live_ref(__u64 key)
{
	__u32 zero = 0;
	struct kc_live *l = bpf_map_lookup_elem(&live, &zero);
	return l ? &l->n[key & ((1u << KC_LIVE_BITS) - 1)] : NULL;
}

/* The key of sk's connection, as the shim computes it at accept. */
static __always_inline __u64 kc_key_of(const struct sock *sk)
{
	__u32 addr[4];

	if (sk->__sk_common.skc_family == AF_INET) {
		addr[0] = 0;
		addr[1] = 0;
		addr[2] = bpf_htonl(0xffff);
		addr[3] = sk->__sk_common.skc_daddr;
	} else {
		for (int i = 0; i < 4; i++)
			addr[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
	}
	return kc_key(addr, bpf_ntohs(sk->__sk_common.skc_dport), sk->__sk_common.skc_num);
}

/* An accepted connection became ESTABLISHED: its key is kept in its
 * storage (computed once), and it is counted. */
static __always_inline void kc_count_established(struct sock *sk, __u8 *counted, __u64 *key)
{
	__u32 *n;

	if (!kcancel || *counted)
		return;
	*key = kc_key_of(sk);
	n = kc_live_ref(*key);
	if (!n)
		return;
	__sync_fetch_and_add(n, 1);
	*counted = 1;
}

/* A counted socket closed. */
static __always_inline void kc_count_closed(__u8 *counted, __u64 key)
{
	__u32 *n;

	if (!kcancel || !*counted)
		return;
	*counted = 0;
	n = kc_live_ref(key);
	if (n)
		__sync_fetch_and_add(n, -1);
}

/* What the scan of the records found. */
struct kc_outcome {
	__u16 krec;	/* a record whose signal failed, + 1 */
	__u16 bound;	/* records it found bound to gen */
	__u8 wake;	/* the watcher must act: wake it */
};

/* What the scan of the records needs (bpf_loop's context). */
struct kc_scan {
	struct kc_shared *sh;
	struct kc_outcome *out;
	__u64 now;
	__u32 gen;
	int rst;
};

/* Wakes the thread of record r (index i), which was INCALL when its flag
 * was set: the shim's signal, with its cookie as the value (SI_KERNEL). */
static __noinline int kc_signal(struct kc_shared *sh, struct kc_record *r, __u32 i, struct kc_outcome *out)
{
	struct task_struct *task = bpf_task_from_pid(r->tid);
	int err = -1;

	if (task) {
		/* The record names a thread of ours, or nobody. */
		__s32 tgid = kc_owner();
		if (tgid && task->tgid == tgid)
			err = bpf_send_signal_task(task, kc_signo, PIDTYPE_PID, kc_cookie);
		bpf_task_release(task);
	}
	if (err) {
		/* -EBUSY: this CPU's signal work is taken (two signals from one
		 * softirq); the watcher sends it. */
		__sync_fetch_and_add(&sh->h.wake_failed, 1);
		out->krec = i + 1;
		out->wake = 1;
	} else {
		__sync_fetch_and_add(&sh->h.wakeups, 1);
	}
	return 0;
}

/* Sets CANCEL on record r if it is bound to gen; signals it if INCALL.
 * 1 if it was bound (cancelled now or before). */
static int kc_cancel_record(struct kc_shared *sh, __u32 i, __u32 gen, int rst, __u64 now, struct kc_outcome *out)
{
	struct kc_record *r;
	__u64 s, old;

	if (i >= KC_RECORDS)
		return 0;
	r = &sh->records[i];
	s = *(volatile __u64 *)&r->state;
	if ((__u32)s != gen)
		return 0;
	if (s & KC_ST_CANCEL)
		return 1;
	/* Stamped before the flag, for the latency histogram. */
	r->cancel_gen = gen;
	r->cancel_ns = now;
	r->cancel_rst = (rst ? 1 : 0) | KC_RST_BY_KERNEL;
	old = __sync_val_compare_and_swap(&r->state, s, s | KC_ST_CANCEL);
	if (old != s) {
		/* The thread changed its word meanwhile (entered or left a
		 * call, rebound): the watcher looks again, with the same
		 * compare-and-swap. */
		out->wake = 1;
		return (__u32)old == gen;
	}
	__sync_fetch_and_add(&sh->h.cancels, 1);
	if (s & KC_ST_INCALL)
		kc_signal(sh, r, i, out);
	return 1;
}

/* bpf_loop's callback: one record. A loop body verified once, not 256
 * times. */
static long kc_scan_one(__u32 i, void *arg)
{
	struct kc_scan *sc = arg;

	sc->out->bound += kc_cancel_record(sc->sh, i, sc->gen, sc->rst, sc->now, sc->out);
	return 0;
}

/* The index search (bpf_loop's context): entries with the key. */
struct kc_probe {
	struct kc_shared *sh;
	__u64 key;
	__u64 gf;	/* the (last) match's word */
	__u32 at;	/* its slot */
	__u32 found;
};

static long kc_probe_one(__u32 i, void *arg)
{
	struct kc_probe *pr = arg;
	__u32 at = (__u32)(pr->key + i) & (KC_INDEX_SIZE - 1);
	struct kc_entry *x = &pr->sh->index[at];
	__u64 g;

	if (*(volatile __u64 *)&x->key != pr->key)
		return 0;
	g = *(volatile __u64 *)&x->genflags;
	/* The key again: the shim writes gen 0, the key, then the word. */
	if (*(volatile __u64 *)&x->key != pr->key || !(__u32)g)
		return 0;	/* being rewritten, or its connection closed */
	pr->found++;
	pr->gf = g;
	pr->at = at;
	return 0;
}

/* kc_handle's arguments and result, packed into scalars: it is a global
 * function, verified once on its own, so the many ways it can end do not
 * multiply the states the verifier walks in report() (a static function
 * made loading 5x slower). */
#define KC_HOW_RST	0x1	/* a reset or an error, not a FIN */
#define KC_HOW_COUNTED	0x2	/* the socket is in the live counts */
#define KC_HOW_ACCEPTED	0x4	/* it has a struct socket: accept() took it */
#define KC_HOW_ORPHAN	0x8	/* SOCK_DEAD: accepted, and every descriptor of it closed */

#define KC_OUT_GEN(o)	((__u32)(o))
#define KC_OUT_KREC(o)	((__u16)((o) >> 32))
#define KC_OUT_BOUND(o)	((__u16)((o) >> 48) & 0x7fff)
#define KC_OUT_WAKE	(1ull << 63)

/* The disconnect of the connection with this key (how: KC_HOW_*): cancels
 * its threads if it can prove which they are; what happened, packed. */
__noinline __u64 kc_handle(__u64 key, __u32 how)
{
	struct kc_outcome out = { .wake = 1 };
	struct kc_shared *sh;
	struct kc_entry *e = NULL;
	__u64 gf = 0, now;
	__u32 *n, limit, gen;
	int rst = how & KC_HOW_RST, found = 0, first = 0;

	if (!kcancel || kc_off)
		return KC_OUT_WAKE;
	sh = kc_shared_get();
	if (!sh)
		return KC_OUT_WAKE;
	if (!rst && kc_rst_only)
		return 0;	/* nothing to do, for anyone */
	/* Closed by the server everywhere (a reset after its close): no
	 * thread can be serving it, nothing to do now (the watcher reads it
	 * later, as all it reads). */
	if (how & KC_HOW_ORPHAN)
		return 0;
	/* Not accepted yet (no struct socket), or not counted at its
	 * establishment (the port was not filtered then): the watcher's. */
	if (!(how & KC_HOW_COUNTED) || !(how & KC_HOW_ACCEPTED))
		return KC_OUT_WAKE;
	n = kc_live_ref(key);
	if (!n || *(volatile __u32 *)n != 1) {
		__sync_fetch_and_add(&sh->h.ambiguous, 1);
		return KC_OUT_WAKE;
	}
	/* An accept storing its entry for this key now: if we find the entry
	 * it replaces, our compare-and-swap below fails (it zeroes the word
	 * first), or the accept sees the DEAD we set there (kshared.c). */
	__sync_fetch_and_add(&sh->h.handled_seq, 1);
	{
		struct kc_probe pr = { .sh = sh, .key = key };
		bpf_loop(KC_PROBES, kc_probe_one, &pr, 0);
		found = pr.found;
		gf = pr.gf;
		if (found == 1 && pr.at < KC_INDEX_SIZE)
			e = &sh->index[pr.at];
	}
	if (found != 1 || !e) {
		__sync_fetch_and_add(&sh->h.unmatched, 1);
		return KC_OUT_WAKE;
	}
	gen = (__u32)gf;
	/* DEAD before the scan: a thread binding now stores its state, then
	 * reads the entry (policy.c bind_to), so it or we see the other. */
	if (!(gf & KC_ENTRY_DEAD_BIT)) {
		__u64 want = gf | KC_ENTRY_DEAD_BIT | (rst ? KC_ENTRY_RST_BIT : 0);
		if (__sync_val_compare_and_swap(&e->genflags, gf, want) != gf)
			return KC_OUT_WAKE;	/* rewritten meanwhile: the watcher's */
		/* The first edge (a FIN, then a reset, count once). */
		__sync_fetch_and_add(rst ? &sh->h.rst : &sh->h.fin, 1);
		first = 1;
	}
	out.wake = 0;
	limit = *(volatile __u32 *)&sh->h.records_limit;
	if (limit > KC_RECORDS) {
		out.wake = 1;	/* records beyond the shared chunk: the watcher's */
		limit = KC_RECORDS;
	}
	now = bpf_ktime_get_ns();
	{
		struct kc_scan sc = { .sh = sh, .out = &out, .now = now, .gen = gen, .rst = rst };
		bpf_loop(limit, kc_scan_one, &sc, 0);
	}
	if (first && !out.bound)
		__sync_fetch_and_add(&sh->h.unbound, 1);
	return gen | ((__u64)out.krec << 32) | ((__u64)(out.bound & 0x7fff) << 48) | (out.wake ? KC_OUT_WAKE : 0);
}

#endif

/* disconnect.bpf.c — the kernel side of cancelshim's eBPF watcher.
 *
 * Reports the moment a TCP peer goes away, through the ring buffer `events`
 * (struct disconnect_event, see disconnect.h):
 *   FIN  inet_sock_set_state ESTABLISHED -> CLOSE_WAIT: the peer closed.
 *   RST  tcp_receive_reset on a synchronised socket: the peer reset it.
 *   ERR  inet_sock_set_state -> CLOSE from ESTABLISHED/CLOSE_WAIT with an
 *        error other than a reset's (a timeout): the peer vanished.
 * Both are tp_btf programs: the tracepoints' arguments arrive as typed
 * kernel pointers (no tracefs, no kprobes), and fields are read with CO-RE
 * relocations, so one object runs on every kernel with BTF.
 *
 * Events fire in softirq context, on whatever task happened to be running:
 * the current pid means nothing here (tcplife says the same), so readers
 * map an event to a connection by its addresses, ports and cookie. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "disconnect.h"

#define AF_INET		2
#define AF_INET6	10
#define EPIPE		32
#define ECONNRESET	104

/* Run-time knobs, set through skel->rodata between open and load; the
 * verifier then prunes the branches they switch off. */
const volatile __u16 target_lport = 0;	 /* only this local port; 0 = any */
const volatile bool filter_lports = false; /* only local ports present in `lports` */
const volatile __u32 target_netns = 0;	 /* only this netns inode; 0 = any */
const volatile bool passive_only = false; /* only connections seen being accepted */

/* Events lost because the ring buffer was full (read from skel->bss). */
__u64 dropped = 0;

/* Set by a reader that is not reading yet (the shim, until a thread of its
 * process serves a client): every run stops here, so an instance nobody
 * reads costs a load and a branch per TCP state change. Written through the
 * mmap'ed .bss. */
volatile bool quiet = false;

/* What we remember about a connection from its ESTABLISHED transition. Kept
 * in socket-local storage: freed with the socket, no stale entries. */
struct conn {
	__u64 start_ns;
	__u8 flags;	/* DISCONNECT_F_* */
	__u8 counted;	/* in kcancel's live counts (kcancel.bpf.h) */
	__u64 key;	/* kcancel: the connection's key, computed once */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn);
} conns SEC(".maps");

/* Local ports to report when filter_lports is set: a reader that learns its
 * listening ports over time (the shim) adds them with bpf_map_update_elem. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, DISCONNECT_MAX_LPORTS);
	__type(key, __u16);
	__type(value, __u8);
} lports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DISCONNECT_RINGBUF_BYTES);
} events SEC(".maps");

#include "kcancel.bpf.h"

/* A TCP socket of a family we report, matching the knobs. */
static __always_inline bool wanted(const struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;
	__u16 lport = sk->__sk_common.skc_num;

	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	if (family != AF_INET && family != AF_INET6)
		return false;
	if (target_lport && lport != target_lport)
		return false;
	if (filter_lports && !bpf_map_lookup_elem(&lports, &lport))
		return false;
	if (target_netns && sk->__sk_common.skc_net.net->ns.inum != target_netns)
		return false;
	return true;
}

static __always_inline void copy_addrs(struct disconnect_event *e, const struct sock *sk)
{
	if (e->family == AF_INET) {
		e->laddr[0] = sk->__sk_common.skc_rcv_saddr;
		e->raddr[0] = sk->__sk_common.skc_daddr;
		for (int i = 1; i < 4; i++)
			e->laddr[i] = e->raddr[i] = 0;
		return;
	}
	for (int i = 0; i < 4; i++) {
		e->laddr[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
		e->raddr[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
	}
}

static __always_inline void report(struct sock *sk, __u8 kind, int oldstate, int error)
{
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	/* A checked cast: the verifier lets us read tcp_sock fields only
	 * through it. */
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	struct disconnect_event *e;

	if (!tp)
		return;
	__u64 kc, wake;

	if (passive_only && (!c || !(c->flags & DISCONNECT_F_PASSIVE)))
		return;
	/* The kernel-side cancel first: the ring is for the books. */
	kc = KC_OUT_WAKE;
	if (kcancel && c)
		kc = kc_handle(c->key, (kind != DISCONNECT_FIN ? KC_HOW_RST : 0) | (c->counted ? KC_HOW_COUNTED : 0) |
					       (sk->sk_socket ? KC_HOW_ACCEPTED : 0) |
					       ((sk->__sk_common.skc_flags & (1ul << SOCK_DEAD)) ? KC_HOW_ORPHAN : 0));
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->start_ns = c ? c->start_ns : 0;
	e->flags = c ? c->flags : 0;
	e->cookie = bpf_get_socket_cookie(sk);
	/* The counters advance with sequence numbers, and a FIN takes one:
	 * once the peer's FIN is in (FIN event, CLOSE_WAIT, CLOSING, LAST_ACK)
	 * bytes_received counts it, and once ours is acked (FIN_WAIT2)
	 * bytes_acked does. Report payload bytes. */
	e->bytes_received = tp->bytes_received;
	if (e->bytes_received && (kind == DISCONNECT_FIN || oldstate == TCP_CLOSE_WAIT ||
				  oldstate == TCP_CLOSING || oldstate == TCP_LAST_ACK))
		e->bytes_received--;
	e->bytes_acked = tp->bytes_acked;
	if (e->bytes_acked && oldstate == TCP_FIN_WAIT2)
		e->bytes_acked--;
	e->family = sk->__sk_common.skc_family;
	copy_addrs(e, sk);
	e->netns = sk->__sk_common.skc_net.net->ns.inum;
	e->lport = sk->__sk_common.skc_num;
	e->rport = bpf_ntohs(sk->__sk_common.skc_dport);
	e->kind = kind;
	e->oldstate = oldstate;
	e->error = error;
	e->pad = 0;
	e->gen = KC_OUT_GEN(kc);
	e->krec = KC_OUT_KREC(kc);
	e->kbound = KC_OUT_BOUND(kc);
	if (e->gen)
		e->flags |= DISCONNECT_F_KHANDLED;
	if (e->krec)
		e->flags |= DISCONNECT_F_KSIGFAIL;
	/* Handled here: the watcher reads it when it next wakes (its timer),
	 * or now if the ring is half full. Not handled: the watcher is woken
	 * by force, since the default (adaptive) wake-up happens only when the
	 * reader has caught up, and the lazy records before it say it has
	 * not. */
	wake = 0;
	if (kcancel && !kc_off)
		wake = (kc & KC_OUT_WAKE) || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > DISCONNECT_RINGBUF_BYTES / 2 ?
			       BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, wake);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_set_state, struct sock *sk, int oldstate, int newstate)
{
	int err, kind;

	if ((quiet && !kcancel) || !wanted(sk))
		return 0;

	/* The live counts are kept even while quiet: the program cancels
	 * nothing then, but a socket established meanwhile shares keys with
	 * later ones. */
	if (kcancel && newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV) {
		struct conn *c = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

		if (c) {
			c->start_ns = bpf_ktime_get_ns();
			c->flags = DISCONNECT_F_SEEN | DISCONNECT_F_PASSIVE;
			kc_count_established(sk, &c->counted, &c->key);
		}
		return 0;
	}
	if (kcancel && quiet) {
		if (newstate == TCP_CLOSE) {
			struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
			if (c)
				kc_count_closed(&c->counted, c->key);
		}
		return 0;
	}

	if (newstate == TCP_ESTABLISHED) {
		/* Accepted connections come from SYN_RECV (the child socket
		 * is created in SYN_RECV), outgoing ones from SYN_SENT. */
		struct conn *c;

		if (passive_only && oldstate != TCP_SYN_RECV)
			return 0;
		c = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (c) {
			c->start_ns = bpf_ktime_get_ns();
			c->flags = DISCONNECT_F_SEEN;
			if (oldstate == TCP_SYN_RECV)
				c->flags |= DISCONNECT_F_PASSIVE;
		}
		return 0;
	}

	/* One call site for report(): the verifier walks it (and the
	 * kernel-side cancel in it) once, not once per kind. */
	kind = 0;
	err = 0;
	if (oldstate == TCP_ESTABLISHED && newstate == TCP_CLOSE_WAIT)
		kind = DISCONNECT_FIN;
	/* A reset was already reported by on_receive_reset, which runs just
	 * before tcp_reset() stores ECONNRESET (EPIPE in CLOSE_WAIT) and
	 * closes; any other error on the way to CLOSE is a timeout or an
	 * abort. A local close (even with unread data) sets no error. */
	if (newstate == TCP_CLOSE &&
	    (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT)) {
		err = sk->sk_err;
		if (err && err != ECONNRESET && err != EPIPE)
			kind = DISCONNECT_ERR;
		else
			err = 0;
	}
	if (kind)
		report(sk, kind, oldstate, err);
	/* After the report: the socket counted until now. */
	if (kcancel && newstate == TCP_CLOSE) {
		struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
		if (c)
			kc_count_closed(&c->counted, c->key);
	}
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, struct sock *sk)
{
	int state;

	if (quiet)
		return 0;
	state = sk->__sk_common.skc_state;
	/* Synchronised states only: a reset to our SYN is a refused connect. */
	switch (state) {
	case TCP_ESTABLISHED:
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_CLOSE_WAIT:
	case TCP_CLOSING:
	case TCP_LAST_ACK:
		break;
	default:
		return 0;
	}
	if (!wanted(sk))
		return 0;
	report(sk, DISCONNECT_RST, state, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";

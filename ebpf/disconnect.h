/* disconnect.h — the record disconnect.bpf.c sends through its ring buffer,
 * shared by the kernel side and both readers (cancelctl watch, through
 * libbpf, and the shim's mode ebpf, shim/watch/ebpf_watcher.c through the
 * light skeleton and shim/watch/bpf_ring.c). Fixed-size __u* fields only, laid out without holes, so both sides
 * agree whatever the compiler. Include <linux/types.h> (user space) or
 * vmlinux.h (BPF) first. */
#ifndef CANCELSHIM_DISCONNECT_H
#define CANCELSHIM_DISCONNECT_H

/* What the peer did. */
enum disconnect_kind {
	DISCONNECT_FIN = 1,	/* orderly close: ESTABLISHED -> CLOSE_WAIT */
	DISCONNECT_RST = 2,	/* a reset arrived (tcp_receive_reset) */
	DISCONNECT_ERR = 3,	/* closed with an error, no reset: a retransmission
				 * or keepalive timeout, an admin's `ss -K` */
};

/* Flags of a connection, as the kernel side knew it. */
#define DISCONNECT_F_PASSIVE	0x1	/* became ESTABLISHED from SYN_RECV: accepted */
#define DISCONNECT_F_SEEN	0x2	/* seen becoming ESTABLISHED: start_ns and
					 * DISCONNECT_F_PASSIVE are meaningful */

struct disconnect_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() at the event = CLOCK_MONOTONIC */
	__u64 start_ns;		/* when it became ESTABLISHED; 0 if not seen */
	__u64 cookie;		/* socket cookie, the value of getsockopt(SO_COOKIE) */
	__u64 bytes_received;	/* payload bytes received from the peer */
	__u64 bytes_acked;	/* payload bytes sent and acknowledged by the peer */
	__u32 laddr[4];		/* local address, network order; IPv4 in laddr[0] */
	__u32 raddr[4];		/* peer address, same layout */
	__u32 netns;		/* inode of the socket's network namespace */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 lport;		/* local port, host order */
	__u16 rport;		/* peer port, host order */
	__u8 kind;		/* enum disconnect_kind */
	__u8 flags;		/* DISCONNECT_F_* */
	__u8 oldstate;		/* TCP state before the event (TCP_ESTABLISHED...) */
	__u8 error;		/* sk_err for DISCONNECT_ERR (ETIMEDOUT...), else 0 */
	__u16 pad;
	/* Appended for the kernel-side cancel (kcancel.h): 0 unless flags has
	 * DISCONNECT_F_KHANDLED. */
	__u32 gen;		/* the generation whose threads the kernel cancelled */
	__u16 krec;		/* DISCONNECT_F_KSIGFAIL: the record it could not signal, + 1 */
	__u16 kbound;		/* DISCONNECT_F_KHANDLED: the threads it found bound */
};

/* Ring buffer size: 4096 events of 96 bytes (+ 8 of header) fit; a burst larger than that
 * between two polls is dropped and counted in the `dropped` global. */
#define DISCONNECT_RINGBUF_BYTES	(512 * 1024)

/* Entries of the run-time port set (map `lports`, see disconnect.bpf.c). */
#define DISCONNECT_MAX_LPORTS	1024

#endif

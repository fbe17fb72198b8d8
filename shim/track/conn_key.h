/* The key of an accepted TCP connection: a 64-bit hash of the peer's
 * address and port and the local port. The shim computes it at accept, from
 * the address accept() returns (no system call), and the eBPF watcher
 * computes the same key from a kernel event, which names a socket by its
 * addresses and cookie, never by descriptor. A per-descriptor table keeps
 * the keys so the watcher can find the descriptor an event is about.
 *
 * A key only narrows the search: two connections may share one (a peer that
 * reaches two local addresses of a wildcard listener from the same port), so
 * the watcher confirms a match with the socket cookie before acting. */
#ifndef CS_CONN_KEY_H
#define CS_CONN_KEY_H

#include <stdint.h>
#include <sys/socket.h>

/* The key of the connection whose peer is sa (from accept), accepted on
 * local port lport; 0 if sa is not an IPv4 or IPv6 address. */
uint64_t cs_conn_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint16_t lport);

/* The same key from an event's fields: family (AF_INET, AF_INET6), peer
 * address in network order (IPv4 in raddr[0]), peer and local ports in host
 * order. An IPv4 peer seen through a dual-stack listener (::ffff:a.b.c.d)
 * gets the key of the plain IPv4 address on both sides. */
uint64_t cs_conn_key_from_event(int family, const uint32_t raddr[4], uint16_t rport, uint16_t lport);

/* Remembers fd's key (0: none). Allocates a page of the table only for a
 * non-zero key. */
void cs_conn_key_set(int fd, uint64_t key);

/* fd's key, or 0. */
uint64_t cs_conn_key_get(int fd);

/* Adds fd (whose key was just set) to the index the watcher searches: 0, or
 * -1 if the index has no room near the key (the connection is then watched
 * with epoll). A few memory operations, no system call. */
int cs_conn_key_index(int fd, uint64_t key);

/* The covered client descriptors (CS_CLIENT_EBPF) with this key: up to max
 * of them in fds; their number. */
int cs_conn_key_find(uint64_t key, int fds[], int max);

/* The cookie of a disconnect seen for fd's key before anyone needed it
 * (CS_CLIENT_PENDING): kept beside the key, read by the first call that
 * needs to know. */
void cs_conn_key_stash(int fd, uint64_t cookie);
uint64_t cs_conn_key_stashed(int fd);

/* fd's entry in the kernel-side index (track/kshared.h), + 1; 0: none. */
void cs_conn_key_set_kidx(int fd, unsigned kidx1);
unsigned cs_conn_key_kidx(int fd);

/* A disconnect that arrived before its connection was accepted (it waited
 * in the accept queue) finds no descriptor. The watcher notes it here, and
 * accept() looks for its key. A note lives until accept takes it or the
 * watcher forgets it; it is replaced only when its table is crowded, oldest
 * first (conn_key.c). */

/* Before the first note: how many connections the process's accept queues
 * may hold at once (somaxconn caps each); the table is made several times
 * that. */
void cs_conn_key_size_unmatched(unsigned queued_max);
/* The watcher thread only: 1 if an older note had to go, 0, or -1 if the
 * table cannot be made. */
int cs_conn_key_note_unmatched(uint64_t key, uint64_t cookie, int rst);
void cs_conn_key_forget_unmatched(uint64_t key, uint64_t cookie);
/* The notes for key: up to max cookies and kinds (1: a reset); their number. */
int cs_conn_key_unmatched(uint64_t key, uint64_t cookies[], int rsts[], int max);
/* Notes replaced before anyone took them, since the start. */
uint64_t cs_conn_key_unmatched_evicted(void);

#endif

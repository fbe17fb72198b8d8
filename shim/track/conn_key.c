#include "track/conn_key.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include <linux/types.h>

#include "base/raw_syscall.h"
#include "kcancel.h"
#include "track/fdtable.h"

/* The same two levels as the descriptor table (fdtable.h), allocated only
 * by a process that accepts TCP clients while the eBPF watcher runs. */
static _Atomic(_Atomic uint64_t *) pages[CS_FD_PAGES];

/* Three words per descriptor: its key, the cookie of a disconnect the
 * watcher saw for it before anyone needed it (cs_conn_key_stash), and its
 * entry in the kernel-side index + 1 (cs_conn_key_set_kidx). */
#define PAGE_BYTES (3 * CS_FD_PAGE_SIZE * sizeof(uint64_t))
#define KEY(page, i) (&(page)[3 * (i)])
#define COOKIE(page, i) (&(page)[3 * (i) + 1])
#define KIDX(page, i) (&(page)[3 * (i) + 2])

/* addr: the peer as 16 bytes of IPv6 (IPv4 mapped as ::ffff:a.b.c.d). The
 * eBPF program computes the same function (kcancel.h) from a socket. */
static uint64_t key_of(const uint32_t addr[4], uint16_t rport, uint16_t lport)
{
	return kc_key(addr, rport, lport);
}

static void mapped_v4(uint32_t out[4], uint32_t v4)
{
	out[0] = 0;
	out[1] = 0;
	out[2] = htonl(0xffff);
	out[3] = v4;
}

uint64_t cs_conn_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint16_t lport)
{
	uint32_t addr[4];

	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		mapped_v4(addr, in->sin_addr.s_addr);
		return key_of(addr, ntohs(in->sin_port), lport);
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		memcpy(addr, &in6->sin6_addr, sizeof addr);
		return key_of(addr, ntohs(in6->sin6_port), lport);
	}
	return 0;
}

uint64_t cs_conn_key_from_event(int family, const uint32_t raddr[4], uint16_t rport, uint16_t lport)
{
	uint32_t addr[4];

	if (family == AF_INET)
		mapped_v4(addr, raddr[0]);
	else if (family == AF_INET6)
		memcpy(addr, raddr, sizeof addr);
	else
		return 0;
	return key_of(addr, rport, lport);
}

void cs_conn_key_set(int fd, uint64_t key)
{
	unsigned index = (unsigned)fd >> CS_FD_PAGE_BITS;
	_Atomic uint64_t *page, *expected = NULL;
	long m;

	if ((unsigned)fd >= CS_FD_MAX)
		return;
	page = atomic_load_explicit(&pages[index], memory_order_acquire);
	if (!page) {
		if (!key)
			return;
		/* mmap, not malloc: this runs inside accept(). */
		m = cs_raw6(SYS_mmap, 0, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m < 0 && m > -4096)
			return;
		page = (_Atomic uint64_t *)m;
		if (!atomic_compare_exchange_strong(&pages[index], &expected, page)) {
			cs_raw2(SYS_munmap, page, PAGE_BYTES);
			page = expected;
		}
	}
	atomic_store_explicit(KEY(page, fd & (CS_FD_PAGE_SIZE - 1)), key, memory_order_relaxed);
}

static _Atomic uint64_t *cookie_ref(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return NULL;
	page = atomic_load_explicit(&pages[(unsigned)fd >> CS_FD_PAGE_BITS], memory_order_acquire);
	return page ? COOKIE(page, fd & (CS_FD_PAGE_SIZE - 1)) : NULL;
}

void cs_conn_key_stash(int fd, uint64_t cookie)
{
	_Atomic uint64_t *c = cookie_ref(fd);
	if (c)
		atomic_store(c, cookie);
}

uint64_t cs_conn_key_stashed(int fd)
{
	_Atomic uint64_t *c = cookie_ref(fd);
	return c ? atomic_load(c) : 0;
}

static _Atomic uint64_t *kidx_ref(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return NULL;
	page = atomic_load_explicit(&pages[(unsigned)fd >> CS_FD_PAGE_BITS], memory_order_acquire);
	return page ? KIDX(page, fd & (CS_FD_PAGE_SIZE - 1)) : NULL;
}

void cs_conn_key_set_kidx(int fd, unsigned kidx1)
{
	_Atomic uint64_t *k = kidx_ref(fd);
	if (k)
		atomic_store_explicit(k, kidx1, memory_order_relaxed);
}

unsigned cs_conn_key_kidx(int fd)
{
	_Atomic uint64_t *k = kidx_ref(fd);
	return k ? (unsigned)atomic_load_explicit(k, memory_order_relaxed) : 0;
}

/* ---- the index: key -> descriptor --------------------------------------
 *
 * Open addressing, one 64-bit word per entry: the key's high half as a tag
 * and the descriptor + 1. An entry is never emptied: one whose descriptor
 * no longer holds a covered client with that key is stale, and an insert
 * takes it over. A lookup stops at an empty word or after PROBES entries. */
#define INDEX_BITS 16
#define INDEX_SIZE (1u << INDEX_BITS)
#define PROBES 64

static _Atomic(_Atomic uint64_t *) index_words;

static uint64_t key_at(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return 0;
	page = atomic_load_explicit(&pages[(unsigned)fd >> CS_FD_PAGE_BITS], memory_order_acquire);
	return page ? atomic_load_explicit(KEY(page, fd & (CS_FD_PAGE_SIZE - 1)), memory_order_relaxed) : 0;
}

uint64_t cs_conn_key_get(int fd)
{
	return key_at(fd);
}

static int live(uint64_t entry)
{
	int fd = (int)(uint32_t)entry - 1;
	uint64_t s = cs_fd_get(fd);
	return CS_SLOT_KIND(s) == CS_KIND_CLIENT && (s & CS_CLIENT_EBPF) && (key_at(fd) >> 32) == (entry >> 32);
}

static _Atomic uint64_t *index_get(void)
{
	_Atomic uint64_t *w = atomic_load_explicit(&index_words, memory_order_acquire), *expected = NULL;
	long m;

	if (w)
		return w;
	m = cs_raw6(SYS_mmap, 0, INDEX_SIZE * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m < 0 && m > -4096)
		return NULL;
	w = (_Atomic uint64_t *)m;
	if (!atomic_compare_exchange_strong(&index_words, &expected, w)) {
		cs_raw2(SYS_munmap, w, INDEX_SIZE * sizeof(uint64_t));
		w = expected;
	}
	return w;
}

int cs_conn_key_index(int fd, uint64_t key)
{
	_Atomic uint64_t *w = index_get();
	uint64_t entry = (key & 0xffffffff00000000ull) | (uint32_t)(fd + 1);

	if (!w)
		return -1;
	for (unsigned i = 0; i < PROBES; i++) {
		_Atomic uint64_t *e = &w[(key + i) & (INDEX_SIZE - 1)];
		uint64_t old = atomic_load(e);
		if (old == entry)
			return 0;
		/* The descriptor's word says CLIENT|EBPF only after this
		 * returns: an entry for our own fd reads as stale here. */
		if ((!old || (int)(uint32_t)old - 1 == fd || !live(old)) && atomic_compare_exchange_strong(e, &old, entry))
			return 0;
	}
	return -1;
}

int cs_conn_key_find(uint64_t key, int fds[], int max)
{
	_Atomic uint64_t *w = atomic_load_explicit(&index_words, memory_order_acquire);
	int n = 0;

	if (!w)
		return 0;
	for (unsigned i = 0; i < PROBES && n < max; i++) {
		uint64_t entry = atomic_load(&w[(key + i) & (INDEX_SIZE - 1)]);
		int fd = (int)(uint32_t)entry - 1;
		if (!entry)
			break;
		if ((entry >> 32) == (key >> 32) && key_at(fd) == key && live(entry))
			fds[n++] = fd;
	}
	return n;
}

/* ---- disconnects that found no descriptor --------------------------------
 *
 * A connection that waits in an accept queue has no descriptor yet, and its
 * client may leave meanwhile: the watcher notes the disconnect here, and
 * accept() takes it. Every queued connection's note must survive until its
 * accept, however many others wait with it (a stopped or slow acceptor and
 * hundreds of clients leaving): an open-addressed table, written by the
 * watcher thread only, sized for several full accept queues (somaxconn caps
 * each). A note leaves when accept takes it, or when the watcher finds its
 * descriptor after all. A note is only replaced when every slot of its
 * probe window is taken, and then the oldest goes: with the table at most a
 * quarter full of queued connections, that is a note nobody will accept here
 * (a sibling process sharing the listener accepted it, or it was dropped).
 *
 * An entry: its key (0: free), the event's cookie, and its sequence number
 * shifted left once, with the reset bit below it. */
#define WINDOW 32u
#define UNMATCHED_MIN 4096u
#define UNMATCHED_MAX (1u << 18)

struct unmatched {
	_Atomic uint64_t key;
	_Atomic uint64_t cookie;
	_Atomic uint64_t seq_rst;
};

static _Atomic(struct unmatched *) unmatched_table;
static _Atomic unsigned unmatched_size = 16384;	/* a power of two */
static uint64_t unmatched_seq;			/* the watcher thread's */
static _Atomic uint64_t unmatched_evicted;

void cs_conn_key_size_unmatched(unsigned queued_max)
{
	unsigned n = UNMATCHED_MIN;

	if (atomic_load(&unmatched_table))
		return;	/* sized once, before the first note */
	while (n < UNMATCHED_MAX && n < 4 * queued_max)
		n *= 2;
	atomic_store(&unmatched_size, n);
}

/* Made by the watcher thread at its first note: never in accept(). */
static struct unmatched *unmatched_get(void)
{
	struct unmatched *t = atomic_load_explicit(&unmatched_table, memory_order_acquire);
	long m;

	if (t)
		return t;
	m = cs_raw6(SYS_mmap, 0, atomic_load(&unmatched_size) * sizeof *t, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m < 0 && m > -4096)
		return NULL;
	t = (struct unmatched *)m;
	atomic_store_explicit(&unmatched_table, t, memory_order_release);
	return t;
}

static struct unmatched *slot_of(struct unmatched *t, uint64_t key, unsigned i)
{
	return &t[(key + i) & (atomic_load_explicit(&unmatched_size, memory_order_relaxed) - 1)];
}

int cs_conn_key_note_unmatched(uint64_t key, uint64_t cookie, int rst)
{
	struct unmatched *t = unmatched_get(), *victim = NULL;
	uint64_t oldest = UINT64_MAX;
	int evicted = 0;

	if (!t)
		return -1;
	for (unsigned i = 0; i < WINDOW; i++) {
		struct unmatched *u = slot_of(t, key, i);
		uint64_t k = atomic_load(&u->key);
		if (!k) {
			victim = u;
			break;
		}
		if (k == key && atomic_load(&u->cookie) == cookie) {
			victim = u;	/* another event of the same connection */
			break;
		}
		if (atomic_load(&u->seq_rst) < oldest) {
			oldest = atomic_load(&u->seq_rst);
			victim = u;
		}
	}
	if (oldest != UINT64_MAX && atomic_load(&victim->key) && atomic_load(&victim->cookie) != cookie) {
		atomic_fetch_add(&unmatched_evicted, 1);
		evicted = 1;
	}
	/* Readers check the key again after reading the rest. */
	atomic_store(&victim->key, 0);
	atomic_store(&victim->cookie, cookie);
	atomic_store(&victim->seq_rst, (++unmatched_seq << 1) | (rst != 0));
	atomic_store(&victim->key, key);
	return evicted;
}

void cs_conn_key_forget_unmatched(uint64_t key, uint64_t cookie)
{
	struct unmatched *t = atomic_load_explicit(&unmatched_table, memory_order_acquire);

	if (!t)
		return;
	for (unsigned i = 0; i < WINDOW; i++) {
		struct unmatched *u = slot_of(t, key, i);
		uint64_t k = key;
		if (atomic_load(&u->key) == key && atomic_load(&u->cookie) == cookie)
			atomic_compare_exchange_strong(&u->key, &k, 0);
	}
}

int cs_conn_key_unmatched(uint64_t key, uint64_t cookies[], int rsts[], int max)
{
	struct unmatched *t = atomic_load_explicit(&unmatched_table, memory_order_acquire);
	int n = 0;

	if (!t)
		return 0;
	for (unsigned i = 0; i < WINDOW && n < max; i++) {
		struct unmatched *u = slot_of(t, key, i);
		uint64_t c, sr;
		if (atomic_load(&u->key) != key)
			continue;
		c = atomic_load(&u->cookie);
		sr = atomic_load(&u->seq_rst);
		/* Replaced meanwhile: the caller checks the cookie against the
		 * socket anyway, this only skips a torn read. */
		if (atomic_load(&u->key) != key)
			continue;
		cookies[n] = c;
		rsts[n++] = (int)(sr & 1);
	}
	return n;
}

uint64_t cs_conn_key_unmatched_evicted(void)
{
	return atomic_load(&unmatched_evicted);
}

/* The shim's side of the memory shared with the eBPF program (kshared.h,
 * ebpf/kcancel.h; the program's side is ebpf/kcancel.bpf.h). */
#include "track/kshared.h"

#include <linux/types.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "base/raw_syscall.h"
#include "kcancel.h"
#include "track/fdtable.h"
#include "track/threads.h"

/* The program reads and writes struct cs_thread as struct kc_record. */
_Static_assert(sizeof(struct kc_record) == sizeof(struct cs_thread), "record size");
_Static_assert(offsetof(struct cs_thread, state) == offsetof(struct kc_record, state), "state at 0");
_Static_assert(offsetof(struct cs_thread, tid) == offsetof(struct kc_record, tid), "tid at 8");
_Static_assert(offsetof(struct cs_thread, cancel_ns) == offsetof(struct kc_record, cancel_ns), "cancel_ns");
_Static_assert(offsetof(struct cs_thread, cancel_gen) == offsetof(struct kc_record, cancel_gen), "cancel_gen");
_Static_assert(offsetof(struct cs_thread, cancel_rst) == offsetof(struct kc_record, cancel_rst), "cancel_rst");
_Static_assert(offsetof(struct kc_shared, records) % 64 == 0, "records aligned");
_Static_assert(KC_ST_INCALL == CS_ST_INCALL && KC_ST_CANCEL == CS_ST_CANCEL, "state bits");

static struct kc_shared *_Atomic shared;	/* NULL: off */
static struct kc_shared *mapped;		/* what was installed (kept for fork) */
static int inherited;				/* a fork child of a process that installed it */
static struct kc_shared *privatised;		/* ... and where its private copy of chunk 0 is */
static _Atomic uint64_t folded[5];	/* what cs_kshared_take_counts handed out */

#define BYTES ((sizeof(struct kc_shared) + 4095) & ~4095ul)

unsigned long cs_kshared_bytes(void)
{
	return BYTES;
}

int cs_kshared_inherited(void)
{
	return inherited;
}

int cs_kshared_on(void)
{
	return atomic_load_explicit(&shared, memory_order_relaxed) != NULL;
}

void cs_kshared_stop(void)
{
	atomic_store(&shared, NULL);
}

int cs_kshared_install(struct kc_shared *sh)
{
	if (cs_threads_share((struct cs_thread *)sh->records, KC_RECORDS, &sh->h.records_limit) < 0)
		return -1;
	sh->h.version = KC_VERSION;
	mapped = sh;
	atomic_store(&shared, sh);
	return 0;
}

static _Atomic uint64_t *key_of(struct kc_entry *e) { return (_Atomic uint64_t *)&e->key; }
static _Atomic uint64_t *gf_of(struct kc_entry *e) { return (_Atomic uint64_t *)&e->genflags; }

/* An entry the shim may take: never used, or its connection's descriptor
 * was closed (gen 0), or that descriptor now holds something else. */
static int takeable(uint64_t gf)
{
	int fd = (int)(gf >> KC_ENTRY_FD_SHIFT) - 1;
	uint64_t s;

	if (!(uint32_t)gf)
		return 1;
	s = cs_fd_get(fd);
	return CS_SLOT_KIND(s) != CS_KIND_CLIENT || (uint32_t)s != (uint32_t)gf;
}

unsigned cs_kshared_index(int fd, uint64_t key, uint32_t gen, int *took_dead)
{
	struct kc_shared *sh = atomic_load_explicit(&shared, memory_order_acquire);
	uint64_t want = gen | ((uint64_t)(fd + 1) << KC_ENTRY_FD_SHIFT);
	struct kc_entry *e;
	unsigned i, free_at = KC_INDEX_SIZE;

	if (!sh || (unsigned)fd + 1 >= (1u << 24))
		return 0;
	/* At most one entry per key: the program acts only on a key it finds
	 * once. An entry of a live connection with our key (a second one with
	 * the same key: ambiguous, the program will not act) is taken over. */
	for (i = 0; i < KC_PROBES; i++) {
		unsigned at = (unsigned)(key + i) & (KC_INDEX_SIZE - 1);
		uint64_t k = atomic_load(key_of(&sh->index[at]));
		if (k == key) {
			free_at = at;
			break;
		}
		if (free_at == KC_INDEX_SIZE && (!k || takeable(atomic_load(gf_of(&sh->index[at])))))
			free_at = at;
	}
	if (free_at == KC_INDEX_SIZE)
		return 0;
	e = &sh->index[free_at];
	for (;;) {
		uint64_t old = atomic_load(gf_of(e)), k = atomic_load(key_of(e));
		if (k != key && !takeable(old))
			return 0;	/* another accept took it meanwhile */
		/* gen 0 first (the program skips the entry), then the key, then
		 * the generation: the program reads key, word, key, and never
		 * pairs one connection's key with another's generation. */
		if (!atomic_compare_exchange_strong(gf_of(e), &old, 0))
			continue;
		*took_dead = k == key && (old & KC_ENTRY_DEAD_BIT);
		atomic_store(key_of(e), key);
		atomic_store(gf_of(e), want);
		return free_at + 1;
	}
}

void cs_kshared_closed(unsigned kidx1, uint32_t gen)
{
	struct kc_shared *sh = atomic_load_explicit(&shared, memory_order_relaxed);
	uint64_t gf;

	if (!sh || !kidx1 || kidx1 > KC_INDEX_SIZE)
		return;
	gf = atomic_load(gf_of(&sh->index[kidx1 - 1]));
	if ((uint32_t)gf == gen)
		atomic_compare_exchange_strong(gf_of(&sh->index[kidx1 - 1]), &gf, 0);
}

int cs_kshared_dead(unsigned kidx1, uint32_t gen, int *rst)
{
	struct kc_shared *sh = atomic_load_explicit(&shared, memory_order_relaxed);
	uint64_t gf;

	if (!sh || !kidx1 || kidx1 > KC_INDEX_SIZE)
		return 0;
	gf = atomic_load(gf_of(&sh->index[kidx1 - 1]));
	if ((uint32_t)gf != gen || !(gf & KC_ENTRY_DEAD_BIT))
		return 0;
	*rst = (gf & KC_ENTRY_RST_BIT) != 0;
	return 1;
}

static uint64_t take_one(const __u64 *counter, _Atomic uint64_t *given)
{
	uint64_t now = atomic_load((_Atomic uint64_t *)counter), was = atomic_load(given);

	while (now > was)
		if (atomic_compare_exchange_weak(given, &was, now))
			return now - was;
	return 0;
}

void cs_kshared_take_counts(struct cs_kshared_counts *c)
{
	struct kc_shared *sh = atomic_load_explicit(&shared, memory_order_relaxed);

	memset(c, 0, sizeof *c);
	if (!sh)
		return;
	c->cancels = take_one(&sh->h.cancels, &folded[0]);
	c->wakeups = take_one(&sh->h.wakeups, &folded[1]);
	c->fin = take_one(&sh->h.fin, &folded[2]);
	c->rst = take_one(&sh->h.rst, &folded[3]);
	c->unbound = take_one(&sh->h.unbound, &folded[4]);
}

void cs_kshared_after_fork_child(void)
{
	long m;

	if (!mapped)
		return;
	inherited = 1;
	atomic_store(&shared, NULL);
	/* A private copy at the same address: chunk 0 of the registry points
	 * there. If that fails the child keeps seeing the parent's memory, so
	 * it must never bind a thread: the registry refuses records. */
	m = cs_raw6(SYS_mmap, 0, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0 && m > -4096) {
		cs_threads_refuse();
		mapped = NULL;
		return;
	}
	memcpy((void *)m, mapped, BYTES);
	if (cs_raw6(SYS_mremap, m, BYTES, BYTES, MREMAP_MAYMOVE | MREMAP_FIXED, (long)mapped, 0) < 0) {
		cs_raw2(SYS_munmap, m, BYTES);
		cs_threads_refuse();
	} else {
		privatised = mapped;
	}
	mapped = NULL;
	for (int i = 0; i < 5; i++)
		atomic_store(&folded[i], 0);
}

struct kc_shared *cs_kshared_adopt(struct kc_shared *fresh, int map_fd)
{
	struct cs_thread *chunk0 = cs_threads_chunk0();
	struct kc_shared *at = privatised;
	long m;

	if (!chunk0) {
		/* No record yet (a parent whose kernel-side cancel never
		 * installed): the usual install. */
		if (cs_kshared_install(fresh) < 0)
			return NULL;
		inherited = 0;
		return fresh;
	}
	/* Chunk 0 is the private copy of the parent's shared value: the
	 * registry's pointers into it stay valid if the fresh value takes its
	 * address. Its records (the forking thread's, re-owned by now) go
	 * along; the index and the counters start empty. */
	if (!at || chunk0 != (struct cs_thread *)at->records || cs_threads_refused())
		return NULL;
	memcpy(fresh->records, at->records, sizeof fresh->records);
	m = cs_raw6(SYS_mmap, (long)at, BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, map_fd, 0);
	if (m != (long)at) {
		/* A failed MAP_FIXED may have unmapped the range: put a private
		 * copy back (the records are in fresh), or records are off. */
		m = cs_raw6(SYS_mmap, (long)at, BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (m == (long)at)
			memcpy(at->records, fresh->records, sizeof at->records);
		else
			cs_threads_refuse();
		return NULL;
	}
	cs_raw2(SYS_munmap, fresh, BYTES);
	at->h.version = KC_VERSION;
	cs_threads_mirror(&at->h.records_limit);
	privatised = NULL;
	inherited = 0;
	mapped = at;
	for (int i = 0; i < 5; i++)
		atomic_store(&folded[i], 0);
	atomic_store(&shared, at);
	return at;
}

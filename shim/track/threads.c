#include "track/threads.h"

#include <stddef.h>
#include <sys/mman.h>

#include "base/raw_syscall.h"

__thread struct cs_tls cs_tls __attribute__((tls_model("initial-exec")));

#define CHUNK_RECORDS 256u
#define CHUNKS 1024u	/* up to 262144 live threads */

static _Atomic(struct cs_thread *) chunks[CHUNKS];
static _Atomic size_t limit;	/* records handed out so far: the walk's bound */
/* Where the eBPF program reads the walk's bound (cs_threads_share), or NULL. */
static _Atomic(_Atomic uint32_t *) limit_mirror;
static _Atomic int refused;	/* a fork child that could not privatise chunk 0 */

int cs_threads_share(struct cs_thread *chunk0, size_t records, uint32_t *mirror)
{
	struct cs_thread *expected = NULL;

	if (records != CHUNK_RECORDS || !atomic_compare_exchange_strong(&chunks[0], &expected, chunk0))
		return -1;
	atomic_store(&limit_mirror, (_Atomic uint32_t *)mirror);
	/* Records claimed while we installed it came from it, too. */
	atomic_store((_Atomic uint32_t *)mirror, (uint32_t)cs_threads_limit());
	return 0;
}

void cs_threads_refuse(void)
{
	atomic_store(&refused, 1);
}

int cs_threads_refused(void)
{
	return atomic_load(&refused);
}

struct cs_thread *cs_threads_chunk0(void)
{
	return atomic_load(&chunks[0]);
}

void cs_threads_mirror(uint32_t *mirror)
{
	atomic_store(&limit_mirror, (_Atomic uint32_t *)mirror);
	atomic_store((_Atomic uint32_t *)mirror, (uint32_t)cs_threads_limit());
}

/* Before a record from index i is used: the program scans up to the bound. */
static void mirror_limit(size_t i)
{
	_Atomic uint32_t *m = atomic_load_explicit(&limit_mirror, memory_order_acquire);
	uint32_t want = i + 1 > UINT32_MAX ? UINT32_MAX : (uint32_t)(i + 1), was;

	if (!m)
		return;
	was = atomic_load(m);
	while (was < want && !atomic_compare_exchange_weak(m, &was, want))
		;
}

static struct cs_thread *chunk_for(size_t c, int allocate)
{
	struct cs_thread *chunk = atomic_load_explicit(&chunks[c], memory_order_acquire);
	struct cs_thread *expected = NULL;
	long m;

	if (chunk || !allocate)
		return chunk;
	m = cs_raw6(SYS_mmap, 0, CHUNK_RECORDS * sizeof(struct cs_thread), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0 && m > -4096)
		return NULL;
	chunk = (struct cs_thread *)m;
	if (!atomic_compare_exchange_strong(&chunks[c], &expected, chunk)) {
		cs_raw2(SYS_munmap, chunk, CHUNK_RECORDS * sizeof(struct cs_thread));
		chunk = expected;
	}
	return chunk;
}

struct cs_thread *cs_thread_at(size_t i)
{
	struct cs_thread *chunk;

	if (i >= (size_t)CHUNKS * CHUNK_RECORDS)	/* limit may overshoot briefly */
		return NULL;
	chunk = chunk_for(i / CHUNK_RECORDS, 0);
	return chunk ? &chunk[i % CHUNK_RECORDS] : NULL;
}

size_t cs_threads_limit(void)
{
	return atomic_load_explicit(&limit, memory_order_acquire);
}

static int take(struct cs_thread *t, int tid)
{
	int expected = 0;
	if (!atomic_compare_exchange_strong(&t->tid, &expected, tid))
		return 0;
	atomic_store(&t->state, 0);
	t->bound_fd = -1;
	return 1;
}

/* Lock-free, so a fork at any moment leaves nothing held in the child. */
struct cs_thread *cs_thread_claim(int tid)
{
	size_t n = cs_threads_limit(), i;
	struct cs_thread *t;

	if (atomic_load_explicit(&refused, memory_order_relaxed))
		return NULL;
	for (i = 0; i < n; i++) {
		t = cs_thread_at(i);
		if (t && atomic_load_explicit(&t->tid, memory_order_relaxed) == 0 && take(t, tid))
			return t;
	}
	for (;;) {
		i = atomic_fetch_add(&limit, 1);
		if (i >= (size_t)CHUNKS * CHUNK_RECORDS) {
			atomic_fetch_sub(&limit, 1);
			return NULL;
		}
		if (!chunk_for(i / CHUNK_RECORDS, 1))
			return NULL;
		mirror_limit(i);
		t = cs_thread_at(i);
		if (take(t, tid))
			return t;
	}
}

void cs_thread_release(struct cs_thread *t)
{
	atomic_store(&t->state, 0);
	atomic_store(&t->tid, 0);
}

void cs_threads_after_fork_child(int tid)
{
	/* The child's program (if it loads one) does not see chunk 0. */
	atomic_store(&limit_mirror, NULL);
	/* Chunk 0 is still the parent's memory (it could not be made
	 * private): touch nothing, and the forking thread has no record. */
	if (atomic_load(&refused)) {
		cs_tls.rec = NULL;
		return;
	}
	size_t n = cs_threads_limit();
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (t && t != cs_tls.rec && atomic_load(&t->tid))
			cs_thread_release(t);
	}
	if (cs_tls.rec)
		atomic_store(&cs_tls.rec->tid, tid);
}

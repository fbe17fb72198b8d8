/* The registry of thread records: claim, release, reuse, the walk the
 * watcher does and the fork reset. */
#include "unit.h"

/* Tids of threads that do not exist: the registry never signals anyone, it
 * only stores the number. */
#define FAKE_TID 0x40000000

static int in_walk(const struct cs_thread *t)
{
	size_t n = cs_threads_limit();
	for (size_t i = 0; i < n; i++)
		if (cs_thread_at(i) == t)
			return 1;
	return 0;
}

Test(threads, claim_gives_a_fresh_record)
{
	struct cs_thread *t;

	cr_assert_eq(cs_threads_limit(), 0);
	t = cs_thread_claim(FAKE_TID);
	cr_assert_not_null(t);
	cr_assert_eq(atomic_load(&t->tid), FAKE_TID);
	cr_assert_eq(atomic_load(&t->state), 0);
	cr_assert_eq(t->bound_fd, -1);
	cr_assert_eq(cs_threads_limit(), 1);
	cr_assert_eq(cs_thread_at(0), t);
	/* A record is a cache line: the watcher writing one never slows another. */
	cr_assert_eq(sizeof(struct cs_thread), 64);
}

Test(threads, live_records_are_distinct_and_all_walked)
{
	enum { N = 5 };
	struct cs_thread *t[N];

	for (int i = 0; i < N; i++) {
		t[i] = cs_thread_claim(FAKE_TID + i);
		cr_assert_not_null(t[i]);
		for (int j = 0; j < i; j++)
			cr_assert_neq(t[i], t[j], "records %d and %d are one", i, j);
	}
	cr_assert_eq(cs_threads_limit(), N);
	for (size_t i = 0; i < N; i++) {
		struct cs_thread *a = cs_thread_at(i);
		cr_assert_not_null(a);
		for (size_t j = 0; j < i; j++)
			cr_assert_neq(a, cs_thread_at(j));
	}
	for (int i = 0; i < N; i++) {
		cr_assert(in_walk(t[i]), "record %d is not walked", i);
		cr_assert_eq(atomic_load(&t[i]->tid), FAKE_TID + i);
	}
}

Test(threads, a_released_record_is_reused_without_growing)
{
	struct cs_thread *a = cs_thread_claim(FAKE_TID), *b = cs_thread_claim(FAKE_TID + 1);
	struct cs_thread *c;

	cr_assert_not_null(a);
	cr_assert_not_null(b);
	atomic_store(&a->state, 77 | CS_ST_CANCEL);
	a->bound_fd = 12;
	cs_thread_release(a);
	cr_assert_eq(atomic_load(&a->tid), 0);
	cr_assert_eq(atomic_load(&a->state), 0, "a released record keeps its cancel");
	cr_assert_eq(cs_threads_limit(), 2);

	c = cs_thread_claim(FAKE_TID + 2);
	cr_assert_eq(c, a, "the free record was not reused");
	cr_assert_eq(cs_threads_limit(), 2);
	cr_assert_eq(atomic_load(&c->tid), FAKE_TID + 2);
	cr_assert_eq(atomic_load(&c->state), 0);
	cr_assert_eq(c->bound_fd, -1, "the previous owner's binding survived");
	cr_assert_eq(atomic_load(&b->tid), FAKE_TID + 1, "another record was disturbed");
}

Test(threads, limit_grows_past_a_chunk)
{
	/* More records than one mmap'd chunk holds (256). */
	enum { N = 600 };
	static struct cs_thread *t[N];

	for (int i = 0; i < N; i++) {
		t[i] = cs_thread_claim(FAKE_TID + i);
		cr_assert_not_null(t[i], "claim %d", i);
		cr_assert_eq(cs_threads_limit(), (size_t)i + 1);
	}
	for (size_t i = 0; i < N; i++) {
		cr_assert_not_null(cs_thread_at(i), "record %zu", i);
		cr_assert_eq(atomic_load(&cs_thread_at(i)->tid), FAKE_TID + (int)i);
	}
	/* Free some from every chunk: they are reused before the walk grows. */
	for (int i = 0; i < N; i += 100)
		cs_thread_release(t[i]);
	for (int i = 0; i < N; i += 100) {
		struct cs_thread *r = cs_thread_claim(FAKE_TID + N + i);
		cr_assert_not_null(r);
		cr_assert(in_walk(r));
		cr_assert_eq(atomic_load(&r->tid), FAKE_TID + N + i);
	}
	cr_assert_eq(cs_threads_limit(), N);
	cr_assert_not_null(cs_thread_claim(FAKE_TID + 2 * N));
	cr_assert_eq(cs_threads_limit(), N + 1);
}

Test(threads, after_fork_only_the_calling_thread_keeps_its_record)
{
	struct cs_thread *mine = cs_thread_claim(FAKE_TID);
	struct cs_thread *other1 = cs_thread_claim(FAKE_TID + 1);
	struct cs_thread *other2 = cs_thread_claim(FAKE_TID + 2);

	atomic_store(&mine->state, 5);
	atomic_store(&other1->state, 6 | CS_ST_INCALL);
	atomic_store(&other2->state, 5 | CS_ST_CANCEL);
	cs_tls.rec = mine;
	cs_threads_after_fork_child(FAKE_TID + 100);
	cr_assert_eq(atomic_load(&mine->tid), FAKE_TID + 100, "the survivor carries the child's tid");
	cr_assert_eq(atomic_load(&mine->state), 5, "the survivor's binding was lost");
	cr_assert_eq(atomic_load(&other1->tid), 0);
	cr_assert_eq(atomic_load(&other1->state), 0);
	cr_assert_eq(atomic_load(&other2->tid), 0);
	cr_assert_eq(atomic_load(&other2->state), 0);
	/* Their records are free for the child's new threads. */
	struct cs_thread *n = cs_thread_claim(FAKE_TID + 101);
	cr_assert(n == other1 || n == other2);
}

/* Concurrent claims: races.c (registry_claims_never_share_a_record). */

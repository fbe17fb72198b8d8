/* The concurrent scenarios (see races.h): the watcher's cs_disconnect running
 * while threads bind, rebind, unbind, claim and release records, and while
 * descriptor numbers are reused; records and pages claimed concurrently. */
#include "races.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

#include "cancel/disconnect.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "unit_core.h"

char race_info[256];
static char why[256];

#define FAIL(...) (snprintf(why, sizeof why, __VA_ARGS__), why)

/* ---- the registry: a record never has two live owners ---------------------- */

/* 8 threads claim and release records over and over. Each owner finds its
 * own tid and its own bound_fd in its record throughout, and a per-record
 * owner count kept outside the record never exceeds one. */
#define CLAIMERS 8
#define CYCLES 3000
#define MAX_RECORDS 256

static _Atomic int owners[MAX_RECORDS];
static _Atomic long two_owners, lost;
static pthread_barrier_t start;

static int index_of(const struct cs_thread *t)
{
	size_t n = cs_threads_limit();
	for (size_t i = 0; i < n && i < MAX_RECORDS; i++)
		if (cs_thread_at(i) == t)
			return (int)i;
	return -1;
}

static void *claimer(void *arg)
{
	int tid = unit_gettid();
	(void)arg;

	pthread_barrier_wait(&start);
	for (int c = 0; c < CYCLES; c++) {
		struct cs_thread *t = cs_thread_claim(tid);
		int i = t ? index_of(t) : -1;

		if (i < 0) {
			atomic_fetch_add(&lost, 1);
			break;
		}
		if (atomic_fetch_add(&owners[i], 1) != 0) {
			atomic_fetch_add(&two_owners, 1);
			break;
		}
		t->bound_fd = tid;
		atomic_store(&t->state, (uint64_t)tid);
		if (c % 16 == 0)
			sched_yield();
		if (atomic_load(&t->tid) != tid || t->bound_fd != tid || atomic_load(&t->state) != (uint64_t)tid)
			atomic_fetch_add(&two_owners, 1);
		atomic_fetch_sub(&owners[i], 1);
		cs_thread_release(t);
	}
	return NULL;
}

const char *race_registry_claims(void)
{
	pthread_t threads[CLAIMERS];
	size_t n;

	pthread_barrier_init(&start, NULL, CLAIMERS);
	for (int i = 0; i < CLAIMERS; i++)
		if (pthread_create(&threads[i], NULL, claimer, NULL))
			return FAIL("pthread_create failed");
	for (int i = 0; i < CLAIMERS; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&start);

	if (lost)
		return FAIL("%ld claim(s) failed or gave a record the walk does not reach", (long)lost);
	if (two_owners)
		return FAIL("%ld time(s) a record had two owners", (long)two_owners);
	/* Released records are reused, so the walk stays small (a claim can
	 * miss one freed behind its scan, so the bound is loose). */
	n = cs_threads_limit();
	if (n < 1 || n > MAX_RECORDS)
		return FAIL("limit %zu after %d threads: records are not reused", n, CLAIMERS);
	for (size_t i = 0; i < n; i++)
		if (atomic_load(&cs_thread_at(i)->tid))
			return FAIL("record %zu still owned after every thread released it", i);
	snprintf(race_info, sizeof race_info, "%zu record(s) for %d threads x %d claims", n, CLAIMERS, CYCLES);
	return NULL;
}

/* ---- the descriptor table: pages allocated concurrently ------------------- */

/* Threads that need the same missing page at once all end up on one page,
 * and what each stores is there afterwards (the losers' pages are freed). */
#define RACERS 8
#define RACE_PAGES 64

static void *page_racer(void *arg)
{
	int id = (int)(intptr_t)arg;
	pthread_barrier_wait(&start);
	for (int p = 0; p < RACE_PAGES; p++) {
		int fd = (int)((p + 10) * CS_FD_PAGE_SIZE) + id;
		cs_fd_exchange(fd, CS_SLOT_MAKE(CS_KIND_CLIENT, fd), 1);
	}
	return NULL;
}

const char *race_fd_pages(void)
{
	pthread_t threads[RACERS];

	pthread_barrier_init(&start, NULL, RACERS);
	for (int i = 0; i < RACERS; i++)
		if (pthread_create(&threads[i], NULL, page_racer, (void *)(intptr_t)i))
			return FAIL("pthread_create failed");
	for (int i = 0; i < RACERS; i++)
		pthread_join(threads[i], NULL);
	pthread_barrier_destroy(&start);
	for (int p = 0; p < RACE_PAGES; p++)
		for (int id = 0; id < RACERS; id++) {
			int fd = (int)((p + 10) * CS_FD_PAGE_SIZE) + id;
			if (cs_fd_get(fd) != CS_SLOT_MAKE(CS_KIND_CLIENT, fd))
				return FAIL("fd %d: the word stored by its thread was lost", fd);
		}
	return NULL;
}

/* ---- CANCEL is only ever set while the state names the dead connection ---- */

#define ROUNDS 2000
#define SPIN_LIMIT 50000000L
#define H_GEN 7u	/* a connection that never goes away */

static _Atomic uint32_t target;	/* the generation the "watcher" reports gone */
static _Atomic int stop;
static _Atomic long reports;	/* cs_disconnect calls made so far */

static void *disconnecter(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		uint32_t g = atomic_load(&target);
		if (g) {
			cs_disconnect(g, FD_A, 0);
			if ((atomic_fetch_add(&reports, 1) & 63) == 0)
				sched_yield();
		} else {
			sched_yield();
		}
	}
	return NULL;
}

/* Spins until the disconnecter has made two more reports (so it really ran
 * during what the caller checks), calling check on every turn. 0 if it
 * never did. */
static int across_two_reports(void (*check)(void *), void *arg)
{
	long until = atomic_load(&reports) + 2;
	for (long spins = 0; atomic_load(&reports) < until; spins++) {
		check(arg);
		if (spins == SPIN_LIMIT)
			return 0;
		if ((spins & 255) == 255)
			sched_yield();
	}
	check(arg);
	return 1;
}

struct cancel_check {
	struct cs_thread *t;
	uint32_t gen;	/* the binding expected, 0 for none; never cancelled */
	long wrong;
};

static void check_alive_word(void *arg)
{
	struct cancel_check *c = arg;
	if (cs_fd_get(FD_A) & CS_CLIENT_DEAD)
		c->wrong++;
}

static void check_uncancelled(void *arg)
{
	struct cancel_check *c = arg;
	if (unit_state(c->t) != c->gen)
		c->wrong++;
}

const char *race_cancel_only_bound(void)
{
	struct cs_thread *t = unit_record(0);
	struct cancel_check dead = { 0 }, live = { .t = t }, none = { .t = t };
	long wrong_cancel = 0, stuck = 0;
	pthread_t d;

	if (!t)
		return FAIL("no thread record");
	cs_fd_exchange(FD_B, unit_client(H_GEN), 1);
	live.gen = H_GEN;
	if (pthread_create(&d, NULL, disconnecter, NULL))
		return FAIL("pthread_create failed");

	for (uint32_t r = 0; r < ROUNDS && !stuck; r++) {
		uint32_t g = 1000 + r;
		uint64_t s;
		long spins = 0;

		/* fd A is reused for a new connection while the watcher still
		 * reports the previous one on it: the new one stays alive. */
		cs_fd_exchange(FD_A, unit_client(g), 1);
		if (r && !across_two_reports(check_alive_word, &dead))
			stuck++;
		atomic_store(&target, g);

		/* Serve it: bound to g, and cancelled sooner or later, by the
		 * watcher or (if it was dead already) by the binding itself. */
		cs_io_enter(FD_A, 0);
		while (!((s = unit_state(t)) & CS_ST_CANCEL)) {
			if ((uint32_t)s != g)
				wrong_cancel++;	/* lost the binding */
			if (++spins == SPIN_LIMIT) {
				stuck++;
				break;
			}
			if ((spins & 255) == 0)
				sched_yield();
		}
		if ((uint32_t)s != g)
			wrong_cancel++;

		/* Move to another client, then to none, while the watcher keeps
		 * reporting g: it must touch neither. */
		cs_io_enter(FD_B, 0);
		if (!across_two_reports(check_uncancelled, &live))
			stuck++;
		cs_fd_accept_begin();
		if (!across_two_reports(check_uncancelled, &none))
			stuck++;
	}
	atomic_store(&stop, 1);
	pthread_join(d, NULL);

	if (stuck)
		return FAIL("stuck: the disconnecter stopped, or the thread bound to the dead connection was never cancelled");
	if (wrong_cancel)
		return FAIL("%ld time(s) the thread bound to the dead connection lost its binding", wrong_cancel);
	if (live.wrong)
		return FAIL("%ld time(s) the thread serving a live connection was cancelled or lost its binding", live.wrong);
	if (none.wrong)
		return FAIL("%ld time(s) an unbound thread was cancelled", none.wrong);
	if (dead.wrong)
		return FAIL("%ld time(s) the new connection on a reused descriptor looked dead", dead.wrong);
	if ((cs_fd_get(FD_B) & ~CS_CLIENT_BOUND) != unit_client(H_GEN))	/* BOUND: it was served */
		return FAIL("the live connection was marked dead");
	snprintf(race_info, sizeof race_info, "%d rounds, %ld disconnect report(s)", ROUNDS, (long)reports);
	return NULL;
}

/* ---- a binding racing the disconnect of its connection is never missed ---- */

/* The thread binds (stores the binding, then looks for DEAD) while the
 * watcher disconnects (stores DEAD, then looks for bound threads): whichever
 * runs second must see the other, so the thread always ends up cancelled.
 * Both sides start each round together (spinning, not sleeping, so neither
 * is a wake-up behind) after a varying delay, so that over the rounds the two
 * sequences overlap in every way. Rounds stop after RACE_ROUNDS or
 * RACE_SECONDS (a busy machine, or TSan, makes rounds slow). */
#define RACE_ROUNDS 10000
#define RACE_SECONDS 3
#define RACE_STOP UINT32_MAX

static _Atomic uint32_t round_go, round_done;

/* A pseudo-random busy delay of 0..2^bits-1 turns. */
static void jitter(uint32_t r, uint32_t salt, unsigned bits)
{
	uint32_t n = ((r ^ salt) * 2654435761u) >> (32 - bits);
	for (volatile uint32_t i = 0; i < n; i++)
		;
}

/* Spins before yielding: a thread in sched_yield when the round starts would
 * be late by a system call, and one side would nearly always win. Yields once
 * the other side is clearly not running (a busy machine). */
static uint32_t spin_until(_Atomic uint32_t *v, uint32_t want)
{
	uint32_t seen;
	for (unsigned spins = 1; (seen = atomic_load(v)) != want && seen != RACE_STOP; spins++)
		if (spins > 20000)
			sched_yield();
	return seen;
}

static void *racing_disconnect(void *arg)
{
	(void)arg;
	for (uint32_t r = 1; spin_until(&round_go, r) == r; r++) {
		jitter(r, 0x5bd1e995, r & 2 ? 14 : 11);
		cs_disconnect(100000 + r, FD_C, 0);
		atomic_store(&round_done, r);
	}
	return NULL;
}

const char *race_bind_vs_disconnect(void)
{
	struct cs_thread *t = unit_record(0);
	uint64_t by_watcher = atomic_load(&cs_stats[CS_STAT_CANCELS]);
	time_t deadline = time(NULL) + RACE_SECONDS;
	long missed = 0;
	uint32_t r;
	pthread_t d;

	if (!t)
		return FAIL("no thread record");
	if (pthread_create(&d, NULL, racing_disconnect, NULL))
		return FAIL("pthread_create failed");
	for (r = 1; r <= RACE_ROUNDS; r++) {
		uint32_t g = 100000 + r;
		if ((r & 255) == 0 && time(NULL) > deadline)
			break;
		cs_fd_exchange(FD_C, unit_client(g), 1);
		cs_fd_accept_begin();
		atomic_store(&round_go, r);
		/* The watcher may be a system call late (it yielded while the
		 * machine was busy): every other round, wait long enough for it. */
		jitter(r, 0x27d4eb2f, r & 1 ? 14 : 11);
		cs_io_enter(FD_C, 0);
		spin_until(&round_done, r);
		if (unit_state(t) != (g | CS_ST_CANCEL))
			missed++;
	}
	atomic_store(&round_go, RACE_STOP);
	pthread_join(d, NULL);

	r--;	/* rounds played */
	by_watcher = atomic_load(&cs_stats[CS_STAT_CANCELS]) - by_watcher;
	snprintf(race_info, sizeof race_info, "%u rounds: cancelled by the disconnect %llu time(s), by the binding %llu time(s)",
		 r, (unsigned long long)by_watcher, (unsigned long long)(r - by_watcher));
	if (missed)
		return FAIL("%ld of %u bindings missed their connection's disconnect", missed, r);
	if (r < 100)
		return FAIL("only %u rounds in %d s", r, RACE_SECONDS);
	return NULL;
}

/* ---- the watcher's walk while threads come and go ------------------------- */

/* Threads claim records, serve connection 1 (which the watcher keeps
 * reporting gone) or connection 2 (alive), and release them, while the
 * watcher walks the registry. A fresh record is never cancelled, and a
 * thread serving connection 2 never is. */
#define WORKERS 6
#define WORK_CYCLES 2000

static _Atomic long fresh_not_clean, served_live_cancelled, no_record;

static void *walker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		cs_disconnect(1, FD_D, 0);
		sched_yield();
	}
	return NULL;
}

static void *worker(void *arg)
{
	int tid = unit_gettid();
	(void)arg;
	for (int c = 0; c < WORK_CYCLES; c++) {
		struct cs_thread *t = cs_thread_claim(tid);
		uint32_t gen = (c & 1) + 1;

		if (!t) {
			atomic_fetch_add(&no_record, 1);
			return NULL;
		}
		if (atomic_load(&t->state) != 0)
			atomic_fetch_add(&fresh_not_clean, 1);
		atomic_store(&t->state, gen);
		t->bound_fd = FD_D;
		for (int i = 0; i < 8; i++) {
			uint64_t s = atomic_load(&t->state);
			if ((s & CS_ST_CANCEL) && (uint32_t)s != 1)
				atomic_fetch_add(&served_live_cancelled, 1);
		}
		cs_thread_release(t);
	}
	return NULL;
}

const char *race_walk_vs_claims(void)
{
	pthread_t w, workers[WORKERS];

	if (pthread_create(&w, NULL, walker, NULL))
		return FAIL("pthread_create failed");
	for (int i = 0; i < WORKERS; i++)
		if (pthread_create(&workers[i], NULL, worker, NULL))
			return FAIL("pthread_create failed");
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(w, NULL);

	if (no_record)
		return FAIL("a claim failed");
	if (fresh_not_clean)
		return FAIL("%ld claimed record(s) came with a state", (long)fresh_not_clean);
	if (served_live_cancelled)
		return FAIL("%ld time(s) a thread serving a live connection was cancelled", (long)served_live_cancelled);
	for (size_t i = 0; i < cs_threads_limit(); i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (!t || atomic_load(&t->tid) || atomic_load(&t->state))
			return FAIL("record %zu is not free and clean after every thread released it", i);
	}
	return NULL;
}

/* ---- parking racing a binding: a binding that survives is always found ---- */

/* A worker binds to A (reads its request) while an event loop parks A, over
 * and over. Whichever comes first, a binding left standing must have the
 * BOUND bit in A's word, or the next parking would skip the walk and leave
 * the worker bound to a connection handed back to the loop (the waitress and
 * puma bug). */
#define PARK_ROUNDS 20000
static _Atomic int park_go, park_done;

static void *parker(void *arg)
{
	(void)arg;
	for (int r = 1; r <= PARK_ROUNDS; r++) {
		while (atomic_load(&park_go) < r)
			;
		cs_conn_park(FD_A);
		atomic_store(&park_done, r);
	}
	return NULL;
}

const char *race_bind_vs_park(void)
{
	struct cs_thread *t = unit_record(0);
	long lost = 0, garbage = 0, stood = 0;
	pthread_t p;

	if (!t)
		return FAIL("no thread record");
	if (pthread_create(&p, NULL, parker, NULL))
		return FAIL("pthread_create failed");
	for (int r = 1; r <= PARK_ROUNDS; r++) {
		uint32_t g = 5000 + (uint32_t)r;
		uint64_t s;

		atomic_store(&t->state, 0);
		cs_fd_exchange(FD_A, unit_client(g), 1);
		atomic_store(&park_go, r);
		cs_io_enter(FD_A, 0);
		while (atomic_load(&park_done) < r)
			;
		s = unit_state(t);
		if (s != 0 && s != g)
			garbage++;
		if (s == g) {
			stood++;
			if (!(cs_fd_get(FD_A) & CS_CLIENT_BOUND))
				lost++;
		}
	}
	pthread_join(p, NULL);
	if (garbage)
		return FAIL("%ld time(s) the state was neither bound nor unbound", garbage);
	if (lost)
		return FAIL("%ld time(s) a binding stood without the BOUND bit: a later parking would miss it", lost);
	snprintf(race_info, sizeof race_info, "%d rounds, the binding stood in %ld", PARK_ROUNDS, stood);
	return NULL;
}

const struct race races[] = {
	{ "registry_claims_never_share_a_record", race_registry_claims },
	{ "fd_pages_allocated_concurrently_keep_every_word", race_fd_pages },
	{ "cancel_only_while_bound_to_the_disconnected_connection", race_cancel_only_bound },
	{ "a_binding_racing_its_disconnect_is_never_missed", race_bind_vs_disconnect },
	{ "the_watcher_walks_records_as_threads_come_and_go", race_walk_vs_claims },
	{ "a_binding_racing_a_parking_is_never_lost", race_bind_vs_park },
	{ NULL, NULL },
};

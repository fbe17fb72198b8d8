/* The descriptor table: the word encoding, bounds, lazily allocated pages and
 * the walk that close_range and fork use. */
#include <limits.h>

#include "unit.h"
#include "stats_layout.h"

/* ---- the word encoding --------------------------------------------------- */

Test(fdtable, slot_make_round_trips_kind_and_generation)
{
	static const enum cs_kind kinds[] = { CS_KIND_NONE, CS_KIND_CLIENT, CS_KIND_LISTENER, CS_KIND_EPOLL, CS_KIND_OTHER };
	static const uint32_t gens[] = { 0, 1, 2, 0x7fffffff, 0x80000000u, 0xfffffffeu, 0xffffffffu };

	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++) {
			uint64_t s = CS_SLOT_MAKE(kinds[k], gens[g]);
			cr_assert_eq(CS_SLOT_KIND(s), kinds[k]);
			cr_assert_eq((uint32_t)s, gens[g]);
			cr_assert_eq(s & CS_SLOT_GEN_MASK, gens[g]);
			cr_assert_eq(s >> 35, 0, "kind %d gen %#x spills into the flag bits", kinds[k], gens[g]);
		}
	/* Only a NONE word with generation 0 is the empty word. */
	cr_assert_eq(CS_SLOT_MAKE(CS_KIND_NONE, 0), 0);
	cr_assert_neq(CS_SLOT_MAKE(CS_KIND_CLIENT, 0), 0);
}

/* The CANCELSHIM_PORTS entry index (per-listener statistics) in spare bits:
 * every value fits, and touches no other bit of a client's or a listener's
 * word. */
Test(fdtable, port_entry_bits_overlap_nothing)
{
	uint64_t client = CS_SLOT_GEN_MASK | (7ull << 32) | CS_CLIENT_DEAD | CS_CLIENT_REGISTERED | CS_CLIENT_SHARED |
			  CS_CLIENT_EBPF | CS_CLIENT_PENDING | CS_CLIENT_PENDING_RST | CS_CLIENT_INHERITED |
			  CS_CLIENT_BOUND | CS_CLIENT_UNSCOPED;
	uint64_t listener = 0xffffull | (7ull << 32) | CS_LISTENER_TYPE_KNOWN | CS_LISTENER_STREAM | CS_LISTENER_TCP |
			    CS_LISTENER_IN_MAP | CS_LISTENER_TRUSTED | CS_LISTENER_SCOPE_KNOWN | CS_LISTENER_OUT_OF_SCOPE;

	for (unsigned e = 0; e <= CS_SEG_PORTS_MAX; e++) {
		cr_assert_eq(CS_CLIENT_WITH_PORT(e) & client, 0, "entry %u", e);
		cr_assert_eq(CS_CLIENT_PORT(client | CS_CLIENT_WITH_PORT(e)), e);
		cr_assert_eq(CS_LISTENER_WITH_ENTRY(e) & listener, 0, "entry %u", e);
		cr_assert_eq(CS_LISTENER_ENTRY(listener | CS_LISTENER_WITH_ENTRY(e)), e);
	}
}

Test(fdtable, client_bits_leave_kind_and_generation_alone)
{
	uint64_t s = CS_SLOT_MAKE(CS_KIND_CLIENT, 0xffffffffu);

	cr_assert_neq(CS_CLIENT_DEAD, CS_CLIENT_REGISTERED);
	cr_assert_eq(CS_CLIENT_DEAD & (CS_SLOT_GEN_MASK | (7ull << 32)), 0);
	cr_assert_eq(CS_CLIENT_REGISTERED & (CS_SLOT_GEN_MASK | (7ull << 32)), 0);
	s |= CS_CLIENT_DEAD | CS_CLIENT_REGISTERED;
	cr_assert_eq(CS_SLOT_KIND(s), CS_KIND_CLIENT);
	cr_assert_eq((uint32_t)s, 0xffffffffu);
	s &= ~CS_CLIENT_DEAD;
	cr_assert(s & CS_CLIENT_REGISTERED);
	cr_assert_not(s & CS_CLIENT_DEAD);

	uint64_t l = CS_SLOT_MAKE(CS_KIND_LISTENER, 0) | CS_LISTENER_TYPE_KNOWN | CS_LISTENER_STREAM;
	cr_assert_eq(CS_SLOT_KIND(l), CS_KIND_LISTENER);
	cr_assert_neq(CS_LISTENER_TYPE_KNOWN, CS_LISTENER_STREAM);
}

Test(fdtable, epoll_summary_fields_are_independent)
{
	uint64_t e = CS_SLOT_MAKE(CS_KIND_EPOLL, 0);

	cr_assert_eq(CS_EPOLL_NCLIENTS(e), 0);
	cr_assert_not(e & CS_EPOLL_LISTENER);
	for (unsigned n = 0; n <= 2; n++) {
		uint64_t x = CS_EPOLL_WITH_NCLIENTS(e | CS_EPOLL_LISTENER, n);
		cr_assert_eq(CS_EPOLL_NCLIENTS(x), n);
		cr_assert_eq(CS_SLOT_KIND(x), CS_KIND_EPOLL);
		cr_assert(x & CS_EPOLL_LISTENER);
	}
	/* Lowering the count clears the higher bits too. */
	cr_assert_eq(CS_EPOLL_NCLIENTS(CS_EPOLL_WITH_NCLIENTS(CS_EPOLL_WITH_NCLIENTS(e, 2), 1)), 1);
	cr_assert_eq(CS_EPOLL_NCLIENTS(CS_EPOLL_WITH_NCLIENTS(CS_EPOLL_WITH_NCLIENTS(e, 3), 0)), 0);

	static const int fds[] = { 0, 1, 7, 1023, 1024, CS_FD_MAX - 1 };
	static const uint32_t gens[] = { 1, 0x12345678, 0xffffffffu };
	for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
		for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++) {
			uint64_t base = CS_EPOLL_WITH_NCLIENTS(e, 1) | CS_EPOLL_LISTENER;
			/* Write over a previous single with every bit set. */
			uint64_t prev = CS_EPOLL_WITH_SINGLE(base, 0xffffff, 0xffffffffu);
			uint64_t x = CS_EPOLL_WITH_SINGLE(prev, fds[i], gens[g]);
			cr_assert_eq(CS_EPOLL_SINGLE_FD(x), fds[i]);
			cr_assert_eq((uint32_t)x, gens[g]);
			cr_assert_eq(CS_SLOT_KIND(x), CS_KIND_EPOLL);
			cr_assert_eq(CS_EPOLL_NCLIENTS(x), 1);
			cr_assert(x & CS_EPOLL_LISTENER);
		}
	/* The single client's fd field holds every trackable descriptor. */
	cr_assert_geq(0xffffffull, (unsigned long long)(CS_FD_MAX - 1));
	/* Setting the count keeps the single client. */
	uint64_t x = CS_EPOLL_WITH_SINGLE(CS_EPOLL_WITH_NCLIENTS(e, 1), 4242, 99);
	x = CS_EPOLL_WITH_NCLIENTS(x, 2);
	cr_assert_eq(CS_EPOLL_SINGLE_FD(x), 4242);
	cr_assert_eq((uint32_t)x, 99);
}

Test(fdtable, other_words_carry_their_class)
{
	for (int c = CS_FDCLASS_NET; c <= CS_FDCLASS_EXEMPT; c++) {
		uint64_t s = CS_OTHER_MAKE(c);
		cr_assert_eq(CS_SLOT_KIND(s), CS_KIND_OTHER, "class %d", c);
		cr_assert_eq(CS_OTHER_CLASS(s), (enum cs_fdclass)c);
		cr_assert_neq(s, 0);
	}
}

/* ---- bounds and pages ---------------------------------------------------- */

Test(fdtable, get_out_of_range_is_zero)
{
	static const int bad[] = { -1, -2, -1024, INT_MIN, CS_FD_MAX, CS_FD_MAX + 1, INT_MAX };

	unit_set(CS_FD_MAX - 1, CS_SLOT_MAKE(CS_KIND_CLIENT, 5));
	unit_set(0, CS_SLOT_MAKE(CS_KIND_CLIENT, 6));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		cr_assert_eq(cs_fd_get(bad[i]), 0, "fd %d", bad[i]);
		cr_assert_null(cs_fd_ref(bad[i]), "fd %d", bad[i]);
		cr_assert_null(cs_fd_ref_existing(bad[i]), "fd %d", bad[i]);
		cr_assert_eq(cs_fd_exchange(bad[i], 1, 1), 0, "fd %d", bad[i]);
	}
	/* ...and writing out of range touched neither end. */
	cr_assert_eq(cs_fd_get(CS_FD_MAX - 1), CS_SLOT_MAKE(CS_KIND_CLIENT, 5));
	cr_assert_eq(cs_fd_get(0), CS_SLOT_MAKE(CS_KIND_CLIENT, 6));
}

Test(fdtable, nothing_known_before_anything_is_stored)
{
	cr_assert_eq(cs_fd_get(0), 0);
	cr_assert_eq(cs_fd_get(5000), 0);
	cr_assert_null(cs_fd_ref_existing(5000));
}

Test(fdtable, exchange_without_allocate_on_missing_page_stores_nothing)
{
	cr_assert_null(cs_fd_ref_existing(5000));
	cr_assert_eq(cs_fd_exchange(5000, CS_SLOT_MAKE(CS_KIND_CLIENT, 9), 0), 0);
	cr_assert_eq(cs_fd_get(5000), 0);
	cr_assert_null(cs_fd_ref_existing(5000), "a page was allocated");
	/* Clearing with allocate set does not allocate either. */
	cr_assert_eq(cs_fd_exchange(5000, 0, 1), 0);
	cr_assert_null(cs_fd_ref_existing(5000), "a page was allocated to store 0");
}

Test(fdtable, exchange_returns_the_previous_word)
{
	uint64_t a = CS_SLOT_MAKE(CS_KIND_CLIENT, 9), b = CS_OTHER_MAKE(CS_FDCLASS_PIPE);

	cr_assert_eq(cs_fd_exchange(5000, a, 1), 0);
	cr_assert_not_null(cs_fd_ref_existing(5000));
	cr_assert_eq(cs_fd_get(5000), a);
	/* Once the page exists, allocate=0 stores too. */
	cr_assert_eq(cs_fd_exchange(5000, b, 0), a);
	cr_assert_eq(cs_fd_get(5000), b);
	cr_assert_eq(cs_fd_exchange(5000, 0, 0), b);
	cr_assert_eq(cs_fd_get(5000), 0);
	/* The neighbours on the page are untouched. */
	cr_assert_eq(cs_fd_get(4999), 0);
	cr_assert_eq(cs_fd_get(5001), 0);
}

Test(fdtable, a_page_covers_exactly_its_range)
{
	_Atomic uint64_t *ref = cs_fd_ref(1024);

	cr_assert_not_null(ref);
	cr_assert_eq(cs_fd_ref_existing(2047), cs_fd_ref(2047), "same page");
	cr_assert_eq(cs_fd_ref_existing(2047) - ref, 1023);
	cr_assert_null(cs_fd_ref_existing(1023), "the page below was allocated");
	cr_assert_null(cs_fd_ref_existing(2048), "the page above was allocated");
	cr_assert_eq(cs_fd_ref(1024), ref, "a second call allocated again");
	atomic_store(ref, 77);
	cr_assert_eq(cs_fd_get(1024), 77);
}

/* ---- the walk ------------------------------------------------------------ */

struct visits {
	int n;
	int fds[16];
	uint64_t words[16];
};

static void record(int fd, _Atomic uint64_t *slot, void *arg)
{
	struct visits *v = arg;
	cr_assert_eq(slot, cs_fd_ref_existing(fd), "fd %d: slot is not its word", fd);
	cr_assert_lt(v->n, 16);
	v->fds[v->n] = fd;
	v->words[v->n++] = atomic_load(slot);
}

static void assert_visits(unsigned first, unsigned last, const int *want, int nwant)
{
	struct visits v = { 0 };
	cs_fd_for_each(first, last, record, &v);
	cr_assert_eq(v.n, nwant, "[%u, %u]: %d visits, want %d", first, last, v.n, nwant);
	for (int i = 0; i < nwant; i++) {
		cr_assert_eq(v.fds[i], want[i], "[%u, %u]: visit %d is fd %d, want %d", first, last, i, v.fds[i], want[i]);
		cr_assert_eq(v.words[i], cs_fd_get(want[i]));
	}
}

Test(fdtable, for_each_visits_exactly_the_nonzero_words_across_pages)
{
	unit_set(0, CS_SLOT_MAKE(CS_KIND_OTHER, 1));
	unit_set(1023, CS_SLOT_MAKE(CS_KIND_CLIENT, 1));
	unit_set(1024, CS_SLOT_MAKE(CS_KIND_CLIENT, 2));
	unit_set(5000, CS_SLOT_MAKE(CS_KIND_LISTENER, 0));
	unit_set(CS_FD_MAX - 1, CS_SLOT_MAKE(CS_KIND_EPOLL, 0));
	/* A word that was set and cleared again, on an allocated page. */
	unit_set(1500, CS_SLOT_MAKE(CS_KIND_CLIENT, 3));
	cs_fd_exchange(1500, 0, 0);

	assert_visits(1, 6000, (const int[]){ 1023, 1024, 5000 }, 3);
	assert_visits(0, 6000, (const int[]){ 0, 1023, 1024, 5000 }, 4);
	assert_visits(1023, 1024, (const int[]){ 1023, 1024 }, 2);
	assert_visits(1024, 1024, (const int[]){ 1024 }, 1);
	assert_visits(1023, 1023, (const int[]){ 1023 }, 1);
	assert_visits(1025, 4999, NULL, 0);
	assert_visits(5001, CS_FD_MAX - 2, NULL, 0);
	assert_visits(5000, 5000, (const int[]){ 5000 }, 1);
	assert_visits(6, 5, NULL, 0);
	/* last beyond the table is clamped, not wrapped. */
	assert_visits(0, UINT_MAX, (const int[]){ 0, 1023, 1024, 5000, CS_FD_MAX - 1 }, 5);
	assert_visits(CS_FD_MAX - 1, UINT_MAX, (const int[]){ CS_FD_MAX - 1 }, 1);
	assert_visits(CS_FD_MAX, UINT_MAX, NULL, 0);
}

static void clear(int fd, _Atomic uint64_t *slot, void *arg)
{
	(void)fd, (void)arg;
	atomic_store(slot, 0);
}

Test(fdtable, for_each_callers_may_clear_words)
{
	for (int fd = 1000; fd < 1100; fd++)
		unit_set(fd, CS_SLOT_MAKE(CS_KIND_CLIENT, fd));
	cs_fd_for_each(1010, 1089, clear, NULL);
	for (int fd = 1000; fd < 1100; fd++)
		cr_assert_eq(cs_fd_get(fd) == 0, fd >= 1010 && fd <= 1089, "fd %d", fd);
}

/* Pages allocated concurrently: races.c (fd_pages_allocated_concurrently_keep_every_word). */

/* What the shim remembers about an epoll set (cs_fd_epoll_added/removed), and
 * how a wait is scanned (cs_wait_scan_fd/epoll): the inputs of the event-loop
 * rule. Words are set by hand; no epoll instance exists. */
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "unit.h"

static void setup(void)
{
	unit_fake_fds_closed();
}

TestSuite(epoll_summary, .init = setup);
TestSuite(wait_scan, .init = setup);

static uint64_t ep(int epfd)
{
	uint64_t e = cs_fd_get(epfd);
	cr_assert_eq(CS_SLOT_KIND(e), CS_KIND_EPOLL, "fd %d is not an epoll word: %#llx", epfd, (unsigned long long)e);
	return e;
}

static void assert_single(uint64_t e, int fd, uint32_t gen)
{
	cr_assert_eq(CS_EPOLL_NCLIENTS(e), 1, "%u clients", CS_EPOLL_NCLIENTS(e));
	cr_assert_eq(CS_EPOLL_SINGLE_FD(e), fd, "single fd %d, want %d", CS_EPOLL_SINGLE_FD(e), fd);
	cr_assert_eq((uint32_t)e, gen, "single gen %u, want %u", (uint32_t)e, gen);
}

/* ---- summaries ----------------------------------------------------------- */

Test(epoll_summary, created_set_is_empty)
{
	unit_set(FD_A, CS_OTHER_MAKE(CS_FDCLASS_NET));	/* the page exists */
	cs_fd_epoll_created(FD_EP);
	uint64_t e = ep(FD_EP);
	cr_assert_eq(CS_EPOLL_NCLIENTS(e), 0);
	cr_assert_not(e & CS_EPOLL_LISTENER);
}

Test(epoll_summary, listener_added)
{
	unit_set(FD_LISTEN, unit_listener());
	cs_fd_epoll_created(FD_EP);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	uint64_t e = ep(FD_EP);
	cr_assert(e & CS_EPOLL_LISTENER);
	cr_assert_eq(CS_EPOLL_NCLIENTS(e), 0);
}

Test(epoll_summary, set_never_seen_created_is_summarised_anyway)
{
	/* epoll_create before the shim was active, or a descriptor inherited. */
	unit_set(FD_LISTEN, CS_SLOT_MAKE(CS_KIND_LISTENER, 0));
	cr_assert_eq(cs_fd_get(FD_EP), 0);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	cr_assert(ep(FD_EP) & CS_EPOLL_LISTENER);
}

Test(epoll_summary, clients_counted_up_to_two)
{
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	unit_set(FD_C, unit_client(7));
	cs_fd_epoll_created(FD_EP);

	cs_fd_epoll_added(FD_EP, FD_A);
	assert_single(ep(FD_EP), FD_A, 5);
	cs_fd_epoll_added(FD_EP, FD_A);	/* again (EPOLL_CTL_MOD through add, or EEXIST) */
	assert_single(ep(FD_EP), FD_A, 5);
	cs_fd_epoll_added(FD_EP, FD_B);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2);
	cs_fd_epoll_added(FD_EP, FD_C);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2, "the count does not saturate at 2");
	cr_assert_not(ep(FD_EP) & CS_EPOLL_LISTENER);
}

Test(epoll_summary, one_connection_through_two_descriptors_is_one_client)
{
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(5));	/* dup of FD_A */
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	assert_single(ep(FD_EP), FD_A, 5);
}

Test(epoll_summary, clients_in_turn_make_an_event_loop)
{
	/* close() removes a socket from every epoll set without epoll_ctl; a
	 * set that then gets another client serves clients one after another:
	 * a libevent worker's (memcached), never a thread-per-connection
	 * server's, which makes a set per connection. */
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_exchange(FD_A, 0, 0);
	cs_fd_epoll_added(FD_EP, FD_B);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2);
}

Test(epoll_summary, a_reused_number_is_another_client)
{
	unit_set(FD_A, unit_client(5));
	cs_fd_epoll_added(FD_EP, FD_A);
	unit_set(FD_A, unit_client(8));	/* closed, and a new client got the number */
	cs_fd_epoll_added(FD_EP, FD_A);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2);
}

Test(epoll_summary, the_same_client_added_again_stays_single)
{
	unit_set(FD_A, unit_client(5));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_removed(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_A);
	assert_single(ep(FD_EP), FD_A, 5);
}

Test(epoll_summary, listener_and_client)
{
	unit_set(FD_LISTEN, unit_listener());
	unit_set(FD_A, unit_client(5));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	uint64_t e = ep(FD_EP);
	cr_assert(e & CS_EPOLL_LISTENER);
	assert_single(e, FD_A, 5);
}

Test(epoll_summary, other_descriptors_change_nothing)
{
	unit_set(FD_A, CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	unit_set(FD_B, CS_OTHER_MAKE(CS_FDCLASS_WAITOBJ));
	unit_set(FD_C, CS_OTHER_MAKE(CS_FDCLASS_NET));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP, FD_C);
	cs_fd_epoll_added(FD_EP, FD_D);	/* unknown and not open: fstat fails */
	cr_assert_eq(cs_fd_get(FD_EP), 0);

	cs_fd_epoll_created(FD_EP);
	uint64_t before = ep(FD_EP);
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_D);
	cr_assert_eq(cs_fd_get(FD_EP), before);
}

Test(epoll_summary, nested_set_brings_its_listener)
{
	unit_set(FD_LISTEN, unit_listener());
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	uint64_t outer = ep(FD_EP2);
	cr_assert(outer & CS_EPOLL_LISTENER);
	cr_assert_eq(CS_EPOLL_NCLIENTS(outer), 0);
}

Test(epoll_summary, nested_set_brings_its_clients)
{
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP2)), 2);
}

Test(epoll_summary, nested_counts_saturate_at_two)
{
	/* Two bits hold the count: 2 + 2 must not spill into the listener bit. */
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	unit_set(FD_C, unit_client(7));
	unit_set(FD_D, unit_client(8));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_C);
	cs_fd_epoll_added(FD_EP2, FD_D);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	uint64_t outer = ep(FD_EP2);
	cr_assert_eq(CS_EPOLL_NCLIENTS(outer), 2);
	cr_assert_not(outer & CS_EPOLL_LISTENER, "client counts overflowed into the listener bit");

	cs_fd_epoll_added(FD_EP, FD_EP2);	/* the other way round, 2 + 2 again */
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2);
	cr_assert_not(ep(FD_EP) & CS_EPOLL_LISTENER);
}

Test(epoll_summary, nested_single_client_plus_a_direct_client_is_two)
{
	/* Direct client first, then a set holding another client. */
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_A);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP2)), 2);
}

/* The same two clients, added the other way round: the nested set first.
 * The outer summary must still count two, or an event loop serving both is
 * taken for a thread serving one (and is bound, and can be cancelled). */
Test(epoll_summary, nested_single_client_then_a_direct_client_is_two)
{
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	cs_fd_epoll_added(FD_EP2, FD_A);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP2)), 2,
		     "nested single client then direct client: outer summary says %u client(s)",
		     CS_EPOLL_NCLIENTS(ep(FD_EP2)));
}

/* A wait on a set whose only client is inside a nested set watches that
 * client: the scan must see it, like a wait on the inner set would. */
Test(epoll_summary, nested_single_client_is_seen_by_a_wait)
{
	struct cs_wait_scan inner = { 0 }, outer = { 0 };

	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_EP);
	cs_wait_scan_epoll(&inner, FD_EP);
	cr_assert_eq(inner.clients, 1);
	cs_wait_scan_epoll(&outer, FD_EP2);
	cr_assert_eq(outer.clients, inner.clients, "a wait on the outer set sees %d client(s), on the inner one %d",
		     outer.clients, inner.clients);
	cr_assert_eq(outer.client_gen, 6);
	cr_assert_eq(outer.client_fd, FD_B);
}

Test(epoll_summary, removing_the_single_client_empties_the_set)
{
	unit_set(FD_LISTEN, unit_listener());
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_LISTEN);
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_removed(FD_EP, FD_B);	/* not the one in the set */
	assert_single(ep(FD_EP), FD_A, 5);
	cs_fd_epoll_removed(FD_EP, FD_LISTEN);
	cs_fd_epoll_removed(FD_EP, FD_A);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 0);
	cr_assert(ep(FD_EP) & CS_EPOLL_LISTENER, "removing clients dropped the listener");
	/* and a different client added next makes it an event loop's set */
	cs_fd_epoll_added(FD_EP, FD_B);
	cr_assert_eq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 2);
}

Test(epoll_summary, removing_one_of_two_clients_keeps_it_a_multiplexer)
{
	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_removed(FD_EP, FD_A);
	cr_assert_neq(CS_EPOLL_NCLIENTS(ep(FD_EP)), 0, "a set still holding a client looks empty");
}

Test(epoll_summary, removing_from_an_unknown_set_allocates_nothing)
{
	unit_set(FD_A, unit_client(5));
	cs_fd_epoll_removed(9000, FD_A);
	cr_assert_null(cs_fd_ref_existing(9000));
}

/* ---- wait scans ---------------------------------------------------------- */

Test(wait_scan, single_descriptors)
{
	struct cs_wait_scan w = { 0 };

	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(5));	/* the same connection */
	unit_set(FD_C, unit_client(6));
	unit_set(FD_D, CS_OTHER_MAKE(CS_FDCLASS_PIPE));
	unit_set(FD_LISTEN, unit_listener());

	cs_wait_scan_fd(&w, FD_D);
	cs_wait_scan_fd(&w, 9000);	/* nothing known */
	cr_assert_eq(w.clients, 0);
	cr_assert_eq(w.listener, 0);

	cs_wait_scan_fd(&w, FD_A);
	cr_assert_eq(w.clients, 1);
	cr_assert_eq(w.client_gen, 5);
	cr_assert_eq(w.client_fd, FD_A);
	cs_wait_scan_fd(&w, FD_A);
	cs_wait_scan_fd(&w, FD_B);
	cr_assert_eq(w.clients, 1, "one connection counted twice");
	cr_assert_eq(w.client_fd, FD_A);
	cr_assert_eq(w.listener, 0);

	cs_wait_scan_fd(&w, FD_C);
	cr_assert_eq(w.clients, 2);
	cr_assert_eq(w.client_gen, 5, "the first client is kept");
	cs_wait_scan_fd(&w, FD_LISTEN);
	cr_assert_eq(w.listener, 1);
}

Test(wait_scan, listener_alone)
{
	struct cs_wait_scan w = { 0 };
	unit_set(FD_LISTEN, CS_SLOT_MAKE(CS_KIND_LISTENER, 0));
	cs_wait_scan_fd(&w, FD_LISTEN);
	cr_assert_eq(w.listener, 1);
	cr_assert_eq(w.clients, 0);
}

Test(wait_scan, epoll_sets)
{
	struct cs_wait_scan w;

	unit_set(FD_A, unit_client(5));
	unit_set(FD_B, unit_client(6));
	unit_set(FD_LISTEN, unit_listener());

	/* not an epoll set */
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_epoll(&w, FD_A);
	cr_assert_eq(w.clients, 0);

	/* one live client */
	cs_fd_epoll_added(FD_EP, FD_A);
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_epoll(&w, FD_EP);
	cr_assert_eq(w.clients, 1);
	cr_assert_eq(w.client_gen, 5);
	cr_assert_eq(w.client_fd, FD_A);
	cr_assert_eq(w.listener, 0);

	/* the same through poll() on the set's descriptor */
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_fd(&w, FD_EP);
	cr_assert_eq(w.clients, 1);
	cr_assert_eq(w.client_gen, 5);

	/* the set plus its own client directly: still one */
	cs_wait_scan_fd(&w, FD_A);
	cr_assert_eq(w.clients, 1);
	/* plus another client: two */
	cs_wait_scan_fd(&w, FD_B);
	cr_assert_eq(w.clients, 2);

	/* two clients in the set, a listener in another */
	cs_fd_epoll_added(FD_EP, FD_B);
	cs_fd_epoll_added(FD_EP2, FD_LISTEN);
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_epoll(&w, FD_EP);
	cr_assert_eq(w.clients, 2);
	cr_assert_eq(w.listener, 0);
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_epoll(&w, FD_EP2);
	cr_assert_eq(w.clients, 0);
	cr_assert_eq(w.listener, 1);
}

Test(wait_scan, stale_single_client_is_not_counted)
{
	struct cs_wait_scan w = { 0 };

	unit_set(FD_A, unit_client(5));
	cs_fd_epoll_added(FD_EP, FD_A);
	cs_fd_exchange(FD_A, 0, 0);	/* closed: the kernel dropped it from the set */
	cs_wait_scan_epoll(&w, FD_EP);
	cr_assert_eq(w.clients, 0);

	unit_set(FD_A, unit_client(7));	/* reused by another connection, not in the set */
	w = (struct cs_wait_scan){ 0 };
	cs_wait_scan_epoll(&w, FD_EP);
	cr_assert_eq(w.clients, 0, "a reused descriptor number counted as the set's client");
}

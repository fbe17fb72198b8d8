/* The notes of disconnects that found no descriptor (conn_key.h): each must
 * stay until accept takes it, however many connections wait in the queue. */
#include <netinet/in.h>

#include "track/conn_key.h"
#include "unit.h"

static uint64_t key_of_port(uint16_t rport)
{
	uint32_t peer[4] = { htonl(0x7f000001) };
	return cs_conn_key_from_event(AF_INET, peer, rport, 8080);
}

static int noted(uint64_t key, uint64_t cookie, int *rst)
{
	uint64_t cookies[4];
	int rsts[4], n = cs_conn_key_unmatched(key, cookies, rsts, 4);

	for (int i = 0; i < n; i++)
		if (cookies[i] == cookie) {
			*rst = rsts[i];
			return 1;
		}
	return 0;
}

/* A full default accept queue (somaxconn 4096) whose clients all left: a
 * direct-mapped table of 4096 slots kept about 63% of them. */
Test(conn_key, every_note_of_a_full_queue_is_kept)
{
	int rst;

	cs_conn_key_size_unmatched(4096);
	for (unsigned i = 0; i < 4096; i++)
		cr_assert_eq(cs_conn_key_note_unmatched(key_of_port((uint16_t)(20000 + i)), 1000 + i, i & 1), 0,
			     "note %u replaced an older one", i);
	for (unsigned i = 0; i < 4096; i++) {
		cr_assert(noted(key_of_port((uint16_t)(20000 + i)), 1000 + i, &rst), "the note of client %u is lost", i);
		cr_assert_eq(rst, (int)(i & 1));
	}
	cr_assert_eq(cs_conn_key_unmatched_evicted(), 0);
}

/* One peer port reused while the first connection, reset, still waits: two
 * connections with one key, both kept, each forgotten by its own cookie. */
Test(conn_key, two_connections_with_one_key)
{
	uint64_t k = key_of_port(40000);
	int rst;

	cs_conn_key_note_unmatched(k, 7, 1);
	cs_conn_key_note_unmatched(k, 8, 0);
	cs_conn_key_note_unmatched(k, 8, 1);	/* a second event of the same one */
	cr_assert(noted(k, 7, &rst) && rst == 1);
	cr_assert(noted(k, 8, &rst) && rst == 1);
	cs_conn_key_forget_unmatched(k, 7);
	cr_assert(!noted(k, 7, &rst));
	cr_assert(noted(k, 8, &rst));
	cs_conn_key_forget_unmatched(k, 8);
	cr_assert(!noted(k, 8, &rst));
}

/* Crowding one probe window (a sibling process accepts what we note): the
 * oldest note goes first, and the replacement is counted. */
Test(conn_key, a_crowded_window_replaces_its_oldest)
{
	const uint64_t step = 1ull << 20;	/* a multiple of any table size */
	int rst;

	/* 40 keys with the same low bits: one window of 32 slots. */
	for (uint64_t i = 0; i < 40; i++)
		cs_conn_key_note_unmatched(0x77 + (i + 1) * step, 500 + i, 0);
	cr_assert_eq(cs_conn_key_unmatched_evicted(), 8);
	for (uint64_t i = 0; i < 40; i++)
		cr_assert_eq(noted(0x77 + (i + 1) * step, 500 + i, &rst), i >= 8, "note %d", (int)i);
}

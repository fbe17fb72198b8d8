/* The concurrent scenarios (races.c) as Criterion tests: each runs in its own
 * process, as the scenarios expect. Under TSan they run through races_main.c
 * instead. */
#include "races.h"
#include "unit.h"

static void setup(void)
{
	unit_fake_fds_closed();
	race_info[0] = 0;
}

TestSuite(races, .init = setup, .timeout = 60);

#define RACE_TEST(name, fn)                          \
	Test(races, name)                            \
	{                                            \
		const char *why = fn();              \
		if (race_info[0])                    \
			cr_log_info("%s", race_info); \
		cr_assert_null(why, "%s", why);      \
	}

RACE_TEST(registry_claims_never_share_a_record, race_registry_claims)
RACE_TEST(fd_pages_allocated_concurrently_keep_every_word, race_fd_pages)
RACE_TEST(cancel_only_while_bound_to_the_disconnected_connection, race_cancel_only_bound)
RACE_TEST(a_binding_racing_its_disconnect_is_never_missed, race_bind_vs_disconnect)
RACE_TEST(the_watcher_walks_records_as_threads_come_and_go, race_walk_vs_claims)
RACE_TEST(a_binding_racing_a_parking_is_never_lost, race_bind_vs_park)

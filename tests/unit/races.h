/* The concurrent scenarios of the unit suite, written without Criterion so
 * that they also run under ThreadSanitizer, where Criterion cannot start
 * (BoxFort maps its shared arena at random fixed addresses, which TSan's
 * reserved address space leaves almost no room for).
 *
 * Each scenario expects a fresh process (the registry, the descriptor table
 * and the counters are process-wide), returns NULL when every check held or
 * a sentence saying what broke, and never asserts from a helper thread.
 * test_races.c runs them as Criterion tests, races_main.c on its own. */
#ifndef CS_UNIT_RACES_H
#define CS_UNIT_RACES_H

/* Something worth printing even when the scenario passes (may be empty). */
extern char race_info[256];

struct race {
	const char *name;
	const char *(*run)(void);
};

/* NULL-terminated. */
extern const struct race races[];

const char *race_registry_claims(void);
const char *race_fd_pages(void);
const char *race_cancel_only_bound(void);
const char *race_bind_vs_disconnect(void);
const char *race_walk_vs_claims(void);
const char *race_bind_vs_park(void);

#endif

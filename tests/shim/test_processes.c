/* fork: children get a working shim, also when other threads were inside it
 * at the moment of fork, and prefork servers (accept in the parent, serve in
 * the child) are tracked across fork. */
#include <criterion/criterion.h>

#include "probe_run.h"

Test(processes, fork_while_threads_are_inside_the_shim)
{
	struct probe_result r = probe_run(0, NULL, "fork", "threaded", "20", NULL);
	cr_expect_eq(probe_field(&r, "fork", "hung"), 0, "no child may hang (a lock left held)\n%s", r.err);
	cr_expect_eq(probe_field(&r, "fork", "ok"), 20, "every child cancels\n%s%s", r.out, r.err);
	probe_result_free(&r);
}

Test(processes, prefork_accept_in_parent_serve_in_child)
{
	const char *families[] = { "v4", "v6", "unix" };
	for (int i = 0; i < 3; i++) {
		struct probe_result r = probe_run(0, NULL, "fork", "prefork", "6", families[i], NULL);
		cr_expect_eq(probe_field(&r, "prefork", "ok"), 6, "%s\n%s", families[i], r.err);
		probe_result_free(&r);
	}
}

/* fork: children get a working shim, also when other threads were inside it
 * at the moment of fork, and prefork servers (accept in the parent, serve in
 * the child) are tracked across fork. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "probe_run.h"
#include "testlib.h"

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
	const char *env[] = { "CANCELSHIM_LOG=info", NULL };
	for (int i = 0; i < 3; i++) {
		struct probe_result r = probe_run(0, env, "fork", "prefork", "6", families[i], NULL);
		cr_expect_eq(probe_field(&r, "prefork", "ok"), 6, "%s\n%s", families[i], r.err);
		/* A parent that serves (accepts, then forks per connection)
		 * loads nothing per fork in mode ebpf: its children load their
		 * own or use epoll, as before. */
		cr_expect(!strstr(r.err, "the instance the parent loaded for this child"), "%s\n%s", families[i], r.err);
		cr_expect(!strstr(r.err, "no instance for the fork child"), "%s\n%s", families[i], r.err);
		probe_result_free(&r);
	}
}

Test(processes, spawn_vfork_system_from_a_bound_thread)
{
	struct probe_result r = probe_run(0, NULL, "spawn", NULL);
	cr_expect_eq(probe_field(&r, "spawn", "posix_spawn"), 7);
	cr_expect_eq(probe_field(&r, "spawn", "vfork"), 8);
	cr_expect_eq(probe_field(&r, "spawn", "system"), 9);
	cr_expect_eq(probe_field(&r, "spawn", "first_errno"), ECANCELED, "tracking goes on after spawning");
	probe_result_free(&r);
}

Test(processes, programs_that_never_accept_run_normally)
{
	const char *argv[] = { "/bin/sh", "-c", "printf 'a\\nb\\n' | wc -l; sleep 0.01; exit 3", NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	int status = tl_proc_wait(p, 10000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	cr_expect_str_eq(out, "2\n");
	cr_expect(strstr(err, "info: active"), "the shim was loaded: %s", err);
	cr_expect(!strstr(err, "watcher started"), "and stayed inert: %s", err);
	free(out);
	free(err);
	tl_proc_free(p);
}

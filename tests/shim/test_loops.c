/* Event loops are never harmed; programs that never accept are inert; a
 * connection that died before its worker got to it still cancels the work. */
#include <criterion/criterion.h>
#include <errno.h>

#include "probe_run.h"

static void expect_loop_unharmed(const char *how, const char *family)
{
	struct probe_result r = probe_run(0, NULL, "loop", how, family, NULL);
	cr_expect_geq(probe_field(&r, "loop", "wait_ret"), 1, "%s over clients must return their events\n%s", how, r.out);
	cr_expect_eq(probe_field(&r, "loop", "wait_errno"), 0);
	cr_expect_eq(probe_field(&r, "loop", "after_ret"), 1, "an event loop thread is never cancelled");
	probe_result_free(&r);
}

Test(loops, epoll_over_listener_and_clients)
{
	expect_loop_unharmed("epoll", "v4");
	expect_loop_unharmed("epoll", "unix");
}

Test(loops, poll_over_two_clients)
{
	expect_loop_unharmed("poll", "v6");
}

Test(loops, inert_without_accept)
{
	/* In mode ebpf, listen() loads the eBPF program, but its ring is read
	 * (by the watcher thread) only once a thread serves a client. */
	struct probe_result r = probe_run(0, NULL, "inert", NULL);
	cr_expect_eq(probe_field(&r, "inert", "connect_errno"), ECONNREFUSED);
	cr_expect_eq(probe_field(&r, "inert", "threads"), 1, "a program that never accepts gets no watcher thread");
	probe_result_free(&r);
}

Test(loops, dead_before_the_worker_binds)
{
	const char *cases[][2] = { { "v4", "fin" }, { "v4", "rst" }, { "unix", "fin" } };
	for (int i = 0; i < 3; i++) {
		struct probe_result r = probe_run(0, NULL, "late", cases[i][0], cases[i][1], NULL);
		cr_expect_eq(probe_field(&r, "late", "first_errno"), ECANCELED, "%s/%s\n%s", cases[i][0], cases[i][1], r.out);
		/* unix in mode ebpf: this call also loads the eBPF program (the
		 * process's first watched connection, cs_ebpf_first_watch),
		 * 15-45 ms on a loaded machine with the kernel-side cancel. */
		cr_expect_lt(probe_field(&r, "late", "call_us"), 100000);
		cr_expect_eq(probe_field(&r, "late", "acceptor_ret"), 1, "the acceptor is never bound");
		probe_result_free(&r);
	}
}

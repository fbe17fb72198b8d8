/* What host programs do to the shim's process, log and signal (issue 10):
 * clone() without fork, a daemon's descriptor 2, the shim's signal used by
 * a program that never serves. Each runs in both modes (shim-host and
 * shim-host-ebpf). */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_run.h"
#include "testlib.h"

/* Parent and child of a clone() that runs no fork handler each serve a
 * client accepted after it (same generation, same descriptor number): the
 * child's client leaving cancels the child's request only; the parent's
 * completes, and its own client leaving cancels it. */
static void clone_case(const char *how, const char *family)
{
	struct probe_result r = probe_run(0, NULL, "host", "clone", how, family, NULL);
	cr_expect_eq(probe_field(&r, "clone", "child"), 0, "%s %s: the child's request is cancelled\n%s%s", how,
		     family, r.out, r.err);
	cr_expect_eq(probe_field(&r, "clone", "parent_waiting"), 1, "%s %s: the parent's live request is not\n%s%s",
		     how, family, r.out, r.err);
	cr_expect_eq(probe_field(&r, "clone", "parent_completed"), 1, "%s %s\n%s%s", how, family, r.out, r.err);
	cr_expect_eq(probe_field(&r, "clone", "parent_cancelled"), 1, "%s %s: the parent's client leaving cancels it\n%s%s",
		     how, family, r.out, r.err);
	probe_result_free(&r);
}

Test(host, clone_without_fork_handlers)
{
	clone_case("raw", "v4");
	clone_case("stack", "v4");
	clone_case("raw", "unix");
}

static char *slurp(const char *path)
{
	static char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

Test(host, log_only_to_the_stderr_the_program_started_with)
{
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	char *dir = tl_tmpdir("log"), path[512];
	snprintf(path, sizeof path, "%s/data", dir);

	/* A daemon: 0/1/2 closed, its data file opened as 2. */
	struct probe_result r = probe_run(0, env, "host", "log", "daemon", path, NULL);
	cr_expect_str_eq(slurp(path), "data\nmore\n", "the shim wrote into the data file");
	probe_result_free(&r);

	/* A log put on descriptor 2 on purpose (dup2) gets them. */
	r = probe_run(0, env, "host", "log", "redirect", path, NULL);
	cr_expect(strstr(slurp(path), "cancelshim["), "no line in the log made stderr with dup2");
	probe_result_free(&r);

	/* A normal program still gets the lines. */
	r = probe_run(0, env, "host", "log", "plain", path, NULL);
	cr_expect_eq(probe_field(&r, "log", "cancelled"), 1);
	cr_expect(strstr(r.err, "cancelshim[") && strstr(r.err, "bind conn="), "no line on stderr: %s", r.err);
	probe_result_free(&r);
	unlink(path);
	rmdir(dir);
	free(dir);
}

/* Output and status of cs-probe host sigown, with or without the shim. */
static int run_sigown(unsigned flags, char **out)
{
	const char *argv[] = { getenv("CS_PROBE"), "host", "sigown", NULL };
	cr_assert(argv[0], "CS_PROBE is not set: run through meson test");
	struct tl_proc *p = tl_spawn(argv, NULL, flags);
	cr_assert(p);
	int status = tl_proc_wait(p, 20000);
	*out = tl_proc_stdout(p);
	tl_proc_free(p);
	return status;
}

Test(host, a_program_that_uses_the_shims_signal_before_serving)
{
	char *bare, *shimmed;
	int s0 = run_sigown(0, &bare), s1 = run_sigown(TL_SHIM, &shimmed);
	cr_assert(WIFEXITED(s0) && WEXITSTATUS(s0) == 0, "without the shim: status %#x\n%s", s0, bare);
	cr_expect(WIFEXITED(s1) && WEXITSTATUS(s1) == 0, "under the shim: status %#x\n%s", s1, shimmed);
	cr_expect_str_eq(shimmed, bare, "the same output as without the shim");
	free(bare);
	free(shimmed);
}

/* Programs that close every descriptor they do not know, or replace the
 * shim's: the shim keeps (or moves, or recreates) its own, a request in
 * flight and later ones are still cancelled, the application's own epoll set
 * never receives the shim's registrations, and at most one line is said. */
static void closeall_case(const char *how)
{
	struct probe_result r = probe_run(0, NULL, "host", "closeall", how, NULL);
	int lines = 0;
	for (const char *p = r.err; (p = strstr(p, "cancelshim[")); p++)
		lines++;
	cr_expect_eq(probe_field(&r, "closeall", "before"), 1, "%s: the request in flight is cancelled\n%s", how, r.err);
	cr_expect_eq(probe_field(&r, "closeall", "after"), 4, "%s: later requests are cancelled\n%s", how, r.err);
	cr_expect_eq(probe_field(&r, "closeall", "foreign"), 0, "%s: the application's epoll set got the shim's entries",
		     how);
	cr_expect_leq(lines, 1, "%s: at most one line\n%s", how, r.err);
	if (!strcmp(how, "rawclose"))
		cr_expect_eq(probe_field(&r, "closeall", "reuse"), 1, "the application's set got the shim's old number");
	if (!strcmp(how, "rawclosebpf") && probe_ebpf_expected())
		cr_expect_eq(probe_field(&r, "closeall", "reuse"), 2, "the application's files got both links' numbers");
	probe_result_free(&r);
}

Test(host, close_loop) { closeall_case("loop"); }
Test(host, closefrom) { closeall_case("closefrom"); }
Test(host, close_range) { closeall_case("close_range"); }
Test(host, dup2_onto_the_shims_descriptors) { closeall_case("dup2"); }
Test(host, raw_close_then_the_number_reused) { closeall_case("rawclose"); }
Test(host, raw_close_of_the_ebpf_links)
{
	closeall_case("rawclosebpf");
}

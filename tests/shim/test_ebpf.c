/* Mode ebpf itself: a covered connection is watched without a system call
 * and cancelled from the kernel's event; without privileges the shim falls
 * back to epoll and says so in one line. The rest of the scenario suite runs
 * in both modes (meson.build). Needs root, as CI runs. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "probe_run.h"
#include "testlib.h"

static void need_ebpf(void)
{
	if (!probe_ebpf_expected())
		cr_skip_test("needs root, kernel BTF and a build with -Dbpf (CI has all three)");
}

Test(ebpf, covered_connection_is_cancelled_from_the_kernel_event)
{
	need_ebpf();
	const char *env[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=debug", NULL };
	const char *how[] = { "fin", "rst" };
	for (int i = 0; i < 2; i++) {
		struct probe_result r = probe_run(0, env, "cancel", "v4", how[i], "recv", NULL);
		cr_expect(strstr(r.err, "eBPF watcher attached"), "%s", r.err);
		cr_expect(strstr(r.err, "via ebpf") && !strstr(r.err, "via epoll"),
			  "the connection must be watched by the eBPF program, not epoll:\n%s", r.err);
		cr_expect(strstr(r.err, how[i][0] == 'f' ? " fin via ebpf, " : " rst via ebpf, "),
			  "the kernel's event is what cancels:\n%s", r.err);
		cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
		probe_result_free(&r);
	}
}

Test(ebpf, ipv6_and_unix_clients)
{
	need_ebpf();
	const char *env[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=debug", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v6", "fin", "poll", NULL);
	cr_expect(strstr(r.err, " fin via ebpf, "), "%s", r.err);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
	probe_result_free(&r);
	/* AF_UNIX has no TCP tracepoint: epoll watches it, in the same process. */
	r = probe_run(0, env, "cancel", "unix", "fin", "recv", NULL);
	cr_expect(strstr(r.err, "via epoll"), "%s", r.err);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
	probe_result_free(&r);
}

Test(ebpf, gone_before_accept_or_before_the_worker_calls)
{
	/* The process has served a client (its ring is read); the next client
	 * leaves while queued or before its worker makes a call a cancel
	 * could fail: the kernel event is kept (by key, or as PENDING beside
	 * the connection) and the worker's first such call is cancelled. */
	need_ebpf();
	const char *env[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=debug", NULL };
	const char *how[] = { "fin", "rst" };
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 2; i++) {
			struct probe_result r = probe_run(0, env, "late", "v4", how[i], "warm", NULL);
			cr_expect_eq(probe_field(&r, "late", "first_errno"), ECANCELED, "%s:\n%s", how[i], r.err);
			cr_expect_eq(probe_field(&r, "late", "acceptor_ret"), 1);
			cr_expect(!strstr(r.err, "via epoll"), "epoll was not needed:\n%s", r.err);
			probe_result_free(&r);
		}
}

Test(ebpf, never_under_a_seccomp_filter)
{
	/* A filter that does not allow bpf() may kill the process for
	 * calling it: the shim stays with epoll, says why, and still cancels. */
	need_ebpf();
	const char *argv[] = { getenv("CS_SECCOMP_EXEC"), getenv("CS_PROBE"), "cancel", "v4", "fin", "recv", NULL };
	const char *env[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=debug", NULL };
	cr_assert(argv[0], "CS_SECCOMP_EXEC is not set: run through meson test");
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	cr_assert(p);
	int st = tl_proc_wait(p, 60000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x\n%s\n%s", st, out, err);
	cr_expect(strstr(err, "ebpf unavailable (a seccomp filter is active"), "%s", err);
	cr_expect(!strstr(err, "eBPF watcher attached") && strstr(err, "via epoll"), "%s", err);
	char *line = tl_find_line(out, "result");
	long long e = 0;
	cr_assert(line && tl_field(line, "first_errno", &e) == 0, "%s", out);
	cr_expect_eq(e, ECANCELED);
	free(line);
	free(out);
	free(err);
	tl_proc_free(p);
}

/* cs-probe and the shim copied where the user nobody can read them. */
static char *public_copy(const char *dir, const char *src, const char *name)
{
	size_t len;
	char *data = tl_read_file(src, &len), *path = tl_strdupf("%s/%s", dir, name);
	cr_assert(data, "cannot read %s", src);
	cr_assert(tl_write_file(path, data, len) == 0);
	cr_assert(chmod(path, 0755) == 0);
	free(data);
	return path;
}

static void run_as_nobody(const char *mode, int expect_line)
{
	char *dir = tl_tmpdir("ebpf-nobody");
	cr_assert(dir && chmod(dir, 0755) == 0);
	char *probe = public_copy(dir, getenv("CS_PROBE"), "cs-probe");
	char *shim = public_copy(dir, getenv("CS_SHIM"), "libcancelshim.so");
	char *preload = tl_strdupf("LD_PRELOAD=%s", shim), *modev = tl_strdupf("CANCELSHIM_MODE=%s", mode);
	/* setpriv drops to nobody before exec: the shim loads in a process
	 * without CAP_BPF or CAP_PERFMON. */
	const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			       probe, "cancel", "v4", "fin", "recv", NULL };
	const char *env[] = { preload, modev, "CANCELSHIM_LOG=warn", NULL };
	struct tl_proc *p = tl_spawn(argv, env, 0);
	cr_assert(p);
	int st = tl_proc_wait(p, 60000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x\n%s\n%s", st, out, err);
	size_t lines = tl_count(err, "ebpf unavailable (needs root or CAP_BPF+CAP_PERFMON); using epoll");
	/* Said once, by the process that listens. */
	if (expect_line)
		cr_expect(lines == 1 && tl_count(err, "cancelshim[") == 1, "only the fallback line, once:\n%s", err);
	else
		cr_expect(!strstr(err, "cancelshim["), "auto falls back silently at warn:\n%s", err);
	char *line = tl_find_line(out, "result");
	long long e = 0;
	cr_assert(line && tl_field(line, "first_errno", &e) == 0, "%s", out);
	cr_expect_eq(e, ECANCELED, "epoll still cancels as nobody");
	free(line);
	free(out);
	free(err);
	tl_proc_free(p);
	tl_cleanup_dir(dir);
}

Test(ebpf, without_privileges_it_falls_back_to_epoll, .timeout = 120)
{
	need_ebpf();
	run_as_nobody("ebpf", 1);
	run_as_nobody("auto", 0);
}

/* Issue 10 item 10: the reason is said when it matters (the first TCP
 * listen or accept), not at load: a shell and an ls that a server starts
 * (system()) never listen, and say nothing. */
Test(ebpf, programs_that_never_listen_say_nothing, .timeout = 60)
{
	need_ebpf();
	char *dir = tl_tmpdir("ebpf-quiet");
	cr_assert(dir && chmod(dir, 0755) == 0);
	char *shim = public_copy(dir, getenv("CS_SHIM"), "libcancelshim.so");
	char *preload = tl_strdupf("LD_PRELOAD=%s", shim);
	const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			       "/bin/sh", "-c", "ls / >/dev/null && sh -c 'echo ran'", NULL };
	const char *env[] = { preload, "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=warn", NULL };
	struct tl_proc *p = tl_spawn(argv, env, 0);
	cr_assert(p);
	int st = tl_proc_wait(p, 30000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p);
	cr_assert(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x\n%s\n%s", st, out, err);
	cr_expect(strstr(out, "ran"), "%s", out);
	cr_expect(!strstr(err, "cancelshim["), "a program that never listens must say nothing:\n%s", err);
	free(out);
	free(err);
	free(preload);
	free(shim);
	tl_proc_free(p);
	tl_cleanup_dir(dir);
}

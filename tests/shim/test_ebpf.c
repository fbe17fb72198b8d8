/* Mode ebpf itself: a covered connection is watched without a system call
 * and cancelled from the kernel's event; without privileges the shim falls
 * back to epoll and says so in one line. The rest of the scenario suite runs
 * in both modes (meson.build). Needs root, as CI runs. */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
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
		/* The watcher's line, or (kernel-side cancel) the cancelled
		 * thread's. */
		cr_expect(strstr(r.err, how[i][0] == 'f' ? " fin via ebpf, " : " rst via ebpf, ") ||
			  strstr(r.err, how[i][0] == 'f' ? "reason=fin (by the kernel)" : "reason=rst (by the kernel)"),
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
	cr_expect(strstr(r.err, " fin via ebpf, ") || strstr(r.err, "reason=fin (by the kernel)"), "%s", r.err);
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

/* ---- the kernel-side cancel (ebpf/kcancel.bpf.h) ------------------------ */

static const char *const kcancel_on[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=info", NULL };
static const char *const kcancel_off[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=info", "CANCELSHIM_KCANCEL=off", NULL };

Test(ebpf, the_kernel_cancels_without_waking_the_watcher, .timeout = 120)
{
	need_ebpf();
	/* 20 clients leave while their thread is blocked in read(): the
	 * program sets the flag and signals the thread itself. The watcher
	 * thread wakes only on its timer (once a second), never per client. */
	struct probe_result r = probe_run(0, kcancel_on, "kcancel", "block", "20", NULL);
	long long elapsed_ms = probe_field(&r, "kcancel", "elapsed_ms");
	cr_expect(strstr(r.err, "eBPF watcher attached; the kernel cancels"), "%s", r.err);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 20, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 20, "the program made every cancel:\n%s", r.out);
	cr_expect_leq(probe_field(&r, "kcancel", "watcher_switches"), elapsed_ms / 1000 + 2,
		      "the watcher thread was woken per connection:\n%s", r.out);
	/* Woken by the kernel's signal, within a bound (a loaded machine). */
	cr_expect_lt(probe_field(&r, "kcancel", "worst_us"), 200000, "%s", r.out);
	cr_expect(strstr(r.out, "canceller=kernel"), "%s", r.out);
	probe_result_free(&r);

	/* The fallback: the same cancels, each one a wake-up of the watcher. */
	r = probe_run(0, kcancel_off, "kcancel", "block", "20", NULL);
	cr_expect(strstr(r.err, "kernel-side cancel unavailable (CANCELSHIM_KCANCEL=off)"), "%s", r.err);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 20, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 0, "%s", r.out);
	cr_expect_geq(probe_field(&r, "kcancel", "watcher_switches"), 10, "%s", r.out);
	cr_expect(strstr(r.out, "canceller=watcher"), "%s", r.out);
	probe_result_free(&r);
}

Test(ebpf, a_computing_thread_finds_the_kernels_flag_at_its_next_call)
{
	need_ebpf();
	struct probe_result r = probe_run(0, kcancel_on, "kcancel", "busy", NULL);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 1, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 1, "the program set the flag:\n%s", r.out);
	/* Failed at once: no signal, no watcher, the flag was there. */
	cr_expect_lt(probe_field(&r, "kcancel", "worst_us"), 100000, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "wakeups"), 0, "a thread outside any call is not signalled\n%s", r.out);
	probe_result_free(&r);
}

Test(ebpf, two_live_connections_with_one_key_are_left_to_the_watcher)
{
	need_ebpf();
	/* One peer address and port reaching 127.0.0.1 and 127.0.0.2 of a
	 * wildcard listener: both connections have the same key. The first's
	 * client leaves: its thread is cancelled (by the watcher, which tells
	 * them apart by cookie), the second's request is answered. */
	struct probe_result r = probe_run(0, kcancel_on, "kcancel", "ambiguous", NULL);
	cr_expect_eq(probe_field(&r, "kcancel", "first_errno"), ECANCELED, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "second_early"), 0, "the live request was cut short\n%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "second_ret"), 1, "the live request was cancelled\n%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 0, "the program acted on a shared key\n%s", r.out);
	probe_result_free(&r);
}

Test(ebpf, a_fork_child_leaves_the_parents_threads_to_the_kernel)
{
	need_ebpf();
	/* The thread records the program reads are shared memory: a fork
	 * child gets a private copy before its reset frees the records of the
	 * threads it does not have. Without the copy, the parent's blocked
	 * thread would lose its record and never be cancelled. */
	struct probe_result r = probe_run(0, kcancel_on, "kcancel", "fork", NULL);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 1, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 1, "%s", r.out);
	cr_expect_lt(probe_field(&r, "kcancel", "worst_us"), 1000000, "%s", r.out);
	probe_result_free(&r);
}

Test(ebpf, a_server_that_drops_privileges_keeps_the_kernel_cancelling)
{
	need_ebpf();
	/* Loaded as root at listen(); the drop to nobody comes after the
	 * listen, or after a first client. The instance's descriptors and the
	 * shared memory stay the process's, and the program's signal needs no
	 * permission (SI_KERNEL). */
	const char *when[] = { "listen", "accept" };
	for (int i = 0; i < 2; i++) {
		struct probe_result r = probe_run(0, kcancel_on, "kcancel", "drop", when[i], NULL);
		cr_expect(strstr(r.err, "eBPF watcher attached; the kernel cancels"), "%s: %s", when[i], r.err);
		cr_expect_eq(probe_field(&r, "kcancel uid", "uid"), 65534, "%s", r.out);
		cr_expect_eq(probe_field(&r, "kcancel drop", "cancelled"), 1, "%s: %s", when[i], r.out);
		cr_expect_eq(probe_field(&r, "kcancel drop", "kernel_cancels"), 1, "%s: %s", when[i], r.out);
		cr_expect(strstr(r.out, "canceller=kernel"), "%s: %s", when[i], r.out);
		probe_result_free(&r);
	}
}

static int count_of(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
		n++;
	return n;
}

Test(ebpf, prefork_children_that_drop_privileges_keep_mode_ebpf, .timeout = 60)
{
	need_ebpf();
	/* A root master listens (and loads), forks 2 children that drop to
	 * nobody at once: they could not load an instance of their own (EPERM:
	 * epoll). The master loads one for each child before its fork. With
	 * the kernel-side cancel, and without (the watcher cancels). */
	const char *const *envs[] = { kcancel_on, kcancel_off };
	for (int k = 0; k < 2; k++) {
		struct probe_result r = probe_run(0, envs[k], "kcancel", "prefork", "2", NULL);
		cr_expect_eq(probe_field(&r, "kcancel prefork master", "failed"), 0, "%s", r.err);
		/* Its own instance only: what it loaded for each child was
		 * closed after each fork. */
		cr_expect_eq(probe_field(&r, "kcancel prefork master", "bpf_fds"), 4, "%s", r.out);
		cr_expect(!strstr(r.err, "Operation not permitted"), "%s", r.err);
		cr_expect_eq(count_of(r.err, "eBPF watcher: the instance the parent loaded for this child"), 2, "%s", r.err);
		for (int i = 0; i < 2; i++) {
			char line[64], mode[64], fds[64];
			snprintf(line, sizeof line, "kcancel prefork child=%d n=", i);
			snprintf(mode, sizeof mode, "kcancel prefork child=%d uid=65534 mode=ebpf", i);
			cr_expect(strstr(r.out, mode), "child %d runs in mode ebpf as nobody\n%s%s", i, r.out, r.err);
			/* The instance's four descriptors (two links, the port
			 * filter, the ring), none of which an exec keeps. */
			snprintf(fds, sizeof fds, "kcancel prefork child=%d uid=", i);
			cr_expect_eq(probe_field(&r, fds, "bpf_fds"), 4, "child %d\n%s", i, r.out);
			cr_expect_eq(probe_field(&r, fds, "bpf_fds_kept_by_exec"), 0, "child %d\n%s", i, r.out);
			cr_expect_eq(probe_field(&r, line, "cancelled"), 1, "child %d\n%s%s", i, r.out, r.err);
			cr_expect_eq(probe_field(&r, line, "kernel_cancels"), k == 0, "child %d\n%s%s", i, r.out, r.err);
		}
		cr_expect_eq(count_of(r.out, k == 0 ? "canceller=kernel" : "canceller=watcher"), 2, "%s", r.out);
		probe_result_free(&r);
	}
}

Test(ebpf, threads_beyond_the_programs_records_are_cancelled_by_the_watcher, .timeout = 120)
{
	need_ebpf();
	/* 300 threads blocked for their clients: the program sees the first
	 * 256 records and wakes the watcher for the rest. */
	struct probe_result r = probe_run(0, kcancel_on, "kcancel", "many", "300", NULL);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 300, "%s", r.out);
	cr_expect_geq(probe_field(&r, "kcancel", "kernel_cancels"), 1, "%s", r.out);
	cr_expect_lt(probe_field(&r, "kcancel", "kernel_cancels"), 300, "%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "cancels"), 300, "each thread counted once\n%s", r.out);
	/* The watcher is woken for them, not left to its once-a-second read. */
	cr_expect_lt(probe_field(&r, "kcancel", "worst_us"), 300000, "%s", r.out);
	probe_result_free(&r);
}

Test(ebpf, observe_mode_leaves_the_kernel_out)
{
	need_ebpf();
	/* CANCELSHIM_ACTION=observe fails nothing: the program must not set
	 * flags or signal (the kernel-side cancel is off, and says why). */
	const char *env[] = { "CANCELSHIM_MODE=ebpf", "CANCELSHIM_LOG=info", "CANCELSHIM_ACTION=observe", NULL };
	struct probe_result r = probe_run(0, env, "kcancel", "block", "1", NULL);
	cr_expect(strstr(r.err, "kernel-side cancel unavailable (CANCELSHIM_ACTION=observe)"), "%s", r.err);
	cr_expect_eq(probe_field(&r, "kcancel", "cancelled"), 0, "a call was failed in observe mode\n%s", r.out);
	cr_expect_eq(probe_field(&r, "kcancel", "kernel_cancels"), 0, "%s", r.out);
	probe_result_free(&r);
}

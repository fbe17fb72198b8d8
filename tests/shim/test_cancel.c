/* A thread serving a client is blocked in a call when the client goes away:
 * the call returns ECANCELED at once, later blocking calls fail without
 * entering the kernel, the error path still works, and the flag clears. */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_run.h"
#include "testlib.h"

/* Generous: the figure is typically tens of microseconds (see bench/), but
 * CI machines are noisy and this is not a benchmark. */
#define PROMPT_US 50000

static void expect_cancelled(const char *family, const char *close_how, const char *call)
{
	struct probe_result r = probe_run(0, NULL, "cancel", family, close_how, call, NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "%s/%s/%s: first_errno\n%s%s", family,
		     close_how, call, r.out, r.err);
	cr_expect_lt(probe_field(&r, "result", "latency_us"), PROMPT_US, "%s/%s/%s: too slow", family, close_how, call);
	cr_expect_eq(probe_field(&r, "result", "second_errno"), ECANCELED, "%s: a later call must fail too", call);
	cr_expect_lt(probe_field(&r, "result", "second_us"), 10000, "%s: a later call fails without blocking", call);
	cr_expect_eq(probe_field(&r, "result", "connect_errno"), ECANCELED, "%s: a later connect fails", call);
	/* The client's own socket: natural results, never ECANCELED. */
	long long own = probe_field(&r, "result", "own_ret"), own_errno = probe_field(&r, "result", "own_errno");
	cr_expect(own == 0 || (own == -1 && own_errno == ECONNRESET), "%s: own socket gave %lld/%lld", call, own, own_errno);
	cr_expect_eq(probe_field(&r, "result", "close_ret"), 0, "close is never failed");
	cr_expect_eq(probe_field(&r, "result", "after_ret"), 1, "%s: closing the client must clear the flag", call);
	probe_result_free(&r);
}

Test(cancel, every_family_and_close)
{
	const char *families[] = { "v4", "v6", "unix" }, *closes[] = { "fin", "rst" };
	for (int f = 0; f < 3; f++)
		for (int c = 0; c < 2; c++)
			expect_cancelled(families[f], closes[c], "recv");
}

Test(cancel, every_blocking_call)
{
	const char *calls[] = { "recv", "read", "readv", "recvmsg", "send", "poll", "ppoll", "select", "epoll",
				"nanosleep", "clock_nanosleep", "usleep", "sleep", "eventfd" };
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		expect_cancelled("v4", "fin", calls[i]);
}

Test(cancel, fortified_entry_points)
{
	/* The fortified probe reaches read and recv through __read_chk and
	 * __recv_chk; make sure it really does, then cancel through them. */
	char *cmd = tl_strdupf("nm -D '%s' | grep -c -E ' U (__read_chk|__recv_chk|__poll_chk)'", getenv("CS_PROBE_FORTIFY"));
	FILE *nm = popen(cmd, "r");
	int n = 0;
	cr_assert(nm && fscanf(nm, "%d", &n) == 1);
	pclose(nm);
	free(cmd);
	cr_assert_eq(n, 3, "the fortified probe should import __read_chk, __recv_chk and __poll_chk");
	const char *calls[] = { "read", "recv", "poll" };
	for (int i = 0; i < 3; i++) {
		struct probe_result r = probe_run(1, NULL, "cancel", "v4", "rst", calls[i], NULL);
		cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "fortified %s", calls[i]);
		probe_result_free(&r);
	}
}

static void expect_cleared_by(const char *variant)
{
	struct probe_result r = probe_run(0, NULL, "cancel", "v4", "fin", "recv", variant, NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "%s", variant);
	cr_expect_eq(probe_field(&r, "result", "after_ret"), 1, "%s must clear the cancel flag\n%s", variant, r.out);
	probe_result_free(&r);
}

Test(cancel, flag_clears)
{
	expect_cleared_by("close");
	expect_cleared_by("accept");
	expect_cleared_by("other");
	expect_cleared_by("multiplex");
}

Test(cancel, tracking_survives_dup)
{
	struct probe_result r = probe_run(0, NULL, "cancel", "unix", "fin", "recv", "dup", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
	probe_result_free(&r);
}

/* Issue 10 item 2: in mode ebpf the watcher finds a connection by its key,
 * which only the accepted descriptor had: a client moved to another number
 * (then the original closed) was never cancelled. */
Test(cancel, tracking_survives_a_move)
{
	const char *moves[] = { "dup", "dup2", "dup3", "dupfd", "dupfd_cloexec" }, *closes[] = { "fin", "rst" };
	for (size_t m = 0; m < sizeof moves / sizeof moves[0]; m++)
		for (int c = 0; c < 2; c++) {
			struct probe_result r = probe_run(0, NULL, "cancel", "v4", closes[c], "recv", moves[m], NULL);
			cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "%s/%s\n%s%s", moves[m],
				     closes[c], r.out, r.err);
			cr_expect_eq(probe_field(&r, "result", "after_ret"), 1, "%s: closing the moved client clears the flag",
				     moves[m]);
			probe_result_free(&r);
		}
}

Test(cancel, error_path_is_spared)
{
	struct probe_result r = probe_run(0, NULL, "cancel", "v4", "fin", "recv", "classes", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
	cr_expect_eq(probe_field(&r, "result", "stdout"), 27, "stdout is never failed");
	cr_expect_eq(probe_field(&r, "result", "stderr"), 27, "stderr is never failed");
	cr_expect_eq(probe_field(&r, "result", "file"), 1, "regular files are spared by default");
	cr_expect_eq(probe_field(&r, "result", "pipe"), 1, "pipes are spared by default");
	cr_expect_eq(probe_field(&r, "result", "pipe_close"), 0, "close is never failed");
	cr_expect_eq(probe_field(&r, "result", "nonblock_errno"), EAGAIN, "O_NONBLOCK calls are never failed");
	cr_expect_eq(probe_field(&r, "result", "dontwait_errno"), EAGAIN, "MSG_DONTWAIT calls are never failed");
	cr_expect_eq(probe_field(&r, "result", "poll0"), 0, "zero timeouts are never failed");
	probe_result_free(&r);
}

Test(cancel, optional_classes)
{
	const char *env[] = { "CANCELSHIM_CALLS=net,wait,file,pipe", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "classes", NULL);
	cr_expect_eq(probe_field(&r, "result", "file_errno"), ECANCELED, "file class fails regular files");
	cr_expect_eq(probe_field(&r, "result", "pipe_errno"), ECANCELED, "pipe class fails pipes");
	cr_expect_eq(probe_field(&r, "result", "stdout"), 27, "stdout is still never failed");
	probe_result_free(&r);
}

Test(cancel, only_waits_when_net_is_off)
{
	const char *env[] = { "CANCELSHIM_CALLS=wait", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "--live", "300", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_ret"), 1, "recv is not failed without the net class");
	probe_result_free(&r);
	r = probe_run(0, env, "cancel", "v4", "fin", "poll", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "poll is");
	probe_result_free(&r);
}

Test(cancel, rst_mode_ignores_fin)
{
	const char *env[] = { "CANCELSHIM_ON=rst", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "--live", "300", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_ret"), 1, "a FIN must not cancel in rst mode");
	probe_result_free(&r);
	r = probe_run(0, env, "cancel", "v4", "rst", "recv", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "a RST cancels in rst mode");
	probe_result_free(&r);
}

Test(cancel, off_changes_nothing)
{
	/* The same scenario with the shim off: the call is not cancelled. This
	 * is what the other tests would see if the shim stopped working. */
	const char *env[] = { "CANCELSHIM_MODE=off", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "--live", "300", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_ret"), 1);
	probe_result_free(&r);
}

Test(cancel, signals_blocked_by_the_application)
{
	struct probe_result r = probe_run(0, NULL, "cancel", "v4", "fin", "recv", "sigmask", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "blocking every signal must not stop a cancel");
	cr_expect_eq(probe_field(&r, "result", "mask_view"), 1, "the application still sees the mask it set");
	probe_result_free(&r);
}

static void expect_handler_kept(const char *variant, const char *signal_env, const char *signo)
{
	const char *env[] = { signal_env, NULL };
	struct probe_result r = probe_run(0, signal_env ? env : NULL, "cancel", "v4", "fin", "recv", variant, "--signal",
					  signo, NULL);
	cr_expect_eq(probe_field(&r, "handler_old_default", "handler_old_default"), 1);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "%s: cancel with an application handler", variant);
	cr_expect_eq(probe_field(&r, "handler_calls", "handler_calls"), 1, "%s: the application's handler still runs", variant);
	cr_expect_eq(probe_field(&r, "handler_calls", "handler_kept"), 1, "%s: sigaction reads back its handler", variant);
	probe_result_free(&r);
}

Test(cancel, application_handlers_for_the_signal)
{
	char rtmax1[16];	/* any int fits */
	snprintf(rtmax1, sizeof rtmax1, "%d", SIGRTMAX - 1);
	expect_handler_kept("handler", NULL, rtmax1);
	expect_handler_kept("signal", NULL, rtmax1);
	expect_handler_kept("handler", "CANCELSHIM_SIGNAL=SIGUSR1", "10");
}

/* Settings: bad values are named with what is accepted and leave the host
 * untouched; good ones take effect. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "probe_run.h"
#include "testlib.h"

static void expect_rejected(const char *assignment, const char *variable, const char *accepted)
{
	const char *env[] = { assignment, NULL };
	/* With the shim off the call is not cancelled: the host runs untouched. */
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "--live", "200", NULL);
	cr_expect(strstr(r.err, variable), "%s: stderr must name %s:\n%s", assignment, variable, r.err);
	cr_expect(strstr(r.err, accepted), "%s: stderr must list the accepted values (%s):\n%s", assignment, accepted, r.err);
	cr_expect_eq(probe_field(&r, "result", "first_ret"), 1, "%s: the host must run untouched", assignment);
	probe_result_free(&r);
}

Test(settings, bad_values)
{
	expect_rejected("CANCELSHIM_MODE=bogus", "CANCELSHIM_MODE", "auto, epoll, ebpf, off");
	expect_rejected("CANCELSHIM_ON=both", "CANCELSHIM_ON", "fin");
	expect_rejected("CANCELSHIM_CALLS=net,disk", "CANCELSHIM_CALLS", "net, wait, file, pipe");
	expect_rejected("CANCELSHIM_SIGNAL=SIGKILL", "CANCELSHIM_SIGNAL", "SIGRTMIN+N");
	expect_rejected("CANCELSHIM_SIGNAL=9", "CANCELSHIM_SIGNAL", "SIGUSR1");
	expect_rejected("CANCELSHIM_LOG=loud", "CANCELSHIM_LOG", "error, warn, info, debug");
}

Test(settings, info_names_the_mode)
{
	/* The suite's CANCELSHIM_MODE (epoll or ebpf) decides what is said. */
	const char *env[] = { "CANCELSHIM_LOG=info", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", NULL);
	cr_expect(strstr(r.err, probe_ebpf_expected() ? "info: active: mode ebpf, on fin, calls net,wait, signal SIGRTMAX-1"
						       : "info: active: mode epoll, on fin, calls net,wait, signal SIGRTMAX-1"),
		  "%s", r.err);
	probe_result_free(&r);
}

Test(settings, debug_reports_each_cancel)
{
	const char *env[] = { "CANCELSHIM_LOG=debug", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "rst", "recv", NULL);
	cr_expect(strstr(r.err, "cancel conn=") && strstr(r.err, "reason=rst"), "%s", r.err);
	cr_expect(strstr(r.err, "ECANCELED"), "%s", r.err);
	probe_result_free(&r);
}

Test(settings, errno_is_preserved)
{
	struct probe_result r = probe_run(0, NULL, "errno", NULL);
	cr_expect_eq(probe_field(&r, "errno", "changed"), 0, "a successful call changed errno");
	probe_result_free(&r);
}

Test(settings, fails_open_when_it_cannot_watch)
{
	/* Room for the scenario's five descriptors and not one more: the
	 * watcher's epoll set cannot be created. One line says so; the
	 * program runs untouched. */
	const char *env[] = { "CS_PROBE_NOFILE=+5", "CANCELSHIM_MODE=epoll", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", "recv", "--live", "200", NULL);
	cr_expect(strstr(r.err, "cannot create the watcher's epoll set"), "%s", r.err);
	cr_expect_eq(tl_count(r.err, "cancelshim["), 1, "one line:\n%s", r.err);
	cr_expect_eq(probe_field(&r, "result", "first_ret"), 1);
	probe_result_free(&r);
}

Test(settings, another_preloaded_allocator)
{
	/* jemalloc preloaded first initialises itself, calling into libc while
	 * the shim resolves its symbols through dlsym. */
	const char *env[] = { "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "rst", "recv", NULL);
	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED);
	probe_result_free(&r);
}

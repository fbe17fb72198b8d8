/* Libraries loaded with dlopen(RTLD_DEEPBIND) (PHP's extensions, and the
 * libcurl, libpq... they bring in) bind their libc calls to libc, not to the
 * preloaded shim. The shim's dlopen hook rebinds them: a served thread
 * blocked in such a library's recv/poll is cancelled like any other. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>

#include "probe_run.h"
#include "testlib.h"

#define PROMPT_US 50000

static void expect_cancelled(const char *lib_var, const char *bind, const char *call)
{
	char *lib = tl_strdupf("CS_DEEP_LIB=%s", getenv(lib_var)), *mode = tl_strdupf("CS_DEEP_BIND=%s", bind);
	const char *env[] = { lib, mode, NULL };
	struct probe_result r = probe_run(0, env, "cancel", "v4", "fin", call, NULL);

	cr_expect_eq(probe_field(&r, "result", "first_errno"), ECANCELED, "%s %s %s: first_errno\n%s%s", lib_var, bind,
		     call, r.out, r.err);
	cr_expect_lt(probe_field(&r, "result", "latency_us"), PROMPT_US, "%s %s %s: too slow", lib_var, bind, call);
	cr_expect_eq(probe_field(&r, "result", "second_errno"), ECANCELED, "%s: a later call fails too", call);
	cr_expect_eq(probe_field(&r, "result", "after_ret"), 1, "%s: closing the client clears the flag", call);
	probe_result_free(&r);
	free(lib);
	free(mode);
}

Test(deepbind, bound_at_load)
{
	expect_cancelled("CS_DEEP_LIB_NOW", "now", "deep_recv");
	expect_cancelled("CS_DEEP_LIB_NOW", "now", "deep_poll");
}

Test(deepbind, bound_lazily)
{
	expect_cancelled("CS_DEEP_LIB_LAZY", "lazy", "deep_recv");
	expect_cancelled("CS_DEEP_LIB_LAZY", "lazy", "deep_poll");
}

Test(deepbind, address_taken)
{
	expect_cancelled("CS_DEEP_LIB_NOW", "now", "deep_recv_ptr");
	expect_cancelled("CS_DEEP_LIB_LAZY", "lazy", "deep_recv_ptr");
}

/* A library that bundles its own recv keeps it: deep binding chose it, and
 * the shim rewrites only slots that hold libc's own function. */
Test(deepbind, own_definition_kept)
{
	char *lib = tl_strdupf("CS_DEEP_LIB=%s", getenv("CS_DEEP_LIB_OWN"));
	const char *env[] = { lib, NULL };
	struct probe_result r = probe_run(0, env, "deepown", NULL);

	cr_expect_eq(probe_field(&r, "result", "ret"), 1, "%s%s", r.out, r.err);
	cr_expect_eq(probe_field(&r, "result", "own_calls"), 1, "the library's own recv must be called\n%s%s", r.out, r.err);
	probe_result_free(&r);
	free(lib);
}

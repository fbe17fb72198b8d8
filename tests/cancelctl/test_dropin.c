/* The drop-in's text functions (tools/cancelctl/systemd/systemd_dropin.c): reading LD_PRELOAD
 * out of what systemctl shows, merging it with the shim's, the file's marker
 * and quoting, unit names. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "systemd_dropin.h"

#define LIB "/usr/lib/x86_64-linux-gnu/libcancelshim.so"

static void merged(const char *old, const char *want)
{
	char *got = dropin_preload_merge(old, LIB);
	cr_assert_str_eq(got, want, "merge of '%s'", old ? old : "(null)");
	free(got);
}

Test(dropin, the_shim_is_appended_after_the_units_own_preloads_once)
{
	merged(NULL, LIB);
	merged("", LIB);
	merged("/usr/lib/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2:" LIB);
	merged("/a.so /b.so", "/a.so:/b.so:" LIB);
	merged("/a.so:" LIB, "/a.so:" LIB);
	merged(LIB ":/a.so", "/a.so:" LIB);
	merged("/opt/old/libcancelshim.so:/a.so", "/a.so:" LIB);
	merged("libcancelshim.so", LIB);
	merged("/a/not-libcancelshim.so", "/a/not-libcancelshim.so:" LIB);
}

static void looked_up(const char *env, const char *want)
{
	char *got = dropin_env_lookup(env, "LD_PRELOAD");
	if (!want)
		cr_assert_null(got, "'%s' gave '%s'", env, got);
	else
		cr_assert_str_eq(got, want, "in '%s'", env);
	free(got);
}

Test(dropin, ld_preload_is_read_from_systemctls_environment_property)
{
	looked_up("", NULL);
	looked_up("LANG=C X=1", NULL);
	looked_up("LANG=C LD_PRELOAD=/a.so X=1", "/a.so");
	looked_up("\"LD_PRELOAD=/a.so /b.so\" X=1", "/a.so /b.so");
	looked_up("LD_PRELOAD=/a.so LD_PRELOAD=/b.so", "/b.so");
	looked_up("LD_PRELOAD=/a.so\\ /b.so X=1", "/a.so /b.so");
	looked_up("MY_LD_PRELOAD=/a.so", NULL);
	looked_up("LD_PRELOADX=/a.so", NULL);
}

Test(dropin, the_file_starts_with_the_marker_and_quotes_values_for_systemd)
{
	struct dropin d = { .preload = "/a.so:" LIB, .dir_created = true,
			    .env = { { "CANCELSHIM_PORTS", "8080" }, { "CANCELSHIM_X", "a\"b\\c%d" } },
			    .n_env = 2 };
	char *text = dropin_render(&d);
	cr_assert(dropin_is_ours(text));
	cr_assert(dropin_created_dir(text));
	cr_assert(strstr(text, "[Service]\nEnvironment=\"LD_PRELOAD=/a.so:" LIB "\"\n"), "%s", text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_PORTS=8080\"\n"), "%s", text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_X=a\\\"b\\\\c%%d\"\n"), "%s", text);
	free(text);

	d.dir_created = false;
	text = dropin_render(&d);
	cr_assert(dropin_is_ours(text));
	cr_assert(!dropin_created_dir(text));
	free(text);
	cr_assert(!dropin_is_ours("[Service]\n"));
	cr_assert(!dropin_is_ours("# cancelshim\n"));
	cr_assert(!dropin_created_dir("# x\n" DROPIN_DIR_CREATED "\n"));
}

Test(dropin, unit_names)
{
	char err[256], *n;
	n = dropin_unit_name("web", err, sizeof err);
	cr_assert_str_eq(n, "web.service");
	free(n);
	n = dropin_unit_name("app@1.service", err, sizeof err);
	cr_assert_str_eq(n, "app@1.service");
	free(n);
	cr_assert_null(dropin_unit_name("../etc", err, sizeof err));
	cr_assert_null(dropin_unit_name("a/b", err, sizeof err));
	cr_assert_null(dropin_unit_name("", err, sizeof err));
	cr_assert_null(dropin_unit_name("web.socket", err, sizeof err));
	cr_assert(strstr(err, "not a service"), "%s", err);
}

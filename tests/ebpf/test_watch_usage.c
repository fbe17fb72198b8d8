/* `cancelctl watch` options and help: no privileges, no eBPF needed, so
 * this runs in every build (with -Dbpf=disabled too). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testlib.h"

static int run_watch(const char *args[], char **out, char **err)
{
	const char *argv[16] = { getenv("CS_CANCELCTL"), "watch" };
	int n = 2;

	cr_assert(argv[0], "CS_CANCELCTL is not set (run through meson test)");
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	cr_assert(p);
	int st = tl_proc_wait(p, 10000);
	*out = tl_proc_stdout(p);
	*err = tl_proc_stderr(p);
	tl_proc_free(p);
	cr_assert(st != -1 && WIFEXITED(st), "cancelctl watch did not exit");
	return WEXITSTATUS(st);
}

Test(watch_usage, help)
{
	char *out, *err;
	cr_expect_eq(run_watch((const char *[]){ "--help", NULL }, &out, &err), 0);
	cr_expect(strstr(out, "usage: cancelctl watch") && strstr(out, "--port N") &&
		  strstr(out, "--json") && strstr(out, "--duration") && strstr(out, "CAP_BPF"),
		  "help text: %s", out);
}

Test(watch_usage, bad_options_are_usage_errors)
{
	const char *bad[][3] = {
		{ "--port", "0", NULL }, { "--port", "65536", NULL }, { "--port", "http", NULL },
		{ "--duration", "-1", NULL }, { "--duration", "x", NULL }, { "--bogus", NULL },
		{ "extra", NULL }, { "--port", NULL },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out, *err;
		int st = run_watch(bad[i], &out, &err);
		cr_expect_eq(st, 2, "%s %s: status %d", bad[i][0], bad[i][1] ? bad[i][1] : "", st);
		cr_expect(strstr(err, "cancelctl watch: "), "a message: %s", err);
		free(out);
		free(err);
	}
}

#ifndef CS_HAVE_BPF
Test(watch_usage, built_without_ebpf_says_so)
{
	char *out, *err;
	cr_expect_eq(run_watch((const char *[]){ "--duration", "1", NULL }, &out, &err), 1);
	cr_expect(strstr(err, "built without eBPF"), "stderr: %s", err);
}
#endif

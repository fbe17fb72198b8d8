#include "probe_run.h"

#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

struct probe_result probe_run(int fortified, const char *const env[], ...)
{
	const char *argv[16];
	struct probe_result r;
	struct tl_proc *p;
	va_list ap;
	int n = 0;

	argv[n++] = getenv(fortified ? "CS_PROBE_FORTIFY" : "CS_PROBE");
	cr_assert(argv[0], "CS_PROBE is not set: run through meson test");
	va_start(ap, env);
	while (n < 15 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	p = tl_spawn(argv, env, TL_SHIM);
	cr_assert(p, "cannot spawn %s", argv[0]);
	r.status = tl_proc_wait(p, 180000);
	r.out = tl_proc_stdout(p);
	r.err = tl_proc_stderr(p);
	tl_proc_free(p);
	cr_assert(r.status != -1, "%s %s did not finish\nstdout:\n%s\nstderr:\n%s", argv[0], argv[1], r.out, r.err);
	cr_assert(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0,
		  "%s %s %s failed (status %#x)\nstdout:\n%s\nstderr:\n%s", argv[0], argv[1], argv[2] ? argv[2] : "",
		  r.status, r.out, r.err);
	return r;
}

long long probe_field(const struct probe_result *r, const char *prefix, const char *key)
{
	char *line = tl_find_line(r->out, prefix);
	long long v = 0;
	cr_assert(line, "no line with '%s' in the probe's output:\n%s\nstderr:\n%s", prefix, r->out, r->err);
	cr_assert(tl_field(line, key, &v) == 0, "no %s= in '%s'", key, line);
	free(line);
	return v;
}

void probe_result_free(struct probe_result *r)
{
	free(r->out);
	free(r->err);
}

int probe_ebpf_expected(void)
{
	const char *mode = getenv("CANCELSHIM_MODE"), *have = getenv("CS_HAVE_BPF");

	if (mode && *mode && strcmp(mode, "auto") && strcmp(mode, "ebpf"))
		return 0;
	return have && !strcmp(have, "1") && geteuid() == 0 && access("/sys/kernel/btf/vmlinux", R_OK) == 0;
}

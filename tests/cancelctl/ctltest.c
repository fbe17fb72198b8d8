/* See ctltest.h. */
#include "ctltest.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ctl(const char *const args[], const char *const env_extra[], struct proc_result *r)
{
	const char *argv[32] = { getenv("CS_CANCELCTL") };
	size_t n = 1;
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	cr_assert(argv[0], "CS_CANCELCTL is not set (run through meson test)");
	proc_run(argv, proc_env(env_extra), CTL_TIMEOUT_MS, r);
	cr_assert(!r->timed_out, "cancelctl did not finish within %d ms", CTL_TIMEOUT_MS);
}

const char *json_eval(const char *json, const char *expr)
{
	static char buf[8192];
	const char *argv[] = {
		"/usr/bin/python3", "-c",
		"import json, sys\n"
		"try:\n    d = json.loads(sys.argv[1])\n"
		"except ValueError:\n    print('<bad json>'); sys.exit(0)\n"
		"print(eval(sys.argv[2]))\n",
		json, expr, NULL,
	};
	struct proc_result r;
	proc_run(argv, proc_env(NULL), 10000, &r);
	cr_assert_eq(r.status, 0, "python3 failed on %s: %s", expr, r.err);
	snprintf(buf, sizeof buf, "%s", r.out);
	buf[strcspn(buf, "\n")] = '\0';
	proc_free(&r);
	return buf;
}

static char scratch[PATH_MAX];

const char *scratch_dir(void)
{
	if (!scratch[0]) {
		const char *root = getenv("CS_BUILD_ROOT");
		snprintf(scratch, sizeof scratch, "%s/tests/cancelctl/scratch.XXXXXX",
			 root ? root : "/tmp");
		cr_assert(mkdtemp(scratch), "mkdtemp %s", scratch);
	}
	return scratch;
}

void scratch_remove(void)
{
	if (!scratch[0])
		return;
	const char *argv[] = { "/bin/rm", "-rf", scratch, NULL };
	struct proc_result r;
	proc_run(argv, proc_env(NULL), 10000, &r);
	proc_free(&r);
	scratch[0] = '\0';
}

const char *scratch_path(const char *name)
{
	static char ring[8][PATH_MAX + 256];
	static int next;
	char *p = ring[next++ % 8];
	int n = snprintf(p, sizeof ring[0], "%s/%s", scratch_dir(), name);
	cr_assert(n > 0 && (size_t)n < sizeof ring[0], "path too long");
	return p;
}

void write_file(const char *path, const void *data, size_t len, int mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	chmod(path, (mode_t)mode);
}

void copy_file(const char *src, const char *dst)
{
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "open %s", src);
	struct stat st;
	fstat(fd, &st);
	char *buf = malloc((size_t)st.st_size + 1);
	cr_assert_eq(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	write_file(dst, buf, (size_t)st.st_size, 0755);
	free(buf);
}

void compile(const char *const args[])
{
	const char *argv[32] = { "/usr/bin/cc" };
	size_t n = 1;
	for (size_t i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct proc_result r;
	proc_run(argv, proc_env(NULL), 60000, &r);
	cr_assert_eq(r.status, 0, "cc failed: %s", r.err);
	proc_free(&r);
}

bool run_oracle(const char *script, const char *const args[], const char *json,
		const char *const env_extra[], char **why)
{
	const char *report = scratch_path("report.json");
	write_file(report, json, strlen(json), 0644);
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", CS_TEST_SOURCE_DIR, script);
	const char *argv[16] = { "/usr/bin/python3", path };
	size_t n = 2;
	for (size_t i = 0; args && args[i] && n < 14; i++)
		argv[n++] = args[i];
	argv[n++] = report;
	argv[n] = NULL;
	struct proc_result r;
	proc_run(argv, proc_env(env_extra), 60000, &r);
	bool ok = r.status == 0 && !strncmp(r.out, "OK", 2);
	if (why)
		asprintf(why, "status %d: %s%s", r.status, r.out, r.err);
	proc_free(&r);
	return ok;
}

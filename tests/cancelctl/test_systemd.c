/* cancelctl enable / disable / status against a fake systemctl
 * (fake-systemctl: this machine does not run systemd as PID 1) that answers
 * `show` from fixture files and logs daemon-reload, and a drop-in root under
 * the scratch directory (CANCELCTL_SYSTEMD_DIR). What is checked is the file
 * written, the merging of LD_PRELOAD, the refusals, and status reading real
 * processes' /proc/PID/maps. */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctltest.h"

static void cleanup(void)
{
	scratch_remove();
}

TestSuite(systemd, .fini = cleanup, .timeout = 120);

static const char *shim_real(void)
{
	static char path[PATH_MAX];
	cr_assert(realpath(getenv("CS_SHIM"), path));
	return path;
}

/* A fixture property of a unit for the fake systemctl. */
static void unit_prop(const char *unit, const char *prop, const char *value)
{
	char dir[PATH_MAX], file[PATH_MAX + 64];
	snprintf(dir, sizeof dir, "%s/units/%s", scratch_dir(), unit);
	mkdir(scratch_path("units"), 0755);
	mkdir(dir, 0755);
	snprintf(file, sizeof file, "%s/%s", dir, prop);
	write_file(file, value, strlen(value), 0644);
}

/* A unit running `program`, with an optional Environment= property. */
static void unit(const char *name, const char *program, const char *environment)
{
	char exec[PATH_MAX + 128];
	snprintf(exec, sizeof exec, "{ path=%s ; argv[]=%s --serve ; ignore_errors=no ; "
		 "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }", program, program);
	unit_prop(name, "ExecStart", exec);
	if (environment)
		unit_prop(name, "Environment", environment);
}

static void systemctl(const char *const args[], struct proc_result *r)
{
	static char dir[PATH_MAX + 64], fake[PATH_MAX + 64], root[PATH_MAX + 64], lib[PATH_MAX + 64];
	snprintf(dir, sizeof dir, "CANCELCTL_SYSTEMD_DIR=%s", scratch_path("etc"));
	mkdir(scratch_path("etc"), 0755);
	snprintf(fake, sizeof fake, "CANCELCTL_SYSTEMCTL=%s/fake-systemctl", CS_TEST_SOURCE_DIR);
	snprintf(root, sizeof root, "FAKE_SYSTEMCTL_ROOT=%s", scratch_path("units"));
	mkdir(scratch_path("units"), 0755);
	snprintf(lib, sizeof lib, "CANCELSHIM_LIB=%s", shim_real());
	const char *env[] = { dir, fake, root, lib, NULL };
	ctl(args, env, r);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char *dropin(const char *unit_name)
{
	static char path[PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/%s.d/cancelshim.conf", scratch_path("etc"), unit_name);
	return path;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

Test(systemd, enable_writes_a_marked_dropin_that_keeps_the_units_preload_and_sets_the_settings)
{
	unit("web.service", "/usr/bin/python3", "LANG=C \"LD_PRELOAD=/usr/lib/libjemalloc.so.2\" X=1");
	const char *args[] = { "enable", "web", "--mode", "ebpf", "--ports", "8080,unix:/run/web.sock",
			       "--observe", NULL };
	struct proc_result r;
	systemctl(args, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "systemctl restart web.service"), "must say to restart: %s", r.out);
	char *text = slurp(dropin("web.service"));
	cr_assert(text, "no drop-in at %s", dropin("web.service"));
	cr_assert(!strncmp(text, "# cancelshim drop-in written by cancelctl enable", 48), "%s", text);
	cr_assert(strstr(text, "[Service]\n"), "%s", text);
	char want[PATH_MAX + 128];
	snprintf(want, sizeof want, "Environment=\"LD_PRELOAD=/usr/lib/libjemalloc.so.2:%s\"\n", shim_real());
	cr_assert(strstr(text, want), "want %s in:\n%s", want, text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_MODE=ebpf\"\n"), "%s", text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_PORTS=8080,unix:/run/web.sock\"\n"), "%s", text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_ACTION=observe\"\n"), "%s", text);
	cr_assert(strstr(text, "Environment=\"CANCELSHIM_LOG=info\"\n"), "%s", text);
	char *calls = slurp(scratch_path("units/calls"));
	cr_assert(calls && strstr(calls, "daemon-reload"), "no daemon-reload: %s", calls ? calls : "");
	proc_free(&r);
}

Test(systemd, enabling_again_never_duplicates_the_shim_and_another_copy_of_it_is_replaced)
{
	/* What systemctl shows once our drop-in is loaded: theirs, then ours,
	 * and a stale copy from elsewhere. */
	char env[2 * PATH_MAX];
	snprintf(env, sizeof env, "LD_PRELOAD=/opt/old/libcancelshim.so:/usr/lib/a.so:%s", shim_real());
	unit("api.service", "/usr/bin/python3", env);
	const char *args[] = { "enable", "api.service", NULL };
	struct proc_result r;
	systemctl(args, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	proc_free(&r);
	systemctl(args, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	char *text = slurp(dropin("api.service"));
	char want[PATH_MAX + 128];
	snprintf(want, sizeof want, "Environment=\"LD_PRELOAD=/usr/lib/a.so:%s\"\n", shim_real());
	cr_assert(strstr(text, want), "want %s in:\n%s", want, text);
	cr_assert_eq(count(text, "libcancelshim.so"), 1, "%s", text);
	cr_assert(strstr(text, "# cancelctl: created-directory\n"), "the second enable keeps the record: %s", text);
	proc_free(&r);
}

Test(systemd, a_unit_with_a_syscall_filter_gets_mode_epoll)
{
	unit("filtered.service", "/usr/bin/python3", NULL);
	unit_prop("filtered.service", "SystemCallFilter", "~@mount @obsolete");
	const char *args[] = { "enable", "filtered", NULL };
	struct proc_result r;
	systemctl(args, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "SystemCallFilter"), "%s", r.err);
	cr_assert(strstr(slurp(dropin("filtered.service")), "Environment=\"CANCELSHIM_MODE=epoll\"\n"),
		  "%s", slurp(dropin("filtered.service")));
	proc_free(&r);

	unit("free.service", "/usr/bin/python3", NULL);
	const char *plain[] = { "enable", "free", NULL };
	systemctl(plain, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(!strstr(slurp(dropin("free.service")), "CANCELSHIM_MODE"), "no filter: mode left alone");
	proc_free(&r);
}

Test(systemd, a_unit_whose_program_check_calls_unsupported_is_refused_with_the_reason)
{
	if (!CS_TEST_STATIC[0])
		cr_skip_test("no static C library to build the static program");
	unit("static.service", CS_TEST_STATIC, NULL);
	const char *args[] = { "enable", "static", NULL };
	struct proc_result r;
	systemctl(args, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "refusing to enable static.service") && strstr(r.err, "static"), "%s", r.err);
	cr_assert(!slurp(dropin("static.service")), "nothing written");
	proc_free(&r);

	unit_prop("missing-dir-marker", "x", "");	/* keeps units/ existing */
	const char *none[] = { "enable", "nosuch", NULL };
	systemctl(none, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "not found"), "%s", r.err);
	proc_free(&r);
}

Test(systemd, disable_removes_exactly_what_enable_wrote)
{
	unit("web.service", "/usr/bin/python3", NULL);
	/* An operator's own drop-in in the same directory stays. */
	mkdir(scratch_path("etc"), 0755);
	char dir[PATH_MAX + 64], other[PATH_MAX + 128];
	snprintf(dir, sizeof dir, "%s/web.service.d", scratch_path("etc"));
	mkdir(dir, 0755);
	snprintf(other, sizeof other, "%s/limits.conf", dir);
	write_file(other, "[Service]\nLimitNOFILE=65536\n", 28, 0644);

	const char *en[] = { "enable", "web", NULL }, *dis[] = { "disable", "web", NULL };
	struct proc_result r;
	systemctl(en, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	proc_free(&r);
	systemctl(dis, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert(strstr(r.out, "systemctl restart web.service"), "%s", r.out);
	cr_assert(!slurp(dropin("web.service")), "drop-in still there");
	cr_assert(slurp(other), "the operator's drop-in was removed");
	proc_free(&r);

	/* A directory enable created goes with the file. */
	unit("new.service", "/usr/bin/python3", NULL);
	const char *en2[] = { "enable", "new", NULL }, *dis2[] = { "disable", "new", NULL };
	systemctl(en2, &r);
	proc_free(&r);
	systemctl(dis2, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	struct stat st;
	snprintf(dir, sizeof dir, "%s/new.service.d", scratch_path("etc"));
	cr_assert(stat(dir, &st) != 0, "the directory enable created is still there");
	proc_free(&r);

	/* A cancelshim.conf without the marker is not ours: left alone. */
	snprintf(dir, sizeof dir, "%s/hand.service.d", scratch_path("etc"));
	mkdir(dir, 0755);
	write_file(dropin("hand.service"), "[Service]\n", 10, 0644);
	const char *dis3[] = { "disable", "hand", NULL };
	systemctl(dis3, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(slurp(dropin("hand.service")), "a file cancelctl did not write was removed");
	proc_free(&r);
}

/* A process standing for a unit's main process: sleep, with or without the shim. */
static pid_t start_sleep(bool shimmed)
{
	char preload[PATH_MAX + 16];
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", shim_real());
	char *env[] = { shimmed ? preload : "X=1", NULL };
	char *argv[] = { "/bin/sleep", "60", NULL };
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, "/bin/sleep", NULL, NULL, argv, env), 0);
	/* The loader has mapped the preload once the program itself runs. */
	char exe[64], target[PATH_MAX];
	snprintf(exe, sizeof exe, "/proc/%d/exe", (int)pid);
	for (int i = 0; i < 5000; i++) {
		ssize_t n = readlink(exe, target, sizeof target - 1);
		char maps[64];
		snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
		if (n > 0 && !strncmp(target, "/usr/bin/sleep", (size_t)n)) {
			char *m = slurp(maps);
			if (m && strstr(m, "/usr/bin/sleep") && strstr(m, "libc.so"))
				break;
		}
		usleep(1000);
	}
	return pid;
}

Test(systemd, status_lists_enabled_units_and_whether_their_processes_loaded_the_shim)
{
	pid_t with = start_sleep(true), without = start_sleep(false);
	char pid[32];
	unit("on.service", "/usr/bin/python3", NULL);
	snprintf(pid, sizeof pid, "%d\n", (int)with);
	unit_prop("on.service", "MainPID", pid);
	unit("stale.service", "/usr/bin/python3", NULL);
	snprintf(pid, sizeof pid, "%d\n", (int)without);
	unit_prop("stale.service", "MainPID", pid);
	unit("other.service", "/usr/bin/python3", NULL);

	struct proc_result r;
	const char *e1[] = { "enable", "on", "--ports", "8080", NULL }, *e2[] = { "enable", "stale", NULL };
	systemctl(e1, &r);
	proc_free(&r);
	systemctl(e2, &r);
	proc_free(&r);
	const char *st[] = { "status", NULL };
	systemctl(st, &r);
	kill(with, SIGKILL);
	kill(without, SIGKILL);
	waitpid(with, NULL, 0);
	waitpid(without, NULL, 0);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	const char *on = strstr(r.out, "on.service"), *stale = strstr(r.out, "stale.service");
	cr_assert(on && stale, "%s", r.out);
	cr_assert(!strstr(r.out, "other.service"), "a unit without the drop-in is listed:\n%s", r.out);
	char line[256];
	snprintf(line, sizeof line, "%.*s", (int)strcspn(on, "\n"), on);
	cr_assert(strstr(line, " 1/1 ") && strstr(line, "PORTS=8080") && !strstr(line, "restart"), "%s", line);
	snprintf(line, sizeof line, "%.*s", (int)strcspn(stale, "\n"), stale);
	cr_assert(strstr(line, " 0/1 ") && strstr(line, "restart needed"), "%s", line);
	proc_free(&r);
}

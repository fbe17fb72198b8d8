/* `cancelctl run`: the program it starts sees the shim preloaded (by absolute
 * path, really mapped) and the settings given; existing preloads are kept;
 * bad values, missing commands and static programs are refused with a clear
 * message and the documented exit status. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctltest.h"

static void cleanup(void)
{
	scratch_remove();
}

TestSuite(run, .fini = cleanup, .timeout = 120);

static const char *shim_real(void)
{
	static char path[PATH_MAX];
	cr_assert(realpath(getenv("CS_SHIM"), path), "CS_SHIM %s", getenv("CS_SHIM"));
	return path;
}

static const char *value(const struct proc_result *r, const char *key)
{
	static char buf[8192];
	const char *v = proc_line_value(r->out, key, buf, sizeof buf);
	cr_assert(v, "no %s= line in the program's output:\n%s\n%s", key, r->out, r->err);
	return v;
}

Test(run, the_program_sees_the_shim_by_absolute_path_and_has_it_mapped)
{
	const char *args[] = { "run", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "LD_PRELOAD"), shim_real());
	cr_assert_str_eq(value(&r, "MAPPED"), shim_real(), "the loader did not load it");
	cr_assert_str_eq(value(&r, "CANCELSHIM_MODE"), "<unset>", "options not given set nothing");
	proc_free(&r);
}

Test(run, options_become_cancelshim_variables)
{
	const char *args[] = { "run", "--mode", "epoll", "--on=rst", "--calls", "net,file",
			       "--signal", "SIGRTMAX-3", "--log", "error", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "CANCELSHIM_MODE"), "epoll");
	cr_assert_str_eq(value(&r, "CANCELSHIM_ON"), "rst");
	cr_assert_str_eq(value(&r, "CANCELSHIM_CALLS"), "net,file");
	cr_assert_str_eq(value(&r, "CANCELSHIM_SIGNAL"), "SIGRTMAX-3");
	cr_assert_str_eq(value(&r, "CANCELSHIM_LOG"), "error");
	proc_free(&r);
}

Test(run, observe_sets_the_action)
{
	const char *args[] = { "run", "--observe", CS_TEST_PROBE, NULL };
	const char *bad[] = { "run", "--action", "dry", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "CANCELSHIM_ACTION"), "observe");
	proc_free(&r);
	ctl(bad, NULL, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "CANCELSHIM_ACTION='dry'") && strstr(r.err, "observe"), "%s", r.err);
	proc_free(&r);
}

Test(run, variables_already_set_are_left_alone_unless_an_option_says_otherwise)
{
	const char *env[] = { "CANCELSHIM_MODE=off", "CANCELSHIM_ON=rst", NULL };
	const char *args[] = { "run", "--on", "fin", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "CANCELSHIM_MODE"), "off");
	cr_assert_str_eq(value(&r, "CANCELSHIM_ON"), "fin");
	proc_free(&r);
}

Test(run, existing_preloads_are_kept_in_front)
{
	char preload[PATH_MAX + 32], expect[2 * PATH_MAX];
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", CS_TEST_NOTHING);
	const char *env[] = { preload, NULL };
	const char *args[] = { "run", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	snprintf(expect, sizeof expect, "%s:%s", CS_TEST_NOTHING, shim_real());
	cr_assert_str_eq(value(&r, "LD_PRELOAD"), expect);
	proc_free(&r);
}

Test(run, the_shim_is_not_added_twice)
{
	char preload[2 * PATH_MAX + 32], expect[2 * PATH_MAX];
	/* space-separated, as ld.so also accepts, and the shim by its real path */
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s %s", shim_real(), CS_TEST_NOTHING);
	const char *env[] = { preload, NULL };
	const char *args[] = { "run", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	snprintf(expect, sizeof expect, "%s:%s", shim_real(), CS_TEST_NOTHING);
	cr_assert_str_eq(value(&r, "LD_PRELOAD"), expect);
	cr_assert_str_eq(value(&r, "MAPPED"), shim_real());
	proc_free(&r);
}

Test(run, another_copy_of_the_shim_is_replaced)
{
	char preload[PATH_MAX + 64];
	snprintf(preload, sizeof preload, "LD_PRELOAD=/opt/old/libcancelshim.so:%s", CS_TEST_NOTHING);
	const char *env[] = { preload, NULL };
	const char *args[] = { "run", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	char expect[2 * PATH_MAX];
	snprintf(expect, sizeof expect, "%s:%s", CS_TEST_NOTHING, shim_real());
	cr_assert_str_eq(value(&r, "LD_PRELOAD"), expect);
	cr_assert(strstr(r.err, "replacing /opt/old/libcancelshim.so"), "%s", r.err);
	proc_free(&r);
}

Test(run, cancelshim_lib_chooses_the_library)
{
	char lib[PATH_MAX + 32];
	snprintf(lib, sizeof lib, "CANCELSHIM_LIB=%s", CS_TEST_NOTHING);
	const char *env[] = { lib, NULL };
	const char *args[] = { "run", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "LD_PRELOAD"), CS_TEST_NOTHING);
	proc_free(&r);

	const char *bad[] = { "CANCELSHIM_LIB=/nonexistent/libcancelshim.so", NULL };
	ctl(args, bad, &r);
	cr_assert_eq(r.status, 2, "an explicit library that is missing is an error");
	cr_assert(strstr(r.err, "/nonexistent/libcancelshim.so") && strstr(r.err, "CANCELSHIM_LIB"),
		  "%s", r.err);
	cr_assert_str_eq(r.out, "", "the program must not run");
	proc_free(&r);
}

Test(run, the_exit_status_is_the_programs)
{
	const char *args[] = { "run", "--", CS_TEST_PROBE, "--exit", "7", NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 7);
	proc_free(&r);
}

static void assert_bad_value(const char *option, const char *bad, const char *accepted)
{
	const char *args[] = { "run", option, bad, "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 2, "%s %s: exit %d", option, bad, r.status);
	cr_assert_str_eq(r.out, "", "%s %s: the program must not run", option, bad);
	cr_assert(strstr(r.err, option), "%s %s: the message names the option: %s", option, bad, r.err);
	cr_assert(strstr(r.err, accepted), "%s %s: the message lists '%s': %s", option, bad,
		  accepted, r.err);
	proc_free(&r);
}

Test(run, bad_values_are_refused_naming_the_option_and_the_accepted_values)
{
	assert_bad_value("--mode", "fast", "auto, epoll, ebpf, off");
	assert_bad_value("--on", "close", "fin");
	assert_bad_value("--calls", "net,disk", "net, wait, file, pipe");
	assert_bad_value("--calls", "", "net, wait, file, pipe");
	assert_bad_value("--log", "loud", "error, warn, info, debug");
	assert_bad_value("--signal", "SIGKILL", "SIGRTMIN+N");
	assert_bad_value("--signal", "9", "SIGRTMAX-N");
}

Test(run, usage_errors)
{
	struct proc_result r;
	const char *none[] = { "run", NULL };
	ctl(none, NULL, &r);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "no command given"), "%s", r.err);
	proc_free(&r);
	const char *unknown[] = { "run", "--speed", "3", "--", CS_TEST_PROBE, NULL };
	ctl(unknown, NULL, &r);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--speed"), "%s", r.err);
	proc_free(&r);
	const char *missing[] = { "run", "--mode", NULL };
	ctl(missing, NULL, &r);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "missing value for '--mode'"), "%s", r.err);
	proc_free(&r);
}

Test(run, help_and_version)
{
	struct proc_result r;
	const char *help[] = { "run", "--help", NULL };
	ctl(help, NULL, &r);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: cancelctl run"), "%s", r.out);
	cr_expect(strstr(r.out, "--force") && strstr(r.out, "127") && strstr(r.out, "CANCELSHIM_LIB"),
		  "%s", r.out);
	proc_free(&r);
	const char *version[] = { "run", "--version", NULL };
	ctl(version, NULL, &r);
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.out, "cancelctl run " CS_TEST_VERSION "\n");
	proc_free(&r);
}

Test(run, command_not_found_is_127_not_executable_is_126)
{
	struct proc_result r;
	const char *missing[] = { "run", "--", "cancelctl-no-such-command", NULL };
	ctl(missing, NULL, &r);
	cr_assert_eq(r.status, 127, "%s", r.err);
	cr_assert(strstr(r.err, "cancelctl-no-such-command: command not found"), "%s", r.err);
	proc_free(&r);
	const char *file = scratch_path("not-executable");
	write_file(file, "#!/bin/sh\n", 10, 0644);
	const char *noexec[] = { "run", "--", file, NULL };
	ctl(noexec, NULL, &r);
	cr_assert_eq(r.status, 126, "%s", r.err);
	cr_assert(strstr(r.err, "not executable"), "%s", r.err);
	proc_free(&r);
}

Test(run, the_command_is_looked_up_in_path)
{
	char path[PATH_MAX + 32], dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", CS_TEST_PROBE);
	*strrchr(dir, '/') = '\0';
	snprintf(path, sizeof path, "PATH=/usr/bin:%s:/bin", dir);
	const char *env[] = { path, NULL };
	const char *args[] = { "run", "probe", NULL };
	struct proc_result r;
	ctl(args, env, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(value(&r, "MAPPED"), shim_real());
	proc_free(&r);
}

Test(run, a_static_program_is_refused_unless_forced)
{
	if (!CS_TEST_STATIC[0])
		cr_skip_test("this compiler cannot link statically");
	struct proc_result r;
	const char *args[] = { "run", "--", CS_TEST_STATIC, NULL };
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.out, "", "it must not run");
	cr_assert(strstr(r.err, "refusing") && strstr(r.err, "statically linked"), "%s", r.err);
	cr_assert(strstr(r.err, "--force"), "the message says how to override: %s", r.err);
	proc_free(&r);

	const char *forced[] = { "run", "--force", "--", CS_TEST_STATIC, NULL };
	ctl(forced, NULL, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert_str_eq(r.out, "static program ran\n");
	cr_assert(strstr(r.err, "--force"), "a warning says what was forced: %s", r.err);
	proc_free(&r);
}

Test(run, a_setuid_program_is_refused_when_the_shim_would_be_ignored)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to chown the copy");
	const char *copy = scratch_path("probe-setuid");
	copy_file(CS_TEST_PROBE, copy);
	cr_assert_eq(chown(copy, 65534, 65534), 0);
	cr_assert_eq(chmod(copy, 04755), 0);
	const char *args[] = { "run", "--", copy, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "secure-execution"), "%s", r.err);
	proc_free(&r);
}

Test(run, partial_support_is_noted_at_log_level_info)
{
	/* The Go-marked program is unsupported; the io_uring one is partial. */
	const char *args[] = { "run", "--log", "info", "--", CS_TEST_URING, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "partially supported") && strstr(r.err, "io-uring"), "%s", r.err);
	proc_free(&r);
	const char *quiet[] = { "run", "--", CS_TEST_URING, NULL };
	ctl(quiet, NULL, &r);
	cr_assert(!strstr(r.err, "cancelctl run"), "not a terminal, not info: silent: %s", r.err);
	proc_free(&r);
}

Test(run, the_shim_reports_itself_active_at_log_level_info)
{
	/* The end-to-end proof: the library loaded by `run` is the shim, alive. */
	const char *args[] = { "run", "--log", "info", "--quiet", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.err, "cancelshim[") && strstr(r.err, "info: active"),
		  "no 'info: active' line from the shim: %s", r.err);
	proc_free(&r);
}

Test(run, ports_option_becomes_cancelshim_ports_and_a_bad_list_is_refused_naming_the_variable)
{
	const char *args[] = { "run", "--ports", "8080,9000-9009,unix:/run/x.sock", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "CANCELSHIM_PORTS"), "8080,9000-9009,unix:/run/x.sock");
	proc_free(&r);

	const char *bad[] = { "run", "--ports", "80,http", "--", CS_TEST_PROBE, NULL };
	ctl(bad, NULL, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "CANCELSHIM_PORTS='80,http' is not valid") && strstr(r.err, "unix:PATH"),
		  "%s", r.err);
	proc_free(&r);
}

Test(run, profile_option_becomes_cancelshim_profile_and_a_bad_name_is_refused_naming_the_variable)
{
	const char *args[] = { "run", "--profile", "none", "--", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	cr_assert_str_eq(value(&r, "CANCELSHIM_PROFILE"), "none");
	proc_free(&r);

	const char *bad[] = { "run", "--profile", "mysql", "--", CS_TEST_PROBE, NULL };
	ctl(bad, NULL, &r);
	cr_assert_eq(r.status, 2, "%s%s", r.out, r.err);
	cr_assert(strstr(r.err, "CANCELSHIM_PROFILE='mysql' is not valid") && strstr(r.err, "postgresql"),
		  "%s", r.err);
	proc_free(&r);
}

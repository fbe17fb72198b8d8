/* `cancelctl check`: real binaries of this machine, programs this build
 * compiles (static, Go-marked, io_uring, set-user-ID copies), library layouts
 * compiled at run time (checked against the real loader), and broken files.
 * What `check` says is compared with independent oracles where one exists:
 * nm for the imports (imports_oracle.py), the loader's own trace for the
 * libraries (ldd_oracle.py). */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
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

TestSuite(check, .fini = cleanup, .timeout = 120);

/* cancelctl check --json [--lib LIB] FILE, exit status checked against the
 * verdict (0/1/2 supported/partial/unsupported, 3 error). */
static void check_json(const char *lib, const char *file, const char *const env[],
		       struct proc_result *r)
{
	const char *args[] = { "check", "--json", lib ? "--lib" : file, lib, file, NULL };
	if (!lib)
		args[3] = NULL;
	ctl(args, env, r);
	const char *verdict = json_eval(r->out, "d['verdict']");
	static const char *const by_status[] = { "supported", "partial", "unsupported", "error" };
	cr_assert(r->status >= 0 && r->status <= 3, "exit %d for %s: %s", r->status, file, r->err);
	cr_assert_str_eq(verdict, by_status[r->status], "%s: exit %d but verdict %s\n%s", file,
			 r->status, verdict, r->out);
}

static bool has_reason(const char *json, const char *code)
{
	char expr[128];
	snprintf(expr, sizeof expr, "'%s' in [x['code'] for x in d['reasons']]", code);
	return !strcmp(json_eval(json, expr), "True");
}

/* The text check gives for reason code. */
static const char *reason_text(const char *json, const char *code)
{
	char expr[160];
	snprintf(expr, sizeof expr, "[x['text'] for x in d['reasons'] if x['code'] == '%s'][0]", code);
	return json_eval(json, expr);
}

/* check_json, then its exit status and, unless NULL, one of its reasons. */
static void expect_verdict(const char *lib, const char *file, const char *const env[], int status,
			   const char *reason, struct proc_result *r)
{
	check_json(lib, file, env, r);
	cr_assert_eq(r->status, status, "%s: exit %d, not %d\n%s%s", file, r->status, status, r->out, r->err);
	if (reason)
		cr_assert(has_reason(r->out, reason), "no reason %s:\n%s", reason, r->out);
}

/* The imports, as "name:from1,from2 name2:from..." sorted by name. */
static const char *imports_of(const char *json)
{
	return json_eval(json, "' '.join(i['name'] + ':' + ','.join(sorted(i['from'])) "
			       "for i in d['imports'])");
}

static void assert_oracle_imports(const char *json)
{
	char *why = NULL;
	const char *args[] = { getenv("CS_SHIM"), NULL };
	cr_expect(run_oracle("imports_oracle.py", args, json, NULL, &why),
		  "imports differ from nm's: %s", why);
	free(why);
}

static void assert_oracle_libraries(const char *json, const char *const env[])
{
	char *why = NULL;
	cr_expect(run_oracle("ldd_oracle.py", NULL, json, env, &why),
		  "libraries differ from the loader's: %s", why);
	free(why);
}

/* A real program is supported or partial; partial always says why. */
static void assert_usable_real_program(const char *path)
{
	struct proc_result r;
	check_json(NULL, path, NULL, &r);
	cr_assert(r.status == 0 || r.status == 1, "%s: exit %d\n%s%s", path, r.status, r.out, r.err);
	if (r.status == 1)
		cr_assert_str_eq(json_eval(r.out, "any(x['level'] == 'partial' for x in d['reasons'])"),
				 "True", "partial without a partial reason: %s", r.out);
	cr_assert_str_eq(json_eval(r.out, "d['interpreter']"), "/lib64/ld-linux-x86-64.so.2");
	cr_assert_str_eq(json_eval(r.out, "'libc.so.6' in [l['name'] for l in d['libraries']]"),
			 "True", "%s", r.out);
	assert_oracle_imports(r.out);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);
}

Test(check, python3_with_the_real_shim)
{
	assert_usable_real_program("/usr/bin/python3");
}

Test(check, bin_sh_with_the_real_shim)
{
	assert_usable_real_program("/bin/sh");
}

Test(check, nginx_with_the_real_shim)
{
	if (access("/usr/sbin/nginx", X_OK) != 0)
		cr_skip_test("nginx is not installed");
	assert_usable_real_program("/usr/sbin/nginx");
}

/* With a library exporting a known set (read, recv, accept, accept4; a hidden
 * connect), what python3 imports is known from its dynamic symbol table. */
Test(check, python3_imports_what_the_library_exports)
{
	struct proc_result r;
	check_json(CS_TEST_FAKESHIM, "/usr/bin/python3", NULL, &r);
	cr_assert_eq(r.status, 0, "expected supported: %s", r.out);
	cr_assert_str_eq(json_eval(r.out, "d['shim']['interposed']"), "4");
	const char *imports = imports_of(r.out);
	cr_expect(strstr(imports, "accept:python3"), "%s", imports);
	cr_expect(strstr(imports, "accept4:python3"), "%s", imports);
	cr_expect(strstr(imports, "recv:python3"), "%s", imports);
	cr_expect(strstr(imports, "read:") && strstr(imports, "python3"), "%s", imports);
	cr_expect(!strstr(imports, "connect"), "a hidden symbol is not interposed: %s", imports);
	proc_free(&r);
}

Test(check, nginx_imports_accept4_and_reads)
{
	if (access("/usr/sbin/nginx", X_OK) != 0)
		cr_skip_test("nginx is not installed");
	struct proc_result r;
	check_json(CS_TEST_FAKESHIM, "/usr/sbin/nginx", NULL, &r);
	cr_assert(r.status == 0 || r.status == 1, "%s", r.out);
	const char *imports = imports_of(r.out);
	cr_expect(strstr(imports, "accept4:") && strstr(imports, "recv:"), "%s", imports);
	proc_free(&r);
}

Test(check, text_output_is_for_people)
{
	const char *args[] = { "check", "--lib", CS_TEST_FAKESHIM, CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
	char first[PATH_MAX + 32];
	snprintf(first, sizeof first, "%s: supported\n", CS_TEST_PROBE);
	cr_assert(!strncmp(r.out, first, strlen(first)), "%s", r.out);
	cr_expect(strstr(r.out, "imports 3 of the 4 interposed calls:"), "%s", r.out);
	cr_expect(strstr(r.out, "    recv (probe)"), "%s", r.out);
	proc_free(&r);
}

Test(check, a_dynamic_program_calling_read_and_recv)
{
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, CS_TEST_PROBE, NULL, 0, NULL, &r);
	cr_assert_str_eq(imports_of(r.out), "accept:probe read:probe recv:probe");
	cr_assert_str_eq(json_eval(r.out, "d['kind']"), "pie-executable");
	cr_assert_str_eq(json_eval(r.out, "d['go'], d['io_uring'], d['secure_execution']"),
			 "(None, False, False)");
	proc_free(&r);
	check_json(NULL, CS_TEST_PROBE, NULL, &r);
	assert_oracle_imports(r.out);
	proc_free(&r);
}

Test(check, a_library_that_interposes_nothing_the_program_calls)
{
	struct proc_result r;
	expect_verdict(CS_TEST_NOTHING, CS_TEST_PROBE, NULL, 1, "no-interposed-calls", &r);
	proc_free(&r);
}

Test(check, lib_that_does_not_exist_is_a_usage_error)
{
	const char *args[] = { "check", "--lib", "/nonexistent/libcancelshim.so", CS_TEST_PROBE, NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 4);
	cr_assert(strstr(r.err, "/nonexistent/libcancelshim.so"), "%s", r.err);
	proc_free(&r);
}

Test(check, statically_linked_is_unsupported)
{
	if (!CS_TEST_STATIC[0])
		cr_skip_test("this compiler cannot link statically");
	struct proc_result r;
	expect_verdict(NULL, CS_TEST_STATIC, NULL, 2, "static", &r);
	cr_assert_str_eq(json_eval(r.out, "d['kind']"), "static-executable");
	cr_assert_str_eq(json_eval(r.out, "d['interpreter']"), "None");
	proc_free(&r);
}

Test(check, static_pie_is_unsupported)
{
	const char *src = CS_TEST_SOURCE_DIR "/progs/static_prog.c";
	const char *exe = scratch_path("static-pie");
	const char *args[] = { "-static-pie", "-o", exe, src, NULL };
	compile(args);
	struct proc_result r;
	expect_verdict(NULL, exe, NULL, 2, "static", &r);
	cr_assert_str_eq(json_eval(r.out, "d['kind']"), "static-pie-executable");
	proc_free(&r);
}

Test(check, go_binary_is_unsupported)
{
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, CS_TEST_GO, NULL, 2, "go", &r);
	cr_assert_str_eq(json_eval(r.out, "d['go']"), ".go.buildinfo");
	cr_assert(strstr(reason_text(r.out, "go"), "system calls itself"), "%s", r.out);
	proc_free(&r);
}

Test(check, io_uring_is_partial)
{
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, CS_TEST_URING, NULL, 1, "io-uring", &r);
	cr_assert_str_eq(json_eval(r.out, "d['io_uring']"), "True");
	cr_assert(strstr(reason_text(r.out, "io-uring"), "io_uring_setup"), "%s", r.out);
	proc_free(&r);
}

/* Needs root to hand the copy to another user. */
static const char *setid_copy(const char *name, uid_t uid, gid_t gid, mode_t bits)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to chown the copy");
	const char *copy = scratch_path(name);
	copy_file(CS_TEST_PROBE, copy);
	cr_assert_eq(chown(copy, uid, gid), 0, "chown: %s", strerror(errno));
	cr_assert_eq(chmod(copy, 0755 | bits), 0);
	struct stat st;
	cr_assert_eq(stat(copy, &st), 0);
	cr_assert(st.st_mode & bits, "the file system dropped the bits");
	return copy;
}

/* A set-id copy that makes the loader ignore the shim: unsupported, with its
 * reason. Skipped where the mount ignores the bits. */
static void expect_secure_exec(const char *copy, struct proc_result *r)
{
	check_json(CS_TEST_FAKESHIM, copy, NULL, r);
	if (!strcmp(json_eval(r->out, "d['nosuid_mount']"), "True"))
		cr_skip_test("the build tree is on a nosuid mount");
	cr_assert_eq(r->status, 2, "%s", r->out);
	cr_assert(has_reason(r->out, "secure-exec"), "%s", r->out);
}

Test(check, setuid_to_another_user_is_unsupported)
{
	const char *copy = setid_copy("probe-setuid-nobody", 65534, 0, S_ISUID);
	struct proc_result r;
	expect_secure_exec(copy, &r);
	cr_assert_str_eq(json_eval(r.out, "d['setuid'], d['secure_execution'], d['owner']['uid']"),
			 "(True, True, 65534)");
	const char *text = reason_text(r.out, "secure-exec");
	cr_expect(strstr(text, "secure-execution mode"), "%s", text);
	cr_expect(strstr(text, "ignores every LD_PRELOAD entry containing a slash"), "%s", text);
	cr_expect(strstr(text, "run it as nobody"), "%s", text);
	proc_free(&r);
}

Test(check, setgid_to_another_group_is_unsupported)
{
	const char *copy = setid_copy("probe-setgid", 0, 65534, S_ISGID);
	struct proc_result r;
	expect_secure_exec(copy, &r);
	cr_assert_str_eq(json_eval(r.out, "d['setgid'], d['secure_execution']"), "(True, True)");
	proc_free(&r);
}

Test(check, setuid_to_yourself_is_partial)
{
	const char *copy = setid_copy("probe-setuid-root", 0, 0, S_ISUID);
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, copy, NULL, 1, "secure-exec-others", &r);
	cr_assert_str_eq(json_eval(r.out, "d['setuid'], d['secure_execution']"), "(True, False)");
	proc_free(&r);
}

Test(check, a_script_is_checked_through_its_interpreter)
{
	const char *script = scratch_path("script");
	char text[PATH_MAX + 64];
	int n = snprintf(text, sizeof text, "#!%s --flag\necho hi\n", CS_TEST_PROBE);
	write_file(script, text, (size_t)n, 0755);
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, script, NULL, 0, NULL, &r);
	cr_assert_str_eq(json_eval(r.out, "d['path']"), CS_TEST_PROBE);
	char expr[PATH_MAX + 64];
	snprintf(expr, sizeof expr, "d['scripts'] == ['%s']", script);
	cr_assert_str_eq(json_eval(r.out, expr), "True", "%s", r.out);
	proc_free(&r);
}

Test(check, env_in_a_script_is_followed_through_path)
{
	const char *script = scratch_path("env-script");
	static const char text[] = "#!/usr/bin/env probe\n";
	write_file(script, text, sizeof text - 1, 0755);
	char path_env[PATH_MAX + 64], dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", CS_TEST_PROBE);
	*strrchr(dir, '/') = '\0';
	snprintf(path_env, sizeof path_env, "PATH=%s:/usr/bin:/bin", dir);
	const char *env[] = { path_env, NULL };
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, script, env, 0, NULL, &r);
	cr_assert_str_eq(json_eval(r.out, "d['path']"), CS_TEST_PROBE);
	cr_assert_str_eq(json_eval(r.out, "d['scripts'][1]"), "/usr/bin/env");
	proc_free(&r);
}

/* ---- broken files: never a crash, never a hang, always exit 3 ---------------- */

static void assert_unreadable(const char *path, const char *why)
{
	struct proc_result r;
	const char *args[] = { "check", path, NULL };
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 3, "%s: exit %d\n%s%s", path, r.status, r.out, r.err);
	cr_assert(strstr(r.err, why), "%s: expected '%s' in: %s", path, why, r.err);
	proc_free(&r);
	check_json(NULL, path, NULL, &r);	/* JSON too, and it parses */
	cr_assert(strstr(json_eval(r.out, "d['error']"), why), "%s", r.out);
	proc_free(&r);
}

Test(check, truncated_elf_files)
{
	FILE *f = fopen(CS_TEST_PROBE, "rb");
	cr_assert(f);
	static char buf[1 << 20];
	size_t size = fread(buf, 1, sizeof buf, f);
	fclose(f);
	/* cut inside the ELF header, the program headers, the code, the section headers */
	size_t cuts[] = { 10, 63, 64, 200, size / 2, size - 1 };
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		const char *path = scratch_path("truncated");
		write_file(path, buf, cuts[i], 0755);
		assert_unreadable(path, cuts[i] < 64 ? "ELF" : "truncated");
	}
}

/* e_phnum == PN_XNUM (0xffff): the real count is in section 0's sh_info.
 * Read as "no program headers", a PIE looked like a static-pie executable. */
static void set_u16(char *b, size_t off, uint16_t v) { memcpy(b + off, &v, sizeof v); }
static void set_u32(char *b, size_t off, uint32_t v) { memcpy(b + off, &v, sizeof v); }

Test(check, extended_program_header_count)
{
	FILE *f = fopen(CS_TEST_PROBE, "rb");
	cr_assert(f);
	static char buf[1 << 20];
	size_t size = fread(buf, 1, sizeof buf, f);
	fclose(f);
	uint16_t phnum;
	uint64_t shoff;
	memcpy(&phnum, buf + 0x38, sizeof phnum);	/* e_phnum */
	memcpy(&shoff, buf + 0x28, sizeof shoff);	/* e_shoff */
	cr_assert(shoff && shoff + 64 <= size, "the probe has section headers");
	set_u16(buf, 0x38, 0xffff);

	/* The count where it belongs: read, and the program is what it was. */
	set_u32(buf, shoff + 44, phnum);	/* section 0's sh_info */
	const char *path = scratch_path("xnum");
	write_file(path, buf, size, 0755);
	struct proc_result r;
	check_json(CS_TEST_FAKESHIM, path, NULL, &r);
	cr_assert_str_eq(json_eval(r.out, "d['kind']"), "pie-executable", "%s", r.out);
	proc_free(&r);

	/* No count in section 0: corrupt, not a static-pie executable. */
	set_u32(buf, shoff + 44, 0);
	path = scratch_path("xnum-none");
	write_file(path, buf, size, 0755);
	assert_unreadable(path, "PN_XNUM");

	/* No section headers at all. */
	memset(buf + 0x28, 0, 8);
	set_u16(buf, 0x3c, 0);
	set_u16(buf, 0x3e, 0);
	path = scratch_path("xnum-nosections");
	write_file(path, buf, size, 0755);
	assert_unreadable(path, "PN_XNUM");
}

Test(check, garbage_empty_and_odd_files)
{
	static unsigned char garbage[4096];
	unsigned seed = 12345;
	for (size_t i = 0; i < sizeof garbage; i++)
		garbage[i] = (unsigned char)((seed = seed * 1103515245 + 12345) >> 16);
	write_file(scratch_path("garbage"), garbage, sizeof garbage, 0755);
	assert_unreadable(scratch_path("garbage"), "not an ELF file");
	write_file(scratch_path("empty"), "", 0, 0755);
	assert_unreadable(scratch_path("empty"), "not an ELF file");
	/* an ELF magic and nothing sensible behind it */
	memcpy(garbage, "\177ELF\2\1\1", 7);
	write_file(scratch_path("elf-garbage"), garbage, sizeof garbage, 0755);
	struct proc_result r;
	check_json(NULL, scratch_path("elf-garbage"), NULL, &r);	/* asserts no crash */
	proc_free(&r);
	assert_unreadable(scratch_dir(), "not a regular file");
	assert_unreadable("/nonexistent/program", "No such file");
}

Test(check, a_fifo_does_not_hang)
{
	const char *fifo = scratch_path("fifo");
	cr_assert_eq(mkfifo(fifo, 0755), 0);
	assert_unreadable(fifo, "not a regular file");	/* ctl() asserts the deadline */
}

/* ---- libraries, found as ld.so finds them ---------------------------------- */

/* <scratch>/lib/libcsdep.so (imports recv), <scratch>/lib/libcsneeded.so
 * (needs libcsdep.so, with `needed_flags`), <scratch>/bin/prog (needs
 * libcsneeded.so, with `prog_flags`). */
static const char *layout(const char *prog_flags, const char *needed_flags)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s/lib", scratch_dir());
	mkdir(dir, 0755);
	snprintf(dir, sizeof dir, "%s/bin", scratch_dir());
	mkdir(dir, 0755);
	char L[PATH_MAX + 2], rpath_link[PATH_MAX + 32];
	snprintf(L, sizeof L, "-L%s/lib", scratch_dir());
	/* lets the link of prog find libcsdep.so without recording where */
	snprintf(rpath_link, sizeof rpath_link, "-Wl,-rpath-link,%s/lib", scratch_dir());
	const char *dep[] = { "-shared", "-fPIC", "-o", scratch_path("lib/libcsdep.so"),
			      CS_TEST_SOURCE_DIR "/progs/lib_dep.c", NULL };
	compile(dep);
	const char *needed[] = { "-shared", "-fPIC", "-o", scratch_path("lib/libcsneeded.so"),
				 CS_TEST_SOURCE_DIR "/progs/lib_needed.c", L, "-lcsdep",
				 needed_flags[0] ? needed_flags : "-Wl,--as-needed", NULL };
	compile(needed);
	const char *prog[] = { "-o", scratch_path("bin/prog"), CS_TEST_SOURCE_DIR "/progs/prog_needs.c",
			       L, "-lcsneeded", rpath_link, prog_flags[0] ? prog_flags : "-Wl,--as-needed",
			       NULL };
	compile(prog);
	return scratch_path("bin/prog");
}

static const char *lib_path(const char *json, const char *name)
{
	char expr[256];
	snprintf(expr, sizeof expr, "[l['path'] for l in d['libraries'] if l['name'] == '%s']", name);
	return json_eval(json, expr);
}

Test(check, rpath_with_origin_is_inherited_by_libraries)
{
	/* DT_RPATH (old tags) of the program serves its libraries' needs too. */
	const char *prog = layout("-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib", "");
	struct proc_result r;
	check_json(CS_TEST_FAKESHIM, prog, NULL, &r);
	char expect[PATH_MAX * 2];
	snprintf(expect, sizeof expect, "['%s/bin/../lib/libcsdep.so']", scratch_dir());
	cr_assert_str_eq(lib_path(r.out, "libcsdep.so"), expect, "%s", r.out);
	cr_assert(strstr(imports_of(r.out), "recv:libcsdep.so"), "transitive import: %s", r.out);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);
}

Test(check, runpath_serves_only_direct_needs)
{
	/* DT_RUNPATH of the program does not serve libcsneeded.so's need for
	 * libcsdep.so: ld.so would not find it, nor must check. */
	const char *prog = layout("-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib", "");
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, prog, NULL, 1, "missing-library", &r);
	cr_assert_str_eq(lib_path(r.out, "libcsdep.so"), "[None]", "%s", r.out);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);
}

Test(check, runpath_of_each_library_with_origin)
{
	const char *prog = layout("-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib",
				  "-Wl,--enable-new-dtags,-rpath,${ORIGIN}");
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, prog, NULL, 0, NULL, &r);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);
}

Test(check, ld_library_path_is_searched)
{
	const char *prog = layout("", "");
	struct proc_result r;
	check_json(CS_TEST_FAKESHIM, prog, NULL, &r);
	cr_assert_eq(r.status, 1, "without LD_LIBRARY_PATH nothing is found: %s", r.out);
	cr_assert(has_reason(r.out, "missing-library"), "%s", r.out);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);

	char llp[PATH_MAX + 32];
	snprintf(llp, sizeof llp, "LD_LIBRARY_PATH=/nonexistent:%s/lib", scratch_dir());
	const char *env[] = { llp, NULL };
	expect_verdict(CS_TEST_FAKESHIM, prog, env, 0, NULL, &r);
	assert_oracle_libraries(r.out, env);
	proc_free(&r);
}

Test(check, a_missing_library_is_reported)
{
	const char *prog = layout("-Wl,--disable-new-dtags,-rpath,$ORIGIN/../lib", "");
	unlink(scratch_path("lib/libcsdep.so"));
	struct proc_result r;
	expect_verdict(CS_TEST_FAKESHIM, prog, NULL, 1, NULL, &r);
	const char *text = reason_text(r.out, "missing-library");
	cr_assert(strstr(text, "libcsdep.so (needed by libcsneeded.so)"), "%s", text);
	assert_oracle_libraries(r.out, NULL);
	proc_free(&r);
}

Test(check, help_documents_exit_status_and_json)
{
	const char *args[] = { "check", "--help", NULL };
	struct proc_result r;
	ctl(args, NULL, &r);
	cr_assert_eq(r.status, 0);
	cr_expect(strstr(r.out, "0 supported    1 partial    2 unsupported"), "%s", r.out);
	cr_expect(strstr(r.out, "3 BINARY could not be read"), "%s", r.out);
	cr_expect(strstr(r.out, "secure_execution"), "%s", r.out);
	proc_free(&r);
	const char *bad[] = { "check", "--frobnicate", "x", NULL };
	ctl(bad, NULL, &r);
	cr_assert_eq(r.status, 4);
	cr_assert(strstr(r.err, "--frobnicate"), "%s", r.err);
	proc_free(&r);
}

/* What check cannot see: libraries loaded at run time. A PHP extension is
 * loaded with RTLD_DEEPBIND: covered only by the shim's dlopen hook, which
 * the real library has and the stand-in lacks. */
Test(check, php_extension_is_covered_by_the_dlopen_hook)
{
	const char *ext = "/usr/lib/php/20220829/sockets.so";
	if (access(ext, R_OK) != 0)
		cr_skip_test("php's sockets.so is not installed");
	struct proc_result r;
	check_json(NULL, ext, NULL, &r);
	cr_assert(has_reason(r.out, "php-extension"), "%s", r.out);
	cr_assert_eq(r.status, 0, "with the hook a PHP extension is supported: %s", r.out);
	cr_expect(strstr(reason_text(r.out, "php-extension"), "dlopen hook"), "%s", r.out);
	proc_free(&r);

	check_json(CS_TEST_FAKESHIM, ext, NULL, &r);
	cr_assert(has_reason(r.out, "php-extension"), "%s", r.out);
	cr_assert_eq(r.status, 1, "without a dlopen hook a PHP extension's calls bypass the shim: %s", r.out);
	proc_free(&r);
}

Test(check, dlopen_callers_are_told_what_is_not_checked)
{
	struct proc_result r;
	check_json(NULL, "/usr/bin/python3", NULL, &r);
	cr_assert(has_reason(r.out, "dlopen"), "%s", r.out);
	cr_expect(strstr(reason_text(r.out, "dlopen"), "RTLD_DEEPBIND"), "%s", r.out);
	cr_expect(!has_reason(r.out, "php-extension") && !has_reason(r.out, "deepbind-library"), "%s", r.out);
	proc_free(&r);
}

/* The analysis in-process, without cancelctl: the ld.so.cache reader against
 * `ldconfig -p` for every library on this machine, the in-memory ELF
 * analysis on the fuzzer's seed files, and a quick deterministic mutation
 * run (the real fuzzing is tests/fuzz/run-fuzz). */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_analysis.h"
#include "check_elf.h"
#include "check_ldsearch.h"
#include "proc.h"

TestSuite(analysis, .timeout = 120);

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert(f, "open %s", path);
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

Test(analysis, ld_cache_lookup_agrees_with_ldconfig)
{
	size_t len;
	char *cache = slurp("/etc/ld.so.cache", &len);
	const char *argv[] = { "/sbin/ldconfig", "-p", NULL };
	struct proc_result r;
	proc_run(argv, proc_env(NULL), 30000, &r);
	cr_assert_eq(r.status, 0, "%s", r.err);
	/* "\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1": the
	 * first baseline (not hwcap) x86-64 line of each name is what ld.so takes. */
	int compared = 0;
	char seen[1 << 16] = " ";
	for (char *save, *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[256], flags[256], path[PATH_MAX];
		if (sscanf(line, " %255s (%255[^)]) => %4095s", name, flags, path) != 3)
			continue;
		if (strncmp(flags, "libc6,x86-64", 12) || strstr(flags, "hwcap"))
			continue;
		char key[260];
		snprintf(key, sizeof key, " %s ", name);
		if (strstr(seen, key))
			continue;
		if (strlen(seen) + strlen(key) < sizeof seen)
			strcat(seen, key + 1);
		char found[PATH_MAX];
		cr_assert(ld_cache_lookup(cache, len, name, found, sizeof found), "%s not found", name);
		cr_expect_str_eq(found, path, "%s", name);
		compared++;
	}
	cr_assert_gt(compared, 20, "only %d libraries compared", compared);
	char found[PATH_MAX];
	cr_assert(!ld_cache_lookup(cache, len, "libcancelctl-none.so.9", found, sizeof found));
	proc_free(&r);
	free(cache);
}

Test(analysis, ld_cache_lookup_never_reads_past_a_cut)
{
	size_t len;
	char *cache = slurp("/etc/ld.so.cache", &len);
	char found[PATH_MAX];
	for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
		char *copy = malloc(cut ? cut : 1);	/* exact size: ASan/valgrind see overreads */
		memcpy(copy, cache, cut);
		ld_cache_lookup(copy, cut, "libc.so.6", found, sizeof found);
		free(copy);
	}
	cr_assert(ld_cache_lookup(cache, len, "libc.so.6", found, sizeof found));
	free(cache);
}

Test(analysis, the_seed_cache_prefers_the_baseline_and_the_right_arch)
{
	size_t len;
	char *cache = slurp(CS_TEST_SOURCE_ROOT "/tests/fuzz/corpus/ld.so.cache", &len);
	char found[PATH_MAX];
	cr_assert(ld_cache_lookup(cache, len, "libc.so.6", found, sizeof found));
	cr_assert_str_eq(found, "/lib/x86_64-linux-gnu/libc.so.6");
	cr_assert(!ld_cache_lookup(cache, len, "libz.so.1", found, sizeof found),
		  "a 32-bit entry is not for us");
	free(cache);
}

static struct strlist interposed(void)
{
	struct strlist s = { 0 };
	strlist_add(&s, "read", 16);
	strlist_add(&s, "recv", 16);
	strlist_add(&s, "accept", 16);
	strlist_sort_unique(&s);
	return s;
}

static int analyze_seed(const char *name, struct check_report *r)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", CS_TEST_SOURCE_ROOT, name);
	size_t len;
	char *buf = slurp(path, &len);
	struct strlist want = interposed();
	struct check_options opt = { .interposed = &want, .shim_path = "x" };
	int rc = check_analyze_memory(buf, len, &opt, r);
	strlist_free(&want);
	free(buf);
	return rc;
}

Test(analysis, seeds_in_memory)
{
	struct check_report r;
	cr_assert_eq(analyze_seed("dynamic", &r), 0);
	cr_assert_eq(r.n_imports, 3);
	cr_assert_str_eq(r.imports[0].name, "accept");
	check_report_free(&r);

	cr_assert_eq(analyze_seed("static", &r), 2);
	cr_assert_str_eq(r.reasons[0].code, "static");
	check_report_free(&r);

	cr_assert_eq(analyze_seed("static-pie", &r), 2);
	cr_assert_str_eq(r.kind, "static-pie-executable");
	check_report_free(&r);

	cr_assert_eq(analyze_seed("go-marker", &r), 2);
	cr_assert_str_eq(r.go_marker, ".go.buildinfo");
	check_report_free(&r);

	cr_assert_eq(analyze_seed("io-uring", &r), 1);
	cr_assert(r.io_uring);
	check_report_free(&r);

	cr_assert_eq(analyze_seed("dynamic-truncated", &r), 3);
	cr_assert(!r.readable && strstr(r.error, "truncated"), "%s", r.error);
	check_report_free(&r);

	cr_assert_eq(analyze_seed("ld.so.cache", &r), 3);
	check_report_free(&r);
}

Test(analysis, exports_of_a_library)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/tests/fuzz/corpus/shared-lib", CS_TEST_SOURCE_ROOT);
	size_t len;
	char *buf = slurp(path, &len);
	struct elf_object o;
	cr_assert_eq(elf_object_scan_memory(buf, len, NULL, ELF_SCAN_EXPORTS, &o), 0);
	strlist_sort_unique(&o.exports);
	cr_assert_eq(o.exports.n, 2);
	cr_assert_str_eq(o.exports.v[0], "accept");
	cr_assert_str_eq(o.exports.v[1], "read");
	cr_assert_str_eq(o.runpath ? o.runpath : o.rpath, "$ORIGIN/../lib");
	elf_object_free(&o);
	free(buf);
}

/* Deterministic mutations of a real program: every run must return. */
Test(analysis, mutated_programs_never_crash)
{
	size_t len;
	char *orig = slurp(CS_TEST_PROBE, &len);
	char *buf = malloc(len);
	struct strlist want = interposed();
	struct check_options opt = { .interposed = &want };
	unsigned seed = 1;
	for (int round = 0; round < 3000; round++) {
		memcpy(buf, orig, len);
		int flips = 1 + round % 8;
		for (int i = 0; i < flips; i++) {
			seed = seed * 1103515245 + 12345;
			/* mostly the headers and tables, where the pointers are */
			size_t at = (seed >> 8) % (round % 2 ? 4096 < len ? 4096 : len : len);
			buf[at] = (char)(seed >> 24);
		}
		struct check_report r;
		int rc = check_analyze_memory(buf, len - (round % 3 ? 0 : (seed >> 4) % len), &opt, &r);
		cr_assert(rc >= 0 && rc <= 3);
		check_report_free(&r);
	}
	strlist_free(&want);
	free(buf);
	free(orig);
}

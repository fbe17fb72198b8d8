/* libFuzzer target for everything in `cancelctl check` that reads untrusted
 * bytes: the ELF analysis (as a program and as a would-be shim), the
 * ld.so.cache reader, and the printers that escape what the file contains.
 * Built by run-fuzz with clang; replay.c drives the same function from a
 * plain main() so the meson test replays the corpus with gcc. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_analysis.h"
#include "check_elf.h"
#include "check_ldsearch.h"
#include "check_print.h"

/* A stand-in for the shim's exports: the analysis only needs a sorted set. */
static const struct strlist *interposed(void)
{
	static struct strlist set;
	static const char *const names[] = {
		"accept", "accept4", "read", "recv", "recvfrom", "send", "write",
		"poll", "epoll_wait", "nanosleep", "connect", "close", "__read_chk",
	};
	if (!set.n) {
		for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
			strlist_add(&set, names[i], 64);
		strlist_sort_unique(&set);
	}
	return &set;
}

static FILE *sink(void)
{
	static FILE *f;
	if (!f)
		f = fopen("/dev/null", "w");
	return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct check_options opt = {
		.interposed = interposed(),
		.shim_path = "libcancelshim.so",
	};
	struct check_report r;
	check_analyze_memory(data, size, &opt, &r);
	if (sink()) {
		check_print_text(sink(), "input", &r);
		check_print_json(sink(), "input", &r);
	}
	check_report_free(&r);

	struct elf_object o;
	elf_object_scan_memory(data, size, NULL, ELF_SCAN_EXPORTS, &o);
	elf_object_free(&o);

	char path[PATH_MAX];
	ld_cache_lookup(data, size, "libc.so.6", path, sizeof path);
	return 0;
}

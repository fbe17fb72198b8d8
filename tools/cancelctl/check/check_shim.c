/* See check_shim.h. */
#include "check_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_elf.h"

#ifndef CS_INSTALLED_LIB
#define CS_INSTALLED_LIB "/usr/local/lib/libcancelshim.so"
#endif

const char shim_locate_help[] =
	"The library is the first of:\n"
	"  1. --lib PATH\n"
	"  2. $CANCELSHIM_LIB\n"
	"  3. ../shim/libcancelshim.so next to this cancelctl (a build tree)\n"
	"  4. " CS_INSTALLED_LIB " (the installed one)\n"
	"An explicit choice beats a guess, and a build tree's own library beats an\n"
	"installed one; an explicit choice (1, 2) that does not exist is an error.\n";

static bool is_regular(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int take(const char *path, const char *source, struct shim_location *loc,
		char *err, size_t errsz)
{
	char *abs = realpath(path, NULL);
	if (!abs || !is_regular(abs) || strlen(abs) >= sizeof loc->path) {
		snprintf(err, errsz, "%s: %s (from %s)", path,
			 abs ? "not a regular file" : strerror(errno), source);
		free(abs);
		return -1;
	}
	strcpy(loc->path, abs);
	loc->source = source;
	free(abs);
	return 0;
}

int shim_locate(const char *option, struct shim_location *loc, char *err, size_t errsz)
{
	if (option)
		return take(option, "--lib", loc, err, errsz);
	const char *env = getenv("CANCELSHIM_LIB");
	if (env && *env)
		return take(env, "CANCELSHIM_LIB", loc, err, errsz);

	char exe[PATH_MAX];
	char build[PATH_MAX + 32] = "";
	if (realpath("/proc/self/exe", exe)) {
		snprintf(build, sizeof build, "%s/../shim/libcancelshim.so", dirname(exe));
		if (is_regular(build))
			return take(build, "build tree", loc, err, errsz);
	}
	if (is_regular(CS_INSTALLED_LIB))
		return take(CS_INSTALLED_LIB, "installed", loc, err, errsz);
	snprintf(err, errsz, "libcancelshim.so not found (looked at %s%s%s); "
		 "set CANCELSHIM_LIB or pass --lib PATH",
		 build[0] ? build : "", build[0] ? " and " : "", CS_INSTALLED_LIB);
	return -1;
}

int shim_read_exports(const char *path, struct strlist *exports, char *err, size_t errsz)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct elf_object o;
	int rc = elf_object_scan_fd(fd, NULL, ELF_SCAN_EXPORTS, &o);
	close(fd);
	if (rc != 0 || !o.has_dynsym) {
		snprintf(err, errsz, "%s: %s", path,
			 o.error[0] ? o.error : "no dynamic symbol table");
		elf_object_free(&o);
		return -1;
	}
	if (o.exports.n == 0) {
		snprintf(err, errsz, "%s exports no functions: not a libcancelshim.so, or an "
			 "unfinished build", path);
		elf_object_free(&o);
		return -1;
	}
	*exports = o.exports;	/* hand the list over */
	o.exports = (struct strlist){ 0 };
	elf_object_free(&o);
	strlist_sort_unique(exports);
	return 0;
}

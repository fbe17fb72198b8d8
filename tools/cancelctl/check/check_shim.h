/* Finding libcancelshim.so, and the calls it interposes: its exported
 * functions, read from the library itself so there is one source of truth.
 * `run` and `check` share both. */
#ifndef CANCELCTL_CHECK_SHIM_H
#define CANCELCTL_CHECK_SHIM_H

#include <limits.h>
#include <stddef.h>

#include "check_strlist.h"

struct shim_location {
	char path[PATH_MAX];   /* absolute, canonical */
	const char *source;    /* "--lib", "CANCELSHIM_LIB", "build tree", "installed" */
};

/* Precedence: an explicit choice beats a guess, and a build tree's own
 * library beats an installed one:
 *   1. `option` (--lib PATH), if not NULL;
 *   2. $CANCELSHIM_LIB, if set and not empty;
 *   3. dirname(realpath(/proc/self/exe))/../shim/libcancelshim.so;
 *   4. CS_INSTALLED_LIB.
 * An explicit choice (1, 2) that does not exist is an error, not a reason to
 * fall back. Returns 0, or -1 with err saying what was tried. */
int shim_locate(const char *option, struct shim_location *loc, char *err, size_t errsz);

/* The exported functions of the library at path, sorted (strlist_has works).
 * Returns 0, or -1 with err. */
int shim_read_exports(const char *path, struct strlist *exports, char *err, size_t errsz);

/* The text for --help describing the precedence above. */
extern const char shim_locate_help[];

#endif

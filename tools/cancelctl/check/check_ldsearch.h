/* Where the dynamic loader finds a DT_NEEDED library, the way glibc's ld.so
 * does it (ld.so(8), "Dynamically linked programs"):
 *   1. a name with a slash is a path;
 *   2. DT_RPATH of the object and of each object up its loader chain, unless
 *      the object has DT_RUNPATH;
 *   3. LD_LIBRARY_PATH;
 *   4. DT_RUNPATH of the object itself;
 *   5. /etc/ld.so.cache;
 *   6. the default directories;
 * with $ORIGIN, $LIB and $PLATFORM expanded in 2 and 4, and 5-6 skipped for
 * an object linked with -z nodefaultlib. A candidate of the wrong ELF class
 * or machine is skipped, as ld.so does. */
#ifndef CANCELCTL_CHECK_LDSEARCH_H
#define CANCELCTL_CHECK_LDSEARCH_H

#include <stdbool.h>
#include <stddef.h>

/* The object whose DT_NEEDED is being resolved, then the one that loaded it,
 * and so on up to the program. */
struct ld_requester {
	const char *dir;      /* directory of the object: $ORIGIN */
	const char *rpath;    /* DT_RPATH or NULL */
	const char *runpath;  /* DT_RUNPATH or NULL */
	bool nodeflib;
	const struct ld_requester *loader;
};

struct ld_search {
	const char *library_path;   /* LD_LIBRARY_PATH, NULL to ignore */
	const char *cache_path;     /* "/etc/ld.so.cache", NULL to skip */
	char *cache;                /* its content, read on first use */
	size_t cache_len;
	bool cache_tried;
};

/* Called with each existing candidate in search order; returns true to take
 * it (right class and machine), false to keep looking. */
typedef bool (*ld_accept_fn)(const char *path, void *arg);

/* True if found; out then holds the path (not canonicalised, like ld.so). */
bool ld_search_find(struct ld_search *s, const char *name, const struct ld_requester *req,
		    ld_accept_fn accept, void *arg, char *out, size_t outsz);
void ld_search_free(struct ld_search *s);

/* The x86-64 libc6 entry for `name` in an ld.so.cache image (the format
 * "glibc-ld.so.cache1.1", optionally after the old "ld.so-1.7.0" table).
 * Bounds-checked: the image is read as untrusted. */
bool ld_cache_lookup(const void *image, size_t len, const char *name, char *out, size_t outsz);

#endif

/* See check_ldsearch.h. */
#include "check_ldsearch.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ld.so's built-in directories on Debian x86-64, multiarch first. */
static const char *const default_dirs[] = {
	"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
	"/lib64", "/usr/lib64", "/lib", "/usr/lib",
};

/* What $LIB and $PLATFORM expand to for Debian's x86-64 loader. */
#define DST_LIB      "lib/x86_64-linux-gnu"
#define DST_PLATFORM "x86_64"

#define LD_CACHE_MAX (16u << 20)
#define LD_PATH_MAX_ELEMENTS 256

/* ---- /etc/ld.so.cache ---------------------------------------------------- */

#define CACHE_MAGIC_OLD "ld.so-1.7.0"
#define CACHE_MAGIC_NEW "glibc-ld.so.cache1.1"
#define CACHE_FLAGS_X86_64_LIBC6 0x0303	/* FLAG_ELF_LIBC6 | FLAG_X8664_LIB64 */
#define CACHE_NEW_HEADER 48	/* magic+version 20, nlibs, len_strings, flags+pad, ext, unused[3] */
#define CACHE_NEW_ENTRY  24	/* flags, key, value, osversion, hwcap (u64) */
#define CACHE_OLD_ENTRY  12	/* flags, key, value */

static uint32_t get_u32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);	/* the image may be unaligned */
	return v;
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/* The NUL-terminated string at `off` in [base, base+len), or NULL. */
static const char *cache_str(const unsigned char *base, size_t len, uint32_t off)
{
	if (off >= len || !memchr(base + off, '\0', len - off))
		return NULL;
	return (const char *)base + off;
}

bool ld_cache_lookup(const void *image, size_t len, const char *name, char *out, size_t outsz)
{
	const unsigned char *p = image;
	size_t start = 0;
	if (len >= 16 && !memcmp(p, CACHE_MAGIC_OLD, sizeof CACHE_MAGIC_OLD - 1)) {
		/* The old table comes first; the new one follows, 8-aligned. */
		uint64_t old = get_u32(p + 12);
		uint64_t end = 16 + old * CACHE_OLD_ENTRY;
		start = (size_t)((end + 7) & ~(uint64_t)7);
		if (end > len || start > len)
			return false;
	}
	if (len - start < CACHE_NEW_HEADER ||
	    memcmp(p + start, CACHE_MAGIC_NEW, sizeof CACHE_MAGIC_NEW - 1))
		return false;
	/* String offsets count from the new header. */
	const unsigned char *base = p + start;
	size_t blen = len - start;
	uint64_t nlibs = get_u32(base + 20);
	uint64_t room = (blen - CACHE_NEW_HEADER) / CACHE_NEW_ENTRY;
	if (nlibs > room)
		nlibs = room;
	const char *found = NULL;
	for (uint64_t i = 0; i < nlibs; i++) {
		const unsigned char *ent = base + CACHE_NEW_HEADER + i * CACHE_NEW_ENTRY;
		if (get_u32(ent) != CACHE_FLAGS_X86_64_LIBC6)
			continue;
		const char *key = cache_str(base, blen, get_u32(ent + 4));
		if (!key || strcmp(key, name))
			continue;
		const char *value = cache_str(base, blen, get_u32(ent + 8));
		if (!value)
			continue;
		/* hwcap != 0 marks a glibc-hwcaps variant: take the baseline. */
		if (get_u64(ent + 16) == 0) {
			found = value;
			break;
		}
		if (!found)
			found = value;
	}
	if (!found || strlen(found) >= outsz)
		return false;
	strcpy(out, found);
	return true;
}

static void cache_load(struct ld_search *s)
{
	s->cache_tried = true;
	if (!s->cache_path)
		return;
	int fd = open(s->cache_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uint64_t)st.st_size <= LD_CACHE_MAX) {
		s->cache = malloc((size_t)st.st_size);
		size_t got = 0;
		while (s->cache && got < (size_t)st.st_size) {
			ssize_t r = read(fd, s->cache + got, (size_t)st.st_size - got);
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		s->cache_len = got;
	}
	close(fd);
}

/* ---- search paths -------------------------------------------------------- */

/* Append src to dst[*n], bounded; false when it would not fit. */
static bool append(char *dst, size_t *n, size_t cap, const char *src, size_t len)
{
	if (len >= cap - *n)
		return false;
	memcpy(dst + *n, src, len);
	*n += len;
	dst[*n] = '\0';
	return true;
}

/* If elem[i..] starts a dynamic string token, its value and length. */
static const char *dst_token(const char *p, size_t left, const char *origin, size_t *toklen)
{
	static const struct { const char *name; const char *value; } tokens[] = {
		{ "ORIGIN", NULL }, { "LIB", DST_LIB }, { "PLATFORM", DST_PLATFORM },
	};
	for (size_t t = 0; t < sizeof tokens / sizeof tokens[0]; t++) {
		size_t nl = strlen(tokens[t].name);
		const char *value = tokens[t].value ? tokens[t].value : origin;
		if (left >= nl + 1 && !strncmp(p + 1, tokens[t].name, nl)) {
			/* $NAME must not run on into an identifier: $ORIGINAL is not $ORIGIN */
			char next = left > nl + 1 ? p[nl + 1] : '\0';
			if (next == '_' || (next >= 'A' && next <= 'Z') || (next >= 'a' && next <= 'z') ||
			    (next >= '0' && next <= '9'))
				continue;
			*toklen = nl + 1;
			return value;
		}
		if (left >= nl + 3 && p[1] == '{' && !strncmp(p + 2, tokens[t].name, nl) &&
		    p[nl + 2] == '}') {
			*toklen = nl + 3;
			return value;
		}
	}
	return NULL;
}

/* dir = element with tokens expanded; false if it does not fit. */
static bool expand(const char *elem, size_t len, const char *origin, char *dir, size_t cap)
{
	size_t n = 0;
	dir[0] = '\0';
	if (len == 0)	/* an empty element means the current directory */
		return append(dir, &n, cap, ".", 1);
	for (size_t i = 0; i < len;) {
		size_t toklen;
		const char *value = elem[i] == '$' ? dst_token(elem + i, len - i, origin, &toklen) : NULL;
		if (value) {
			if (!append(dir, &n, cap, value, strlen(value)))
				return false;
			i += toklen;
		} else {
			if (!append(dir, &n, cap, elem + i, 1))
				return false;
			i++;
		}
	}
	return true;
}

static bool try_path(const char *path, ld_accept_fn accept, void *arg, char *out, size_t outsz)
{
	struct stat st;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	if (!accept(path, arg) || strlen(path) >= outsz)
		return false;
	strcpy(out, path);
	return true;
}

static bool try_dir(const char *dir, const char *name, ld_accept_fn accept, void *arg,
		    char *out, size_t outsz)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return false;
	return try_path(path, accept, arg, out, outsz);
}

/* Each element of a list separated by any of `seps`, expanded and tried. */
static bool try_list(const char *list, const char *seps, const char *origin, const char *name,
		     ld_accept_fn accept, void *arg, char *out, size_t outsz)
{
	if (!list)
		return false;
	const char *p = list;
	for (int k = 0; k < LD_PATH_MAX_ELEMENTS; k++) {
		size_t len = strcspn(p, seps);
		char dir[PATH_MAX];
		if (expand(p, len, origin ? origin : ".", dir, sizeof dir) &&
		    try_dir(dir, name, accept, arg, out, outsz))
			return true;
		if (!p[len])
			break;
		p += len + 1;
	}
	return false;
}

bool ld_search_find(struct ld_search *s, const char *name, const struct ld_requester *req,
		    ld_accept_fn accept, void *arg, char *out, size_t outsz)
{
	if (!*name)
		return false;
	if (strchr(name, '/'))
		return try_path(name, accept, arg, out, outsz);
	if (!req->runpath) {
		int depth = 0;
		for (const struct ld_requester *r = req; r && depth < 64; r = r->loader, depth++)
			if (r->rpath && !r->runpath &&
			    try_list(r->rpath, ":", r->dir, name, accept, arg, out, outsz))
				return true;
	}
	if (try_list(s->library_path, ":;", NULL, name, accept, arg, out, outsz))
		return true;
	if (try_list(req->runpath, ":", req->dir, name, accept, arg, out, outsz))
		return true;
	if (req->nodeflib)
		return false;
	if (!s->cache_tried)
		cache_load(s);
	char cached[PATH_MAX];
	if (s->cache && ld_cache_lookup(s->cache, s->cache_len, name, cached, sizeof cached) &&
	    try_path(cached, accept, arg, out, outsz))
		return true;
	for (size_t i = 0; i < sizeof default_dirs / sizeof default_dirs[0]; i++)
		if (try_dir(default_dirs[i], name, accept, arg, out, outsz))
			return true;
	return false;
}

void ld_search_free(struct ld_search *s)
{
	free(s->cache);
	s->cache = NULL;
	s->cache_len = 0;
	s->cache_tried = false;
}

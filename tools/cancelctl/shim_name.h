/* Is an LD_PRELOAD entry a libcancelshim.so (any copy, any directory)?
 * `cancelctl run` and `cancelctl enable` both merge LD_PRELOAD and drop
 * other copies: two would wrap every call twice. */
#ifndef CANCELCTL_SHIM_NAME_H
#define CANCELCTL_SHIM_NAME_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* entry: len bytes, not NUL-terminated (a piece of LD_PRELOAD). */
static inline bool shim_name_matches(const char *entry, size_t len)
{
	static const char base[] = "libcancelshim.so";
	size_t bl = sizeof base - 1;
	return len >= bl && !memcmp(entry + len - bl, base, bl) && (len == bl || entry[len - bl - 1] == '/');
}

#endif

/* Reading the JSON lines of `cancelctl watch --json` in tests: flat objects
 * with string and number values, so looking a key up is enough. */
#ifndef TESTS_EBPF_WATCH_JSON_H
#define TESTS_EBPF_WATCH_JSON_H

#include <stdbool.h>

/* The number after "key": in line; false if absent or not a number (null). */
bool wj_num(const char *line, const char *key, long long *out);

/* True if line has "key":"value". */
bool wj_str_is(const char *line, const char *key, const char *value);

#endif

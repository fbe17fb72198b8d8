/* See watch_json.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "watch_json.h"

static const char *value_of(const char *line, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof pat, "\"%s\":", key);
	p = strstr(line, pat);
	return p ? p + strlen(pat) : NULL;
}

bool wj_num(const char *line, const char *key, long long *out)
{
	const char *v = value_of(line, key);
	char *end;

	if (!v || !(*v == '-' || (*v >= '0' && *v <= '9')))
		return false;
	*out = strtoll(v, &end, 10);
	return end != v;
}

bool wj_str_is(const char *line, const char *key, const char *value)
{
	const char *v = value_of(line, key);
	size_t n = strlen(value);

	return v && v[0] == '"' && !strncmp(v + 1, value, n) && v[1 + n] == '"';
}

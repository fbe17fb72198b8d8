/* What the servers suite checks in a shim's output, in one place so every
 * test means the same thing by "active" and "no cancel". */
#ifndef CS_SHIM_CHECK_H
#define CS_SHIM_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

/* The start line the shim prints at CANCELSHIM_LOG=info or debug. */
#define SHIM_ACTIVE_MARK ": info: active:"

/* Lines that prove a cancel at CANCELSHIM_LOG=debug, plus how programs print
 * errno 125 themselves (nginx: "(125: Operation canceled)"). */
static inline size_t shim_cancel_marks(const char *text)
{
	return tl_count(text, "cancel conn=") + tl_count(text, "ECANCELED") +
	       tl_count(text, "(125: ") + tl_count(text, "Operation canceled");
}

/* For a failure message: the shim's lines from the process that printed
 * `line` ("cancelshim[PID]: ..."), at most max of them, malloc'd. */
static inline char *shim_lines_of_same_pid(const char *text, const char *line, int max)
{
	const char *b = line ? strstr(line, "cancelshim[") : NULL;
	if (!b)
		return strdup("");
	char prefix[48];
	snprintf(prefix, sizeof prefix, "%.*s", (int)(strcspn(b, "]") + 1), b);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	int n = 0;
	for (const char *p = text; (p = strstr(p, prefix)) && n < max; p++, n++)
		fprintf(f, "%.*s\n", (int)strcspn(p, "\n"), p);
	fclose(f);
	return out;
}

#endif

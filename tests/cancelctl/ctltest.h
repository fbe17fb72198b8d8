/* Helpers shared by the cancelctl tests: run cancelctl, query its JSON with
 * /usr/bin/python3, make and remove a scratch directory, compile a program. */
#ifndef CANCELCTL_TEST_CTLTEST_H
#define CANCELCTL_TEST_CTLTEST_H

#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

#define CTL_TIMEOUT_MS 20000

/* cancelctl ARGS... with the base environment plus env_extra (may be NULL). */
void ctl(const char *const args[], const char *const env_extra[], struct proc_result *r);

/* eval(expr) with d = json.loads(json) in /usr/bin/python3; the printed
 * result, trimmed, in a static buffer ("<bad json>" if it does not parse). */
const char *json_eval(const char *json, const char *expr);

/* A fresh directory under the build tree (not /tmp: it may be nosuid). */
const char *scratch_dir(void);
void scratch_remove(void);
/* "<scratch>/<name>" in a static ring of buffers. */
const char *scratch_path(const char *name);

/* Copies src to dst (mode 0755). */
void copy_file(const char *src, const char *dst);
/* Writes len bytes of data to path with the given mode. */
void write_file(const char *path, const void *data, size_t len, int mode);
/* Runs cc with args (NULL-terminated); asserts success. */
void compile(const char *const args[]);

/* Runs a python script from the test source dir on a JSON report; true if
 * it printed OK. On failure the script's output is in *why. */
bool run_oracle(const char *script, const char *const args[], const char *json,
		const char *const env_extra[], char **why);

#endif

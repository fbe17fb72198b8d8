/* Running a program for a test: explicit argv and environment, stdout and
 * stderr captured, a deadline instead of sleeps. */
#ifndef CANCELCTL_TEST_PROC_H
#define CANCELCTL_TEST_PROC_H

#include <stdbool.h>

struct proc_result {
	int status;      /* exit status, or 128 + signal; -1 if it could not run */
	bool timed_out;  /* killed at the deadline */
	char *out, *err; /* NUL-terminated, never NULL after proc_run */
};

/* env: NULL-terminated "K=V" list; the child gets exactly that. */
void proc_run(const char *const argv[], const char *const env[], int timeout_ms,
	      struct proc_result *r);
void proc_free(struct proc_result *r);

/* A "K=V" environment: a base (PATH, HOME) plus extra entries. Returns a
 * static array valid until the next call. */
const char *const *proc_env(const char *const extra[]);

/* The value of "KEY=" on its own line in text, copied to buf; NULL if absent. */
const char *proc_line_value(const char *text, const char *key, char *buf, int size);

#endif

/* One-line messages on stderr: "cancelshim[PID]: LEVEL: text". Written with
 * one raw write(2) so a line is never interleaved and never re-enters the
 * shim, and only while descriptor 2 is the file it was at load (else the
 * line is dropped). Never call from a signal handler (it formats with
 * vsnprintf). */
#ifndef CS_LOG_H
#define CS_LOG_H

#include <string.h>

#include "config.h"

/* errno's text, untranslated: strerror() may take the locale's lock, which
 * a fork child of a threaded server can inherit held by another thread. */
static inline const char *cs_errtext(int err)
{
	const char *s = strerrordesc_np(err);
	return s ? s : "unknown error";
}

/* The level in force; set once from the settings. */
extern enum cs_log_level cs_log_level;

/* Records what descriptor 2 is: the only file lines will ever go to. At
 * load, before anything is logged (else at the first line). */
void cs_log_init(void);

/* The program made descriptor 2 its stderr on purpose (dup2/dup3 onto it):
 * from now on lines go there. */
#define cs_log_stderr_replaced() cs_log_init()

void cs_log(enum cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line about an internal failure the shim fails open from (memory,
 * descriptors, a limit, a kernel refusal): a host gets one such line per
 * process, the first; the ones after it are debug lines. */
void cs_log_failure(enum cs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* In a fork child: a new process, with its own line to say. */
void cs_log_after_fork_child(void);

#define cs_error(...) cs_log(CS_LOG_ERROR, __VA_ARGS__)
#define cs_warn(...) cs_log(CS_LOG_WARN, __VA_ARGS__)
#define cs_info(...) cs_log(CS_LOG_INFO, __VA_ARGS__)
#define cs_debug(...) do { if (__builtin_expect(cs_log_level >= CS_LOG_DEBUG, 0)) cs_log(CS_LOG_DEBUG, __VA_ARGS__); } while (0)

#endif

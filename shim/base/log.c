/* See log.h. Where the lines go: the process's stderr as it was when the
 * shim loaded, or as the program made it on purpose since (dup2/dup3 onto
 * descriptor 2: apache and php-fpm send their children's stderr to their
 * error log so), and only while descriptor 2 is still that file. A daemon
 * that closes 0/1/2 and opens a data file (or a socket) that lands on 2
 * must not find the shim's lines in it (hazard 9: a descriptor number is
 * not an identity). One fstat per line: lines are rare. */
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>

#include "base/raw_syscall.h"

enum cs_log_level cs_log_level = CS_LOG_WARN;

/* What fd 2 was at load: its device, inode and type; "closed" if it was
 * not open (then nothing is ever written). */
enum { STDERR_UNKNOWN, STDERR_KNOWN, STDERR_CLOSED };
static int stderr_state = STDERR_UNKNOWN;
static dev_t stderr_dev;
static ino_t stderr_ino;
static mode_t stderr_type;

void cs_log_init(void)
{
	struct stat st;

	if (cs_raw2(SYS_fstat, 2, &st) < 0) {
		stderr_state = STDERR_CLOSED;
		return;
	}
	stderr_dev = st.st_dev;
	stderr_ino = st.st_ino;
	stderr_type = st.st_mode & S_IFMT;
	stderr_state = STDERR_KNOWN;
}

/* Is descriptor 2 still the stderr the process started with? */
static int stderr_is_ours(void)
{
	struct stat st;

	if (stderr_state == STDERR_UNKNOWN)
		cs_log_init();
	if (stderr_state != STDERR_KNOWN || cs_raw2(SYS_fstat, 2, &st) < 0)
		return 0;
	return st.st_dev == stderr_dev && st.st_ino == stderr_ino && (st.st_mode & S_IFMT) == stderr_type;
}

static void vlog(enum cs_log_level level, const char *fmt, va_list ap)
{
	char line[512];
	int n;

	if (level > cs_log_level || !stderr_is_ours())
		return;
	n = snprintf(line, sizeof line, "cancelshim[%ld]: %s: ", cs_raw0(SYS_getpid), cs_log_name(level));
	n += vsnprintf(line + n, sizeof line - n, fmt, ap);
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	cs_raw3(SYS_write, 2, line, n);
}

void cs_log(enum cs_log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
	errno = saved;
}

/* Whether this process said its failure line already. */
static _Atomic int failure_said;

void cs_log_failure(enum cs_log_level level, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	/* A line below the level in force says nothing, and spends nothing. */
	if (level > cs_log_level && cs_log_level < CS_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	vlog(atomic_exchange(&failure_said, 1) ? CS_LOG_DEBUG : level, fmt, ap);
	va_end(ap);
	errno = saved;
}

void cs_log_after_fork_child(void)
{
	atomic_store(&failure_said, 0);
}

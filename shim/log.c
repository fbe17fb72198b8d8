#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "raw_syscall.h"

enum cs_log_level cs_log_level = CS_LOG_WARN;

long cs_set_errno(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

void cs_log(enum cs_log_level level, const char *fmt, ...)
{
	char line[512];
	int saved = errno;
	int n;
	va_list ap;

	if (level > cs_log_level)
		return;
	n = snprintf(line, sizeof line, "cancelshim[%ld]: %s: ", cs_raw0(SYS_getpid), cs_log_name(level));
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	cs_raw3(SYS_write, 2, line, n);
	errno = saved;
}

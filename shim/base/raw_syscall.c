/* See raw_syscall.h: the one out-of-line helper, shared by every wrapper's
 * pass-through path. */
#include "base/raw_syscall.h"

#include <errno.h>

long cs_set_errno(long r)
{
	if (r < 0 && r > -4096) {
		errno = (int)-r;
		return -1;
	}
	return r;
}

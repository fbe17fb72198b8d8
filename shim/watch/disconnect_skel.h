/* The generated light skeleton of ebpf/disconnect.bpf.c, with its own
 * close() and syscall() going straight to the kernel (as systemd wraps its
 * skeletons). Included as is, <bpf/skel_internal.h> would call libc's
 * close(), which in the library is the shim's own exported wrapper: the
 * core would run through its wrappers while loading, and behave otherwise
 * in the unit tests, which link no wrappers. Include this, never
 * disconnect.lskel.h. */
#ifndef CS_DISCONNECT_SKEL_H
#define CS_DISCONNECT_SKEL_H

/* Everything the skeleton includes, first: its prototypes of close and
 * syscall must be read before the names are redirected. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/raw_syscall.h"

static inline int cs_skel_close(int fd)
{
	return (int)cs_set_errno(cs_raw1(SYS_close, fd));
}

/* The skeleton's only system call is bpf(2), with three arguments. */
static inline long cs_skel_syscall(long nr, long a, long b, long c)
{
	return cs_set_errno(cs_raw3(nr, a, b, c));
}

#define close(fd) cs_skel_close(fd)
#define syscall(nr, a, b, c) cs_skel_syscall((nr), (long)(a), (long)(b), (long)(c))
#include "disconnect.lskel.h"
#undef close
#undef syscall

#endif

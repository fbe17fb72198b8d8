/* Names of the system calls and errno values cs-fault accepts. Which of
 * them the suite injects, and how, is the table in fault_points.py. */
#ifndef CS_FAULT_NAMES_H
#define CS_FAULT_NAMES_H

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

#define FAULT_SYSCALLS(X)                                                                          \
	X(openat) X(ftruncate) X(fallocate) X(mmap) X(munmap) X(fchmod) X(close) X(unlink)         \
	X(getdents64) X(kill) X(read) X(epoll_create1) X(epoll_ctl) X(epoll_pwait) X(eventfd2)     \
	X(bpf) X(getsockopt) X(getsockname) X(fstat) X(newfstatat) X(fcntl) X(rt_tgsigqueueinfo)   \
	X(tgkill) X(rt_sigaction) X(rt_sigprocmask) X(clone) X(clone3) X(getrandom) X(capget)      \
	X(access) X(prctl) X(sched_yield) X(write) X(mprotect) X(recvfrom)

#define FAULT_ERRNOS(X)                                                                            \
	X(EPERM) X(ENOMEM) X(EMFILE) X(ENFILE) X(EINVAL) X(EINTR) X(EAGAIN) X(ENOSPC) X(EACCES)    \
	X(EBADF) X(EFAULT) X(ENOENT) X(EIO) X(ENOSYS) X(EEXIST) X(ESRCH) X(E2BIG) X(ENOTSOCK)

static inline int fault_syscall_nr(const char *name)
{
#define X(n) if (!strcmp(name, #n)) return SYS_##n;
	FAULT_SYSCALLS(X)
#undef X
	return -1;
}

static inline const char *fault_syscall_name(int nr)
{
#define X(n) if (nr == SYS_##n) return #n;
	FAULT_SYSCALLS(X)
#undef X
	return "?";
}

static inline int fault_errno_value(const char *name)
{
#define X(n) if (!strcmp(name, #n)) return n;
	FAULT_ERRNOS(X)
#undef X
	return -1;
}

#endif

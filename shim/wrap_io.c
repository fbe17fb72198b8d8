/* Interposed data-path calls: reads, writes, socket I/O, connect.
 *
 * Every wrapper has the same shape (CS_IO): ask the policy whether this call
 * by this thread may be cancelled; if not, call libc as if the shim were not
 * there; if so, issue the system call through the cancellable path. */
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "policy.h"
#include "raw_syscall.h"
#include "real.h"

#define CS_EXPORT __attribute__((visibility("default")))

extern void __chk_fail(void) __attribute__((noreturn));

#define CS_IO(fd, dontwait, libc_call, nr, a1, a2, a3, a4, a5, a6)                                    \
	do {                                                                                           \
		struct cs_thread *t_ = cs_io_enter((fd), (dontwait));                                  \
		if (__builtin_expect(t_ != NULL, 0)) {                                                 \
			long r_ = cs_io_call(t_, (fd), (nr), (long)(a1), (long)(a2), (long)(a3),       \
					     (long)(a4), (long)(a5), (long)(a6));                      \
			if (r_ != CS_REISSUE)                                                          \
				return cs_set_errno(r_);                                               \
		}                                                                                      \
		return libc_call;                                                                      \
	} while (0)

static inline ssize_t do_read(int fd, void *buf, size_t n)
{
	CS_IO(fd, 0, cs_real.read(fd, buf, n), SYS_read, fd, buf, n, 0, 0, 0);
}

static inline ssize_t do_pread(int fd, void *buf, size_t n, off_t off)
{
	CS_IO(fd, 0, cs_real.pread64(fd, buf, n, off), SYS_pread64, fd, buf, n, off, 0, 0);
}

static inline ssize_t do_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *l)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.recvfrom(fd, buf, n, flags, a, l), SYS_recvfrom, fd, buf, n, flags, a, l);
}

static inline ssize_t do_recv(int fd, void *buf, size_t n, int flags)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.recv(fd, buf, n, flags), SYS_recvfrom, fd, buf, n, flags, 0, 0);
}

CS_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return do_read(fd, buf, n);
}

CS_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	CS_IO(fd, 0, cs_real.write(fd, buf, n), SYS_write, fd, buf, n, 0, 0, 0);
}

CS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	CS_IO(fd, 0, cs_real.readv(fd, iov, n), SYS_readv, fd, iov, n, 0, 0, 0);
}

CS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	CS_IO(fd, 0, cs_real.writev(fd, iov, n), SYS_writev, fd, iov, n, 0, 0, 0);
}

CS_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return do_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return do_pread(fd, buf, n, off);
}

static inline ssize_t do_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	CS_IO(fd, 0, cs_real.pwrite64(fd, buf, n, off), SYS_pwrite64, fd, buf, n, off, 0, 0);
}

CS_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return do_pwrite(fd, buf, n, off);
}

CS_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return do_pwrite(fd, buf, n, off);
}

static inline ssize_t do_preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	CS_IO(fd, 0, cs_real.preadv64(fd, iov, n, off), SYS_preadv, fd, iov, n, off, 0, 0);
}

CS_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	return do_preadv(fd, iov, n, off);
}

CS_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
	return do_preadv(fd, iov, n, off);
}

static inline ssize_t do_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	CS_IO(fd, 0, cs_real.pwritev64(fd, iov, n, off), SYS_pwritev, fd, iov, n, off, 0, 0);
}

CS_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	return do_pwritev(fd, iov, n, off);
}

CS_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	return do_pwritev(fd, iov, n, off);
}

CS_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	CS_IO(fd, flags & RWF_NOWAIT, cs_real.preadv2(fd, iov, n, off, flags), SYS_preadv2, fd, iov, n, off, 0, flags);
}

CS_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	CS_IO(fd, flags & RWF_NOWAIT, cs_real.pwritev2(fd, iov, n, off, flags), SYS_pwritev2, fd, iov, n, off, 0, flags);
}

CS_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return do_recv(fd, buf, n, flags);
}

CS_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *l)
{
	return do_recvfrom(fd, buf, n, flags, a, l);
}

CS_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.recvmsg(fd, m, flags), SYS_recvmsg, fd, m, flags, 0, 0, 0);
}

CS_EXPORT int recvmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags, struct timespec *t)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.recvmmsg(fd, m, n, flags, t), SYS_recvmmsg, fd, m, n, flags, t, 0);
}

CS_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.send(fd, buf, n, flags), SYS_sendto, fd, buf, n, flags, 0, 0);
}

CS_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t l)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.sendto(fd, buf, n, flags, a, l), SYS_sendto, fd, buf, n, flags, a, l);
}

CS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.sendmsg(fd, m, flags), SYS_sendmsg, fd, m, flags, 0, 0, 0);
}

CS_EXPORT int sendmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags)
{
	CS_IO(fd, flags & MSG_DONTWAIT, cs_real.sendmmsg(fd, m, n, flags), SYS_sendmmsg, fd, m, n, flags, 0, 0);
}

static inline ssize_t do_sendfile(int out, int in, off_t *off, size_t n)
{
	CS_IO(out, 0, cs_real.sendfile64(out, in, off, n), SYS_sendfile, out, in, off, n, 0, 0);
}

CS_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	return do_sendfile(out, in, off, n);
}

CS_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return do_sendfile(out, in, off, n);
}

CS_EXPORT int connect(int fd, const struct sockaddr *a, socklen_t l)
{
	CS_IO(fd, 0, cs_real.connect(fd, a, l), SYS_connect, fd, a, l, 0, 0, 0);
}

/* _FORTIFY_SOURCE entry points: a fortified program never calls plain read. */

CS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return do_read(fd, buf, n);
}

CS_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return do_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return do_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return do_recv(fd, buf, n, flags);
}

CS_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *a, socklen_t *l)
{
	if (n > buflen)
		__chk_fail();
	return do_recvfrom(fd, buf, n, flags, a, l);
}

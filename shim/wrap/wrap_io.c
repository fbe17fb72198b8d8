/* Interposed data-path calls: reads, writes, socket I/O, connect.
 *
 * Every wrapper has the same shape (CS_IO_FN): a few inline instructions
 * decide that the call goes straight to libc, as if the shim were not there
 * (a tail call, no stack frame); anything else goes to an out-of-line twin
 * that asks the policy and may issue the system call through the
 * cancellable path. */
#include <errno.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/raw_syscall.h"
#include "base/real.h"
#include "policy/policy.h"
#include "wrap/export.h"

extern void __chk_fail(void) __attribute__((noreturn));

/* CS_IO_FN(ret, name, (params), (args), fd, dontwait, libc call, system call,
 *          its six arguments) defines io_NAME, the wrapper's body, and its
 * out-of-line twin NAME_slow. dontwait: the call asked not to block. */
#define CS_IO_FN(ret, name, params, args, fd, dontwait, libc_call, nr, a1, a2, a3, a4, a5, a6)           \
	static __attribute__((noinline, cold)) ret name##_slow params                                    \
	{                                                                                                \
		long r_ = cs_io_route((fd), (dontwait), (nr), (long)(a1), (long)(a2), (long)(a3),        \
				      (long)(a4), (long)(a5), (long)(a6));                               \
		if (r_ == CS_PASS_READ) {                                                                \
			ret v_ = libc_call;                                                              \
			cs_io_read_done((fd), (long)v_);                                                 \
			return v_;                                                                       \
		}                                                                                        \
		if (r_ != CS_PASS)                                                                       \
			return (ret)cs_set_errno(r_);                                                    \
		return libc_call;                                                                        \
	}                                                                                                \
	static inline ret io_##name params                                                               \
	{                                                                                                \
		if (__builtin_expect(cs_io_direct(fd), 1))                                               \
			return libc_call;                                                                \
		return name##_slow args;                                                                 \
	}

CS_IO_FN(ssize_t, read, (int fd, void *buf, size_t n), (fd, buf, n), fd, 0,
	 cs_real.read(fd, buf, n), SYS_read, fd, buf, n, 0, 0, 0)

CS_IO_FN(ssize_t, write, (int fd, const void *buf, size_t n), (fd, buf, n), fd, 0,
	 cs_real.write(fd, buf, n), SYS_write, fd, buf, n, 0, 0, 0)

CS_IO_FN(ssize_t, readv, (int fd, const struct iovec *iov, int n), (fd, iov, n), fd, 0,
	 cs_real.readv(fd, iov, n), SYS_readv, fd, iov, n, 0, 0, 0)

CS_IO_FN(ssize_t, writev, (int fd, const struct iovec *iov, int n), (fd, iov, n), fd, 0,
	 cs_real.writev(fd, iov, n), SYS_writev, fd, iov, n, 0, 0, 0)

CS_IO_FN(ssize_t, pread, (int fd, void *buf, size_t n, off_t off), (fd, buf, n, off), fd, 0,
	 cs_real.pread64(fd, buf, n, off), SYS_pread64, fd, buf, n, off, 0, 0)

CS_IO_FN(ssize_t, pwrite, (int fd, const void *buf, size_t n, off_t off), (fd, buf, n, off), fd, 0,
	 cs_real.pwrite64(fd, buf, n, off), SYS_pwrite64, fd, buf, n, off, 0, 0)

CS_IO_FN(ssize_t, preadv, (int fd, const struct iovec *iov, int n, off_t off), (fd, iov, n, off), fd, 0,
	 cs_real.preadv64(fd, iov, n, off), SYS_preadv, fd, iov, n, off, 0, 0)

CS_IO_FN(ssize_t, pwritev, (int fd, const struct iovec *iov, int n, off_t off), (fd, iov, n, off), fd, 0,
	 cs_real.pwritev64(fd, iov, n, off), SYS_pwritev, fd, iov, n, off, 0, 0)

CS_IO_FN(ssize_t, preadv2, (int fd, const struct iovec *iov, int n, off_t off, int flags), (fd, iov, n, off, flags), fd, flags & RWF_NOWAIT,
	 cs_real.preadv2(fd, iov, n, off, flags), SYS_preadv2, fd, iov, n, off, 0, flags)

CS_IO_FN(ssize_t, pwritev2, (int fd, const struct iovec *iov, int n, off_t off, int flags), (fd, iov, n, off, flags), fd, flags & RWF_NOWAIT,
	 cs_real.pwritev2(fd, iov, n, off, flags), SYS_pwritev2, fd, iov, n, off, 0, flags)

CS_IO_FN(ssize_t, recv, (int fd, void *buf, size_t n, int flags), (fd, buf, n, flags), fd, flags & MSG_DONTWAIT,
	 cs_real.recv(fd, buf, n, flags), SYS_recvfrom, fd, buf, n, flags, 0, 0)

CS_IO_FN(ssize_t, recvfrom, (int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *l), (fd, buf, n, flags, a, l), fd, flags & MSG_DONTWAIT,
	 cs_real.recvfrom(fd, buf, n, flags, a, l), SYS_recvfrom, fd, buf, n, flags, a, l)

CS_IO_FN(ssize_t, recvmsg, (int fd, struct msghdr *m, int flags), (fd, m, flags), fd, flags & MSG_DONTWAIT,
	 cs_real.recvmsg(fd, m, flags), SYS_recvmsg, fd, m, flags, 0, 0, 0)

CS_IO_FN(int, recvmmsg, (int fd, struct mmsghdr *m, unsigned int n, int flags, struct timespec *t), (fd, m, n, flags, t), fd, flags & MSG_DONTWAIT,
	 cs_real.recvmmsg(fd, m, n, flags, t), SYS_recvmmsg, fd, m, n, flags, t, 0)

CS_IO_FN(ssize_t, send, (int fd, const void *buf, size_t n, int flags), (fd, buf, n, flags), fd, flags & MSG_DONTWAIT,
	 cs_real.send(fd, buf, n, flags), SYS_sendto, fd, buf, n, flags, 0, 0)

CS_IO_FN(ssize_t, sendto, (int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t l), (fd, buf, n, flags, a, l), fd, flags & MSG_DONTWAIT,
	 cs_real.sendto(fd, buf, n, flags, a, l), SYS_sendto, fd, buf, n, flags, a, l)

CS_IO_FN(ssize_t, sendmsg, (int fd, const struct msghdr *m, int flags), (fd, m, flags), fd, flags & MSG_DONTWAIT,
	 cs_real.sendmsg(fd, m, flags), SYS_sendmsg, fd, m, flags, 0, 0, 0)

CS_IO_FN(int, sendmmsg, (int fd, struct mmsghdr *m, unsigned int n, int flags), (fd, m, n, flags), fd, flags & MSG_DONTWAIT,
	 cs_real.sendmmsg(fd, m, n, flags), SYS_sendmmsg, fd, m, n, flags, 0, 0)

CS_IO_FN(ssize_t, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n), out, 0,
	 cs_real.sendfile64(out, in, off, n), SYS_sendfile, out, in, off, n, 0, 0)

CS_IO_FN(int, connect, (int fd, const struct sockaddr *a, socklen_t l), (fd, a, l), fd, 0,
	 cs_real.connect(fd, a, l), SYS_connect, fd, a, l, 0, 0, 0)

CS_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	return io_read(fd, buf, n);
}

CS_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	return io_write(fd, buf, n);
}

CS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int n)
{
	return io_readv(fd, iov, n);
}

CS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	return io_writev(fd, iov, n);
}

CS_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	return io_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
	return io_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return io_pwrite(fd, buf, n, off);
}

CS_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return io_pwrite(fd, buf, n, off);
}

CS_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int n, off_t off)
{
	return io_preadv(fd, iov, n, off);
}

CS_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
	return io_preadv(fd, iov, n, off);
}

CS_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
	return io_pwritev(fd, iov, n, off);
}

CS_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	return io_pwritev(fd, iov, n, off);
}

CS_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	return io_preadv2(fd, iov, n, off, flags);
}

CS_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	return io_pwritev2(fd, iov, n, off, flags);
}

CS_EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return io_recv(fd, buf, n, flags);
}

CS_EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *l)
{
	return io_recvfrom(fd, buf, n, flags, a, l);
}

CS_EXPORT ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
	return io_recvmsg(fd, m, flags);
}

CS_EXPORT int recvmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags, struct timespec *t)
{
	return io_recvmmsg(fd, m, n, flags, t);
}

CS_EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return io_send(fd, buf, n, flags);
}

CS_EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a, socklen_t l)
{
	return io_sendto(fd, buf, n, flags, a, l);
}

CS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
	return io_sendmsg(fd, m, flags);
}

CS_EXPORT int sendmmsg(int fd, struct mmsghdr *m, unsigned int n, int flags)
{
	return io_sendmmsg(fd, m, n, flags);
}

CS_EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	return io_sendfile(out, in, off, n);
}

CS_EXPORT ssize_t sendfile64(int out, int in, off_t *off, size_t n)
{
	return io_sendfile(out, in, off, n);
}

CS_EXPORT int connect(int fd, const struct sockaddr *a, socklen_t l)
{
	return io_connect(fd, a, l);
}

/* _FORTIFY_SOURCE entry points: a fortified program never calls plain read. */

CS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return io_read(fd, buf, n);
}

CS_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return io_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return io_pread(fd, buf, n, off);
}

CS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		__chk_fail();
	return io_recv(fd, buf, n, flags);
}

CS_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *a, socklen_t *l)
{
	if (n > buflen)
		__chk_fail();
	return io_recvfrom(fd, buf, n, flags, a, l);
}

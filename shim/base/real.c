/* Resolution of the real libc functions, and the bootstrap versions used
 * until then. The bootstrap versions are plain system calls: they lack only
 * libc's pthread cancellation points, which nothing needs during start-up. */
#include "base/real.h"

#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/raw_syscall.h"

#define R(x) cs_set_errno(x)

static ssize_t boot_read(int fd, void *b, size_t n) { return R(cs_raw3(SYS_read, fd, b, n)); }
static ssize_t boot_write(int fd, const void *b, size_t n) { return R(cs_raw3(SYS_write, fd, b, n)); }
static ssize_t boot_readv(int fd, const struct iovec *v, int n) { return R(cs_raw3(SYS_readv, fd, v, n)); }
static ssize_t boot_writev(int fd, const struct iovec *v, int n) { return R(cs_raw3(SYS_writev, fd, v, n)); }
static ssize_t boot_pread64(int fd, void *b, size_t n, off_t o) { return R(cs_raw4(SYS_pread64, fd, b, n, o)); }
static ssize_t boot_pwrite64(int fd, const void *b, size_t n, off_t o) { return R(cs_raw4(SYS_pwrite64, fd, b, n, o)); }
static ssize_t boot_preadv64(int fd, const struct iovec *v, int n, off_t o) { return R(cs_raw6(SYS_preadv, fd, (long)v, n, o, 0, 0)); }
static ssize_t boot_pwritev64(int fd, const struct iovec *v, int n, off_t o) { return R(cs_raw6(SYS_pwritev, fd, (long)v, n, o, 0, 0)); }
static ssize_t boot_preadv2(int fd, const struct iovec *v, int n, off_t o, int f) { return R(cs_raw6(SYS_preadv2, fd, (long)v, n, o, 0, f)); }
static ssize_t boot_pwritev2(int fd, const struct iovec *v, int n, off_t o, int f) { return R(cs_raw6(SYS_pwritev2, fd, (long)v, n, o, 0, f)); }
static ssize_t boot_recv(int fd, void *b, size_t n, int f) { return R(cs_raw6(SYS_recvfrom, fd, (long)b, n, f, 0, 0)); }
static ssize_t boot_recvfrom(int fd, void *b, size_t n, int f, struct sockaddr *a, socklen_t *l) { return R(cs_raw6(SYS_recvfrom, fd, (long)b, n, f, (long)a, (long)l)); }
static ssize_t boot_recvmsg(int fd, struct msghdr *m, int f) { return R(cs_raw3(SYS_recvmsg, fd, m, f)); }
static int boot_recvmmsg(int fd, struct mmsghdr *m, unsigned n, int f, struct timespec *t) { return R(cs_raw6(SYS_recvmmsg, fd, (long)m, n, f, (long)t, 0)); }
static ssize_t boot_send(int fd, const void *b, size_t n, int f) { return R(cs_raw6(SYS_sendto, fd, (long)b, n, f, 0, 0)); }
static ssize_t boot_sendto(int fd, const void *b, size_t n, int f, const struct sockaddr *a, socklen_t l) { return R(cs_raw6(SYS_sendto, fd, (long)b, n, f, (long)a, l)); }
static ssize_t boot_sendmsg(int fd, const struct msghdr *m, int f) { return R(cs_raw3(SYS_sendmsg, fd, m, f)); }
static int boot_sendmmsg(int fd, struct mmsghdr *m, unsigned n, int f) { return R(cs_raw4(SYS_sendmmsg, fd, m, n, f)); }
static ssize_t boot_sendfile64(int o, int i, off_t *off, size_t n) { return R(cs_raw4(SYS_sendfile, o, i, off, n)); }
static int boot_connect(int fd, const struct sockaddr *a, socklen_t l) { return R(cs_raw3(SYS_connect, fd, a, l)); }
static int boot_ppoll(struct pollfd *p, nfds_t n, const struct timespec *t, const sigset_t *s) { return R(cs_raw6(SYS_ppoll, (long)p, n, (long)t, (long)s, s ? 8 : 0, 0)); }
static int boot_poll(struct pollfd *p, nfds_t n, int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	return boot_ppoll(p, n, ms < 0 ? NULL : &ts, NULL);
}
static int boot_pselect(int n, fd_set *r, fd_set *w, fd_set *e, const struct timespec *t, const sigset_t *s)
{
	long data[2] = { (long)s, 8 };
	return R(cs_raw6(SYS_pselect6, n, (long)r, (long)w, (long)e, (long)t, s ? (long)data : 0));
}
static int boot_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv) { return R(cs_raw6(SYS_select, n, (long)r, (long)w, (long)e, (long)tv, 0)); }
static int boot_epoll_pwait(int ep, struct epoll_event *ev, int n, int ms, const sigset_t *s) { return R(cs_raw6(SYS_epoll_pwait, ep, (long)ev, n, ms, (long)s, 8)); }
static int boot_epoll_wait(int ep, struct epoll_event *ev, int n, int ms) { return boot_epoll_pwait(ep, ev, n, ms, NULL); }
static int boot_epoll_pwait2(int ep, struct epoll_event *ev, int n, const struct timespec *t, const sigset_t *s) { return R(cs_raw6(SYS_epoll_pwait2, ep, (long)ev, n, (long)t, (long)s, 8)); }
static int boot_nanosleep(const struct timespec *a, struct timespec *b) { return R(cs_raw2(SYS_nanosleep, a, b)); }
static int boot_clock_nanosleep(clockid_t c, int f, const struct timespec *a, struct timespec *b) { return (int)-cs_raw4(SYS_clock_nanosleep, c, f, a, b); }
static int boot_usleep(useconds_t us)
{
	struct timespec ts = { us / 1000000, (us % 1000000) * 1000L };
	return boot_nanosleep(&ts, NULL);
}
static unsigned boot_sleep(unsigned s)
{
	struct timespec ts = { s, 0 }, rem = { 0, 0 };
	return boot_nanosleep(&ts, &rem) < 0 ? (unsigned)rem.tv_sec : 0;
}
static int boot_accept(int fd, struct sockaddr *a, socklen_t *l) { return R(cs_raw4(SYS_accept4, fd, a, l, 0)); }
static int boot_accept4(int fd, struct sockaddr *a, socklen_t *l, int f) { return R(cs_raw4(SYS_accept4, fd, a, l, f)); }
static int boot_close(int fd) { return R(cs_raw1(SYS_close, fd)); }
static int boot_dup(int fd) { return R(cs_raw1(SYS_dup, fd)); }
static int boot_dup2(int a, int b) { return R(cs_raw2(SYS_dup2, a, b)); }
static int boot_dup3(int a, int b, int f) { return R(cs_raw3(SYS_dup3, a, b, f)); }
static int boot_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return R(cs_raw3(SYS_fcntl, fd, cmd, arg));
}
static int boot_close_range(unsigned a, unsigned b, int f) { return R(cs_raw3(SYS_close_range, a, b, f)); }
static void boot_closefrom(int fd) { cs_raw3(SYS_close_range, fd, ~0U, 0); }
/* No system call does these: resolve now (unless dlsym itself is calling). */
static int boot_fclose(FILE *f)
{
	cs_real_resolve();
	if (cs_real.fclose == boot_fclose) {
		errno = ENOSYS;
		return EOF;
	}
	return cs_real.fclose(f);
}
static int boot_socket(int d, int t, int p) { return R(cs_raw3(SYS_socket, d, t, p)); }
static int boot_socketpair(int d, int t, int p, int *sv) { return R(cs_raw4(SYS_socketpair, d, t, p, sv)); }
static int boot_pipe2(int *p, int f) { return R(cs_raw2(SYS_pipe2, p, f)); }
static int boot_pipe(int *p) { return boot_pipe2(p, 0); }
static int boot_openat(int dir, const char *path, int flags, ...)
{
	va_list ap;
	long mode;
	va_start(ap, flags);
	mode = va_arg(ap, long);
	va_end(ap);
	return R(cs_raw4(SYS_openat, dir, path, flags, mode));
}
static int boot_epoll_create1(int f) { return R(cs_raw1(SYS_epoll_create1, f)); }
static int boot_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev) { return R(cs_raw4(SYS_epoll_ctl, ep, op, fd, ev)); }
static int boot_listen(int fd, int n) { return R(cs_raw2(SYS_listen, fd, n)); }
static int boot_sigaction(int s, const struct sigaction *a, struct sigaction *o)
{
	cs_real_resolve();
	if (cs_real.sigaction == boot_sigaction) {
		errno = ENOSYS;
		return -1;
	}
	return cs_real.sigaction(s, a, o);
}
static int boot_sigprocmask(int how, const sigset_t *s, sigset_t *o) { return R(cs_raw4(SYS_rt_sigprocmask, how, s, o, 8)); }
static int boot_pthread_sigmask(int how, const sigset_t *s, sigset_t *o) { return -(int)cs_raw4(SYS_rt_sigprocmask, how, s, o, 8); }
static __sighandler_t boot_signal(int s, __sighandler_t h)
{
	cs_real_resolve();
	if (cs_real.signal == boot_signal) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	return cs_real.signal(s, h);
}
static __sighandler_t boot_sysv_signal(int s, __sighandler_t h)
{
	cs_real_resolve();
	if (cs_real.sysv_signal == boot_sysv_signal) {
		errno = ENOSYS;
		return SIG_ERR;
	}
	return cs_real.sysv_signal(s, h);
}
static int boot_sigsuspend(const sigset_t *s) { return R(cs_raw2(SYS_rt_sigsuspend, s, 8)); }

/* libc changes the uid of every thread at once (its setxid broadcast); a
 * system call changes only the caller's. Resolve now; the system call is
 * right only while the process has one thread, which is all that can run
 * before resolution. */
#define BOOT_UID(name, params, args, call)                   \
	static int boot_##name params                        \
	{                                                    \
		cs_real_resolve();                           \
		if (cs_real.name != boot_##name)             \
			return cs_real.name args;            \
		return R(call);                              \
	}
BOOT_UID(setuid, (uid_t u), (u), cs_raw1(SYS_setuid, u))
BOOT_UID(seteuid, (uid_t e), (e), cs_raw3(SYS_setresuid, -1, e, -1))
BOOT_UID(setreuid, (uid_t r, uid_t e), (r, e), cs_raw2(SYS_setreuid, r, e))
BOOT_UID(setresuid, (uid_t r, uid_t e, uid_t s), (r, e, s), cs_raw3(SYS_setresuid, r, e, s))
#undef BOOT_UID

struct cs_real cs_real = {
#define CS_REAL_BOOT(ret, name, params) .name = boot_##name,
	CS_REAL_FUNCTIONS(CS_REAL_BOOT)
#undef CS_REAL_BOOT
};

/* Guards against dlsym re-entering us through an allocator that calls one of
 * our wrappers: those calls keep using the bootstrap versions meanwhile. */
static __thread int resolving;

/* The address range of the shim's own loaded segments, found once. Checking
 * each dlsym result against it is two compares; dladdr() per symbol walked
 * the symbol table and was most of the shim's start-up cost. */
struct own_range {
	uintptr_t self, lo, hi;
};

static int find_own_range(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct own_range *r = arg;
	uintptr_t lo = UINTPTR_MAX, hi = 0;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
		lo = start < lo ? start : lo;
		hi = end > hi ? end : hi;
	}
	if (r->self >= lo && r->self < hi) {
		r->lo = lo;
		r->hi = hi;
		return 1;
	}
	return 0;
}

void cs_real_resolve(void)
{
	struct own_range own = { (uintptr_t)cs_real_resolve, 0, 0 };
	void *p;

	if (resolving)
		return;
	resolving = 1;
	dl_iterate_phdr(find_own_range, &own);
#define CS_REAL_RESOLVE(ret, name, params)                                              \
	p = dlsym(RTLD_NEXT, #name);                                                     \
	if (p) {                                                                         \
		if ((uintptr_t)p >= own.lo && (uintptr_t)p < own.hi)                     \
			cs_error("%s resolves to the shim itself (loaded twice?); "     \
				 "using the system call directly", #name);               \
		else                                                                     \
			__atomic_store_n(&cs_real.name, (ret(*) params)p, __ATOMIC_RELEASE); \
	}
	CS_REAL_FUNCTIONS(CS_REAL_RESOLVE)
#undef CS_REAL_RESOLVE
	resolving = 0;
}

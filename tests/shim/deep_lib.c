/* A library the probe loads with dlopen(RTLD_DEEPBIND), as PHP loads its
 * extensions: its calls to recv and poll bind to libc, not to the preloaded
 * shim, unless the shim's dlopen hook rebinds them. Built twice: bound at
 * load (-z now: GOT slots resolved, in RELRO) and lazily (PLT slots still
 * unresolved when dlopen returns).
 *
 * With -DDEEP_OWN_RECV it bundles its own recv (as an extension bundling a
 * library would): deep binding gives it that one, and the hook must leave
 * it so. */
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int cs_deep_recv(int fd)
{
	char c;
	return (int)recv(fd, &c, 1, 0);
}

int cs_deep_poll(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return poll(&p, 1, -1);
}

/* The address of recvfrom taken in code: a GOT slot (R_X86_64_GLOB_DAT),
 * not a PLT call (a different function from cs_deep_recv's, so that recv
 * keeps a lazy PLT slot in the lazy build). */
int cs_deep_recv_ptr(int fd)
{
	ssize_t (*volatile fn)(int, void *, size_t, int, struct sockaddr *, socklen_t *) = recvfrom;
	char c;
	return (int)fn(fd, &c, 1, 0, NULL, NULL);
}

#ifdef DEEP_OWN_RECV
static int own_calls;

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	own_calls++;
	return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

int cs_deep_own_calls(void)
{
	return own_calls;
}
#endif

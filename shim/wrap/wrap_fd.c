/* Interposed descriptor life cycle: where client connections, listeners and
 * epoll sets come from and where they go. Each wrapper calls libc first (or,
 * for closes, just before) and then tells the policy, preserving errno. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/process.h"
#include "base/real.h"
#include "policy/accept.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "track/fdtable.h"
#include "track/kshared.h"
#include "watch/ebpf_watcher.h"
#include "watch/watcher.h"
#include "wrap/export.h"

/* accept and accept4. When the eBPF watcher covers the listener, the peer's
 * address is needed for the connection's key: if the caller did not ask for
 * it, the shim's own buffer takes it (no extra system call), and a caller's
 * buffer gets what accept() would have put there. */
static int accept_common(int lfd, struct sockaddr *addr, socklen_t *len, int flags, int four)
{
	uint64_t ls;
	unsigned epoch;
	struct sockaddr_storage peer;
	socklen_t peer_len = sizeof peer;
	int r;

	/* A clone() child's first accept: the listener words below must be
	 * its own (reset), not the parent's. */
	cs_process_check();
	ls = cs_fd_get(lfd);	/* before: see cs_accept_record */
	epoch = atomic_load_explicit(&cs_ebpf_epoch, memory_order_seq_cst);
	cs_fd_accept_begin();
	if (!(ls & CS_LISTENER_TRUSTED) || (addr && !len)) {
		r = four ? cs_real.accept4(lfd, addr, len, flags) : cs_real.accept(lfd, addr, len);
		if (r >= 0)
			KEEP_ERRNO(cs_accept_record(lfd, r, ls, epoch, NULL, 0));
		return r;
	}
	r = four ? cs_real.accept4(lfd, (struct sockaddr *)&peer, &peer_len, flags)
		 : cs_real.accept(lfd, (struct sockaddr *)&peer, &peer_len);
	if (r < 0)
		return r;
	if (addr) {
		memcpy(addr, &peer, *len < peer_len ? *len : peer_len);
		*len = peer_len;
	}
	KEEP_ERRNO(cs_accept_record(lfd, r, ls, epoch, (struct sockaddr *)&peer, peer_len));
	return r;
}

CS_EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	return accept_common(fd, addr, len, 0, 0);
}

CS_EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	return accept_common(fd, addr, len, flags, 1);
}

/* The table is cleared before the descriptor is released: once closed, its
 * number can be handed to another thread's accept at once. */
CS_EXPORT int close(int fd)
{
	uint64_t s;

	cs_ebpf_wait_load();
	s = cs_fd_get(fd);
	if (s) {
		/* One of the shim's own descriptors (the watcher's epoll set,
		 * the eBPF watcher's), closed by a program that closes every
		 * descriptor it does not know: kept, or the watcher would go
		 * blind. The program cannot tell. */
		if (CS_SLOT_IS_OURS(s)) {
			int keep;
			KEEP_ERRNO(keep = cs_watcher_keeps(fd));
			if (keep)
				return 0;
		}
		cs_fd_closing(fd, s);
	}
	return cs_real.close(fd);
}

/* close_range() over [first, last] without the shim's own descriptors. */
static int close_range_sparing(unsigned first, unsigned last, int flags)
{
	int own[CS_OWN_MAX_FDS], n = cs_watcher_own_fds(own), r = 0;

	for (int i = 0; i < n && first <= last; i++) {
		unsigned fd = (unsigned)own[i];
		if (fd < first || fd > last)
			continue;
		if (fd > first && cs_real.close_range(first, fd - 1, flags) < 0)
			r = -1;
		if (fd == ~0u)
			return r;
		first = fd + 1;
	}
	if (first <= last && cs_real.close_range(first, last, flags) < 0)
		r = -1;
	return r;
}

CS_EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	cs_ebpf_wait_load();
	if (!(flags & CLOSE_RANGE_CLOEXEC))
		cs_fd_closing_range(first, last);
	return close_range_sparing(first, last, flags);
}

CS_EXPORT void closefrom(int lowfd)
{
	int own[CS_OWN_MAX_FDS];

	cs_ebpf_wait_load();
	if (lowfd >= 0)
		cs_fd_closing_range((unsigned)lowfd, ~0u);
	if (lowfd >= 0 && cs_watcher_own_fds(own) > 0) {
		int saved = errno;
		close_range_sparing((unsigned)lowfd, ~0u, 0);
		errno = saved;
		return;
	}
	cs_real.closefrom(lowfd);
}

/* fclose releases the descriptor inside libc, out of our sight. */
CS_EXPORT int fclose(FILE *stream)
{
	int fd = stream ? fileno(stream) : -1;
	if (fd >= 0) {
		uint64_t s = cs_fd_get(fd);
		if (s)
			KEEP_ERRNO(cs_fd_closing(fd, s));
	}
	return cs_real.fclose(stream);
}

CS_EXPORT int dup(int fd)
{
	int r = cs_real.dup(fd);
	if (r >= 0)
		KEEP_ERRNO(cs_fd_duplicated(fd, r));
	return r;
}

/* dup2/dup3 onto one of the shim's own descriptors: the shim's moves to
 * another number first, and the application gets the number it asked for. */
static int evict_own(int fd, int newfd)
{
	int lost = 0;

	cs_ebpf_wait_load();	/* newfd is released too */
	if (fd != newfd && __builtin_expect(CS_SLOT_IS_OURS(cs_fd_get(newfd)), 0))
		KEEP_ERRNO(lost = cs_watcher_evict(newfd) < 0);
	return lost;
}

/* What the table learns from dup2/dup3 of fd onto newfd that returned r
 * (lost: evict_own moved one of the shim's own descriptors off newfd). A
 * dup2 onto itself changes nothing; dup3 refuses it. */
static int duplicated_onto(int fd, int newfd, int r, int lost)
{
	if (r >= 0 && fd != newfd)
		KEEP_ERRNO(cs_fd_duplicated(fd, newfd));
	if (r == 2)	/* a new stderr, chosen on purpose */
		KEEP_ERRNO(cs_log_stderr_replaced());
	if (lost && r >= 0)
		KEEP_ERRNO(cs_watcher_lost(newfd));
	return r;
}

CS_EXPORT int dup2(int fd, int newfd)
{
	int lost = evict_own(fd, newfd);
	return duplicated_onto(fd, newfd, cs_real.dup2(fd, newfd), lost);
}

CS_EXPORT int dup3(int fd, int newfd, int flags)
{
	int lost = evict_own(fd, newfd);
	return duplicated_onto(fd, newfd, cs_real.dup3(fd, newfd, flags), lost);
}

static int do_fcntl(int fd, int cmd, long arg)
{
	int r = cs_real.fcntl(fd, cmd, arg);
	if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
		KEEP_ERRNO(cs_fd_duplicated(fd, r));
	return r;
}

/* The third argument is an int or a pointer depending on cmd; like libc we
 * carry it as a long, which holds either. */
CS_EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

CS_EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	long arg;
	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return do_fcntl(fd, cmd, arg);
}

CS_EXPORT int socket(int domain, int type, int protocol)
{
	int r = cs_real.socket(domain, type, protocol);
	if (r >= 0)
		KEEP_ERRNO(cs_fd_created(r, CS_FDCLASS_NET));
	return r;
}

CS_EXPORT int socketpair(int domain, int type, int protocol, int sv[2])
{
	int r = cs_real.socketpair(domain, type, protocol, sv);
	if (r == 0)
		KEEP_ERRNO(cs_fd_pair_created(sv[0], sv[1], CS_FDCLASS_NET));
	return r;
}

CS_EXPORT int pipe(int fds[2])
{
	int r = cs_real.pipe(fds);
	if (r == 0)
		KEEP_ERRNO(cs_fd_pair_created(fds[0], fds[1], CS_FDCLASS_PIPE));
	return r;
}

CS_EXPORT int pipe2(int fds[2], int flags)
{
	int r = cs_real.pipe2(fds, flags);
	if (r == 0)
		KEEP_ERRNO(cs_fd_pair_created(fds[0], fds[1], CS_FDCLASS_PIPE));
	return r;
}

/* Every open variant ends here; the class of what was opened is found
 * lazily, only if a thread serving a client ever uses it. */
static int do_openat(int dir, const char *path, int flags, mode_t mode)
{
	int r = cs_real.openat(dir, path, flags, mode);
	if (r >= 0)
		KEEP_ERRNO(cs_fd_created(r, 0));
	return r;
}

#define MODE_ARG(flags, mode)                                       \
	do {                                                        \
		if ((flags) & (O_CREAT | O_TMPFILE)) {              \
			va_list ap;                                 \
			va_start(ap, flags);                        \
			mode = va_arg(ap, mode_t);                  \
			va_end(ap);                                 \
		}                                                   \
	} while (0)

CS_EXPORT int open(const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

CS_EXPORT int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	return do_openat(AT_FDCWD, path, flags, mode);
}

CS_EXPORT int openat(int dir, const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	return do_openat(dir, path, flags, mode);
}

CS_EXPORT int openat64(int dir, const char *path, int flags, ...)
{
	mode_t mode = 0;
	MODE_ARG(flags, mode);
	return do_openat(dir, path, flags, mode);
}

CS_EXPORT int __open_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

CS_EXPORT int __open64_2(const char *path, int flags)
{
	return do_openat(AT_FDCWD, path, flags, 0);
}

CS_EXPORT int __openat_2(int dir, const char *path, int flags)
{
	return do_openat(dir, path, flags, 0);
}

CS_EXPORT int __openat64_2(int dir, const char *path, int flags)
{
	return do_openat(dir, path, flags, 0);
}

CS_EXPORT int creat(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

CS_EXPORT int creat64(const char *path, mode_t mode)
{
	return do_openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

CS_EXPORT int epoll_create(int size)
{
	int r;
	if (size <= 0) {
		errno = EINVAL;
		return -1;
	}
	r = cs_real.epoll_create1(0);
	if (r >= 0)
		KEEP_ERRNO(cs_fd_epoll_created(r));
	return r;
}

CS_EXPORT int epoll_create1(int flags)
{
	int r = cs_real.epoll_create1(flags);
	if (r >= 0)
		KEEP_ERRNO(cs_fd_epoll_created(r));
	return r;
}

CS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = cs_real.epoll_ctl(epfd, op, fd, ev);
	if (r == 0 && op == EPOLL_CTL_ADD)
		KEEP_ERRNO(cs_fd_epoll_added(epfd, fd));
	else if (r == 0 && op == EPOLL_CTL_DEL)
		KEEP_ERRNO(cs_fd_epoll_removed(epfd, fd));
	else if (r == 0 && op == EPOLL_CTL_MOD)
		KEEP_ERRNO(cs_fd_epoll_rearmed(epfd, fd));
	else if (r < 0 && op == EPOLL_CTL_ADD && errno == EEXIST)
		/* Already in the set: an event loop handed the connection back
		 * this way (libev, under puma's reactor, re-adds and takes
		 * EEXIST rather than MOD): a re-arm all the same. */
		KEEP_ERRNO(cs_fd_epoll_rearmed(epfd, fd));
	return r;
}

/* A TCP listener's port goes into the eBPF watcher's filter before the
 * socket listens, so no client it queues can be missed. */
CS_EXPORT int listen(int fd, int backlog)
{
	int r;

	cs_ebpf_before_listen(fd);
	r = cs_real.listen(fd, backlog);
	if (r == 0)
		KEEP_ERRNO(cs_fd_listening(fd));
	else
		cs_fd_exchange(fd, 0, 0);	/* not a listener after all */
	return r;
}

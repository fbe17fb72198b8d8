/* The watcher thread: one per process, started lazily, waiting on a private
 * epoll set. The set holds the client sockets watched from user space (mode
 * epoll, and in mode ebpf whatever the eBPF watcher does not cover) and, in
 * mode ebpf, the eBPF ring buffer (watch/ebpf_watcher.c).
 *
 * Client sockets are added to a private epoll set with EPOLLRDHUP|EPOLLET and
 * without EPOLLIN: data arriving on the socket is filtered out by the kernel
 * before it can wake us, so the watcher never reads the application's data
 * and never spins on pending input. It wakes for the peer's FIN (EPOLLRDHUP),
 * a reset (EPOLLERR|EPOLLHUP) or a closed unix peer (EPOLLHUP), once per edge.
 *
 * The event carries the connection's generation next to the fd number, so an
 * event that arrives after the fd was closed and reused names the old
 * connection, not the new one. Closing a socket removes it from the set
 * without an epoll_ctl call (the kernel does it when the file is released),
 * which keeps the per-connection cost at one system call. */
#include "cancel/disconnect.h"
#include "watch/watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/prctl.h>

#include "base/log.h"
#include "base/once.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "base/real.h"
#include "stats/stats.h"
#include "track/fdtable.h"
#include "watch/ebpf_watcher.h"

/* Started once (base/once.h); DONE while the thread and its set exist. */
static cs_once state = CS_ONCE_IDLE;
/* The watcher's epoll set, marked as the shim's own in the table (the close
 * wrappers spare it, dup2 onto it moves it first). -1 while none. */
static _Atomic int epfd = -1;
/* Which set the running watcher thread serves: a thread whose set was
 * replaced (lost, then recreated) leaves without acting on what it reads. */
static _Atomic unsigned set_gen;
static _Atomic int ring_fd = -1;	/* the eBPF ring, when in the set */
static _Atomic int lost_said;

/* The ring buffer's entry in the set; a client's data is gen<<32|fd, and a
 * generation is never all ones. */
#define RING_DATA (~0ull)

static void mark_own(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref(fd);
	if (ref)
		atomic_store(ref, CS_OTHER_MAKE(CS_FDCLASS_EXEMPT) | CS_OTHER_OURS);
}

static void forget_own(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	uint64_t s = ref ? atomic_load(ref) : 0;
	if (CS_SLOT_IS_OURS(s))
		atomic_compare_exchange_strong(ref, &s, 0);
}

static void *watch(void *arg)
{
	struct epoll_event events[64];
	int rst_only = cs_proc.cfg.on == CS_ON_RST;
	unsigned mine = (unsigned)(uintptr_t)arg;

	prctl(PR_SET_NAME, "cancelshim");
	for (;;) {
		int ring_ready = 0, fd = atomic_load(&epfd);
		if (atomic_load(&set_gen) != mine)
			return NULL;
		long n = cs_raw6(SYS_epoll_pwait, fd, (long)events, 64, cs_ebpf_poll_ms(), 0, 8);
		/* Replaced while we waited: what we read may be from a set that
		 * is no longer ours (a number the application reused). */
		if (atomic_load(&set_gen) != mine)
			return NULL;
		if (n == -EINTR)
			continue;
		if (n == -EBADF || n == -EINVAL) {
			/* Closed behind our back (a raw close), or the number now
			 * names something else: a new set, a new thread. */
			cs_watcher_lost(fd);
			return NULL;
		}
		if (n < 0) {
			cs_process_fail("the watcher's epoll_wait failed", (int)-n);
			return NULL;
		}
		for (long i = 0; i < n; i++) {
			uint32_t ev = events[i].events;
			int rst = (ev & EPOLLERR) != 0;
			if (events[i].data.u64 == RING_DATA) {
				ring_ready = 1;
				continue;
			}
			if (rst_only && !rst)
				continue;
			cs_disconnect((uint32_t)(events[i].data.u64 >> 32), (int)(uint32_t)events[i].data.u64, rst);
		}
		if (ring_ready)
			cs_ebpf_drain();
		cs_ebpf_tick();
	}
	return NULL;
}

/* A new epoll set and a thread to wait on it; the caller holds the state
 * word RUNNING. */
static int spawn(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	unsigned gen;
	long fd;
	int err;

	fd = cs_raw1(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (fd < 0) {
		cs_process_fail("cannot create the watcher's epoll set", (int)-fd);
		return (int)fd;
	}
	mark_own((int)fd);
	gen = atomic_fetch_add(&set_gen, 1) + 1;
	atomic_store(&epfd, (int)fd);
	/* The watcher must never run one of the application's signal handlers:
	 * it inherits a mask that blocks everything. */
	sigfillset(&all);
	cs_raw4(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	err = pthread_create(&thread, &attr, watch, (void *)(uintptr_t)gen);
	pthread_attr_destroy(&attr);
	cs_raw4(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (err) {
		atomic_store(&epfd, -1);
		forget_own((int)fd);
		cs_raw1(SYS_close, fd);
		cs_process_fail("cannot start the watcher thread", err);
		return -err;
	}
	return 0;
}

int cs_watcher_start(void)
{
	int err;

	/* Someone else is starting it: their registration attempt and ours
	 * both need the epoll set, which exists once DONE. */
	if (!cs_once_begin(&state))
		return cs_once_wait(&state) == CS_ONCE_DONE ? 0 : -EAGAIN;
	err = spawn();
	cs_once_end(&state, !err);
	if (!err)
		cs_info("watcher started");
	return err;
}

/* Re-registers a watched connection in a new set. */
static void rewatch(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);
	struct epoll_event ev = { .events = EPOLLRDHUP | EPOLLET };

	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || !(s & CS_CLIENT_REGISTERED))
		return;
	if ((s & CS_CLIENT_EBPF) && cs_ebpf_state() == CS_EBPF_LIVE)
		return;
	ev.data.u64 = ((uint64_t)(uint32_t)s << 32) | (uint32_t)fd;
	cs_raw4(SYS_epoll_ctl, *(int *)arg, EPOLL_CTL_ADD, fd, &ev);
}

void cs_watcher_lost(int fd)
{
	int nfd, ring;

	if (fd < 0 || atomic_load(&epfd) != fd)
		return;	/* not ours, or already replaced */
	if (!cs_once_redo(&state)) {	/* another thread replaces it */
		cs_once_wait(&state);
		return;
	}
	if (atomic_load(&epfd) != fd) {
		cs_once_end(&state, 1);
		return;
	}
	if (!atomic_exchange(&lost_said, 1))
		cs_log_failure(CS_LOG_WARN, "the application closed or replaced the shim's epoll descriptor %d; watching through a new one", fd);
	atomic_store(&epfd, -1);
	forget_own(fd);	/* whatever has that number now is not ours */
	if (spawn()) {
		cs_once_end(&state, 0);
		return;
	}
	nfd = atomic_load(&epfd);
	/* A peer that left meanwhile is reported at once when added. */
	ring = atomic_load(&ring_fd);
	if (ring >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = RING_DATA };
		cs_raw4(SYS_epoll_ctl, nfd, EPOLL_CTL_ADD, ring, &ev);
	}
	cs_fd_for_each(0, CS_FD_MAX - 1, rewatch, &nfd);
	cs_once_end(&state, 1);
}

void cs_watcher_rewatch_all(void)
{
	int fd;

	if (!cs_once_done(&state) && cs_watcher_start())
		return;
	fd = atomic_load(&epfd);
	if (fd >= 0)
		cs_fd_for_each(0, CS_FD_MAX - 1, rewatch, &fd);
}

int cs_watcher_keeps(int fd)
{
	long r;

	if (fd != atomic_load(&epfd))
		return 1;
	/* Still an epoll set? With no buffer, a ready event stays queued
	 * (EFAULT); a number that names something else says EINVAL. */
	r = cs_raw4(SYS_epoll_wait, fd, 0, 1, 0);
	if (r == -EBADF || r == -EINVAL) {
		cs_watcher_lost(fd);
		return 0;
	}
	return 1;
}

int cs_watcher_own_fds(int fds[CS_OWN_MAX_FDS])
{
	int n = cs_ebpf_own_fds(fds), e = atomic_load(&epfd), i;

	if (e < 0 || !cs_watcher_keeps(e))
		return n;
	/* Ascending, for the close_range wrapper. */
	for (i = n; i > 0 && fds[i - 1] > e; i--)
		fds[i] = fds[i - 1];
	fds[i] = e;
	return n + 1;
}

int cs_watcher_evict(int fd)
{
	long nfd;

	if (!CS_SLOT_IS_OURS(cs_fd_get(fd)))
		return 0;
	nfd = cs_raw3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0) {
		if (fd == atomic_load(&epfd))
			return -1;	/* the caller reports it lost once it is gone */
		return 0;
	}
	mark_own((int)nfd);
	if (atomic_load(&epfd) == fd) {
		int expected = fd;
		/* A waiting watcher keeps the file it waits on; its next
		 * wait uses the new number. */
		if (!atomic_compare_exchange_strong(&epfd, &expected, (int)nfd)) {
			forget_own((int)nfd);
			cs_raw1(SYS_close, nfd);
			return 0;
		}
	} else {
		int expected = fd;
		cs_ebpf_own_fd_moved(fd, (int)nfd);
		atomic_compare_exchange_strong(&ring_fd, &expected, (int)nfd);
	}
	forget_own(fd);
	return 0;
}

void cs_watcher_own_fd_lost(int fd)
{
	if (fd == atomic_load(&epfd))
		cs_watcher_lost(fd);
	else
		cs_ebpf_own_fd_lost(fd);
}

int cs_watcher_watch_ring(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = RING_DATA };
	int err;

	if (!cs_once_done(&state) && (err = cs_watcher_start()))
		return err;
	atomic_store(&ring_fd, fd);
	return (int)cs_raw4(SYS_epoll_ctl, atomic_load(&epfd), EPOLL_CTL_ADD, fd, &ev);
}

int cs_watcher_add(int fd, uint64_t slot)
{
	uint32_t gen = (uint32_t)slot;
	struct epoll_event ev;
	long r;

	cs_process_check();	/* never into a parent's epoll set */
	/* Covered by the eBPF watcher: nothing to do, no system call. */
	if ((slot & CS_CLIENT_EBPF) && cs_ebpf_state() == CS_EBPF_LIVE) {
		cs_stat_add(CS_STAT_REGISTERED, 1);
		cs_debug("watch conn=%u fd=%d via ebpf", gen, fd);
		cs_ebpf_confirm_pending(fd, slot);
		return 0;
	}
	if (!cs_once_done(&state)) {
		int err = cs_watcher_start();
		if (err)
			return err;
	}
	/* A fork child, or a process that never called listen(): its eBPF
	 * instance loads now, for the connections it accepts from now on. */
	if (cs_ebpf_state() == CS_EBPF_IDLE && !(slot & CS_CLIENT_INHERITED))
		cs_ebpf_first_watch();
	ev.events = EPOLLRDHUP | EPOLLET;
	ev.data.u64 = ((uint64_t)gen << 32) | (uint32_t)fd;
	for (int attempt = 0;; attempt++) {
		int set = atomic_load(&epfd);
		if (set < 0) {	/* being replaced */
			cs_once_wait(&state);
			if ((set = atomic_load(&epfd)) < 0)
				return -EAGAIN;
		}
		r = cs_raw4(SYS_epoll_ctl, set, EPOLL_CTL_ADD, fd, &ev);
		if (r == -EEXIST)	/* the same file under the same number, added before */
			r = cs_raw4(SYS_epoll_ctl, set, EPOLL_CTL_MOD, fd, &ev);
		/* EINVAL: the number is no longer an epoll set; EBADF with the
		 * client still open: it was closed behind our back. */
		if (attempt || !(r == -EINVAL || (r == -EBADF && cs_raw2(SYS_fcntl, fd, F_GETFD) >= 0)))
			break;
		cs_watcher_lost(set);
	}
	if (r == 0) {
		cs_stat_add(CS_STAT_REGISTERED, 1);
		cs_debug("watch conn=%u fd=%d via epoll", gen, fd);
	}
	return (int)r;
}

void cs_watcher_after_fork_child(void)
{
	int fd = atomic_exchange(&epfd, -1);

	/* The epoll set is shared with the parent: leave it to the parent. */
	if (fd >= 0) {
		forget_own(fd);
		cs_raw1(SYS_close, fd);
	}
	atomic_store(&ring_fd, -1);
	atomic_fetch_add(&set_gen, 1);
	cs_once_reset(&state);	/* the parent's thread is not in the child */
}

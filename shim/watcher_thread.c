/* The watcher thread: one per process, started lazily, waiting on a private
 * epoll set. The set holds the client sockets watched from user space (mode
 * epoll, and in mode ebpf whatever the eBPF watcher does not cover) and, in
 * mode ebpf, the eBPF ring buffer (watcher_ebpf.c).
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
#include "watcher.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/prctl.h>

#include "ebpf_watcher.h"
#include "fdtable.h"
#include "log.h"
#include "process.h"
#include "raw_syscall.h"
#include "real.h"
#include "stats.h"

enum { IDLE, STARTING, RUNNING, FAILED };

static _Atomic int state = IDLE;
static int epfd = -1;

/* The ring buffer's entry in the set; a client's data is gen<<32|fd, and a
 * generation is never all ones. */
#define RING_DATA (~0ull)

static void *watch(void *arg)
{
	struct epoll_event events[64];
	int rst_only = cs_proc.cfg.on == CS_ON_RST;

	(void)arg;
	prctl(PR_SET_NAME, "cancelshim");
	for (;;) {
		int ring_ready = 0;
		long n = cs_raw6(SYS_epoll_pwait, epfd, (long)events, 64, cs_ebpf_poll_ms(), 0, 8);
		if (n == -EINTR)
			continue;
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

int cs_watcher_start(void)
{
	int expected = IDLE;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	long fd;
	int err;

	if (!atomic_compare_exchange_strong(&state, &expected, STARTING)) {
		/* Someone else is starting it; their registration attempt and
		 * ours both need the epoll set, which exists once RUNNING. */
		while ((expected = atomic_load(&state)) == STARTING)
			cs_raw0(SYS_sched_yield);
		return expected == RUNNING ? 0 : -EAGAIN;
	}
	fd = cs_raw1(SYS_epoll_create1, EPOLL_CLOEXEC);
	if (fd < 0) {
		atomic_store(&state, FAILED);
		cs_process_fail("cannot create the watcher's epoll set", (int)-fd);
		return (int)fd;
	}
	epfd = (int)fd;
	/* The watcher must never run one of the application's signal handlers:
	 * it inherits a mask that blocks everything. */
	sigfillset(&all);
	cs_raw4(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, 8);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	err = pthread_create(&thread, &attr, watch, NULL);
	pthread_attr_destroy(&attr);
	cs_raw4(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
	if (err) {
		cs_raw1(SYS_close, epfd);
		epfd = -1;
		atomic_store(&state, FAILED);
		cs_process_fail("cannot start the watcher thread", err);
		return -err;
	}
	atomic_store(&state, RUNNING);
	cs_info("watcher started");
	return 0;
}

int cs_watcher_watch_ring(int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = RING_DATA };
	int err;

	if (atomic_load(&state) != RUNNING && (err = cs_watcher_start()))
		return err;
	return (int)cs_raw4(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, fd, &ev);
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
	if (atomic_load(&state) != RUNNING) {
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
	r = cs_raw4(SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, fd, &ev);
	if (r == -EEXIST)	/* the same file under the same number, added before */
		r = cs_raw4(SYS_epoll_ctl, epfd, EPOLL_CTL_MOD, fd, &ev);
	if (r == 0) {
		cs_stat_add(CS_STAT_REGISTERED, 1);
		cs_debug("watch conn=%u fd=%d via epoll", gen, fd);
	}
	return (int)r;
}

void cs_watcher_after_fork_child(void)
{
	/* The epoll set is shared with the parent: leave it to the parent. */
	if (epfd >= 0)
		cs_raw1(SYS_close, epfd);
	epfd = -1;
	atomic_store(&state, IDLE);
}

#include "policy/policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "cancel/cancel_log.h"
#include "cancel/cancel_signal.h"
#include "cancel/disconnect.h"
#include "cancel/observe.h"
#include "cancel/profile.h"
#include "policy/machinery.h"
#include "stats/stats.h"
#include "track/conn_key.h"
#include "track/kshared.h"
#include "watch/ebpf_watcher.h"
#include "watch/watcher.h"

/* ---- Binding ------------------------------------------------------------ */

static _Atomic int watch_failure_said;

/* Hands connection gen (seen through fd) to the watcher, once per
 * connection: the REGISTERED bit is claimed first so two threads binding at
 * once register it once. */
static void register_connection(int fd, uint64_t slot)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	uint32_t gen = (uint32_t)slot;
	uint64_t s;
	int err;

	if (!ref)
		return;
	cs_process_check();	/* a clone() child: not the parent's segment, epoll set */
	cs_stats_publish();	/* a fork child's first binding: its own segment */
	s = atomic_load(ref);
	for (;;) {
		if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (uint32_t)s != gen || (s & CS_CLIENT_REGISTERED))
			return;
		if (atomic_compare_exchange_weak(ref, &s, s | CS_CLIENT_REGISTERED))
			break;
	}
	err = cs_watcher_add(fd, s | CS_CLIENT_REGISTERED);
	/* Once per process: a limit reached (fs.epoll.max_user_watches, memory)
	 * fails every later registration too, and the host's stderr is not
	 * ours to fill. The statistics count what is not watched. */
	if (err && atomic_load(&cs_proc.active) && !atomic_exchange(&watch_failure_said, 1))
		cs_log_failure(CS_LOG_WARN, "cannot watch client fd %d (%s); the disconnects of clients the shim cannot watch will not cancel "
			"anything (said once)", fd, cs_errtext(-err));
}

static void watch_bound(struct cs_thread *t);

/* Binds the calling thread to the client connection behind fd. */
static void bind_to(struct cs_thread *t, int fd, uint64_t slot)
{
	uint32_t gen = (uint32_t)slot;
	uint64_t now, expected;

	cs_process_check();	/* a clone() child: its own records (and loop verdict) first */
	if (cs_tls.loop)
		return;
	if (!t && !(t = cs_machinery_thread()))
		return;
	/* A new binding drops the previous one, and its cancel flag with it. */
	atomic_store(&t->state, gen);
	t->bound_fd = fd;
	cs_debug("bind conn=%u fd=%d tid=%d", gen, fd, atomic_load(&t->tid));
	/* The client may be gone already (see disconnect.c for the order: this
	 * load must not move before the store above, hence seq_cst). BOUND
	 * tells a later parking (cs_conn_park) that a thread may hold it; set
	 * after the state, so a parking that misses the bit came before this
	 * binding. */
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	now = ref ? atomic_load(ref) : 0;
	if (CS_SLOT_KIND(now) == CS_KIND_CLIENT && (uint32_t)now == gen && !(now & CS_CLIENT_BOUND))
		now = atomic_fetch_or(ref, CS_CLIENT_BOUND) | CS_CLIENT_BOUND;
	/* Mode ebpf, kernel-side cancel: the program marks the connection's
	 * entry DEAD before it scans the threads, and the watcher sets DEAD in
	 * the descriptor's word only when it next wakes (a second later, maybe):
	 * the entry is read here, after the state, like the word. */
	if (CS_SLOT_KIND(now) == CS_KIND_CLIENT && (uint32_t)now == gen && (now & CS_CLIENT_EBPF) &&
	    !(now & CS_CLIENT_DEAD) && cs_kshared_on()) {
		int rst;
		if (cs_kshared_dead(cs_conn_key_kidx(fd), gen, &rst))
			now |= CS_CLIENT_DEAD;
	}
	if (CS_SLOT_KIND(now) == CS_KIND_CLIENT && (uint32_t)now == gen && (now & CS_CLIENT_DEAD)) {
		expected = gen;
		/* Gone before its request was read: the work about to start
		 * is for nobody, and may never make a call (profile.h). */
		if (atomic_compare_exchange_strong(&t->state, &expected, gen | CS_ST_CANCEL) &&
		    cs_profile_in_force() != CS_PROFILE_NONE && !cs_observing())
			cs_profile_cancel_busy(atomic_load(&t->tid));
		return;
	}
	/* A profile acts on a thread that may never make a call: its client is
	 * watched from the binding, not from a first call that may not come. */
	if (cs_profile_in_force() != CS_PROFILE_NONE)
		watch_bound(t);
}

struct survivor {
	uint32_t gen;
	int fd;
};

static void find_survivor(int fd, _Atomic uint64_t *slot, void *arg)
{
	struct survivor *sv = arg;
	uint64_t s = atomic_load(slot);

	if (sv->fd < 0 && CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == sv->gen)
		sv->fd = fd;
}

/* Client descriptor fd, whose word was old, went away (closed, replaced):
 * every caller passes the old word, so this is also where closes are
 * counted. The calling thread's binding to that connection ends, unless the
 * connection lives on under a duplicate (a server that moved its client
 * with dup2 and closed the original): it is then bound through that one.
 * The walk is for SHARED connections only, a rare case. */
void cs_conn_descriptor_gone(int fd, uint64_t old)
{
	struct cs_thread *t = cs_tls.rec;
	uint32_t gen = (uint32_t)old;
	uint64_t s;

	cs_stat_add(CS_STAT_CLOSED, 1);
	/* The kernel-side index must not name a connection we let go of. */
	if ((old & CS_CLIENT_EBPF) && cs_kshared_on()) {
		unsigned kidx = cs_conn_key_kidx(fd);
		int rst;
		/* Seen ending by the program, not yet by the watcher: its row
		 * counts now, the watcher will not find it any more. */
		if (!(old & CS_CLIENT_DEAD) && cs_kshared_dead(kidx, gen, &rst))
			cs_disconnect_kernel_closed(old);
		if (!(old & CS_CLIENT_SHARED))
			cs_kshared_closed(kidx, gen);
		/* The program's counts (a disconnect it saw, with nobody
		 * cancelled, shows by the time its descriptor is closed). */
		cs_disconnect_fold_kernel();
	}
	if (!t || !gen)
		return;
	s = atomic_load(&t->state);
	if ((uint32_t)s != gen)
		return;
	if (old & CS_CLIENT_SHARED) {
		struct survivor sv = { gen, -1 };
		cs_fd_for_each(0, CS_FD_MAX - 1, find_survivor, &sv);
		if (sv.fd >= 0) {
			if (t->bound_fd == fd)
				t->bound_fd = sv.fd;
			return;
		}
	}
	atomic_compare_exchange_strong(&t->state, &s, 0);
}

/* Ends the calling thread's binding, whatever it was (its cancel flag
 * with it): it moved on to other work. */
static void unbind_self(struct cs_thread *t)
{
	if (t && (atomic_load_explicit(&t->state, memory_order_relaxed) & CS_ST_GEN))
		atomic_store(&t->state, 0);
}

/* Ends t's binding to gen, if it has one, from any thread. The flag goes
 * with it: parking says the request on that connection was answered, so a
 * disconnect noticed before the parking concerns no work of t's. INCALL is
 * kept for the thread's own exit from its call (a signal already sent finds
 * no flag and counts as a stray: the call resumes). */
static int unbind_other(struct cs_thread *t, uint32_t gen)
{
	uint64_t s = atomic_load(&t->state);

	while ((uint32_t)s == gen)
		if (atomic_compare_exchange_weak(&t->state, &s, s & CS_ST_INCALL)) {
			cs_debug("park conn=%u: binding of tid %d ends", gen, atomic_load(&t->tid));
			return 1;
		}
	return 0;
}

void cs_conn_park(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	uint64_t s = ref ? atomic_load(ref) : 0;
	uint32_t gen = (uint32_t)s;
	size_t n;

	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || !(s & (CS_CLIENT_BOUND | CS_CLIENT_SHARED)))
		return;	/* nobody ever bound to it: the common case, one load */
	if (s & CS_CLIENT_BOUND)
		s = atomic_fetch_and(ref, ~CS_CLIENT_BOUND);
	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (uint32_t)s != gen || !(s & (CS_CLIENT_BOUND | CS_CLIENT_SHARED)))
		return;
	n = cs_threads_limit();
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		if (t && atomic_load_explicit(&t->tid, memory_order_relaxed))
			unbind_other(t, gen);
	}
}

/* The watcher starts watching a connection at the first call a cancel could
 * fail: a request served without one costs it nothing (no epoll_ctl, no
 * wake-up when the client leaves), and epoll_ctl reports at once a peer that
 * is already gone. A fork child, whose words lost REGISTERED, watches anew
 * the same way. */
static void watch_bound(struct cs_thread *t)
{
	uint64_t slot = cs_fd_get(t->bound_fd);

	if (CS_SLOT_KIND(slot) == CS_KIND_CLIENT && !(slot & (CS_CLIENT_REGISTERED | CS_CLIENT_UNSCOPED)) &&
	    (uint32_t)slot == (uint32_t)atomic_load(&t->state))
		register_connection(t->bound_fd, slot);
}

/* ---- Call classes ------------------------------------------------------- */

/* What a descriptor nobody told us about is, found once with fstat (and, for
 * a socket, whether it listens) and remembered in the table. */
uint64_t cs_call_classify(int fd)
{
	struct stat st;
	uint64_t value;
	int listening = 0;
	socklen_t len = sizeof listening;

	if (cs_raw2(SYS_fstat, fd, &st) < 0)
		return 0;
	switch (st.st_mode & S_IFMT) {
	case S_IFSOCK:
		if (cs_raw6(SYS_getsockopt, fd, SOL_SOCKET, SO_ACCEPTCONN, (long)&listening, (long)&len, 0) == 0 && listening)
			value = CS_SLOT_MAKE(CS_KIND_LISTENER, 0);
		else
			value = CS_OTHER_MAKE(CS_FDCLASS_NET);
		break;
	case S_IFREG:
	case S_IFBLK:
		value = CS_OTHER_MAKE(CS_FDCLASS_FILE);
		break;
	case S_IFIFO:
	case S_IFCHR:
		value = CS_OTHER_MAKE(CS_FDCLASS_PIPE);
		break;
	case 0:	/* anonymous inodes: eventfd, timerfd, signalfd... */
		value = CS_OTHER_MAKE(CS_FDCLASS_WAITOBJ);
		break;
	default:
		value = CS_OTHER_MAKE(CS_FDCLASS_EXEMPT);
		break;
	}
	_Atomic uint64_t *ref = cs_fd_ref(fd);
	if (ref) {
		uint64_t expected = 0;
		atomic_compare_exchange_strong(ref, &expected, value);
	}
	return value;
}

/* The CS_CLASS_* bit a call on fd belongs to; 0 for never failed. */
static unsigned call_class(int fd, uint64_t slot)
{
	static const unsigned by_fdclass[8] = {
		[CS_FDCLASS_NET] = CS_CLASS_NET,
		[CS_FDCLASS_FILE] = CS_CLASS_FILE,
		[CS_FDCLASS_PIPE] = CS_CLASS_PIPE,
		[CS_FDCLASS_WAITOBJ] = CS_CLASS_WAIT,
	};

	if (fd <= 2)	/* stdin, stdout, stderr: the error path's logs */
		return 0;
	if (CS_SLOT_KIND(slot) == CS_KIND_NONE)
		slot = cs_call_classify(fd);
	if (CS_SLOT_KIND(slot) != CS_KIND_OTHER)
		return 0;
	return by_fdclass[CS_OTHER_CLASS(slot)];
}

/* ---- I/O ---------------------------------------------------------------- */

/* An event loop waits on what slot describes (fdtable.h: CS_OTHER_WAKES). */
static int a_loop_waits_on(uint64_t slot)
{
	uint32_t w = CS_OTHER_WAKES(slot);
	uint64_t e;

	if (CS_SLOT_KIND(slot) != CS_KIND_OTHER || !w)
		return 0;
	if (w == CS_OTHER_POLL_LOOP)
		return 1;
	e = cs_fd_get((int)(w - 1));
	return CS_SLOT_KIND(e) == CS_KIND_EPOLL && CS_EPOLL_IS_LOOPS(e);
}

/* Writing to slot's descriptor wakes an event loop: an eventfd (or FIFO)
 * the loop waits on, or the other end of a pipe or socket pair it waits on
 * (puma's nio4r and waitress write to a pipe, asyncio to a socket pair). */
static int wakes_a_loop(uint64_t slot)
{
	int partner = CS_OTHER_PARTNER(slot);

	if (CS_SLOT_KIND(slot) != CS_KIND_OTHER)
		return 0;
	if (CS_OTHER_CLASS(slot) != CS_FDCLASS_NET && a_loop_waits_on(slot))
		return 1;
	return partner >= 0 && a_loop_waits_on(cs_fd_get(partner));
}

/* NULL: pass the call through; else the thread whose call may be failed. */
static struct cs_thread *io_slow(struct cs_thread *t, int fd, uint64_t slot, int dontwait, int reads)
{
	struct cs_thread *result = NULL;
	int saved = errno;

	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed) || cs_tls.busy)
		return NULL;
	if (CS_SLOT_KIND(slot) == CS_KIND_CLIENT) {
		/* Reading a client's request is the evidence that the thread
		 * serves it. Writing to a client is not (a pool worker writes
		 * the response of a request an event loop read, waitress), but
		 * it says the thread is no longer busy with the one it was
		 * bound to. */
		if (reads)
			bind_to(t, fd, slot);
		else
			unbind_self(t);
	} else {
		/* Waking an event loop (its pipe or eventfd) is how a pool
		 * worker hands a connection back (puma's reactor, Tomcat's
		 * poller, waitress's trigger); the loop may take a while to
		 * park it, and the worker runs its next request meanwhile. The
		 * wake-up itself then goes straight to libc: nothing to cancel. */
		if (!reads && wakes_a_loop(slot))
			unbind_self(t);
		else if (!dontwait && (call_class(fd, slot) & cs_proc.cfg.calls)) {
			watch_bound(t);
			result = t;
		}
	}
	errno = saved;
	return result;
}

static void count_failure(unsigned cls, const char *what, int fd)
{
	cs_stat_add(cls == CS_CLASS_WAIT ? CS_STAT_FAILED_WAIT : cls == CS_CLASS_FILE ? CS_STAT_FAILED_FILE
		    : cls == CS_CLASS_PIPE ? CS_STAT_FAILED_PIPE : CS_STAT_FAILED_NET, 1);
	cs_debug("ECANCELED %s fd=%d", what, fd);
}

/* Mode ebpf: the watcher marks a connection PENDING rather than spend a
 * system call on it when none of its threads is inside a call a cancel could
 * fail (watch/ebpf_watcher.c). A thread about to enter one looks, after setting
 * INCALL, so that this look or the watcher's scan of INCALL threads sees the
 * other; it confirms the disconnect itself (one getsockopt, once) and its
 * call then fails at once. */
static void enter_call(struct cs_thread *t)
{
	uint64_t st = atomic_fetch_or(&t->state, CS_ST_INCALL), s = cs_fd_get(t->bound_fd);

	if (__builtin_expect((s & (CS_CLIENT_PENDING | CS_CLIENT_DEAD)) == CS_CLIENT_PENDING, 0) &&
	    CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == (uint32_t)st) {
		/* Out of the call while confirming: no signal to ourselves. */
		atomic_fetch_and(&t->state, ~CS_ST_INCALL);
		cs_ebpf_confirm_pending(t->bound_fd, s);
		atomic_fetch_or(&t->state, CS_ST_INCALL);
	}
}

/* Observe mode's cancellable path: the call is issued as it is, never
 * failed; a cancel flag found on entry, or set while inside (disconnect.c),
 * is counted once. may_block: 0 for a call that cancel would not fail (a
 * non-blocking descriptor). */
static long observe_call(struct cs_thread *t, int may_block, long nr, long a1, long a2, long a3, long a4, long a5,
			 long a6)
{
	uint64_t st;
	long r;

	atomic_store_explicit(&t->call_nr, may_block ? (int)nr : 0, memory_order_relaxed);
	enter_call(t);
	st = atomic_load(&t->state);
	if ((st & CS_ST_CANCEL) && may_block)
		cs_observe_would_cancel(t, (uint32_t)st, t->bound_fd);
	r = cs_raw6(nr, a1, a2, a3, a4, a5, a6);
	atomic_fetch_and(&t->state, ~CS_ST_INCALL);
	return r;
}

/* The one cancellable sequence, shared by I/O and waits: system call nr
 * issued so that a cancel interrupts it (cancel/syscall_cp_x86_64.S), its
 * raw result in *r and the thread's state word as the call left it in *st.
 * CP_STRAY: interrupted by our own signal meant for no cancel of this
 * thread (a stray one), not by the application's; CP_CANCELLED: the thread
 * was cancelled in or before the call. */
enum cp_outcome { CP_DONE, CP_STRAY, CP_CANCELLED };

static inline enum cp_outcome cancellable_call(struct cs_thread *t, long nr, long a1, long a2, long a3, long a4,
					       long a5, long a6, long *r, uint64_t *st)
{
	uint8_t strays = cs_tls.strays;

	atomic_store_explicit(&t->call_nr, (int)nr, memory_order_relaxed);
	enter_call(t);
	*r = cs_syscall_cp(&t->state, nr, a1, a2, a3, a4, a5, a6);
	*st = atomic_fetch_and(&t->state, ~CS_ST_INCALL);
	if (*r == -EINTR && !(*st & CS_ST_CANCEL) && cs_tls.strays != strays)
		return CP_STRAY;
	if ((*r == -ECANCELED || *r == -EINTR) && (*st & CS_ST_CANCEL))
		return CP_CANCELLED;
	return CP_DONE;
}

/* A cancelled call of class cls fails: counted, logged, its latency taken. */
static long fail_cancelled(struct cs_thread *t, unsigned cls, const char *what, int fd, long nr, uint64_t st)
{
	count_failure(cls, what, fd);
	if (cs_kshared_on()) {
		uint32_t why = atomic_load_explicit(&t->cancel_rst, memory_order_relaxed);
		/* The program made this cancel: its counts, and the debug line
		 * the watcher would have written. */
		cs_disconnect_fold_kernel();
		if ((why & 2) && atomic_load_explicit(&t->cancel_gen, memory_order_relaxed) == (uint32_t)st) {
			cs_debug("cancel conn=%u tid=%d reason=%s (by the kernel)", (uint32_t)st, atomic_load(&t->tid),
				 (why & 1) ? "rst" : "fin");
			cs_disconnect_kernel_seen((uint32_t)st, t->bound_fd);
		}
	}
	cs_stats_port_cancel(t->bound_fd, (uint32_t)st);
	cs_cancel_log(t, nr);
	cs_stats_cancel_done(t, (uint32_t)st);
	return -ECANCELED;
}

/* Issues system call nr for a bound thread so that a cancel interrupts it:
 * the raw result (-errno), -ECANCELED, or CS_PASS for a cancelled thread's
 * call that turned out to be non-blocking (never failed: libc issues it). */
static long io_call(struct cs_thread *t, int fd, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	enum cp_outcome o;
	uint64_t st;
	long r, fl;

	if (__builtin_expect(cs_observing(), 0)) {
		fl = cs_raw2(SYS_fcntl, fd, F_GETFL);
		return observe_call(t, !(fl >= 0 && (fl & O_NONBLOCK)), nr, a1, a2, a3, a4, a5, a6);
	}
	do	/* our signal, not the application's: issued again, as SA_RESTART would */
		o = cancellable_call(t, nr, a1, a2, a3, a4, a5, a6, &r, &st);
	while (o == CP_STRAY);
	if (o == CP_DONE)
		return r;
	/* Cancelled. A non-blocking call is never failed: issue it for real. */
	fl = cs_raw2(SYS_fcntl, fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		return CS_PASS;
	return fail_cancelled(t, call_class(fd, cs_fd_get(fd)), "io", fd, nr, st);
}

struct cs_thread *cs_io_decide(int fd, int dontwait, int reads)
{
	if (cs_io_direct(fd))
		return NULL;	/* serving no one, or its own client */
	return io_slow(cs_tls.rec, fd, cs_fd_get(fd), dontwait, reads);
}

/* The calls that read what a peer sent: on a client socket, its request. */
static int nr_reads(long nr)
{
	switch (nr) {
	case SYS_read: case SYS_readv: case SYS_pread64: case SYS_preadv: case SYS_preadv2:
	case SYS_recvfrom: case SYS_recvmsg: case SYS_recvmmsg:
		return 1;
	default:
		return 0;
	}
}

long cs_io_route(int fd, int dontwait, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	uint64_t slot = cs_fd_get(fd);
	struct cs_thread *t;

	/* Reading another client: what the read finds decides (cs_io_read_done).
	 * puma's worker looks at a new connection (a zero-timeout select, a
	 * read that may find nothing) before handing it to its reactor, then
	 * runs a request the reactor read for another client: bound by the look,
	 * it was cancelled when the first client left. */
	if (CS_SLOT_KIND(slot) == CS_KIND_CLIENT && nr_reads(nr) && !cs_io_direct(fd)) {
		cs_tls.read_gen = (uint32_t)slot;
		return CS_PASS_READ;
	}
	t = cs_io_decide(fd, dontwait, 0);
	return t ? io_call(t, fd, nr, a1, a2, a3, a4, a5, a6) : CS_PASS;
}

void cs_io_read_done(int fd, long result)
{
	uint64_t slot = cs_fd_get(fd);
	int saved = errno;

	/* Bytes from the very connection read (not another one that took its
	 * number meanwhile): the thread serves it. */
	if (result > 0 && CS_SLOT_KIND(slot) == CS_KIND_CLIENT && (uint32_t)slot == cs_tls.read_gen)
		io_slow(cs_tls.rec, fd, slot, 0, 1);
	else if (atomic_load_explicit(&cs_proc.active, memory_order_relaxed) && !cs_tls.busy)
		unbind_self(cs_tls.rec);
	errno = saved;
}

/* ---- Waits -------------------------------------------------------------- */

static void add_client(struct cs_wait_scan *w, uint32_t gen, int fd)
{
	if (w->clients == 0) {
		w->clients = 1;
		w->client_gen = gen;
		w->client_fd = fd;
	} else if (gen != w->client_gen) {
		w->clients = 2;
	}
}

static void fold_epoll(struct cs_wait_scan *w, uint64_t e)
{
	unsigned n = CS_EPOLL_NCLIENTS(e);

	if (e & CS_EPOLL_LISTENER)
		w->listener = 1;
	if (n >= 2) {
		w->clients = 2;
	} else if (n == 1) {
		int fd = CS_EPOLL_SINGLE_FD(e);
		uint64_t s = cs_fd_get(fd);
		if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == (uint32_t)e) {
			add_client(w, (uint32_t)e, fd);
			if (e & CS_EPOLL_DISPATCHER)
				w->dispatcher = 1;
		}
	}
}

void cs_wait_scan_fd(struct cs_wait_scan *w, int fd)
{
	uint64_t s = cs_fd_get(fd);

	switch (CS_SLOT_KIND(s)) {
	case CS_KIND_CLIENT:
		add_client(w, (uint32_t)s, fd);
		break;
	case CS_KIND_LISTENER:
		w->listener = 1;
		break;
	case CS_KIND_EPOLL:
		fold_epoll(w, s);
		break;
	default:
		break;
	}
}

void cs_wait_scan_epoll(struct cs_wait_scan *w, int epfd)
{
	uint64_t s = cs_fd_get(epfd);
	if (CS_SLOT_KIND(s) == CS_KIND_EPOLL)
		fold_epoll(w, s);
}

/* The thread runs an event loop: it serves many clients at once, so no
 * single disconnect may ever cancel it. */
void cs_wait_become_loop(struct cs_thread *t)
{
	if (t)
		atomic_store(&t->state, 0);
	if (!cs_tls.loop) {
		cs_tls.loop = 1;
		cs_stat_add(CS_STAT_LOOP_THREADS, 1);
		cs_debug("thread %ld runs an event loop: never cancelled", cs_raw0(SYS_gettid));
	}
}

struct cs_thread *cs_wait_decide(struct cs_thread *t, const struct cs_wait_scan *w, int zero_timeout)
{
	struct cs_thread *result = NULL;
	int saved = errno;

	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed) || cs_tls.busy)
		return NULL;
	if (w->clients >= 2 || ((w->listener || w->dispatcher) && w->clients)) {
		/* Only what a thread waits on makes it an event loop (never an
		 * epoll_ctl on someone else's set). */
		cs_wait_become_loop(t);
	} else if (w->listener) {
		/* Waiting for connections only: an acceptor, done with the
		 * request it served (as after accept). */
		if (t)
			atomic_store(&t->state, 0);
	} else if (w->clients == 1) {
		/* Waiting on one client's socket: its own events end the wait
		 * naturally, and the thread serves that client. A look that does
		 * not wait (zero timeout) is no such evidence: the thread is
		 * checking for work, done with any other client. */
		if (!t || w->client_gen != (uint32_t)atomic_load(&t->state)) {
			if (!zero_timeout)
				bind_to(t, w->client_fd, cs_fd_get(w->client_fd));
			else
				unbind_self(t);
		}
	} else if (t && (atomic_load(&t->state) & CS_ST_GEN)) {
		if (!zero_timeout && (cs_proc.cfg.calls & CS_CLASS_WAIT)) {
			watch_bound(t);
			result = t;
		}
	}
	errno = saved;
	return result;
}

long cs_wait_call(struct cs_thread *t, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	enum cp_outcome o;
	uint64_t st;
	long r;

	if (__builtin_expect(cs_observing(), 0))
		return observe_call(t, 1, nr, a1, a2, a3, a4, a5, a6);
	o = cancellable_call(t, nr, a1, a2, a3, a4, a5, a6, &r, &st);
	if (o == CP_STRAY)
		return CS_RESTART;	/* the wrapper issues it again */
	if (o == CP_CANCELLED)
		return fail_cancelled(t, CS_CLASS_WAIT, "wait", -1, nr, st);
	return r;
}

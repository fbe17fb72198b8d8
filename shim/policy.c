#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cancel_log.h"
#include "cancel_signal.h"
#include "ebpf_watcher.h"
#include "log.h"
#include "process.h"
#include "raw_syscall.h"
#include "stats.h"
#include "watcher.h"

/* ---- Binding ------------------------------------------------------------ */

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
	cs_stats_publish();	/* a fork child's first binding: its own segment */
	s = atomic_load(ref);
	for (;;) {
		if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (uint32_t)s != gen || (s & CS_CLIENT_REGISTERED))
			return;
		if (atomic_compare_exchange_weak(ref, &s, s | CS_CLIENT_REGISTERED))
			break;
	}
	err = cs_watcher_add(fd, s | CS_CLIENT_REGISTERED);
	if (err && atomic_load(&cs_proc.active))
		cs_warn("cannot watch client fd %d: error %d; its disconnect will not cancel anything", fd, -err);
}

/* Binds the calling thread to the client connection behind fd. */
static void bind_to(struct cs_thread *t, int fd, uint64_t slot)
{
	uint32_t gen = (uint32_t)slot;
	uint64_t now, expected;

	if (cs_tls.loop)
		return;
	if (!t && !(t = cs_process_thread()))
		return;
	/* A new binding drops the previous one, and its cancel flag with it. */
	atomic_store(&t->state, gen);
	t->bound_fd = fd;
	cs_debug("bind conn=%u fd=%d tid=%d", gen, fd, atomic_load(&t->tid));
	/* The client may be gone already (see disconnect.c for the order: this
	 * load must not move before the store above, hence seq_cst). */
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	now = ref ? atomic_load(ref) : 0;
	if (CS_SLOT_KIND(now) == CS_KIND_CLIENT && (uint32_t)now == gen && (now & CS_CLIENT_DEAD)) {
		expected = gen;
		atomic_compare_exchange_strong(&t->state, &expected, gen | CS_ST_CANCEL);
	}
}

/* Every caller passes the generation of a client descriptor that just went
 * away (closed, replaced), so this is also where closes are counted. */
static void unbind_if(uint32_t gen)
{
	struct cs_thread *t = cs_tls.rec;
	uint64_t s;

	cs_stat_add(CS_STAT_CLOSED, 1);
	if (!t)
		return;
	s = atomic_load(&t->state);
	if ((uint32_t)s == gen && gen)
		atomic_compare_exchange_strong(&t->state, &s, 0);
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
static uint64_t classify(int fd)
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
		slot = classify(fd);
	if (CS_SLOT_KIND(slot) != CS_KIND_OTHER)
		return 0;
	return by_fdclass[CS_OTHER_CLASS(slot)];
}

/* ---- I/O ---------------------------------------------------------------- */

/* NULL: pass the call through; else the thread whose call may be failed. */
static struct cs_thread *io_slow(struct cs_thread *t, int fd, uint64_t slot, int dontwait)
{
	struct cs_thread *result = NULL;
	int saved = errno;

	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed) || cs_tls.busy)
		return NULL;
	if (CS_SLOT_KIND(slot) == CS_KIND_CLIENT) {
		bind_to(t, fd, slot);	/* I/O on another client: it serves that one now */
	} else {
		if (!dontwait && (call_class(fd, slot) & cs_proc.cfg.calls)) {
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
 * fail (watcher_ebpf.c). A thread about to enter one looks, after setting
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

/* Issues system call nr for a bound thread so that a cancel interrupts it:
 * the raw result (-errno), -ECANCELED, or CS_PASS for a cancelled thread's
 * call that turned out to be non-blocking (never failed: libc issues it). */
static long io_call(struct cs_thread *t, int fd, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	uint64_t st;
	long r, fl;

	uint8_t strays;

again:
	strays = cs_tls.strays;
	enter_call(t);
	r = cs_syscall_cp(&t->state, nr, a1, a2, a3, a4, a5, a6);
	st = atomic_fetch_and(&t->state, ~CS_ST_INCALL);
	if (r == -EINTR && !(st & CS_ST_CANCEL) && cs_tls.strays != strays)
		goto again;	/* our signal, not the application's: as SA_RESTART would */
	if ((r != -ECANCELED && r != -EINTR) || !(st & CS_ST_CANCEL))
		return r;
	/* Cancelled. A non-blocking call is never failed: issue it for real. */
	fl = cs_raw2(SYS_fcntl, fd, F_GETFL);
	if (fl >= 0 && (fl & O_NONBLOCK))
		return CS_PASS;
	count_failure(call_class(fd, cs_fd_get(fd)), "io", fd);
	cs_cancel_log(t, nr);
	cs_stats_cancel_done(t, (uint32_t)st);
	return -ECANCELED;
}

struct cs_thread *cs_io_decide(int fd, int dontwait)
{
	if (cs_io_direct(fd))
		return NULL;	/* serving no one, or its own client */
	return io_slow(cs_tls.rec, fd, cs_fd_get(fd), dontwait);
}

long cs_io_route(int fd, int dontwait, long nr, long a1, long a2, long a3, long a4, long a5, long a6)
{
	struct cs_thread *t = cs_io_decide(fd, dontwait);
	return t ? io_call(t, fd, nr, a1, a2, a3, a4, a5, a6) : CS_PASS;
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
		if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == (uint32_t)e)
			add_client(w, (uint32_t)e, fd);
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
static void become_loop(struct cs_thread *t)
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
	if (w->clients >= 2 || (w->listener && w->clients)) {
		become_loop(t);
	} else if (w->listener) {
		/* Waiting for connections only: an acceptor, done with the
		 * request it served (as after accept). */
		if (t)
			atomic_store(&t->state, 0);
	} else if (w->clients == 1) {
		/* Waiting on one client's socket: its own events end the wait
		 * naturally, and the thread serves that client. */
		if (!t || w->client_gen != (uint32_t)atomic_load(&t->state))
			bind_to(t, w->client_fd, cs_fd_get(w->client_fd));
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
	uint8_t strays = cs_tls.strays;
	uint64_t st;
	long r;

	enter_call(t);
	r = cs_syscall_cp(&t->state, nr, a1, a2, a3, a4, a5, a6);
	st = atomic_fetch_and(&t->state, ~CS_ST_INCALL);
	if (r == -EINTR && !(st & CS_ST_CANCEL) && cs_tls.strays != strays)
		return CS_RESTART;
	if ((r == -ECANCELED || r == -EINTR) && (st & CS_ST_CANCEL)) {
		count_failure(CS_CLASS_WAIT, "wait", -1);
		cs_cancel_log(t, nr);
		cs_stats_cancel_done(t, (uint32_t)st);
		return -ECANCELED;
	}
	return r;
}

/* ---- Descriptor life cycle ---------------------------------------------- */

void cs_fd_accept_begin(void)
{
	struct cs_thread *t = cs_tls.rec;
	/* An acceptor serves no one: accept ends the binding. */
	if (t && (atomic_load_explicit(&t->state, memory_order_relaxed) & CS_ST_GEN))
		atomic_store(&t->state, 0);
}

void cs_fd_closing(int fd, uint64_t slot)
{
	uint64_t old = cs_fd_exchange(fd, 0, 0);
	if (CS_SLOT_KIND(old) == CS_KIND_CLIENT)
		unbind_if((uint32_t)old);
}

static void close_one(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t old;
	(void)fd, (void)arg;
	if (CS_SLOT_IS_OURS(atomic_load(slot)))
		return;	/* spared by the close_range wrapper */
	old = atomic_exchange(slot, 0);
	if (CS_SLOT_KIND(old) == CS_KIND_CLIENT)
		unbind_if((uint32_t)old);
}

void cs_fd_closing_range(unsigned first, unsigned last)
{
	cs_fd_for_each(first, last, close_one, NULL);
}

void cs_fd_duplicated(int oldfd, int newfd)
{
	uint64_t s = cs_fd_get(oldfd), prev;

	if (oldfd == newfd)	/* dup2(fd, fd) changes nothing */
		return;
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT) {
		/* Both descriptors must learn of the disconnect (disconnect.c). */
		_Atomic uint64_t *ref = cs_fd_ref_existing(oldfd);
		if (ref)
			atomic_fetch_or(ref, CS_CLIENT_SHARED);
		s |= CS_CLIENT_SHARED;
	}
	prev = cs_fd_exchange(newfd, s, 1);
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT)
		cs_stat_add(CS_STAT_DUPLICATED, 1);
	/* dup2 over a client socket closed it implicitly. */
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT && (uint32_t)prev != (uint32_t)s)
		unbind_if((uint32_t)prev);
}

void cs_fd_created(int fd, enum cs_fdclass cls)
{
	/* A new descriptor replaces whatever an unseen close left behind. */
	uint64_t prev = cs_fd_exchange(fd, cls ? CS_OTHER_MAKE(cls) : 0, 0);
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT)
		unbind_if((uint32_t)prev);
}

void cs_fd_listening(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref(fd);
	uint64_t s;

	if (!ref)
		return;
	s = atomic_load(ref);
	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER)
		atomic_store(ref, CS_SLOT_MAKE(CS_KIND_LISTENER, 0));
}

void cs_fd_epoll_created(int epfd)
{
	uint64_t prev = cs_fd_exchange(epfd, CS_SLOT_MAKE(CS_KIND_EPOLL, 0), 0);
	if (CS_SLOT_KIND(prev) == CS_KIND_CLIENT)
		unbind_if((uint32_t)prev);
}

/* Folds what fd is into the summary of the epoll set epfd. */
static uint64_t epoll_with(uint64_t e, int fd, uint64_t s)
{
	unsigned n = CS_EPOLL_NCLIENTS(e);

	switch (CS_SLOT_KIND(s)) {
	case CS_KIND_LISTENER:
		return e | CS_EPOLL_LISTENER;
	case CS_KIND_EPOLL:	/* a nested set counts with what it holds */
		if (s & CS_EPOLL_LISTENER)
			e |= CS_EPOLL_LISTENER;
		if (CS_EPOLL_NCLIENTS(s) >= 2)
			return CS_EPOLL_WITH_NCLIENTS(e, 2);
		if (CS_EPOLL_NCLIENTS(s) == 1)	/* as if its client were added here */
			return epoll_with(e, CS_EPOLL_SINGLE_FD(s), CS_SLOT_MAKE(CS_KIND_CLIENT, (uint32_t)s));
		return e;
	case CS_KIND_CLIENT:
		if (n >= 2)
			return e;
		if (!(e & CS_EPOLL_SERVED))	/* its first client */
			return CS_EPOLL_WITH_SINGLE(CS_EPOLL_WITH_NCLIENTS(e, 1) | CS_EPOLL_SERVED, fd, (uint32_t)s);
		if ((uint32_t)e == (uint32_t)s)	/* the same client again (or a dup of it) */
			return n == 1 ? e : CS_EPOLL_WITH_SINGLE(CS_EPOLL_WITH_NCLIENTS(e, 1), fd, (uint32_t)s);
		/* Another client, beside the first or after it: a set that
		 * serves clients in turn belongs to an event loop. A thread per
		 * connection makes a set per connection (PostgreSQL, selectors). */
		return CS_EPOLL_WITH_NCLIENTS(e, 2);
	default:
		return e;
	}
}

void cs_fd_epoll_added(int epfd, int fd)
{
	uint64_t s = cs_fd_get(fd), e;
	_Atomic uint64_t *ref;
	int saved = errno;

	if (CS_SLOT_KIND(s) == CS_KIND_NONE)
		s = classify(fd);	/* a listener we did not see created */
	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT && CS_SLOT_KIND(s) != CS_KIND_LISTENER && CS_SLOT_KIND(s) != CS_KIND_EPOLL)
		goto out;
	if (!(ref = cs_fd_ref(epfd)))
		goto out;
	e = atomic_load(ref);
	for (;;) {
		uint64_t base = CS_SLOT_KIND(e) == CS_KIND_EPOLL ? e : CS_SLOT_MAKE(CS_KIND_EPOLL, 0);
		uint64_t next = epoll_with(base, fd, s);
		if (next == e || atomic_compare_exchange_weak(ref, &e, next)) {
			e = next;
			break;
		}
	}
	/* Adding a client to a set that already holds a listener or another
	 * client: the thread doing it runs an event loop, and knows it before
	 * it first reads from this client. */
	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && ((e & CS_EPOLL_LISTENER) || CS_EPOLL_NCLIENTS(e) >= 2) &&
	    atomic_load_explicit(&cs_proc.active, memory_order_relaxed))
		become_loop(cs_tls.rec);
out:
	errno = saved;
}

void cs_fd_epoll_removed(int epfd, int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(epfd);
	uint64_t s = cs_fd_get(fd), e;

	if (!ref || CS_SLOT_KIND(s) != CS_KIND_CLIENT)
		return;
	e = atomic_load(ref);
	if (CS_SLOT_KIND(e) == CS_KIND_EPOLL && CS_EPOLL_NCLIENTS(e) == 1 && CS_EPOLL_SINGLE_FD(e) == fd &&
	    (uint32_t)e == (uint32_t)s)
		atomic_compare_exchange_strong(ref, &e, CS_EPOLL_WITH_NCLIENTS(e, 0));
}

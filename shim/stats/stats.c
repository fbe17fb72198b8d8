/* Where the counters live, and their move into the shared segment.
 *
 * Until the process first accepts a client, cs_stats points at a private
 * array. Publishing creates the segment (stats_segment.c), fills its header,
 * points cs_stats at its counters and drains the private ones into it. A
 * fork child points back at its own private array, zeroed: the parent's
 * segment is the parent's; the child publishes its own at its first binding.
 *
 * Writers only ever do relaxed atomic adds on the array they loaded; the
 * reader (cancelctl) maps the file read-only and never takes a lock, so a
 * reader never blocks a writer. An add that loaded the private array just
 * before the switch and lands after the drain is lost: a window of a few
 * instructions, once per process. */
#include "stats/stats.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "base/log.h"
#include "base/once.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "config.h"
#include "ports.h"
#include "stats/stats_segment.h"
#include "track/fdtable.h"

static _Atomic uint64_t private_counters[CS_STAT_COUNT];
_Atomic(_Atomic uint64_t *) cs_stats_where = private_counters;
static struct cs_seg_port private_ports[CS_SEG_PORTS_MAX];
_Atomic(struct cs_seg_port *) cs_port_stats_where = private_ports;

_Static_assert(CS_PORTS_TCP_MAX + CS_PORTS_UNIX_MAX <= CS_SEG_PORTS_MAX, "a CANCELSHIM_PORTS entry without a row");
_Static_assert(CS_SEG_PORTS_MAX < 32, "entry indices are 5 bits in the descriptor table");

/* Dead processes' segments looked at by each new publisher. Enough to keep
 * up with a server that forks per request, whose children all _exit(). */
#define SWEEP_MAX 256

/* Published once per process (base/once.h): IDLE until the first binding. */
static cs_once pub_state = CS_ONCE_IDLE;
static struct cs_seg_header *segment;	/* set while DONE */
static int segment_pid;			/* the pid it is named after */
static uint64_t segment_ns;		/* ... and the pid namespace */
static struct cs_segment_id segment_id;	/* the file we made */
static _Atomic long segment_owner = -1;	/* its owner's uid */

uint64_t cs_stats_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy_str(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src[i] && i < len - 1; i++)
		dst[i] = src[i];
	dst[i] = 0;
}

static void fill_header(struct cs_seg_header *h, uint64_t ns, int pid)
{
	struct timespec ts;

	cs_seg_header_layout(h, pid, ns);
	h->start_time = cs_segment_start_time();
	clock_gettime(CLOCK_REALTIME, &ts);
	h->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	copy_str(h->mode, sizeof h->mode, cs_process_mode_name());
	copy_str(h->canceller, sizeof h->canceller, cs_process_canceller_name());
	copy_str(h->mode_requested, sizeof h->mode_requested, cs_mode_name(cs_proc.cfg.mode));
	copy_str(h->on, sizeof h->on, cs_on_name(cs_proc.cfg.on));
	cs_calls_format(cs_proc.cfg.calls, h->calls, sizeof h->calls);
	cs_signal_format(cs_proc.cfg.signo, h->signal, sizeof h->signal);
	cs_segment_cmdline(h->cmdline, sizeof h->cmdline);
	h->ports_offset = CS_SEG_PORTS_OFFSET;
}

/* The per-listener region: its header and one labelled row per entry. */
static struct cs_seg_port *fill_ports(struct cs_seg_header *h)
{
	struct cs_seg_ports *r = (struct cs_seg_ports *)((char *)h + CS_SEG_PORTS_OFFSET);
	struct cs_seg_port *rows = (struct cs_seg_port *)(r + 1);
	unsigned n = cs_ports_entries(&cs_proc.cfg.ports);

	r->version = CS_SEG_PORTS_VERSION;
	r->count = n < CS_SEG_PORTS_MAX ? n : CS_SEG_PORTS_MAX;
	r->entry_size = sizeof(struct cs_seg_port);
	r->ncounters = CS_PORT_STAT_COUNT;
	for (unsigned i = 0; i < r->count; i++)
		cs_ports_entry_label(&cs_proc.cfg.ports, i, rows[i].label, sizeof rows[i].label);
	return rows;
}

void cs_stats_port_cancel(int fd, uint32_t gen)
{
	uint64_t s = cs_fd_get(fd);

	if (CS_SLOT_KIND(s) == CS_KIND_CLIENT && (uint32_t)s == gen)
		cs_stats_port_add(CS_CLIENT_PORT(s), CS_PORT_CANCELS);
}

void cs_stats_publish(void)
{
	int err = 0, pid;
	struct cs_seg_header *h = NULL;
	_Atomic uint64_t *shared;
	struct cs_seg_port *rows;
	uint64_t ns;

	if (__builtin_expect(!cs_once_idle(&pub_state), 1))
		return;
	if (!cs_once_begin(&pub_state))
		return;	/* another thread is at it; counts go private meanwhile */
	pid = (int)cs_raw0(SYS_getpid);
	ns = cs_segment_pid_ns();
	if (!ns)
		err = -ENOENT;	/* no /proc: nobody could tell whether we live */
	else
		h = cs_segment_create(ns, pid, &segment_id, &err);
	if (!h) {
		cs_once_end(&pub_state, 0);
		/* A full /dev/shm is the operator's business: say it once. */
		if (err == -ENOSPC || err == -EDQUOT)
			cs_log_failure(CS_LOG_WARN, "statistics off: no room in " CS_SEG_DIR " for the segment; serving on");
		else	/* counters stay private; what failed says the shim's own line, if any */
			cs_info("no statistics segment (error %d): counters stay private", -err);
		return;
	}
	fill_header(h, ns, pid);
	rows = fill_ports(h);
	shared = (_Atomic uint64_t *)((char *)h + CS_SEG_HEADER_SIZE);
	segment = h;
	segment_pid = pid;
	segment_ns = ns;
	atomic_store(&segment_owner, cs_raw0(SYS_geteuid));
	atomic_store_explicit(&cs_stats_where, shared, memory_order_release);
	for (unsigned i = 0; i < CS_STAT_COUNT; i++) {
		uint64_t v = atomic_exchange_explicit(&private_counters[i], 0, memory_order_relaxed);
		if (v)
			atomic_fetch_add_explicit(&shared[i], v, memory_order_relaxed);
	}
	atomic_store_explicit(&cs_port_stats_where, rows, memory_order_release);
	for (unsigned i = 0; i < CS_SEG_PORTS_MAX; i++)
		for (unsigned k = 0; k < CS_PORT_STAT_COUNT; k++) {
			uint64_t v = __atomic_exchange_n(&private_ports[i].c[k], 0, __ATOMIC_RELAXED);
			if (v)
				__atomic_fetch_add(&rows[i].c[k], v, __ATOMIC_RELAXED);
		}
	/* Readers skip a segment until its magic is there. */
	__atomic_store_n(&h->magic, CS_SEG_MAGIC, __ATOMIC_RELEASE);
	cs_once_end(&pub_state, 1);
	cs_info("statistics in " CS_SEG_DIR "/" CS_SEG_PREFIX "%llu.%d", (unsigned long long)ns, pid);
	/* Bounded: a publisher pays for at most SWEEP_MAX kill(pid, 0). */
	cs_segment_sweep(ns, pid, SWEEP_MAX);
}

static void count_inherited(int fd, _Atomic uint64_t *slot, void *arg)
{
	(void)fd;
	if (CS_SLOT_KIND(atomic_load_explicit(slot, memory_order_relaxed)) == CS_KIND_CLIENT)
		++*(uint64_t *)arg;
}

void cs_stats_after_fork_child(void)
{
	uint64_t inherited = 0;

	if (segment) {
		/* Not ours to write or to remove. */
		cs_raw2(SYS_munmap, segment, CS_SEG_SIZE);
		segment = NULL;
	}
	for (unsigned i = 0; i < CS_STAT_COUNT; i++)
		atomic_store_explicit(&private_counters[i], 0, memory_order_relaxed);
	for (unsigned i = 0; i < CS_SEG_PORTS_MAX; i++)
		for (unsigned k = 0; k < CS_PORT_STAT_COUNT; k++)
			__atomic_store_n(&private_ports[i].c[k], 0, __ATOMIC_RELAXED);
	atomic_store(&cs_stats_where, private_counters);
	atomic_store(&cs_port_stats_where, private_ports);
	cs_once_reset(&pub_state);
	cs_fd_for_each(0, CS_FD_MAX - 1, count_inherited, &inherited);
	if (inherited)
		cs_stat_add(CS_STAT_INHERITED, inherited);
}

void cs_stats_cancel_done(struct cs_thread *t, uint32_t gen)
{
	uint64_t at = atomic_exchange_explicit(&t->cancel_ns, 0, memory_order_relaxed);
	uint64_t now;

	/* No stamp: the flag was set by a binding to a connection already
	 * dead, or this is not the first failed call since the cancel. */
	if (!at || atomic_load_explicit(&t->cancel_gen, memory_order_relaxed) != gen)
		return;
	now = cs_stats_now_ns();
	cs_stat_add(CS_STAT_LATENCY + cs_latency_bucket(now > at ? (now - at) / 1000 : 0), 1);
}

/* At exit: the segment goes with the process. A process killed by a signal
 * or ending with _exit leaves it behind; cancelctl removes those. */
__attribute__((destructor)) static void unpublish(void)
{
	if (cs_once_done(&pub_state) && segment && segment_pid == (int)cs_raw0(SYS_getpid))
		cs_segment_remove(segment_ns, segment_pid);
}

/* Ours to give: published by this very process (not a fork child's copy). */
static int own_segment(void)
{
	return cs_once_done(&pub_state) && segment && segment_pid == (int)cs_raw0(SYS_getpid);
}

long cs_stats_owner_change(uid_t uid)
{
	long prev = atomic_load(&segment_owner);

	if (uid == (uid_t)-1 || !own_segment() || prev == (long)uid)
		return -1;
	if (cs_segment_chown(segment_ns, segment_pid, &segment_id, uid) < 0)
		return -1;	/* not privileged: the call will fail anyway */
	atomic_store(&segment_owner, (long)uid);
	return prev;
}

void cs_stats_owner_restore(long prev)
{
	if (prev >= 0 && own_segment() && cs_segment_chown(segment_ns, segment_pid, &segment_id, (uid_t)prev) == 0)
		atomic_store(&segment_owner, prev);
}

void cs_stats_mode_changed(void)
{
	if (cs_once_done(&pub_state) && segment) {
		copy_str(segment->mode, sizeof segment->mode, cs_process_mode_name());
		copy_str(segment->canceller, sizeof segment->canceller, cs_process_canceller_name());
	}
}

/* The kernel-assisted watcher (see ebpf_watcher.h for when a connection is
 * covered by it). One instance of ebpf/disconnect.bpf.c per process, loaded
 * through the light skeleton: raw bpf() calls, relocations done by the
 * kernel, no libbpf in the host. It reports only sockets in the process's
 * network namespace whose local port is one the process listens on; the
 * watcher maps each event to a descriptor by its key and confirms it with
 * the socket cookie (a key can be shared, a descriptor reused). */
#include "watch/ebpf_watcher.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/log.h"
#include "base/once.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "cancel/disconnect.h"
#include "stats/stats.h"
#include "track/conn_key.h"
#include "track/fdtable.h"
#include "track/kshared.h"
#include "track/threads.h"
#include "watch/bpf_ring.h"

_Atomic unsigned cs_ebpf_epoch;

static int no_ring(int fd) { (void)fd; return -ENOSYS; }
static void no_rewatch(void) {}
static struct cs_ebpf_host host = { no_ring, no_rewatch };

void cs_ebpf_set_host(const struct cs_ebpf_host *h)
{
	host = *h;
}

enum cs_ebpf_state cs_ebpf_state(void)
{
	return atomic_load(&cs_proc.ebpf_state);
}

/* Why mode ebpf (or auto) cannot be had here, found at load but said only
 * when it matters, once per process: at its first TCP listen, or its first
 * accept from a TCP listener it did not make. A shell or an ls started by a
 * server's system() says nothing. */
static const char *unavailable;
static enum cs_log_level unavailable_level;
static _Atomic int unavailable_said;

static void defer_unavailable(enum cs_log_level level, const char *why)
{
	unavailable_level = level;
	unavailable = why;
}

/* The port of fd if it is a TCP socket (bound), else 0. */
static uint16_t tcp_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(int), sl = sizeof ss;
	int proto = 0;

	if (cs_raw6(SYS_getsockopt, fd, SOL_SOCKET, SO_PROTOCOL, (long)&proto, (long)&len, 0) < 0 || proto != IPPROTO_TCP)
		return 0;
	if (cs_raw3(SYS_getsockname, fd, &ss, &sl) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

/* fd listens (or is about to) while the watcher is off: if it is TCP, the
 * reason, once. */
static void say_unavailable_for(int fd)
{
	if (!unavailable || atomic_load(&unavailable_said) || cs_tls.busy || !tcp_port(fd))
		return;
	if (!atomic_exchange(&unavailable_said, 1))
		cs_log_failure(unavailable_level, "ebpf unavailable (%s); using epoll", unavailable);
}

#ifndef CS_HAVE_BPF

enum cs_ebpf_state cs_ebpf_configure(enum cs_mode mode)
{
	if (mode == CS_MODE_EBPF)
		defer_unavailable(CS_LOG_WARN, "this build has no eBPF watcher (-Dbpf=disabled)");
	return CS_EBPF_OFF;
}

void cs_ebpf_before_listen(int fd)
{
	int saved = errno;
	say_unavailable_for(fd);
	errno = saved;
}

void cs_ebpf_listener_met(int lfd) { say_unavailable_for(lfd); }
void cs_ebpf_first_watch(void) {}
void cs_ebpf_drain(void) {}
void cs_ebpf_check_straddler(int fd, uint64_t slot) { (void)fd, (void)slot; }
void cs_ebpf_check_accepted(int fd, uint64_t slot, uint64_t key) { (void)fd, (void)slot, (void)key; }
void cs_ebpf_fd_duplicated(int oldfd, int newfd, uint64_t slot) { (void)oldfd, (void)newfd, (void)slot; }
void cs_ebpf_machinery_started(void) {}
int cs_ebpf_confirm_pending(int fd, uint64_t slot) { (void)fd, (void)slot; return 0; }
int cs_ebpf_poll_ms(void) { return -1; }
void cs_ebpf_tick(void) {}
void cs_ebpf_after_fork_child(void) {}
void cs_ebpf_fork_prepare(void) {}
void cs_ebpf_fork_parent(void) {}
void cs_ebpf_fork_child_adopt(void) {}
int cs_ebpf_own_fds(int fds[CS_EBPF_MAX_FDS]) { (void)fds; return 0; }
void cs_ebpf_wait_load(void) {}
void cs_ebpf_own_fd_moved(int from, int to) { (void)from, (void)to; }
void cs_ebpf_own_fd_lost(int fd) { (void)fd; }

#else

#include "bpf_prereq.h"
#include "cancel/cancel_signal.h"
#include "cancel/profile.h"
#include "disconnect.h"
#include "kcancel.h"
#include "watch/disconnect_skel.h"

static enum cs_log_level fail_level;	/* warn when asked for by name, else info */
static struct disconnect *skel;
static int own_fds[CS_EBPF_MAX_FDS];	/* what stays open after loading, ascending */
static int n_own;
static uint64_t dropped_seen;
static _Atomic int need_poll;		/* a listener waits to be TRUSTED */
static uint64_t last_poll_ns;
static _Atomic int ring_watched;	/* the watcher thread reads the ring */
/* prep is in use, from the prepare handler to the parent's or child's
 * handler: descriptor-releasing wrappers of other threads wait meanwhile
 * (cs_ebpf_wait_load), as they do for a load. glibc runs fork handlers
 * under its own lock, so two forks never prepare at once. */
static _Atomic int preparing;

static void start_reading(void);

static struct cs_bpf_ring ring;

/* ---- before loading ----------------------------------------------------- */

/* /proc/self/status into buf; 0, or -1. */
static int read_status(char *buf, size_t len)
{
	long fd = cs_raw4(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC, 0), n;

	if (fd < 0)
		return -1;
	n = cs_raw3(SYS_read, fd, buf, len - 1);
	cs_raw1(SYS_close, fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Is a seccomp filter installed (the "Seccomp:" line of /proc/self/status
 * is 2)? A filter that does not list bpf() may kill the process for calling
 * it (systemd's SystemCallFilter= does by default): never risk the host for
 * a faster watcher. */
static int seccomp_filtered(void)
{
	char buf[4096];
	const char *p;

	if (read_status(buf, sizeof buf) < 0)
		return 1;	/* cannot tell: do not risk it */
	p = strstr(buf, "\nSeccomp:");
	if (!p)
		return 0;	/* a kernel without seccomp */
	p += strlen("\nSeccomp:");
	while (*p == ' ' || *p == '\t')
		p++;
	return *p != '0';
}

static const char *missing_prerequisite(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };

	if (cs_raw2(SYS_capget, &h, d) < 0)
		return "cannot read the process's capabilities";
	if (!bpf_prereq_privileged(d))
		return "needs root or CAP_BPF+CAP_PERFMON";
	if (cs_raw2(SYS_access, BPF_PREREQ_KERNEL_BTF, R_OK) < 0)
		return "the kernel has no BTF (" BPF_PREREQ_KERNEL_BTF ")";
	if (seccomp_filtered())
		return "a seccomp filter is active, and bpf() could kill the process";
	return NULL;
}

enum cs_ebpf_state cs_ebpf_configure(enum cs_mode mode)
{
	const char *why;

	if (mode != CS_MODE_AUTO && mode != CS_MODE_EBPF)
		return CS_EBPF_OFF;
	fail_level = mode == CS_MODE_EBPF ? CS_LOG_WARN : CS_LOG_INFO;
	if ((why = missing_prerequisite())) {
		defer_unavailable(fail_level, why);
		return CS_EBPF_OFF;
	}
	cs_once_reset(&cs_proc.ebpf_state);	/* loaded when first needed */
	return CS_EBPF_IDLE;
}

/* ---- the kernel-side cancel: can the program cancel by itself? ------------ */

/* Is the process in a pid namespace other than the initial one (its NSpid
 * line has more than one field)? The program names threads by their global
 * id, and the records hold the ids gettid() gives. */
static int in_child_pid_ns(void)
{
	char buf[4096];
	const char *p;

	if (read_status(buf, sizeof buf) < 0)
		return 1;
	p = strstr(buf, "\nNSpid:");
	if (!p)
		return 0;	/* a kernel without pid namespaces */
	p += strlen("\nNSpid:");
	while (*p == ' ' || *p == '\t')
		p++;
	while (*p >= '0' && *p <= '9')
		p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p >= '0' && *p <= '9';
}

/* Linux 6.13 added bpf_send_signal_task. Before it the program is loaded
 * with the kernel-side cancel compiled out (the verifier drops the calls to
 * the missing kfuncs as dead code); if a kernel that claims the version still
 * refuses the program, load() loads it again without. */
static int kernel_has_signal_kfunc(void)
{
	struct utsname u;
	int major = 0, minor = 0;
	const char *p;

	if (cs_raw1(SYS_uname, &u) < 0)
		return 0;
	for (p = u.release; *p >= '0' && *p <= '9'; p++)
		major = major * 10 + (*p - '0');
	if (*p++ != '.')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++)
		minor = minor * 10 + (*p - '0');
	return major > 6 || (major == 6 && minor >= 13);
}

/* Why the program must not cancel by itself here, or NULL. */
static const char *kcancel_unwanted(void)
{
	if (cs_proc.cfg.kcancel == CS_KCANCEL_OFF)
		return "CANCELSHIM_KCANCEL=off";
	if (cs_proc.cfg.action == CS_ACTION_OBSERVE)
		return "CANCELSHIM_ACTION=observe";
	if (cs_profile_in_force() != CS_PROFILE_NONE)
		return "a profile acts on busy threads (CANCELSHIM_PROFILE)";
	if (!kernel_has_signal_kfunc())
		return "the kernel has no bpf_send_signal_task (Linux 6.13)";
	if (in_child_pid_ns())
		return "the process is in a pid namespace";
	if (cs_kshared_inherited())
		return "a fork child of a process that had it";
	return NULL;
}

static const char *kcancel_why;	/* why not, for the info line */
static struct kc_shared *kc_mem;	/* the mapped `shared` value */

/* After the load with the kernel-side cancel compiled in: map the shared
 * value and hand its records to the registry; 0, or -1 with kcancel_why. */
static int share_with_kernel(void)
{
	long m = cs_raw6(SYS_mmap, 0, cs_kshared_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED,
			 skel->maps.shared.map_fd, 0);

	if (m < 0 && m > -4096) {
		kcancel_why = "cannot map the shared memory";
		return -1;
	}
	kc_mem = (struct kc_shared *)m;
	if (cs_kshared_install(kc_mem) < 0) {
		kcancel_why = cs_kshared_inherited() ? "a fork child of a process that had it"
						     : "threads were registered before the program loaded";
		cs_raw2(SYS_munmap, kc_mem, cs_kshared_bytes());
		kc_mem = NULL;
		return -1;
	}
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

static void mark_own(int fd)
{
	_Atomic uint64_t *ref = cs_fd_ref(fd);
	if (ref)
		atomic_store(ref, CS_OTHER_MAKE(CS_FDCLASS_EXEMPT) | CS_OTHER_OURS);
	own_fds[n_own++] = fd;
}

static void close_raw(int fd)
{
	if (fd > 0)
		cs_raw1(SYS_close, fd);
}

/* The descriptors the running instance needs: the two links (they keep the
 * programs attached), the port filter and the ring. The rest go: the links
 * hold the programs, the programs hold their maps, the mappings hold theirs. */
static void keep_only_what_runs(void)
{
	int keep[] = { skel->links.on_set_state_fd, skel->links.on_receive_reset_fd,
		       skel->maps.lports.map_fd, skel->maps.events.map_fd };

	close_raw(skel->progs.on_set_state.prog_fd);
	close_raw(skel->progs.on_receive_reset.prog_fd);
	close_raw(skel->maps.conns.map_fd);
	close_raw(skel->maps.shared.map_fd);	/* kept alive by the programs and the mapping */
	close_raw(skel->maps.live.map_fd);
	close_raw(skel->maps.rodata.map_fd);
	close_raw(skel->maps.bss.map_fd);
	close_raw(skel->maps.owner.map_fd);	/* an instance made for a fork child: named by now */
	n_own = 0;
	/* Ascending, for the close_range wrapper. */
	for (int i = 0; i < 4; i++)
		for (int j = i + 1; j < 4; j++)
			if (keep[j] < keep[i]) {
				int t = keep[i];
				keep[i] = keep[j];
				keep[j] = t;
			}
	for (int i = 0; i < 4; i++)
		mark_own(keep[i]);
}

static int add_port(uint16_t port)
{
	__u16 key = port;
	__u8 one = 1;
	return skel_map_update_elem(skel->maps.lports.map_fd, &key, &one, 0) ? -errno : 0;
}

/* Listeners known before the instance: their port goes in, and they are
 * TRUSTED once their queue is seen empty (cs_ebpf_tick). */
static void add_listener(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);

	(void)fd, (void)arg;
	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER || !(s & CS_LISTENER_TCP) || (s & CS_LISTENER_IN_MAP))
		return;
	if (add_port(CS_LISTENER_PORT(s)) == 0) {
		atomic_fetch_or(slot, CS_LISTENER_IN_MAP);
		atomic_store(&need_poll, 1);
	}
}

/* The most connections one accept queue holds (net.core.somaxconn caps
 * every backlog); 4096, the default since Linux 5.4, if it cannot be read. */
static unsigned queue_cap(void)
{
	char buf[16] = { 0 };
	long fd = cs_raw4(SYS_openat, AT_FDCWD, "/proc/sys/net/core/somaxconn", O_RDONLY | O_CLOEXEC, 0), n;

	if (fd < 0)
		return 4096;
	n = cs_raw3(SYS_read, fd, buf, sizeof buf - 1);
	cs_raw1(SYS_close, fd);
	return n > 0 && atoi(buf) > 0 ? (unsigned)atoi(buf) : 4096;
}

/* Opens and loads the program, not attached, quiet until a thread serves a
 * client (start_reading): with the kernel-side cancel unless *kc_why says
 * why not, and without it if that does not load (*kc_why then says so).
 * tgid: the pid whose threads the program may signal, or 0 for an instance
 * a parent loads for its fork child (the child names itself in the map
 * `owner`, adopt_prepared). 0, or -errno with *what. */
static int open_and_load(struct disconnect **out, const char **kc_why, __s32 tgid, const char **what)
{
	struct disconnect *s;
	struct stat st;
	long r;
	int err;

	/* A filter installed after the shim's load (the server sandboxing
	 * itself before it listens). */
	*what = "checking for a seccomp filter";
	if (seccomp_filtered())
		return -EPERM;
	*what = "reading /proc/self/ns/net";
	if ((r = cs_raw4(SYS_newfstatat, AT_FDCWD, "/proc/self/ns/net", &st, 0)) < 0)
		return (int)r;
	for (int kc = !*kc_why;; kc = 0) {
		*what = "opening the skeleton";
		if (!(s = disconnect__open()))
			return -ENOMEM;
		s->rodata->filter_lports = true;
		s->rodata->target_netns = (__u32)st.st_ino;
		/* Every connection on a listed port, including those established
		 * before the instance existed: matching picks ours. */
		s->rodata->passive_only = false;
		s->rodata->kcancel = kc;
		s->rodata->kc_rst_only = cs_proc.cfg.on == CS_ON_RST;
		s->rodata->kc_signo = cs_proc.cfg.signo;
		s->rodata->kc_cookie = cs_proc.cookie;
		s->rodata->kc_tgid = tgid;
		*what = "loading the program";
		if (!disconnect__load(s))
			break;
		err = errno ? -errno : -EINVAL;
		disconnect__destroy(s);
		if (!kc)
			return err;
		/* The same program without the kernel-side cancel. */
		*kc_why = "the program that cancels did not load";
	}
	s->bss->quiet = true;
	*out = s;
	return 0;
}

static int load(void)
{
	const char *what;
	int err;

	kcancel_why = kcancel_unwanted();
	if ((err = open_and_load(&skel, &kcancel_why, cs_proc.pid, &what)))
		goto fail;
	if (!kcancel_why && share_with_kernel() < 0)
		skel->bss->kc_off = true;
	what = "attaching to the TCP tracepoints";
	if ((err = disconnect__attach(skel)))
		goto fail_errno;
	what = "mapping the ring buffer";
	if ((err = cs_bpf_ring_map(&ring, skel->maps.events.map_fd, DISCONNECT_RINGBUF_BYTES)))
		goto fail;
	dropped_seen = skel->bss->dropped;
	cs_conn_key_size_unmatched(queue_cap());
	keep_only_what_runs();
	return 0;
fail_errno:
	err = errno ? -errno : -EINVAL;
fail:
	cs_log_failure(fail_level, "ebpf unavailable (%s: %s); using epoll", what, cs_errtext(-err));
	cs_kshared_stop();	/* chunk 0 stays mapped: the registry holds records there */
	cs_bpf_ring_unmap(&ring);
	for (int i = 0; i < n_own; i++) {
		cs_fd_exchange(own_fds[i], 0, 0);
		close_raw(own_fds[i]);
	}
	if (!n_own)
		disconnect__destroy(skel);
	n_own = 0;
	skel = NULL;
	return err;
}

/* In whichever thread first needs it: listen(), or accept() in a process
 * that did not listen. About 60 system calls and 10-30 ms, once. */
static void load_once(void)
{
	int busy = cs_tls.busy;

	if (!cs_once_begin(&cs_proc.ebpf_state))
		return;	/* off, loaded, failed, or another thread is at it */
	cs_tls.busy = 1;	/* the skeleton's own calls pass straight through */
	if (load() == 0) {
		atomic_store(&cs_proc.kernel_cancels, kcancel_why == NULL);
		cs_once_end(&cs_proc.ebpf_state, 1);
		cs_fd_for_each(0, CS_FD_MAX - 1, add_listener, NULL);
		cs_stats_mode_changed();
		if (!kcancel_why)
			cs_info("eBPF watcher attached; the kernel cancels");
		else
			cs_info("eBPF watcher attached; kernel-side cancel unavailable (%s)", kcancel_why);
		/* A fork child that loads at its first accept may have its
		 * machinery already (it is inherited). */
		if (cs_once_done(&cs_proc.machinery))
			start_reading();
	} else {
		cs_once_end(&cs_proc.ebpf_state, 0);
	}
	cs_tls.busy = busy;
}

void cs_ebpf_wait_load(void)
{
	/* The loading thread's own closes (busy) must not wait for itself. */
	if (__builtin_expect(!cs_once_running(&cs_proc.ebpf_state) &&
			     !atomic_load_explicit(&preparing, memory_order_relaxed), 1) || cs_tls.busy)
		return;
	/* A clone() child of a process caught loading has no loader: its
	 * reset makes the state IDLE again (and ends a preparing). */
	cs_process_check();
	cs_once_wait(&cs_proc.ebpf_state);
	while (atomic_load(&preparing))
		cs_raw0(SYS_sched_yield);	/* a fork's instance for its child (fork handlers) */
}

/* ---- listeners ---------------------------------------------------------- */

void cs_ebpf_before_listen(int fd)
{
	_Atomic uint64_t *ref;
	uint16_t port;
	int saved = errno;

	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_OFF) {
		say_unavailable_for(fd);
		goto out;
	}
	if (cs_tls.busy || !(port = tcp_port(fd)) || !(ref = cs_fd_ref(fd)))
		goto out;
	/* Stored before looking at the state: a load running in another
	 * thread adds it when it finishes (add_listener) if we miss it here. */
	atomic_store(ref, CS_SLOT_MAKE(CS_KIND_LISTENER, port) | CS_LISTENER_TYPE_KNOWN | CS_LISTENER_STREAM |
		     CS_LISTENER_TCP);
	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_IDLE)
		load_once();
	/* Not listening yet: no client can be queued, so it is TRUSTED now. */
	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_LIVE && add_port(port) == 0)
		atomic_fetch_or(ref, CS_LISTENER_IN_MAP | CS_LISTENER_TRUSTED);
out:
	errno = saved;
}

void cs_ebpf_listener_met(int lfd)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(lfd);
	uint16_t port;

	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_OFF) {
		say_unavailable_for(lfd);
		return;
	}
	if (!ref || !(port = tcp_port(lfd)))
		return;
	atomic_fetch_or(ref, CS_LISTENER_TCP | port);
	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_LIVE)
		add_listener(lfd, ref, NULL);
}

void cs_ebpf_first_watch(void)
{
	load_once();
	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_LIVE)
		start_reading();
}

/* The TCP state of fd (TCP_ESTABLISHED...), or -1; for a listening socket
 * *queued is its accept queue's length (TCP_INFO's tcpi_unacked). */
static int tcp_state(int fd, unsigned *queued)
{
	struct tcp_info ti;
	socklen_t len = sizeof ti;

	if (cs_raw6(SYS_getsockopt, fd, IPPROTO_TCP, TCP_INFO, (long)&ti, (long)&len, 0) < 0)
		return -1;
	if (queued)
		*queued = ti.tcpi_unacked;
	return ti.tcpi_state;
}

static int queue_empty(int fd)
{
	unsigned queued = 1;
	return tcp_state(fd, &queued) == TCP_LISTEN && queued == 0;
}

/* A listener in the filter is TRUSTED once its accept queue is seen empty:
 * every connection accepted afterwards arrived after its port went in. */
static void try_trust(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);
	int *left = arg;

	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER || !(s & CS_LISTENER_IN_MAP) || (s & CS_LISTENER_TRUSTED))
		return;
	if (queue_empty(fd))
		atomic_compare_exchange_strong(slot, &s, s | CS_LISTENER_TRUSTED);
	else
		(*left)++;
}

/* With the kernel-side cancel the program wakes the watcher only for what
 * it could not do: the rest is read at least once a second. */
#define LAZY_DRAIN_MS 1000

int cs_ebpf_poll_ms(void)
{
	if (atomic_load(&need_poll))
		return 2;
	return cs_kshared_on() && atomic_load(&ring_watched) ? LAZY_DRAIN_MS : -1;
}

void cs_ebpf_tick(void)
{
	uint64_t now;
	int left = 0;

	if (cs_kshared_on() && atomic_load(&ring_watched)) {
		cs_ebpf_drain();
		cs_disconnect_fold_kernel();
	}
	if (!atomic_load(&need_poll))
		return;
	now = cs_stats_now_ns();
	if (now - last_poll_ns < 2000000)
		return;
	last_poll_ns = now;
	atomic_store(&need_poll, 0);
	cs_fd_for_each(0, CS_FD_MAX - 1, try_trust, &left);
	if (left)
		atomic_store(&need_poll, 1);
}

/* ---- events ------------------------------------------------------------- */

/* fd has the event's key: is it the event's socket? The cookie says so even
 * if two connections share the key, or fd was closed and reused since. */
static int same_socket(int fd, uint64_t cookie)
{
	uint64_t c = 0;
	socklen_t len = sizeof c;

	return cs_raw6(SYS_getsockopt, fd, SOL_SOCKET, SO_COOKIE, (long)&c, (long)&len, 0) == 0 && c == cookie;
}

/* Is a thread bound to connection gen inside a call a cancel could fail? */
static int bound_thread_in_call(uint32_t gen)
{
	size_t n = cs_threads_limit();

	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		uint64_t st = t ? atomic_load(&t->state) : 0;
		if ((uint32_t)st == gen && (st & CS_ST_INCALL))
			return 1;
	}
	return 0;
}

static int evictions_said;

/* The program cancelled the threads of connection e->gen itself: what is
 * left is the books (the descriptor's DEAD bit, the counts), a signal it
 * could not send, and threads beyond its records (it woke us for those).
 * Read late, maybe a second after: nothing here is done twice (a thread
 * whose flag is set is skipped; the kernel's own cancels are folded from
 * its counters). */
static void handle_kernel_done(const struct disconnect_event *e, uint64_t key, int rst)
{
	int fds[4], n = cs_conn_key_find(key, fds, 4), fd = -1;

	if (e->flags & DISCONNECT_F_KSIGFAIL) {
		struct cs_thread *t = cs_thread_at(e->krec - 1u);
		uint64_t st = t ? atomic_load(&t->state) : 0;
		if ((uint32_t)st == e->gen && (st & CS_ST_CANCEL) && (st & CS_ST_INCALL) && atomic_load(&t->tid)) {
			cs_signal_send(atomic_load(&t->tid));
			cs_stat_add(CS_STAT_WAKEUPS, 1);
		}
	}
	for (int i = 0; i < n; i++)
		if ((uint32_t)cs_fd_get(fds[i]) == e->gen)
			fd = fds[i];
	cs_disconnect_kernel(e->gen, fd, rst, e->ts_ns, e->kbound);
}

static void handle(const struct disconnect_event *e)
{
	int rst = e->kind != DISCONNECT_FIN, fds[4], n;
	uint64_t key;

	/* A FIN alone is no reason to cancel under CANCELSHIM_ON=rst; its
	 * reset, if one follows, is a second event. */
	if (!rst && cs_proc.cfg.on == CS_ON_RST)
		return;
	if (!(key = cs_conn_key_from_event(e->family, e->raddr, e->rport, e->lport)))
		return;
	if ((e->flags & DISCONNECT_F_KHANDLED) && e->gen) {
		handle_kernel_done(e, key, rst);
		return;
	}
	/* Noted first: an accept() that stores the key after our search
	 * below looks here (cs_ebpf_check_accepted); one of us sees the other. */
	if (cs_conn_key_note_unmatched(key, e->cookie, rst) > 0 && !evictions_said++)
		cs_info("the notes of disconnects before accept are crowded (by connections another process "
			"accepted, or not covered): the oldest are replaced");
	atomic_thread_fence(memory_order_seq_cst);
	n = cs_conn_key_find(key, fds, 4);
	if (!n)
		return;
	cs_conn_key_forget_unmatched(key, e->cookie);
	for (int i = 0; i < n; i++) {
		_Atomic uint64_t *ref = cs_fd_ref_existing(fds[i]);
		uint64_t s = ref ? atomic_load(ref) : 0;
		uint64_t pending = CS_CLIENT_PENDING | (rst ? CS_CLIENT_PENDING_RST : 0);

		if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (s & CS_CLIENT_DEAD))
			continue;
		/* No system call yet: the connection is marked PENDING, with
		 * the event's cookie beside it, and whichever thread next
		 * enters a call a cancel could fail for it confirms it
		 * (enter_call in policy.c, cs_ebpf_confirm_pending). Most
		 * requests never make such a call after their client left. */
		cs_conn_key_stash(fds[i], e->cookie);
		while (!atomic_compare_exchange_weak(ref, &s, s | pending))
			if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (s & CS_CLIENT_DEAD))
				break;
		if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || (s & CS_CLIENT_DEAD))
			continue;
		/* A thread already inside such a call is woken now (after the
		 * mark, so that it or we see the other). */
		if (bound_thread_in_call((uint32_t)s) && same_socket(fds[i], e->cookie)) {
			cs_disconnect_seen((uint32_t)s, fds[i], rst, e->ts_ns);
			return;
		}
	}
}

int cs_ebpf_confirm_pending(int fd, uint64_t slot)
{
	_Atomic uint64_t *ref;

	if (!(slot & CS_CLIENT_PENDING))
		return 0;
	if (!same_socket(fd, cs_conn_key_stashed(fd))) {
		/* Another socket's event with the same key: forget it, so the
		 * next call does not ask again. */
		if ((ref = cs_fd_ref_existing(fd)))
			atomic_compare_exchange_strong(ref, &slot, slot & ~(CS_CLIENT_PENDING | CS_CLIENT_PENDING_RST));
		return 0;
	}
	cs_disconnect((uint32_t)slot, fd, (slot & CS_CLIENT_PENDING_RST) != 0);
	return 1;
}

void cs_ebpf_check_accepted(int fd, uint64_t slot, uint64_t key)
{
	uint64_t cookies[4];
	int rsts[4], n = cs_conn_key_unmatched(key, cookies, rsts, 4);

	/* Usually none; two only if a peer reused its port while the first
	 * connection, reset, still waited in the queue. */
	for (int i = 0; i < n; i++)
		if (same_socket(fd, cookies[i])) {
			cs_conn_key_forget_unmatched(key, cookies[i]);
			cs_disconnect((uint32_t)slot, fd, rsts[i]);
			return;
		}
}

static void recheck(int fd, _Atomic uint64_t *slot, void *arg);

void cs_ebpf_fd_duplicated(int oldfd, int newfd, uint64_t slot)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(newfd);
	uint64_t key = cs_conn_key_get(oldfd), expected = slot;
	int checked = 0;

	if (CS_SLOT_KIND(slot) != CS_KIND_CLIENT || !(slot & CS_CLIENT_EBPF) || !ref)
		return;
	cs_conn_key_set(newfd, key);
	cs_conn_key_stash(newfd, cs_conn_key_stashed(oldfd));
	if (!key || cs_conn_key_index(newfd, key) < 0) {
		/* Not findable by key: the first call bound through newfd
		 * registers it with epoll (watch_bound in policy.c). */
		atomic_compare_exchange_strong(ref, &expected, slot & ~(CS_CLIENT_EBPF | CS_CLIENT_REGISTERED));
		return;
	}
	/* An event handled between the copy of the word and the index found
	 * only oldfd: ask the socket once (a dup is no hot path). */
	recheck(newfd, ref, &checked);
}

/* Every covered connection is asked for its state, once: when the ring
 * overflowed (some events are lost, nobody knows which), and when the first
 * thread binds (events before that were not acted on). */
static void recheck(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);
	int *checked = arg, st;

	if (CS_SLOT_KIND(s) != CS_KIND_CLIENT || !(s & CS_CLIENT_EBPF) || (s & CS_CLIENT_DEAD))
		return;
	(*checked)++;
	st = tcp_state(fd, NULL);
	if (st == TCP_CLOSE_WAIT && cs_proc.cfg.on != CS_ON_RST)
		cs_disconnect((uint32_t)s, fd, 0);
	else if (st == TCP_CLOSE)
		cs_disconnect((uint32_t)s, fd, 1);
}

static void distrust_if_queued(int fd, _Atomic uint64_t *slot, void *arg);

/* After lost events: a thread the program flagged inside a call, whose
 * signal it could not send (its report of that was lost too), would wait
 * for ever. Every such thread is signalled again: a thread already woken
 * finds its flag set and its call cut short as before. */
static void resignal_flagged(void)
{
	size_t n = cs_threads_limit();

	if (!cs_kshared_on())
		return;
	for (size_t i = 0; i < n; i++) {
		struct cs_thread *t = cs_thread_at(i);
		uint64_t st = t ? atomic_load(&t->state) : 0;
		int tid = t ? atomic_load(&t->tid) : 0;
		if ((st & CS_ST_CANCEL) && (st & CS_ST_INCALL) && tid)
			cs_signal_send(tid);
	}
}

void cs_ebpf_drain(void)
{
	struct disconnect_event e;
	uint64_t dropped;
	int checked = 0;

	if (!ring.consumer)
		return;
	while (cs_bpf_ring_take(&ring, &e, sizeof e))
		handle(&e);
	if (!skel)
		return;
	dropped = skel->bss->dropped;
	if (dropped != dropped_seen) {
		/* Lost events may be of connections still queued: their
		 * listeners are TRUSTED again only once seen empty, and what
		 * accept takes meanwhile is watched with epoll. Then the
		 * covered connections already accepted are asked. */
		cs_fd_for_each(0, CS_FD_MAX - 1, distrust_if_queued, NULL);
		cs_fd_for_each(0, CS_FD_MAX - 1, recheck, &checked);
		resignal_flagged();
		cs_warn("the eBPF ring buffer overflowed (%llu events lost); checked %d connections instead",
			(unsigned long long)(dropped - dropped_seen), checked);
		dropped_seen = dropped;
	}
}

/* A listener whose queue holds clients that arrived while the program was
 * quiet: TRUSTED again once the queue is seen empty (cs_ebpf_tick). */
static void distrust_if_queued(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);

	(void)arg;
	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER || !(s & CS_LISTENER_TRUSTED) || queue_empty(fd))
		return;
	atomic_fetch_and(slot, ~CS_LISTENER_TRUSTED);
	atomic_store(&need_poll, 1);
}

/* The program stays quiet (no event, no socket storage) and its ring unread
 * until a thread is bound to a client: before that nobody could be
 * cancelled, so an event loop (nginx, redis) pays a branch per TCP state
 * change and gets no watcher thread. Then, in this order:
 *  - the program starts reporting, and the epoch advances;
 *  - a listener with clients queued loses TRUSTED until its queue is seen
 *    empty: they may have left unseen (accept() re-reads TRUSTED after
 *    storing the connection, and falls back to epoll);
 *  - connections already accepted are asked for their state once; one whose
 *    accept straddled the epoch asks itself (cs_ebpf_check_straddler). */
static void start_reading(void)
{
	int checked = 0, err;

	if (atomic_exchange(&ring_watched, 1))
		return;
	skel->bss->quiet = false;
	atomic_fetch_add(&cs_ebpf_epoch, 1);
	cs_fd_for_each(0, CS_FD_MAX - 1, distrust_if_queued, NULL);
	if ((err = host.watch_ring(skel->maps.events.map_fd))) {
		cs_process_fail("cannot start the watcher thread for the eBPF ring", -err);
		return;
	}
	cs_fd_for_each(0, CS_FD_MAX - 1, recheck, &checked);
}

void cs_ebpf_check_straddler(int fd, uint64_t slot)
{
	_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
	int checked = 0;

	if (ref && (uint32_t)atomic_load(ref) == (uint32_t)slot)	/* not closed and reused since */
		recheck(fd, ref, &checked);
}

void cs_ebpf_machinery_started(void)
{
	if (atomic_load(&cs_proc.ebpf_state) == CS_EBPF_LIVE)
		start_reading();
}

/* ---- fork --------------------------------------------------------------- */

/* An instance a prefork parent loads for the child it is about to fork
 * (cs_ebpf_fork_prepare): complete, attached, quiet, its listener ports in,
 * its shared value mapped if the parent has the kernel-side cancel. Every
 * descriptor of the skeleton is still open: the parent closes them all after
 * the fork, the child keeps what runs (adopt_prepared). */
static struct prepared {
	struct disconnect *skel;
	struct cs_bpf_ring ring;
	struct kc_shared *mem;		/* NULL: without the kernel-side cancel */
	const char *kcancel_why;
} prep;
static __thread int prepared_here __attribute__((tls_model("initial-exec")));	/* this thread's fork has prep */
static int preload_failure_said;

/* The effective set still allows a load (CAP_BPF+CAP_PERFMON, or
 * CAP_SYS_ADMIN): a parent that dropped privileges does not even try. */
static int still_privileged(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };

	return cs_raw2(SYS_capget, &h, d) == 0 && bpf_prereq_privileged(d);
}

static void add_prepared_port(int fd, _Atomic uint64_t *slot, void *arg)
{
	uint64_t s = atomic_load(slot);
	__u16 key;
	__u8 one = 1;

	(void)fd, (void)arg;
	if (CS_SLOT_KIND(s) != CS_KIND_LISTENER || !(s & CS_LISTENER_TCP))
		return;
	key = CS_LISTENER_PORT(s);
	skel_map_update_elem(prep.skel->maps.lports.map_fd, &key, &one, 0);
}

/* Unmaps and closes all of prep (free_skel: also frees the skeleton, which a
 * fork child leaves). The calls pass straight through the shim (busy). */
static void release_prepared(int free_skel)
{
	struct disconnect *s = prep.skel;
	int fds[] = { s->links.on_set_state_fd, s->links.on_receive_reset_fd, s->progs.on_set_state.prog_fd,
		      s->progs.on_receive_reset.prog_fd, s->maps.conns.map_fd, s->maps.lports.map_fd,
		      s->maps.events.map_fd, s->maps.shared.map_fd, s->maps.live.map_fd, s->maps.owner.map_fd,
		      s->maps.rodata.map_fd, s->maps.bss.map_fd };
	int busy = cs_tls.busy;

	cs_bpf_ring_unmap(&prep.ring);
	if (prep.mem)
		cs_raw2(SYS_munmap, prep.mem, cs_kshared_bytes());
	cs_tls.busy = 1;
	if (free_skel) {
		disconnect__destroy(s);
	} else {
		for (unsigned i = 0; i < sizeof fds / sizeof fds[0]; i++)
			close_raw(fds[i]);
	}
	cs_tls.busy = busy;
	memset(&prep, 0, sizeof prep);
}

/* Loads prep: the parent's configuration, for a child whose pid is not known
 * yet (kc_tgid 0: the child names itself). 0, or -errno with *what. */
static int preload(const char **what)
{
	const char *kc_why = atomic_load(&cs_proc.kernel_cancels) ? NULL
				: kcancel_why ? kcancel_why : "off in the parent";
	long m;
	int err;

	memset(&prep, 0, sizeof prep);
	if ((err = open_and_load(&prep.skel, &kc_why, 0, what)))
		return err;
	prep.kcancel_why = kc_why;
	/* The parent's listeners, which the child inherits: their ports are
	 * in before the attach. */
	cs_fd_for_each(0, CS_FD_MAX - 1, add_prepared_port, NULL);
	if (!kc_why) {
		*what = "mapping the shared memory";
		m = cs_raw6(SYS_mmap, 0, cs_kshared_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED,
			    prep.skel->maps.shared.map_fd, 0);
		if (m < 0 && m > -4096) {
			err = (int)m;
			goto fail;
		}
		prep.mem = (struct kc_shared *)m;
	}
	*what = "attaching to the TCP tracepoints";
	if (disconnect__attach(prep.skel)) {
		err = errno ? -errno : -EINVAL;
		goto fail;
	}
	*what = "mapping the ring buffer";
	if ((err = cs_bpf_ring_map(&prep.ring, prep.skel->maps.events.map_fd, DISCONNECT_RINGBUF_BYTES)))
		goto fail;
	return 0;
fail:
	release_prepared(1);
	return err;
}

void cs_ebpf_fork_prepare(void)
{
	int saved = errno, busy = cs_tls.busy, expected = 0, err;
	const char *what = "";

	/* Only a master that serves nobody itself (its children accept): a
	 * process that accepts and forks per connection must not pay a load
	 * per connection. Not inside the shim, and only a live instance (a
	 * load running in another thread: skipped). */
	if (busy || !atomic_load(&cs_proc.active) || atomic_load(&cs_proc.ebpf_state) != CS_EBPF_LIVE ||
	    atomic_load(&cs_proc.serving) || cs_once_done(&cs_proc.machinery) || !still_privileged())
		goto out;
	if (!atomic_compare_exchange_strong(&preparing, &expected, 1))
		goto out;
	prepared_here = 1;
	cs_tls.busy = 1;	/* the skeleton's own calls pass straight through */
	err = preload(&what);
	cs_tls.busy = busy;
	if (err && !preload_failure_said++)
		cs_info("eBPF watcher: no instance for the fork child (%s: %s); it loads its own", what,
			cs_errtext(-err));
out:
	errno = saved;
}

void cs_ebpf_fork_parent(void)
{
	int saved = errno;

	if (!prepared_here)
		return;
	prepared_here = 0;
	if (prep.skel)
		release_prepared(1);	/* the child's, not ours */
	atomic_store(&preparing, 0);
	errno = saved;
}

/* The child names itself as the program's owner, for good: the map is
 * frozen, and its descriptor closed next (keep_only_what_runs). */
static int name_owner(int fd)
{
	union bpf_attr attr;
	__u32 key = 0;
	__s32 pid = cs_proc.pid;

	if (skel_map_update_elem(fd, &key, &pid, 0))
		return -1;
	memset(&attr, 0, sizeof attr);
	attr.map_fd = fd;
	return cs_raw3(SYS_bpf, BPF_MAP_FREEZE, &attr, sizeof attr) < 0 ? -1 : 0;
}

void cs_ebpf_fork_child_adopt(void)
{
	int left = 0;

	if (!prepared_here)
		return;
	prepared_here = 0;
	if (!prep.skel)
		return;
	if (atomic_load(&cs_proc.ebpf_state) != CS_EBPF_IDLE) {
		release_prepared(0);
		return;
	}
	/* The parent's instance is closed (cs_ebpf_after_fork_child); this
	 * one becomes the child's, as if the child had loaded it. */
	skel = prep.skel;
	ring = prep.ring;
	kcancel_why = prep.kcancel_why;
	kc_mem = NULL;
	if (prep.mem) {
		if (name_owner(skel->maps.owner.map_fd) < 0)
			kcancel_why = "cannot name the child as the program's owner";
		else if (!(kc_mem = cs_kshared_adopt(prep.mem, skel->maps.shared.map_fd)))
			kcancel_why = "the child's thread records could not be shared";
		if (!kc_mem) {
			cs_raw2(SYS_munmap, prep.mem, cs_kshared_bytes());
			skel->bss->kc_off = true;
		}
	}
	memset(&prep, 0, sizeof prep);
	dropped_seen = skel->bss->dropped;
	keep_only_what_runs();
	atomic_store(&cs_proc.kernel_cancels, kcancel_why == NULL);
	cs_once_end(&cs_proc.ebpf_state, 1);
	/* The listeners the child inherited: connections queued before the
	 * instance was attached were not seen, so each is TRUSTED once its
	 * queue is seen empty: now, and else at the watcher's ticks. */
	cs_fd_for_each(0, CS_FD_MAX - 1, add_listener, NULL);
	cs_fd_for_each(0, CS_FD_MAX - 1, try_trust, &left);
	atomic_store(&need_poll, left != 0);
	cs_stats_mode_changed();
	if (!kcancel_why)
		cs_info("eBPF watcher: the instance the parent loaded for this child; the kernel cancels");
	else
		cs_info("eBPF watcher: the instance the parent loaded for this child; kernel-side cancel unavailable (%s)",
			kcancel_why);
}

void cs_ebpf_after_fork_child(void)
{
	int s = atomic_load(&cs_proc.ebpf_state);

	/* The shared memory was made private (cs_kshared_after_fork_child) and
	 * the child's own instance, if it loads one, leaves cancels to the
	 * watcher: its registry has a chunk 0 already. */
	atomic_store(&cs_proc.kernel_cancels, 0);
	kc_mem = NULL;
	/* The fork's instance for this child, if any, is adopted at the end
	 * of the fork handler (cs_ebpf_fork_child_adopt). */
	atomic_store(&preparing, 0);
	if (s == CS_EBPF_OFF || s == CS_EBPF_FAILED)
		return;
	/* The links would keep the parent's programs attached after the parent
	 * is gone, and two readers of one ring corrupt its position: close and
	 * unmap. The skeleton's memory is left (no free() in a fork child). */
	for (int i = 0; i < n_own; i++)
		close_raw(own_fds[i]);
	n_own = 0;
	cs_bpf_ring_unmap(&ring);
	skel = NULL;
	atomic_store(&need_poll, 0);
	atomic_store(&ring_watched, 0);
	cs_once_reset(&cs_proc.ebpf_state);	/* the child loads its own */
}

int cs_ebpf_own_fds(int fds[CS_EBPF_MAX_FDS])
{
	if (atomic_load(&cs_proc.ebpf_state) != CS_EBPF_LIVE)
		return 0;
	memcpy(fds, own_fds, sizeof own_fds);
	return n_own;
}

/* dup2 onto one of ours: the caller (watch/watcher.c) duplicated it to
 * to and marked that; the records follow. */
void cs_ebpf_own_fd_moved(int from, int to)
{
	int *fields[] = { &skel->links.on_set_state_fd, &skel->links.on_receive_reset_fd, &skel->maps.lports.map_fd,
			  &skel->maps.events.map_fd };

	if (atomic_load(&cs_proc.ebpf_state) != CS_EBPF_LIVE)
		return;
	for (int i = 0; i < 4; i++)
		if (*fields[i] == from)
			*fields[i] = to;
	for (int i = 0; i < n_own; i++)
		if (own_fds[i] == from)
			own_fds[i] = to;
	/* Ascending again, for the close_range wrapper. */
	for (int i = 1; i < n_own; i++)
		for (int j = i; j > 0 && own_fds[j - 1] > own_fds[j]; j--) {
			int t = own_fds[j];
			own_fds[j] = own_fds[j - 1];
			own_fds[j - 1] = t;
		}
}

/* Closed behind the shim's back (a raw close: the wrappers spare them): the
 * instance may be blind from now on, so epoll watches every connection. */
void cs_ebpf_own_fd_lost(int fd)
{
	int i;

	for (i = 0; i < n_own && own_fds[i] != fd; i++)
		;
	if (i == n_own)
		return;
	for (; i + 1 < n_own; i++)
		own_fds[i] = own_fds[i + 1];
	n_own--;
	if (cs_once_revoke(&cs_proc.ebpf_state)) {
		cs_kshared_stop();
		atomic_store(&cs_proc.kernel_cancels, 0);
		cs_log_failure(CS_LOG_WARN, "the application closed the eBPF watcher's descriptor %d behind the shim's back; using epoll", fd);
		host.rewatch_all();
	}
}

#endif

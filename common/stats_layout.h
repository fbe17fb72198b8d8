/* The statistics segment: what a shimmed process publishes in
 * /dev/shm/cancelshim.<pidns>.<pid> and what `cancelctl stats` reads. Shared
 * by the shim (writer) and the tool (reader); fixed-size fields only.
 *
 * <pidns> is the inode of the writer's pid namespace (/proc/self/ns/pid):
 * containers that share /dev/shm but not pids publish under different names,
 * and a sweeper only ever judges the segments of its own namespace, whose
 * pids it can check.
 *
 * Compatibility: a reader accepts any segment whose magic matches and whose
 * version it knows. New counters are only ever appended (ncounters grows, the
 * version stays); a change to an existing field bumps the version. docs/stats.md
 * documents every field. */
#ifndef CS_STATS_LAYOUT_H
#define CS_STATS_LAYOUT_H

#include <stdint.h>

#define CS_SEG_DIR "/dev/shm"
#define CS_SEG_PREFIX "cancelshim."	/* CS_SEG_DIR/CS_SEG_PREFIX<pidns>.<pid> */
#define CS_SEG_MAGIC 0x31545354534e4143ull	/* "CANSTST1", stored last */
#define CS_SEG_VERSION 1u
#define CS_SEG_CMDLINE 128
#define CS_LATENCY_BUCKETS 32	/* log2 buckets of microseconds */

/* Counter indices. Values are part of the interface: never renumber. */
enum cs_stat {
	CS_STAT_CONNECTIONS = 0,	/* client connections accepted */
	CS_STAT_REGISTERED = 1,		/* connections handed to the watcher */
	CS_STAT_DISCONNECT_FIN = 2,	/* watched connections whose peer sent FIN */
	CS_STAT_DISCONNECT_RST = 3,	/* ... or reset */
	CS_STAT_CANCELS = 4,		/* threads whose cancel flag was set */
	CS_STAT_WAKEUPS = 5,		/* cancel signals sent to a thread inside a call */
	CS_STAT_FAILED_NET = 6,		/* calls failed with ECANCELED, by class */
	CS_STAT_FAILED_WAIT = 7,
	CS_STAT_FAILED_FILE = 8,
	CS_STAT_FAILED_PIPE = 9,
	CS_STAT_LOOP_THREADS = 10,	/* threads recognised as event loops */
	CS_STAT_CLOSED = 11,		/* client descriptors released (close, dup2 over, ...) */
	CS_STAT_INHERITED = 12,		/* client descriptors present at fork (child only) */
	CS_STAT_DUPLICATED = 13,	/* client descriptors made by dup/dup2/F_DUPFD */
	CS_STAT_UNBOUND = 14,		/* disconnects the watcher saw with no thread bound */
	CS_STAT_WOULD_CANCEL = 15,	/* CANCELSHIM_ACTION=observe: cancels that would have failed a call */
	CS_STAT_LATENCY = 16,		/* CS_LATENCY_BUCKETS buckets follow */
	/* Appended after the buckets (older readers stop at ncounters): */
	CS_STAT_KERNEL_CANCELS = CS_STAT_LATENCY + CS_LATENCY_BUCKETS,	/* of CS_STAT_CANCELS, set by the eBPF program */
	CS_STAT_COUNT
};

/* Latency bucket b counts cancels whose latency in whole microseconds us
 * satisfies: b == 0: us == 0; 0 < b < last: 2^(b-1) <= us < 2^b; the last
 * bucket also holds everything larger. */
static inline unsigned cs_latency_bucket(uint64_t us)
{
	unsigned b = us ? 64u - (unsigned)__builtin_clzll(us) : 0u;
	return b < CS_LATENCY_BUCKETS ? b : CS_LATENCY_BUCKETS - 1;
}

struct cs_seg_header {
	uint64_t magic;		/* CS_SEG_MAGIC once the header is complete */
	uint32_t version;	/* CS_SEG_VERSION */
	uint32_t header_size;	/* byte offset of the counters */
	uint32_t ncounters;	/* uint64_t counters at header_size (CS_STAT_COUNT) */
	uint32_t latency_first;	/* index of latency bucket 0 (CS_STAT_LATENCY) */
	uint32_t latency_buckets;
	int32_t pid;
	uint64_t start_time;	/* field 22 of /proc/PID/stat: clock ticks after boot */
	uint64_t created_ns;	/* CLOCK_REALTIME when published */
	char mode[16];		/* in force: "epoll", or "ebpf" once its instance runs */
	char mode_requested[16];	/* CANCELSHIM_MODE: auto, epoll, ebpf */
	char on[8];		/* fin, rst */
	char calls[32];		/* net,wait,... */
	char signal[24];	/* SIGRTMAX-1 ... */
	char cmdline[CS_SEG_CMDLINE];	/* argv joined with spaces, truncated */
	/* Added inside the header's spare room (version unchanged): the
	 * <pidns> of the file's name, which a reader checks. */
	uint64_t pid_ns;
	/* Added the same way (0 in older segments: no such region): the byte
	 * offset of the per-listener region (struct cs_seg_ports). */
	uint32_t ports_offset;
	/* Added the same way ("" in older segments): in mode ebpf, who cancels:
	 * "kernel" (the eBPF program itself) or "watcher" (the fallback). */
	char canceller[16];
};

#define CS_SEG_HEADER_SIZE 512u

/* The header's layout fields for this build and the process it belongs to
 * (pid in the pid namespace pid_ns). The writer fills in the rest, and
 * stores magic last. */
static inline void cs_seg_header_layout(struct cs_seg_header *h, int pid, uint64_t pid_ns)
{
	h->version = CS_SEG_VERSION;
	h->header_size = CS_SEG_HEADER_SIZE;
	h->ncounters = CS_STAT_COUNT;
	h->latency_first = CS_STAT_LATENCY;
	h->latency_buckets = CS_LATENCY_BUCKETS;
	h->pid = pid;
	h->pid_ns = pid_ns;
}

/* The per-listener region, appended after the counters (older readers never
 * look past ncounters): one entry per CANCELSHIM_PORTS entry, in the order
 * written (TCP ports and ranges first, then unix: paths), 0 entries when
 * CANCELSHIM_PORTS is unset or "all". Versioned on its own: a reader skips a
 * region whose version it does not know and shows the rest. Entries may grow
 * (entry_size, ncounters): counters are only ever appended. */
#define CS_SEG_PORTS_VERSION 1u
#define CS_SEG_PORTS_MAX 20	/* CS_PORTS_TCP_MAX + CS_PORTS_UNIX_MAX (ports.h) */
#define CS_SEG_PORT_LABEL 120	/* "8080", "8000-8099", "unix:/run/x.sock": NUL-terminated */

/* Per-listener counter indices: never renumber. */
enum cs_port_stat {
	CS_PORT_ACCEPTED = 0,		/* client connections accepted on it */
	CS_PORT_DISCONNECTS = 1,	/* their disconnects seen by the watcher (first edge) */
	CS_PORT_CANCELS = 2,		/* calls failed with ECANCELED, or would-cancels in observe mode */
	CS_PORT_STAT_COUNT
};

struct cs_seg_ports {
	uint32_t version;	/* CS_SEG_PORTS_VERSION */
	uint32_t count;		/* entries that follow, at most CS_SEG_PORTS_MAX */
	uint32_t entry_size;	/* sizeof(struct cs_seg_port) */
	uint32_t ncounters;	/* uint64_t counters after each label (CS_PORT_STAT_COUNT) */
};

struct cs_seg_port {
	char label[CS_SEG_PORT_LABEL];
	uint64_t c[CS_PORT_STAT_COUNT];
};

#define CS_SEG_PORTS_OFFSET (CS_SEG_HEADER_SIZE + CS_STAT_COUNT * sizeof(uint64_t))
#define CS_SEG_SIZE (CS_SEG_PORTS_OFFSET + sizeof(struct cs_seg_ports) + CS_SEG_PORTS_MAX * sizeof(struct cs_seg_port))

_Static_assert(CS_SEG_PORTS_OFFSET % 8 == 0, "region misaligned");
_Static_assert(sizeof(struct cs_seg_port) % 8 == 0, "entry misaligned");

_Static_assert(sizeof(struct cs_seg_header) <= CS_SEG_HEADER_SIZE, "header outgrew its room");

#endif

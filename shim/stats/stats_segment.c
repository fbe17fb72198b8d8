/* See stats_segment.h. Everything here is a raw system call: the segment is
 * created from inside accept() and from a fork child's first binding, where
 * the shim's own wrappers and the allocator must not be entered. */
#include "stats/stats_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "base/raw_syscall.h"
#include "stats_layout.h"

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_uint(char *p, unsigned long v)
{
	char digits[24];
	int n = 0;
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		*p++ = digits[--n];
	return p;
}

void cs_segment_path(uint64_t ns, int pid, char *buf)
{
	char *p = put_str(buf, CS_SEG_DIR "/" CS_SEG_PREFIX);
	p = put_uint(p, ns);
	*p++ = '.';
	p = put_uint(p, (unsigned long)pid);
	*p = 0;
}

uint64_t cs_segment_pid_ns(void)
{
	struct stat st;
	/* Follows the link: the namespace's own inode in nsfs. */
	if (cs_raw4(SYS_newfstatat, AT_FDCWD, "/proc/self/ns/pid", &st, 0) < 0)
		return 0;
	return st.st_ino;
}

/* Takes the storage for real. ftruncate alone makes a sparse file whose
 * pages tmpfs allocates at the first write through the mapping; on a full
 * /dev/shm that write is a SIGBUS in the host. A file system without
 * fallocate gets the zeros written instead, which allocates just the same. */
static long reserve(long fd)
{
	static const char zeros[CS_SEG_SIZE];
	long r = cs_raw4(SYS_fallocate, fd, 0, 0, CS_SEG_SIZE);

	if (r != -EOPNOTSUPP)
		return r;
	r = cs_raw4(SYS_pwrite64, fd, zeros, sizeof zeros, 0);
	return r == (long)sizeof zeros ? 0 : r < 0 ? r : -ENOSPC;
}

static long open_new(const char *path)
{
	return cs_raw4(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
}

void *cs_segment_create(uint64_t ns, int pid, struct cs_segment_id *id, int *err)
{
	char path[CS_SEG_PATH_MAX];
	struct stat st;
	long fd, m;

	cs_segment_path(ns, pid, path);
	fd = open_new(path);
	if (fd == -EEXIST) {
		/* Ours from before an exec, or left by a dead process of our
		 * namespace whose pid we now have: either way stale. */
		cs_raw1(SYS_unlink, path);
		fd = open_new(path);
	}
	if (fd < 0) {
		*err = (int)fd;
		return NULL;
	}
	/* The umask may have taken bits away; exactly 0600 either way. */
	cs_raw2(SYS_fchmod, fd, 0600);
	m = reserve(fd);
	if (m == 0)
		m = cs_raw2(SYS_fstat, fd, &st);
	if (m == 0) {
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		m = cs_raw6(SYS_mmap, 0, CS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	}
	cs_raw1(SYS_close, fd);
	if (m < 0 && m > -4096) {
		cs_raw1(SYS_unlink, path);
		*err = (int)m;
		return NULL;
	}
	return (void *)m;
}

void cs_segment_remove(uint64_t ns, int pid)
{
	char path[CS_SEG_PATH_MAX];
	cs_segment_path(ns, pid, path);
	cs_raw1(SYS_unlink, path);
}

int cs_segment_chown(uint64_t ns, int pid, const struct cs_segment_id *id, uid_t uid)
{
	char path[CS_SEG_PATH_MAX];
	struct stat st;
	long fd, r;

	cs_segment_path(ns, pid, path);
	fd = cs_raw4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0);
	if (fd < 0)
		return (int)fd;
	r = cs_raw2(SYS_fstat, fd, &st);
	if (r == 0 && (st.st_dev != id->dev || st.st_ino != id->ino))
		r = -ESTALE;	/* someone else's file under our name now */
	if (r == 0)
		r = cs_raw3(SYS_fchown, fd, uid, (gid_t)-1);
	cs_raw1(SYS_close, fd);
	return (int)r;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Digits up to a terminator; the number, or -1 past limit or if none. */
static int64_t parse_uint(const char **s, char end, uint64_t limit)
{
	const char *p = *s;
	uint64_t v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > limit)
			return -1;
	}
	if (*p != end)
		return -1;
	*s = p + 1;
	return (int64_t)v;
}

/* The pid in a name CS_SEG_PREFIX "<ns>.<pid>" of namespace ns, else -1. */
static int parse_pid(const char *name, uint64_t ns)
{
	const char *prefix = CS_SEG_PREFIX;
	int64_t n, pid;

	while (*prefix)
		if (*name++ != *prefix++)
			return -1;
	n = parse_uint(&name, '.', INT64_MAX);
	if (n < 0 || (uint64_t)n != ns)
		return -1;
	pid = parse_uint(&name, 0, 0x7fffffff);
	return pid > 0 ? (int)pid : -1;
}

int cs_segment_sweep(uint64_t ns, int self, int max)
{
	char buf[2048], path[CS_SEG_PATH_MAX];
	long fd, n;
	int removed = 0, seen = 0;

	if (!ns)
		return 0;
	fd = cs_raw4(SYS_openat, AT_FDCWD, CS_SEG_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	while (seen < max && (n = cs_raw3(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n && seen < max;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			int pid = parse_pid(d->d_name, ns);
			off += d->d_reclen;
			if (pid <= 0 || pid == self)
				continue;
			seen++;
			/* A pid of our own namespace that is absent: proven gone.
			 * (A pid reused since is left to cancelctl, which reads
			 * start times.) */
			if (cs_raw2(SYS_kill, pid, 0) == -ESRCH) {
				cs_segment_path(ns, pid, path);
				/* Only our own user's can go: /dev/shm is sticky. */
				if (cs_raw1(SYS_unlink, path) == 0)
					removed++;
			}
		}
	}
	cs_raw1(SYS_close, fd);
	return removed;
}

/* Reads at most len-1 bytes of a /proc file into buf; the length or -1. */
static long read_proc(const char *path, char *buf, size_t len)
{
	long fd = cs_raw4(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0), n, total = 0;
	if (fd < 0)
		return -1;
	while ((size_t)total < len - 1 && (n = cs_raw3(SYS_read, fd, buf + total, len - 1 - total)) > 0)
		total += n;
	cs_raw1(SYS_close, fd);
	buf[total] = 0;
	return total;
}

uint64_t cs_segment_start_time(void)
{
	char buf[1024], *p, *close_paren = NULL;
	uint64_t v = 0;
	int field = 2;

	if (read_proc("/proc/self/stat", buf, sizeof buf) <= 0)
		return 0;
	/* The command (field 2) may hold spaces and parentheses: start after
	 * the last ')'. */
	for (p = buf; *p; p++)
		if (*p == ')')
			close_paren = p;
	if (!close_paren)
		return 0;
	for (p = close_paren + 1; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

void cs_segment_cmdline(char *buf, size_t len)
{
	long n = read_proc("/proc/self/cmdline", buf, len);
	if (n < 0) {
		buf[0] = 0;
		return;
	}
	while (n > 0 && buf[n - 1] == 0)
		n--;
	for (long i = 0; i < n; i++)
		if (buf[i] == 0)
			buf[i] = ' ';
	buf[n] = 0;
}

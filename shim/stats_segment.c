/* See stats_segment.h. Everything here is a raw system call: the segment is
 * created from inside accept() and from a fork child's first binding, where
 * the shim's own wrappers and the allocator must not be entered. */
#include "stats_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>

#include "raw_syscall.h"
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

void cs_segment_path(int pid, char *buf)
{
	char *p = put_str(buf, CS_SEG_DIR "/" CS_SEG_PREFIX);
	p = put_uint(p, (unsigned long)pid);
	*p = 0;
}

void *cs_segment_create(int pid, int *err)
{
	char path[64];
	long fd, m;

	cs_segment_path(pid, path);
	fd = cs_raw4(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -EEXIST) {
		/* Ours from before an exec, or left by a dead process whose
		 * pid we now have: either way stale. */
		cs_raw1(SYS_unlink, path);
		fd = cs_raw4(SYS_openat, AT_FDCWD, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0) {
		*err = (int)fd;
		return NULL;
	}
	/* The umask may have taken bits away; exactly 0600 either way. */
	cs_raw2(SYS_fchmod, fd, 0600);
	m = cs_raw2(SYS_ftruncate, fd, CS_SEG_SIZE);
	if (m == 0)
		m = cs_raw6(SYS_mmap, 0, CS_SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cs_raw1(SYS_close, fd);
	if (m < 0 && m > -4096) {
		cs_raw1(SYS_unlink, path);
		*err = (int)m;
		return NULL;
	}
	return (void *)m;
}

void cs_segment_remove(int pid)
{
	char path[64];
	cs_segment_path(pid, path);
	cs_raw1(SYS_unlink, path);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int parse_pid(const char *name)
{
	const char *prefix = CS_SEG_PREFIX;
	long v = 0;

	while (*prefix)
		if (*name++ != *prefix++)
			return -1;
	if (!*name)
		return -1;
	for (; *name; name++) {
		if (*name < '0' || *name > '9' || v > 0x7fffffff / 10)
			return -1;
		v = v * 10 + (*name - '0');
	}
	return v > 0 ? (int)v : -1;
}

int cs_segment_sweep(int self, int max)
{
	char buf[2048], path[64];
	long fd = cs_raw4(SYS_openat, AT_FDCWD, CS_SEG_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0), n;
	int removed = 0, seen = 0;

	if (fd < 0)
		return 0;
	while (seen < max && (n = cs_raw3(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
		for (long off = 0; off < n && seen < max;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			int pid = parse_pid(d->d_name);
			off += d->d_reclen;
			if (pid <= 0 || pid == self)
				continue;
			seen++;
			if (cs_raw2(SYS_kill, pid, 0) == -ESRCH) {
				cs_segment_path(pid, path);
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

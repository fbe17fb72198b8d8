/* See stats_read.h. Any local user can plant a file in /dev/shm under a
 * segment's name, and a segment's owner can truncate it at any moment: the
 * reader opens without following links and without blocking (a FIFO), checks
 * type, owner and size, and reads a private copy with pread (a mapping of a
 * file truncated meanwhile is a SIGBUS), which stats_parse.c checks field by
 * field. It never blocks a writer and a writer never waits for it. */
#include "stats_read.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Field 22 of /proc/PID/stat, or 0 if the process is gone. */
static uint64_t proc_start_time(int pid)
{
	char path[64], buf[1024], *p;
	uint64_t v = 0;
	int field = 2;
	size_t n;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/stat", pid);
	if (!(f = fopen(path, "re")))
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	if (!(p = strrchr(buf, ')')))
		return 0;
	for (p++; *p && field < 22; p++)
		if (*p == ' ')
			field++;
	while (*p >= '0' && *p <= '9')
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

/* 1 if /proc/PID/maps names path, 0 if not, -1 if it cannot be read. */
static int proc_maps(int pid, const char *path)
{
	char mpath[64], line[4096];
	size_t len = strlen(path);
	int found = 0;
	FILE *f;

	snprintf(mpath, sizeof mpath, "/proc/%d/maps", pid);
	if (!(f = fopen(mpath, "re")))
		return -1;
	while (!found && fgets(line, sizeof line, f)) {
		char *p = strstr(line, path);
		found = p && (p[len] == '\n' || p[len] == ' ' || p[len] == 0);
	}
	fclose(f);
	return found;
}

enum seg_status { SEG_LIVE, SEG_DEAD, SEG_SKIP };

/* The inode of our pid namespace, 0 if unknown. */
static uint64_t own_pid_ns(void)
{
	struct stat st;
	return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* 1 if uid is one of pid's real, effective, saved and file-system uids, 0
 * if none, -1 if they cannot be read. */
static int proc_has_uid(int pid, uid_t uid)
{
	char path[64], line[256];
	unsigned long u[4];
	int found = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", pid);
	if (!(f = fopen(path, "re")))
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Uid: %lu %lu %lu %lu", &u[0], &u[1], &u[2], &u[3]) == 4) {
			found = u[0] == uid || u[1] == uid || u[2] == uid || u[3] == uid;
			break;
		}
	fclose(f);
	return found;
}

/* Reads up to len bytes at offset 0 until EOF; the count read. */
static size_t read_copy(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Reads the segment at path (named after ns, pid) into *p. */
static enum seg_status read_segment(const char *path, uint64_t ns, int pid, struct stats_proc *p, const char **why)
{
	static unsigned char copy[STATS_SEG_MAX_BYTES];
	struct stat st;
	uint64_t start;
	size_t len;
	int fd;

	*why = NULL;
	/* Our namespace, pid absent: its owner is proven gone. */
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		*why = "process is gone";
		return SEG_DEAD;
	}
	/* No link followed, no wait for a FIFO's writer. */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) < 0)
		return SEG_SKIP;	/* another user's, a link, or just removed */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)CS_SEG_HEADER_SIZE ||
	    st.st_size > (off_t)STATS_SEG_MAX_BYTES || (st.st_uid != 0 && proc_has_uid(pid, st.st_uid) != 1)) {
		close(fd);
		return SEG_SKIP;	/* being created, or not what it claims to be */
	}
	/* Truncated meanwhile: a short copy, which the parser refuses. */
	len = read_copy(fd, copy, (size_t)st.st_size);
	close(fd);
	if (stats_parse_segment(copy, len, ns, pid, p))
		return SEG_SKIP;	/* being created, a layout we do not know, or junk */
	start = proc_start_time(pid);
	if (!start || (p->start_time && start != p->start_time)) {
		*why = start ? "pid reused by another process" : "process is gone";
		return SEG_DEAD;
	}
	if (proc_maps(pid, path) == 0) {
		*why = "process no longer maps it (exec)";
		return SEG_DEAD;
	}
	p->read_ns = now_ns();
	return SEG_LIVE;
}

static int by_pid(const void *a, const void *b)
{
	const struct stats_proc *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

int stats_collect(const char *dir, const int *pids, size_t npids, int quiet, struct stats_list *out)
{
	uint64_t ns = own_pid_ns();
	struct dirent *e;
	size_t cap = 0;
	DIR *d;

	out->procs = NULL;
	out->n = 0;
	if (!(d = opendir(dir)))
		return -1;
	while ((e = readdir(d))) {
		char path[4096];
		struct stats_proc p;
		const char *why;
		uint64_t seg_ns;
		int pid, wanted = npids == 0;

		/* Another pid namespace's (or the old naming): its pids mean
		 * nothing here, so neither shown nor judged. */
		if (stats_parse_name(e->d_name, &seg_ns, &pid) < 0 || !ns || seg_ns != ns)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		switch (read_segment(path, ns, pid, &p, &why)) {
		case SEG_DEAD:
			/* Cleaned whatever pids were asked for. */
			if (unlink(path) == 0 && !quiet)
				fprintf(stderr, "cancelctl stats: removed %s (%s)\n", path, why);
			continue;
		case SEG_SKIP:
			continue;
		case SEG_LIVE:
			break;
		}
		for (size_t i = 0; i < npids && !wanted; i++)
			wanted = pids[i] == pid;
		if (!wanted)
			continue;
		if (out->n == cap) {
			struct stats_proc *np = realloc(out->procs, (cap = cap ? cap * 2 : 16) * sizeof *np);
			if (!np) {
				closedir(d);
				stats_list_free(out);
				errno = ENOMEM;
				return -1;
			}
			out->procs = np;
		}
		out->procs[out->n++] = p;
	}
	closedir(d);
	if (out->n)
		qsort(out->procs, out->n, sizeof *out->procs, by_pid);
	return 0;
}

void stats_list_free(struct stats_list *l)
{
	free(l->procs);
	l->procs = NULL;
	l->n = 0;
}

const struct stats_proc *stats_find(const struct stats_list *l, int pid)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->procs[i].pid == pid)
			return &l->procs[i];
	return NULL;
}

uint64_t stats_active(const struct stats_proc *p)
{
	uint64_t in = p->c[CS_STAT_CONNECTIONS] + p->c[CS_STAT_INHERITED] + p->c[CS_STAT_DUPLICATED];
	return in > p->c[CS_STAT_CLOSED] ? in - p->c[CS_STAT_CLOSED] : 0;
}

uint64_t stats_ecanceled(const struct stats_proc *p)
{
	return p->c[CS_STAT_FAILED_NET] + p->c[CS_STAT_FAILED_WAIT] + p->c[CS_STAT_FAILED_FILE] + p->c[CS_STAT_FAILED_PIPE];
}

uint64_t stats_disconnects(const struct stats_proc *p)
{
	return p->c[CS_STAT_DISCONNECT_FIN] + p->c[CS_STAT_DISCONNECT_RST];
}

uint64_t stats_latency_count(const struct stats_proc *p)
{
	uint64_t n = 0;
	for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++)
		n = __builtin_add_overflow(n, p->c[CS_STAT_LATENCY + b], &n) ? UINT64_MAX : n;	/* saturates */
	return n;
}

uint64_t stats_bucket_upper_us(unsigned b)
{
	return b + 1 >= CS_LATENCY_BUCKETS ? UINT64_MAX : 1ull << b;
}

uint64_t stats_latency_quantile_us(const struct stats_proc *p, double q)
{
	uint64_t total = stats_latency_count(p), seen = 0, rank;

	if (!total)
		return 0;
	/* A hostile segment's counters can be near 2^64, where q * total is
	 * not a uint64_t: the last sample's rank then. */
	double want = q * (double)total;
	if (!(want < (double)total)) {
		rank = total;
	} else {
		rank = (uint64_t)want;
		if ((double)rank < want)
			rank++;	/* ceil */
	}
	if (rank == 0)
		rank = 1;
	for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++) {
		seen += p->c[CS_STAT_LATENCY + b];
		if (seen >= rank)
			return stats_bucket_upper_us(b);
	}
	return UINT64_MAX;
}

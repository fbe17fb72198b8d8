/* See stats_read.h. The reader maps each segment read-only and copies the
 * counters with relaxed atomic loads: it never blocks a writer and a writer
 * never waits for it. */
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

static void copy_field(char *dst, size_t dlen, const char *src, size_t slen)
{
	size_t n = strnlen(src, slen < dlen - 1 ? slen : dlen - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* The command line is whatever the process had in /proc/self/cmdline, cut
 * at a byte count: make it valid UTF-8 (JSON and Prometheus need it) and
 * free of control characters (the table), replacing what is not with '?'. */
static void sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
		int ok = n >= 0 && !(n == 1 && *p < 0xc2);
		for (int i = 1; ok && i <= n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (!ok || *p < 0x20 || *p == 0x7f) {
			*p++ = '?';
			continue;
		}
		p += n + 1;
	}
}

/* Reads the segment at path (named after pid) into *p. */
static enum seg_status read_segment(const char *path, int pid, struct stats_proc *p, const char **why)
{
	const struct cs_seg_header *h;
	struct stat st;
	uint64_t start;
	void *m;
	int fd;

	*why = NULL;
	if (kill(pid, 0) < 0 && errno == ESRCH) {
		*why = "process is gone";
		return SEG_DEAD;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return SEG_SKIP;	/* another user's, or just removed */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < CS_SEG_HEADER_SIZE) {
		close(fd);
		return SEG_SKIP;	/* being created */
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return SEG_SKIP;
	h = m;
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != CS_SEG_MAGIC || h->version != CS_SEG_VERSION ||
	    h->pid != pid || h->header_size < sizeof *h ||
	    (uint64_t)h->header_size + (uint64_t)h->ncounters * 8 > (uint64_t)st.st_size) {
		munmap(m, (size_t)st.st_size);
		return SEG_SKIP;	/* being created, or a layout we do not know */
	}
	start = proc_start_time(pid);
	if (!start || (h->start_time && start != h->start_time)) {
		munmap(m, (size_t)st.st_size);
		*why = start ? "pid reused by another process" : "process is gone";
		return SEG_DEAD;
	}
	if (proc_maps(pid, path) == 0) {
		munmap(m, (size_t)st.st_size);
		*why = "process no longer maps it (exec)";
		return SEG_DEAD;
	}
	memset(p, 0, sizeof *p);
	p->pid = pid;
	p->version = h->version;
	p->start_time = h->start_time;
	p->created_ns = h->created_ns;
	copy_field(p->mode, sizeof p->mode, h->mode, sizeof h->mode);
	copy_field(p->mode_requested, sizeof p->mode_requested, h->mode_requested, sizeof h->mode_requested);
	copy_field(p->on, sizeof p->on, h->on, sizeof h->on);
	copy_field(p->calls, sizeof p->calls, h->calls, sizeof h->calls);
	copy_field(p->signal, sizeof p->signal, h->signal, sizeof h->signal);
	copy_field(p->cmdline, sizeof p->cmdline, h->cmdline, sizeof h->cmdline);
	sanitize(p->cmdline);
	sanitize(p->mode);
	sanitize(p->mode_requested);
	sanitize(p->on);
	sanitize(p->calls);
	sanitize(p->signal);
	{
		const uint64_t *c = (const uint64_t *)((const char *)m + h->header_size);
		uint32_t n = h->ncounters < CS_STAT_COUNT ? h->ncounters : CS_STAT_COUNT;
		for (uint32_t i = 0; i < n; i++)
			p->c[i] = __atomic_load_n(&c[i], __ATOMIC_RELAXED);
	}
	p->read_ns = now_ns();
	munmap(m, (size_t)st.st_size);
	return SEG_LIVE;
}

static int parse_name(const char *name)
{
	size_t plen = strlen(CS_SEG_PREFIX);
	char *end;
	long v;

	if (strncmp(name, CS_SEG_PREFIX, plen) || !name[plen])
		return -1;
	errno = 0;
	v = strtol(name + plen, &end, 10);
	if (*end || errno || v <= 0 || v > 0x7fffffff)
		return -1;
	return (int)v;
}

static int by_pid(const void *a, const void *b)
{
	const struct stats_proc *x = a, *y = b;
	return (x->pid > y->pid) - (x->pid < y->pid);
}

int stats_collect(const char *dir, const int *pids, size_t npids, int quiet, struct stats_list *out)
{
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
		int pid = parse_name(e->d_name), wanted = npids == 0;

		if (pid < 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		switch (read_segment(path, pid, &p, &why)) {
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
		n += p->c[CS_STAT_LATENCY + b];
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
	rank = (uint64_t)(q * (double)total);
	if ((double)rank < q * (double)total)
		rank++;	/* ceil */
	if (rank == 0)
		rank = 1;
	for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++) {
		seen += p->c[CS_STAT_LATENCY + b];
		if (seen >= rank)
			return stats_bucket_upper_us(b);
	}
	return UINT64_MAX;
}

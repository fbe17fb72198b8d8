/* Hostile input for cancelctl stats: any local user can plant files in
 * /dev/shm under a segment's name, and a segment's owner can rewrite or
 * truncate it at any moment. cancelctl stats (a node_exporter cron job runs
 * it as root) must neither hang, nor crash, nor show what a process did not
 * publish. The planter here is an unprivileged user (nobody), and cancelctl
 * runs both as root and as nobody. Files are planted under both the current
 * name (cancelshim.<pidns>.<pid>) and the old one (cancelshim.<pid>). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

#define NOBODY 65534
#define BOUND_MS 5000	/* a cancelctl run that takes longer hangs */

static pid_t planters[8];
static char *planted[16];

/* Where a planted symlink points. */
static char *target_of(int pid)
{
	return tl_strdupf("/tmp/cs-hostile-target.%d", pid);
}

static void cleanup(void)
{
	for (size_t i = 0; i < sizeof planters / sizeof planters[0]; i++)
		if (planters[i] > 0) {
			char *t = target_of(planters[i]);
			kill(-planters[i], SIGKILL);	/* and whatever it forked */
			waitpid(planters[i], NULL, 0);
			unlink(t);
			free(t);
			planters[i] = 0;
		}
	for (size_t i = 0; i < sizeof planted / sizeof planted[0]; i++)
		if (planted[i]) {
			unlink(planted[i]);
			free(planted[i]);
			planted[i] = NULL;
		}
	st_cleanup();
}

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("planting as another user needs root to become nobody");
}

TestSuite(hostile, .init = need_root, .fini = cleanup);

/* The two names of pid's segment, remembered for cleanup. */
static void names_of(int pid, char *names[2])
{
	names[0] = tl_strdupf("%s/%s%d", CS_SEG_DIR, CS_SEG_PREFIX, pid);
	names[1] = st_segment_path(pid);
	for (size_t i = 0, k = 0; i < sizeof planted / sizeof planted[0] && k < 2; i++)
		if (!planted[i])
			planted[i] = strdup(names[k++]);
}

/* A complete, valid-looking segment of pid in our namespace. */
static void valid_segment(int pid, char buf[CS_SEG_SIZE])
{
	struct cs_seg_header *h = (struct cs_seg_header *)buf;
	memset(buf, 0, CS_SEG_SIZE);
	h->magic = CS_SEG_MAGIC;
	cs_seg_header_layout(h, pid, st_pid_ns(0));
	strcpy(h->mode, "epoll");
	strcpy(h->cmdline, "planted-by-nobody");
	((uint64_t *)(buf + CS_SEG_HEADER_SIZE))[CS_STAT_CONNECTIONS] = 4242;
}

static void become_nobody(void)
{
	if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
		_exit(97);
}

/* Forks a planter running as nobody: plant(self, arg) runs, then the
 * planter reports ready and stays alive (its pid is the one the planted
 * files name) until cleanup kills it. Returns its pid. */
static pid_t start_planter(void (*plant)(int self, void *arg), void *arg)
{
	int ready[2];
	char c;
	pid_t pid;

	cr_assert_eq(pipe(ready), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(ready[0]);
		setpgid(0, 0);
		become_nobody();
		plant(getpid(), arg);
		if (write(ready[1], "r", 1) != 1)
			_exit(98);
		for (;;)
			pause();
	}
	close(ready[1]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "the planter failed");
	close(ready[0]);
	for (size_t i = 0; i < sizeof planters / sizeof planters[0]; i++)
		if (!planters[i]) {
			planters[i] = pid;
			break;
		}
	/* Remembered here, for cleanup: what the planter recorded is its own. */
	char *names[2];
	names_of(pid, names);
	free(names[0]);
	free(names[1]);
	return pid;
}

/* cancelctl stats in format fmt (NULL: the table), as root or as nobody,
 * bounded: its wait status (-1 if it hung), its stdout. */
static int stats_once(const char *fmt, bool as_nobody, char **out)
{
	const char *cancelctl = getenv("CS_CANCELCTL");
	const char *argv[12];
	size_t n = 0;

	if (as_nobody) {
		argv[n++] = "setpriv";
		argv[n++] = "--reuid=65534";
		argv[n++] = "--regid=65534";
		argv[n++] = "--clear-groups";
	}
	argv[n++] = cancelctl;
	argv[n++] = "stats";
	argv[n++] = "--quiet";
	if (fmt)
		argv[n++] = fmt;
	argv[n] = NULL;
	return st_run(argv, NULL, 0, BOUND_MS, out, NULL);
}

/* Every format, as root and as nobody: each ends in time with status 0 and
 * does not list pid. */
static void every_way_ends_without(int pid)
{
	const char *fmts[] = { NULL, "--json", "--prometheus" };
	char *table_row = tl_strdupf("\n%d ", pid), *json_pid = tl_strdupf("\"pid\":%d,", pid),
	     *prom_pid = tl_strdupf("pid=\"%d\"", pid);

	for (int who = 0; who < 2; who++)
		for (size_t f = 0; f < 3; f++) {
			char *out = NULL;
			int status = stats_once(fmts[f], who, &out);
			cr_assert_neq(status, -1, "cancelctl stats %s as %s hangs", fmts[f] ? fmts[f] : "",
				      who ? "nobody" : "root");
			cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "cancelctl stats %s as %s: status %#x",
				  fmts[f] ? fmts[f] : "", who ? "nobody" : "root", status);
			cr_assert(!strstr(out, table_row) && !strstr(out, json_pid) && !strstr(out, prom_pid) &&
					  !strstr(out, "planted-by-nobody"),
				  "a planted file is shown:\n%s", out);
			free(out);
		}
	free(table_row);
	free(json_pid);
	free(prom_pid);
}

static void plant_fifo(int self, void *arg)
{
	char *names[2];
	(void)arg;
	names_of(self, names);
	for (int i = 0; i < 2; i++)
		if (mkfifo(names[i], 0666) < 0)
			_exit(90);
}

Test(hostile, a_fifo_under_a_segments_name_does_not_hang_cancelctl)
{
	pid_t v = start_planter(plant_fifo, NULL);
	every_way_ends_without(v);
	/* Its process lives: nothing proves it is stale, so it stays. */
	char *name = st_segment_path(v);
	cr_assert_eq(access(name, F_OK), 0, "the FIFO of a live process was removed");
	free(name);
}

/* A symlink to a valid segment, a truncated one, an oversized one and
 * garbage, each named after a live process of nobody's. */
enum kind { SYMLINK, TRUNCATED, OVERSIZED, GARBAGE };

static void plant_kind(int self, void *arg)
{
	enum kind k = *(enum kind *)arg;
	char *names[2], seg[CS_SEG_SIZE];
	char *target = target_of(self);

	names_of(self, names);
	valid_segment(self, seg);
	for (int i = 0; i < 2; i++) {
		int fd = -1;
		switch (k) {
		case SYMLINK:
			if (tl_write_file(target, seg, sizeof seg) < 0 || symlink(target, names[i]) < 0)
				_exit(90);
			break;
		case TRUNCATED:
			fd = open(names[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0 || write(fd, seg, 100) != 100)
				_exit(90);
			break;
		case OVERSIZED:
			fd = open(names[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0 || write(fd, seg, sizeof seg) != (ssize_t)sizeof seg || ftruncate(fd, 64 << 20) < 0)
				_exit(90);
			break;
		case GARBAGE:
			for (size_t b = 0; b < sizeof seg; b++)
				seg[b] = (char)(b * 131 + 7);
			((struct cs_seg_header *)seg)->magic = CS_SEG_MAGIC;	/* looks right at first */
			((struct cs_seg_header *)seg)->version = CS_SEG_VERSION;
			fd = open(names[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd < 0 || write(fd, seg, sizeof seg) != (ssize_t)sizeof seg)
				_exit(90);
			break;
		}
		if (fd >= 0)
			close(fd);
	}
	free(target);
}

Test(hostile, symlinks_truncated_oversized_and_garbage_files_are_skipped)
{
	enum kind kinds[] = { SYMLINK, TRUNCATED, OVERSIZED, GARBAGE };
	pid_t v[4];
	for (int i = 0; i < 4; i++)
		v[i] = start_planter(plant_kind, &kinds[i]);
	for (int i = 0; i < 4; i++)
		every_way_ends_without(v[i]);
}

/* The planter publishes a valid segment of its own, maps it as a shimmed
 * process does, and truncates and rewrites it for ever. */
static void plant_and_churn(int self, void *arg)
{
	char *names[2], seg[CS_SEG_SIZE];
	int fd[2];
	(void)arg;

	names_of(self, names);
	valid_segment(self, seg);
	strcpy(((struct cs_seg_header *)seg)->cmdline, "churning");
	for (int i = 0; i < 2; i++) {
		fd[i] = open(names[i], O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd[i] < 0 || pwrite(fd[i], seg, sizeof seg, 0) != (ssize_t)sizeof seg ||
		    mmap(NULL, sizeof seg, PROT_READ, MAP_SHARED, fd[i], 0) == MAP_FAILED)
			_exit(90);
	}
	if (fork() == 0) {
		/* The churn runs in a thread-less child of the planter that
		 * shares the files: the planter (the named process) must stay
		 * the one that maps them. */
		for (;;)
			for (int i = 0; i < 2; i++) {
				if (ftruncate(fd[i], 0) < 0 || pwrite(fd[i], seg, sizeof seg, 0) < 0)
					_exit(91);
			}
	}
}

Test(hostile, a_segment_truncated_while_cancelctl_reads_it_never_kills_cancelctl)
{
	const char *fmts[] = { NULL, "--json", "--prometheus" };
	pid_t v = start_planter(plant_and_churn, NULL);
	int shown = 0;

	for (int run = 0; run < 60; run++) {
		char *out = NULL;
		int status = stats_once(fmts[run % 3], run % 2, &out);
		cr_assert_neq(status, -1, "run %d hangs", run);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "run %d: status %#x (signal %d)", run, status,
			  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		shown += strstr(out, "churning") != NULL;
		free(out);
	}
	cr_log_info("the churning segment was shown in %d of 60 runs", shown);
	(void)v;	/* cleanup kills its process group, the churner too */
}

static void plant_under(int self, void *arg)
{
	int victim = *(int *)arg;
	char *names[2], seg[CS_SEG_SIZE];
	(void)self;

	names_of(victim, names);
	valid_segment(victim, seg);
	for (int i = 0; i < 2; i++) {
		int fd = open(names[i], O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || write(fd, seg, sizeof seg) != (ssize_t)sizeof seg)
			_exit(90);
		close(fd);
	}
}

Test(hostile, a_segment_another_user_planted_under_roots_pid_is_not_shown)
{
	/* nobody plants a segment named after this (root) process, and this
	 * process even maps it, as if it had published it: its owner is none
	 * of the process's uids, so it is not believed. */
	int self = getpid();
	start_planter(plant_under, &self);
	char *names[2];
	names_of(self, names);	/* remembered for cleanup too */
	for (int i = 0; i < 2; i++) {
		int fd = open(names[i], O_RDONLY);
		cr_assert_geq(fd, 0);
		cr_assert_neq(mmap(NULL, CS_SEG_SIZE, PROT_READ, MAP_SHARED, fd, 0), MAP_FAILED);
		close(fd);
	}
	char *pidarg = tl_strdupf("%d", self), *out = NULL;
	const char *args[] = { "stats", "--json", pidarg, NULL };
	int rc = st_cancelctl(args, &out, NULL);
	cr_assert(!strstr(out, "planted-by-nobody"), "a planted segment is shown:\n%s", out);
	cr_assert_eq(rc, 1);
	free(out);
	free(pidarg);
}

/* The per-listener region, planted by the process the segment names (owner
 * and mapping as a real publisher's): a bad count or size hides the segment
 * in every format; rows with hostile labels show, escaped. */
enum ports_kind { PORTS_HUGE_COUNT, PORTS_PAST_END, PORTS_BAD_ENTRY_SIZE, PORTS_HOSTILE_LABELS };

static void plant_ports(int self, void *arg)
{
	enum ports_kind k = *(enum ports_kind *)arg;
	char *names[2], seg[CS_SEG_SIZE];
	struct cs_seg_ports *r = (struct cs_seg_ports *)(seg + CS_SEG_PORTS_OFFSET);
	struct cs_seg_port *rows = (struct cs_seg_port *)(r + 1);

	names_of(self, names);
	valid_segment(self, seg);
	((struct cs_seg_header *)seg)->ports_offset = CS_SEG_PORTS_OFFSET;
	*r = (struct cs_seg_ports){ CS_SEG_PORTS_VERSION, 2, sizeof(struct cs_seg_port), CS_PORT_STAT_COUNT };
	memset(rows[0].label, '"', sizeof rows[0].label);	/* no NUL */
	memcpy(rows[1].label, "unix:/x\\\n\xff", 11);
	rows[1].c[CS_PORT_CANCELS] = 77;
	switch (k) {
	case PORTS_HUGE_COUNT:
		r->count = 0xffffffff;
		break;
	case PORTS_PAST_END:
		r->count = CS_SEG_PORTS_MAX;	/* the file holds fewer rows: cut below */
		break;
	case PORTS_BAD_ENTRY_SIZE:
		r->entry_size = 8;
		break;
	case PORTS_HOSTILE_LABELS:
		break;
	}
	size_t len = k == PORTS_PAST_END ? CS_SEG_PORTS_OFFSET + sizeof *r + 3 * sizeof *rows : sizeof seg;
	for (int i = 0; i < 2; i++) {
		int fd = open(names[i], O_RDWR | O_CREAT | O_EXCL, 0600);
		if (fd < 0 || pwrite(fd, seg, len, 0) != (ssize_t)len ||
		    mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED)
			_exit(90);
	}
}

Test(hostile, a_bad_per_listener_region_hides_the_segment)
{
	enum ports_kind kinds[] = { PORTS_HUGE_COUNT, PORTS_PAST_END, PORTS_BAD_ENTRY_SIZE };
	for (int i = 0; i < 3; i++) {
		pid_t v = start_planter(plant_ports, &kinds[i]);
		every_way_ends_without(v);
		/* Its process lives and maps it: skipped, not removed. */
		char *name = st_segment_path(v);
		cr_assert_eq(access(name, F_OK), 0, "kind %d: removed", i);
		free(name);
	}
}

Test(hostile, hostile_per_listener_labels_show_escaped)
{
	enum ports_kind k = PORTS_HOSTILE_LABELS;
	pid_t v = start_planter(plant_ports, &k);
	char *check = tl_source_path("tests/stats/check_prometheus.py"), *pidstr = tl_strdupf("%d", v);
	const char *fmts[] = { "--json", "--prometheus" };

	for (int who = 0; who < 2; who++)
		for (int f = 0; f < 2; f++) {
			char *out = NULL, *pyerr = NULL;
			int status = stats_once(fmts[f], who, &out);
			cr_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %#x", fmts[f],
				  status);
			cr_assert(strstr(out, "planted-by-nobody"), "the planter's own segment is not shown:\n%s", out);
			if (f == 0) {
				cr_assert(strstr(out, "{\"port\":\"unix:/x\\\\??\",\"connections_accepted\":0,"
						      "\"disconnects\":0,\"cancels\":77}"),
					  "%s", out);
			} else {
				const char *args[] = { pidstr, NULL };
				cr_assert(strstr(out, ",port=\"unix:/x\\\\??\"} 77\n"), "%s", out);
				cr_assert_eq(st_python(check, out, args, &pyerr), 0, "%s\n%s", pyerr, out);
			}
			free(pyerr);
			free(out);
		}
	free(check);
	free(pidstr);
}

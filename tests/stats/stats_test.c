#include "stats_test.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct tl_proc *tracked[8];

struct tl_proc *st_track(struct tl_proc *p)
{
	for (size_t i = 0; p && i < sizeof tracked / sizeof tracked[0]; i++)
		if (!tracked[i]) {
			tracked[i] = p;
			break;
		}
	return p;
}

void st_cleanup(void)
{
	for (size_t i = 0; i < sizeof tracked / sizeof tracked[0]; i++) {
		tl_proc_free(tracked[i]);
		tracked[i] = NULL;
	}
}

struct tl_proc *st_server_start(int upstream_port, int *port)
{
	char *script = tl_source_path("tests/stats/stats_server.py");
	char *up = tl_strdupf("%d", upstream_port);
	const char *argv[] = { "/usr/bin/python3", script, up, NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	char *line = p ? tl_proc_wait_line(p, "port ", 10000) : NULL;

	free(script);
	free(up);
	if (!line) {
		tl_proc_free(p);
		return NULL;
	}
	*port = atoi(line + 5);
	free(line);
	st_track(p);
	/* The shim really is loaded. */
	if (!tl_proc_wait_stderr(p, "info: active:", 5000))
		return NULL;	/* st_cleanup frees it */
	return p;
}

int st_request(int port, const char *line, bool abort_later)
{
	return st_request_on(tl_connect_tcp("127.0.0.1", port, 5000), line, abort_later);
}

int st_request_on(int fd, const char *line, bool abort_later)
{
	char buf[128];

	if (fd < 0 || tl_write_str(fd, line, 5000) < 0 || tl_write_str(fd, "\n", 5000) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (abort_later)
		return fd;
	if (tl_read_line(fd, buf, sizeof buf, 10000) <= 0 || tl_read_some(fd, buf, sizeof buf, 10000) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

uint64_t st_pid_ns(int pid)
{
	char *path = tl_strdupf("/proc/%d/ns/pid", pid ? pid : (int)getpid());
	struct stat st;
	int r = stat(path, &st);
	free(path);
	return r == 0 ? (uint64_t)st.st_ino : 0;
}

char *st_segment_path(int pid)
{
	/* Our processes share our pid namespace. */
	return tl_strdupf("%s/%s%llu.%d", CS_SEG_DIR, CS_SEG_PREFIX, (unsigned long long)st_pid_ns(0), pid);
}

bool st_segment_exists(int pid)
{
	char *path = st_segment_path(pid);
	bool r = access(path, F_OK) == 0;
	free(path);
	return r;
}

bool st_segment_read(int pid, struct st_segment *s)
{
	char *path = st_segment_path(pid);
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool ok = false;

	free(path);
	if (fd < 0)
		return false;
	if (fstat(fd, &st) == 0 && pread(fd, &s->h, sizeof s->h, 0) == (ssize_t)sizeof s->h &&
	    s->h.magic == CS_SEG_MAGIC && s->h.ncounters >= CS_STAT_COUNT &&
	    pread(fd, s->c, sizeof s->c, s->h.header_size) == (ssize_t)sizeof s->c) {
		s->mode = st.st_mode & 07777;
		s->uid = st.st_uid;
		ok = true;
	}
	close(fd);
	return ok;
}

const void *st_segment_map(int pid)
{
	char *path = st_segment_path(pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	void *m;

	free(path);
	if (fd < 0)
		return NULL;
	m = mmap(NULL, CS_SEG_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	return m == MAP_FAILED ? NULL : m;
}

bool st_segment_from_map(const void *map, struct st_segment *s)
{
	if (!map)
		return false;
	memcpy(&s->h, map, sizeof s->h);
	if (s->h.magic != CS_SEG_MAGIC || s->h.ncounters < CS_STAT_COUNT)
		return false;
	for (unsigned i = 0; i < CS_STAT_COUNT; i++)
		s->c[i] = __atomic_load_n((const uint64_t *)((const char *)map + s->h.header_size) + i, __ATOMIC_RELAXED);
	return true;
}

char *st_segment_save(int pid, size_t *len)
{
	char *path = st_segment_path(pid), *bytes = tl_read_file(path, len);
	free(path);
	return bytes;
}

void st_segment_restore(int pid, const char *bytes, size_t len)
{
	char *path = st_segment_path(pid);
	if (access(path, F_OK) != 0) {
		tl_write_file(path, bytes, len);
		chmod(path, 0600);
	}
	free(path);
}

uint64_t st_latency_count(const struct st_segment *s)
{
	uint64_t n = 0;
	for (unsigned b = 0; b < CS_LATENCY_BUCKETS; b++)
		n += s->c[CS_STAT_LATENCY + b];
	return n;
}

bool st_wait_segment(int pid, bool present, int timeout_ms)
{
	uint64_t end = tl_now_ns() + (uint64_t)timeout_ms * 1000000u;
	do {
		if (st_segment_exists(pid) == present)
			return true;
		usleep(5000);
	} while (tl_now_ns() < end);
	return false;
}

static int finish(struct tl_proc *p, char **out, char **err)
{
	int status = p ? tl_proc_wait(p, 30000) : -1;
	if (out)
		*out = p ? tl_proc_stdout(p) : NULL;
	if (err)
		*err = p ? tl_proc_stderr(p) : NULL;
	tl_proc_free(p);
	return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int st_cancelctl(const char *const args[], char **out, char **err)
{
	const char *argv[32] = { getenv("CS_CANCELCTL") };
	size_t n = 1;
	for (; args[n - 1] && n < 31; n++)
		argv[n] = args[n - 1];
	argv[n] = NULL;
	return finish(tl_spawn(argv, NULL, 0), out, err);
}

int st_python(const char *script, const char *input, const char *const args[], char **err)
{
	char *dir = tl_tmpdir("stats-py");
	char *in = tl_strdupf("%s/input", dir);
	char *cmd = tl_strdupf("exec /usr/bin/python3 \"$0\" \"$@\" < %s", in);
	const char *argv[32] = { "/bin/sh", "-c", cmd, script };
	size_t n = 4;
	int rc;

	tl_write_file(in, input, strlen(input));
	for (size_t i = 0; args && args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	rc = finish(tl_spawn(argv, NULL, 0), NULL, err);
	tl_rmtree(dir);
	free(dir);
	free(in);
	free(cmd);
	return rc;
}

const char *st_expected_mode(void)
{
	const char *have = getenv("CS_HAVE_BPF");
	return have && !strcmp(have, "1") && geteuid() == 0 && access("/sys/kernel/btf/vmlinux", R_OK) == 0 ? "ebpf"
														: "epoll";
}

char *st_oneshot_path(void)
{
	return tl_strdupf("%s/tests/stats/stats-oneshot-server", getenv("CS_BUILD_ROOT"));
}

int st_run(const char *const argv[], const char *const env[], unsigned flags, int timeout_ms, char **out, char **err)
{
	struct tl_proc *p = tl_spawn(argv, env, flags);
	int status = p ? tl_proc_wait(p, timeout_ms) : -1;

	if (out)
		*out = p ? tl_proc_stdout(p) : NULL;
	if (err)
		*err = p ? tl_proc_stderr(p) : NULL;
	tl_proc_free(p);	/* kills it if it is still running */
	return status;
}

int st_ask(int port, const char *line, char *reply, size_t len)
{
	int fd = tl_connect_tcp("127.0.0.1", port, 5000);
	ssize_t n = -1;

	if (fd >= 0 && tl_write_str(fd, line, 5000) == 0 && tl_write_str(fd, "\n", 5000) == 0)
		n = tl_read_line(fd, reply, len, 10000);
	if (fd >= 0)
		close(fd);
	return n > 0 ? 0 : -1;
}

char *st_segment_find(int pid)
{
	char *legacy = tl_strdupf("%s%d", CS_SEG_PREFIX, pid), *suffix = tl_strdupf(".%d", pid), *found = NULL;
	size_t plen = strlen(CS_SEG_PREFIX), slen = strlen(suffix);
	struct dirent *e;
	DIR *d = opendir(CS_SEG_DIR);

	while (d && !found && (e = readdir(d))) {
		size_t n = strlen(e->d_name);
		const char *mid = e->d_name + plen;
		if (!strcmp(e->d_name, legacy) ||
		    (!strncmp(e->d_name, CS_SEG_PREFIX, plen) && n > plen + slen && !strcmp(e->d_name + n - slen, suffix) &&
		     strspn(mid, "0123456789") == n - plen - slen))
			found = tl_strdupf("%s/%s", CS_SEG_DIR, e->d_name);
	}
	if (d)
		closedir(d);
	free(legacy);
	free(suffix);
	return found;
}

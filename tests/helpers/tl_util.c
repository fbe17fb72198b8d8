/* Time, text, files and paths for tests. */
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t tl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + ts.tv_nsec;
}

char *tl_strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	va_start(ap, fmt);
	int r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		abort();
	return s;
}

const char *tl_shim_path(void)
{
	const char *s = getenv("CS_SHIM");
	return s && *s ? s : NULL;
}

static char *env_join(const char *var, const char *rel)
{
	const char *dir = getenv(var);
	if (!dir || !*dir)
		return NULL;
	return tl_strdupf("%s/%s", dir, rel);
}

char *tl_helper_path(const char *name)
{
	return env_join("CS_HELPERS_DIR", name);
}

char *tl_source_path(const char *rel)
{
	return env_join("CS_SOURCE_ROOT", rel);
}

size_t tl_count(const char *text, const char *substr)
{
	if (!text || !substr || !*substr)
		return 0;
	size_t n = 0, len = strlen(substr);
	for (const char *p = text; (p = strstr(p, substr)); p += len)
		n++;
	return n;
}

char *tl_find_line(const char *text, const char *substr)
{
	if (!text || !substr)
		return NULL;
	const char *hit = strstr(text, substr);
	if (!hit)
		return NULL;
	const char *start = hit;
	while (start > text && start[-1] != '\n')
		start--;
	return strndup(start, strcspn(start, "\n"));
}

int tl_field(const char *line, const char *key, long long *out)
{
	size_t klen = strlen(key);
	for (const char *p = line; p && (p = strstr(p, key)); p += klen) {
		if ((p != line && p[-1] != ' ') || p[klen] != '=')
			continue;
		char *end;
		errno = 0;
		long long v = strtoll(p + klen + 1, &end, 10);
		if (end == p + klen + 1 || errno)
			return -1;
		*out = v;
		return 0;
	}
	return -1;
}

char *tl_tmpdir(const char *tag)
{
	char *path = tl_strdupf("/tmp/cs-%s-XXXXXX", tag ? tag : "test");
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

int tl_rmtree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void tl_cleanup_dir(const char *path)
{
	if (!path)
		return;
	if (getenv("CS_KEEP_TMP"))
		fprintf(stderr, "CS_KEEP_TMP: kept %s\n", path);
	else
		tl_rmtree(path);
}

char *tl_read_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t len = 0, cap = 8192;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		if (!buf)
			abort();
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			close(fd);
			return NULL;
		}
		if (n == 0)
			break;
		len += n;
	}
	close(fd);
	buf[len] = 0;
	if (len_out)
		*len_out = len;
	return buf;
}

int tl_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -1;
		}
		p += n;
		len -= n;
	}
	return close(fd);
}

bool tl_wait_file_contains(const char *path, const char *substr, int timeout_ms)
{
	uint64_t end = tl_now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		char *s = tl_read_file(path, NULL);
		bool found = s && strstr(s, substr);
		free(s);
		if (found)
			return true;
		if (timeout_ms >= 0 && tl_now_ns() >= end)
			return false;
		/* A file gives no event to wait on: poll it every 5 ms. */
		poll(NULL, 0, 5);
	}
}

char *tl_wait_file_line(const char *path, const char *substr, int timeout_ms)
{
	if (!tl_wait_file_contains(path, substr, timeout_ms))
		return NULL;
	char *text = tl_read_file(path, NULL);
	char *line = tl_find_line(text, substr);
	free(text);
	return line;
}

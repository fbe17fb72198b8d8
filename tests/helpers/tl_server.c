/* Starting a server under test and waiting until it is ready, the one way
 * every servers test does it; and the small file chores around it. */
#include "testlib.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first of ready's conditions that does not hold in time, as words for
 * the failure message; NULL once all hold. */
static const char *wait_ready(struct tl_proc *p, const struct tl_ready *r, char **line)
{
	int t = r->timeout_ms;

	if (r->file && !tl_wait_file_contains(r->file, r->file_text, t))
		return r->file_text;
	if (r->err_text && !tl_proc_wait_stderr(p, r->err_text, t))
		return r->err_text;
	if (r->out_line) {
		char *l = tl_proc_wait_line(p, r->out_line, t);
		if (!l)
			return r->out_line;
		if (line)
			*line = l;
		else
			free(l);
	}
	if (r->port > 0 && !tl_wait_port("127.0.0.1", r->port, t))
		return "a listening port";
	return NULL;
}

struct tl_proc *tl_server_start(const char *const argv[], const char *const env[], unsigned flags,
				const struct tl_ready *ready, char **line, char **why)
{
	struct tl_proc *p = tl_spawn(argv, env, flags);
	const char *missing;

	if (line)
		*line = NULL;
	*why = NULL;
	if (!p) {
		*why = tl_strdupf("cannot spawn %s: %m", argv[0]);
		return NULL;
	}
	if (!(missing = wait_ready(p, ready, line)))
		return p;
	tl_proc_stop(p, SIGKILL, 5000);
	char *err = tl_proc_stderr(p), *log = ready->log ? tl_read_file(ready->log, NULL) : NULL;
	char *shown = ready->log ? tl_strdupf("\n%s:\n%s", ready->log, log ? log : "(none)") : tl_strdupf("%s", "");
	*why = tl_strdupf("%s not ready after %d ms (waiting for %s)\nstderr:\n%s%s", argv[0], ready->timeout_ms,
			  missing, err ? err : "", shown);
	free(shown);
	free(err);
	free(log);
	tl_proc_free(p);
	return NULL;
}

char *tl_read_in(const char *dir, const char *name)
{
	char *path = tl_strdupf("%s/%s", dir, name);
	char *s = tl_read_file(path, NULL);

	free(path);
	return s ? s : tl_strdupf("%s", "");
}

char *tl_write_in(const char *dir, const char *name, const void *data, size_t len)
{
	char *path = tl_strdupf("%s/%s", dir, name);

	if (tl_write_file(path, data, len) == 0)
		return path;
	free(path);
	return NULL;
}

char *tl_pattern(size_t len, unsigned seed)
{
	char *b = malloc(len);

	if (!b)
		abort();
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = 'a' + (seed >> 16) % 26;
	}
	return b;
}

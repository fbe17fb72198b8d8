/* testlib: what every cancelshim test needs to drive real programs over real
 * sockets — spawn a program (optionally under the shim) and follow its output,
 * open and abort connections, wait with deadlines. Independent of Criterion:
 * functions report failure by return value (NULL / -1) and never abort, so the
 * test decides what a failure means.
 *
 * Timeouts are in milliseconds; a negative timeout means "wait for ever" (avoid
 * it in tests). All descriptors the library opens are O_CLOEXEC, so a spawned
 * program never inherits the test's sockets. */
#ifndef CS_TESTLIB_H
#define CS_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- Where things are ------------------------------------------------ */

/* Absolute path of libcancelshim.so (env CS_SHIM, set by meson's test_env),
 * or NULL if unset. */
const char *tl_shim_path(void);

/* Absolute path of a helper executable built in tests/helpers ("forkserver",
 * ...): $CS_HELPERS_DIR/name, malloc'd, or NULL if CS_HELPERS_DIR is unset. */
char *tl_helper_path(const char *name);

/* $CS_SOURCE_ROOT/<rel> (malloc'd), or NULL if CS_SOURCE_ROOT is unset. */
char *tl_source_path(const char *rel);

/* ---- Spawned programs ------------------------------------------------- */

/* Flags for tl_spawn. */
enum {
	TL_SHIM = 1 << 0, /* append $CS_SHIM to LD_PRELOAD in the child's env */
};

struct tl_proc;

/* Start argv[0] (a path; PATH is searched if it has no '/') with posix_spawn.
 * The child's environment is the test's environment, plus env (a
 * NULL-terminated list of "NAME=value", may be NULL; entries replace variables
 * of the same name), plus LD_PRELOAD if TL_SHIM. stdin is /dev/null; stdout and
 * stderr go to pipes read by a background thread. The child gets its own
 * process group (so tl_proc_free can kill its descendants too) and default
 * signal dispositions and an empty signal mask. Returns NULL on failure (errno
 * set; e.g. TL_SHIM without CS_SHIM gives ENOENT). */
struct tl_proc *tl_spawn(const char *const argv[], const char *const env[], unsigned flags);

pid_t tl_proc_pid(const struct tl_proc *p);

/* Wait for the next stdout line (after the last one this function returned)
 * containing substr (NULL or "" matches any line). Returns the line without its
 * newline, malloc'd, or NULL on timeout or when stdout reached EOF without a
 * match. Lines skipped over are not returned again; tl_proc_stdout still has
 * them. */
char *tl_proc_wait_line(struct tl_proc *p, const char *substr, int timeout_ms);

/* Wait until the captured stderr contains substr. True if it does. */
bool tl_proc_wait_stderr(struct tl_proc *p, const char *substr, int timeout_ms);

/* Copies (malloc'd, NUL-terminated) of everything captured so far. */
char *tl_proc_stdout(struct tl_proc *p);
char *tl_proc_stderr(struct tl_proc *p);

/* kill(pid, sig) on the process (not its group). 0 or -1. */
int tl_proc_signal(struct tl_proc *p, int sig);

/* Reap the process. Returns its wait status (use WIFEXITED...) or -1 if it is
 * still running after timeout_ms. Once reaped, later calls return the same
 * status at once. The output pipes are drained to EOF (bounded by the same
 * timeout) before returning, so tl_proc_stdout/stderr then hold everything. */
int tl_proc_wait(struct tl_proc *p, int timeout_ms);

/* Send sig, wait up to timeout_ms; if still alive, SIGKILL the process group
 * and reap. Returns the wait status of the process. */
int tl_proc_stop(struct tl_proc *p, int sig, int timeout_ms);

/* Kill the whole process group with SIGKILL if not reaped yet, reap, join the
 * reader thread, free. NULL is fine. */
void tl_proc_free(struct tl_proc *p);

/* ---- Sockets ----------------------------------------------------------- */

/* A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it,
 * close). Returns the port or -1. */
int tl_free_port(void);

/* Listen on host ("127.0.0.1", "::1", NULL = 127.0.0.1) port (0 = any);
 * *port_out (may be NULL) gets the bound port. Returns the fd or -1. */
int tl_listen_tcp(const char *host, int port, int *port_out);
int tl_listen_unix(const char *path); /* unlinks path first */

/* Connect (blocking, with a deadline). Returns a blocking fd or -1. */
int tl_connect_tcp(const char *host, int port, int timeout_ms);
int tl_connect_unix(const char *path, int timeout_ms);

/* Retry tl_connect_tcp until something accepts on host:port or the deadline
 * passes: for servers that print nothing when they are ready. Returns true if
 * a connection succeeded (it is closed again). */
bool tl_wait_port(const char *host, int port, int timeout_ms);

/* Accept one connection with a deadline. fd or -1 (errno ETIMEDOUT). */
int tl_accept(int listen_fd, int timeout_ms);

/* Abort: SO_LINGER {1, 0} then close, so the peer sees RST, not FIN. */
int tl_abort(int fd);

/* Write all of buf before the deadline. 0 or -1 (errno ETIMEDOUT, EPIPE...). */
int tl_write_all(int fd, const void *buf, size_t len, int timeout_ms);
int tl_write_str(int fd, const char *s, int timeout_ms);

/* Read one line (up to and including '\n', NUL-terminated, at most size-1
 * bytes) before the deadline. Reads byte by byte so nothing after the line is
 * consumed. Returns the length (0 = EOF before any byte) or -1 (ETIMEDOUT,
 * ECONNRESET...). A line cut by EOF is returned without '\n'. */
ssize_t tl_read_line(int fd, char *buf, size_t size, int timeout_ms);

/* Read until len bytes or EOF, before the deadline. Returns bytes read (< len
 * means EOF) or -1 on timeout/error (bytes read so far are lost). */
ssize_t tl_read_n(int fd, void *buf, size_t len, int timeout_ms);

/* Wait up to timeout_ms for fd to be readable, then read once. Returns bytes,
 * 0 at EOF, -1 on error or timeout (errno ETIMEDOUT). */
ssize_t tl_read_some(int fd, void *buf, size_t len, int timeout_ms);

/* ---- A slow upstream served by the test process itself ------------------ */

/* A TCP server on 127.0.0.1 (a thread per connection, not under the shim) that
 * reads a line, waits delay_ms, answers "ok <line>\n", and repeats until EOF.
 * Counts lines received, to tell whether the program under test kept calling
 * it. */
struct tl_upstream;
struct tl_upstream *tl_upstream_start(int delay_ms);
int tl_upstream_port(const struct tl_upstream *u);
unsigned tl_upstream_requests(const struct tl_upstream *u); /* lines received */
/* Lines received so far that contain substr. */
unsigned tl_upstream_count(struct tl_upstream *u, const char *substr);
/* Wait until a received line contains substr (the caller has sent it and is
 * now waiting for the answer). True if one did before the deadline. */
bool tl_upstream_wait(struct tl_upstream *u, const char *substr, int timeout_ms);
/* For requests whose calls are lines "ID 1", "ID 2"...: waits for id's
 * next call (one more than it has made so far), the moment its handler
 * waits for that answer. The call's number, or 0 if it never came. */
unsigned tl_upstream_next_call(struct tl_upstream *u, const char *id, int timeout_ms);
void tl_upstream_stop(struct tl_upstream *u); /* closes everything, joins */

/* ---- Servers under test ------------------------------------------------ */

/* When a started server is ready: every condition set holds, checked in
 * this order, each within timeout_ms. */
struct tl_ready {
	const char *file, *file_text;	/* file holds file_text (a log line) */
	const char *err_text;		/* its stderr holds this */
	const char *out_line;		/* a line of its stdout holds this */
	int port;			/* 127.0.0.1:port accepts connections */
	int timeout_ms;
	const char *log;		/* a file shown if it never gets ready */
};

/* tl_spawn, then waits for ready. The process, with the stdout line that
 * matched out_line in *line (malloc'd; line may be NULL); or NULL, the
 * process killed and freed, with *why (malloc'd) saying what it never did,
 * its stderr and the log. */
struct tl_proc *tl_server_start(const char *const argv[], const char *const env[], unsigned flags,
				const struct tl_ready *ready, char **line, char **why);

/* ---- Time, text, files --------------------------------------------------- */

uint64_t tl_now_ns(void); /* CLOCK_MONOTONIC (= Python's time.monotonic_ns) */

/* Non-overlapping occurrences of substr in text (0 if either is NULL). */
size_t tl_count(const char *text, const char *substr);

/* The first line of text containing substr, malloc'd without newline, or NULL. */
char *tl_find_line(const char *text, const char *substr);

/* The number after "key=" in a line of "k1=v1 k2=v2 ..." (key at the start or
 * after a space). 0, or -1 if absent or not a number. */
int tl_field(const char *line, const char *key, long long *out);

/* mkdtemp("/tmp/cs-<tag>-XXXXXX"); malloc'd path or NULL. */
char *tl_tmpdir(const char *tag);
/* rm -r path (no symlink following). 0 or -1. */
int tl_rmtree(const char *path);
/* tl_rmtree, unless CS_KEEP_TMP is set in the environment: then the path is
 * printed on stderr and kept, to read a failed test's logs. */
void tl_cleanup_dir(const char *path);

/* Whole file as a NUL-terminated malloc'd string (*len_out may be NULL), or
 * NULL. */
char *tl_read_file(const char *path, size_t *len_out);
int tl_write_file(const char *path, const void *data, size_t len);

/* Poll path (every few ms) until its contents contain substr. */
bool tl_wait_file_contains(const char *path, const char *substr, int timeout_ms);
/* The same, then the first line of path containing substr (malloc'd, no
 * newline), or NULL on timeout. */
char *tl_wait_file_line(const char *path, const char *substr, int timeout_ms);

/* dir/name as a malloc'd string, "" if it cannot be read (for messages). */
char *tl_read_in(const char *dir, const char *name);
/* Writes dir/name; its malloc'd path, or NULL. */
char *tl_write_in(const char *dir, const char *name, const void *data, size_t len);

/* len bytes of 'a'..'z' in a pseudo-random order that seed decides
 * (malloc'd, not NUL-terminated): a body whose every byte can be checked. */
char *tl_pattern(size_t len, unsigned seed);

/* malloc'd sprintf. Aborts the process on out-of-memory. */
char *tl_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

/* Shared by the statistics tests: the server under the shim, cancelctl, and
 * a direct look at a process's segment. */
#ifndef CS_STATS_TEST_H
#define CS_STATS_TEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "stats_layout.h"
#include "testlib.h"

/* stats_server.py under the shim (LOG=info), forwarding "slow" lines to
 * upstream_port; *port gets its port. NULL if it did not start. */
struct tl_proc *st_server_start(int upstream_port, int *port);

/* One request: connect, send line, and either read the answer and wait for
 * the server's EOF before closing (abort == false: the server closes first,
 * so no disconnect is ever seen) or return the open socket for the caller to
 * abort. Returns 0 / the socket, -1 on failure. */
int st_request(int port, const char *line, bool abort_later);
/* The same over a connected descriptor fd (-1: fails), e.g. a unix socket. */
int st_request_on(int fd, const char *line, bool abort_later);

/* The inode of pid's pid namespace (0: ours), 0 if unknown. */
uint64_t st_pid_ns(int pid);

/* What /dev/shm/cancelshim.<pidns>.<pid> holds. false if absent or incomplete. */
struct st_segment {
	struct cs_seg_header h;
	uint64_t c[CS_STAT_COUNT];
	mode_t mode;
	uid_t uid;
};
bool st_segment_read(int pid, struct st_segment *s);
bool st_segment_exists(int pid);
/* A read-only mapping of the segment, which keeps showing the counters even
 * after the file is removed (by cancelctl, or by another shimmed process
 * sweeping dead processes' segments). NULL if absent. */
const void *st_segment_map(int pid);
bool st_segment_from_map(const void *map, struct st_segment *s);
/* The file's bytes, and putting them back if the file was swept away
 * meanwhile (so a test can still show cancelctl a dead process's segment). */
char *st_segment_save(int pid, size_t *len);
void st_segment_restore(int pid, const char *bytes, size_t len);
char *st_segment_path(int pid);
uint64_t st_latency_count(const struct st_segment *s);

/* Runs cancelctl with args (NULL-terminated, without "cancelctl"), returns
 * the exit status (or -1), stdout and stderr (malloc'd) if asked. */
int st_cancelctl(const char *const args[], char **out, char **err);

/* Runs /usr/bin/python3 script args... with stdin from text; exit status,
 * stderr in *err. */
int st_python(const char *script, const char *input, const char *const args[], char **err);

/* Processes the tests start are tracked, so that st_cleanup (every suite's
 * .fini) kills them even when an assertion ends the test early. */
struct tl_proc *st_track(struct tl_proc *p);
void st_cleanup(void);

/* Polls until cond(pid) is as wanted or the deadline passes. */
bool st_wait_segment(int pid, bool present, int timeout_ms);

/* The watcher the shim runs here under the default mode (auto): "ebpf" as
 * root on a kernel with BTF in a build with -Dbpf, else "epoll". */
const char *st_expected_mode(void);

/* The segment file of pid whatever its pid namespace and naming
 * (cancelshim.<pid> before segments carried their namespace), malloc'd, or
 * NULL. */
char *st_segment_find(int pid);

/* The path of stats-oneshot-server (oneshot_server.c), malloc'd. */
char *st_oneshot_path(void);

/* Runs argv (tl_spawn's env and flags) for at most timeout_ms: its wait
 * status, or -1 if it was still running (then it is killed). stdout and
 * stderr (malloc'd) if asked. */
int st_run(const char *const argv[], const char *const env[], unsigned flags, int timeout_ms, char **out, char **err);

/* Sends line to 127.0.0.1:port, reads one line of answer into reply. 0 or -1. */
int st_ask(int port, const char *line, char *reply, size_t len);

#endif

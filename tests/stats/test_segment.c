/* The segment a shimmed process publishes: when it appears, who may read
 * it, when it goes, and what cancelctl does with one left by a dead process. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(segment, .fini = st_cleanup);

Test(segment, appears_at_the_first_accept_with_mode_0600_and_goes_at_exit)
{
	int port;
	struct tl_proc *srv = st_server_start(1, &port);
	struct st_segment s;
	cr_assert_not_null(srv, "the server did not start under the shim");
	int pid = tl_proc_pid(srv);

	/* Listening is not enough: nothing is published before a client. */
	cr_assert_not(st_segment_exists(pid), "a segment exists before any accept");
	cr_assert_eq(st_request(port, "quick 1", false), 0);
	cr_assert(st_wait_segment(pid, true, 5000), "no segment after the first accept");
	cr_assert(st_segment_read(pid, &s), "the segment is incomplete");
	cr_assert_eq(s.mode, 0600, "mode %o", (unsigned)s.mode);
	cr_assert_eq(s.uid, getuid());
	cr_assert_eq(s.h.version, CS_SEG_VERSION);
	cr_assert_eq(s.h.pid, pid);
	cr_assert_str_eq(s.h.mode, st_expected_mode());
	cr_assert_str_eq(s.h.on, "fin");
	cr_assert_str_eq(s.h.calls, "net,wait");
	cr_assert(strstr(s.h.cmdline, "stats_server.py"), "cmdline '%s'", s.h.cmdline);
	cr_assert_neq(s.h.start_time, 0);
	cr_assert_eq(s.c[CS_STAT_CONNECTIONS], 1);

	/* A normal exit removes it. */
	int status = tl_proc_stop(srv, SIGTERM, 10000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x", status);
	cr_assert_not(st_segment_exists(pid), "the segment outlived its process");
}

Test(segment, one_left_by_a_killed_process_is_removed_by_cancelctl_stats)
{
	int port;
	struct tl_proc *srv = st_server_start(1, &port);
	cr_assert_not_null(srv);
	int pid = tl_proc_pid(srv);
	char *out = NULL, *err = NULL, *path = st_segment_path(pid);

	cr_assert_eq(st_request(port, "quick 1", false), 0);
	cr_assert(st_wait_segment(pid, true, 5000));
	size_t len;
	char *bytes = st_segment_save(pid, &len);
	cr_assert_not_null(bytes);
	tl_proc_stop(srv, SIGKILL, 10000);
	/* SIGKILL runs no destructor: the segment is left. (Any shimmed process
	 * that publishes meanwhile sweeps dead processes' segments: then put
	 * it back, to show it to cancelctl.) */
	st_segment_restore(pid, bytes, len);
	free(bytes);
	cr_assert(st_segment_exists(pid));

	const char *args[] = { "stats", NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "stderr: %s", err);
	cr_assert_not(st_segment_exists(pid), "cancelctl stats left the dead process's segment");
	cr_assert(strstr(err, path) && strstr(err, "process is gone"), "stderr: %s", err);
	char *pidstr = tl_strdupf("\n%d ", pid);
	cr_assert_null(strstr(out, pidstr), "a dead process is listed:\n%s", out);
	free(pidstr);
	free(out);
	free(err);
	free(path);
}

Test(segment, a_reused_pid_is_recognised_by_its_start_time)
{
	/* A segment that names a live process (ourselves) but carries another
	 * start time: the process it belonged to is gone. */
	int pid = getpid();
	char *path = st_segment_path(pid), *out = NULL, *err = NULL;
	char buf[CS_SEG_SIZE] = { 0 };
	struct cs_seg_header *h = (struct cs_seg_header *)buf;

	h->magic = CS_SEG_MAGIC;
	cs_seg_header_layout(h, pid, st_pid_ns(0));
	h->start_time = 1;	/* long before this test started */
	cr_assert_eq(tl_write_file(path, buf, sizeof buf), 0);
	const char *args[] = { "stats", NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0);
	cr_assert_not(st_segment_exists(pid), "stale segment kept; stderr: %s", err);
	cr_assert(strstr(err, "pid reused"), "stderr: %s", err);
	free(out);
	free(err);
	free(path);
}

Test(segment, a_new_publisher_sweeps_dead_processes_segments)
{
	/* A fork child that _exit()s leaves its segment; the next process to
	 * publish removes it, so they cannot pile up in /dev/shm. */
	const char *argv[] = { "/bin/true", NULL };
	struct tl_proc *gone = tl_spawn(argv, NULL, 0);
	cr_assert_not_null(gone);
	int dead = tl_proc_pid(gone);
	tl_proc_wait(gone, 10000);
	tl_proc_free(gone);
	char *path = st_segment_path(dead);
	char buf[CS_SEG_SIZE] = { 0 };
	cr_assert_eq(tl_write_file(path, buf, sizeof buf), 0);

	int port;
	struct tl_proc *srv = st_server_start(1, &port);
	cr_assert_not_null(srv);
	cr_assert_eq(st_request(port, "quick 1", false), 0);
	cr_assert(st_wait_segment(tl_proc_pid(srv), true, 5000));
	cr_assert(st_wait_segment(dead, false, 5000), "%s was not swept", path);
	free(path);
}

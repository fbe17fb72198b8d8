/* Containers that share /dev/shm but not pids: a segment published in
 * another pid namespace names a pid that means nothing here (absent, or
 * another process). Neither a shimmed server of ours sweeping dead
 * processes' segments nor our cancelctl may remove it; ours keep working. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(pidns, .fini = st_cleanup);

/* A pid absent from our namespace, which the other namespace's server will
 * get (ns_last_pid is one below it), so that only a proof of death by pid
 * alone would condemn its segment. */
static int absent_pid(void)
{
	char *max_text = tl_read_file("/proc/sys/kernel/pid_max", NULL);
	int max = max_text ? atoi(max_text) : 32768;

	free(max_text);
	for (int pid = max / 2 + (int)(getpid() % 1000); pid < max - 1; pid += 997)
		if (kill(pid, 0) < 0 && kill(pid + 1, 0) < 0 && kill(pid - 1, 0) < 0)
			return pid;
	return -1;
}

/* Runs the one-shot server under the shim in a new pid namespace, as pid
 * `pid` there; it serves two clients. */
static struct tl_proc *start_elsewhere(int pid, int *port)
{
	char *server = st_oneshot_path(), *last = tl_strdupf("%d", pid - 1);
	char *preload = tl_strdupf("CS_PRELOAD=%s", getenv("CS_SHIM"));
	const char *script = "echo \"$1\" > /proc/sys/kernel/ns_last_pid || exit 90\n"
			     "LD_PRELOAD=\"$CS_PRELOAD\" \"$0\" --clients 2 &\n"
			     "wait $!\n";
	const char *argv[] = { "unshare", "--pid", "--fork", "--mount-proc", "/bin/sh", "-c", script, server, last, NULL };
	const char *env[] = { preload, NULL };
	struct tl_proc *p = st_track(tl_spawn(argv, env, 0));
	char *line = p ? tl_proc_wait_line(p, "port ", 10000) : NULL;

	cr_assert_not_null(line, "the server in the other namespace did not start: %s", p ? tl_proc_stderr(p) : "");
	*port = atoi(line + 5);
	free(line);
	free(server);
	free(last);
	free(preload);
	return p;
}

Test(pidns, another_namespaces_segment_survives_our_sweep_and_our_cancelctl)
{
	if (geteuid() != 0)
		cr_skip_test("a pid namespace needs root");
	int pid = absent_pid(), port, ours_port;
	char reply[64], *out = NULL, *err = NULL;
	cr_assert_gt(pid, 0);
	struct tl_proc *other = start_elsewhere(pid, &port);

	cr_assert_eq(st_ask(port, "one", reply, sizeof reply), 0, "stderr: %s", tl_proc_stderr(other));
	char *line = tl_proc_wait_line(other, "served one", 10000);
	cr_assert_not_null(line);
	free(line);
	char *theirs = st_segment_find(pid);
	cr_assert_not_null(theirs, "the other namespace's server published nothing for its pid %d", pid);
	struct stat before;
	cr_assert_eq(stat(theirs, &before), 0);

	/* A server of ours publishes its segment, sweeping dead processes'
	 * ones on the way; then cancelctl stats, every way it is run. */
	struct tl_proc *ours = st_server_start(1, &ours_port);
	cr_assert_not_null(ours);
	cr_assert_eq(st_request(ours_port, "quick 1", false), 0);
	char *mine = NULL;
	for (uint64_t end = tl_now_ns() + 5000000000u; !mine && tl_now_ns() < end; usleep(5000))
		mine = st_segment_find(tl_proc_pid(ours));
	cr_assert_not_null(mine, "our server published nothing");
	free(mine);
	cr_assert_eq(access(theirs, F_OK), 0, "our publisher's sweep removed %s", theirs);

	char *pidarg = tl_strdupf("%d", pid), *ourpid = tl_strdupf("%d", tl_proc_pid(ours));
	const char *all[] = { "stats", NULL }, *json[] = { "stats", "--json", NULL },
		   *prom[] = { "stats", "--prometheus", NULL }, *theirs_by_pid[] = { "stats", pidarg, NULL },
		   *ours_by_pid[] = { "stats", "--json", ourpid, NULL };
	cr_assert_eq(st_cancelctl(all, NULL, &err), 0, "stderr: %s", err);
	free(err);
	cr_assert_eq(st_cancelctl(json, NULL, NULL), 0);
	cr_assert_eq(st_cancelctl(prom, NULL, NULL), 0);
	/* Its pid is nobody here: no statistics, and nothing removed. */
	cr_assert_eq(st_cancelctl(theirs_by_pid, NULL, NULL), 1);
	cr_assert_eq(access(theirs, F_OK), 0, "cancelctl stats removed %s", theirs);
	/* Ours is still shown by pid. */
	cr_assert_eq(st_cancelctl(ours_by_pid, &out, &err), 0, "stderr: %s", err);
	cr_assert(strstr(out, "\"connections_accepted\":1,"), "%s", out);

	/* The other server ends normally and removes its own. */
	cr_assert_eq(st_ask(port, "two", reply, sizeof reply), 0);
	int status = tl_proc_wait(other, 10000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x: %s", status, tl_proc_stderr(other));
	cr_assert_neq(access(theirs, F_OK), 0, "%s outlived its process", theirs);
	free(theirs);
	free(pidarg);
	free(ourpid);
	free(out);
	free(err);
}

/* A server started as root that drops to another user after its first
 * accept: its segment, created while it was root, is given to the new user
 * at the setuid, so cancelctl still recognises its owner and the server can
 * still remove it at exit (/dev/shm is sticky). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(uid_drop, .fini = st_cleanup);

#define NOBODY 65534

static void drops_and_leaves_nothing(const char *mode)
{
	if (geteuid() != 0)
		cr_skip_test("dropping privileges needs root");
	if (!strcmp(mode, "ebpf") && strcmp(st_expected_mode(), "ebpf"))
		cr_skip_test("mode ebpf is not available here");
	char *server = st_oneshot_path(), reply[64], *out = NULL, *err = NULL;
	char *want_mode = tl_strdupf("CANCELSHIM_MODE=%s", mode);
	const char *argv[] = { server, "--clients", "2", "--setuid", "65534", NULL };
	const char *env[] = { "CANCELSHIM_LOG=info", want_mode, NULL };
	struct tl_proc *p = st_track(tl_spawn(argv, env, TL_SHIM));
	cr_assert_not_null(p);
	char *line = tl_proc_wait_line(p, "port ", 10000);
	cr_assert_not_null(line);
	int port = atoi(line + 5), pid = tl_proc_pid(p);
	free(line);

	/* First client: the segment appears (made as root), then the drop. */
	cr_assert_eq(st_ask(port, "one", reply, sizeof reply), 0, "stderr: %s", tl_proc_stderr(p));
	line = tl_proc_wait_line(p, "served one", 10000);
	cr_assert_not_null(line, "stderr: %s", tl_proc_stderr(p));
	free(line);
	char *path = st_segment_find(pid);
	struct stat st;
	cr_assert_not_null(path, "no segment after the first accept");
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_uid, NOBODY, "the segment belongs to uid %u after the drop", (unsigned)st.st_uid);

	/* cancelctl still shows it: its owner is one of the process's uids. */
	char *pidarg = tl_strdupf("%d", pid);
	const char *args[] = { "stats", "--json", pidarg, NULL };
	cr_assert_eq(st_cancelctl(args, &out, &err), 0, "stderr: %s", err);
	cr_assert(strstr(out, "\"connections_accepted\":1,"), "not shown: %s (stderr %s)", out, err);

	/* Second client, then a normal exit as nobody: the segment goes. */
	cr_assert_eq(st_ask(port, "two", reply, sizeof reply), 0);
	int status = tl_proc_wait(p, 10000);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x, stderr: %s", status, tl_proc_stderr(p));
	cr_assert_neq(stat(path, &st), 0, "%s was left behind (owner %u)", path, (unsigned)st.st_uid);
	free(path);
	free(pidarg);
	free(server);
	free(out);
	free(err);
	free(want_mode);
}

Test(uid_drop, a_server_that_drops_to_nobody_after_its_first_accept_leaves_no_segment_epoll)
{
	drops_and_leaves_nothing("epoll");
}

Test(uid_drop, a_server_that_drops_to_nobody_after_its_first_accept_leaves_no_segment_ebpf)
{
	drops_and_leaves_nothing("ebpf");
}

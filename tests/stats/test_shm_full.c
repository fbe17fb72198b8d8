/* A full /dev/shm (a container's 64 MB that another program filled) must
 * not harm the host: the segment's storage is reserved before it is mapped,
 * so the shim turns its statistics off with one line and the server serves
 * on, exactly as it does without the shim. Each run gets a private mount
 * namespace (unshare -m) whose /dev/shm is a one-page tmpfs filled up. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats_test.h"

TestSuite(shm_full, .fini = st_cleanup);

/* Fills the new /dev/shm, checks it is full (a byte cannot be written),
 * then runs the server, under the shim only if CS_PRELOAD is set. */
static const char script[] =
	"mount -t tmpfs -o size=4k,mode=1777 cs-shm-full /dev/shm || exit 90\n"
	"head -c 4096 /dev/zero > /dev/shm/filler 2>/dev/null\n"
	"if printf x > /dev/shm/probe 2>/dev/null; then echo '/dev/shm is not full' >&2; exit 91; fi\n"
	"rm -f /dev/shm/probe\n"
	"if [ -n \"$CS_PRELOAD\" ]; then export LD_PRELOAD=\"$CS_PRELOAD\"; fi\n"
	"exec \"$0\"\n";

struct run {
	int status;
	char reply[128];
	char *out, *err;
};

/* One server run with one client; the server's stdout without its port
 * line (the port differs from run to run). */
static void run_server(const char *mode, struct run *r)
{
	char *server = st_oneshot_path();
	char *preload = mode ? tl_strdupf("CS_PRELOAD=%s", getenv("CS_SHIM")) : strdup("CS_PRELOAD=");
	char *want_mode = tl_strdupf("CANCELSHIM_MODE=%s", mode ? mode : "auto");
	const char *argv[] = { "unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script, server, NULL };
	const char *env[] = { preload, want_mode, NULL };
	struct tl_proc *p = st_track(tl_spawn(argv, env, 0));
	char *line;

	cr_assert_not_null(p);
	line = tl_proc_wait_line(p, "port ", 10000);
	cr_assert_not_null(line, "the server did not start: %s", tl_proc_stderr(p));
	cr_assert_eq(st_ask(atoi(line + 5), "hello", r->reply, sizeof r->reply), 0,
		     "no answer from the server (mode %s)", mode ? mode : "no shim");
	free(line);
	r->status = tl_proc_wait(p, 10000);
	r->out = tl_proc_stdout(p);
	r->err = tl_proc_stderr(p);
	line = strchr(r->out, '\n');
	memmove(r->out, line ? line + 1 : r->out, strlen(line ? line + 1 : r->out) + 1);
	free(server);
	free(preload);
	free(want_mode);
}

static void serves_as_without_the_shim(const char *mode)
{
	struct run plain, shimmed;

	if (geteuid() != 0)
		cr_skip_test("mounting a tmpfs needs root");
	run_server(NULL, &plain);
	run_server(mode, &shimmed);
	cr_assert(WIFEXITED(plain.status) && WEXITSTATUS(plain.status) == 0, "without the shim: status %#x, %s",
		  plain.status, plain.err);
	cr_assert_eq(shimmed.status, plain.status, "status %#x under the shim (signal %d), %#x without; stderr: %s",
		     shimmed.status, WIFSIGNALED(shimmed.status) ? WTERMSIG(shimmed.status) : 0, plain.status, shimmed.err);
	cr_assert_str_eq(shimmed.reply, plain.reply);
	cr_assert_str_eq(shimmed.out, plain.out);
	cr_assert_str_eq(plain.err, "");
	cr_assert_eq(tl_count(shimmed.err, "\n"), 1, "not one line on stderr: '%s'", shimmed.err);
	cr_assert(strstr(shimmed.err, "statistics off"), "stderr: '%s'", shimmed.err);
}

Test(shm_full, a_full_dev_shm_turns_statistics_off_and_the_server_serves_on_epoll)
{
	serves_as_without_the_shim("epoll");
}

Test(shm_full, a_full_dev_shm_turns_statistics_off_and_the_server_serves_on_ebpf)
{
	if (strcmp(st_expected_mode(), "ebpf"))
		cr_skip_test("mode ebpf is not available here");
	serves_as_without_the_shim("ebpf");
}

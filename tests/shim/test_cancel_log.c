/* The info line per cancel (shim/cancel/cancel_log.h): scope-server's public thread
 * is cancelled once its client leaves; at CANCELSHIM_LOG=info exactly one
 * line says so, in the documented format, with the listener's port, the
 * client's address, FIN or RST, the call and the time since the disconnect.
 * At warn there is none. Both modes (shim-cancel-log, shim-cancel-log-ebpf). */
#include <criterion/criterion.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

TestSuite(cancel_log, .timeout = 120);

/* scope-server with only its public port in scope: stderr. */
static char *serve(const char *level, int rst, char *public_port, size_t len)
{
	const char *server = getenv("CS_SCOPE_SERVER");
	cr_assert(server, "CS_SCOPE_SERVER is not set: run through meson test");
	int pa = tl_free_port(), pb;
	while ((pb = tl_free_port()) == pa)
		;
	char a[16], b[16], ports[64], log[64];
	snprintf(a, sizeof a, "%d", pa);
	snprintf(b, sizeof b, "%d", pb);
	snprintf(public_port, len, "%d", pa);
	snprintf(ports, sizeof ports, "CANCELSHIM_PORTS=%d", pa);
	snprintf(log, sizeof log, "CANCELSHIM_LOG=%s", level);
	const char *argv[] = { server, "tcp", a, b, NULL };
	const char *env[] = { ports, log, rst ? "SCOPE_RST=1" : "SCOPE_RST_UNSET=1", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	cr_assert(p);
	int status = tl_proc_wait(p, 60000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p);
	tl_proc_free(p);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s\n%s", out, err);
	cr_assert(strstr(out, "public ret=-1 errno=125 cancelled=1"), "public not cancelled:\n%s\n%s", out, err);
	free(out);
	return err;
}

static void one_line_matching(const char *err, const char *pattern)
{
	regex_t re;
	regmatch_t m;
	cr_assert_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0, "%s", pattern);
	cr_assert_eq(regexec(&re, err, 1, &m, 0), 0, "no line matching\n%s\nin:\n%s", pattern, err);
	cr_assert_neq(regexec(&re, err + m.rm_eo, 1, &m, 0), 0, "two lines matching %s:\n%s", pattern, err);
	regfree(&re);
	cr_assert_eq(tl_count(err, "info: cancel "), 1, "one cancel, one line:\n%s", err);
}

Test(cancel_log, a_fin_gives_one_line_with_port_peer_reason_call_and_delay)
{
	char port[16], pattern[512];
	char *err = serve("info", 0, port, sizeof port);
	snprintf(pattern, sizeof pattern,
		 "^cancelshim\\[[0-9]+\\]: info: cancel time=20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9]{2}:[0-9]{2}:"
		 "[0-9]{2}\\.[0-9]{3}Z pid=[0-9]+ tid=[0-9]+ lport=%s peer=127\\.0\\.0\\.1:[0-9]+ reason=fin "
		 "call=recvfrom ms_since_disconnect=[0-9]+\\.[0-9]{3}$", port);
	one_line_matching(err, pattern);
	char scope[128];
	snprintf(scope, sizeof scope, "info: scope: ports %s; clients of other listeners are never cancelled", port);
	cr_assert(strstr(err, scope), "no '%s' line at start:\n%s", scope, err);
	free(err);
}

Test(cancel_log, a_reset_says_rst)
{
	char port[16], pattern[512];
	char *err = serve("info", 1, port, sizeof port);
	/* After a reset the socket no longer knows its peer: "-" (documented). */
	snprintf(pattern, sizeof pattern,
		 "^cancelshim\\[[0-9]+\\]: info: cancel time=[^ ]+Z pid=[0-9]+ tid=[0-9]+ lport=%s "
		 "peer=(-|127\\.0\\.0\\.1:[0-9]+) reason=rst call=recvfrom ms_since_disconnect=[0-9]+\\.[0-9]{3}$",
		 port);
	one_line_matching(err, pattern);
	free(err);
}

Test(cancel_log, at_warn_there_is_no_line)
{
	char port[16];
	char *err = serve("warn", 0, port, sizeof port);
	cr_assert_eq(tl_count(err, "cancel "), 0, "%s", err);
	free(err);
}

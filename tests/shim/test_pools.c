/* Thread-pool servers reduced to the calls they make (cs-probe pool, see
 * probe_pools.c), with real threads and sockets, in cancel and observe
 * mode:
 *  - waitress: the worker writes A's response but never reads a client; A
 *    closing while it runs B's request must not fail it;
 *  - puma: the worker reads A, hands it to the reactor (EPOLL_CTL_ADD into
 *    a set made at boot), runs B's follow-up the reactor read: A closing must
 *    not fail it; C, read by the worker, is stopped when it leaves;
 *  - puma-late: the same, with the reactor taking A back only after B's
 *    follow-up ran: the worker's wake-up of the reactor ends its binding;
 *  - gunicorn gthread: the worker puts kept-alive A in the main thread's set
 *    (with the listener) and stays cancellable: C's request stops;
 *  - Tomcat: the poller's selector made at start-up holds the process's
 *    first client alone: the poller's waits never fail, the worker reading
 *    the request is stopped. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "probe_run.h"

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Runs one pattern; observe: CANCELSHIM_ACTION=observe. stopped: 1 if the
 * pattern has a request whose client leaves (stopped in cancel mode), -1 if
 * not. The patterns with an idle client closing beside a live request
 * (waitress, puma) report live_ret. */
static void pattern(const char *how, const char *family, const char *close_how, int observe, int stopped)
{
	int live = !strcmp(how, "waitress") || !strncmp(how, "puma", 4);
	static const char *const observe_env[] = { "CANCELSHIM_ACTION=observe", "CANCELSHIM_LOG=info", NULL };
	struct probe_result r = probe_run(0, observe ? observe_env : NULL, "pool", how, family, close_how, NULL);
	const char *what = observe ? "observe" : "cancel";

	cr_expect_eq(live ? probe_field(&r, "pool", "live_ret") : 1, 1,
		     "%s/%s/%s (%s): a live request failed when an idle client closed\n%s\n%s", how, family, close_how,
		     what, r.out, r.err);
	cr_expect_eq(probe_field(&r, "pool", "loop_errors"), 0, "%s (%s): the event loop's wait failed\n%s\n%s", how,
		     what, r.out, r.err);
	if (stopped < 0) {
		cr_expect_eq(count(r.err, "would cancel"), 0, "%s: a would-cancel\n%s", how, r.err);
	} else if (observe) {
		cr_expect_eq(probe_field(&r, "pool", "dead_ret"), 1, "%s: observe mode failed a call\n%s\n%s", how,
			     r.out, r.err);
		cr_expect_eq(count(r.err, "observe: would cancel"), 1, "%s: one would-cancel expected\n%s", how, r.err);
		cr_expect(strstr(r.err, "call=recv"), "%s: the call it would have failed is not named\n%s", how, r.err);
	} else {
		cr_expect_eq(probe_field(&r, "pool", "dead_errno"), ECANCELED,
			     "%s/%s/%s: the request whose client left was not stopped\n%s\n%s", how, family, close_how,
			     r.out, r.err);
	}
	probe_result_free(&r);
}

TestSuite(pools, .timeout = 60);

Test(pools, waitress_worker_never_binds)
{
	pattern("waitress", "v4", "fin", 0, -1);
	pattern("waitress", "unix", "rst", 0, -1);
	pattern("waitress", "v4", "fin", 1, -1);
}

Test(pools, puma_reactor_parks_the_worker_s_client)
{
	pattern("puma", "v4", "fin", 0, 1);
	pattern("puma", "v6", "rst", 0, 1);
	pattern("puma", "v4", "fin", 1, 1);
}

Test(pools, waking_the_reactor_ends_the_worker_s_binding)
{
	pattern("puma-late", "v4", "fin", 0, 1);
	pattern("puma-late", "v4", "rst", 0, 1);
	pattern("puma-late", "unix", "fin", 0, 1);
	pattern("puma-late", "v4", "fin", 1, 1);
}

Test(pools, gthread_worker_registering_in_the_main_set_stays_cancellable)
{
	pattern("gthread", "v4", "fin", 0, 1);
	pattern("gthread", "v4", "rst", 0, 1);
	pattern("gthread", "v4", "fin", 1, 1);
}

Test(pools, tomcat_poller_is_never_cancelled)
{
	pattern("tomcat", "v4", "fin", 0, 1);
	pattern("tomcat", "v4", "rst", 0, 1);
	pattern("tomcat", "v4", "fin", 1, 1);
}

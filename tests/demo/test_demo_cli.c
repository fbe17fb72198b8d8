/* `cancelctl demo --cli` end to end: the shimmed server stops its abandoned
 * job at once, the plain one runs it to the end, the table says so, and no
 * child outlives cancelctl (also when interrupted). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo_testlib.h"

#define CHUNKS 24
#define CANCEL_AFTER 4

TestSuite(demo_cli, .timeout = 120);

static char *cancelctl(void)
{
	char *path = getenv("CS_CANCELCTL");

	cr_assert(path, "CS_CANCELCTL is not set (run through meson test)");
	return path;
}

struct row {
	int before, after;
	double stop_ms;
	char how[128];
};

/* A table row: "NAME  before  after  stop_ms  how it ended". */
static void table_row(const char *out, const char *name, struct row *r)
{
	char prefix[32];
	const char *line;
	int used = 0;

	snprintf(prefix, sizeof prefix, "\n%s ", name);
	line = strstr(out, prefix);
	cr_assert(line, "no '%s' row in:\n%s", name, out);
	cr_assert_eq(sscanf(line + strlen(prefix), "%d %d %lf %n", &r->before, &r->after,
			    &r->stop_ms, &used), 3, "bad '%s' row in:\n%s", name, out);
	snprintf(r->how, sizeof r->how, "%.*s", (int)strcspn(line + strlen(prefix) + used, "\n"),
		 line + strlen(prefix) + used);
}

/* The ports the demo used, from its "storage on ..." line. */
static void demo_ports(const char *out, int ports[3])
{
	const char *line = strstr(out, "storage on ");

	cr_assert(line && sscanf(line, "storage on 127.0.0.1:%d, plain server on 127.0.0.1:%d, "
				 "shimmed server on 127.0.0.1:%d", &ports[0], &ports[1],
				 &ports[2]) == 3, "no ports line in:\n%s", out);
}

/* cancelctl has returned: nothing may listen on the demo's ports any more. */
static void assert_children_gone(const char *out)
{
	int ports[3];

	demo_ports(out, ports);
	for (int i = 0; i < 3; i++) {
		int fd = connect_port(ports[i]);
		if (fd >= 0)
			close(fd);
		cr_assert(fd < 0 && errno == ECONNREFUSED,
			  "port %d still accepts after cancelctl exited", ports[i]);
	}
}

Test(demo_cli, shim_stops_the_job_plain_runs_on)
{
	struct proc demo;
	struct row plain, shimmed;
	char chunks[16], after[16];
	int status;

	snprintf(chunks, sizeof chunks, "%d", CHUNKS);
	snprintf(after, sizeof after, "%d", CANCEL_AFTER);
	proc_start(&demo, (char *[]){ cancelctl(), "demo", "--cli", "--chunks", chunks, "--ms", "100",
				      "--cancel-after", after, NULL }, NULL);
	status = proc_wait(&demo, 60000);
	cr_log_info("cancelctl demo output:\n%s", demo.buf);

	table_row(demo.buf, "plain", &plain);
	table_row(demo.buf, "shimmed", &shimmed);

	/* The plain server never noticed: it stored every chunk. */
	cr_assert_geq(plain.before, CANCEL_AFTER);
	cr_assert_eq(plain.before + plain.after, CHUNKS);
	cr_assert_str_eq(plain.how, "ran to the end (24/24 chunks)");
	cr_assert_geq(plain.stop_ms, (plain.after - 1) * 100.0);

	/* The shimmed one stopped in the chunk it was in, with ECANCELED. */
	cr_assert_geq(shimmed.before, CANCEL_AFTER);
	cr_assert_leq(shimmed.after, 1, "the shimmed job went on storing:\n%s", demo.buf);
	cr_assert_leq(shimmed.stop_ms, 250.0, "the shimmed job took long to stop:\n%s", demo.buf);
	cr_assert(!strncmp(shimmed.how, "stopped: ECANCELED", 18), "shimmed: %s", shimmed.how);

	/* The shim really was loaded in the shimmed server, and the mode in
	 * force is said from its own line. */
	cr_assert(strstr(demo.buf, "The shim reported: active: mode "), "output:\n%s", demo.buf);
	cr_assert(strstr(demo.buf, "mode: CANCELSHIM_MODE=auto; the shim says: active: mode "),
		  "output:\n%s", demo.buf);
	cr_assert_eq(status, 0, "exit status %d; output:\n%s", status, demo.buf);
	assert_children_gone(demo.buf);
}

/* Ctrl-C in the middle: cancelctl ends its children and says so. */
Test(demo_cli, interrupt_ends_every_child)
{
	struct proc demo;
	int status;

	proc_start(&demo, (char *[]){ cancelctl(), "demo", "--cli", NULL }, NULL);
	cr_assert(proc_read_until(&demo, "Started job", 15000), "output:\n%s", demo.buf);
	kill(demo.pid, SIGINT);
	status = proc_wait(&demo, 10000);
	cr_assert_eq(status, 128 + SIGINT, "exit status %d; output:\n%s", status, demo.buf);
	cr_assert(strstr(demo.buf, "interrupted"), "output:\n%s", demo.buf);
	assert_children_gone(demo.buf);
}

Test(demo_cli, usage)
{
	struct proc p;

	proc_start(&p, (char *[]){ cancelctl(), "demo", "--help", NULL }, NULL);
	cr_assert_eq(proc_wait(&p, 5000), 0);
	cr_assert(strstr(p.buf, "usage: cancelctl demo"), "%s", p.buf);

	proc_start(&p, (char *[]){ cancelctl(), "demo", "--cli", "--chunks", "5", "--cancel-after",
				   "5", NULL }, NULL);
	cr_assert_eq(proc_wait(&p, 5000), 2, "%s", p.buf);

	proc_start(&p, (char *[]){ cancelctl(), "demo", "--ms", "lots", NULL }, NULL);
	cr_assert_eq(proc_wait(&p, 5000), 2, "%s", p.buf);
}

/* CANCELSHIM_PORTS: a server with a public and an admin listener; both
 * clients leave while their threads wait on an upstream. Only the listeners
 * in scope have their threads cancelled; by default every one is. Runs in
 * both modes (shim-scope, shim-scope-ebpf). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testlib.h"

TestSuite(scope, .timeout = 120);

struct outcome {
	long long public_cancelled, admin_cancelled;
	char *err;
};

static struct outcome run_for(const char *family, const char *public, const char *admin, const char *ports,
			      const char *wait_ms)
{
	const char *server = getenv("CS_SCOPE_SERVER");
	char env_ports[512];
	cr_assert(server, "CS_SCOPE_SERVER is not set: run through meson test");
	const char *argv[] = { server, family, public, admin, wait_ms, NULL };
	snprintf(env_ports, sizeof env_ports, "CANCELSHIM_PORTS=%s", ports ? ports : "");
	const char *env[] = { env_ports, "CANCELSHIM_LOG=warn", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	cr_assert(p, "cannot start %s", server);
	int status = tl_proc_wait(p, 60000);
	char *out = tl_proc_stdout(p), *line;
	struct outcome o = { -1, -1, tl_proc_stderr(p) };
	tl_proc_free(p);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %#x\n%s\n%s", status, out, o.err);
	cr_assert((line = tl_find_line(out, "public ")) && tl_field(line, "cancelled", &o.public_cancelled) == 0,
		  "%s", out);
	free(line);
	cr_assert((line = tl_find_line(out, "admin ")) && tl_field(line, "cancelled", &o.admin_cancelled) == 0,
		  "%s", out);
	free(line);
	free(out);
	return o;
}

static struct outcome run(const char *family, const char *public, const char *admin, const char *ports)
{
	return run_for(family, public, admin, ports, NULL);
}

static void two_ports(char *a, char *b)
{
	int pa = tl_free_port(), pb;
	while ((pb = tl_free_port()) == pa)
		;
	sprintf(a, "%d", pa);
	sprintf(b, "%d", pb);
}

Test(scope, only_the_tcp_port_in_scope_has_its_client_cancelled)
{
	char pub[16], adm[16];
	two_ports(pub, adm);
	struct outcome o = run("tcp", pub, adm, pub);
	cr_assert_eq(o.public_cancelled, 1, "the public port is in scope\n%s", o.err);
	cr_assert_eq(o.admin_cancelled, 0, "the admin port is out of scope\n%s", o.err);
	free(o.err);
}

Test(scope, a_range_and_a_list_select_ports_too)
{
	char pub[16], adm[16], ports[64];
	two_ports(pub, adm);
	snprintf(ports, sizeof ports, "1-2,%s-%s", pub, pub);
	struct outcome o = run("tcp", pub, adm, ports);
	cr_assert_eq(o.public_cancelled, 1, "%s", o.err);
	cr_assert_eq(o.admin_cancelled, 0, "%s", o.err);
	free(o.err);
}

Test(scope, by_default_every_listener_is_in_scope)
{
	char pub[16], adm[16];
	two_ports(pub, adm);
	struct outcome o = run("tcp", pub, adm, NULL);
	cr_assert_eq(o.public_cancelled, 1, "%s", o.err);
	cr_assert_eq(o.admin_cancelled, 1, "%s", o.err);
	free(o.err);
}

Test(scope, only_the_unix_path_in_scope_has_its_client_cancelled)
{
	char *dir = tl_tmpdir("scope"), pub[256], adm[256], ports[300];
	snprintf(pub, sizeof pub, "%s/public.sock", dir);
	snprintf(adm, sizeof adm, "%s/admin.sock", dir);
	snprintf(ports, sizeof ports, "8080,unix:%s", pub);
	struct outcome o = run("unix", pub, adm, ports);
	tl_rmtree(dir);
	free(dir);
	cr_assert_eq(o.public_cancelled, 1, "%s", o.err);
	cr_assert_eq(o.admin_cancelled, 0, "%s", o.err);
	free(o.err);
}

Test(scope, a_bad_list_turns_the_shim_off_with_a_line_naming_the_variable)
{
	char pub[16], adm[16];
	two_ports(pub, adm);
	/* No cancel will come: public waits 300 ms, not 10 s. */
	struct outcome o = run_for("tcp", pub, adm, "80,http", "300");
	cr_assert(strstr(o.err, "CANCELSHIM_PORTS='80,http' is not valid"), "%s", o.err);
	cr_assert_eq(o.public_cancelled, 0, "the shim is off: %s", o.err);
	free(o.err);
}

/* A pool worker reads a public request, then an admin one: it serves the
 * admin client now. The public client leaving must not cancel the admin
 * request (an admin client recorded as a plain socket would leave the worker
 * bound to the public one, and this would fail with ECANCELED). */
Test(scope, a_worker_that_moved_to_an_admin_client_is_not_cancelled_by_the_public_one_leaving)
{
	const char *server = getenv("CS_SCOPE_SERVER");
	char pub[16], adm[16], ports[48];
	two_ports(pub, adm);
	snprintf(ports, sizeof ports, "CANCELSHIM_PORTS=%s", pub);
	const char *argv[] = { server, "tcp", pub, adm, NULL };
	const char *env[] = { ports, "SCOPE_SWITCH=1", NULL };
	struct tl_proc *p = tl_spawn(argv, env, TL_SHIM);
	cr_assert(p);
	int status = tl_proc_wait(p, 60000);
	char *out = tl_proc_stdout(p), *err = tl_proc_stderr(p), *line;
	tl_proc_free(p);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s\n%s", out, err);
	long long cancelled = -1;
	cr_assert((line = tl_find_line(out, "switch ")) && tl_field(line, "cancelled", &cancelled) == 0, "%s", out);
	cr_assert_eq(cancelled, 0, "the admin request was cancelled: %s\n%s", line, err);
	free(line);
	free(out);
	free(err);
}

/* Calls made from a library loaded with dlopen(RTLD_DEEPBIND): the "cancel"
 * scenario's CALL deep_recv, deep_poll, deep_recv_ptr runs recv/poll from
 * $CS_DEEP_LIB (tests/shim/deep_lib.c), loaded with RTLD_DEEPBIND and
 * RTLD_LAZY or RTLD_NOW ($CS_DEEP_BIND: lazy|now). */
#include "probe.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *deep_handle(void)
{
	static void *h;
	const char *lib = getenv("CS_DEEP_LIB"), *bind = getenv("CS_DEEP_BIND");

	if (h)
		return h;
	if (!lib) {
		fprintf(stderr, "cs-probe: CS_DEEP_LIB is not set\n");
		exit(2);
	}
	h = dlopen(lib, (bind && !strcmp(bind, "lazy") ? RTLD_LAZY : RTLD_NOW) | RTLD_DEEPBIND);
	if (!h) {
		fprintf(stderr, "cs-probe: %s\n", dlerror());
		exit(2);
	}
	return h;
}

/* Loads the library now (before any thread serves), once. */
void probe_deep_load(void)
{
	deep_handle();
}

int probe_deep_call(const char *call, int fd)
{
	char name[64];
	int (*fn)(int);

	snprintf(name, sizeof name, "cs_%s", call);
	if (!(fn = (int (*)(int))dlsym(deep_handle(), name))) {
		fprintf(stderr, "cs-probe: %s\n", dlerror());
		exit(2);
	}
	return fn(fd);
}

/* deepown: the library bundles its own recv: deep binding gives the
 * library that one, and the shim must leave it so. Prints own_calls. */
int scenario_deepown(int argc, char **argv)
{
	int sv[2], (*calls)(void);

	(void)argc, (void)argv;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	if (write(sv[1], "x", 1) != 1)
		die("write");
	int r = probe_deep_call("deep_recv", sv[0]);
	if (!(calls = (int (*)(void))dlsym(deep_handle(), "cs_deep_own_calls")))
		die("dlsym cs_deep_own_calls");
	out("result ret=%d own_calls=%d", r, calls());
	return 0;
}

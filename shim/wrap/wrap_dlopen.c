/* The C side of the dlopen hook (dlopen_x86_64.S): which dlopen calls with
 * RTLD_DEEPBIND it may make itself, then the rebinding of what they loaded
 * (deepbind.c). */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/deepbind.h"
#include "base/log.h"
#include "base/process.h"
#include "track/threads.h"

#define SNAPSHOT_ON_STACK 256

/* Before the constructor resolved libc's dlopen (another library's
 * constructor calling dlopen): resolve now. The shim is the caller of this
 * one call. */
void *cs_dlopen_boot(const char *file, int flags)
{
	void *(*real)(const char *, int);

	cs_deepbind_resolve();
	real = __atomic_load_n(&cs_dlopen_real, __ATOMIC_ACQUIRE);
	if (!real) {
		errno = ENOSYS;
		return NULL;
	}
	return real(file, flags);
}

/* Called by the dlopen stub for a call with RTLD_DEEPBIND (ret: the
 * application's return address): nonzero to take it through
 * cs_dlopen_deepbind, where libc sees the shim as the caller. Only when that
 * changes nothing: a path (a '/': no search in the caller's DT_RPATH or
 * DT_RUNPATH) without '$' (no $ORIGIN of the caller). The caller's own
 * RPATH is not searched for the new object's dependencies (glibc 2.36,
 * checked), and both callers are in the base namespace. */
int cs_dlopen_wants_rebind(const char *file, int flags, const void *ret)
{
	(void)flags, (void)ret;
	return file && strchr(file, '/') && !strchr(file, '$') && __atomic_load_n(&cs_dlopen_real, __ATOMIC_ACQUIRE) &&
	       atomic_load_explicit(&cs_proc.active, memory_order_relaxed) && !cs_tls.busy;
}

void *cs_dlopen_deepbind(const char *file, int flags)
{
	uintptr_t on_stack[SNAPSHOT_ON_STACK], *before = on_stack;
	void *(*real)(const char *, int) = __atomic_load_n(&cs_dlopen_real, __ATOMIC_ACQUIRE);
	size_t n;
	void *h;

	if (!real)
		return cs_dlopen_boot(file, flags);
	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed) || cs_tls.busy)
		return real(file, flags);
	n = cs_deepbind_snapshot(on_stack, SNAPSHOT_ON_STACK);
	if (n > SNAPSHOT_ON_STACK) {
		int saved = errno;
		size_t cap = n + 64;
		before = malloc(cap * sizeof *before);
		n = before ? cs_deepbind_snapshot(before, cap) : 0;
		errno = saved;
		if (!before || n > cap) {
			free(before);
			cs_log_failure(CS_LOG_WARN, "cannot list the loaded objects before a dlopen(RTLD_DEEPBIND): its calls bypass the shim");
			return real(file, flags);
		}
	}
	h = real(file, flags);
	if (h) {
		cs_tls.busy = 1;
		cs_deepbind_rebind(h, before, n);
		cs_tls.busy = 0;
	}
	if (before != on_stack) {
		int saved = errno;
		free(before);
		errno = saved;
	}
	return h;
}

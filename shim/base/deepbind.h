/* Libraries loaded with dlopen(RTLD_DEEPBIND) look their symbols up in their
 * own dependency tree before the global scope, so their recv, poll,
 * connect... bind to libc and never reach a preloaded shim (PHP loads every
 * extension so; the extension's libcurl, libpq... follow it). After such a
 * dlopen the shim points the new objects' GOT slots for the calls it
 * interposes at its own wrappers: the binding they would have had without
 * the flag, for those calls only. */
#ifndef CS_DEEPBIND_H
#define CS_DEEPBIND_H

#include <stddef.h>
#include <stdint.h>

/* The real dlopen (libc's), resolved by cs_deepbind_resolve(); NULL until
 * then. The exported dlopen (dlopen_x86_64.S) jumps to it directly, so libc
 * sees the application's return address as the caller (the caller's RPATH,
 * RUNPATH and $ORIGIN, its namespace). */
extern void *(*cs_dlopen_real)(const char *, int);

/* Resolves cs_dlopen_real. From the constructor; safe to call again. */
void cs_deepbind_resolve(void);

/* The load bias of every object loaded now (dl_iterate_phdr), into
 * out[0..cap). Returns how many there are (more than cap: the list is
 * incomplete). */
size_t cs_deepbind_snapshot(uintptr_t *out, size_t cap);

/* After a successful dlopen(RTLD_DEEPBIND) returned handle: rebinds the
 * interposed calls of every object not in before[0..n) (the objects this
 * dlopen brought in). Returns the number of slots rewritten, -1 when it
 * gave up (one line said why). Preserves errno. */
long cs_deepbind_rebind(void *handle, const uintptr_t *before, size_t n);

#endif

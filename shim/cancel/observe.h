/* CANCELSHIM_ACTION=observe: everything runs as in cancel (bindings,
 * watching, the cancel flag), but no call is failed and no thread signalled.
 * Each cancel that would have failed a call is counted once per binding
 * (CS_STAT_WOULD_CANCEL) and, at CANCELSHIM_LOG=info, logged with the
 * thread, the connection and the call. */
#ifndef CS_OBSERVE_H
#define CS_OBSERVE_H

#include <stdint.h>

#include "base/process.h"
#include "track/threads.h"

static inline int cs_observing(void)
{
	return cs_proc.cfg.action == CS_ACTION_OBSERVE;
}

/* Thread t, bound to connection gen, had its flag set while inside (or on
 * entering) the call t->call_nr, which cancel would have failed: counted and
 * logged unless this binding was counted already (both the watcher and the
 * thread may see it; the OBSERVED bit lets one of them count). fd: the
 * descriptor the connection was seen through, for the log line. */
void cs_observe_would_cancel(struct cs_thread *t, uint32_t gen, int fd);

/* The name of a system call the shim may fail ("recvfrom"), or "?". */
const char *cs_syscall_name(long nr);

#endif

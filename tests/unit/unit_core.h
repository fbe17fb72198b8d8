/* Descriptor words and thread records set up by hand, for tests that check
 * the shim's rules without accepting connections, starting the watcher or
 * sending signals. Criterion-free: the plain race driver (races_main.c) uses
 * it too; unit.h adds the Criterion checks. */
#ifndef CS_UNIT_CORE_H
#define CS_UNIT_CORE_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/process.h"
#include "config.h"
#include "track/fdtable.h"
#include "track/threads.h"

/* Descriptor numbers for words the tests write by hand. They are never open
 * (unit_fake_fds_closed checks), so nothing the shim does with the real
 * descriptor (fstat, getsockopt) can find a Criterion pipe behind them. */
enum { FD_A = 300, FD_B, FD_C, FD_D, FD_EP, FD_EP2, FD_LISTEN };

/* A client connection word. REGISTERED is set so that binding to it never
 * hands it to the watcher (which would start the watcher thread). */
static inline uint64_t unit_client(uint32_t gen)
{
	return CS_SLOT_MAKE(CS_KIND_CLIENT, gen) | CS_CLIENT_REGISTERED;
}

static inline uint64_t unit_listener(void)
{
	return CS_SLOT_MAKE(CS_KIND_LISTENER, 0) | CS_LISTENER_TYPE_KNOWN | CS_LISTENER_STREAM;
}

static inline int unit_gettid(void)
{
	return (int)syscall(SYS_gettid);
}

static inline uint64_t unit_state(const struct cs_thread *t)
{
	return atomic_load(&((struct cs_thread *)t)->state);
}

/* The shim as its constructor leaves it with no CANCELSHIM_* variable, and
 * the calling thread holding a record (cs_tls.rec) in the given state. NULL
 * if no record could be had. */
static inline struct cs_thread *unit_record(uint64_t state)
{
	struct cs_thread *t;

	cs_config_defaults(&cs_proc.cfg);
	cs_proc.pid = getpid();
	atomic_store(&cs_proc.active, 1);
	if (!(t = cs_tls.rec)) {
		if (!(t = cs_thread_claim(unit_gettid())))
			return NULL;
		cs_tls.rec = t;
	}
	cs_tls.loop = 0;
	cs_tls.busy = 0;
	atomic_store(&t->state, state);
	return t;
}

#endif

/* The machinery a thread needs before it can be cancelled: the thread key
 * (to free records at thread exit) and the cancel signal's handler, started
 * once per process by the first thread that binds; then that thread's
 * record. */
#include "policy/machinery.h"

#include <errno.h>
#include <pthread.h>

#include "base/once.h"
#include "base/process.h"
#include "cancel/cancel_signal.h"
#include "track/thread_id.h"
#include "track/threads.h"
#include "watch/ebpf_watcher.h"

static void release_record(void *p)
{
	struct cs_thread *t = p;
	if (cs_tls.rec == t)
		cs_tls.rec = NULL;
	cs_thread_release(t);
}

/* The thread key (to free records at thread exit) and the signal handler,
 * once per process; the watcher itself starts with the first registration. */
static int start_machinery(void)
{
	int err;

	if (!cs_once_begin(&cs_proc.machinery))
		return cs_once_wait(&cs_proc.machinery) == CS_ONCE_DONE;
	cs_tls.busy = 1;
	err = pthread_key_create(&cs_proc.key, release_record);
	if (err) {
		cs_process_fail("cannot create a thread key", err);
	} else if ((err = -cs_signal_install())) {
		cs_process_fail("cannot install the cancel signal handler", err);
	}
	cs_once_end(&cs_proc.machinery, !err);
	if (!err)
		cs_ebpf_machinery_started();
	cs_tls.busy = 0;
	return !err;
}

struct cs_thread *cs_machinery_thread(void)
{
	struct cs_thread *t = cs_tls.rec;

	if (t)
		return t;
	cs_process_check();
	if (!cs_once_done(&cs_proc.machinery) && !start_machinery())
		return NULL;
	t = cs_thread_claim(cs_thread_id());
	if (!t) {
		cs_process_fail("cannot record another thread", ENOMEM);
		return NULL;
	}
	cs_tls.rec = t;
	pthread_setspecific(cs_proc.key, t);
	cs_signal_thread_claimed();
	return t;
}

/* Profiles: the cancel action for work that never blocks. A thread that
 * computes (a CPU-bound query) makes no call the shim could fail, so its
 * cancel flag waits for a call that may come hours later. Some servers
 * already have a signal that means "cancel the request this process is
 * running"; a profile sends it, where the semantics are certain for that
 * server. CANCELSHIM_PROFILE=auto picks one by program, none disables,
 * a name forces one.
 *
 * postgresql: SIGINT to a backend whose client left while it was busy
 * outside a cancellable call. It is what pg_cancel_backend() sends: the
 * backend's StatementCancelHandler sets QueryCancelPending, the next
 * CHECK_FOR_INTERRUPTS() raises "canceling statement due to user request",
 * and the backend, writing that error to a client that is gone, then
 * reading the next command, finds the connection lost and exits. */
#ifndef CS_PROFILE_H
#define CS_PROFILE_H

#include "config.h"

/* At load (constructor), with the process's pid: resolves auto by the
 * program (/proc/self/exe) and notes which process loaded the shim. */
void cs_profile_at_load(enum cs_profile chosen, int pid);

/* The profile in force in this process: CS_PROFILE_NONE or a server. */
enum cs_profile cs_profile_in_force(void);

/* The watcher, once per binding, for a thread tid of this process whose
 * client left while the thread was not inside a cancellable call: sends the
 * profile's cancel if every condition for it holds. 1 if it sent it. */
int cs_profile_cancel_busy(int tid);

#endif

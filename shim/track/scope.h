/* CANCELSHIM_PORTS at accept: is a listener's client one the operator chose
 * to be cancellable? Asked once per listener (a getsockname), the answer kept
 * in the listener's word (fdtable.h: SCOPE_KNOWN, OUT_OF_SCOPE). */
#ifndef CS_SCOPE_H
#define CS_SCOPE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* True if what listener lfd accepts is out of scope. Such a client stays a
 * client connection (UNSCOPED, fdtable.h) for everything that decides who
 * serves whom: a thread that reads its request is bound to it, which ends
 * the thread's previous binding, and a wait on several of them is an event
 * loop's. Recording it as a plain socket instead would leave a pool worker
 * bound to its previous (in-scope) client while it serves this one, and
 * that client's disconnect would cancel this live request; and a loop over
 * such clients would look like a thread serving one. It is only never
 * watched, so its disconnect cancels nothing.
 * lref is lfd's word (NULL: not tracked, ask each time). A listener whose
 * address cannot be read is out of scope: the shim cancels only what it can
 * prove the operator chose. *entry1 gets 1 + the index of the
 * CANCELSHIM_PORTS entry the listener matched (ports.h), kept in its word
 * too (fdtable.h: PORT), or 0 (out of scope, or CANCELSHIM_PORTS unset):
 * the per-listener counters' row (stats.h). */
bool cs_scope_excludes(int lfd, _Atomic uint64_t *lref, unsigned *entry1);

/* At info, when CANCELSHIM_PORTS is set, one line at start saying which
 * listeners are in scope ("info: scope: ports 8080,unix:/run/x.sock; clients
 * of other listeners are never cancelled"). */
void cs_scope_announce(void);

/* The decision itself, for a bound address (sockaddr of getsockname). */
struct sockaddr;
bool cs_scope_addr_in(const struct sockaddr *sa, unsigned len);

#endif

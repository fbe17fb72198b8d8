/* The waiting side of a start-once word (base/once.h). */
#include "base/once.h"

#include "base/raw_syscall.h"

int cs_once_wait(cs_once *w)
{
	int s;

	/* A spin, not a lock: the worker is a few system calls from the end,
	 * and a lock held across a fork would stay held in the child. */
	while ((s = atomic_load(w)) == CS_ONCE_RUNNING)
		cs_raw0(SYS_sched_yield);
	return s;
}

/* The calling thread's kernel id without a system call.
 *
 * glibc keeps every thread's id in its thread descriptor (struct pthread,
 * whose address pthread_self() returns) and keeps it right across clone and
 * fork. The shim needs the id once per thread that serves a client, and a
 * server with a thread per connection creates one per connection: a gettid
 * there is a system call per connection. The field's offset is not public,
 * so it is found at load (the one word near the descriptor's start holding
 * our id), confirmed against gettid by the first other thread that asks, and
 * abandoned for gettid if anything disagrees. */
#include "track/thread_id.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include "base/raw_syscall.h"

#define SEARCH_BYTES 1024

enum { UNKNOWN = -1, UNUSABLE = -2 };
static _Atomic long offset = UNKNOWN;
static _Atomic int confirmed;

void cs_thread_id_init(void)
{
	const char *self = (const char *)pthread_self();
	pid_t tid = (pid_t)cs_raw0(SYS_gettid);
	long found = UNUSABLE;

	for (long off = 0; off + (long)sizeof(pid_t) <= SEARCH_BYTES; off += sizeof(pid_t)) {
		if (*(const pid_t *)(self + off) != tid)
			continue;
		if (found != UNUSABLE) {	/* twice: cannot tell which */
			found = UNUSABLE;
			break;
		}
		found = off;
	}
	atomic_store(&offset, found);
	atomic_store(&confirmed, 0);
}

int cs_thread_id(void)
{
	long off = atomic_load_explicit(&offset, memory_order_relaxed);
	pid_t tid;

	if (off < 0)
		return (int)cs_raw0(SYS_gettid);
	tid = *(const pid_t *)((const char *)pthread_self() + off);
	if (!atomic_load_explicit(&confirmed, memory_order_relaxed)) {
		pid_t real = (pid_t)cs_raw0(SYS_gettid);
		if (real != tid) {
			atomic_store(&offset, UNUSABLE);
			return real;
		}
		atomic_store(&confirmed, 1);
	}
	return tid;
}

void cs_thread_id_distrust(void)
{
	atomic_store(&offset, UNUSABLE);
}

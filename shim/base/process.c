/* See process.h. The state itself; the life cycle that fills it in is
 * policy/lifecycle.c. */
#include "base/process.h"

#include <string.h>
#include <sys/mman.h>

#include "base/log.h"
#include "base/raw_syscall.h"

struct cs_process cs_proc = { .pid = 0, .active = 0, .machinery = CS_ONCE_IDLE, .ebpf_state = CS_EBPF_OFF };

/* Where cs_process_word points while no wiped page exists (the shim is off,
 * or the kernel predates MADV_WIPEONFORK): never 0, nothing is detected. */
static _Atomic int word_fallback = CS_WORD_ARMED;
_Atomic int *cs_process_word = &word_fallback;

static void (*reset_new_process)(void);

void cs_process_fail(const char *what, int err)
{
	if (atomic_exchange(&cs_proc.active, 0))
		cs_log_failure(CS_LOG_ERROR, "%s (%s); passing every call through from now on", what, cs_errtext(err));
}

uint32_t cs_process_new_gen(void)
{
	uint32_t gen;
	do
		gen = atomic_fetch_add_explicit(&cs_proc.next_gen, 1, memory_order_relaxed);
	while (gen == 0);
	return gen;
}

/* One private anonymous page, wiped in every new process. */
void cs_process_arm(void (*reset)(void))
{
	long p;

	reset_new_process = reset;
	p = cs_raw6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p < 0 && p > -4096)
		return;
	if (cs_raw3(SYS_madvise, p, 4096, MADV_WIPEONFORK) < 0) {
		cs_raw2(SYS_munmap, p, 4096);
		cs_info("this kernel cannot wipe a page on fork: a child made by clone() without fork is not noticed");
		return;
	}
	atomic_store((_Atomic int *)p, CS_WORD_ARMED);
	cs_process_word = (_Atomic int *)p;
}

/* A child made by clone() without CLONE_VM runs no fork handler: until now
 * it shared the parent's epoll set (its connections reported to the
 * parent's watcher, their generations colliding with the parent's), the
 * parent's eBPF descriptors and segment. The first thread to notice resets;
 * any other waits for it. The word is armed only after reset is known. */
void cs_process_changed(void)
{
	int expected = CS_WORD_NEW;

	if (atomic_compare_exchange_strong(cs_process_word, &expected, CS_WORD_RESETTING)) {
		reset_new_process();
		atomic_store(cs_process_word, CS_WORD_ARMED);
		cs_debug("a new process made without fork: the parent's watchers are forgotten");
		return;
	}
	while (atomic_load(cs_process_word) == CS_WORD_RESETTING)
		cs_raw0(SYS_sched_yield);
}

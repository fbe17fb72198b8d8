#include "track/fdtable.h"

#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "base/log.h"
#include "base/raw_syscall.h"

_Atomic(_Atomic uint64_t *) cs_fd_pages[CS_FD_PAGES];

#define PAGE_BYTES (CS_FD_PAGE_SIZE * sizeof(uint64_t))

/* Pages come from mmap, not malloc: this runs inside accept() and dup(), which
 * a program may call while its allocator is busy (or being initialised). */
static _Atomic uint64_t *page_for(unsigned index)
{
	_Atomic uint64_t *page = atomic_load_explicit(&cs_fd_pages[index], memory_order_acquire);
	_Atomic uint64_t *expected = NULL;
	long m;

	if (page)
		return page;
	m = cs_raw6(SYS_mmap, 0, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m < 0 && m > -4096) {
		/* Fail open, and say it once: those descriptors stay unknown
		 * (every call on them passes through), whatever asks again. */
		static _Atomic int said;
		if (!atomic_exchange(&said, 1))
			cs_log_failure(CS_LOG_WARN, "cannot map memory for the descriptor table (%s); descriptors %u to %u are not tracked",
				cs_errtext((int)-m), index << CS_FD_PAGE_BITS, ((index + 1) << CS_FD_PAGE_BITS) - 1);
		return NULL;
	}
	page = (_Atomic uint64_t *)m;
	if (!atomic_compare_exchange_strong(&cs_fd_pages[index], &expected, page)) {
		/* Another thread installed one first: use it. */
		cs_raw2(SYS_munmap, page, PAGE_BYTES);
		page = expected;
	}
	return page;
}

_Atomic uint64_t *cs_fd_ref(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return NULL;
	page = page_for((unsigned)fd >> CS_FD_PAGE_BITS);
	return page ? &page[fd & (CS_FD_PAGE_SIZE - 1)] : NULL;
}

_Atomic uint64_t *cs_fd_ref_existing(int fd)
{
	_Atomic uint64_t *page;
	if ((unsigned)fd >= CS_FD_MAX)
		return NULL;
	page = atomic_load_explicit(&cs_fd_pages[(unsigned)fd >> CS_FD_PAGE_BITS], memory_order_acquire);
	return page ? &page[fd & (CS_FD_PAGE_SIZE - 1)] : NULL;
}

uint64_t cs_fd_exchange(int fd, uint64_t value, int allocate)
{
	_Atomic uint64_t *slot = allocate && value ? cs_fd_ref(fd) : cs_fd_ref_existing(fd);
	return slot ? atomic_exchange(slot, value) : 0;
}

void cs_fd_for_each(unsigned first, unsigned last, void (*fn)(int fd, _Atomic uint64_t *slot, void *arg), void *arg)
{
	if (last >= CS_FD_MAX)
		last = CS_FD_MAX - 1;
	for (unsigned fd = first; fd <= last;) {
		_Atomic uint64_t *page = atomic_load_explicit(&cs_fd_pages[fd >> CS_FD_PAGE_BITS], memory_order_acquire);
		unsigned end = (fd | (CS_FD_PAGE_SIZE - 1));
		if (end > last)
			end = last;
		if (page)
			for (; fd <= end; fd++) {
				_Atomic uint64_t *slot = &page[fd & (CS_FD_PAGE_SIZE - 1)];
				if (atomic_load_explicit(slot, memory_order_relaxed))
					fn((int)fd, slot, arg);
			}
		fd = end + 1;
		if (fd == 0)	/* wrapped */
			break;
	}
}

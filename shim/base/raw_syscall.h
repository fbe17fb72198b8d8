/* System calls issued directly, for the shim's own bookkeeping. They return
 * -errno instead of touching errno, never enter the shim's wrappers and are
 * not libc cancellation points. */
#ifndef CS_RAW_SYSCALL_H
#define CS_RAW_SYSCALL_H

#include <sys/syscall.h>

static inline long cs_raw6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}

#define cs_raw0(nr) cs_raw6(nr, 0, 0, 0, 0, 0, 0)
#define cs_raw1(nr, a) cs_raw6(nr, (long)(a), 0, 0, 0, 0, 0)
#define cs_raw2(nr, a, b) cs_raw6(nr, (long)(a), (long)(b), 0, 0, 0, 0)
#define cs_raw3(nr, a, b, c) cs_raw6(nr, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define cs_raw4(nr, a, b, c, d) cs_raw6(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

/* Turns a raw result into the libc convention, setting errno on failure. */
long cs_set_errno(long r);

#endif

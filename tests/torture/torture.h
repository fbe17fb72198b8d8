/* The host-action torture suite: what the driver (torture-drive) and the
 * host it drives (cs-torture, run under the shim) share.
 *
 * The driver owns the randomness: it draws every action from the seed and
 * sends the host one command line per action on the command pipe. The host
 * executes it and answers on the control pipe, where its workers (threads,
 * fork/clone children) also report each request. Every line is written with
 * one write() of less than PIPE_BUF bytes, so lines from several processes
 * never interleave. */
#ifndef CS_TORTURE_H
#define CS_TORTURE_H

#include <stdint.h>

/* Command lines, driver -> host ("<n> <verb> <args>"); the host answers each
 * with "ack <n> <verb> <result...>".
 *   accept C VIA KIND MOVE WHERE END MASK  accept the next client as client C
 *       VIA   thread | fork | clone | setuid   who serves it
 *       KIND  r (recv on a TCP upstream) | p (poll, then recv) | s (recv on a socketpair)
 *       MOVE  none | dup | dup2 | dup3 | dupfd | dupfd_cloexec   (then close the original)
 *       WHERE main (before handing over) | worker (after reading the request)
 *       END   close | range (close_range(fd, fd)) | over (dup2 /dev/null over it, then close)
 *             | closefrom (children only: closefrom(3) before exiting)
 *       MASK  hex bitmask of TORTURE_MASK_SIGNALS the worker blocks around its call
 *   answer C TOKEN          write the upstream answer of a socketpair request
 *   vfork                   vfork + exec /bin/true, wait
 *   exec                    re-exec itself (only when no thread is serving)
 *   mask HOW SET API        HOW block|unblock|set, SET hex bitmask, API proc|pthread
 *   dummies K               open K /dev/null descriptors at TORTURE_DUMMY_BASE and above
 *   closerange ANY          close_range/closefrom over its own dummies; ANY=1: also over
 *                           descriptors it does not know (the shim's), never its live ones
 *   closeany K              close K random descriptors below 64 it does not know
 *   epoll ANY               close some descriptors (dummies; ANY=1: unknown ones too), then
 *                           epoll_create1 (number reuse) with an eventfd tagged in it
 *   epcheck                 every event of the application's epoll sets carries its own tag
 *   sigfd                   signalfd for SIGUSR1 (kept)
 *   sigfdread               read one SIGUSR1 from it (the driver sent one)
 *   sigwait                 sigwaitinfo for SIGUSR2 (the driver sent one)
 *   quit                    wait for the workers, reap children, exit 0
 *
 * Report lines, host -> driver:
 *   ready gen=G pid=P port=X
 *   req cid=C                   the worker read the request
 *   enter cid=C                 the worker is about to make its cancellable call
 *   done cid=C canceled=0|1 errno=E at=connect|send|wait
 *   noreq cid=C errno=E         the request could not be read (client gone)
 *   child pid=P status=S        a fork/clone child reaped
 *   fail WHAT                   the host saw something wrong (the suite fails)
 */

#define TORTURE_DUMMY_BASE 600  /* dummies live at 600..699 */
#define TORTURE_DUP2_BASE 300   /* dup2/dup3 targets at 300..399 */
#define TORTURE_EPOLL_TAG 0x7457000000000000ull
#define TORTURE_POLL_MS 15000   /* kind p: a wait that reaches this missed its cancel */

/* The signals a mask action may block (bit i = TORTURE_MASK_SIGNALS[i]);
 * SIGRTMAX-1 is the shim's default signal. */
#define TORTURE_MASK_NSIG 6
static inline int torture_mask_signal(int i)
{
	switch (i) {
	case 0: return 64 - 1; /* SIGRTMAX-1 (SIGRTMAX is 64 on x86_64 glibc) */
	case 1: return 64;     /* SIGRTMAX */
	case 2: return 34 + 3; /* SIGRTMIN+3 (kernel SIGRTMIN 32, glibc's 34) */
	case 3: return 13;     /* SIGPIPE */
	case 4: return 14;     /* SIGALRM */
	default: return 28;    /* SIGWINCH */
	}
}

/* splitmix64: one 64-bit state, good enough and the same on every machine. */
struct torture_rng {
	uint64_t s;
};

static inline uint64_t torture_next(struct torture_rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A number in [0, n). */
static inline unsigned torture_below(struct torture_rng *r, unsigned n)
{
	return n ? (unsigned)(torture_next(r) % n) : 0;
}

#endif

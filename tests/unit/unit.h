/* What the Criterion unit tests share (see unit_core.h for the words and
 * records they set by hand).
 *
 * Each Criterion test runs in its own process, so a test may set the shim's
 * globals (cs_proc, cs_tls, the descriptor table) freely. */
#ifndef CS_UNIT_H
#define CS_UNIT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>

#include "unit_core.h"

/* Stores word at fd (allocating its page) and returns it. */
static inline uint64_t unit_set(int fd, uint64_t word)
{
	cs_fd_exchange(fd, word, 1);
	cr_assert_eq(cs_fd_get(fd), word, "fd %d: word not stored", fd);
	return word;
}

static inline void unit_fake_fds_closed(void)
{
	for (int fd = FD_A; fd <= FD_LISTEN; fd++)
		cr_assert(fcntl(fd, F_GETFD) < 0 && errno == EBADF, "fd %d is open in the test process", fd);
}

static inline struct cs_thread *unit_thread(uint64_t state)
{
	struct cs_thread *t = unit_record(state);
	cr_assert_not_null(t, "no thread record");
	return t;
}

#endif

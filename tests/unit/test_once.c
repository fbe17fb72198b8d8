/* The start-once word (shim/base/once.h) the machinery, the watcher thread,
 * the statistics segment and the eBPF load share: one worker, waiters that
 * see its end, and the fork child's reset. */
#include "unit.h"

#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/once.h"
#include "base/process.h"

enum { NTHREADS = 8 };

static cs_once word = CS_ONCE_IDLE;
static _Atomic int winners, losers, work_done, seen_after_wait[NTHREADS];
static _Atomic int ok_result = 1;

/* The winner holds the word RUNNING until every other thread has lost the
 * race, so each of them reaches cs_once_wait while the work is under way. */
static void *contender(void *arg)
{
	int i = (int)(intptr_t)arg;

	if (cs_once_begin(&word)) {
		atomic_fetch_add(&winners, 1);
		while (atomic_load(&losers) < NTHREADS - 1)
			sched_yield();
		atomic_store(&work_done, 1);
		cs_once_end(&word, atomic_load(&ok_result));
		return NULL;
	}
	atomic_fetch_add(&losers, 1);
	seen_after_wait[i] = cs_once_wait(&word);
	/* Waiting ended only after the worker's end. */
	if (!atomic_load(&work_done))
		seen_after_wait[i] = -1;
	return NULL;
}

static void race(void)
{
	pthread_t t[NTHREADS];

	for (int i = 0; i < NTHREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, contender, (void *)(intptr_t)i), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
}

Test(once, one_thread_does_the_work_and_the_others_wait_for_its_end)
{
	race();
	cr_assert_eq(atomic_load(&winners), 1);
	cr_assert_eq(cs_once_state(&word), CS_ONCE_DONE);
	cr_assert(cs_once_done(&word));
	for (int i = 0, n = 0; i < NTHREADS; i++) {
		if (seen_after_wait[i] == 0)
			continue;	/* the winner */
		cr_assert_eq(seen_after_wait[i], CS_ONCE_DONE, "thread %d left its wait before the end", i);
		cr_assert_leq(++n, NTHREADS - 1);
	}
	cr_assert_not(cs_once_begin(&word), "done work is never started again");
}

Test(once, waiters_see_a_failure_and_nobody_retries_it)
{
	atomic_store(&ok_result, 0);
	race();
	cr_assert_eq(atomic_load(&winners), 1);
	for (int i = 0; i < NTHREADS; i++)
		cr_assert(seen_after_wait[i] == 0 || seen_after_wait[i] == CS_ONCE_FAILED, "thread %d saw %d", i,
			  seen_after_wait[i]);
	cr_assert_not(cs_once_begin(&word));
	cr_assert_not(cs_once_done(&word));
}

Test(once, off_work_is_never_started)
{
	cs_once w = CS_ONCE_OFF;

	cr_assert_not(cs_once_begin(&w));
	cr_assert_not(cs_once_idle(&w));
	cr_assert_eq(cs_once_wait(&w), CS_ONCE_OFF, "nothing to wait for");
	cs_once_reset(&w);	/* the site found it is wanted after all */
	cr_assert(cs_once_begin(&w));
}

Test(once, redo_and_revoke_start_only_from_done_and_only_once)
{
	cs_once w = CS_ONCE_IDLE;

	cr_assert_not(cs_once_redo(&w));
	cr_assert_not(cs_once_revoke(&w));
	cr_assert(cs_once_begin(&w));
	cr_assert_not(cs_once_redo(&w), "not while the first run is under way");
	cs_once_end(&w, 1);
	cr_assert(cs_once_redo(&w));
	cr_assert(cs_once_running(&w));
	cr_assert_not(cs_once_redo(&w));
	cs_once_end(&w, 1);
	cr_assert(cs_once_revoke(&w));
	cr_assert_not(cs_once_revoke(&w), "one caller reports the loss");
	cr_assert_eq(cs_once_state(&w), CS_ONCE_FAILED);
}

/* A fork while another thread is at work: the child has no worker, so a word
 * caught RUNNING goes back to IDLE and the child does the work itself;
 * finished work is inherited as it is. */
Test(once, a_fork_child_restarts_work_its_parent_was_doing)
{
	cs_once running = CS_ONCE_IDLE, done = CS_ONCE_IDLE, failed = CS_ONCE_IDLE;
	int status;
	pid_t pid;

	cr_assert(cs_once_begin(&running));
	cr_assert(cs_once_begin(&done));
	cs_once_end(&done, 1);
	cr_assert(cs_once_begin(&failed));
	cs_once_end(&failed, 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		cs_once_forget_running(&running);
		cs_once_forget_running(&done);
		cs_once_forget_running(&failed);
		/* Exit codes say which check failed. */
		if (cs_once_wait(&running) != CS_ONCE_IDLE)
			_exit(1);
		if (!cs_once_begin(&running))
			_exit(2);
		if (!cs_once_done(&done))
			_exit(3);
		if (cs_once_state(&failed) != CS_ONCE_FAILED)
			_exit(4);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status));
	cr_assert_eq(WEXITSTATUS(status), 0, "child check %d failed", WEXITSTATUS(status));
	cr_assert(cs_once_running(&running), "the parent's worker still holds it");
}

Test(once, the_ebpf_states_the_statistics_read_keep_their_values)
{
	cr_assert_eq(CS_EBPF_OFF, 0);
	cr_assert_eq(CS_EBPF_IDLE, 1);
	cr_assert_eq(CS_EBPF_LOADING, 2);
	cr_assert_eq(CS_EBPF_LIVE, 3);
	cr_assert_eq(CS_EBPF_FAILED, 4);
}

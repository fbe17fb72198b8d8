/* The profiles' own guards (shim/cancel/profile.c), without PostgreSQL: the test
 * process plays the postmaster (it "loaded" the shim) and a forked child
 * plays a backend. The postgresql profile must send SIGINT only to the main
 * thread of a direct child of the loader that has a handler for it: never
 * to the loader (a fast shutdown of the cluster), never to a process where
 * SIGINT would kill, never to another thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cancel/profile.h"

static volatile sig_atomic_t got_sigint;

static void on_sigint(int signo)
{
	(void)signo;
	got_sigint = 1;
}

static int gettid_now(void)
{
	return (int)syscall(SYS_gettid);
}

/* Runs body in a forked child and returns its exit status (or 128+signal). */
static int in_child(int (*body)(void))
{
	pid_t pid = fork();
	int st;

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(body());
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(profile, auto_is_none_for_a_program_not_named_postgres)
{
	cs_profile_at_load(CS_PROFILE_AUTO, getpid());
	cr_assert_eq(cs_profile_in_force(), CS_PROFILE_NONE);
	cs_profile_at_load(CS_PROFILE_NONE, getpid());
	cr_assert_eq(cs_profile_in_force(), CS_PROFILE_NONE);
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	cr_assert_eq(cs_profile_in_force(), CS_PROFILE_POSTGRESQL);
}

Test(profile, postgresql_never_signals_the_process_that_loaded_the_shim)
{
	signal(SIGINT, on_sigint);
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	cr_assert_eq(cs_profile_cancel_busy(gettid_now()), 0);
	cr_assert_eq(got_sigint, 0);
}

static int child_with_handler(void)
{
	signal(SIGINT, on_sigint);
	if (cs_profile_cancel_busy(gettid_now()) != 1)
		return 1;
	return got_sigint ? 0 : 2;	/* delivered on return from the kill */
}

Test(profile, postgresql_signals_the_main_thread_of_a_child_with_a_handler)
{
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	cr_assert_eq(in_child(child_with_handler), 0);
}

static int child_without_handler(void)
{
	signal(SIGINT, SIG_DFL);
	return cs_profile_cancel_busy(gettid_now()) == 0 ? 0 : 1;
}

static int child_ignoring(void)
{
	signal(SIGINT, SIG_IGN);
	return cs_profile_cancel_busy(gettid_now()) == 0 ? 0 : 1;
}

Test(profile, postgresql_never_signals_a_child_where_sigint_has_no_handler)
{
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	/* With SIG_DFL a SIGINT would kill the child: 128 + SIGINT. */
	cr_assert_eq(in_child(child_without_handler), 0);
	cr_assert_eq(in_child(child_ignoring), 0);
}

static void *other_thread(void *arg)
{
	*(int *)arg = cs_profile_cancel_busy(gettid_now());
	return NULL;
}

static int child_other_thread(void)
{
	pthread_t th;
	int ret = -1;

	signal(SIGINT, on_sigint);
	if (pthread_create(&th, NULL, other_thread, &ret) || pthread_join(th, NULL))
		return 3;
	return ret == 0 && !got_sigint ? 0 : 1;
}

Test(profile, postgresql_never_signals_a_thread_other_than_the_main_one)
{
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	cr_assert_eq(in_child(child_other_thread), 0);
}

static int grandchild_body(void)
{
	return child_with_handler() == 1 ? 0 : 1;	/* refused: not the loader's child */
}

static int child_forks_again(void)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return 3;
	if (pid == 0)
		_exit(grandchild_body());
	if (waitpid(pid, &st, 0) != pid)
		return 3;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 4;
}

Test(profile, postgresql_never_signals_a_grandchild)
{
	/* A program a backend runs (COPY ... PROGRAM, archive_command) is the
	 * backend's child, not the postmaster's. */
	cs_profile_at_load(CS_PROFILE_POSTGRESQL, getpid());
	cr_assert_eq(in_child(child_forks_again), 0);
}

static int child_profile_none(void)
{
	signal(SIGINT, on_sigint);
	return cs_profile_cancel_busy(gettid_now()) == 0 && !got_sigint ? 0 : 1;
}

Test(profile, none_signals_nothing)
{
	cs_profile_at_load(CS_PROFILE_NONE, getpid());
	cr_assert_eq(in_child(child_profile_none), 0);
}

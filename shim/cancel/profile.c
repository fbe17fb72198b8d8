/* The built-in profiles (profile.h).
 *
 * postgresql is in force when the program is PostgreSQL's server: the
 * executable's name is "postgres" (auto), or the operator forced it. The
 * process that loads the shim is then the postmaster (pg_ctl and systemd
 * exec it; it forks every backend and never execs them, so a backend never
 * loads the shim itself). A SIGINT to the postmaster is a fast shutdown of
 * the whole cluster, so the signal is sent only when all of these hold, each
 * checked at the moment of sending:
 *   - this process is not the one that loaded the shim, and its parent is:
 *     a process the postmaster forked, which a thread bound to an accepted
 *     client makes a backend (background workers accept no clients);
 *   - the thread is the process's main thread: a backend runs on it alone
 *     (the other threads are the shim's own);
 *   - SIGINT has a handler: StatementCancelHandler in a backend. While a
 *     backend authenticates, SIGINT is still the postmaster's handler but
 *     blocked (StartupBlockSig) until PostgresMain has installed
 *     StatementCancelHandler, so a SIGINT then waits for it. Never the
 *     default action, which would kill the backend and make the postmaster
 *     restart every session.
 * A backend that finished its statement and idles takes the SIGINT as
 * QueryCancelPending, which ProcessInterrupts() drops while it reads a
 * command (DoingCommandRead): harmless. */
#include "cancel/profile.h"

#include <signal.h>
#include <string.h>

#include "base/log.h"
#include "base/raw_syscall.h"

static enum cs_profile in_force = CS_PROFILE_NONE;
static int loader_pid;

/* 1 if the executable's file name is name. */
static int program_is(const char *name)
{
	char path[4096];
	long n = cs_raw3(SYS_readlink, "/proc/self/exe", path, sizeof path - 1);
	const char *base;

	if (n <= 0)
		return 0;
	path[n] = 0;
	base = strrchr(path, '/');
	return !strcmp(base ? base + 1 : path, name);
}

void cs_profile_at_load(enum cs_profile chosen, int pid)
{
	loader_pid = pid;
	if (chosen == CS_PROFILE_AUTO)
		chosen = program_is("postgres") ? CS_PROFILE_POSTGRESQL : CS_PROFILE_NONE;
	in_force = chosen;
}

enum cs_profile cs_profile_in_force(void)
{
	return in_force;
}

/* 1 if signo has a handler in this process (not the default, not ignored). */
static int has_handler(int signo)
{
	/* The kernel's struct sigaction starts with the handler. */
	unsigned long act[4] = { 0 };

	if (cs_raw4(SYS_rt_sigaction, signo, 0, act, 8) < 0)
		return 0;
	return act[0] != (unsigned long)SIG_DFL && act[0] != (unsigned long)SIG_IGN;
}

static int postgresql_cancel(int tid)
{
	int pid = (int)cs_raw0(SYS_getpid);

	if (pid == loader_pid || (int)cs_raw0(SYS_getppid) != loader_pid || tid != pid ||
	    !has_handler(SIGINT))
		return 0;
	cs_debug("profile postgresql: SIGINT to backend %d, busy outside any call", pid);
	return cs_raw3(SYS_tgkill, pid, tid, SIGINT) == 0;
}

int cs_profile_cancel_busy(int tid)
{
	switch (in_force) {
	case CS_PROFILE_POSTGRESQL:
		return postgresql_cancel(tid);
	default:
		return 0;
	}
}

/* Runs the concurrent scenarios (races.c) without Criterion, for
 * ThreadSanitizer builds: each in a forked child, so each has a fresh process
 * as under Criterion, with a time limit. A TSan report ends the child (with
 * halt_on_error=1) and counts as a crash.
 *
 * Usage: unit-races [NAME_SUBSTRING]. Prints a line per scenario and a
 * summary in Criterion's format; exit status 0 when every scenario passed. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "races.h"

#define TIME_LIMIT_S 240

static int run_child(const struct race *r)
{
	const char *why;

	alarm(TIME_LIMIT_S);
	race_info[0] = 0;
	why = r->run();
	if (race_info[0])
		printf("[----] %s: %s\n", r->name, race_info);
	if (why) {
		printf("[FAIL] races::%s: %s\n", r->name, why);
		fflush(stdout);
		_exit(1);
	}
	fflush(stdout);
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	int tested = 0, passing = 0, failing = 0, crashing = 0;

	for (const struct race *r = races; r->name; r++) {
		int status;
		pid_t pid;

		if (filter && !strstr(r->name, filter))
			continue;
		tested++;
		fflush(stdout);
		if ((pid = fork()) < 0) {
			perror("fork");
			return 2;
		}
		if (pid == 0)
			run_child(r);
		if (waitpid(pid, &status, 0) < 0) {
			perror("waitpid");
			return 2;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			passing++;
			printf("[PASS] races::%s\n", r->name);
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
			failing++;	/* the child said why */
		} else {
			crashing++;
			if (WIFSIGNALED(status))
				printf("[CRASH] races::%s: killed by signal %d%s\n", r->name, WTERMSIG(status),
				       WTERMSIG(status) == SIGALRM ? " (time limit)" : "");
			else
				printf("[CRASH] races::%s: exit status %d (a sanitizer report?)\n", r->name,
				       WEXITSTATUS(status));
		}
	}
	printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d\n", tested, passing, failing,
	       crashing);
	return tested && passing == tested ? 0 : 1;
}

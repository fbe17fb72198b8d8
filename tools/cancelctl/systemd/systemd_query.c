/* Asking systemd through systemctl (see systemd_query.h). */
#include "systemd_query.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const char *sd_dropin_root(void)
{
	const char *d = getenv("CANCELCTL_SYSTEMD_DIR");
	return d && *d ? d : "/etc/systemd/system";
}

static const char *systemctl(void)
{
	const char *s = getenv("CANCELCTL_SYSTEMCTL");
	return s && *s ? s : "systemctl";
}

bool sd_available(void)
{
	const char *s = getenv("CANCELCTL_SYSTEMCTL");
	struct stat st;
	/* sd_booted()'s test: systemd creates this directory when it is PID 1. */
	return (s && *s) || (stat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode));
}

/* Runs argv; its stdout in a malloc'd string (NULL on failure or a non-zero
 * exit). stderr is the user's. */
static char *capture(char *const argv[])
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "cancelctl: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t len = 0, cap = 4096;
	char *out = malloc(cap);
	ssize_t n;
	while (out) {
		if (len + 1 >= cap) {
			char *bigger = realloc(out, cap *= 2);
			if (!bigger) {
				free(out);
				out = NULL;
				break;
			}
			out = bigger;
		}
		n = read(p[0], out + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!out || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		free(out);
		return NULL;
	}
	while (len && out[len - 1] == '\n')
		len--;
	out[len] = '\0';
	return out;
}

char *sd_show(const char *unit, const char *prop)
{
	char *argv[] = { (char *)systemctl(), "show", "-p", (char *)prop, "--value", "--", (char *)unit, NULL };
	return capture(argv);
}

int sd_daemon_reload(void)
{
	char *argv[] = { (char *)systemctl(), "daemon-reload", NULL };
	char *out = capture(argv);
	if (!out) {
		fprintf(stderr, "cancelctl: '%s daemon-reload' failed; run it yourself\n", systemctl());
		return -1;
	}
	free(out);
	return 0;
}

char *sd_exec_path(const char *execstart)
{
	const char *p = execstart ? strstr(execstart, "path=") : NULL;
	if (!p)
		return NULL;
	p += 5;
	size_t n = strcspn(p, " ;}\n");
	return n ? strndup(p, n) : NULL;
}

static size_t add_pid(pid_t *pids, size_t n, size_t max, pid_t pid)
{
	if (pid <= 0 || n >= max)
		return n;
	for (size_t i = 0; i < n; i++)
		if (pids[i] == pid)
			return n;
	pids[n] = pid;
	return n + 1;
}

size_t sd_unit_pids(const char *unit, pid_t *pids, size_t max)
{
	size_t n = 0;
	char *main = sd_show(unit, "MainPID");
	if (main)
		n = add_pid(pids, n, max, (pid_t)atol(main));
	free(main);
	char *cg = sd_show(unit, "ControlGroup");
	if (cg && cg[0] == '/' && !strstr(cg, "..")) {
		char path[4096];
		snprintf(path, sizeof path, "/sys/fs/cgroup%s/cgroup.procs", cg);
		FILE *f = fopen(path, "re");
		long pid;
		if (f) {
			while (fscanf(f, "%ld", &pid) == 1)
				n = add_pid(pids, n, max, (pid_t)pid);
			fclose(f);
		}
	}
	free(cg);
	return n;
}

/* One torture sequence: start cs-torture under the shim, draw actions from
 * the seed, play the clients and the upstream, and check every report
 * against what the driver knows:
 *   - a client that stays gets its response, and its worker's call did not
 *     fail (never cancel a live request);
 *   - a client that left has its worker's call fail with ECANCELED (or its
 *     request was never read), within CANCEL_MS of leaving (never miss a
 *     dead one);
 *   - the host and its children exit 0, answer every command in time, and
 *     report nothing wrong (never break the host).
 * The actions are reproducible from the seed; the timing between processes
 * is the machine's. */
#include "drive_seq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the host process --------------------------------------------------- */

static int listen_upstream(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static bool start_host(struct seq *s)
{
	int ctl[2], cmd[2], err[2];
	if (pipe2(ctl, O_CLOEXEC) || pipe2(cmd, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		fail(s, "pipe: %s", strerror(errno));
		return false;
	}
	char a_ctl[16], a_cmd[16], a_up[16], preload[4096], mode[64], log[64];
	snprintf(a_ctl, sizeof a_ctl, "%d", 100);
	snprintf(a_cmd, sizeof a_cmd, "%d", 101);
	snprintf(a_up, sizeof a_up, "%d", s->up_port);
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", s->o->shim);
	snprintf(mode, sizeof mode, "CANCELSHIM_MODE=%s", s->mode);
	char a_seed[24];
	snprintf(a_seed, sizeof a_seed, "%u", (unsigned)(s->seed * 2654435761u));
	char *const argv[] = {(char *)s->o->host, "--ctl", a_ctl, "--cmd", a_cmd, "--up", a_up,
			      "--seed", a_seed, NULL};
	/* info (the default) names the mode in force, which finish() checks */
	const char *level = getenv("CS_TORTURE_LOG");
	snprintf(log, sizeof log, "CANCELSHIM_LOG=%s", level ? level : "info");
	char *const envp[] = {preload, mode, log, "PATH=/usr/bin:/bin", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		setpgid(0, 0); /* one group: the driver can kill the host and its children */
		dup2(ctl[1], 100);
		dup2(cmd[0], 101);
		dup2(err[1], 2);
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(err[1], 1);
		execve(s->o->host, argv, envp);
		_exit(127);
	}
	close(ctl[1]);
	close(cmd[0]);
	close(err[1]);
	s->ctl = ctl[0];
	s->cmd = cmd[1];
	s->err = err[0];
	if (pid < 0) {
		fail(s, "fork: %s", strerror(errno));
		return false;
	}
	s->host = pid;
	setpgid(pid, pid);
	s->gen = -1;
	return wait_ready(s, 0);
}

static bool host_exited(struct seq *s, int *status)
{
	return waitpid(s->host, status, WNOHANG) == s->host;
}

static bool all_done(struct seq *s, void *arg)
{
	(void)arg;
	return in_flight(s, false) == 0;
}

static void finish(struct seq *s)
{
	if (!pump(s, SERVE_MS + CANCEL_MS, all_done, NULL))
		fail(s, "hang: clients still unresolved at the end");
	if (!s->r->failed) {
		int no = send_cmd(s, "quit");
		pump(s, 20000, acked, &no);
		if (s->acked_no < no) {
			fail(s, "hang: the host did not quit within 20 s");
			dump_host_stacks(s);
		}
	}
	int st = 0;
	uint64_t until = now_ms() + (s->r->failed ? 0 : 5000);
	bool exited;
	while (!(exited = host_exited(s, &st)) && now_ms() < until)
		pump(s, 10, NULL, NULL);
	if (!exited) {
		if (!s->r->failed) {
			fail(s, "hang: the host did not exit after quit");
			dump_host_stacks(s);
		}
		kill(-s->host, SIGKILL);
		waitpid(s->host, &st, 0);
	} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fail(s, "the host %s %d", WIFSIGNALED(st) ? "died of signal" : "exited with status",
		     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
	kill(-s->host, SIGKILL); /* leftovers of a failed sequence */
	pump(s, 20, NULL, NULL);  /* the last lines of stderr and reports */
	if (!s->r->failed && s->child_reports != s->children)
		fail(s, "the host reaped %d children, it started %d", s->child_reports, s->children);
	char active[64];
	snprintf(active, sizeof active, "active: mode %s", s->mode);
	if (!s->r->failed && s->r->clients > 0 && strcmp(s->mode, "off") != 0 &&
	    (!s->errbuf || !strstr(s->errbuf, active)))
		fail(s, "the shim never said '%s' (not loaded, or fell back)", active);
}

void torture_run_sequence(const struct torture_options *o, uint64_t seed, const char *mode,
			  struct torture_result *r)
{
	struct seq *s = calloc(1, sizeof *s);
	if (!s)
		abort();
	*r = (struct torture_result){0};
	s->o = o;
	s->seed = seed;
	s->mode = mode;
	s->r = r;
	s->rng.s = seed;
	s->ctl = s->cmd = s->err = -1;
	for (int i = 0; i < 64; i++)
		s->up_pending[i] = -1;
	note(s, "sequence seed=%llu mode=%s", (unsigned long long)seed, mode);

	s->up_listen = listen_upstream(&s->up_port);
	if (s->up_listen < 0) {
		fail(s, "upstream listen: %s", strerror(errno));
	} else if (start_host(s)) {
		for (int i = 0; i < o->steps && !r->failed; i++)
			one_action(s);
		finish(s);
	} else if (s->host > 0) {
		kill(-s->host, SIGKILL);
		waitpid(s->host, NULL, 0);
	}

	if (r->failed) {
		fprintf(stderr, "FAIL seed=%llu mode=%s: %s\n--- actions:\n%s--- host stderr:\n%s---\n",
			(unsigned long long)seed, mode, r->why, s->log ? s->log : "",
			s->errbuf ? s->errbuf : "");
	}
	for (int i = 0; i < s->ncl; i++) {
		if (s->cl[i].fd >= 0)
			close(s->cl[i].fd);
		if (s->cl[i].up >= 0)
			close(s->cl[i].up);
	}
	for (int i = 0; i < 64; i++)
		if (s->up_pending[i] >= 0)
			close(s->up_pending[i]);
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->cmd >= 0)
		close(s->cmd);
	if (s->err >= 0)
		close(s->err);
	if (s->up_listen >= 0)
		close(s->up_listen);
	free(s->errbuf);
	free(s->log);
	free(s);
}


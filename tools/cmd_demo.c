/* cancelctl demo: the scenario the project exists for, side by side.
 *
 * Two copies of cancelshim-demo-server (one plain, one under the shim) share
 * one slow storage service. The same job runs on both, then Cancel closes
 * both client connections. The plain server works on for nobody; the
 * shimmed one should stop at once.
 *
 * Without --cli the user does it in a browser: we serve the page (demo_web.c)
 * and wait for Ctrl-C; the page talks to the two servers itself. With --cli a
 * scripted client starts the job, waits until both servers have stored K
 * chunks, cancels, and prints a table. Either way every figure comes from the
 * servers' /stats (their CLOCK_MONOTONIC, the same clock as ours).
 *
 * Children: the storage and the two servers, started with fork+exec. Each
 * one's stdout is a pipe that gives us its "listening on" line; its stderr is
 * a memfd we read afterwards (the shim's log, shown on failure or -v). Each
 * dies with us (PR_SET_PDEATHSIG) and is reaped on every path out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_shim.h"
#include "commands.h"
#include "demo_net.h"
#include "demo_web.h"

#define JOB_ID "demo"
#define STOP_BOUND_MS 500.0	/* the shimmed job must stop within this */
#define READY_TIMEOUT_MS 5000
#define POLL_EVERY_MS 10

extern char **environ;

struct options {
	int cli;
	int chunks;
	int ms;
	int cancel_after;
	int port;	/* the page's; servers on port+1..+3. 0: free ports */
	int verbose;
	const char *lib;	/* --lib PATH, or NULL */
};

struct child {
	const char *name;
	pid_t pid;	/* 0 once reaped */
	int status;	/* wait status, valid once pid == 0 */
	int out_fd;	/* its stdout: the "listening on" line */
	int log_fd;	/* its stderr: a memfd */
	int port;
	int failed;	/* died or never got ready: show its stderr */
};

/* One job as the server's /stats reports it. */
struct job_view {
	char state[16];
	int chunks_total;
	int chunks_done;
	double last_chunk_ms;	/* < 0: none */
	double ended_ms;	/* < 0: running */
	char error[32];
	char failed_call[16];
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

/* ---- finding our pieces ---- */

/* Directory of the running cancelctl, symlinks resolved. */
static int self_dir(char *out, size_t size)
{
	char exe[PATH_MAX];

	if (!realpath("/proc/self/exe", exe))
		return -1;
	snprintf(out, size, "%s", dirname(exe));
	return 0;
}

/* The demo server is installed (and built) next to cancelctl. */
static int find_server(char *out, size_t size)
{
	char dir[PATH_MAX];

	if (self_dir(dir, sizeof dir) < 0)
		return -1;
	snprintf(out, size, "%s/cancelshim-demo-server", dir);
	return access(out, X_OK);
}

/* Our environment without any preload or shim setting, plus `add` (NULL-
 * terminated). For the shimmed server the caller adds LD_PRELOAD and the
 * mode, and keeps the user's other CANCELSHIM_* settings (keep_shim_vars). */
static char **child_env(int keep_shim_vars, char *const add[])
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	for (size_t i = 0; add[i]; i++)
		n++;
	env = calloc(n + 1, sizeof *env);
	if (!env)
		return NULL;
	for (char **e = environ; *e; e++) {
		if (!strncmp(*e, "LD_PRELOAD=", 11) || !strncmp(*e, "CANCELSHIM_MODE=", 16) ||
		    !strncmp(*e, "CANCELSHIM_LIB=", 15))
			continue;
		if (!keep_shim_vars && !strncmp(*e, "CANCELSHIM_", 11))
			continue;
		env[k++] = *e;
	}
	for (size_t i = 0; add[i]; i++)
		env[k++] = add[i];
	env[k] = NULL;
	return env;
}

/* ---- children ---- */

static int spawn_child(struct child *c, char *const argv[], char *const envp[])
{
	int out[2];
	pid_t parent = getpid();

	c->log_fd = memfd_create(c->name, MFD_CLOEXEC);
	if (c->log_fd < 0 || pipe2(out, O_CLOEXEC) < 0) {
		fprintf(stderr, "cancelctl demo: %s: %s\n", c->name, strerror(errno));
		return -1;
	}
	c->pid = fork();
	if (c->pid < 0) {
		fprintf(stderr, "cancelctl demo: fork: %s\n", strerror(errno));
		c->pid = 0;
		close(out[0]);
		close(out[1]);
		return -1;
	}
	if (c->pid == 0) {
		/* Die with cancelctl, even if it is killed with SIGKILL. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		dup2(out[1], STDOUT_FILENO);
		dup2(c->log_fd, STDERR_FILENO);
		execve(argv[0], argv, envp);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(out[1]);
	c->out_fd = out[0];
	return 0;
}

/* Reap c if it has exited. Returns 1 if it is gone. */
static int child_gone(struct child *c)
{
	if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
		c->pid = 0;
	return c->pid == 0;
}

static void describe_exit(struct child *c)
{
	c->failed = 1;
	if (WIFSIGNALED(c->status))
		fprintf(stderr, "cancelctl demo: the %s died: %s\n", c->name,
			strsignal(WTERMSIG(c->status)));
	else
		fprintf(stderr, "cancelctl demo: the %s exited with status %d\n", c->name,
			WEXITSTATUS(c->status));
}

/* Print the child's stderr so far (its last `max` bytes), each line indented. */
static void show_log(const struct child *c, size_t max, FILE *out)
{
	off_t size = c->log_fd >= 0 ? lseek(c->log_fd, 0, SEEK_END) : -1;
	off_t from = size > (off_t)max ? size - (off_t)max : 0;
	char *buf;

	if (c->log_fd < 0)
		return;	/* never started */
	if (size <= 0) {
		fprintf(out, "--- the %s wrote nothing on stderr ---\n", c->name);
		return;
	}
	if (!(buf = malloc((size_t)(size - from) + 1)))
		return;
	ssize_t n = pread(c->log_fd, buf, (size_t)(size - from), from);
	if (n > 0) {
		buf[n] = '\0';
		fprintf(out, "--- stderr of the %s%s ---\n", c->name, from ? " (end)" : "");
		for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
			fprintf(out, "  | %s\n", line);
	}
	free(buf);
}

/* Find `needle` in the child's stderr; copy the rest of that line to out. */
static int find_in_log(const struct child *c, const char *needle, char *out, size_t size)
{
	char buf[65536];
	ssize_t n = c->log_fd >= 0 ? pread(c->log_fd, buf, sizeof buf - 1, 0) : -1;
	char *p;

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strstr(buf, needle);
	if (!p)
		return -1;
	p += strlen(needle);
	snprintf(out, size, "%.*s", (int)strcspn(p, "\n"), p);
	return 0;
}

static void stop_child(struct child *c)
{
	if (c->pid > 0) {
		kill(c->pid, SIGTERM);
		for (int i = 0; i < 100 && !child_gone(c); i++)
			poll(NULL, 0, POLL_EVERY_MS);
		if (c->pid > 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, &c->status, 0);
			c->pid = 0;
		}
	}
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->log_fd >= 0)
		close(c->log_fd);
	c->out_fd = c->log_fd = -1;
}

/* Wait for "listening on 127.0.0.1:PORT" on the child's stdout, then check
 * that the port accepts a connection. */
static int wait_listening(struct child *c)
{
	char line[128];
	size_t len = 0;
	double deadline = mono_ms() + READY_TIMEOUT_MS;

	while (!memchr(line, '\n', len)) {
		struct pollfd p = { .fd = c->out_fd, .events = POLLIN };
		int left = (int)(deadline - mono_ms());
		ssize_t n;

		if (interrupted)
			return -1;
		if (left <= 0) {
			fprintf(stderr, "cancelctl demo: the %s did not start within %d ms\n",
				c->name, READY_TIMEOUT_MS);
			c->failed = 1;
			return -1;
		}
		if (poll(&p, 1, left) <= 0)
			continue;
		n = read(c->out_fd, line + len, sizeof line - 1 - len);
		if (n <= 0 || (len += (size_t)n) >= sizeof line - 1) {
			poll(NULL, 0, 50);	/* let it finish dying, for the message */
			if (child_gone(c))
				describe_exit(c);
			else
				fprintf(stderr, "cancelctl demo: the %s said no 'listening on' line\n",
					c->name);
			c->failed = 1;
			return -1;
		}
	}
	line[len] = '\0';
	if (sscanf(line, "listening on 127.0.0.1:%d", &c->port) != 1) {
		fprintf(stderr, "cancelctl demo: the %s said: %s", c->name, line);
		c->failed = 1;
		return -1;
	}
	int fd = net_connect(c->port);
	if (fd < 0) {
		fprintf(stderr, "cancelctl demo: the %s does not accept on port %d: %s\n",
			c->name, c->port, strerror(errno));
		c->failed = 1;
		return -1;
	}
	close(fd);
	return 0;
}

/* ---- talking to the servers ---- */

static void set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Connect and send a GET; the socket is left open for the answer. */
static int send_get(int port, const char *target)
{
	char req[256];
	int fd = net_connect(port);

	if (fd < 0)
		return -1;
	set_timeouts(fd, 3000);
	snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", target);
	if (net_write_all(fd, req, strlen(req)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* GET target; the body of a 200 answer into buf. */
static int http_get(int port, const char *target, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;
	int fd = send_get(port, target);
	char *body;

	if (fd < 0)
		return -1;
	while (len < size - 1 && (n = recv(fd, buf + len, size - 1 - len, 0)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.1 200 ", 13) || !body)
		return -1;
	memmove(buf, body + 4, strlen(body + 4) + 1);
	return 0;
}

/* The text after "name": in the object [obj, end), or NULL. */
static const char *json_value(const char *obj, const char *end, const char *name)
{
	char key[48];
	const char *p;

	snprintf(key, sizeof key, "\"%s\":", name);
	p = strstr(obj, key);
	return p && p < end ? p + strlen(key) : NULL;
}

static double json_number(const char *obj, const char *end, const char *name)
{
	const char *v = json_value(obj, end, name);

	return v && *v != 'n' ? strtod(v, NULL) : -1;	/* null -> -1 */
}

static void json_string(const char *obj, const char *end, const char *name, char *out, size_t size)
{
	const char *v = json_value(obj, end, name);

	if (v && *v == '"')
		snprintf(out, size, "%.*s", (int)strcspn(v + 1, "\""), v + 1);
	else
		snprintf(out, size, "-");
}

/* Job JOB_ID as server c reports it; state "pending" while the server has
 * not started it yet. The server's JSON is flat per job (see demo_jobs.h),
 * so finding the braces is all the parsing needed. */
static int get_job(const struct child *c, struct job_view *v)
{
	char json[32768];	/* room for the server's 64 job records */
	const char *obj, *end;

	if (http_get(c->port, "/stats", json, sizeof json) < 0 ||
	    !(obj = strstr(json, "\"jobs\":{")))
		return -1;
	if (!(obj = strstr(obj + 8, "\"" JOB_ID "\":{")) || !(end = strchr(obj, '}'))) {
		*v = (struct job_view){ .state = "pending", .last_chunk_ms = -1, .ended_ms = -1 };
		return 0;
	}
	json_string(obj, end, "state", v->state, sizeof v->state);
	v->chunks_total = (int)json_number(obj, end, "chunks_total");
	v->chunks_done = (int)json_number(obj, end, "chunks_done");
	v->last_chunk_ms = json_number(obj, end, "last_chunk_ms");
	v->ended_ms = json_number(obj, end, "ended_ms");
	json_string(obj, end, "error", v->error, sizeof v->error);
	json_string(obj, end, "failed_call", v->failed_call, sizeof v->failed_call);
	return 0;
}

/* ---- the scenario ---- */

enum { PLAIN, SHIMMED, NSERVERS };

struct run {
	struct child *server[NSERVERS];
	int job_fd[NSERVERS];
	struct job_view at_cancel[NSERVERS];	/* last look before Cancel */
	struct job_view after[NSERVERS];	/* first look after Cancel */
	struct job_view final[NSERVERS];
	double cancel_ms[NSERVERS];
};

/* Poll /stats of both servers until done(view) holds for both: 0. -2 at the
 * deadline; -1 on interruption, a dead server or a failed query (said). */
static int watch(struct run *r, struct job_view views[], double deadline,
		 int (*done)(const struct job_view *, int), int arg)
{
	for (;;) {
		int all = 1;

		for (int i = 0; i < NSERVERS; i++) {
			if (interrupted)
				return -1;
			if (child_gone(r->server[i])) {
				describe_exit(r->server[i]);
				return -1;
			}
			if (get_job(r->server[i], &views[i]) < 0) {
				if (!interrupted)
					fprintf(stderr, "cancelctl demo: cannot read /stats of the %s\n",
						r->server[i]->name);
				return -1;
			}
			all &= done(&views[i], arg);
		}
		if (all)
			return 0;
		if (mono_ms() > deadline)
			return -2;
		poll(NULL, 0, POLL_EVERY_MS);
	}
}

static int ended(const struct job_view *v, int unused)
{
	return !strcmp(v->state, "finished") || !strcmp(v->state, "stopped");
}

static int reached(const struct job_view *v, int chunks)
{
	return v->chunks_done >= chunks || ended(v, 0);
}

static int at_once(const struct job_view *v, int unused)
{
	return 1;
}

/* Chunks stored before Cancel, from the server's own records: everything in
 * the first look after Cancel, less its last chunk if that one was stored
 * after Cancel (at most one can be: a chunk takes >= 10 ms, the look < 1). */
static int chunks_before(const struct run *r, int i)
{
	const struct job_view *v = &r->after[i];

	if (v->last_chunk_ms <= r->cancel_ms[i])
		return v->chunks_done;
	return v->chunks_done - 1 > r->at_cancel[i].chunks_done ?
	       v->chunks_done - 1 : r->at_cancel[i].chunks_done;
}

static void describe_end(const struct job_view *v, char *out, size_t size)
{
	if (!v->state[0])
		snprintf(out, size, "unknown: the server did not answer");
	else if (!strcmp(v->state, "finished") && v->chunks_done == v->chunks_total)
		snprintf(out, size, "ran to the end (%d/%d chunks)", v->chunks_done, v->chunks_total);
	else if (!strcmp(v->state, "stopped"))
		snprintf(out, size, "stopped: %s in %s", v->error, v->failed_call);
	else
		snprintf(out, size, "%s (%d/%d chunks)", v->state, v->chunks_done, v->chunks_total);
}

/* The table; returns 1 if the expected outcome happened. */
static int report(const struct run *r, const struct options *o)
{
	static const char *const names[NSERVERS] = { "plain", "shimmed" };
	int before[NSERVERS], after[NSERVERS];
	double stop[NSERVERS];

	printf("\n%-8s  %20s  %19s  %19s  %s\n", "server", "chunks before cancel",
	       "chunks after cancel", "cancel to stop (ms)", "how it ended");
	for (int i = 0; i < NSERVERS; i++) {
		const struct job_view *v = &r->final[i];
		char how[96], stop_text[32] = "-";

		before[i] = chunks_before(r, i);
		after[i] = v->chunks_done - before[i];
		stop[i] = v->ended_ms >= 0 ? v->ended_ms - r->cancel_ms[i] : -1;
		if (stop[i] >= 0)
			snprintf(stop_text, sizeof stop_text, "%.1f", stop[i]);
		describe_end(v, how, sizeof how);
		printf("%-8s  %20d  %19d  %19s  %s\n", names[i], before[i], after[i], stop_text, how);
	}
	putchar('\n');

	const struct job_view *p = &r->final[PLAIN], *s = &r->final[SHIMMED];
	int plain_ok = !strcmp(p->state, "finished") && p->chunks_done == o->chunks;
	int shim_ok = !strcmp(s->state, "stopped") && !strcmp(s->error, "ECANCELED") &&
		      after[SHIMMED] <= 1 && stop[SHIMMED] >= 0 && stop[SHIMMED] <= STOP_BOUND_MS;

	if (shim_ok && plain_ok)
		printf("Under the shim the job stopped %.1f ms after Cancel. Without it the server\n"
		       "stored %d more chunks (%.1f s of storage work) for a client that had gone.\n",
		       stop[SHIMMED], after[PLAIN], stop[PLAIN] / 1000);
	if (!shim_ok)
		printf("Not the expected outcome: the shimmed job should stop with ECANCELED within\n"
		       "%.0f ms of Cancel, after at most 1 more chunk.\n", STOP_BOUND_MS);
	if (!plain_ok)
		printf("Not the expected outcome: the plain job should run to the end (%d chunks).\n",
		       o->chunks);
	return shim_ok && plain_ok;
}

/* Start the job on both servers, Cancel after K chunks, watch the end. */
static int run_scenario(struct run *r, const struct options *o)
{
	char target[128];

	snprintf(target, sizeof target, "/job?id=" JOB_ID "&chunks=%d&ms=%d", o->chunks, o->ms);
	for (int i = 0; i < NSERVERS; i++) {
		r->job_fd[i] = send_get(r->server[i]->port, target);
		if (r->job_fd[i] < 0) {
			fprintf(stderr, "cancelctl demo: cannot start the job on the %s: %s\n",
				r->server[i]->name, strerror(errno));
			return -1;
		}
	}
	printf("Started job '%s' on both servers; waiting until each has stored %d chunks.\n",
	       JOB_ID, o->cancel_after);
	fflush(stdout);

	int rc = watch(r, r->at_cancel, mono_ms() + 3.0 * o->cancel_after * o->ms + 5000,
		       reached, o->cancel_after);
	if (rc == -1)
		return -1;
	if (rc == -2 || ended(&r->at_cancel[PLAIN], 0) || ended(&r->at_cancel[SHIMMED], 0)) {
		fprintf(stderr, "cancelctl demo: the jobs did not both reach %d chunks "
			"(plain: %s, %d; shimmed: %s, %d %s)\n", o->cancel_after,
			r->at_cancel[PLAIN].state, r->at_cancel[PLAIN].chunks_done,
			r->at_cancel[SHIMMED].state, r->at_cancel[SHIMMED].chunks_done,
			r->at_cancel[SHIMMED].error);
		return -1;
	}

	/* Cancel: the client goes away, as a browser does when the user
	 * presses Cancel or closes the tab. */
	for (int i = 0; i < NSERVERS; i++) {
		r->cancel_ms[i] = mono_ms();
		close(r->job_fd[i]);
		r->job_fd[i] = -1;
	}
	if (watch(r, r->after, mono_ms(), at_once, 0) < 0)
		return -1;

	int remaining = o->chunks - o->cancel_after;
	double limit = 2.0 * remaining * o->ms + 5000;
	printf("Cancel: closed both client connections; waiting for both jobs to end "
	       "(at most %.1f s).\n", limit / 1000);
	fflush(stdout);
	rc = watch(r, r->final, r->cancel_ms[SHIMMED] + limit, ended, 0);
	if (rc == -2)
		fprintf(stderr, "cancelctl demo: not both jobs ended within %.1f s of Cancel\n",
			limit / 1000);
	return interrupted ? -1 : 0;	/* a dead server still gets its table */
}

/* ---- the browser demo ---- */

/* What to say about the mode in force, from the shim's own info line
 * ("mode epoll, on fin, ..."; empty if it printed none). */
static const char *mode_note(const char *active)
{
	if (!active[0])
		return "The shim printed no 'active' line (CANCELSHIM_LOG below info hides it), "
		       "so its mode is not known.";
	if (!strncmp(active, "mode ebpf", 9))
		return "This is the kernel-assisted mode: an eBPF program reports disconnects.";
	if (!strncmp(active, "mode epoll", 10))
		return "This is the user-space watcher (epoll): the kernel-assisted mode (eBPF) "
		       "needs root (or CAP_BPF+CAP_PERFMON) and a kernel with BTF.";
	return "";
}

/* /demo.json: where the servers are, the job, and the shim's mode. */
static void web_config(char *out, size_t size, const struct options *o, const struct run *r,
		       const char *active)
{
	char esc_active[512], esc_note[512];

	web_json_escape(active, esc_active, sizeof esc_active);
	web_json_escape(mode_note(active), esc_note, sizeof esc_note);
	snprintf(out, size,
		 "{\"plain\":{\"port\":%d},\"shimmed\":{\"port\":%d},\"chunks\":%d,\"ms\":%d,"
		 "\"shim\":{\"requested\":\"auto\",\"active\":%s%s%s,\"note\":\"%s\"}}\n",
		 r->server[PLAIN]->port, r->server[SHIMMED]->port, o->chunks, o->ms,
		 active[0] ? "\"" : "", active[0] ? esc_active : "null", active[0] ? "\"" : "",
		 esc_note);
}

/* Serve the page until a signal (0) or until a child dies (-1, said). */
static int web_run(int lfd, const char *config, struct child *const children[], int n)
{
	while (!interrupted) {
		for (int i = 0; i < n; i++) {
			if (child_gone(children[i])) {
				describe_exit(children[i]);
				return -1;
			}
		}
		if (web_serve_one(lfd, config, 250) < 0) {
			fprintf(stderr, "cancelctl demo: the page's socket failed: %s\n",
				strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: cancelctl demo [--cli] [--chunks N] [--ms M] [--cancel-after K]\n"
		"                      [--port P] [--lib PATH] [-v]\n"
		"\n"
		"Runs one job on two copies of the demo server, one plain and one under the\n"
		"shim, then cancels it (closes the client connections) and shows what each\n"
		"server did next. The job stores N chunks in slow storage, each a blocking\n"
		"call of M ms.\n"
		"\n"
		"Without --cli it serves a page on 127.0.0.1 (the address is printed) with\n"
		"Start and Cancel buttons: open it in a browser. Ctrl-C ends the demo.\n"
		"\n"
		"  --cli             the command-line demo instead: a scripted client cancels\n"
		"                    after K chunks and a table shows what happened\n"
		"  --chunks N        chunks in the job (default 50)\n"
		"  --ms M            milliseconds per chunk, 10..10000 (default 100)\n"
		"  --cancel-after K  (--cli) Cancel after K chunks, 1..N-1 (default 10)\n"
		"  --port P          the page on P; storage on P+1, plain server on P+2,\n"
		"                    shimmed server on P+3 (default: free ports)\n"
		"  --lib PATH        the shim library to use (see below)\n"
		"  -v, --verbose     show the servers' stderr (the shim's log)\n"
		"\n%s\n"
		"The shimmed server runs with CANCELSHIM_MODE=auto and CANCELSHIM_LOG=info\n"
		"unless you set CANCELSHIM_LOG; your other CANCELSHIM_* settings apply to it.\n"
		"Exit status with --cli: 0 if the shimmed job stopped with ECANCELED within\n"
		"%.0f ms of Cancel and the plain one ran to the end, 1 otherwise, 2 on bad\n"
		"usage. In the browser demo: 0 when ended by Ctrl-C (or SIGTERM), 1 if a\n"
		"server died or the page's port could not be had.\n",
		shim_locate_help, STOP_BOUND_MS);
}

static int parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "cli",          no_argument,       NULL, 'c' },
		{ "chunks",       required_argument, NULL, 'n' },
		{ "ms",           required_argument, NULL, 'm' },
		{ "cancel-after", required_argument, NULL, 'k' },
		{ "port",         required_argument, NULL, 'p' },
		{ "lib",          required_argument, NULL, 'l' },
		{ "verbose",      no_argument,       NULL, 'v' },
		{ "help",         no_argument,       NULL, 'h' },
		{ 0 }
	};
	int opt, bad = 0;

	*o = (struct options){ .chunks = 50, .ms = 100, .cancel_after = 10 };
	argv[0] = "cancelctl demo";	/* for getopt's messages */
	optind = 0;	/* glibc: start afresh */
	while ((opt = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': o->cli = 1; break;
		case 'n': bad |= parse_int(optarg, 2, 100000, &o->chunks); break;
		case 'm': bad |= parse_int(optarg, 10, 10000, &o->ms); break;
		case 'k': bad |= parse_int(optarg, 1, 100000, &o->cancel_after); break;
		case 'p': bad |= parse_int(optarg, 1, 65532, &o->port); break;
		case 'l': o->lib = optarg; break;
		case 'v': o->verbose = 1; break;
		case 'h': usage(stdout); exit(0);
		default: bad = -1;
		}
	}
	if (!bad && optind < argc)
		bad = -1;
	if (!bad && o->cli && o->cancel_after >= o->chunks) {
		fprintf(stderr, "cancelctl demo: --cancel-after must be less than --chunks\n");
		bad = -1;
	}
	if (bad) {
		fprintf(stderr, "usage: cancelctl demo [--cli] [--chunks N] [--ms M] "
			"[--cancel-after K] [--port P] [--lib PATH] [-v]\n"
			"'cancelctl demo --help' explains them.\n");
		return -1;
	}
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	struct options o;
	char server[PATH_MAX + 32], preload[PATH_MAX + 16], err[PATH_MAX * 2 + 128];
	struct shim_location shim;
	char ports[3][16], active[256] = "", origins[2][64], config[2048];
	struct child storage = { .name = "storage", .out_fd = -1, .log_fd = -1 };
	struct child plain = { .name = "plain server", .out_fd = -1, .log_fd = -1 };
	struct child shimmed = { .name = "shimmed server", .out_fd = -1, .log_fd = -1 };
	struct run r = { .server = { &plain, &shimmed }, .job_fd = { -1, -1 } };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	char **plain_env = NULL, **shim_env = NULL;
	int ok = 0, page_fd = -1, page_port = 0;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	if (find_server(server, sizeof server) < 0) {
		fprintf(stderr, "cancelctl demo: cannot find cancelshim-demo-server next to "
			"cancelctl\n");
		return 1;
	}
	if (shim_locate(o.lib, &shim, err, sizeof err) < 0) {
		fprintf(stderr, "cancelctl demo: %s\n", err);
		return 1;
	}
	snprintf(preload, sizeof preload, "LD_PRELOAD=%s", shim.path);
	plain_env = child_env(0, (char *[]){ NULL });
	shim_env = child_env(1, (char *[]){ preload, "CANCELSHIM_MODE=auto",
			     getenv("CANCELSHIM_LOG") ? NULL : "CANCELSHIM_LOG=info", NULL });
	if (!plain_env || !shim_env)
		goto cleanup;

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The page's port first: the servers must know its origin (CORS), and
	 * a --port already in use should fail before anything starts. */
	if (!o.cli && (page_fd = net_listen(o.port, &page_port)) < 0) {
		fprintf(stderr, "cancelctl demo: cannot listen on 127.0.0.1:%d for the page: %s\n",
			o.port, strerror(errno));
		goto cleanup;
	}
	snprintf(origins[0], sizeof origins[0], "http://127.0.0.1:%d", page_port);
	snprintf(origins[1], sizeof origins[1], "http://localhost:%d", page_port);

	if (o.cli)
		printf("cancelctl demo: one job on two copies of the same server, then Cancel.\n"
		       "  job: %d chunks, each a blocking call to slow storage taking %d ms; "
		       "Cancel after %d\n", o.chunks, o.ms, o.cancel_after);
	else
		printf("cancelctl demo: one job on two copies of the same server, in your "
		       "browser.\n"
		       "  job: %d chunks, each a blocking call to slow storage taking %d ms\n",
		       o.chunks, o.ms);
	printf("  shim: %s (%s)\n", shim.path, shim.source);
	fflush(stdout);

	for (int i = 0; i < 3; i++)
		snprintf(ports[i], sizeof ports[i], "%d", o.port ? o.port + 1 + i : 0);
	if (spawn_child(&storage, (char *[]){ server, "--storage", ports[0], NULL }, plain_env) < 0 ||
	    wait_listening(&storage) < 0)
		goto cleanup;
	snprintf(ports[0], sizeof ports[0], "%d", storage.port);
	/* SERVER [--allow-origin PAGE...] PORT STORAGE_PORT: the page's origins
	 * in the browser demo only, PORT filled in per server. */
	char *argv_plain[8] = { server }, *argv_shim[8];
	int k = 1;
	if (!o.cli)
		for (int i = 0; i < 2; i++) {
			argv_plain[k++] = "--allow-origin";
			argv_plain[k++] = origins[i];
		}
	argv_plain[k + 1] = ports[0];
	memcpy(argv_shim, argv_plain, sizeof argv_shim);
	argv_plain[k] = ports[1];
	argv_shim[k] = ports[2];
	if (spawn_child(&plain, argv_plain, plain_env) < 0 ||
	    spawn_child(&shimmed, argv_shim, shim_env) < 0 ||
	    wait_listening(&plain) < 0 || wait_listening(&shimmed) < 0)
		goto cleanup;
	/* The shim says its mode once, as it loads: before "listening on". */
	find_in_log(&shimmed, "info: active: ", active, sizeof active);
	printf("  mode: CANCELSHIM_MODE=auto; the shim says: %s%s\n"
	       "        %s\n"
	       "  storage on 127.0.0.1:%d, plain server on 127.0.0.1:%d, "
	       "shimmed server on 127.0.0.1:%d\n\n",
	       active[0] ? "active: " : "nothing", active, mode_note(active),
	       storage.port, plain.port, shimmed.port);
	fflush(stdout);

	if (!o.cli) {
		web_config(config, sizeof config, &o, &r, active);
		printf("Open http://127.0.0.1:%d/ in a browser, press Start, then Cancel.\n"
		       "Ctrl-C here ends the demo.\n", page_port);
		fflush(stdout);
		ok = web_run(page_fd, config, (struct child *[]){ &storage, &plain, &shimmed }, 3) == 0;
	} else if (run_scenario(&r, &o) == 0) {
		ok = report(&r, &o);
		if (active[0])
			printf("The shim reported: active: %s\n", active);
		else
			printf("The shim did not report itself active (no 'info: active:' line in "
			       "the shimmed server's stderr)\n");
	}

cleanup:
	if (interrupted && (o.cli || !ok))
		fprintf(stderr, "cancelctl demo: interrupted\n");
	if (page_fd >= 0)
		close(page_fd);
	for (int i = 0; i < NSERVERS; i++)
		if (r.job_fd[i] >= 0)
			close(r.job_fd[i]);
	/* The servers' stderr: all of it with -v; on failure the shim's log
	 * and that of any child that died. */
	fflush(stdout);
	for (int i = 0; i < 3; i++) {
		struct child *c = (struct child *[]){ &shimmed, &plain, &storage }[i];
		if (o.verbose || (!interrupted && (c->failed || (!ok && c == &shimmed))))
			show_log(c, o.verbose ? 1 << 20 : 4096, stderr);
	}
	stop_child(&shimmed);
	stop_child(&plain);
	stop_child(&storage);
	free(plain_env);
	free(shim_env);
	if (!o.cli) {
		if (ok)
			printf("\ncancelctl demo: stopped; the servers and the storage have ended.\n");
		return ok ? 0 : 1;
	}
	if (interrupted)
		return 128 + interrupted;
	return ok ? 0 : 1;
}

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
 * The children (the storage and the two servers) are supervised by
 * demo_child.c; their /stats are read through demo_http.c.
 */
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
#include "demo_child.h"
#include "demo_http.h"
#include "demo_net.h"
#include "demo_web.h"

#define STOP_BOUND_MS 500.0	/* the shimmed job must stop within this */
#define POLL_EVERY_MS 10

struct options {
	int cli;
	int chunks;
	int ms;
	int cancel_after;
	int port;	/* the page's; servers on port+1..+3. 0: free ports */
	int verbose;
	const char *lib;	/* --lib PATH, or NULL */
};

static void on_signal(int sig)
{
	demo_interrupted = sig;
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
			if (demo_interrupted)
				return -1;
			if (child_gone(r->server[i])) {
				child_describe_exit(r->server[i]);
				return -1;
			}
			if (http_get_job(r->server[i]->port, &views[i]) < 0) {
				if (!demo_interrupted)
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
		r->job_fd[i] = http_send_get(r->server[i]->port, target);
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
	return demo_interrupted ? -1 : 0;	/* a dead server still gets its table */
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
	while (!demo_interrupted) {
		for (int i = 0; i < n; i++) {
			if (child_gone(children[i])) {
				child_describe_exit(children[i]);
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
	if (child_find_server(server, sizeof server) < 0) {
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
	if (child_spawn(&storage, (char *[]){ server, "--storage", ports[0], NULL }, plain_env) < 0 ||
	    child_wait_listening(&storage) < 0)
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
	if (child_spawn(&plain, argv_plain, plain_env) < 0 ||
	    child_spawn(&shimmed, argv_shim, shim_env) < 0 ||
	    child_wait_listening(&plain) < 0 || child_wait_listening(&shimmed) < 0)
		goto cleanup;
	/* The shim says its mode once, as it loads: before "listening on". */
	child_find_in_log(&shimmed, "info: active: ", active, sizeof active);
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
	if (demo_interrupted && (o.cli || !ok))
		fprintf(stderr, "cancelctl demo: demo_interrupted\n");
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
		if (o.verbose || (!demo_interrupted && (c->failed || (!ok && c == &shimmed))))
			child_show_log(c, o.verbose ? 1 << 20 : 4096, stderr);
	}
	child_stop(&shimmed);
	child_stop(&plain);
	child_stop(&storage);
	free(plain_env);
	free(shim_env);
	if (!o.cli) {
		if (ok)
			printf("\ncancelctl demo: stopped; the servers and the storage have ended.\n");
		return ok ? 0 : 1;
	}
	if (demo_interrupted)
		return 128 + demo_interrupted;
	return ok ? 0 : 1;
}

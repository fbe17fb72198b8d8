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
#include "drive.h"
#include "torture.h"

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

#define MAXCLIENTS 256
#define MAXINFLIGHT 5
#define CANCEL_MS 5000   /* a left client's worker must report by then */
#define ACK_MS 8000      /* a command must be answered by then */
#define SERVE_MS 10000   /* a staying client must have its response by then */

enum fate {
	STAY,        /* waits for its response */
	LEAVE_WAIT,  /* leaves while its worker waits on the upstream */
	LEAVE_EARLY, /* sends its request and leaves before accept (queued) */
	LEAVE_ACCEPTED, /* leaves once accepted, before its worker waits */
};
static const char *const fate_name[] = {"stay", "leave-in-wait", "leave-queued", "leave-accepted"};

struct client {
	int cid, fd, up;      /* fd: the driver's end; up: its upstream connection */
	enum fate fate;
	bool rst;             /* leaves by RST (SO_LINGER {1,0}), else FIN */
	char via[8], kind;
	char token[24];
	int delay_ms;         /* between its worker entering the wait and the answer/leave */
	bool accepted, entered, acted, left, reported, canceled, noreq, resp_ok, unblocked, done;
	uint64_t act_at, left_at, started_at;
	char rbuf[128];
	size_t rlen;
	bool request_first;   /* sends its request before it is accepted */
	char accept_cmd[96];  /* the host's command that accepts it */
};

struct seq {
	const struct torture_options *o;
	uint64_t seed;
	const char *mode;
	struct torture_rng rng;
	struct torture_result *r;

	pid_t host;
	int ctl, cmd, err;     /* pipes to and from the host */
	int port, gen;         /* gen: the last generation that said ready */
	int up_listen, up_port;
	int up_pending[64];    /* upstream connections not yet named ("up C") */

	char ctlbuf[8192];
	size_t ctllen;
	char *errbuf;
	size_t errlen, errcap;
	char *log;             /* the actions, for a failure report */
	size_t loglen, logcap;

	int next_no, acked_no;
	int awaited_no;        /* the command wait_ack waits for */
	char ack[256];         /* text of its ack (answers sent meanwhile ack too) */
	int children, child_reports;

	struct client cl[MAXCLIENTS];
	int ncl;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*buf = realloc(*buf, *cap);
		if (!*buf)
			abort();
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = 0;
}

static void note(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct seq *s, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 2, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof line - 3)
		n = sizeof line - 3;
	char stamp[32];
	int m = snprintf(stamp, sizeof stamp, "  %6llu ", (unsigned long long)(now_ms() % 1000000));
	append(&s->log, &s->loglen, &s->logcap, stamp, m);
	line[n++] = '\n';
	line[n] = 0;
	append(&s->log, &s->loglen, &s->logcap, line, n);
	if (s->o->verbose)
		fprintf(stderr, "%s%s", stamp, line);
}

static void fail(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct seq *s, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	note(s, "FAILURE: %s", why);
	if (!s->r->failed) {
		s->r->failed = true;
		snprintf(s->r->why, sizeof s->r->why, "%s", why);
	}
}

/* A hang is only useful with the host's stacks: ask gdb (when installed)
 * before the driver kills it. Every thread, every frame, into the log. */
static void dump_host_stacks(struct seq *s)
{
	if (s->host <= 0 || access("/usr/bin/gdb", X_OK) != 0 || getenv("CS_TORTURE_NO_GDB"))
		return;
	char cmd[160];
	snprintf(cmd, sizeof cmd,
		 "timeout 20 /usr/bin/gdb -p %d -batch -nx -ex 'thread apply all bt' 2>&1 "
		 "| grep -E '^(Thread|#)'", (int)s->host);
	FILE *f = popen(cmd, "r");
	if (!f)
		return;
	char line[512];
	note(s, "the host's threads (gdb):");
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		note(s, "    %s", line);
	}
	pclose(f);
}

static struct client *client_by_id(struct seq *s, int cid)
{
	return cid >= 0 && cid < s->ncl ? &s->cl[cid] : NULL;
}

/* ---- clients ----------------------------------------------------------- */

static void client_leave(struct seq *s, struct client *c)
{
	if (c->rst) {
		struct linger l = {1, 0};
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	}
	close(c->fd);
	c->fd = -1;
	c->left = true;
	c->left_at = now_ms();
	note(s, "client %d leaves by %s", c->cid, c->rst ? "RST" : "FIN");
}

/* A client is finished when the oracle has everything it needs. */
static void client_check_done(struct seq *s, struct client *c)
{
	if (c->done)
		return;
	bool done = c->fate == STAY ? (c->reported && c->resp_ok) || c->noreq
				    : c->reported || c->noreq || (!c->accepted && c->acted);
	if (!done)
		return;
	c->done = true;
	if (c->left && (c->reported || c->noreq) && !c->unblocked) {
		int ms = (int)(now_ms() - c->left_at);
		if (ms > s->r->max_cancel_ms)
			s->r->max_cancel_ms = ms;
		if (ms > SLOW_CANCEL_MS) {
			s->r->slow_cancels++;
			note(s, "slow cancel: client %d (%s, by %s, via %s, kind %c) reported %d ms after "
				"it left", c->cid, fate_name[c->fate], c->rst ? "RST" : "FIN", c->via, c->kind, ms);
			if (!s->o->verbose)
				fprintf(stderr, "slow cancel: seed %llu mode %s client %d (%s, by %s, via %s, "
					"kind %c): %d ms\n", (unsigned long long)s->seed, s->mode, c->cid,
					fate_name[c->fate], c->rst ? "RST" : "FIN", c->via, c->kind, ms);
		}
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->fate != STAY && c->canceled)
		s->r->canceled++;
}

static int send_cmd(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The timed part of a client's life: answer it, or leave, once its worker
 * waits; give up on a worker that never reports. */
static void client_timers(struct seq *s, struct client *c, uint64_t t)
{
	if (c->done)
		return;
	if (c->entered && !c->acted && (c->kind == 's' || c->up >= 0) && !c->act_at)
		c->act_at = t + c->delay_ms;
	if (c->act_at && !c->acted && t >= c->act_at) {
		c->acted = true;
		if (c->fate == STAY) {
			note(s, "upstream answers client %d", c->cid);
			if (c->kind == 's') {
				send_cmd(s, "answer %d %s", c->cid, c->token);
			} else {
				char a[64];
				int n = snprintf(a, sizeof a, "ans %d %s\n", c->cid, c->token);
				if (write(c->up, a, n) != n)
					fail(s, "upstream write to client %d's worker: %s", c->cid, strerror(errno));
			}
		} else if (c->fate == LEAVE_WAIT) {
			client_leave(s, c);
		}
	}
	if (c->left && !c->reported && !c->noreq && !c->unblocked && t > c->left_at + CANCEL_MS) {
		fail(s, "missed cancel: client %d (%s, by %s, via %s, kind %c) left %d ms ago and its "
			"worker still waits", c->cid, fate_name[c->fate], c->rst ? "RST" : "FIN", c->via,
		     c->kind, CANCEL_MS);
		c->unblocked = true; /* let the worker go: the answer it waited for */
		if (c->kind == 's') {
			send_cmd(s, "answer %d %s", c->cid, c->token);
		} else if (c->up >= 0) {
			shutdown(c->up, SHUT_RDWR);
		}
	}
	if (!c->left && t > c->started_at + SERVE_MS) {
		fail(s, "hang: client %d (%s, via %s, kind %c) not served after %d ms", c->cid,
		     fate_name[c->fate], c->via, c->kind, SERVE_MS);
		c->done = true;
	}
}

static void on_client_data(struct seq *s, struct client *c)
{
	ssize_t n = read(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - 1 - c->rlen);
	if (n <= 0) {
		if (!c->resp_ok && c->fate == STAY)
			fail(s, "lost response: client %d (via %s, kind %c) got %s before its response",
			     c->cid, c->via, c->kind, n == 0 ? "EOF" : strerror(errno));
		close(c->fd);
		c->fd = -1;
		if (c->fate == STAY)
			c->done = true;
		return;
	}
	c->rlen += n;
	c->rbuf[c->rlen] = 0;
	if (!strchr(c->rbuf, '\n'))
		return;
	char want[64];
	snprintf(want, sizeof want, "resp %d %s\n", c->cid, c->token);
	if (strcmp(c->rbuf, want) != 0)
		fail(s, "wrong response for client %d: '%s'", c->cid, c->rbuf);
	else
		c->resp_ok = true;
	client_check_done(s, c);
}

/* ---- the host's reports ----------------------------------------------- */

static void on_report(struct seq *s, char *line)
{
	int cid = -1, a = 0, b = 0, no = 0;
	struct client *c;
	if (s->o->verbose)
		fprintf(stderr, "           host: %s\n", line);
	if (sscanf(line, "ready gen=%d pid=%*d port=%d", &a, &b) == 2) {
		s->gen = a;
		s->port = b;
	} else if (sscanf(line, "ack %d", &no) == 1) {
		s->acked_no = no;
		if (no == s->awaited_no)
			snprintf(s->ack, sizeof s->ack, "%.250s", line);
	} else if (sscanf(line, "req cid=%d", &cid) == 1 && (c = client_by_id(s, cid))) {
		/* read: nothing to do, the enter line follows */
	} else if (sscanf(line, "enter cid=%d", &cid) == 1 && (c = client_by_id(s, cid))) {
		c->entered = true;
	} else if (sscanf(line, "done cid=%d canceled=%d errno=%d", &cid, &a, &b) == 3 &&
		   (c = client_by_id(s, cid))) {
		c->reported = true;
		c->canceled = a;
		if (c->fate == STAY && a)
			fail(s, "false cancel: client %d stays but its worker's call failed with "
				"ECANCELED (%s)", cid, line);
		else if (c->fate == STAY && b)
			fail(s, "client %d stays but its worker's call failed: %s", cid, line);
		else if (c->fate != STAY && !a && !c->unblocked)
			fail(s, "missed cancel: client %d (%s, by %s, via %s, kind %c) left but its "
				"worker's call did not fail with ECANCELED: %s", cid, fate_name[c->fate],
			     c->rst ? "RST" : "FIN", c->via, c->kind, line);
		else if (c->fate != STAY && !c->left)
			fail(s, "client %d: worker finished before its client left", cid);
		client_check_done(s, c);
	} else if (sscanf(line, "noreq cid=%d", &cid) == 1 && (c = client_by_id(s, cid))) {
		c->noreq = true;
		if (c->fate == STAY)
			fail(s, "lost request: the worker of client %d (staying) could not read it: %s",
			     cid, line);
		client_check_done(s, c);
	} else if (sscanf(line, "child pid=%d status=%d", &a, &b) == 2) {
		s->child_reports++;
		if (b != 0)
			fail(s, "a child of the host (pid %d) ended with wait status %#x", a, b);
	} else if (!strncmp(line, "fail ", 5)) {
		fail(s, "host says: %s", line + 5);
	} else {
		fail(s, "unexpected report from the host: '%s'", line);
	}
}

static void on_ctl(struct seq *s)
{
	ssize_t n = read(s->ctl, s->ctlbuf + s->ctllen, sizeof s->ctlbuf - 1 - s->ctllen);
	if (n <= 0) {
		close(s->ctl);
		s->ctl = -1;
		return;
	}
	s->ctllen += n;
	s->ctlbuf[s->ctllen] = 0;
	char *start = s->ctlbuf, *nl;
	while ((nl = strchr(start, '\n'))) {
		*nl = 0;
		on_report(s, start);
		start = nl + 1;
	}
	s->ctllen -= start - s->ctlbuf;
	memmove(s->ctlbuf, start, s->ctllen);
}

static void on_upstream_hello(struct seq *s, int i)
{
	int fd = s->up_pending[i];
	char buf[32];
	/* "up C\n" arrives in one segment on loopback; read exactly one line */
	size_t len = 0;
	while (len + 1 < sizeof buf) {
		ssize_t n = read(fd, buf + len, 1);
		if (n <= 0)
			break;
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = 0;
	s->up_pending[i] = -1;
	int cid;
	struct client *c;
	if (sscanf(buf, "up %d", &cid) != 1 || !(c = client_by_id(s, cid)) || c->up >= 0) {
		close(fd); /* a worker cancelled while saying hello, or garbage */
		return;
	}
	c->up = fd;
}

/* ---- the event pump ---------------------------------------------------- */

/* Serves everything (reports, upstream, clients, timers) for up to ms, or
 * until done(s, arg) holds. */
static bool pump(struct seq *s, int ms, bool (*done)(struct seq *, void *), void *arg)
{
	uint64_t end = now_ms() + ms;
	for (;;) {
		uint64_t t = now_ms();
		for (int i = 0; i < s->ncl; i++)
			client_timers(s, &s->cl[i], t);
		if (done && done(s, arg))
			return true;
		if (t >= end)
			return false;

		struct pollfd p[MAXCLIENTS * 2 + 80];
		void *what[MAXCLIENTS * 2 + 80];
		int np = 0;
		uint64_t wake = end;
		if (s->ctl >= 0)
			p[np] = (struct pollfd){s->ctl, POLLIN, 0}, what[np++] = &s->ctl;
		if (s->err >= 0)
			p[np] = (struct pollfd){s->err, POLLIN, 0}, what[np++] = &s->err;
		p[np] = (struct pollfd){s->up_listen, POLLIN, 0}, what[np++] = &s->up_listen;
		for (int i = 0; i < 64; i++)
			if (s->up_pending[i] >= 0)
				p[np] = (struct pollfd){s->up_pending[i], POLLIN, 0}, what[np++] = &s->up_pending[i];
		for (int i = 0; i < s->ncl; i++) {
			struct client *c = &s->cl[i];
			if (c->done)
				continue;
			if (c->fd >= 0 && c->fate == STAY)
				p[np] = (struct pollfd){c->fd, POLLIN, 0}, what[np++] = &c->fd;
			if (c->up >= 0)
				p[np] = (struct pollfd){c->up, POLLIN, 0}, what[np++] = &c->up;
			if (c->act_at && !c->acted && c->act_at < wake)
				wake = c->act_at;
			if (c->left && !c->reported && c->left_at + CANCEL_MS + 1 < wake)
				wake = c->left_at + CANCEL_MS + 1;
		}
		int timeout = wake > t ? (int)(wake - t) : 0;
		if (timeout > 50)
			timeout = 50; /* the done() predicate may change with time only through us, but be safe */
		int n = poll(p, np, timeout);
		if (n < 0 && errno != EINTR) {
			fail(s, "driver poll: %s", strerror(errno));
			return false;
		}
		for (int i = 0; i < np && n > 0; i++) {
			if (!p[i].revents)
				continue;
			if (what[i] == &s->ctl) {
				on_ctl(s);
			} else if (what[i] == &s->err) {
				char buf[4096];
				ssize_t k = read(s->err, buf, sizeof buf);
				if (k <= 0) {
					close(s->err);
					s->err = -1;
				} else {
					append(&s->errbuf, &s->errlen, &s->errcap, buf, k);
				}
			} else if (what[i] == &s->up_listen) {
				int fd = accept4(s->up_listen, NULL, NULL, SOCK_CLOEXEC);
				for (int k = 0; fd >= 0 && k < 64; k++)
					if (s->up_pending[k] < 0) {
						s->up_pending[k] = fd;
						fd = -1;
					}
				if (fd >= 0)
					close(fd);
			} else if ((int *)what[i] >= s->up_pending && (int *)what[i] < s->up_pending + 64) {
				on_upstream_hello(s, (int)((int *)what[i] - s->up_pending));
			} else {
				struct client *c = NULL;
				for (int k = 0; k < s->ncl && !c; k++)
					if (what[i] == &s->cl[k].fd || what[i] == &s->cl[k].up)
						c = &s->cl[k];
				if (!c)
					continue;
				if (what[i] == &c->fd && c->fd >= 0) {
					on_client_data(s, c);
				} else if (what[i] == &c->up && c->up >= 0) {
					char buf[64];
					if (read(c->up, buf, sizeof buf) <= 0) {
						close(c->up); /* the worker is done with it */
						c->up = -2;
					}
				}
			}
		}
	}
}

/* ---- commands ---------------------------------------------------------- */

static int send_cmd(struct seq *s, const char *fmt, ...)
{
	char line[256];
	int no = ++s->next_no;
	int n = snprintf(line, sizeof line, "%d ", no);
	va_list ap;
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	note(s, "command %.*s", n - 1, line);
	if (write(s->cmd, line, n) != n)
		fail(s, "command pipe: %s", strerror(errno));
	return no;
}

static bool acked(struct seq *s, void *arg)
{
	return s->acked_no >= *(int *)arg || s->ctl < 0;
}

static bool wait_ack(struct seq *s, int no)
{
	s->awaited_no = no;
	s->ack[0] = 0;
	if (pump(s, ACK_MS, acked, &no) && s->acked_no >= no)
		return true;
	fail(s, "hang: the host did not answer command %d within %d ms", no, ACK_MS);
	dump_host_stacks(s);
	return false;
}

static bool is_ready(struct seq *s, void *arg)
{
	return s->gen >= *(int *)arg || s->ctl < 0;
}

/* Waits for the host's generation WANT to say ready (its line may already
 * have come in with the ack of the exec). */
static bool wait_ready(struct seq *s, int want)
{
	if (pump(s, ACK_MS, is_ready, &want) && s->gen >= want)
		return true;
	fail(s, "hang: the host did not start (generation %d) within %d ms", want, ACK_MS);
	dump_host_stacks(s);
	return false;
}

/* ---- actions ----------------------------------------------------------- */

static bool gate(const struct seq *s, unsigned g)
{
	return (s->o->gates & g) != 0;
}

static bool ebpf(const struct seq *s)
{
	return !strcmp(s->mode, "ebpf");
}

static int in_flight(const struct seq *s, bool threads_only)
{
	int n = 0;
	for (int i = 0; i < s->ncl; i++)
		if (!s->cl[i].done && (!threads_only || !strcmp(s->cl[i].via, "thread")))
			n++;
	return n;
}

static int connect_host(struct seq *s)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s->port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
		fail(s, "connect to the host: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void send_request(struct seq *s, struct client *c)
{
	char req[64];
	int n = snprintf(req, sizeof req, "req %d %s\n", c->cid, c->token);
	if (write(c->fd, req, n) != n)
		fail(s, "client %d request: %s", c->cid, strerror(errno));
}

/* Draws a client, connects it, and plays its part before accept: QUEUED
 * clients (connected while the host is stopped) send their request first and
 * either stay or leave before they are accepted. */
static struct client *client_new(struct seq *s, bool queued)
{
	struct torture_rng *g = &s->rng;
	struct client *c = &s->cl[s->ncl];
	*c = (struct client){.cid = s->ncl, .fd = -1, .up = -1, .started_at = now_ms()};

	static const char *const vias[] = {"thread", "thread", "thread", "fork", "setuid", "clone"};
	snprintf(c->via, sizeof c->via, "%s", vias[torture_below(g, 6)]);
	if (!strcmp(c->via, "clone") && !gate(s, GATE_CLONE))
		strcpy(c->via, "fork");
	bool thread = !strcmp(c->via, "thread");
	c->kind = "rps"[torture_below(g, thread ? 3 : 2)];

	unsigned f = torture_below(g, 20);
	c->fate = f < 9 ? STAY : f < 15 ? LEAVE_WAIT : f < 17 ? LEAVE_EARLY : LEAVE_ACCEPTED;
	if (queued && c->fate != STAY)
		c->fate = LEAVE_EARLY;
	if (c->fate == LEAVE_EARLY && ebpf(s) && !gate(s, GATE_EBPF_QUEUED))
		c->fate = LEAVE_ACCEPTED;
	c->rst = torture_below(g, 2);
	c->delay_ms = (int)torture_below(g, 25);

	static const char *const moves[] = {"dup", "dup2", "dup3", "dupfd", "dupfd_cloexec"};
	const char *move = "none";
	if (torture_below(g, 2) && (!ebpf(s) || gate(s, GATE_EBPF_MOVED)))
		move = moves[torture_below(g, 5)];
	const char *where = torture_below(g, 2) ? "worker" : "main";
	if (!strcmp(move, "none") || !gate(s, GATE_MOVE_BOUND))
		where = "main";
	static const char *const ends[] = {"close", "range", "over", "closefrom"};
	const char *end = ends[torture_below(g, thread ? 3 : 4)];
	unsigned mask = torture_below(g, 3) == 0 ? (unsigned)torture_below(g, 1u << TORTURE_MASK_NSIG) : 0;
	c->request_first = queued || c->fate == LEAVE_EARLY || c->fate == LEAVE_ACCEPTED ||
			   torture_below(g, 4);
	snprintf(c->token, sizeof c->token, "t%llx", (unsigned long long)(torture_next(g) & 0xffffffff));
	char cmd[sizeof c->accept_cmd];
	snprintf(cmd, sizeof cmd, "accept %d %s %c %s %s %s %x", c->cid, c->via, c->kind, move,
		 where, end, mask);
	memcpy(c->accept_cmd, cmd, sizeof cmd);

	s->ncl++;
	s->r->clients++;
	if (c->fate == STAY)
		s->r->stayed++;
	else
		s->r->left++;
	note(s, "client %d: %s by %s, via %s, kind %c, move %s at %s, end %s, mask %#x%s", c->cid,
	     fate_name[c->fate], c->rst ? "RST" : "FIN", c->via, c->kind, move, where, end, mask,
	     queued ? ", queued while the host is stopped" : "");

	c->fd = connect_host(s);
	if (c->fd < 0) {
		c->done = true;
		return NULL;
	}
	if (c->request_first)
		send_request(s, c);
	if (c->fate == LEAVE_EARLY) {
		client_leave(s, c);
		c->acted = true;
	}
	return c;
}

/* Has the host accept a client client_new connected, and plays its part
 * after accept. */
static void client_accept(struct seq *s, struct client *c)
{
	if (!wait_ack(s, send_cmd(s, "%s", c->accept_cmd)))
		return;
	if (strstr(s->ack, " none") || strstr(s->ack, " error")) {
		if (c->fate == STAY)
			fail(s, "the host could not accept staying client %d: %s", c->cid, s->ack);
		c->done = true;
		return;
	}
	c->accepted = true;
	if (strstr(s->ack, " pid="))
		s->children++;
	if (!c->request_first)
		send_request(s, c);
	if (c->fate == LEAVE_ACCEPTED) {
		client_leave(s, c);
		c->acted = true;
	}
}

static bool room_for_client(const struct seq *s)
{
	return in_flight(s, false) < MAXINFLIGHT && in_flight(s, true) < 4 && s->ncl < MAXCLIENTS;
}

static void action_client(struct seq *s)
{
	struct client *c = client_new(s, false);
	if (c)
		client_accept(s, c);
}

static bool host_exited(struct seq *s, int *status)
{
	return waitpid(s->host, status, WNOHANG) == s->host;
}

/* Stops the host; clients leave meanwhile (the ones it serves, and new ones
 * that connect, send their request and may leave while queued); continues
 * it and has it accept the new ones. */
static void action_stopcont(struct seq *s)
{
	int ms = 1 + (int)torture_below(&s->rng, 40);
	unsigned queue = torture_below(&s->rng, 4);
	note(s, "SIGSTOP the host for %d ms", ms);
	kill(s->host, SIGSTOP);
	struct client *q[4];
	unsigned nq = 0;
	while (nq < queue && room_for_client(s)) {
		struct client *c = client_new(s, true);
		if (!c)
			break;
		q[nq++] = c;
	}
	pump(s, ms, NULL, NULL); /* clients keep leaving meanwhile */
	note(s, "SIGCONT the host");
	kill(s->host, SIGCONT);
	for (unsigned i = 0; i < nq && !s->r->failed; i++)
		client_accept(s, q[i]);
}

static void action_exec(struct seq *s)
{
	if (in_flight(s, true) > 0)
		return; /* exec kills the serving threads: a host does it when idle */
	int no = send_cmd(s, "exec");
	if (wait_ack(s, no) && !strstr(s->ack, "busy"))
		wait_ready(s, s->gen + 1);
}

static void action_signal(struct seq *s, int sig, const char *cmd)
{
	note(s, "send %s to the host", sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
	kill(s->host, sig);
	wait_ack(s, send_cmd(s, "%s", cmd));
}

static void one_action(struct seq *s)
{
	struct torture_rng *g = &s->rng;
	bool any = gate(s, GATE_CLOSEANY);
	unsigned a = torture_below(g, 100);
	s->r->actions++;
	if (a < 40) {
		if (room_for_client(s))
			action_client(s);
		else
			pump(s, 20, NULL, NULL);
	} else if (a < 45) {
		wait_ack(s, send_cmd(s, "vfork"));
	} else if (a < 49) {
		action_exec(s);
	} else if (a < 57) {
		static const char *const hows[] = {"block", "unblock", "set"};
		wait_ack(s, send_cmd(s, "mask %s %x %s", hows[torture_below(g, 3)],
				     (unsigned)torture_below(g, 1u << TORTURE_MASK_NSIG),
				     torture_below(g, 2) ? "proc" : "pthread"));
	} else if (a < 61) {
		wait_ack(s, send_cmd(s, "dummies %u", 1 + torture_below(g, 6)));
	} else if (a < 65) {
		wait_ack(s, send_cmd(s, "closerange %d", any));
	} else if (a < 68) {
		if (any)
			wait_ack(s, send_cmd(s, "closeany %u", 1 + torture_below(g, 4)));
	} else if (a < 73) {
		wait_ack(s, send_cmd(s, "epoll %d", any));
	} else if (a < 77) {
		wait_ack(s, send_cmd(s, "epcheck"));
	} else if (a < 81) {
		wait_ack(s, send_cmd(s, "sigfd"));
		action_signal(s, SIGUSR1, "sigfdread");
	} else if (a < 85) {
		action_signal(s, SIGUSR2, "sigwait");
	} else if (a < 90) {
		action_stopcont(s);
	} else {
		pump(s, (int)torture_below(g, 30), NULL, NULL);
	}
}

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
	char *const argv[] = {(char *)s->o->host, "--ctl", a_ctl, "--cmd", a_cmd, "--up", a_up, NULL};
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
	if (!s->r->failed && s->r->clients > 0 && (!s->errbuf || !strstr(s->errbuf, active)))
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

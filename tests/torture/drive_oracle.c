/* The driver's event pump and oracle: reads the host's reports, plays the
 * upstream and the clients' timed parts, and checks every report against
 * what the driver knows (drive_sequence.c says what the oracle promises). */
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

const char *const fate_name[] = {"stay", "leave-in-wait", "leave-queued", "leave-accepted"};

uint64_t now_ms(void)
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

void note(struct seq *s, const char *fmt, ...)
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

void fail(struct seq *s, const char *fmt, ...)
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
void dump_host_stacks(struct seq *s)
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

void client_leave(struct seq *s, struct client *c)
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
bool pump(struct seq *s, int ms, bool (*done)(struct seq *, void *), void *arg)
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

int send_cmd(struct seq *s, const char *fmt, ...)
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

bool acked(struct seq *s, void *arg)
{
	return s->acked_no >= *(int *)arg || s->ctl < 0;
}

bool wait_ack(struct seq *s, int no)
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
bool wait_ready(struct seq *s, int want)
{
	if (pump(s, ACK_MS, is_ready, &want) && s->gen >= want)
		return true;
	fail(s, "hang: the host did not start (generation %d) within %d ms", want, ACK_MS);
	dump_host_stacks(s);
	return false;
}


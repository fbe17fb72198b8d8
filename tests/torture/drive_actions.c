/* The actions of a sequence, drawn from its seed: clients (who serves them,
 * how they are moved and ended, whether and when they leave), and what the
 * host does meanwhile (torture.h lists the commands). */
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

/* ---- actions ----------------------------------------------------------- */

static bool gate(const struct seq *s, unsigned g)
{
	return (s->o->gates & g) != 0;
}

static bool ebpf(const struct seq *s)
{
	return !strcmp(s->mode, "ebpf");
}

int in_flight(const struct seq *s, bool threads_only)
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

/* Room for CLIENTS more clients, THREADS more of them on the host's four
 * worker threads. The driver waits for room rather than skip an action, so
 * the actions of a seed never depend on the machine's timing. */
struct room {
	int clients, threads;
};

static bool has_room(struct seq *s, void *arg)
{
	const struct room *r = arg;
	return in_flight(s, false) + r->clients <= MAXINFLIGHT && in_flight(s, true) + r->threads <= 4;
}

static bool wait_room(struct seq *s, int clients, int threads)
{
	struct room r = {clients, threads};
	if (pump(s, SERVE_MS + CANCEL_MS, has_room, &r))
		return true;
	fail(s, "hang: no room for %d more clients: the ones in flight never finish", clients);
	return false;
}

static void action_client(struct seq *s)
{
	if (s->ncl >= MAXCLIENTS || !wait_room(s, 1, 1))
		return;
	struct client *c = client_new(s, false);
	if (c)
		client_accept(s, c);
}

/* Stops the host; clients leave meanwhile (the ones it serves, and new ones
 * that connect, send their request and may leave while queued); continues
 * it and has it accept the new ones. */
static void action_stopcont(struct seq *s)
{
	int ms = 1 + (int)torture_below(&s->rng, 40);
	unsigned queue = torture_below(&s->rng, 4);
	if (queue > (unsigned)(MAXCLIENTS - s->ncl))
		queue = (unsigned)(MAXCLIENTS - s->ncl);
	if (!wait_room(s, (int)queue, (int)queue))
		return;
	note(s, "SIGSTOP the host for %d ms", ms);
	kill(s->host, SIGSTOP);
	struct client *q[4];
	unsigned nq = 0;
	while (nq < queue) {
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
	if (!wait_room(s, 0, 4))
		return; /* exec kills the serving threads: a host does it when they are idle */
	int next_gen = s->gen + 1; /* before the ack: the new image's ready may come with it */
	int no = send_cmd(s, "exec");
	if (wait_ack(s, no) && !strstr(s->ack, "busy"))
		wait_ready(s, next_gen);
}

static void action_signal(struct seq *s, int sig, const char *cmd)
{
	note(s, "send %s to the host", sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
	kill(s->host, sig);
	wait_ack(s, send_cmd(s, "%s", cmd));
}

void one_action(struct seq *s)
{
	struct torture_rng *g = &s->rng;
	bool any = gate(s, GATE_CLOSEANY);
	unsigned a = torture_below(g, 100);
	s->r->actions++;
	if (a < 40) {
		action_client(s);
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


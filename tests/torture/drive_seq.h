/* torture-drive inside one sequence: the state of a sequence and its
 * clients, shared by the event pump and oracle (drive_oracle.c), the
 * actions (drive_actions.c) and the host's life (drive_sequence.c). */
#ifndef CS_TORTURE_DRIVE_SEQ_H
#define CS_TORTURE_DRIVE_SEQ_H

#include "drive.h"
#include "torture.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
extern const char *const fate_name[];

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

/* drive_oracle.c: the log, the event pump, the reports and the oracle */
uint64_t now_ms(void);
void note(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dump_host_stacks(struct seq *s);
void client_leave(struct seq *s, struct client *c);
/* Serves everything (reports, upstream, clients, timers) for up to ms, or
 * until done(s, arg) holds; returns whether it did. */
bool pump(struct seq *s, int ms, bool (*done)(struct seq *, void *), void *arg);
int send_cmd(struct seq *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool acked(struct seq *s, void *arg);         /* arg: the command number */
bool wait_ack(struct seq *s, int no);
bool wait_ready(struct seq *s, int want);     /* the host's generation WANT said ready */
int in_flight(const struct seq *s, bool threads_only);

/* drive_actions.c */
void one_action(struct seq *s);

#endif

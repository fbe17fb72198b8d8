/* cs-torture, the torture suite's host: what its command loop (host_main.c)
 * and its workers (host_serve.c) share. */
#ifndef CS_TORTURE_HOST_H
#define CS_TORTURE_HOST_H

#include "torture.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#define MAXFD 1024
#define MAXJOBS 64

extern int ctl_fd;  /* the control pipe: reports */
extern int up_port; /* the driver's upstream */
extern bool in_child; /* a fork/clone child: no other thread, no locks */

/* One line on the control pipe, in one write() (atomic: < PIPE_BUF). */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The descriptors the host holds (never closed by its range actions);
 * take the lock around creating or closing one. */
void live_lock(void);
void live_unlock(void);
void live_set(int fd, bool on);
bool is_live(int fd);

/* A client to serve. */
struct job {
	int cid;
	int fd;      /* the client */
	char kind;   /* r p s */
	char move[16], where[8], end[12];
	unsigned mask;
	int pair;    /* kind s: the worker's end of the socketpair */
};

sigset_t mask_of(unsigned bits); /* bits of torture_mask_signal() */
int move_client(int fd, const char *how); /* returns the client's new descriptor */
/* One line; its length, 0 at EOF before a newline, -1 on error. */
ssize_t read_line(int fd, char *buf, size_t size, bool use_recv);
void serve(struct job *j);

void pool_start(int n);
void pool_submit(const struct job *j);
int pool_wait_idle(int ms); /* returns how many jobs are still queued or served */

#endif

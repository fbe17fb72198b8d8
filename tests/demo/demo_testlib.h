/* What the demo tests share: child processes whose output we read with
 * deadlines, and a one-request HTTP client. */
#ifndef DEMO_TESTLIB_H
#define DEMO_TESTLIB_H

#include <stddef.h>
#include <sys/types.h>

struct proc {
	pid_t pid;	/* 0 once reaped */
	int status;	/* wait status once reaped */
	int out;	/* its stdout and stderr, together */
	char buf[65536];	/* everything read so far, NUL-terminated */
	size_t len;
};

/* Start argv[0] (a path) with envp (NULL: ours); it dies with the test. */
void proc_start(struct proc *p, char *const argv[], char *const envp[]);

/* Read its output until `needle` appears: 1, or 0 at EOF or deadline. */
int proc_read_until(struct proc *p, const char *needle, int timeout_ms);

/* Read to EOF and reap it: its exit status, 128+signal, or -1 on timeout. */
int proc_wait(struct proc *p, int timeout_ms);

/* SIGKILL and reap, if still running. */
void proc_kill(struct proc *p);

/* Start $CS_BUILD_ROOT/tools/cancelshim-demo-server ARG1 ARG2 and return
 * the port of its "listening on" line. */
int start_demo_server(struct proc *p, const char *arg1, const char *arg2);

/* GET target from 127.0.0.1:port. The status code (or -1); the body into
 * body. */
int http_get(int port, const char *target, char *body, size_t size);

/* Connect to 127.0.0.1:port, or -1 with errno. */
int connect_port(int port);

double now_ms(void);

#endif

/* The demo's process supervisor: starts the storage service and the two
 * servers, waits until each listens, keeps their stderr, stops and reaps
 * them on every path out (demo_child.c). */
#ifndef CS_DEMO_CHILD_H
#define CS_DEMO_CHILD_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

struct child {
	const char *name;
	pid_t pid;	/* 0 once reaped */
	int status;	/* wait status, valid once pid == 0 */
	int out_fd;	/* its stdout: the "listening on" line */
	int log_fd;	/* its stderr: a memfd */
	int port;
	int failed;	/* died or never got ready: show its stderr */
};

/* Set by the demo's signal handler: every wait gives up. */
extern volatile sig_atomic_t demo_interrupted;

/* cancelshim-demo-server, installed (and built) next to cancelctl: 0 if
 * out names an executable. */
int child_find_server(char *out, size_t size);

/* Our environment without any preload or shim setting, plus add (NULL-
 * terminated); keep_shim_vars keeps the user's other CANCELSHIM_* settings. */
char **child_env(int keep_shim_vars, char *const add[]);

int child_spawn(struct child *c, char *const argv[], char *const envp[]);

/* Reaps c if it has exited: 1 if it is gone. */
int child_gone(struct child *c);
void child_describe_exit(struct child *c);

/* The child's stderr so far (its last max bytes), each line indented. */
void child_show_log(const struct child *c, size_t max, FILE *out);

/* Finds needle in the child's stderr; copies the rest of that line to out. */
int child_find_in_log(const struct child *c, const char *needle, char *out, size_t size);

/* SIGTERM, then SIGKILL after a second; closes its pipes. */
void child_stop(struct child *c);

/* Waits for "listening on 127.0.0.1:PORT" on its stdout, then checks that
 * the port accepts a connection. */
int child_wait_listening(struct child *c);

#endif

/* cs-probe: a program run UNDER the shim by the tests in this directory.
 * Each scenario sets up real sockets and threads inside one process (the
 * "client" side is a connect()ed socket, never accepted, so the shim does not
 * treat it as a client connection), exercises the shim, and prints facts as
 * "key=value" lines for the test to assert on. */
#ifndef CS_PROBE_H
#define CS_PROBE_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct endpoint {
	int family;			/* AF_INET, AF_INET6, AF_UNIX */
	struct sockaddr_storage addr;
	socklen_t len;
};

/* "v4", "v6" or "unix" -> a listening socket on loopback (or a fresh path). */
int probe_listen(const char *family, struct endpoint *ep);
int probe_connect(const struct endpoint *ep);
/* Closes with FIN (rst == 0) or RST (SO_LINGER 0). */
void probe_close_peer(int fd, int rst);
int64_t probe_now_ns(void);
pid_t probe_gettid(void);
/* Waits (bounded) until thread tid of process pid sleeps in a system call other than futex. */
int probe_wait_blocked(pid_t pid, pid_t tid, int timeout_ms);
/* printf to stdout, one line, flushed. */
void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void die(const char *what) __attribute__((noreturn));

int scenario_cancel(int argc, char **argv);
int scenario_loop(int argc, char **argv);
int scenario_inert(int argc, char **argv);
int scenario_late(int argc, char **argv);
int scenario_fork(int argc, char **argv);
int scenario_race(int argc, char **argv);
int scenario_churn(int argc, char **argv);
int scenario_spawn(int argc, char **argv);
int scenario_errno(int argc, char **argv);
int scenario_host(int argc, char **argv);
int scenario_backlog(int argc, char **argv);
int scenario_pool(int argc, char **argv);
int scenario_deepown(int argc, char **argv);
int scenario_kcancel(int argc, char **argv);
/* probe_deepbind.c: calls from a library loaded with RTLD_DEEPBIND. */
void probe_deep_load(void);
int probe_deep_call(const char *call, int fd);

#endif

/* Settings of the shim, read from CANCELSHIM_* environment variables once at
 * load. Parsing is pure (no globals) so the unit tests can drive it. */
#ifndef CS_CONFIG_H
#define CS_CONFIG_H

#include <stddef.h>

#include "ports.h"

enum cs_mode { CS_MODE_AUTO, CS_MODE_EPOLL, CS_MODE_EBPF, CS_MODE_OFF };
enum cs_on { CS_ON_FIN, CS_ON_RST };
enum cs_log_level { CS_LOG_ERROR, CS_LOG_WARN, CS_LOG_INFO, CS_LOG_DEBUG };
/* CANCELSHIM_ACTION: cancel, or only count (and log at info) the cancels
 * that would have happened, failing no call and signalling no thread. */
enum cs_action { CS_ACTION_CANCEL, CS_ACTION_OBSERVE };
/* CANCELSHIM_PROFILE: the cancel action for work that never blocks (a
 * thread computing, outside any call the shim can fail), known safe per
 * server (profile.h). auto: chosen by program; none: no such action. */
enum cs_profile { CS_PROFILE_AUTO, CS_PROFILE_NONE, CS_PROFILE_POSTGRESQL };
/* CANCELSHIM_KCANCEL: in mode ebpf, may the eBPF program cancel threads
 * itself (auto: where it can) or only report to the watcher thread (off)? */
enum cs_kcancel { CS_KCANCEL_AUTO, CS_KCANCEL_OFF };

/* Call classes (CANCELSHIM_CALLS): what a cancelled thread may have failed. */
enum cs_class {
	CS_CLASS_NET  = 1 << 0,	/* socket I/O and connect, other than the client's own socket */
	CS_CLASS_WAIT = 1 << 1,	/* poll/select/epoll waits, sleeps, eventfd-like objects */
	CS_CLASS_FILE = 1 << 2,	/* regular files and block devices */
	CS_CLASS_PIPE = 1 << 3,	/* pipes, FIFOs, terminals and other character devices */
};
#define CS_CLASS_DEFAULT (CS_CLASS_NET | CS_CLASS_WAIT)
#define CS_CLASS_ALL (CS_CLASS_NET | CS_CLASS_WAIT | CS_CLASS_FILE | CS_CLASS_PIPE)

struct cs_config {
	enum cs_mode mode;
	enum cs_on on;
	unsigned calls;		/* enum cs_class bits */
	int signo;
	enum cs_log_level log;
	enum cs_action action;
	struct cs_ports ports;	/* CANCELSHIM_PORTS (ports.h) */
	enum cs_profile profile;
	enum cs_kcancel kcancel;
};

/* The defaults, as documented in the README. */
void cs_config_defaults(struct cs_config *c);

/* Each parser returns 0 and sets *out, or -1 with a message naming the
 * variable and the accepted values in err. */
int cs_parse_mode(const char *s, enum cs_mode *out, char *err, size_t errlen);
int cs_parse_on(const char *s, enum cs_on *out, char *err, size_t errlen);
int cs_parse_calls(const char *s, unsigned *out, char *err, size_t errlen);
int cs_parse_signal(const char *s, int *out, char *err, size_t errlen);
int cs_parse_log(const char *s, enum cs_log_level *out, char *err, size_t errlen);
int cs_parse_action(const char *s, enum cs_action *out, char *err, size_t errlen);
int cs_parse_profile(const char *s, enum cs_profile *out, char *err, size_t errlen);
int cs_parse_kcancel(const char *s, enum cs_kcancel *out, char *err, size_t errlen);

/* Reads every CANCELSHIM_* variable through getenv_fn (getenv, or a test's
 * table). Stops at the first bad value: returns -1 with the message in err,
 * leaving the other fields at their defaults. An unset or empty variable
 * keeps its default. */
int cs_config_load(struct cs_config *c, const char *(*getenv_fn)(const char *),
		   char *err, size_t errlen);

const char *cs_mode_name(enum cs_mode m);
const char *cs_on_name(enum cs_on on);
const char *cs_log_name(enum cs_log_level l);
const char *cs_action_name(enum cs_action a);
const char *cs_profile_name(enum cs_profile p);
const char *cs_kcancel_name(enum cs_kcancel k);
/* "net,wait" */
void cs_calls_format(unsigned calls, char *buf, size_t len);
/* "SIGRTMAX-1", "SIGUSR1" or the number */
void cs_signal_format(int signo, char *buf, size_t len);

#endif

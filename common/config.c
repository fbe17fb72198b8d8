/* Parsing of the CANCELSHIM_* settings. Every error names the variable and
 * lists what it accepts, because the operator reading it has no other
 * documentation at hand. */
#include "config.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_SIGNAL_FROM_RTMAX 1

void cs_config_defaults(struct cs_config *c)
{
	c->mode = CS_MODE_AUTO;
	c->on = CS_ON_FIN;
	c->calls = CS_CLASS_DEFAULT;
	c->signo = SIGRTMAX - DEFAULT_SIGNAL_FROM_RTMAX;
	c->log = CS_LOG_WARN;
	c->action = CS_ACTION_CANCEL;
	memset(&c->ports, 0, sizeof c->ports);	/* every listener */
	c->profile = CS_PROFILE_AUTO;
	c->kcancel = CS_KCANCEL_AUTO;
}

struct name_value {
	const char *name;
	int value;
};

static int lookup(const struct name_value *table, const char *s, int *out)
{
	for (; table->name; table++)
		if (!strcasecmp(table->name, s)) {
			*out = table->value;
			return 0;
		}
	return -1;
}

static const struct name_value modes[] = {
	{ "auto", CS_MODE_AUTO }, { "epoll", CS_MODE_EPOLL },
	{ "ebpf", CS_MODE_EBPF }, { "off", CS_MODE_OFF }, { 0, 0 },
};
static const struct name_value ons[] = {
	{ "fin", CS_ON_FIN }, { "rst", CS_ON_RST }, { 0, 0 },
};
static const struct name_value logs[] = {
	{ "error", CS_LOG_ERROR }, { "warn", CS_LOG_WARN },
	{ "info", CS_LOG_INFO }, { "debug", CS_LOG_DEBUG }, { 0, 0 },
};
static const struct name_value actions[] = {
	{ "cancel", CS_ACTION_CANCEL }, { "observe", CS_ACTION_OBSERVE }, { 0, 0 },
};
static const struct name_value kcancels[] = {
	{ "auto", CS_KCANCEL_AUTO }, { "off", CS_KCANCEL_OFF }, { 0, 0 },
};
static const struct name_value profiles[] = {
	{ "auto", CS_PROFILE_AUTO }, { "none", CS_PROFILE_NONE },
	{ "postgresql", CS_PROFILE_POSTGRESQL }, { 0, 0 },
};
static const struct name_value classes[] = {
	{ "net", CS_CLASS_NET }, { "wait", CS_CLASS_WAIT },
	{ "file", CS_CLASS_FILE }, { "pipe", CS_CLASS_PIPE }, { 0, 0 },
};

int cs_parse_mode(const char *s, enum cs_mode *out, char *err, size_t errlen)
{
	int v;
	if (lookup(modes, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_MODE='%s' is not valid; accepted values: auto, epoll, ebpf, off", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_on(const char *s, enum cs_on *out, char *err, size_t errlen)
{
	int v;
	if (lookup(ons, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_ON='%s' is not valid; accepted values: fin (FIN or RST), rst (RST only)", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_log(const char *s, enum cs_log_level *out, char *err, size_t errlen)
{
	int v;
	if (lookup(logs, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_LOG='%s' is not valid; accepted values: error, warn, info, debug", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_action(const char *s, enum cs_action *out, char *err, size_t errlen)
{
	int v;
	if (lookup(actions, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_ACTION='%s' is not valid; accepted values: cancel, "
			 "observe (count and log the cancels that would happen, fail nothing)", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_kcancel(const char *s, enum cs_kcancel *out, char *err, size_t errlen)
{
	int v;
	if (lookup(kcancels, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_KCANCEL='%s' is not valid; accepted values: auto (in mode ebpf the "
			 "kernel cancels where it can), off (the watcher thread always does)", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_profile(const char *s, enum cs_profile *out, char *err, size_t errlen)
{
	int v;
	if (lookup(profiles, s, &v) < 0) {
		snprintf(err, errlen, "CANCELSHIM_PROFILE='%s' is not valid; accepted values: auto (chosen by "
			 "program), none, postgresql", s);
		return -1;
	}
	*out = v;
	return 0;
}

int cs_parse_calls(const char *s, unsigned *out, char *err, size_t errlen)
{
	static const char accepted[] = "accepted values: a comma list of net, wait, file, pipe, or all";
	char word[16];
	unsigned calls = 0;
	const char *p = s;

	if (!strcasecmp(s, "all")) {
		*out = CS_CLASS_ALL;
		return 0;
	}
	for (;;) {
		size_t n = strcspn(p, ",");
		int v;
		while (n && isspace((unsigned char)*p)) p++, n--;
		while (n && isspace((unsigned char)p[n - 1])) n--;
		if (n == 0 || n >= sizeof word)
			goto bad;
		memcpy(word, p, n);
		word[n] = 0;
		if (lookup(classes, word, &v) < 0)
			goto bad;
		calls |= v;
		p += strcspn(p, ",");
		if (!*p)
			break;
		p++;
	}
	*out = calls;
	return 0;
bad:
	snprintf(err, errlen, "CANCELSHIM_CALLS='%s' is not valid; %s", s, accepted);
	return -1;
}

/* A whole decimal number in [0, 1000), or -1. */
static int small_number(const char *s)
{
	char *end;
	long v;
	if (!isdigit((unsigned char)*s))
		return -1;
	v = strtol(s, &end, 10);
	return (*end || v >= 1000) ? -1 : (int)v;
}

int cs_parse_signal(const char *s, int *out, char *err, size_t errlen)
{
	const char *p = s;
	int signo = -1, n;

	if (!strncasecmp(p, "SIG", 3))
		p += 3;
	if (!strcasecmp(p, "USR1")) {
		signo = SIGUSR1;
	} else if (!strcasecmp(p, "USR2")) {
		signo = SIGUSR2;
	} else if (!strncasecmp(p, "RTMIN", 5)) {
		n = p[5] == 0 ? 0 : (p[5] == '+' ? small_number(p + 6) : -1);
		if (n >= 0)
			signo = SIGRTMIN + n;
	} else if (!strncasecmp(p, "RTMAX", 5)) {
		n = p[5] == 0 ? 0 : (p[5] == '-' ? small_number(p + 6) : -1);
		if (n >= 0)
			signo = SIGRTMAX - n;
	} else if (p == s) {
		signo = small_number(s);
		if (signo != SIGUSR1 && signo != SIGUSR2 && signo < SIGRTMIN)
			signo = -1;
	}
	if (signo < 0 || signo > SIGRTMAX ||
	    (signo != SIGUSR1 && signo != SIGUSR2 && signo < SIGRTMIN)) {
		snprintf(err, errlen,
			 "CANCELSHIM_SIGNAL='%s' is not valid; accepted values: SIGUSR1, SIGUSR2, "
			 "SIGRTMIN+N or SIGRTMAX-N (real-time signals %d..%d), or their numbers",
			 s, SIGRTMIN, SIGRTMAX);
		return -1;
	}
	*out = signo;
	return 0;
}

int cs_config_load(struct cs_config *c, const char *(*getenv_fn)(const char *),
		   char *err, size_t errlen)
{
	const char *v;

	cs_config_defaults(c);
#define FIELD(var, parse, field)                                        \
	if ((v = getenv_fn(var)) && *v && parse(v, &c->field, err, errlen) < 0) \
		return -1;
	FIELD("CANCELSHIM_LOG", cs_parse_log, log)
	FIELD("CANCELSHIM_MODE", cs_parse_mode, mode)
	FIELD("CANCELSHIM_ON", cs_parse_on, on)
	FIELD("CANCELSHIM_CALLS", cs_parse_calls, calls)
	FIELD("CANCELSHIM_SIGNAL", cs_parse_signal, signo)
	FIELD("CANCELSHIM_ACTION", cs_parse_action, action)
	FIELD("CANCELSHIM_PORTS", cs_parse_ports, ports)
	FIELD("CANCELSHIM_PROFILE", cs_parse_profile, profile)
	FIELD("CANCELSHIM_KCANCEL", cs_parse_kcancel, kcancel)
#undef FIELD
	return 0;
}

const char *cs_mode_name(enum cs_mode m)
{
	return m == CS_MODE_AUTO ? "auto" : m == CS_MODE_EPOLL ? "epoll" : m == CS_MODE_EBPF ? "ebpf" : "off";
}

const char *cs_on_name(enum cs_on on)
{
	return on == CS_ON_RST ? "rst" : "fin";
}

const char *cs_log_name(enum cs_log_level l)
{
	return l == CS_LOG_ERROR ? "error" : l == CS_LOG_WARN ? "warn" : l == CS_LOG_INFO ? "info" : "debug";
}

const char *cs_kcancel_name(enum cs_kcancel k)
{
	return k == CS_KCANCEL_OFF ? "off" : "auto";
}

const char *cs_action_name(enum cs_action a)
{
	return a == CS_ACTION_OBSERVE ? "observe" : "cancel";
}

const char *cs_profile_name(enum cs_profile p)
{
	return p == CS_PROFILE_NONE ? "none" : p == CS_PROFILE_POSTGRESQL ? "postgresql" : "auto";
}

void cs_calls_format(unsigned calls, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = 0;
	for (const struct name_value *c = classes; c->name; c++)
		if (calls & c->value)
			used += snprintf(buf + used, used < len ? len - used : 0, "%s%s",
					 used ? "," : "", c->name);
	if (!used)
		snprintf(buf, len, "none");
}

void cs_signal_format(int signo, char *buf, size_t len)
{
	if (signo == SIGUSR1)
		snprintf(buf, len, "SIGUSR1");
	else if (signo == SIGUSR2)
		snprintf(buf, len, "SIGUSR2");
	else if (signo >= SIGRTMIN && signo <= SIGRTMAX)
		snprintf(buf, len, "SIGRTMAX-%d", SIGRTMAX - signo);
	else
		snprintf(buf, len, "%d", signo);
}

/* The CANCELSHIM_* settings: each parser, the loader with a fake
 * environment, and the formatters used in the start-up line. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

static char err[512];

/* An error names the variable, quotes the bad value and lists what is
 * accepted: the operator has nothing else to go on. */
static void assert_error(const char *var, const char *value, const char *const accepted[])
{
	char quoted[128];

	cr_assert(strstr(err, var), "error does not name %s: %s", var, err);
	snprintf(quoted, sizeof quoted, "'%s'", value);
	cr_assert(strstr(err, quoted), "error does not quote %s: %s", quoted, err);
	for (; *accepted; accepted++)
		cr_assert(strstr(err, *accepted), "error does not list '%s': %s", *accepted, err);
}

/* ---- defaults ------------------------------------------------------------ */

Test(config, defaults_are_the_documented_ones)
{
	struct cs_config c;
	memset(&c, 0xa5, sizeof c);
	cs_config_defaults(&c);
	cr_assert_eq(c.mode, CS_MODE_AUTO);
	cr_assert_eq(c.on, CS_ON_FIN);
	cr_assert_eq(c.calls, CS_CLASS_NET | CS_CLASS_WAIT);
	cr_assert_eq(c.signo, SIGRTMAX - 1);
	cr_assert_eq(c.log, CS_LOG_WARN);
}

/* ---- mode, on, log ------------------------------------------------------- */

Test(config, mode_accepts_each_name_in_any_case)
{
	static const struct { const char *s; enum cs_mode m; } good[] = {
		{ "auto", CS_MODE_AUTO }, { "epoll", CS_MODE_EPOLL }, { "ebpf", CS_MODE_EBPF },
		{ "off", CS_MODE_OFF }, { "AUTO", CS_MODE_AUTO }, { "ePoll", CS_MODE_EPOLL },
		{ "EBPF", CS_MODE_EBPF }, { "Off", CS_MODE_OFF },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		enum cs_mode m = (enum cs_mode)-1;
		cr_assert_eq(cs_parse_mode(good[i].s, &m, err, sizeof err), 0, "'%s': %s", good[i].s, err);
		cr_assert_eq(m, good[i].m, "'%s'", good[i].s);
	}
}

Test(config, mode_rejects_others_naming_the_variable)
{
	static const char *const bad[] = { "", "bpf", "epoll ", "on", "autox", "1" };
	static const char *const accepted[] = { "auto", "epoll", "ebpf", "off", NULL };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum cs_mode m = CS_MODE_EBPF;
		err[0] = 0;
		cr_assert_eq(cs_parse_mode(bad[i], &m, err, sizeof err), -1, "'%s' accepted", bad[i]);
		cr_assert_eq(m, CS_MODE_EBPF, "'%s' changed the output", bad[i]);
		assert_error("CANCELSHIM_MODE", bad[i], accepted);
	}
}

Test(config, on_accepts_fin_and_rst)
{
	enum cs_on on = CS_ON_RST;
	cr_assert_eq(cs_parse_on("fin", &on, err, sizeof err), 0);
	cr_assert_eq(on, CS_ON_FIN);
	cr_assert_eq(cs_parse_on("RST", &on, err, sizeof err), 0);
	cr_assert_eq(on, CS_ON_RST);
	cr_assert_eq(cs_parse_on("Fin", &on, err, sizeof err), 0);
	cr_assert_eq(on, CS_ON_FIN);
}

Test(config, on_rejects_others_naming_the_variable)
{
	static const char *const bad[] = { "", "fin,rst", "reset", "close", "finrst" };
	static const char *const accepted[] = { "fin", "rst", NULL };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum cs_on on = CS_ON_RST;
		cr_assert_eq(cs_parse_on(bad[i], &on, err, sizeof err), -1, "'%s' accepted", bad[i]);
		cr_assert_eq(on, CS_ON_RST);
		assert_error("CANCELSHIM_ON", bad[i], accepted);
	}
}

Test(config, log_accepts_each_level_in_any_case)
{
	static const struct { const char *s; enum cs_log_level l; } good[] = {
		{ "error", CS_LOG_ERROR }, { "warn", CS_LOG_WARN }, { "info", CS_LOG_INFO },
		{ "debug", CS_LOG_DEBUG }, { "DEBUG", CS_LOG_DEBUG }, { "Warn", CS_LOG_WARN },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		enum cs_log_level l = (enum cs_log_level)-1;
		cr_assert_eq(cs_parse_log(good[i].s, &l, err, sizeof err), 0, "'%s': %s", good[i].s, err);
		cr_assert_eq(l, good[i].l, "'%s'", good[i].s);
	}
}

Test(config, log_rejects_others_naming_the_variable)
{
	static const char *const bad[] = { "", "warning", "trace", "3", "info debug" };
	static const char *const accepted[] = { "error", "warn", "info", "debug", NULL };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		enum cs_log_level l = CS_LOG_INFO;
		cr_assert_eq(cs_parse_log(bad[i], &l, err, sizeof err), -1, "'%s' accepted", bad[i]);
		cr_assert_eq(l, CS_LOG_INFO);
		assert_error("CANCELSHIM_LOG", bad[i], accepted);
	}
}

/* ---- calls --------------------------------------------------------------- */

Test(config, calls_accepts_lists_with_case_and_spaces)
{
	static const struct { const char *s; unsigned calls; } good[] = {
		{ "net", CS_CLASS_NET },
		{ "wait", CS_CLASS_WAIT },
		{ "file", CS_CLASS_FILE },
		{ "pipe", CS_CLASS_PIPE },
		{ "net,wait", CS_CLASS_NET | CS_CLASS_WAIT },
		{ "NET,Wait,FILE", CS_CLASS_NET | CS_CLASS_WAIT | CS_CLASS_FILE },
		{ " net , pipe ", CS_CLASS_NET | CS_CLASS_PIPE },
		{ "\tfile,\twait\t", CS_CLASS_FILE | CS_CLASS_WAIT },
		{ "net,net", CS_CLASS_NET },
		{ "pipe,file,wait,net", CS_CLASS_ALL },
		{ "all", CS_CLASS_ALL },
		{ "ALL", CS_CLASS_ALL },
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		unsigned calls = 0xdead;
		cr_assert_eq(cs_parse_calls(good[i].s, &calls, err, sizeof err), 0, "'%s': %s", good[i].s, err);
		cr_assert_eq(calls, good[i].calls, "'%s' gave %#x", good[i].s, calls);
	}
}

Test(config, calls_rejects_others_naming_the_variable)
{
	static const char *const bad[] = {
		"", ",", "net,", ",net", "net,,wait", "disk", "net;wait", "net wait",
		"all,net", "networkingclass", " ", "net,  ,wait",
	};
	static const char *const accepted[] = { "net", "wait", "file", "pipe", "all", NULL };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned calls = 0xdead;
		cr_assert_eq(cs_parse_calls(bad[i], &calls, err, sizeof err), -1, "'%s' accepted (%#x)", bad[i], calls);
		cr_assert_eq(calls, 0xdead, "'%s' changed the output", bad[i]);
		assert_error("CANCELSHIM_CALLS", bad[i], accepted);
	}
}

/* ---- signal -------------------------------------------------------------- */

Test(config, signal_accepts_names_offsets_and_numbers)
{
	const struct { const char *s; int signo; } good[] = {
		{ "SIGUSR1", SIGUSR1 }, { "SIGUSR2", SIGUSR2 }, { "USR1", SIGUSR1 }, { "usr2", SIGUSR2 },
		{ "sigusr1", SIGUSR1 },
		{ "SIGRTMIN", SIGRTMIN }, { "RTMIN", SIGRTMIN }, { "SIGRTMIN+0", SIGRTMIN },
		{ "SIGRTMIN+3", SIGRTMIN + 3 }, { "sigrtmin+5", SIGRTMIN + 5 },
		{ "SIGRTMAX", SIGRTMAX }, { "SIGRTMAX-1", SIGRTMAX - 1 }, { "RTMAX-2", SIGRTMAX - 2 },
		{ "SIGRTMAX-0", SIGRTMAX },
		{ "10", SIGUSR1 }, { "12", SIGUSR2 },
	};
	char num[16];
	int signo;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		signo = -1;
		cr_assert_eq(cs_parse_signal(good[i].s, &signo, err, sizeof err), 0, "'%s': %s", good[i].s, err);
		cr_assert_eq(signo, good[i].signo, "'%s' gave %d", good[i].s, signo);
	}
	/* The whole real-time range, both ways and by number. */
	for (int n = 0; n <= SIGRTMAX - SIGRTMIN; n++) {
		char s[32];
		snprintf(s, sizeof s, "SIGRTMIN+%d", n);
		cr_assert_eq(cs_parse_signal(s, &signo, err, sizeof err), 0, "'%s': %s", s, err);
		cr_assert_eq(signo, SIGRTMIN + n);
		snprintf(s, sizeof s, "SIGRTMAX-%d", n);
		cr_assert_eq(cs_parse_signal(s, &signo, err, sizeof err), 0, "'%s': %s", s, err);
		cr_assert_eq(signo, SIGRTMAX - n);
		snprintf(num, sizeof num, "%d", SIGRTMIN + n);
		cr_assert_eq(cs_parse_signal(num, &signo, err, sizeof err), 0, "'%s': %s", num, err);
		cr_assert_eq(signo, SIGRTMIN + n);
	}
}

Test(config, signal_rejects_others_naming_the_variable)
{
	char beyond_max[32], below_min[32], num_low[16], num_high[16];
	snprintf(beyond_max, sizeof beyond_max, "SIGRTMIN+%d", SIGRTMAX - SIGRTMIN + 1);
	snprintf(below_min, sizeof below_min, "SIGRTMAX-%d", SIGRTMAX - SIGRTMIN + 1);
	snprintf(num_low, sizeof num_low, "%d", SIGRTMIN - 1);	/* glibc's own */
	snprintf(num_high, sizeof num_high, "%d", SIGRTMAX + 1);
	const char *const bad[] = {
		"", "SIG", "SIGTERM", "TERM", "SIGKILL", "9", "15", "0", "-1", "SIGINT",
		"SIGRTMIN+", "SIGRTMIN-1", "SIGRTMAX+1", "SIGRTMAX-", "SIGRTMIN+x", "SIGRTMIN+-1",
		"SIGRTMIN+1000", "SIG10", " 10", "10 ", "SIGUSR3", "USR", "RTMIN1", "64x",
		beyond_max, below_min, num_low, num_high,
	};
	static const char *const accepted[] = { "SIGUSR1", "SIGUSR2", "SIGRTMIN+N", "SIGRTMAX-N", NULL };

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int signo = 777;
		cr_assert_eq(cs_parse_signal(bad[i], &signo, err, sizeof err), -1, "'%s' accepted (%d)", bad[i], signo);
		cr_assert_eq(signo, 777, "'%s' changed the output", bad[i]);
		assert_error("CANCELSHIM_SIGNAL", bad[i], accepted);
	}
}

Test(config, signal_error_states_the_real_time_range)
{
	char range[32];
	int signo;
	cr_assert_eq(cs_parse_signal("SIGHUP", &signo, err, sizeof err), -1);
	snprintf(range, sizeof range, "%d..%d", SIGRTMIN, SIGRTMAX);
	cr_assert(strstr(err, range), "no range %s in: %s", range, err);
}

Test(config, errors_fit_a_small_buffer)
{
	char small[16];
	unsigned calls;
	int signo;

	memset(small, 'x', sizeof small);
	cr_assert_eq(cs_parse_calls("bogus", &calls, small, sizeof small), -1);
	cr_assert_eq(strlen(small), sizeof small - 1);
	cr_assert_eq(strncmp(small, "CANCELSHIM_CALL", 15), 0);
	memset(small, 'x', sizeof small);
	cr_assert_eq(cs_parse_signal("bogus", &signo, small, sizeof small), -1);
	cr_assert_eq(strlen(small), sizeof small - 1);
}

/* ---- the loader ---------------------------------------------------------- */

/* A fake environment: NULL-terminated name/value pairs. */
static const char *const *fake_env;

static const char *fake_getenv(const char *name)
{
	for (const char *const *p = fake_env; p && *p; p += 2)
		if (!strcmp(p[0], name))
			return p[1];
	return NULL;
}

static int load(const char *const *env, struct cs_config *c)
{
	fake_env = env;
	err[0] = 0;
	memset(c, 0x5a, sizeof *c);
	return cs_config_load(c, fake_getenv, err, sizeof err);
}

static void assert_defaults(const struct cs_config *c)
{
	struct cs_config d;
	cs_config_defaults(&d);
	cr_assert_eq(c->mode, d.mode);
	cr_assert_eq(c->on, d.on);
	cr_assert_eq(c->calls, d.calls);
	cr_assert_eq(c->signo, d.signo);
	cr_assert_eq(c->log, d.log);
}

Test(config, load_unset_gives_defaults)
{
	static const char *const env[] = { "CANCELSHIM_OTHER", "x", "MODE", "off", NULL };
	struct cs_config c;
	cr_assert_eq(load(env, &c), 0, "%s", err);
	assert_defaults(&c);
}

Test(config, load_empty_values_keep_defaults)
{
	static const char *const env[] = {
		"CANCELSHIM_MODE", "", "CANCELSHIM_ON", "", "CANCELSHIM_CALLS", "",
		"CANCELSHIM_SIGNAL", "", "CANCELSHIM_LOG", "", NULL,
	};
	struct cs_config c;
	cr_assert_eq(load(env, &c), 0, "%s", err);
	assert_defaults(&c);
}

Test(config, load_reads_every_variable)
{
	static const char *const env[] = {
		"CANCELSHIM_MODE", "EPOLL", "CANCELSHIM_ON", "rst", "CANCELSHIM_CALLS", "wait, file",
		"CANCELSHIM_SIGNAL", "SIGUSR2", "CANCELSHIM_LOG", "debug", NULL,
	};
	struct cs_config c;
	cr_assert_eq(load(env, &c), 0, "%s", err);
	cr_assert_eq(c.mode, CS_MODE_EPOLL);
	cr_assert_eq(c.on, CS_ON_RST);
	cr_assert_eq(c.calls, CS_CLASS_WAIT | CS_CLASS_FILE);
	cr_assert_eq(c.signo, SIGUSR2);
	cr_assert_eq(c.log, CS_LOG_DEBUG);
}

Test(config, load_one_variable_leaves_the_others_at_defaults)
{
	static const char *const env[] = { "CANCELSHIM_SIGNAL", "SIGRTMIN+2", NULL };
	struct cs_config c, d;
	cr_assert_eq(load(env, &c), 0, "%s", err);
	cs_config_defaults(&d);
	cr_assert_eq(c.signo, SIGRTMIN + 2);
	cr_assert_eq(c.mode, d.mode);
	cr_assert_eq(c.on, d.on);
	cr_assert_eq(c.calls, d.calls);
	cr_assert_eq(c.log, d.log);
}

Test(config, load_reports_a_bad_value)
{
	static const char *const env[] = { "CANCELSHIM_MODE", "auto", "CANCELSHIM_ON", "both", NULL };
	static const char *const accepted[] = { "fin", "rst", NULL };
	struct cs_config c;
	cr_assert_eq(load(env, &c), -1);
	assert_error("CANCELSHIM_ON", "both", accepted);
	/* What follows the bad value is not read: defaults. */
	cr_assert_eq(c.calls, CS_CLASS_DEFAULT);
	cr_assert_eq(c.signo, SIGRTMAX - 1);
}

Test(config, load_reports_only_the_first_bad_value)
{
	/* Read in a fixed order (LOG first, so the error itself is printed at
	 * the level asked for): of several bad values the earliest is named. */
	static const char *const env[] = {
		"CANCELSHIM_SIGNAL", "SIGTERM", "CANCELSHIM_CALLS", "disk", "CANCELSHIM_MODE", "fast", NULL,
	};
	struct cs_config c;
	cr_assert_eq(load(env, &c), -1);
	cr_assert(strstr(err, "CANCELSHIM_MODE='fast'"), "%s", err);
	cr_assert_null(strstr(err, "CANCELSHIM_CALLS"), "%s", err);
	cr_assert_null(strstr(err, "CANCELSHIM_SIGNAL"), "%s", err);

	static const char *const env2[] = { "CANCELSHIM_SIGNAL", "SIGTERM", "CANCELSHIM_CALLS", "disk", NULL };
	cr_assert_eq(load(env2, &c), -1);
	cr_assert(strstr(err, "CANCELSHIM_CALLS='disk'"), "%s", err);
	cr_assert_null(strstr(err, "CANCELSHIM_SIGNAL"), "%s", err);
}

Test(config, load_bad_log_keeps_the_default_level)
{
	static const char *const env[] = { "CANCELSHIM_LOG", "loud", "CANCELSHIM_MODE", "off", NULL };
	struct cs_config c;
	cr_assert_eq(load(env, &c), -1);
	cr_assert(strstr(err, "CANCELSHIM_LOG='loud'"), "%s", err);
	cr_assert_eq(c.log, CS_LOG_WARN);
	cr_assert_eq(c.mode, CS_MODE_AUTO);
}

/* ---- names and formatters ------------------------------------------------ */

Test(config, names_read_back)
{
	enum cs_mode m;
	enum cs_on on;
	enum cs_log_level l;

	cr_assert_str_eq(cs_mode_name(CS_MODE_AUTO), "auto");
	cr_assert_str_eq(cs_mode_name(CS_MODE_EPOLL), "epoll");
	cr_assert_str_eq(cs_mode_name(CS_MODE_EBPF), "ebpf");
	cr_assert_str_eq(cs_mode_name(CS_MODE_OFF), "off");
	cr_assert_str_eq(cs_on_name(CS_ON_FIN), "fin");
	cr_assert_str_eq(cs_on_name(CS_ON_RST), "rst");
	cr_assert_str_eq(cs_log_name(CS_LOG_ERROR), "error");
	cr_assert_str_eq(cs_log_name(CS_LOG_WARN), "warn");
	cr_assert_str_eq(cs_log_name(CS_LOG_INFO), "info");
	cr_assert_str_eq(cs_log_name(CS_LOG_DEBUG), "debug");
	for (int i = CS_MODE_AUTO; i <= CS_MODE_OFF; i++) {
		cr_assert_eq(cs_parse_mode(cs_mode_name(i), &m, err, sizeof err), 0);
		cr_assert_eq(m, (enum cs_mode)i);
	}
	for (int i = CS_ON_FIN; i <= CS_ON_RST; i++) {
		cr_assert_eq(cs_parse_on(cs_on_name(i), &on, err, sizeof err), 0);
		cr_assert_eq(on, (enum cs_on)i);
	}
	for (int i = CS_LOG_ERROR; i <= CS_LOG_DEBUG; i++) {
		cr_assert_eq(cs_parse_log(cs_log_name(i), &l, err, sizeof err), 0);
		cr_assert_eq(l, (enum cs_log_level)i);
	}
}

Test(config, calls_format)
{
	char buf[64];
	cs_calls_format(CS_CLASS_DEFAULT, buf, sizeof buf);
	cr_assert_str_eq(buf, "net,wait");
	cs_calls_format(CS_CLASS_ALL, buf, sizeof buf);
	cr_assert_str_eq(buf, "net,wait,file,pipe");
	cs_calls_format(CS_CLASS_PIPE, buf, sizeof buf);
	cr_assert_str_eq(buf, "pipe");
	cs_calls_format(CS_CLASS_FILE | CS_CLASS_NET, buf, sizeof buf);
	cr_assert_str_eq(buf, "net,file");
	cs_calls_format(0, buf, sizeof buf);
	cr_assert_str_eq(buf, "none");
	/* Every non-empty set reads back as itself. */
	for (unsigned calls = 1; calls <= CS_CLASS_ALL; calls++) {
		unsigned back = 0;
		cs_calls_format(calls, buf, sizeof buf);
		cr_assert_eq(cs_parse_calls(buf, &back, err, sizeof err), 0, "'%s': %s", buf, err);
		cr_assert_eq(back, calls, "'%s'", buf);
	}
}

Test(config, calls_format_truncates_within_the_buffer)
{
	char buf[32];
	memset(buf, '#', sizeof buf);
	cs_calls_format(CS_CLASS_ALL, buf, 6);
	cr_assert_eq(strlen(buf), 5, "'%s'", buf);
	cr_assert_eq(strncmp(buf, "net,wait,file,pipe", 5), 0, "'%s'", buf);
	cr_assert_eq(buf[6], '#', "wrote past the buffer");
}

Test(config, signal_format)
{
	char buf[32];
	int signo;

	cs_signal_format(SIGRTMAX - 1, buf, sizeof buf);
	cr_assert_str_eq(buf, "SIGRTMAX-1");
	cs_signal_format(SIGRTMAX, buf, sizeof buf);
	cr_assert_str_eq(buf, "SIGRTMAX-0");
	cs_signal_format(SIGUSR1, buf, sizeof buf);
	cr_assert_str_eq(buf, "SIGUSR1");
	cs_signal_format(SIGUSR2, buf, sizeof buf);
	cr_assert_str_eq(buf, "SIGUSR2");
	cs_signal_format(SIGTERM, buf, sizeof buf);
	cr_assert_str_eq(buf, "15");
	/* Every accepted signal reads back as itself. */
	for (int s = SIGRTMIN; s <= SIGRTMAX; s++) {
		cs_signal_format(s, buf, sizeof buf);
		cr_assert_eq(cs_parse_signal(buf, &signo, err, sizeof err), 0, "'%s': %s", buf, err);
		cr_assert_eq(signo, s, "'%s'", buf);
	}
	cs_signal_format(SIGUSR2, buf, sizeof buf);
	cr_assert_eq(cs_parse_signal(buf, &signo, err, sizeof err), 0);
	cr_assert_eq(signo, SIGUSR2);
}

/* ---- CANCELSHIM_ACTION ---------------------------------------------------- */

Test(config, action_defaults_to_cancel_and_accepts_observe)
{
	static const char *const env[] = { "CANCELSHIM_ACTION", "Observe", NULL };
	struct cs_config c;
	enum cs_action a;

	cs_config_defaults(&c);
	cr_assert_eq(c.action, CS_ACTION_CANCEL);
	cr_assert_eq(cs_parse_action("cancel", &a, err, sizeof err), 0);
	cr_assert_eq(a, CS_ACTION_CANCEL);
	cr_assert_eq(load(env, &c), 0, "%s", err);
	cr_assert_eq(c.action, CS_ACTION_OBSERVE);
	cr_assert_str_eq(cs_action_name(CS_ACTION_OBSERVE), "observe");
	cr_assert_str_eq(cs_action_name(CS_ACTION_CANCEL), "cancel");
}

Test(config, action_rejects_others_naming_the_variable)
{
	static const char *const env[] = { "CANCELSHIM_ACTION", "dry-run", NULL };
	static const char *const accepted[] = { "cancel", "observe", NULL };
	struct cs_config c;
	enum cs_action a;

	cr_assert_eq(cs_parse_action("watch", &a, err, sizeof err), -1);
	assert_error("CANCELSHIM_ACTION", "watch", accepted);
	cr_assert_eq(load(env, &c), -1);
	assert_error("CANCELSHIM_ACTION", "dry-run", accepted);
}

/* ---- CANCELSHIM_PROFILE --------------------------------------------------- */

Test(config, profile_defaults_to_auto_and_accepts_none_and_postgresql)
{
	static const char *const env[] = { "CANCELSHIM_PROFILE", "PostgreSQL", NULL };
	struct cs_config c;
	enum cs_profile p;

	cs_config_defaults(&c);
	cr_assert_eq(c.profile, CS_PROFILE_AUTO);
	cr_assert_eq(cs_parse_profile("none", &p, err, sizeof err), 0);
	cr_assert_eq(p, CS_PROFILE_NONE);
	cr_assert_eq(cs_parse_profile("auto", &p, err, sizeof err), 0);
	cr_assert_eq(p, CS_PROFILE_AUTO);
	cr_assert_eq(load(env, &c), 0, "%s", err);
	cr_assert_eq(c.profile, CS_PROFILE_POSTGRESQL);
	cr_assert_str_eq(cs_profile_name(CS_PROFILE_POSTGRESQL), "postgresql");
	cr_assert_str_eq(cs_profile_name(CS_PROFILE_NONE), "none");
	cr_assert_str_eq(cs_profile_name(CS_PROFILE_AUTO), "auto");
}

Test(config, profile_rejects_others_naming_the_variable)
{
	static const char *const env[] = { "CANCELSHIM_PROFILE", "mysql", NULL };
	static const char *const accepted[] = { "auto", "none", "postgresql", NULL };
	struct cs_config c;
	enum cs_profile p;

	cr_assert_eq(cs_parse_profile("postgres ", &p, err, sizeof err), -1);
	assert_error("CANCELSHIM_PROFILE", "postgres ", accepted);
	cr_assert_eq(load(env, &c), -1);
	assert_error("CANCELSHIM_PROFILE", "mysql", accepted);
}

/* ---- CANCELSHIM_KCANCEL ---------------------------------------------------- */

Test(config, kcancel_defaults_to_auto_and_accepts_off)
{
	static const char *const env[] = { "CANCELSHIM_KCANCEL", "OFF", NULL };
	struct cs_config c;
	enum cs_kcancel k;

	cs_config_defaults(&c);
	cr_assert_eq(c.kcancel, CS_KCANCEL_AUTO);
	cr_assert_eq(cs_parse_kcancel("auto", &k, err, sizeof err), 0);
	cr_assert_eq(k, CS_KCANCEL_AUTO);
	cr_assert_eq(load(env, &c), 0, "%s", err);
	cr_assert_eq(c.kcancel, CS_KCANCEL_OFF);
	cr_assert_str_eq(cs_kcancel_name(CS_KCANCEL_OFF), "off");
	cr_assert_str_eq(cs_kcancel_name(CS_KCANCEL_AUTO), "auto");
}

Test(config, kcancel_rejects_others_naming_the_variable)
{
	static const char *const env[] = { "CANCELSHIM_KCANCEL", "on", NULL };
	static const char *const accepted[] = { "auto", "off", NULL };
	struct cs_config c;
	enum cs_kcancel k;

	cr_assert_eq(cs_parse_kcancel("yes", &k, err, sizeof err), -1);
	assert_error("CANCELSHIM_KCANCEL", "yes", accepted);
	cr_assert_eq(load(env, &c), -1);
	assert_error("CANCELSHIM_KCANCEL", "on", accepted);
}

/* cancelctl run: exec a program with libcancelshim.so preloaded.
 * Finds the library (check_shim.c), checks the program first and refuses
 * what the shim cannot work on (check_analysis.c), validates the settings
 * with the shim's own parsers (common/config.c) so the tool and the library
 * never disagree on what is valid, then appends the library to LD_PRELOAD
 * and execs. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "check_analysis.h"
#include "check_path.h"
#include "check_shim.h"
#include "commands.h"
#include "shim_name.h"

#define EXIT_SETUP        2	/* usage, bad value, no library, refused program */
#define EXIT_NOT_EXEC     126
#define EXIT_NOT_FOUND    127

static const char help_text[] =
	"usage: cancelctl run [OPTIONS] [--] CMD [ARGS...]\n"
	"\n"
	"Runs CMD (looked up in PATH) with libcancelshim.so appended to LD_PRELOAD\n"
	"(existing entries are kept; the library is not added twice, and another\n"
	"copy of it is replaced) and the CANCELSHIM_* variables set from the options.\n"
	"Options not given leave the variables as they are in the environment.\n"
	"\n"
	"options:\n"
	"  --mode M       CANCELSHIM_MODE: auto | epoll | ebpf | off\n"
	"  --on E         CANCELSHIM_ON: fin (peer FIN or RST cancels) | rst (RST only)\n"
	"  --calls LIST   CANCELSHIM_CALLS: comma list of net, wait, file, pipe; or all\n"
	"  --signal SIG   CANCELSHIM_SIGNAL: SIGUSR1, SIGUSR2, SIGRTMIN+N, SIGRTMAX-N,\n"
	"                 or the number of one of those\n"
	"  --log LEVEL    CANCELSHIM_LOG: error | warn | info | debug\n"
	"  --observe      CANCELSHIM_ACTION=observe: fail no call, signal no thread;\n"
	"                 count each cancel that would have happened (cancelctl stats,\n"
	"                 column WOULD) and, with --log info, log it\n"
	"  --action A     CANCELSHIM_ACTION: cancel | observe\n"
	"  --ports LIST   CANCELSHIM_PORTS: the listeners whose clients may be\n"
	"                 cancelled: all, or a comma list of ports (8080), ranges\n"
	"                 (8000-8099) and unix:PATH\n"
	"  --profile P    CANCELSHIM_PROFILE: auto (by program) | none | postgresql:\n"
	"                 the cancel sent to a thread busy outside any call when its\n"
	"                 client leaves (postgresql: SIGINT to the backend)\n"
	"  --lib PATH     use this libcancelshim.so (see below)\n"
	"  --force        run CMD even if 'cancelctl check' says the shim cannot work\n"
	"                 on it (statically linked, Go, set-user-ID...)\n"
	"  --quiet        no notes or warnings from cancelctl on stderr\n"
	"  --help, --version\n"
	"\n"
	"Before running, CMD goes through 'cancelctl check': if the verdict is\n"
	"unsupported, cancelctl refuses (exit 2) and says why; --force overrides.\n"
	"A partial verdict is noted on stderr when it is a terminal or the log\n"
	"level is info or debug.\n"
	"\n"
	"exit status: CMD's own, or\n"
	"  2    usage error, bad option value, library not found, CMD refused\n"
	"  126  CMD found but not executable\n"
	"  127  CMD not found\n"
	"\n";

struct run_options {
	const char *lib;
	const char *env[9][2];	/* variable, value */
	size_t n_env;
	bool force, quiet;
};


/* Validates value with the shim's own parser and records the variable. */
static int setting(struct run_options *o, const char *option, const char *var,
		   const char *value, int (*valid)(const char *, char *, size_t))
{
	char err[256];
	if (valid(value, err, sizeof err) < 0) {
		fprintf(stderr, "cancelctl run: --%s %s: %s\n", option, value, err);
		return -1;
	}
	for (size_t i = 0; i < o->n_env; i++)
		if (!strcmp(o->env[i][0], var)) {
			o->env[i][1] = value;	/* the last one given wins */
			return 0;
		}
	o->env[o->n_env][0] = var;
	o->env[o->n_env][1] = value;
	o->n_env++;
	return 0;
}

static int valid_mode(const char *s, char *err, size_t n)
{
	enum cs_mode v;
	return *s ? cs_parse_mode(s, &v, err, n) : (snprintf(err, n, "empty value"), -1);
}

static int valid_on(const char *s, char *err, size_t n)
{
	enum cs_on v;
	return *s ? cs_parse_on(s, &v, err, n) : (snprintf(err, n, "empty value"), -1);
}

static int valid_calls(const char *s, char *err, size_t n)
{
	unsigned v;
	return cs_parse_calls(s, &v, err, n);
}

static int valid_signal(const char *s, char *err, size_t n)
{
	int v;
	return cs_parse_signal(s, &v, err, n);
}

static int valid_log(const char *s, char *err, size_t n)
{
	enum cs_log_level v;
	return *s ? cs_parse_log(s, &v, err, n) : (snprintf(err, n, "empty value"), -1);
}

static int valid_action(const char *s, char *err, size_t n)
{
	enum cs_action v;
	return *s ? cs_parse_action(s, &v, err, n) : (snprintf(err, n, "empty value"), -1);
}

static int valid_profile(const char *s, char *err, size_t n)
{
	enum cs_profile v;
	return *s ? cs_parse_profile(s, &v, err, n) : (snprintf(err, n, "empty value"), -1);
}

static int valid_ports(const char *s, char *err, size_t n)
{
	struct cs_ports v;
	return cs_parse_ports(s, &v, err, n);
}

/* 0 and CMD's index in argv, or an exit status + 1000 for "return now". */
static int parse(int argc, char **argv, struct run_options *o)
{
	static const struct option longopts[] = {
		{ "mode",    required_argument, NULL, 'm' },
		{ "on",      required_argument, NULL, 'o' },
		{ "calls",   required_argument, NULL, 'c' },
		{ "signal",  required_argument, NULL, 's' },
		{ "log",     required_argument, NULL, 'L' },
		{ "action",  required_argument, NULL, 'a' },
		{ "observe", no_argument,       NULL, 'O' },
		{ "ports",   required_argument, NULL, 'P' },
		{ "profile", required_argument, NULL, 'R' },
		{ "lib",     required_argument, NULL, 'l' },
		{ "force",   no_argument,       NULL, 'f' },
		{ "quiet",   no_argument,       NULL, 'q' },
		{ "help",    no_argument,       NULL, 'h' },
		{ "version", no_argument,       NULL, 'V' },
		{ 0 }
	};
	int c, bad = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': bad |= setting(o, "mode", "CANCELSHIM_MODE", optarg, valid_mode); break;
		case 'o': bad |= setting(o, "on", "CANCELSHIM_ON", optarg, valid_on); break;
		case 'c': bad |= setting(o, "calls", "CANCELSHIM_CALLS", optarg, valid_calls); break;
		case 's': bad |= setting(o, "signal", "CANCELSHIM_SIGNAL", optarg, valid_signal); break;
		case 'L': bad |= setting(o, "log", "CANCELSHIM_LOG", optarg, valid_log); break;
		case 'a': bad |= setting(o, "action", "CANCELSHIM_ACTION", optarg, valid_action); break;
		case 'O': bad |= setting(o, "observe", "CANCELSHIM_ACTION", "observe", valid_action); break;
		case 'P': bad |= setting(o, "ports", "CANCELSHIM_PORTS", optarg, valid_ports); break;
		case 'R': bad |= setting(o, "profile", "CANCELSHIM_PROFILE", optarg, valid_profile); break;
		case 'l': o->lib = optarg; break;
		case 'f': o->force = true; break;
		case 'q': o->quiet = true; break;
		case 'h':
			fputs(help_text, stdout);
			fputs(shim_locate_help, stdout);
			return 1000 + 0;
		case 'V':
			printf("cancelctl run %s\n", CS_VERSION);
			return 1000 + 0;
		default:
			fprintf(stderr, "cancelctl run: %s '%s'; see 'cancelctl run --help'\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return 1000 + EXIT_SETUP;
		}
	}
	if (bad)
		return 1000 + EXIT_SETUP;
	if (optind >= argc) {
		fprintf(stderr, "cancelctl run: no command given; "
			"usage: cancelctl run [OPTIONS] -- CMD [ARGS...]\n");
		return 1000 + EXIT_SETUP;
	}
	return 0;
}

/* True if entry names the library at lib (same string or same file). */
static bool same_library(const char *entry, size_t len, const char *lib)
{
	char path[PATH_MAX];
	if (len >= sizeof path)
		return false;
	memcpy(path, entry, len);
	path[len] = '\0';
	if (!strcmp(path, lib))
		return true;
	char *real = realpath(path, NULL);
	bool same = real && !strcmp(real, lib);
	free(real);
	return same;
}

/* LD_PRELOAD with lib appended: entries (separated by ':' or ' ', as ld.so
 * reads them) kept in order, lib added once, another libcancelshim.so
 * dropped (two copies would wrap every call twice). NULL on ENOMEM. */
static char *preload_value(const char *old, const char *lib, bool quiet)
{
	size_t cap = (old ? strlen(old) : 0) + strlen(lib) + 2;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = 0;
	bool present = false;
	for (const char *p = old ? old : ""; *p;) {
		size_t len = strcspn(p, ": ");
		if (len) {
			if (same_library(p, len, lib)) {
				present = true;
			} else if (shim_name_matches(p, len)) {
				if (!quiet)
					fprintf(stderr, "cancelctl run: note: replacing %.*s in "
						"LD_PRELOAD with %s\n", (int)len, p, lib);
				p += len;
				continue;
			}
			if (n)
				out[n++] = ':';
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
		p += strspn(p, ": ");
	}
	if (!present) {
		if (n)
			out[n++] = ':';
		strcpy(out + n, lib);
		n += strlen(lib);
	}
	out[n] = '\0';
	return out;
}

/* Notes about partial support go to people, not to the logs of a service:
 * shown when stderr is a terminal or the log level asks for information. */
static bool told(const struct run_options *o)
{
	if (o->quiet)
		return false;
	if (isatty(STDERR_FILENO))
		return true;
	const char *level = getenv("CANCELSHIM_LOG");
	for (size_t i = 0; i < o->n_env; i++)
		if (!strcmp(o->env[i][0], "CANCELSHIM_LOG"))
			level = o->env[i][1];
	return level && (!strcasecmp(level, "info") || !strcasecmp(level, "debug"));
}

/* "static, go": the codes of the reasons at `level`. */
static const char *reason_codes(const struct check_report *r, enum check_level level)
{
	static char buf[256];
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < r->n_reasons; i++)
		if (r->reasons[i].level == level && n < sizeof buf)
			n += snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", r->reasons[i].code);
	return buf;
}

/* Runs `check` on the resolved CMD: 0 to go on, or EXIT_SETUP (refused). */
static int check_command(const char *cmd, const char *resolved, const char *lib,
			 const struct run_options *o)
{
	struct strlist exports = { 0 };
	char shim_err[PATH_MAX + 256] = "";
	bool have = shim_read_exports(lib, &exports, shim_err, sizeof shim_err) == 0;
	struct check_options opt = {
		.interposed = have ? &exports : NULL,
		.shim_path = lib,
		.shim_error = shim_err,
		.follow_libraries = true,
		.library_path = getenv("LD_LIBRARY_PATH"),
		.ld_cache = "/etc/ld.so.cache",
		.uid = getuid(),
		.gid = getgid(),
	};
	struct check_report r;
	int verdict = check_analyze_path(resolved, &opt, &r);
	int rc = 0;
	bool tell = told(o);
	if (!r.readable) {
		if (tell)
			fprintf(stderr, "cancelctl run: note: could not check %s (%s); running it "
				"anyway\n", cmd, r.error);
	} else if (verdict == CHECK_VERDICT_UNSUPPORTED && !o->force) {
		fprintf(stderr, "cancelctl run: refusing to run %s under the shim, which cannot "
			"work on it:\n", cmd);
		for (size_t i = 0; i < r.n_reasons; i++)
			if (r.reasons[i].level == CHECK_UNSUPPORTED)
				fprintf(stderr, "  - %s\n", r.reasons[i].text);
		fprintf(stderr, "'cancelctl check %s' tells more; --force runs it anyway.\n", cmd);
		rc = EXIT_SETUP;
	} else if (verdict == CHECK_VERDICT_UNSUPPORTED && !o->quiet) {
		fprintf(stderr, "cancelctl run: warning: --force: running %s although the shim "
			"cannot work on it (%s)\n", cmd, reason_codes(&r, CHECK_UNSUPPORTED));
	} else if (verdict == CHECK_VERDICT_PARTIAL && tell) {
		fprintf(stderr, "cancelctl run: note: %s is partially supported (%s); "
			"'cancelctl check %s' tells more\n", cmd, reason_codes(&r, CHECK_PARTIAL), cmd);
	}
	check_report_free(&r);
	strlist_free(&exports);
	return rc;
}

int cmd_run(int argc, char **argv)
{
	struct run_options o = { 0 };
	int rc = parse(argc, argv, &o);
	if (rc >= 1000)
		return rc - 1000;
	char **cmdv = argv + optind;

	struct shim_location loc;
	char err[PATH_MAX + 256];
	if (shim_locate(o.lib, &loc, err, sizeof err) != 0) {
		fprintf(stderr, "cancelctl run: %s\n", err);
		return EXIT_SETUP;
	}
	if (strpbrk(loc.path, ": ")) {
		fprintf(stderr, "cancelctl run: %s contains ':' or ' ', which LD_PRELOAD cannot "
			"express; put the library (or a symlink to it) at a plain path and pass "
			"--lib\n", loc.path);
		return EXIT_SETUP;
	}

	char resolved[PATH_MAX];
	int e = path_resolve(cmdv[0], resolved, sizeof resolved);
	if (e) {
		fprintf(stderr, "cancelctl run: %s: %s\n", cmdv[0],
			e == ENOENT ? (strchr(cmdv[0], '/') ? "no such file" : "command not found in PATH")
				    : e == EACCES ? "found but not executable (permission denied, or "
						    "not a regular file)" : strerror(e));
		return e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC;
	}
	rc = check_command(cmdv[0], resolved, loc.path, &o);
	if (rc)
		return rc;

	char *preload = preload_value(getenv("LD_PRELOAD"), loc.path, o.quiet);
	if (!preload || setenv("LD_PRELOAD", preload, 1) != 0) {
		perror("cancelctl run: LD_PRELOAD");
		return EXIT_SETUP;
	}
	free(preload);
	for (size_t i = 0; i < o.n_env; i++)
		if (setenv(o.env[i][0], o.env[i][1], 1) != 0) {
			perror("cancelctl run: setenv");
			return EXIT_SETUP;
		}
	/* execv of the very file that was checked; a file the kernel cannot
	 * run (ENOEXEC: no "#!") goes to execvp, which hands it to /bin/sh. */
	execv(resolved, cmdv);
	if (errno == ENOEXEC)
		execvp(resolved, cmdv);
	e = errno;
	fprintf(stderr, "cancelctl run: %s: %s\n", cmdv[0], strerror(e));
	return e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC;
}

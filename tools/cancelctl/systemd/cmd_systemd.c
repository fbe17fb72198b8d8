/* cancelctl enable / disable / status: the shim on a systemd service, the
 * way operators already deploy a preload library (a drop-in), without
 * editing the unit.
 *
 *   enable UNIT   checks the unit's program (as `cancelctl check`), merges the
 *                 unit's LD_PRELOAD with the shim's, writes
 *                 DIR/UNIT.d/cancelshim.conf (systemd_dropin.h), reloads systemd
 *                 and says the unit must be restarted;
 *   disable UNIT  removes that file (only one that carries the marker) and the
 *                 directory if enable created it and it is empty;
 *   status        each unit with the drop-in, and whether its running
 *                 processes really loaded the shim (/proc/PID/maps) and
 *                 publish statistics (/dev/shm/cancelshim.PIDNS.PID).
 * systemctl is asked through systemd_query.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "stats_layout.h"
#include "check_analysis.h"
#include "check_shim.h"
#include "commands.h"
#include "systemd_dropin.h"
#include "systemd_query.h"

#define EXIT_SETUP 2

static const char enable_help[] =
	"usage: cancelctl enable UNIT [OPTIONS]\n"
	"\n"
	"Enables the shim on a systemd service with a drop-in,\n"
	"/etc/systemd/system/UNIT.d/" DROPIN_NAME ", which sets LD_PRELOAD (the\n"
	"unit's own LD_PRELOAD is kept, the shim appended once) and the\n"
	"CANCELSHIM_* settings, then runs 'systemctl daemon-reload'. The unit must be\n"
	"restarted for it to take effect. Enabling again rewrites the drop-in.\n"
	"\n"
	"The unit's program (its first ExecStart=) goes through 'cancelctl check':\n"
	"an unsupported one is refused with the reason (--force overrides). A unit\n"
	"with a SystemCallFilter= gets mode epoll: a filter that does not list bpf()\n"
	"may kill the service when the shim tries mode ebpf.\n"
	"\n"
	"options:\n"
	"  --mode M       CANCELSHIM_MODE: auto | epoll | ebpf | off\n"
	"  --observe      CANCELSHIM_ACTION=observe: count and log, cancel nothing\n"
	"  --ports LIST   CANCELSHIM_PORTS: all, or ports, ranges, unix:PATH\n"
	"  --on E         CANCELSHIM_ON: fin | rst\n"
	"  --calls LIST   CANCELSHIM_CALLS: net, wait, file, pipe; or all\n"
	"  --log LEVEL    CANCELSHIM_LOG (default here: info, one line per cancel\n"
	"                 in the journal)\n"
	"  --lib PATH     the libcancelshim.so to preload\n"
	"  --force        enable even if 'cancelctl check' says unsupported\n"
	"\n"
	"environment: CANCELCTL_SYSTEMD_DIR (instead of /etc/systemd/system),\n"
	"CANCELCTL_SYSTEMCTL (the systemctl to ask). Without a running systemd the\n"
	"drop-in is written unchecked (an image build), with a warning.\n"
	"exit status: 0 enabled, 2 usage error or refused\n";

static const char disable_help[] =
	"usage: cancelctl disable UNIT\n"
	"\n"
	"Removes the drop-in 'cancelctl enable' wrote (only a file that starts with\n"
	"its marker line) and UNIT.d if enable created it and it is now empty, then\n"
	"runs 'systemctl daemon-reload'. The unit must be restarted.\n"
	"exit status: 0 removed or nothing to remove, 2 usage error or not ours\n";

static const char status_help[] =
	"usage: cancelctl status\n"
	"\n"
	"Lists the units with a cancelshim drop-in, how many of their running\n"
	"processes (MainPID and the unit's cgroup) have the shim mapped, how many\n"
	"publish statistics (they have accepted a connection), and the settings.\n"
	"A unit whose processes do not have it mapped needs a restart.\n";

static int read_text(const char *path, char **out)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t n;
	while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (len + 1 == cap) {
			char *b = realloc(buf, cap *= 2);
			if (!b) {
				free(buf);
				buf = NULL;
			}
			buf = b;
		}
	}
	fclose(f);
	if (!buf)
		return -1;
	buf[len] = '\0';
	*out = buf;
	return 0;
}

/* Writes text to path through a temporary file and a rename: a unit never
 * sees half a drop-in. */
static int write_atomically(const char *path, const char *text)
{
	char tmp[PATH_MAX + 64];
	snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
	ok &= close(fd) == 0;
	if (!ok || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

struct enable_options {
	const char *env[8][2];
	size_t n_env;
	const char *lib;
	bool force;
};

static void set_env(struct enable_options *o, const char *var, const char *value)
{
	for (size_t i = 0; i < o->n_env; i++)
		if (!strcmp(o->env[i][0], var)) {
			o->env[i][1] = value;
			return;
		}
	o->env[o->n_env][0] = var;
	o->env[o->n_env++][1] = value;
}

static const char *get_env(const struct enable_options *o, const char *var)
{
	for (size_t i = 0; i < o->n_env; i++)
		if (!strcmp(o->env[i][0], var))
			return o->env[i][1];
	return NULL;
}

/* Validates the options with the shim's own parsers. */
static int valid(const char *var, const char *value)
{
	char err[512];
	int rc = 0;
	if (!strcmp(var, "CANCELSHIM_MODE")) {
		enum cs_mode v;
		rc = cs_parse_mode(value, &v, err, sizeof err);
	} else if (!strcmp(var, "CANCELSHIM_ON")) {
		enum cs_on v;
		rc = cs_parse_on(value, &v, err, sizeof err);
	} else if (!strcmp(var, "CANCELSHIM_CALLS")) {
		unsigned v;
		rc = cs_parse_calls(value, &v, err, sizeof err);
	} else if (!strcmp(var, "CANCELSHIM_LOG")) {
		enum cs_log_level v;
		rc = cs_parse_log(value, &v, err, sizeof err);
	} else if (!strcmp(var, "CANCELSHIM_PORTS")) {
		struct cs_ports v;
		rc = cs_parse_ports(value, &v, err, sizeof err);
	}
	if (rc < 0 || !*value) {
		fprintf(stderr, "cancelctl enable: %s\n", rc < 0 ? err : "empty value");
		return -1;
	}
	return 0;
}

/* The uid the unit runs as, for the set-user-ID part of the check. */
static void unit_ids(const char *unit, uid_t *uid, gid_t *gid)
{
	char *user = sd_show(unit, "User");
	struct passwd *pw = user && *user ? getpwnam(user) : NULL;
	*uid = pw ? pw->pw_uid : 0;
	*gid = pw ? pw->pw_gid : 0;
	free(user);
}

/* `cancelctl check` on the unit's program: 0 to go on, EXIT_SETUP refused. */
static int check_program(const char *unit, const char *program, const char *lib, bool force)
{
	struct strlist exports = { 0 };
	char shim_err[PATH_MAX + 256] = "";
	bool have = shim_read_exports(lib, &exports, shim_err, sizeof shim_err) == 0;
	struct check_options opt = {
		.interposed = have ? &exports : NULL,
		.shim_path = lib,
		.shim_error = shim_err,
		.follow_libraries = true,
		.ld_cache = "/etc/ld.so.cache",
	};
	unit_ids(unit, &opt.uid, &opt.gid);
	struct check_report r;
	int verdict = check_analyze_path(program, &opt, &r), rc = 0;
	if (!r.readable) {
		fprintf(stderr, "cancelctl enable: warning: could not check %s (%s)\n", program, r.error);
	} else if (verdict == CHECK_VERDICT_UNSUPPORTED) {
		fprintf(stderr, "cancelctl enable: %s %s: its program %s cannot work under the shim:\n",
			force ? "warning: --force: enabling" : "refusing to enable", unit, program);
		for (size_t i = 0; i < r.n_reasons; i++)
			if (r.reasons[i].level == CHECK_UNSUPPORTED)
				fprintf(stderr, "  - %s\n", r.reasons[i].text);
		if (!force) {
			fprintf(stderr, "'cancelctl check %s' tells more; --force enables it anyway.\n", program);
			rc = EXIT_SETUP;
		}
	} else if (verdict == CHECK_VERDICT_PARTIAL) {
		fprintf(stderr, "cancelctl enable: note: %s is partially supported; 'cancelctl check %s' "
			"tells more\n", program, program);
	}
	check_report_free(&r);
	strlist_free(&exports);
	return rc;
}

static int parse_enable(int argc, char **argv, struct enable_options *o)
{
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' }, { "observe", no_argument, NULL, 'O' },
		{ "ports", required_argument, NULL, 'P' }, { "on", required_argument, NULL, 'o' },
		{ "calls", required_argument, NULL, 'c' }, { "log", required_argument, NULL, 'L' },
		{ "lib", required_argument, NULL, 'l' }, { "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' }, { 0 },
	};
	int c, bad = 0;
	opterr = 0;
	set_env(o, "CANCELSHIM_LOG", "info");
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': set_env(o, "CANCELSHIM_MODE", optarg); bad |= valid("CANCELSHIM_MODE", optarg); break;
		case 'O': set_env(o, "CANCELSHIM_ACTION", "observe"); break;
		case 'P': set_env(o, "CANCELSHIM_PORTS", optarg); bad |= valid("CANCELSHIM_PORTS", optarg); break;
		case 'o': set_env(o, "CANCELSHIM_ON", optarg); bad |= valid("CANCELSHIM_ON", optarg); break;
		case 'c': set_env(o, "CANCELSHIM_CALLS", optarg); bad |= valid("CANCELSHIM_CALLS", optarg); break;
		case 'L': set_env(o, "CANCELSHIM_LOG", optarg); bad |= valid("CANCELSHIM_LOG", optarg); break;
		case 'l': o->lib = optarg; break;
		case 'f': o->force = true; break;
		case 'h': fputs(enable_help, stdout); return 1000;
		default:
			fprintf(stderr, "cancelctl enable: %s '%s'; see 'cancelctl enable --help'\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return 1000 + EXIT_SETUP;
		}
	}
	if (bad)
		return 1000 + EXIT_SETUP;
	if (optind != argc - 1) {
		fprintf(stderr, "cancelctl enable: give one unit; usage: cancelctl enable UNIT [OPTIONS]\n");
		return 1000 + EXIT_SETUP;
	}
	return 0;
}

static int enable_unit(const char *unit, struct enable_options *o)
{
	struct shim_location loc;
	char err[PATH_MAX + 256], dir[PATH_MAX], path[PATH_MAX + 32];
	if (shim_locate(o->lib, &loc, err, sizeof err) != 0) {
		fprintf(stderr, "cancelctl enable: %s\n", err);
		return EXIT_SETUP;
	}
	if (strpbrk(loc.path, ": \"\\%")) {
		fprintf(stderr, "cancelctl enable: %s contains a character LD_PRELOAD or a unit file "
			"cannot carry; pass --lib with a plain path\n", loc.path);
		return EXIT_SETUP;
	}
	char *environment = NULL, *comment = NULL;
	bool systemd = sd_available();
	if (systemd) {
		char *exec = sd_show(unit, "ExecStart");
		char *program = sd_exec_path(exec);
		char *load = sd_show(unit, "LoadState");
		free(exec);
		if (load && !strcmp(load, "not-found")) {
			fprintf(stderr, "cancelctl enable: unit %s not found\n", unit);
			free(load);
			free(program);
			return EXIT_SETUP;
		}
		free(load);
		int rc = program ? check_program(unit, program, loc.path, o->force) : 0;
		if (!program)
			fprintf(stderr, "cancelctl enable: warning: %s has no ExecStart= program to check\n", unit);
		free(program);
		if (rc)
			return rc;
		char *filter = sd_show(unit, "SystemCallFilter");
		if (filter && *filter) {
			const char *asked = get_env(o, "CANCELSHIM_MODE");
			/* off stays off; anything else becomes epoll. */
			if (!asked || strcasecmp(asked, "off")) {
				if (!asked || strcasecmp(asked, "epoll"))
					fprintf(stderr, "cancelctl enable: note: %s has a SystemCallFilter=; "
						"using mode epoll (mode ebpf's bpf() may be killed by the "
						"filter)\n", unit);
				set_env(o, "CANCELSHIM_MODE", "epoll");
			}
			comment = "mode epoll: the unit has a SystemCallFilter= (bpf() may be killed)";
		}
		free(filter);
		environment = sd_show(unit, "Environment");
	} else {
		fprintf(stderr, "cancelctl enable: warning: systemd is not running here: the unit's "
			"program, LD_PRELOAD and SystemCallFilter= were not checked\n");
	}

	snprintf(dir, sizeof dir, "%s/%s.d", sd_dropin_root(), unit);
	snprintf(path, sizeof path, "%s/" DROPIN_NAME, dir);
	char *old = NULL;
	bool dir_created = false;
	if (read_text(path, &old) == 0) {
		if (!dropin_is_ours(old)) {
			fprintf(stderr, "cancelctl enable: %s exists and was not written by cancelctl; "
				"not touching it\n", path);
			free(old);
			free(environment);
			return EXIT_SETUP;
		}
		dir_created = dropin_created_dir(old);
		free(old);
	} else if (mkdir(dir, 0755) == 0) {
		dir_created = true;
	} else if (errno != EEXIST) {
		fprintf(stderr, "cancelctl enable: cannot create %s: %s\n", dir, strerror(errno));
		free(environment);
		return EXIT_SETUP;
	}
	char *theirs = dropin_env_lookup(environment, "LD_PRELOAD");
	char *preload = dropin_preload_merge(theirs, loc.path);
	struct dropin d = { .preload = preload, .dir_created = dir_created, .comment = comment };
	for (size_t i = 0; i < o->n_env; i++) {
		d.env[i][0] = o->env[i][0];
		d.env[i][1] = o->env[i][1];
	}
	d.n_env = o->n_env;
	char *text = preload ? dropin_render(&d) : NULL;
	int rc = 0;
	if (!text || write_atomically(path, text) != 0) {
		fprintf(stderr, "cancelctl enable: cannot write %s: %s\n", path, strerror(errno));
		rc = EXIT_SETUP;
	} else {
		printf("wrote %s (LD_PRELOAD=%s)\n", path, preload);
		if (systemd)
			sd_daemon_reload();
		printf("restart the unit for it to take effect: systemctl restart %s\n", unit);
	}
	free(text);
	free(preload);
	free(theirs);
	free(environment);
	return rc;
}

int cmd_enable(int argc, char **argv)
{
	struct enable_options o = { 0 };
	int rc = parse_enable(argc, argv, &o);
	if (rc >= 1000)
		return rc - 1000;
	char err[512];
	char *unit = dropin_unit_name(argv[optind], err, sizeof err);
	if (!unit) {
		fprintf(stderr, "cancelctl enable: %s\n", err);
		return EXIT_SETUP;
	}
	rc = enable_unit(unit, &o);
	free(unit);
	return rc;
}

int cmd_disable(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(disable_help, stdout);
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "cancelctl disable: usage: cancelctl disable UNIT\n");
		return EXIT_SETUP;
	}
	char err[512], dir[PATH_MAX], path[PATH_MAX + 32];
	char *unit = dropin_unit_name(argv[1], err, sizeof err), *text = NULL;
	if (!unit) {
		fprintf(stderr, "cancelctl disable: %s\n", err);
		return EXIT_SETUP;
	}
	snprintf(dir, sizeof dir, "%s/%s.d", sd_dropin_root(), unit);
	snprintf(path, sizeof path, "%s/" DROPIN_NAME, dir);
	int rc = 0;
	if (read_text(path, &text) != 0) {
		printf("%s: no cancelshim drop-in (%s); nothing to do\n", unit, path);
	} else if (!dropin_is_ours(text)) {
		fprintf(stderr, "cancelctl disable: %s was not written by cancelctl; not removing it\n", path);
		rc = EXIT_SETUP;
	} else if (unlink(path) != 0) {
		fprintf(stderr, "cancelctl disable: cannot remove %s: %s\n", path, strerror(errno));
		rc = EXIT_SETUP;
	} else {
		printf("removed %s\n", path);
		if (dropin_created_dir(text) && rmdir(dir) == 0)
			printf("removed %s\n", dir);
		if (sd_available())
			sd_daemon_reload();
		printf("restart the unit for it to take effect: systemctl restart %s\n", unit);
	}
	free(text);
	free(unit);
	return rc;
}

/* 1 if /proc/PID/maps maps a libcancelshim.so, 0 if not, -1 if unreadable. */
static int shim_mapped(pid_t pid)
{
	char path[64], line[4096];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int found = 0;
	while (!found && fgets(line, sizeof line, f)) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		size_t n = strlen(line);
		found = n >= 16 && !strcmp(line + n - 16, "libcancelshim.so");
	}
	fclose(f);
	return found;
}

/* The CANCELSHIM_* assignments of a drop-in, "MODE=epoll PORTS=8080". */
static void settings_of(const char *text, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (const char *p = text; (p = strstr(p, "Environment=\"CANCELSHIM_")); ) {
		p += strlen("Environment=\"CANCELSHIM_");
		size_t n = strcspn(p, "\"\n");
		if (used < len)
			used += snprintf(buf + used, len - used, "%s%.*s", used ? " " : "", (int)n, p);
	}
	if (!used)
		snprintf(buf, len, "(defaults)");
}

int cmd_status(int argc, char **argv)
{
	if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(status_help, stdout);
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "cancelctl status: usage: cancelctl status\n");
		return EXIT_SETUP;
	}
	const char *root = sd_dropin_root();
	DIR *d = opendir(root);
	if (!d) {
		fprintf(stderr, "cancelctl status: cannot read %s: %s\n", root, strerror(errno));
		return EXIT_SETUP;
	}
	bool systemd = sd_available(), header = false;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 3 || strcmp(e->d_name + n - 2, ".d"))
			continue;
		char path[PATH_MAX], *text = NULL, settings[512], unit[256];
		snprintf(path, sizeof path, "%s/%s/" DROPIN_NAME, root, e->d_name);
		if (read_text(path, &text) != 0)
			continue;
		if (!dropin_is_ours(text) || n - 2 >= sizeof unit) {
			free(text);
			continue;
		}
		snprintf(unit, sizeof unit, "%.*s", (int)(n - 2), e->d_name);
		settings_of(text, settings, sizeof settings);
		free(text);
		if (!header) {
			printf("%-32s %-6s %-8s %-9s %s\n", "UNIT", "PIDS", "LOADED", "SEGMENTS", "SETTINGS");
			header = true;
		}
		if (!systemd) {
			printf("%-32s %-6s %-8s %-9s %s\n", unit, "?", "?", "?", settings);
			continue;
		}
		pid_t pids[256];
		size_t np = sd_unit_pids(unit, pids, 256), loaded = 0, segments = 0;
		struct stat ns;
		/* Segments are named by pid namespace and pid (stats_layout.h);
		 * the unit's processes are in ours. */
		unsigned long long pidns = stat("/proc/self/ns/pid", &ns) == 0 ? (unsigned long long)ns.st_ino : 0;
		for (size_t i = 0; i < np; i++) {
			char seg[96];
			struct stat st;
			loaded += shim_mapped(pids[i]) == 1;
			snprintf(seg, sizeof seg, CS_SEG_DIR "/" CS_SEG_PREFIX "%llu.%d", pidns, (int)pids[i]);
			segments += stat(seg, &st) == 0;
		}
		char ld[32];
		snprintf(ld, sizeof ld, "%zu/%zu", loaded, np);
		printf("%-32s %-6zu %-8s %-9zu %s%s\n", unit, np, ld, segments, settings,
		       np && loaded < np ? "  (restart needed)" : np ? "" : "  (not running)");
	}
	closedir(d);
	if (!header)
		printf("no unit has a cancelshim drop-in in %s\n", root);
	else if (!systemd)
		printf("(systemd is not running: processes not inspected)\n");
	return 0;
}

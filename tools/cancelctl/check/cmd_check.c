/* cancelctl check: tell, before deployment, whether libcancelshim.so can work
 * on a program. The analysis is check_analysis.c, the printing check_print.c;
 * this file holds the options, the help and the exit status. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check_analysis.h"
#include "check_print.h"
#include "check_path.h"
#include "check_shim.h"
#include "commands.h"

#define EXIT_UNREADABLE 3
#define EXIT_USAGE      4

static const char help_text[] =
	"usage: cancelctl check [--json] [--lib PATH] BINARY\n"
	"\n"
	"Tells whether libcancelshim.so can work on BINARY, before you deploy it:\n"
	"  - statically linked, or a Go program: unsupported (no loader reads\n"
	"    LD_PRELOAD / Go makes its system calls itself);\n"
	"  - set-user-ID, set-group-ID or with file capabilities: unsupported when\n"
	"    you run it (ld.so ignores LD_PRELOAD in secure-execution mode), partial\n"
	"    when only other users would;\n"
	"  - which of the calls the shim interposes it imports, itself or through\n"
	"    its libraries (found as ld.so finds them: DT_RPATH, LD_LIBRARY_PATH,\n"
	"    DT_RUNPATH, /etc/ld.so.cache, default directories);\n"
	"  - whether it uses io_uring, which the shim cannot see.\n"
	"The calls the shim interposes are read from the library's own exports.\n"
	"A \"#!\" script is followed to its interpreter. A BINARY without a slash\n"
	"that is not in the current directory is looked up in PATH.\n"
	"\n"
	"options:\n"
	"  --json       one JSON object on stdout instead of text\n"
	"  --lib PATH   the libcancelshim.so to read the interposed calls from\n"
	"  --help, --version\n"
	"\n"
	"exit status:\n"
	"  0 supported    1 partial    2 unsupported\n"
	"  3 BINARY could not be read or is not an ELF program    4 usage error\n"
	"\n"
	"JSON fields:\n"
	"  path           the ELF file analysed (a script's interpreter)\n"
	"  scripts        [\"#!\" files that led to path]\n"
	"  verdict        \"supported\" | \"partial\" | \"unsupported\" | \"error\"\n"
	"  error          why BINARY could not be analysed (verdict \"error\" only)\n"
	"  kind           executable | pie-executable | static-executable |\n"
	"                 static-pie-executable | shared-library | ...\n"
	"  interpreter    PT_INTERP, or null\n"
	"  go             what marks it as Go (e.g. \".go.buildinfo\"), or null\n"
	"  io_uring       true if it or a library uses io_uring\n"
	"  setuid, setgid, capabilities, nosuid_mount   booleans about the file\n"
	"  owner          {\"uid\": N, \"gid\": N}\n"
	"  secure_execution  true if running it as you would set AT_SECURE\n"
	"  shim           {\"path\": library or null, \"interposed\": N calls,\n"
	"                  \"error\": why its calls could not be read, or null}\n"
	"  imports        [{\"name\": call, \"from\": [objects importing it]}]\n"
	"  libraries      [{\"name\", \"path\" (null: not found), \"needed_by\", \"depth\"}]\n"
	"  reasons        [{\"level\": \"unsupported\"|\"partial\"|\"note\",\n"
	"                   \"code\": stable id, \"text\": sentence}]\n"
	"                 codes: not-x86-64 static not-a-program go musl secure-exec\n"
	"                 secure-exec-others io-uring no-interposed-calls no-accept\n"
	"                 missing-library go-library no-shim-library unknown-loader\n"
	"                 unreadable-part shared-library script raw-syscall\n"
	"                 nosuid-mount bounded library-limit\n"
	"\n";

/* ---- the command ---------------------------------------------------------- */

/* BINARY as given if it exists here or has a slash, else through PATH. */
static const char *target_path(const char *arg, char *buf, size_t sz)
{
	struct stat st;
	if (strchr(arg, '/') || lstat(arg, &st) == 0)
		return arg;
	return path_resolve(arg, buf, sz) == 0 ? buf : arg;
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json",    no_argument,       NULL, 'j' },
		{ "lib",     required_argument, NULL, 'l' },
		{ "help",    no_argument,       NULL, 'h' },
		{ "version", no_argument,       NULL, 'V' },
		{ 0 }
	};
	bool json = false;
	const char *lib = NULL;
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 'l': lib = optarg; break;
		case 'h': fputs(help_text, stdout); fputs(shim_locate_help, stdout); return 0;
		case 'V': printf("cancelctl check %s\n", CS_VERSION); return 0;
		default:
			fprintf(stderr, "cancelctl check: %s '%s'; see 'cancelctl check --help'\n",
				c == ':' ? "missing value for" : "unknown option", argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "cancelctl check: expected one BINARY, got %d; "
			"usage: cancelctl check [--json] [--lib PATH] BINARY\n", argc - optind);
		return EXIT_USAGE;
	}

	struct shim_location loc;
	struct strlist exports = { 0 };
	char shim_err[PATH_MAX + 256] = "";
	bool located = shim_locate(lib, &loc, shim_err, sizeof shim_err) == 0;
	bool have_shim = located &&
			 shim_read_exports(loc.path, &exports, shim_err, sizeof shim_err) == 0;
	if (lib && !have_shim) {
		fprintf(stderr, "cancelctl check: --lib: %s\n", shim_err);
		return EXIT_USAGE;
	}
	struct check_options opt = {
		.interposed = have_shim ? &exports : NULL,
		.shim_path = located ? loc.path : NULL,
		.shim_error = shim_err,
		.follow_libraries = true,
		.library_path = getenv("LD_LIBRARY_PATH"),
		.ld_cache = "/etc/ld.so.cache",
		.uid = getuid(),
		.gid = getgid(),
	};
	char found[PATH_MAX];
	const char *asked = argv[optind];
	struct check_report r;
	int rc = check_analyze_path(target_path(asked, found, sizeof found), &opt, &r);
	if (json) {
		check_print_json(stdout, asked, &r);
	} else if (r.readable) {
		check_print_text(stdout, asked, &r);
	} else {
		fputs("cancelctl check: ", stderr);
		check_put_text(stderr, r.error);
		fputc('\n', stderr);
	}
	check_report_free(&r);
	strlist_free(&exports);
	return rc;
}

/* `cancelctl check`'s analysis: can libcancelshim.so work on this program?
 * Pure: fills a report, prints nothing (cmd_check.c does the printing).
 * Input files are untrusted (see check_elf.h). */
#ifndef CANCELCTL_CHECK_ANALYSIS_H
#define CANCELCTL_CHECK_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "check_strlist.h"

enum check_level {
	CHECK_NOTE,         /* worth knowing; does not change the verdict */
	CHECK_PARTIAL,      /* the shim works, with a gap */
	CHECK_UNSUPPORTED,  /* the shim cannot work on it */
};

/* The verdict is the highest level among the reasons (CHECK_NOTE: supported). */
enum check_verdict {
	CHECK_VERDICT_SUPPORTED = 0,
	CHECK_VERDICT_PARTIAL = 1,
	CHECK_VERDICT_UNSUPPORTED = 2,
};

struct check_reason {
	enum check_level level;
	const char *code;   /* stable identifier, e.g. "static", "go", "io-uring" */
	char *text;         /* one sentence for humans */
};

struct check_import {
	char *name;              /* an interposed call */
	struct strlist from;     /* objects importing it: the program, libraries */
};

struct check_library {
	char *name;              /* as written in DT_NEEDED */
	char *path;              /* where ld.so would find it; NULL: not found */
	char *needed_by;
	unsigned depth;          /* 1: needed by the program */
};

struct check_report {
	char *path;              /* the ELF file analysed (a script's interpreter) */
	struct strlist scripts;  /* "#!" files that led to path, outermost first */
	bool readable;           /* false: nothing else is valid but error */
	char error[512];

	enum check_verdict verdict;
	const char *kind;        /* elf_object_kind_name() */
	char *interp;            /* PT_INTERP or NULL */
	bool setuid, setgid, capabilities, nosuid_mount;
	unsigned owner_uid, owner_gid;
	bool secure_exec;        /* AT_SECURE if the options' uid/gid ran it */
	const char *go_marker;   /* NULL if not Go */
	bool io_uring;

	char *shim_path;         /* the library asked, NULL if none was found */
	char *shim_error;        /* why its exports could not be read, or NULL */
	size_t interposed;       /* how many calls the shim exports; 0 if unknown */

	struct check_import *imports;
	size_t n_imports;
	struct check_library *libs;
	size_t n_libs;
	struct check_reason *reasons;
	size_t n_reasons;
};

struct check_options {
	const struct strlist *interposed; /* sorted exports of the shim; NULL: unknown */
	const char *shim_path;            /* for the report */
	const char *shim_error;           /* why interposed is NULL */
	bool follow_libraries;            /* resolve DT_NEEDED transitively */
	const char *library_path;         /* LD_LIBRARY_PATH to assume */
	const char *ld_cache;             /* usually "/etc/ld.so.cache"; NULL: none */
	unsigned max_depth;               /* 0: default (16) */
	unsigned max_libraries;           /* 0: default (256) */
	uid_t uid;                        /* who will run it (setuid analysis) */
	gid_t gid;
};

/* Analyse the file at path (following "#!" to the interpreter). Returns the
 * verdict (0..2), or 3 with report->readable false if the file could not be
 * analysed at all. */
int check_analyze_path(const char *path, const struct check_options *opt,
		       struct check_report *r);
/* Analyse an in-memory ELF image, without touching the file system: no
 * libraries, no file mode. For the fuzzer and the tests. Same return. */
int check_analyze_memory(const void *buf, size_t len, const struct check_options *opt,
			 struct check_report *r);
void check_report_free(struct check_report *r);

const char *check_verdict_name(enum check_verdict v);
const char *check_level_name(enum check_level l);

#endif

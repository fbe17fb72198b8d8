/* See check_analysis.h. The steps: follow "#!" to the ELF file that really
 * runs; read the file's mode (set-user-ID, capabilities); scan the program;
 * find its libraries as ld.so would, breadth first, bounded; then turn the
 * facts into reasons, and the reasons into a verdict. */
#include "check_analysis.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "check_elf.h"
#include "check_ldsearch.h"
#include "check_path.h"

#define DEFAULT_MAX_DEPTH      16
#define DEFAULT_MAX_LIBRARIES  256
#define MAX_SCRIPT_NESTING     4	/* the kernel allows as many "#!" levels */
#define SHEBANG_MAX            256	/* the kernel reads this much of a script */

/* One object of the program: the program itself (index 0) or a library. */
struct node {
	char *name;       /* for people: basename of the program, DT_NEEDED name */
	char *path;
	char *dir;        /* $ORIGIN */
	char *real;       /* canonical path, to spot one file reached by two names */
	int parent;       /* -1 for the program */
	unsigned depth;
	struct elf_object obj;
};

struct graph {
	struct node *v;
	size_t n, cap;
	struct strlist missing;	/* "NAME (needed by X)" */
	bool bounded;           /* more libraries than max_libraries, or deeper */
};

const char *check_verdict_name(enum check_verdict v)
{
	switch (v) {
	case CHECK_VERDICT_SUPPORTED:           return "supported";
	case CHECK_VERDICT_PARTIAL:     return "partial";
	case CHECK_VERDICT_UNSUPPORTED: return "unsupported";
	}
	return "?";
}

const char *check_level_name(enum check_level l)
{
	switch (l) {
	case CHECK_NOTE:        return "note";
	case CHECK_PARTIAL:     return "partial";
	case CHECK_UNSUPPORTED: return "unsupported";
	}
	return "?";
}

__attribute__((format(printf, 4, 5)))
static void reason(struct check_report *r, enum check_level level, const char *code,
		   const char *fmt, ...)
{
	struct check_reason *v = realloc(r->reasons, (r->n_reasons + 1) * sizeof *v);
	if (!v)
		return;
	r->reasons = v;
	va_list ap;
	va_start(ap, fmt);
	char *text;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	if (!text)
		return;
	r->reasons[r->n_reasons++] = (struct check_reason){ level, code, text };
}

__attribute__((format(printf, 2, 3)))
static int fail(struct check_report *r, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof r->error, fmt, ap);
	va_end(ap);
	r->readable = false;
	return 3;
}

/* Opened read-only if it is a regular file; never blocks on a FIFO. */
static int open_regular(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;	/* reported as "not a regular file" */
		return -1;
	}
	return fd;
}

static const char *user_name(unsigned uid, char *buf, size_t sz)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		snprintf(buf, sz, "%s", pw->pw_name);
	else
		snprintf(buf, sz, "uid %u", uid);
	return buf;
}

static const char *group_name(unsigned gid, char *buf, size_t sz)
{
	struct group *gr = getgrgid(gid);
	if (gr)
		snprintf(buf, sz, "%s", gr->gr_name);
	else
		snprintf(buf, sz, "gid %u", gid);
	return buf;
}

/* ---- "#!" scripts --------------------------------------------------------- */

/* 1 and interp/arg filled if path is a "#!" script, 0 if not, -1 on error. */
static int read_shebang(const char *path, char *interp, size_t isz, char *arg, size_t asz)
{
	int fd = open_regular(path);
	if (fd < 0)
		return -1;
	char buf[SHEBANG_MAX + 1];
	ssize_t n = pread(fd, buf, SHEBANG_MAX, 0);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	if (n < 2 || buf[0] != '#' || buf[1] != '!')
		return 0;
	char *line = buf + 2;
	line[strcspn(line, "\n")] = '\0';
	line += strspn(line, " \t");
	size_t ilen = strcspn(line, " \t");
	if (ilen == 0 || ilen >= isz)
		return 0;	/* the kernel refuses it too (ENOEXEC) */
	memcpy(interp, line, ilen);
	interp[ilen] = '\0';
	char *rest = line + ilen;
	rest += strspn(rest, " \t");
	size_t alen = strlen(rest);
	while (alen && (rest[alen - 1] == ' ' || rest[alen - 1] == '\t'))
		alen--;
	if (alen >= asz)
		alen = asz - 1;
	memcpy(arg, rest, alen);
	arg[alen] = '\0';
	return 1;
}

/* "#!/usr/bin/env [-S] [VAR=x] python3": the command env will run. */
static bool env_command(const char *arg, char *cmd, size_t sz)
{
	char copy[SHEBANG_MAX];
	snprintf(copy, sizeof copy, "%s", arg);
	for (char *save, *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (tok[0] == '-' || strchr(tok, '='))
			continue;
		snprintf(cmd, sz, "%s", tok);
		return true;
	}
	return false;
}

/* Follows "#!" lines from path to the ELF file that runs; 0 or 3 (error). */
static int follow_scripts(const char *path, struct check_report *r, char *elf, size_t sz)
{
	snprintf(elf, sz, "%s", path);
	for (int level = 0;; level++) {
		char interp[SHEBANG_MAX], arg[SHEBANG_MAX];
		int s = read_shebang(elf, interp, sizeof interp, arg, sizeof arg);
		if (s < 0)
			return fail(r, "%s: %s", elf, errno == EINVAL ? "not a regular file" : strerror(errno));
		if (s == 0)
			return 0;
		if (level == MAX_SCRIPT_NESTING)
			return fail(r, "%s: more than %d levels of \"#!\" scripts", path, MAX_SCRIPT_NESTING);
		strlist_add(&r->scripts, elf, PATH_MAX);
		char cmd[SHEBANG_MAX];
		const char *base = strrchr(interp, '/');
		if (base && !strcmp(base + 1, "env") && env_command(arg, cmd, sizeof cmd)) {
			char found[PATH_MAX];
			if (path_resolve(cmd, found, sizeof found) != 0)
				return fail(r, "%s: runs '%s' through env, which is not in PATH", elf, cmd);
			strlist_add(&r->scripts, interp, PATH_MAX);	/* env is a step too */
			snprintf(elf, sz, "%s", found);
		} else {
			snprintf(elf, sz, "%s", interp);
		}
	}
}

/* ---- the file's mode ------------------------------------------------------ */

static void read_mode(int fd, const struct check_options *opt, struct check_report *r)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return;
	r->owner_uid = st.st_uid;
	r->owner_gid = st.st_gid;
	r->setuid = st.st_mode & S_ISUID;
	/* set-group-ID without group execute means mandatory locking, not setgid */
	r->setgid = (st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP);
	r->capabilities = fgetxattr(fd, "security.capability", NULL, 0) >= 0;
	struct statvfs vfs;
	r->nosuid_mount = fstatvfs(fd, &vfs) == 0 && (vfs.f_flag & ST_NOSUID);
	if (r->nosuid_mount)
		return;	/* the kernel ignores all three there */
	/* The kernel sets AT_SECURE when exec changes the effective ids, or when
	 * a non-root process gains capabilities from the file. */
	r->secure_exec = (r->setuid && opt->uid != st.st_uid) ||
			 (r->setgid && opt->gid != st.st_gid) ||
			 (r->capabilities && opt->uid != 0);
}

/* ---- the libraries -------------------------------------------------------- */

struct candidate {
	const struct strlist *want;
	struct elf_object obj;
	bool have;
};

/* ld.so takes the first candidate of the right class and machine. */
static bool accept_library(const char *path, void *arg)
{
	struct candidate *c = arg;
	int fd = open_regular(path);
	if (fd < 0)
		return false;
	struct elf_object o;
	int rc = elf_object_scan_fd(fd, c->want, 0, &o);
	close(fd);
	if (rc != 0 || !o.x86_64 || o.corrupt) {
		elf_object_free(&o);
		return false;
	}
	if (c->have)
		elf_object_free(&c->obj);
	c->obj = o;
	c->have = true;
	return true;
}

/* ld.so loads a library once: a name matching a loaded one's DT_NEEDED name
 * or DT_SONAME, or the same file under another name, is not loaded again. */
static bool already_loaded(const struct graph *g, const char *name, const char *real)
{
	for (size_t i = 1; i < g->n; i++) {
		const struct node *nd = &g->v[i];
		if (!strcmp(nd->name, name) || (nd->obj.soname && !strcmp(nd->obj.soname, name)))
			return true;
		if (real && nd->real && !strcmp(nd->real, real))
			return true;
	}
	return false;
}

static char *dir_of(const char *path, bool canonical)
{
	char *copy = canonical ? realpath(path, NULL) : strdup(path);
	if (!copy)
		copy = strdup(path);
	if (!copy)
		return NULL;
	char *d = strdup(dirname(copy));
	free(copy);
	return d;
}

static void resolve_needed(struct graph *g, size_t from, const struct check_options *opt,
			   struct ld_search *s, unsigned max_depth, size_t max_libs)
{
	/* The loader chain, innermost first, for DT_RPATH. */
	struct ld_requester chain[DEFAULT_MAX_DEPTH * 4 + 1];
	size_t nchain = 0;
	for (int i = (int)from; i >= 0 && nchain < sizeof chain / sizeof chain[0]; i = g->v[i].parent) {
		const struct node *nd = &g->v[i];
		chain[nchain++] = (struct ld_requester){
			.dir = nd->dir, .rpath = nd->obj.rpath, .runpath = nd->obj.runpath,
			.nodeflib = nd->obj.nodeflib,
		};
	}
	for (size_t i = 0; i + 1 < nchain; i++)
		chain[i].loader = &chain[i + 1];

	const struct strlist *needed = &g->v[from].obj.needed;
	for (size_t k = 0; k < needed->n; k++) {
		const char *name = needed->v[k];
		if (already_loaded(g, name, NULL))
			continue;
		if (g->v[from].depth + 1 > max_depth || g->n >= max_libs + 1) {
			g->bounded = true;
			return;
		}
		struct candidate c = { .want = opt->interposed };
		char found[PATH_MAX];
		if (!ld_search_find(s, name, &chain[0], accept_library, &c, found, sizeof found)) {
			char *line;
			if (asprintf(&line, "%s (needed by %s)", name, g->v[from].name) >= 0) {
				strlist_add(&g->missing, line, PATH_MAX);
				free(line);
			}
			/* Listed once, without a path, so the same name is not looked up again. */
			g->v[g->n++] = (struct node){
				.name = strdup(name), .parent = (int)from, .depth = g->v[from].depth + 1,
			};
			continue;
		}
		char *real = realpath(found, NULL);
		if (already_loaded(g, name, real)) {
			free(real);
			elf_object_free(&c.obj);
			continue;
		}
		g->v[g->n++] = (struct node){
			.name = strdup(name), .path = strdup(found), .dir = dir_of(found, false),
			.real = real,
			.parent = (int)from, .depth = g->v[from].depth + 1, .obj = c.obj,
		};
	}
}

static void load_libraries(struct graph *g, const struct check_options *opt)
{
	unsigned max_depth = opt->max_depth ? opt->max_depth : DEFAULT_MAX_DEPTH;
	if (max_depth > DEFAULT_MAX_DEPTH * 4)
		max_depth = DEFAULT_MAX_DEPTH * 4;	/* the chain array's size */
	size_t max_libs = opt->max_libraries ? opt->max_libraries : DEFAULT_MAX_LIBRARIES;
	struct node *v = realloc(g->v, (max_libs + 1) * sizeof *v);
	if (!v)
		return;
	g->v = v;
	g->cap = max_libs + 1;
	struct ld_search s = { .library_path = opt->library_path, .cache_path = opt->ld_cache };
	/* Breadth first, as ld.so orders its search list. */
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].path)
			resolve_needed(g, i, opt, &s, max_depth, max_libs);
	ld_search_free(&s);
}

/* ---- facts to reasons ------------------------------------------------------ */

static void add_import(struct check_report *r, const char *name, const char *from)
{
	for (size_t i = 0; i < r->n_imports; i++)
		if (!strcmp(r->imports[i].name, name)) {
			strlist_add_unique(&r->imports[i].from, from);
			return;
		}
	struct check_import *v = realloc(r->imports, (r->n_imports + 1) * sizeof *v);
	if (!v)
		return;
	r->imports = v;
	struct check_import *imp = &r->imports[r->n_imports];
	*imp = (struct check_import){ .name = strdup(name) };
	if (!imp->name)
		return;
	strlist_add(&imp->from, from, PATH_MAX);
	r->n_imports++;
}

static int cmp_import(const void *a, const void *b)
{
	return strcmp(((const struct check_import *)a)->name, ((const struct check_import *)b)->name);
}

static bool imports_any(const struct check_report *r, const char *a, const char *b)
{
	for (size_t i = 0; i < r->n_imports; i++)
		if (!strcmp(r->imports[i].name, a) || !strcmp(r->imports[i].name, b))
			return true;
	return false;
}

static const char *machine_name(const struct elf_object *o)
{
	static char buf[48];
	switch (o->machine) {
	case 3:   return "i386";	/* EM_386 */
	case 62:  return o->elf_class == 1 ? "x32" : "x86-64";
	case 183: return "aarch64";
	case 40:  return "arm";
	case 243: return "riscv";
	}
	snprintf(buf, sizeof buf, "machine %u, %d-bit", o->machine, o->elf_class == 1 ? 32 : 64);
	return buf;
}

/* What the program itself is; true if nothing more is worth checking. */
static bool program_reasons(const struct node *prog, struct check_report *r)
{
	const struct elf_object *o = &prog->obj;
	if (!o->x86_64) {
		reason(r, CHECK_UNSUPPORTED, "not-x86-64",
		       "built for %s: libcancelshim.so is an x86-64 library; the loader would "
		       "refuse to preload it", machine_name(o));
		return true;
	}
	switch (o->kind) {
	case ELF_OBJ_STATIC:
	case ELF_OBJ_STATIC_PIE:
		reason(r, CHECK_UNSUPPORTED, "static",
		       "statically linked (no PT_INTERP): no dynamic loader runs, so LD_PRELOAD "
		       "is never read and the shim cannot load");
		break;
	case ELF_OBJ_RELOCATABLE:
	case ELF_OBJ_CORE:
	case ELF_OBJ_OTHER:
		reason(r, CHECK_UNSUPPORTED, "not-a-program", "an ELF file of kind %s, not a "
		       "program", elf_object_kind_name(o->kind));
		return true;
	case ELF_OBJ_SHARED_LIB:
		reason(r, CHECK_NOTE, "shared-library",
		       "a shared library, not a program: what follows is about the calls it "
		       "makes inside the programs that load it");
		break;
	case ELF_OBJ_EXEC:
	case ELF_OBJ_PIE:
		break;
	}
	if (o->go_marker)
		reason(r, CHECK_UNSUPPORTED, "go",
		       "a Go program (it has %s): Go's runtime makes its system calls itself, "
		       "not through libc, so the shim sees none of its I/O", o->go_marker);
	if (o->interp) {
		const char *base = strrchr(o->interp, '/');
		base = base ? base + 1 : o->interp;
		if (strstr(base, "musl"))
			reason(r, CHECK_UNSUPPORTED, "musl",
			       "linked against musl (loader %s): libcancelshim.so is built for "
			       "glibc and would not load", o->interp);
		else if (strcmp(base, "ld-linux-x86-64.so.2"))
			reason(r, CHECK_PARTIAL, "unknown-loader",
			       "unusual loader %s: the shim is only tested with glibc's "
			       "ld-linux-x86-64.so.2", o->interp);
	}
	if (o->error[0])
		reason(r, CHECK_PARTIAL, "unreadable-part",
		       "part of the file could not be read (%s): the imports may be incomplete",
		       o->error);
	if (o->bounded)
		reason(r, CHECK_NOTE, "bounded", "a table was longer than the reader's bound and "
		       "was cut: the imports may be incomplete");
	return false;
}

static void mode_reasons(const struct check_options *opt, struct check_report *r)
{
	char who[64], owner[64];
	const char *bit = r->setuid ? "set-user-ID" : r->setgid ? "set-group-ID" : NULL;
	if (r->nosuid_mount) {
		if (bit || r->capabilities)
			reason(r, CHECK_NOTE, "nosuid-mount",
			       "its file system is mounted nosuid: its %s is ignored, so the shim "
			       "loads normally", bit ? bit : "capabilities");
		return;
	}
	if (!bit && !r->capabilities)
		return;
	if (r->setuid)
		user_name(r->owner_uid, owner, sizeof owner);
	else if (r->setgid)
		group_name(r->owner_gid, owner, sizeof owner);
	if (r->secure_exec) {
		user_name(opt->uid, who, sizeof who);
		const char *why = bit ? bit : "has file capabilities";
		reason(r, CHECK_UNSUPPORTED, "secure-exec",
		       "%s%s%s: run by %s, the kernel starts it in secure-execution mode "
		       "(AT_SECURE) and ld.so then ignores every LD_PRELOAD entry containing a "
		       "slash (and loads bare names only from the default directories, and only "
		       "if the library file is itself set-user-ID), so the shim silently does not "
		       "load; run it as %s, or remove its %s", why, bit ? " " : "", bit ? owner : "",
		       who, bit ? owner : "root", bit ? (r->setuid ? "set-user-ID bit" :
		       "set-group-ID bit") : "capabilities");
	} else {
		reason(r, CHECK_PARTIAL, "secure-exec-others",
		       "%s%s%s: the shim loads when %s runs it (as now), but for any other user "
		       "the kernel starts it in secure-execution mode and ld.so ignores "
		       "LD_PRELOAD", bit ? bit : "has file capabilities", bit ? " " : "",
		       bit ? owner : "", bit ? owner : "root");
	}
}

static void library_reasons(const struct graph *g, struct check_report *r)
{
	for (size_t i = 1; i < g->n; i++) {
		const struct node *nd = &g->v[i];
		if (nd->path && nd->obj.go_marker)
			reason(r, CHECK_PARTIAL, "go-library",
			       "library %s is Go code (it has %s): the calls it makes bypass the "
			       "shim", nd->name, nd->obj.go_marker);
	}
	for (size_t i = 0; i < g->missing.n; i++)
		reason(r, CHECK_PARTIAL, "missing-library",
		       "library %s was not found (or not a valid x86-64 library) where ld.so "
		       "would look: its imports were not checked, and the program may not "
		       "start", g->missing.v[i]);
	if (g->bounded)
		reason(r, CHECK_NOTE, "library-limit",
		       "stopped following libraries at the depth or count bound: the rest were "
		       "not checked");
}

static void uring_reasons(const struct graph *g, struct check_report *r)
{
	for (size_t i = 0; i < g->n; i++) {
		const struct node *nd = &g->v[i];
		const char *why = NULL;
		for (size_t k = 0; k < nd->obj.needed.n && !why; k++)
			if (!strncmp(nd->obj.needed.v[k], "liburing.so", 11))
				why = nd->obj.needed.v[k];
		if (!why && nd->obj.uring.n)
			why = nd->obj.uring.v[0];
		if (!why)
			continue;
		r->io_uring = true;
		reason(r, CHECK_PARTIAL, "io-uring",
		       "uses io_uring (%s in %s): I/O submitted through a ring never passes "
		       "through the calls the shim interposes, so that work is not cancelled",
		       why, nd->name);
		return;	/* once is enough */
	}
}

static void import_reasons(const struct graph *g, const struct check_options *opt,
			   struct check_report *r)
{
	for (size_t i = 0; i < g->n; i++)
		for (size_t k = 0; k < g->v[i].obj.imports.n; k++)
			add_import(r, g->v[i].obj.imports.v[k], g->v[i].name);
	if (r->n_imports > 1)
		qsort(r->imports, r->n_imports, sizeof *r->imports, cmp_import);

	if (!opt->interposed) {
		reason(r, CHECK_PARTIAL, "no-shim-library",
		       "could not read libcancelshim.so's exports (%s): which calls the shim "
		       "would interpose was not checked",
		       opt->shim_error ? opt->shim_error : "no library");
		return;
	}
	/* dlopen is the shim's loader hook, not a call it can cancel. */
	size_t cancellable = r->n_imports - (imports_any(r, "dlopen", "dlopen") ? 1 : 0);
	if (cancellable == 0) {
		reason(r, CHECK_PARTIAL, "no-interposed-calls",
		       "imports none of the %zu calls libcancelshim.so interposes: it runs "
		       "untouched, but none of its work can be cancelled", opt->interposed->n);
		return;
	}
	bool shim_tracks_accept = strlist_has(opt->interposed, "accept") ||
				  strlist_has(opt->interposed, "accept4");
	bool program = g->v[0].obj.kind != ELF_OBJ_SHARED_LIB;
	if (program && shim_tracks_accept && !imports_any(r, "accept", "accept4"))
		reason(r, CHECK_PARTIAL, "no-accept",
		       "never calls accept or accept4: connections it is handed (by inetd, "
		       "systemd socket activation or a parent process) are not client "
		       "connections to the shim, so nothing is cancelled");
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].obj.imports_syscall) {
			reason(r, CHECK_NOTE, "raw-syscall",
			       "%s imports syscall(): any call made through it bypasses the shim",
			       g->v[i].name);
			break;
		}
}

/* What check cannot see: libraries loaded at run time. The shim's dlopen
 * hook covers those loaded with RTLD_DEEPBIND by a path (PHP's extensions,
 * and what they bring in); another link-map namespace (dlmopen) has its own
 * libc and no shim. */
static void runtime_load_reasons(const struct graph *g, const struct check_options *opt,
				 struct check_report *r)
{
	bool hook = !opt->interposed || strlist_has(opt->interposed, "dlopen");
	const struct node *prog = &g->v[0];

	if (prog->obj.php_extension)
		reason(r, hook ? CHECK_NOTE : CHECK_PARTIAL, "php-extension",
		       hook ? "a PHP extension (it defines get_module): PHP loads it with "
			      "dlopen(RTLD_DEEPBIND), so its calls (and those of the libraries it "
			      "brings in) bind to libc, not to a preloaded library; they are covered "
			      "by the shim's dlopen hook, which rebinds its interposed calls to the "
			      "shim after the load"
			    : "a PHP extension (it defines get_module): PHP loads it with "
			      "dlopen(RTLD_DEEPBIND), so its calls bind to libc, and this "
			      "libcancelshim.so has no dlopen hook: they bypass the shim");
	else if (prog->obj.kind == ELF_OBJ_SHARED_LIB)
		reason(r, CHECK_NOTE, "deepbind-library",
		       "if a program loads it with dlopen(RTLD_DEEPBIND) its calls bind to libc, not "
		       "to a preloaded library: %s; loaded so by a bare name or a $ORIGIN path, or "
		       "into another namespace (dlmopen), its calls bypass the shim",
		       hook ? "loaded so by a path, the shim's dlopen hook rebinds its interposed "
			      "calls to the shim"
			    : "this libcancelshim.so has no dlopen hook to rebind them");
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].obj.imports_dlopen) {
			reason(r, CHECK_NOTE, "dlopen",
			       "%s calls dlopen(): libraries loaded at run time are not checked here. "
			       "%s", g->v[i].name,
			       hook ? "Those loaded with RTLD_DEEPBIND (PHP's extensions, for one) are "
				      "covered by the shim's dlopen hook when loaded by a path (not a "
				      "bare name or a $ORIGIN path)"
				    : "Those loaded with RTLD_DEEPBIND (PHP's extensions, for one) "
				      "bypass this libcancelshim.so, which has no dlopen hook");
			break;
		}
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].obj.imports_dlmopen) {
			reason(r, CHECK_NOTE, "dlmopen",
			       "%s calls dlmopen(): a library loaded into another link-map namespace "
			       "has its own libc and no shim, so its calls bypass the shim",
			       g->v[i].name);
			break;
		}
}

/* Worst first, otherwise in the order found (insertion sort: stable, and the
 * list is a handful long). */
static void sort_reasons(struct check_reason *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		struct check_reason x = v[i];
		size_t j = i;
		for (; j > 0 && v[j - 1].level < x.level; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static int finish(struct check_report *r)
{
	enum check_level worst = CHECK_NOTE;
	for (size_t i = 0; i < r->n_reasons; i++)
		if (r->reasons[i].level > worst)
			worst = r->reasons[i].level;
	r->verdict = worst == CHECK_UNSUPPORTED ? CHECK_VERDICT_UNSUPPORTED :
		     worst == CHECK_PARTIAL ? CHECK_VERDICT_PARTIAL : CHECK_VERDICT_SUPPORTED;
	sort_reasons(r->reasons, r->n_reasons);
	return (int)r->verdict;
}

/* Everything after the program has been scanned into g->v[0]. */
static int conclude(struct graph *g, const struct check_options *opt, struct check_report *r)
{
	struct node *prog = &g->v[0];
	r->kind = elf_object_kind_name(prog->obj.kind);
	r->go_marker = prog->obj.go_marker;
	if (prog->obj.interp)
		r->interp = strdup(prog->obj.interp);
	r->interposed = opt->interposed ? opt->interposed->n : 0;
	if (opt->shim_path)
		r->shim_path = strdup(opt->shim_path);
	if (!opt->interposed)
		r->shim_error = strdup(opt->shim_error && *opt->shim_error ? opt->shim_error :
				       "no library");
	if (program_reasons(prog, r))
		return finish(r);
	mode_reasons(opt, r);
	bool dynamic = prog->obj.kind != ELF_OBJ_STATIC && prog->obj.kind != ELF_OBJ_STATIC_PIE;
	if (dynamic && opt->follow_libraries && prog->path)
		load_libraries(g, opt);
	for (size_t i = 1; i < g->n; i++) {
		struct check_library *v = realloc(r->libs, (r->n_libs + 1) * sizeof *v);
		if (!v)
			break;
		r->libs = v;
		const struct node *nd = &g->v[i];
		r->libs[r->n_libs++] = (struct check_library){
			.name = strdup(nd->name), .path = nd->path ? strdup(nd->path) : NULL,
			.needed_by = strdup(g->v[nd->parent].name), .depth = nd->depth,
		};
	}
	library_reasons(g, r);
	uring_reasons(g, r);
	if (dynamic) {
		import_reasons(g, opt, r);
		runtime_load_reasons(g, opt, r);
	}
	return finish(r);
}

static void graph_free(struct graph *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->v[i].name);
		free(g->v[i].path);
		free(g->v[i].dir);
		free(g->v[i].real);
		elf_object_free(&g->v[i].obj);
	}
	free(g->v);
	strlist_free(&g->missing);
}

static bool graph_init(struct graph *g)
{
	*g = (struct graph){ 0 };
	g->v = calloc(1, sizeof *g->v);
	if (!g->v)
		return false;
	g->cap = 1;
	g->n = 1;
	g->v[0].parent = -1;
	return true;
}

int check_analyze_path(const char *path, const struct check_options *opt, struct check_report *r)
{
	*r = (struct check_report){ .readable = true };
	char elf[PATH_MAX];
	int rc = follow_scripts(path, r, elf, sizeof elf);
	if (rc)
		return rc;
	r->path = strdup(elf);
	int fd = open_regular(elf);
	if (fd < 0)
		return fail(r, "%s: %s", elf, errno == EINVAL ? "not a regular file" : strerror(errno));
	struct graph g;
	if (!graph_init(&g)) {
		close(fd);
		return fail(r, "out of memory");
	}
	read_mode(fd, opt, r);
	struct node *prog = &g.v[0];
	int scanned = elf_object_scan_fd(fd, opt->interposed, 0, &prog->obj);
	close(fd);
	if (scanned != 0 || prog->obj.corrupt) {
		rc = fail(r, "%s: %s", elf, prog->obj.error);
		graph_free(&g);
		return rc;
	}
	const char *base = strrchr(elf, '/');
	prog->name = strdup(base ? base + 1 : elf);
	prog->path = strdup(elf);
	prog->dir = dir_of(elf, true);	/* ld.so takes $ORIGIN of the program from /proc/self/exe */
	prog->real = realpath(elf, NULL);
	if (r->scripts.n)
		reason(r, CHECK_NOTE, "script",
		       "%s is a script: what runs is %s, and that is what was checked",
		       r->scripts.v[0], elf);
	rc = conclude(&g, opt, r);
	graph_free(&g);
	return rc;
}

int check_analyze_memory(const void *buf, size_t len, const struct check_options *opt,
			 struct check_report *r)
{
	*r = (struct check_report){ .readable = true };
	struct graph g;
	if (!graph_init(&g))
		return fail(r, "out of memory");
	struct node *prog = &g.v[0];
	if (elf_object_scan_memory(buf, len, opt->interposed, 0, &prog->obj) != 0 ||
	    prog->obj.corrupt) {
		int rc = fail(r, "%s", prog->obj.error);
		graph_free(&g);
		return rc;
	}
	prog->name = strdup("(memory)");
	int rc = conclude(&g, opt, r);	/* prog->path is NULL: no libraries */
	graph_free(&g);
	return rc;
}

void check_report_free(struct check_report *r)
{
	free(r->path);
	free(r->interp);
	free(r->shim_path);
	free(r->shim_error);
	strlist_free(&r->scripts);
	for (size_t i = 0; i < r->n_imports; i++) {
		free(r->imports[i].name);
		strlist_free(&r->imports[i].from);
	}
	free(r->imports);
	for (size_t i = 0; i < r->n_libs; i++) {
		free(r->libs[i].name);
		free(r->libs[i].path);
		free(r->libs[i].needed_by);
	}
	free(r->libs);
	for (size_t i = 0; i < r->n_reasons; i++)
		free(r->reasons[i].text);
	free(r->reasons);
	*r = (struct check_report){ 0 };
}

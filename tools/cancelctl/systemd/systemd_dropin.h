/* The drop-in `cancelctl enable` writes for a systemd unit, as pure text
 * functions (no files, no systemctl) so the tests can drive them:
 *   - the unit's LD_PRELOAD merged with the shim's (theirs kept, ours
 *     appended once, another copy of libcancelshim.so replaced);
 *   - the file's text, whose first line is a marker: `disable` removes only a
 *     file that starts with it, and the directory only if enable created it.
 * The systemctl side is in systemd_query.c, the command in cmd_systemd.c. */
#ifndef CANCELCTL_SYSTEMD_DROPIN_H
#define CANCELCTL_SYSTEMD_DROPIN_H

#include <stdbool.h>
#include <stddef.h>

/* The first line of every drop-in cancelctl writes. */
#define DROPIN_MARKER "# cancelshim drop-in written by cancelctl enable; cancelctl disable removes it"
/* The second line when enable also created UNIT.d (disable removes it then, if empty). */
#define DROPIN_DIR_CREATED "# cancelctl: created-directory"
#define DROPIN_NAME "cancelshim.conf"

/* The value of LD_PRELOAD in an `Environment=` property as `systemctl show
 * -p Environment --value` prints it (space-separated assignments, a value
 * with spaces in double quotes); NULL if it has none. Returns a malloc'd string. */
char *dropin_env_lookup(const char *environment, const char *name);

/* LD_PRELOAD with lib appended: entries (separated by ':' or ' ') kept in
 * order, lib added once, any other libcancelshim.so dropped. malloc'd. */
char *dropin_preload_merge(const char *old, const char *lib);

struct dropin {
	const char *preload;		/* the merged LD_PRELOAD */
	const char *env[8][2];		/* CANCELSHIM_* settings: variable, value */
	size_t n_env;
	bool dir_created;
	const char *comment;		/* one line saying why (mode epoll...), or NULL */
};

/* The file's text, malloc'd. Values are quoted for systemd ("...", with
 * backslash and quote escaped, % doubled: systemd expands specifiers). */
char *dropin_render(const struct dropin *d);

/* True if text is a drop-in cancelctl wrote (starts with the marker). */
bool dropin_is_ours(const char *text);
/* True if the drop-in records that enable created its directory. */
bool dropin_created_dir(const char *text);

/* A unit name systemd would accept for a service: "name" gets ".service";
 * NULL (with the reason in err) for a name with '/' or that is empty,
 * "." or "..". malloc'd. */
char *dropin_unit_name(const char *arg, char *err, size_t errlen);

#endif

/* What cancelctl enable/disable/status ask systemd, through systemctl (no
 * libsystemd: the tool must work on a machine or in an image build where
 * systemd does not run).
 *
 *   CANCELCTL_SYSTEMD_DIR  where drop-ins go (default /etc/systemd/system)
 *   CANCELCTL_SYSTEMCTL    the systemctl to run; when set it is used even if
 *                          systemd is not running (the tests' fake answers
 *                          from fixtures). Otherwise "systemctl" from PATH,
 *                          only when systemd runs (/run/systemd/system). */
#ifndef CANCELCTL_SYSTEMD_QUERY_H
#define CANCELCTL_SYSTEMD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

const char *sd_dropin_root(void);

/* True when systemctl can be asked (see above). */
bool sd_available(void);

/* `systemctl show -p PROP --value UNIT`, trailing newlines removed;
 * malloc'd, NULL if systemctl failed. */
char *sd_show(const char *unit, const char *prop);

/* `systemctl daemon-reload`: 0, or -1 (a line on stderr says why). */
int sd_daemon_reload(void);

/* The program of the first ExecStart= in `systemctl show -p ExecStart
 * --value` ("{ path=/usr/bin/x ; argv[]=... }"); malloc'd, NULL if none. */
char *sd_exec_path(const char *execstart);

/* The pids of a unit: its MainPID and those in its cgroup (v2), without
 * duplicates, at most max of them in pids; their number. */
size_t sd_unit_pids(const char *unit, pid_t *pids, size_t max);

#endif

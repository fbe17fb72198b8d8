/* Resolving a command name the way execvp(3) does, so `run` can check the
 * very file it is about to execute. */
#ifndef CANCELCTL_CHECK_PATH_H
#define CANCELCTL_CHECK_PATH_H

#include <stddef.h>

/* A name with a slash is taken as is; otherwise each $PATH entry is tried
 * (default "/bin:/usr/bin", an empty entry meaning the current directory).
 * Returns 0 with out set to an executable regular file, or an errno value:
 * ENOENT (nowhere), EACCES (found, but not executable or not a regular
 * file), ENAMETOOLONG. */
int path_resolve(const char *cmd, char *out, size_t outsz);

#endif

/* See check_path.h. */
#include "check_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* 0 if path is an executable regular file, else the errno execve would give. */
static int executable(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return errno == ENOTDIR ? ENOENT : errno;
	if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0)
		return EACCES;
	return 0;
}

static int take(const char *path, char *out, size_t outsz)
{
	if (strlen(path) >= outsz)
		return ENAMETOOLONG;
	strcpy(out, path);
	return 0;
}

int path_resolve(const char *cmd, char *out, size_t outsz)
{
	if (!*cmd)
		return ENOENT;
	if (strchr(cmd, '/')) {
		int err = executable(cmd);
		return err ? err : take(cmd, out, outsz);
	}
	const char *path = getenv("PATH");
	if (!path)
		path = "/bin:/usr/bin";
	int seen = ENOENT;
	for (const char *p = path;;) {
		size_t len = strcspn(p, ":");
		char cand[4096];
		int n = len ? snprintf(cand, sizeof cand, "%.*s/%s", (int)len, p, cmd)
			    : snprintf(cand, sizeof cand, "%s", cmd);
		if (n > 0 && (size_t)n < sizeof cand) {
			int err = executable(cand);
			if (!err)
				return take(cand, out, outsz);
			if (err == EACCES)
				seen = EACCES;	/* execvp reports EACCES if nothing better turns up */
		}
		if (!p[len])
			break;
		p += len + 1;
	}
	return seen;
}

/* A dynamic program for the cancelctl tests. Prints what a program started by
 * `cancelctl run` sees: its LD_PRELOAD, each CANCELSHIM_* variable, and the
 * libcancelshim.so it really has mapped (from /proc/self/maps), one
 * "KEY=value" line each. It also imports read, recv and accept, so that
 * `cancelctl check` has interposed calls to find in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *var)
{
	const char *v = getenv(var);
	printf("%s=%s\n", var, v ? v : "<unset>");
}

/* Every mapped file whose name ends in libcancelshim.so, ':'-separated. */
static void show_mapped(void)
{
	FILE *maps = fopen("/proc/self/maps", "re");
	char line[4096], seen[4096] = "";
	while (maps && fgets(line, sizeof line, maps)) {
		line[strcspn(line, "\n")] = '\0';
		const char *path = strchr(line, '/');
		if (!path || strlen(path) < 16 || strcmp(path + strlen(path) - 16, "libcancelshim.so"))
			continue;
		if (strstr(seen, path))
			continue;	/* one line per file, not per mapping */
		if (seen[0])
			strncat(seen, ":", sizeof seen - strlen(seen) - 1);
		strncat(seen, path, sizeof seen - strlen(seen) - 1);
	}
	if (maps)
		fclose(maps);
	printf("MAPPED=%s\n", seen[0] ? seen : "<none>");
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--io")) {
		/* Never run by the tests: here so the imports exist. */
		char b[1];
		int c = accept(0, NULL, NULL);
		return (int)(recv(c, b, 1, 0) + read(c, b, 1));
	}
	show("LD_PRELOAD");
	show("CANCELSHIM_MODE");
	show("CANCELSHIM_ON");
	show("CANCELSHIM_CALLS");
	show("CANCELSHIM_SIGNAL");
	show("CANCELSHIM_LOG");
	show("CANCELSHIM_ACTION");
	show("CANCELSHIM_PORTS");
	show("CANCELSHIM_PROFILE");
	show_mapped();
	return argc > 2 && !strcmp(argv[1], "--exit") ? atoi(argv[2]) : 0;
}

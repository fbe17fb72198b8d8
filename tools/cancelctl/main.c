/* cancelctl: run programs under libcancelshim.so and inspect them.
 * This file only dispatches to the subcommands (cmd_*.c). */
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "run",   cmd_run,   "run a program with the shim preloaded" },
	{ "check", cmd_check, "tell whether a binary can work under the shim" },
	{ "demo",  cmd_demo,  "show a cancelled request next to an uncancelled one" },
	{ "stats", cmd_stats, "live statistics of every shimmed process" },
	{ "watch", cmd_watch, "live view of passive TCP disconnects, system-wide (root)" },
	{ "enable", cmd_enable, "enable the shim on a systemd service (a drop-in)" },
	{ "disable", cmd_disable, "remove what enable wrote" },
	{ "status", cmd_status, "units with the shim enabled, and whether it is loaded" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: cancelctl COMMAND [ARGS...]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-7s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'cancelctl COMMAND --help' describes each command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("cancelctl %s\n", CS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cancelctl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}

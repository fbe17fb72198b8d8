#include <stdio.h>
#include "commands.h"

int cmd_watch(int argc, char **argv)
{
	fprintf(stderr, "cancelctl watch: not written yet\n");
	return 2;
}

#include <stdio.h>
#include "commands.h"

int cmd_stats(int argc, char **argv)
{
	fprintf(stderr, "cancelctl stats: not written yet\n");
	return 2;
}

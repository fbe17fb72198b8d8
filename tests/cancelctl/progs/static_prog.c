/* Linked with -static: `check` must call it unsupported and `run` refuse it. */
#include <stdio.h>

int main(void)
{
	puts("static program ran");
	return 0;
}

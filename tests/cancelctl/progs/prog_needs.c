/* A program needing libcsneeded.so, linked by the tests at run time with the
 * DT_RPATH / DT_RUNPATH each test wants. Imports accept, so that with the
 * test library (fakeshim) only the library layout decides the verdict. */
#include <sys/socket.h>

int csneeded(int fd);

int main(int argc, char **argv)
{
	(void)argv;
	return argc > 5 ? csneeded(accept(0, 0, 0)) : 0;
}

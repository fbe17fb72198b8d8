/* References io_uring_setup (weak, so it links without liburing), the way a
 * program built against liburing imports its symbols: `check` must report
 * io_uring. Also imports accept and read so nothing else is partial. */
#include <sys/socket.h>
#include <unistd.h>

extern int io_uring_setup(unsigned entries, void *params) __attribute__((weak));

int main(int argc, char **argv)
{
	(void)argv;
	if (argc > 5) {
		char b[1];
		return io_uring_setup(8, 0) + (int)read(accept(0, 0, 0), b, 1);
	}
	return 0;
}

/* libcsdep.so for the library-search tests: imports recv, so `check` must
 * find recv "from libcsdep.so" when it follows the libraries transitively. */
#include <sys/socket.h>

int csdep_recv(int fd) { char b[1]; return (int)recv(fd, b, 1, 0); }

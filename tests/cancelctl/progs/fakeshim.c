/* A stand-in for libcancelshim.so given to `check --lib`: exports a known
 * set of calls (and hides others), so tests of what `check` finds do not
 * depend on the real library's progress. Never preloaded into anything. */
#include <sys/socket.h>
#include <sys/types.h>

ssize_t read(int fd, void *buf, size_t n) { (void)fd; (void)buf; (void)n; return -1; }
ssize_t recv(int fd, void *buf, size_t n, int flags) { (void)fd; (void)buf; (void)n; (void)flags; return -1; }
int accept(int fd, struct sockaddr *a, socklen_t *l) { (void)fd; (void)a; (void)l; return -1; }
int accept4(int fd, struct sockaddr *a, socklen_t *l, int f) { (void)fd; (void)a; (void)l; (void)f; return -1; }
__attribute__((visibility("hidden"))) int connect(int fd, const struct sockaddr *a, socklen_t l)
{ (void)fd; (void)a; (void)l; return -1; }

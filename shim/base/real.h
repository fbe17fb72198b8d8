/* The libc functions the shim forwards to, found with dlsym(RTLD_NEXT).
 *
 * Until they are resolved (and if resolving one fails) each pointer holds a
 * bootstrap version that issues the system call directly, so a wrapper called
 * from inside dlsym (an allocator being initialised, say) still works. */
#ifndef CS_REAL_H
#define CS_REAL_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

/* X(return type, name, parameter list) */
#define CS_REAL_FUNCTIONS(X)                                                                  \
	X(ssize_t, read, (int, void *, size_t))                                                 \
	X(ssize_t, write, (int, const void *, size_t))                                          \
	X(ssize_t, readv, (int, const struct iovec *, int))                                     \
	X(ssize_t, writev, (int, const struct iovec *, int))                                    \
	X(ssize_t, pread64, (int, void *, size_t, off_t))                                       \
	X(ssize_t, pwrite64, (int, const void *, size_t, off_t))                                \
	X(ssize_t, preadv64, (int, const struct iovec *, int, off_t))                           \
	X(ssize_t, pwritev64, (int, const struct iovec *, int, off_t))                          \
	X(ssize_t, preadv2, (int, const struct iovec *, int, off_t, int))                       \
	X(ssize_t, pwritev2, (int, const struct iovec *, int, off_t, int))                      \
	X(ssize_t, recv, (int, void *, size_t, int))                                            \
	X(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *, socklen_t *))        \
	X(ssize_t, recvmsg, (int, struct msghdr *, int))                                        \
	X(int, recvmmsg, (int, struct mmsghdr *, unsigned int, int, struct timespec *))         \
	X(ssize_t, send, (int, const void *, size_t, int))                                      \
	X(ssize_t, sendto, (int, const void *, size_t, int, const struct sockaddr *, socklen_t)) \
	X(ssize_t, sendmsg, (int, const struct msghdr *, int))                                  \
	X(int, sendmmsg, (int, struct mmsghdr *, unsigned int, int))                            \
	X(ssize_t, sendfile64, (int, int, off_t *, size_t))                                     \
	X(int, connect, (int, const struct sockaddr *, socklen_t))                              \
	X(int, poll, (struct pollfd *, nfds_t, int))                                            \
	X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *, const sigset_t *))     \
	X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *))                   \
	X(int, pselect, (int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *)) \
	X(int, epoll_wait, (int, struct epoll_event *, int, int))                               \
	X(int, epoll_pwait, (int, struct epoll_event *, int, int, const sigset_t *))            \
	X(int, epoll_pwait2, (int, struct epoll_event *, int, const struct timespec *, const sigset_t *)) \
	X(int, nanosleep, (const struct timespec *, struct timespec *))                         \
	X(int, clock_nanosleep, (clockid_t, int, const struct timespec *, struct timespec *))   \
	X(int, usleep, (useconds_t))                                                            \
	X(unsigned int, sleep, (unsigned int))                                                  \
	X(int, accept, (int, struct sockaddr *, socklen_t *))                                   \
	X(int, accept4, (int, struct sockaddr *, socklen_t *, int))                             \
	X(int, close, (int))                                                                    \
	X(int, dup, (int))                                                                      \
	X(int, dup2, (int, int))                                                                \
	X(int, dup3, (int, int, int))                                                           \
	X(int, fcntl, (int, int, ...))                                                          \
	X(int, close_range, (unsigned int, unsigned int, int))                                  \
	X(void, closefrom, (int))                                                               \
	X(int, fclose, (FILE *))                                                                \
	X(int, socket, (int, int, int))                                                         \
	X(int, socketpair, (int, int, int, int *))                                              \
	X(int, pipe, (int *))                                                                   \
	X(int, pipe2, (int *, int))                                                             \
	X(int, openat, (int, const char *, int, ...))                                           \
	X(int, epoll_create1, (int))                                                            \
	X(int, epoll_ctl, (int, int, int, struct epoll_event *))                                \
	X(int, listen, (int, int))                                                              \
	X(int, sigaction, (int, const struct sigaction *, struct sigaction *))                  \
	X(int, sigprocmask, (int, const sigset_t *, sigset_t *))                                \
	X(int, pthread_sigmask, (int, const sigset_t *, sigset_t *))                            \
	X(int, sigsuspend, (const sigset_t *))                                                  \
	X(__sighandler_t, signal, (int, __sighandler_t))                                        \
	X(__sighandler_t, sysv_signal, (int, __sighandler_t))                                    \
	X(int, setuid, (uid_t))                                                                 \
	X(int, seteuid, (uid_t))                                                                \
	X(int, setreuid, (uid_t, uid_t))                                                        \
	X(int, setresuid, (uid_t, uid_t, uid_t))

struct cs_real {
#define CS_REAL_FIELD(ret, name, params) ret(*name) params;
	CS_REAL_FUNCTIONS(CS_REAL_FIELD)
#undef CS_REAL_FIELD
};

extern struct cs_real cs_real;

/* Resolves every pointer; safe to call again. Called from the constructor. */
void cs_real_resolve(void);

#endif

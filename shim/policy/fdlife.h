/* The descriptor life cycle, from the wrappers in wrap/wrap_fd.c (and
 * accept.c): what the table must learn when descriptors come, go, are
 * duplicated or enter epoll sets. */
#ifndef CS_FDLIFE_H
#define CS_FDLIFE_H

#include <stdint.h>

#include "track/fdtable.h"

void cs_fd_accept_begin(void);
void cs_fd_closing(int fd, uint64_t slot);
void cs_fd_closing_range(unsigned first, unsigned last);
void cs_fd_duplicated(int oldfd, int newfd);
void cs_fd_created(int fd, enum cs_fdclass cls);	/* 0: class unknown */
void cs_fd_pair_created(int fd0, int fd1, enum cs_fdclass cls);	/* pipe, socketpair */
void cs_fd_listening(int fd);
void cs_fd_epoll_created(int epfd);
void cs_fd_epoll_added(int epfd, int fd);
void cs_fd_epoll_removed(int epfd, int fd);
void cs_fd_epoll_rearmed(int epfd, int fd);	/* EPOLL_CTL_MOD */
/* An event loop's poll or select names fd: a client is parked
 * (cs_conn_park), a pipe or wait object is the loop's wake-up. */
void cs_fd_loop_waits_on(int fd);


#endif

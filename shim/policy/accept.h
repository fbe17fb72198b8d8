/* accept(): a new connection enters the descriptor table. */
#ifndef CS_ACCEPT_H
#define CS_ACCEPT_H

#include <stdint.h>
#include <sys/socket.h>

/* Marks fd as accepted from listener lfd (a client connection if it is a
 * stream socket). Called after a successful accept, with the listener's word
 * and cs_ebpf_epoch as they were before the accept began, and the peer's
 * address (NULL if not known). */
void cs_accept_record(int lfd, int fd, uint64_t ls_before, unsigned epoch_before, const struct sockaddr *peer,
		      socklen_t peer_len);

#endif

/* accept(): a connection enters the descriptor table, as a client (with its
 * generation, its eBPF key and whether CANCELSHIM_PORTS covers it) or, if
 * its listener does not make client connections, as any other descriptor. */
#include "policy/accept.h"

#include <sys/socket.h>

#include "base/once.h"
#include "base/process.h"
#include "base/raw_syscall.h"
#include "policy/fdlife.h"
#include "policy/policy.h"
#include "stats/stats.h"
#include "track/conn_key.h"
#include "track/fdtable.h"
#include "track/kshared.h"
#include "track/scope.h"
#include "watch/ebpf_watcher.h"
#include "watch/watcher.h"

void cs_accept_record(int lfd, int fd, uint64_t ls_before, unsigned epoch_before, const struct sockaddr *peer,
		      socklen_t peer_len)
{
	_Atomic uint64_t *lref;
	uint64_t ls, slot, key = 0;
	unsigned entry1;
	int took_dead = 0;

	if (!atomic_load_explicit(&cs_proc.active, memory_order_relaxed))
		return;
	cs_process_check();
	lref = cs_fd_ref(lfd);
	ls = lref ? atomic_load(lref) : 0;
	if (CS_SLOT_KIND(ls) != CS_KIND_LISTENER || !(ls & CS_LISTENER_TYPE_KNOWN)) {
		/* Once per listener: is what it accepts a client connection? */
		int type = 0, domain = 0;
		socklen_t len = sizeof type;
		cs_raw6(SYS_getsockopt, lfd, SOL_SOCKET, SO_TYPE, (long)&type, (long)&len, 0);
		len = sizeof domain;
		cs_raw6(SYS_getsockopt, lfd, SOL_SOCKET, SO_DOMAIN, (long)&domain, (long)&len, 0);
		ls = CS_SLOT_MAKE(CS_KIND_LISTENER, 0) | CS_LISTENER_TYPE_KNOWN;
		if (type == SOCK_STREAM && (domain == AF_INET || domain == AF_INET6 || domain == AF_UNIX))
			ls |= CS_LISTENER_STREAM;
		if (lref)
			atomic_store(lref, ls);
		if ((ls & CS_LISTENER_STREAM) && domain != AF_UNIX)
			cs_ebpf_listener_met(lfd);
	}
	if (!(ls & CS_LISTENER_STREAM)) {
		cs_fd_created(fd, CS_FDCLASS_NET);
		return;
	}
	slot = CS_SLOT_MAKE(CS_KIND_CLIENT, cs_process_new_gen());
	/* Covered by the eBPF watcher if its listener was TRUSTED before the
	 * accept began (then the client queued after its port was filtered).
	 * A client CANCELSHIM_PORTS left out is never watched (scope.h). */
	if (cs_scope_excludes(lfd, lref, &entry1))
		slot |= CS_CLIENT_UNSCOPED;
	else if ((ls_before & CS_LISTENER_TRUSTED) && peer)
		key = cs_conn_key_from_sockaddr(peer, peer_len, CS_LISTENER_PORT(ls_before));
	slot |= CS_CLIENT_WITH_PORT(entry1);
	cs_conn_key_set(fd, key);
	if (key && cs_conn_key_index(fd, key) == 0)
		slot |= CS_CLIENT_EBPF;
	/* The kernel-side index too (memory only; 0 if off or crowded: the
	 * watcher handles that connection's disconnect). */
	cs_conn_key_set_kidx(fd, (slot & CS_CLIENT_EBPF) ? cs_kshared_index(fd, key, (uint32_t)slot, &took_dead) : 0);
	if (CS_SLOT_IS_OURS(cs_fd_exchange(fd, slot, 1)))
		cs_watcher_own_fd_lost(fd);	/* closed behind our back */
	if (slot & CS_CLIENT_EBPF) {
		/* Still TRUSTED now that the connection is stored? If not, the
		 * watcher started distrusting it meanwhile (ebpf_watcher.h):
		 * epoll watches this one. */
		_Atomic uint64_t *ref = cs_fd_ref_existing(fd);
		uint64_t expected = slot;
		if (!(cs_fd_get(lfd) & CS_LISTENER_TRUSTED) && ref)
			atomic_compare_exchange_strong(ref, &expected, slot & ~CS_CLIENT_EBPF);
		else if (atomic_load(&cs_ebpf_epoch) != epoch_before)
			cs_ebpf_check_straddler(fd, slot);
		/* The entry this accept took over had our key and the kernel's
		 * DEAD mark: the program may have found it for our own
		 * connection's disconnect, before our entry was there. Rare (a
		 * peer reusing its address and port): ask the socket. */
		else if (took_dead)
			cs_ebpf_check_straddler(fd, slot);
		else if (cs_once_done(&cs_proc.machinery))
			cs_ebpf_check_accepted(fd, slot, key);
	}
	if (!atomic_load_explicit(&cs_proc.serving, memory_order_relaxed))
		atomic_store(&cs_proc.serving, 1);
	cs_stat_add(CS_STAT_CONNECTIONS, 1);
	cs_stats_port_add(entry1, CS_PORT_ACCEPTED);
	cs_stats_publish();	/* the first accept makes the process visible to cancelctl */
}

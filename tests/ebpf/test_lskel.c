/* The light skeleton (disconnect.lskel.h) configured as the shim will use
 * it: no libbpf, kernel-side CO-RE, only the process's network namespace
 * and the local ports it listens on (the `lports` map, filled at run time),
 * read through a hand-written ring buffer reader. Suite 'ebpf', root. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <unistd.h>

#include "testlib.h"
#include "lskel_ring.h"
#include "disconnect.lskel.h"

struct watcher {
	struct disconnect *skel;
	struct lskel_ring ring;
};

static unsigned own_netns(void)
{
	struct stat st;
	cr_assert(stat("/proc/self/ns/net", &st) == 0);
	return st.st_ino;
}

/* open -> configure (rodata) -> load -> attach -> map the ring. */
static void watcher_start(struct watcher *w, unsigned netns)
{
	if (geteuid() != 0)
		cr_skip_test("loading eBPF programs needs root (CI runs as root)");
	w->skel = disconnect__open();
	cr_assert(w->skel, "disconnect__open");
	w->skel->rodata->filter_lports = true;
	w->skel->rodata->target_netns = netns;
	w->skel->rodata->passive_only = true;
	int err = disconnect__load(w->skel);
	cr_assert(!err, "the kernel refused the light skeleton: %d (%s)", err, strerror(errno));
	cr_assert(!disconnect__attach(w->skel), "attach");
	cr_assert(lskel_ring_open(&w->ring, w->skel->maps.events.map_fd, DISCONNECT_RINGBUF_BYTES),
		  "mmap of the ring buffer: %s", strerror(errno));
}

static void watcher_add_port(struct watcher *w, int port)
{
	__u16 key = port;
	__u8 one = 1;
	cr_assert(skel_map_update_elem(w->skel->maps.lports.map_fd, &key, &one, 0) == 0,
		  "adding port %d: %s", port, strerror(errno));
}

static void watcher_stop(struct watcher *w)
{
	lskel_ring_close(&w->ring);
	disconnect__destroy(w->skel);
}

/* A connection through lfd, closed by the client (FIN) or reset (RST);
 * returns the client's port. The server socket is left open in *server. */
static int disconnect_one(int lfd, int port, bool reset, int *server)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof sin;
	int c = tl_connect_tcp("127.0.0.1", port, 2000);
	cr_assert(c >= 0);
	*server = tl_accept(lfd, 2000);
	cr_assert(*server >= 0);
	cr_assert(getsockname(c, (struct sockaddr *)&sin, &sl) == 0);
	cr_assert(tl_write_str(c, "hello\n", 2000) == 0);
	char buf[8];
	cr_assert(tl_read_n(*server, buf, 6, 2000) == 6);
	if (reset)
		tl_abort(c);
	else
		close(c);
	return ntohs(sin.sin_port);
}

Test(lskel, only_listed_ports_of_our_netns, .timeout = 30)
{
	struct watcher w;
	struct disconnect_event e;
	int port, other, s1, s2, s3;
	int lfd = tl_listen_tcp("127.0.0.1", 0, &port), ofd = tl_listen_tcp("127.0.0.1", 0, &other);
	cr_assert(lfd >= 0 && ofd >= 0);

	watcher_start(&w, own_netns());
	watcher_add_port(&w, port);

	/* Not listed: nothing. Listed: FIN, then RST, in order. */
	int c0 = disconnect_one(ofd, other, false, &s1);
	unsigned long long t0 = tl_now_ns();
	int c1 = disconnect_one(lfd, port, false, &s2);
	int c2 = disconnect_one(lfd, port, true, &s3);

	cr_assert(lskel_ring_next(&w.ring, &e, 5000), "no event for the listed port");
	cr_expect(e.rport != c0 && e.lport != other, "an unlisted port was reported");
	cr_expect_eq(e.lport, port);
	cr_expect_eq(e.rport, c1);
	cr_expect_eq(e.kind, DISCONNECT_FIN);
	cr_expect_eq(e.bytes_received, 6);
	cr_expect(e.flags & DISCONNECT_F_PASSIVE);
	cr_expect_eq(e.netns, own_netns());
	cr_expect(e.ts_ns >= t0 && e.ts_ns <= tl_now_ns(), "CLOCK_MONOTONIC stamp");

	cr_assert(lskel_ring_next(&w.ring, &e, 5000), "no RST event");
	cr_expect_eq(e.rport, c2);
	cr_expect_eq(e.kind, DISCONNECT_RST);
	cr_expect_eq(e.bytes_received, 6);

	watcher_stop(&w);
	close(s1);
	close(s2);
	close(s3);
	close(lfd);
	close(ofd);
}

Test(lskel, another_netns_sees_nothing, .timeout = 30)
{
	struct watcher ours, theirs;
	struct disconnect_event e;
	int port, s;
	int lfd = tl_listen_tcp("127.0.0.1", 0, &port);
	cr_assert(lfd >= 0);

	/* Two instances on the same tracepoint, one filtering on a namespace
	 * that is not ours. Both programs run in the same tracepoint call, so
	 * once ours has the event, theirs has already decided. */
	watcher_start(&ours, own_netns());
	watcher_start(&theirs, own_netns() + 1);
	watcher_add_port(&ours, port);
	watcher_add_port(&theirs, port);

	int c = disconnect_one(lfd, port, false, &s);
	cr_assert(lskel_ring_next(&ours.ring, &e, 5000));
	cr_expect_eq(e.rport, c);
	cr_expect(!lskel_ring_next(&theirs.ring, &e, 0),
		  "an instance filtering another netns got port %u", e.lport);

	watcher_stop(&theirs);
	watcher_stop(&ours);
	close(s);
	close(lfd);
}

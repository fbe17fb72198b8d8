/* `cancelctl watch` against real loopback connections (suite 'ebpf', root).
 * Each test starts the watcher on a port it owns, waits for its "watching"
 * line (the program is attached from then on), drives connections, and reads
 * the events the watcher prints. */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"
#include "watch_json.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define READY "watching TCP disconnects"
#define NOT_ROOT "needs root (or CAP_BPF and CAP_PERFMON)"

static void need_root(void)
{
	if (geteuid() != 0)
		cr_skip_test("loading eBPF programs needs root (CI runs as root)");
}

static const char *cancelctl(void)
{
	const char *p = getenv("CS_CANCELCTL");
	cr_assert(p, "CS_CANCELCTL is not set (run through meson test)");
	return p;
}

/* cancelctl watch --json ARGS..., attached and ready. */
static struct tl_proc *start_watch(const char *prefix[], const char *args[])
{
	const char *argv[24];
	int n = 0;

	for (int i = 0; prefix && prefix[i]; i++)
		argv[n++] = prefix[i];
	argv[n++] = cancelctl();
	argv[n++] = "watch";
	argv[n++] = "--json";
	argv[n++] = "--duration";
	argv[n++] = "30";		/* a bound if a test dies; tests stop it */
	for (int i = 0; args && args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	cr_assert(p, "cannot start cancelctl watch");
	if (!tl_proc_wait_stderr(p, READY, 10000)) {
		char *err = tl_proc_stderr(p);
		cr_assert_fail("cancelctl watch never said it was watching; stderr:\n%s", err);
	}
	return p;
}

/* SIGINT, as a user's Ctrl-C: it must end cleanly with status 0. Returns
 * everything it printed on stdout. */
static char *stop_watch(struct tl_proc *p)
{
	int st = tl_proc_stop(p, SIGINT, 5000);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "cancelctl watch did not exit 0 on SIGINT (status %#x); stderr:\n%s",
		  st, tl_proc_stderr(p));
	char *out = tl_proc_stdout(p);
	tl_proc_free(p);
	return out;
}

/* One connection to a test listener, with payload exchanged both ways. */
struct conn {
	int client, server;
	int cport;
	unsigned long long cookie;	/* the server socket's SO_COOKIE */
};

static void open_conn(int lfd, const char *host, int port, size_t up, size_t down,
		      struct conn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	socklen_t cl = sizeof c->cookie;
	char *buf = calloc(1, up > down ? up : down);

	c->client = tl_connect_tcp(host, port, 2000);
	cr_assert(c->client >= 0, "connect to %s port %d", host, port);
	c->server = tl_accept(lfd, 2000);
	cr_assert(c->server >= 0, "accept");
	cr_assert(getsockname(c->client, (struct sockaddr *)&ss, &sl) == 0);
	c->cport = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						  : ((struct sockaddr_in *)&ss)->sin_port);
	cr_assert(getsockopt(c->server, SOL_SOCKET, SO_COOKIE, &c->cookie, &cl) == 0);

	memset(buf, 'u', up);
	cr_assert(tl_write_all(c->client, buf, up, 2000) == 0);
	cr_assert(tl_read_n(c->server, buf, up, 2000) == (ssize_t)up);
	memset(buf, 'd', down);
	cr_assert(tl_write_all(c->server, buf, down, 2000) == 0);
	cr_assert(tl_read_n(c->client, buf, down, 2000) == (ssize_t)down);
	free(buf);

	/* The watcher reports what the peer has acknowledged: wait until the
	 * client's ACK of the reply is in, so the count is settled. */
	for (int i = 0; i < 2000; i++) {
		struct tcp_info ti;
		socklen_t tl = sizeof ti;
		cr_assert(getsockopt(c->server, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0);
		if (ti.tcpi_unacked == 0)
			break;
		poll(NULL, 0, 1);
	}
}

/* A listener on 127.0.0.1, its port in *port. */
static int listener(int *port)
{
	int lfd = tl_listen_tcp("127.0.0.1", 0, port);
	cr_assert(lfd >= 0, "listen: %s", strerror(errno));
	return lfd;
}

/* Closes one end and waits until the other has read the EOF: the kernel
 * has taken the connection past CLOSE_WAIT, and any event it makes is out. */
static void close_until_seen(int closing, int peer)
{
	char buf[8];

	close(closing);
	cr_assert(tl_read_some(peer, buf, sizeof buf, 2000) == 0, "the peer never read the EOF");
}

/* The text "\"name\":value," of an event's JSON, in key. */
static const char *json_field(char key[48], const char *name, int value)
{
	snprintf(key, 48, "\"%s\":%d,", name, value);
	return key;
}

/* The next event line for the connection whose client port is cport. */
static char *wait_event(struct tl_proc *p, int cport)
{
	char key[48];
	char *line = tl_proc_wait_line(p, json_field(key, "rport", cport), 5000);
	cr_assert(line, "no event for client port %d; stdout so far:\n%s\nstderr:\n%s",
		  cport, tl_proc_stdout(p), tl_proc_stderr(p));
	return line;
}

static void expect_event(const char *line, const char *kind, const char *addr, int lport,
			 const struct conn *c, long long rx, long long tx,
			 unsigned long long t0, unsigned long long t1)
{
	long long v;

	cr_expect(wj_str_is(line, "kind", kind), "kind %s expected: %s", kind, line);
	cr_expect(wj_str_is(line, "laddr", addr) && wj_str_is(line, "raddr", addr),
		  "addresses %s expected: %s", addr, line);
	cr_expect(wj_num(line, "lport", &v) && v == lport, "lport %d expected: %s", lport, line);
	cr_expect(wj_num(line, "rport", &v) && v == c->cport, "rport %d: %s", c->cport, line);
	cr_expect(wj_str_is(line, "dir", "in"), "an accepted connection: %s", line);
	cr_expect(wj_num(line, "rx_bytes", &v) && v == rx, "rx_bytes %lld expected: %s", rx, line);
	cr_expect(wj_num(line, "tx_bytes", &v) && v == tx, "tx_bytes %lld expected: %s", tx, line);
	cr_expect(wj_num(line, "age_ns", &v) && v > 0, "a positive age: %s", line);
	cr_expect(wj_num(line, "cookie", &v) && (unsigned long long)v == c->cookie,
		  "cookie = the server socket's SO_COOKIE %llu: %s", c->cookie, line);
	/* The kernel stamps events with CLOCK_MONOTONIC, the clock the shim
	 * and tl_now_ns() read: it lies between the close and the report. */
	cr_expect(wj_num(line, "mono_ns", &v) && (unsigned long long)v >= t0 &&
		  (unsigned long long)v <= t1,
		  "mono_ns within [%llu, %llu]: %s", t0, t1, line);
}

static const char *port_args(int port, char *buf, size_t len)
{
	snprintf(buf, len, "%d", port);
	return buf;
}

/* cancelctl watch --port port, watching. */
static struct tl_proc *watch_port(int port)
{
	char pb[16];
	return start_watch(NULL, (const char *[]){ "--port", port_args(port, pb, sizeof pb), NULL });
}

/* The next event of c (wait_event), checked by expect_event with t1 the
 * moment it was read; the line, for more checks. */
static char *next_event(struct tl_proc *w, const char *kind, const char *addr, int lport, const struct conn *c,
			long long rx, long long tx, unsigned long long t0)
{
	char *line = wait_event(w, c->cport);
	expect_event(line, kind, addr, lport, c, rx, tx, t0, tl_now_ns());
	return line;
}

Test(watch, fin_and_rst_with_ports_age_and_bytes, .timeout = 30)
{
	need_root();
	int port, lfd = listener(&port);
	struct tl_proc *w = watch_port(port);
	struct conn fin, rst;

	/* The client closes: the server socket goes ESTABLISHED -> CLOSE_WAIT. */
	open_conn(lfd, "127.0.0.1", port, 1234, 567, &fin);
	unsigned long long t0 = tl_now_ns();
	close(fin.client);
	char *line = next_event(w, "FIN", "127.0.0.1", port, &fin, 1234, 567, t0);
	free(line);

	/* The client aborts (SO_LINGER 0): a reset. */
	open_conn(lfd, "127.0.0.1", port, 4321, 765, &rst);
	t0 = tl_now_ns();
	tl_abort(rst.client);
	line = next_event(w, "RST", "127.0.0.1", port, &rst, 4321, 765, t0);
	free(line);

	free(stop_watch(w));
	close(fin.server);
	close(rst.server);
	close(lfd);
}

Test(watch, fin_then_rst_on_the_same_connection, .timeout = 30)
{
	need_root();
	int port, lfd = listener(&port);
	struct tl_proc *w = watch_port(port);
	struct conn c;

	/* Half-close, then reset: two events, told apart, and the FIN's
	 * sequence number is not counted as payload in either. */
	open_conn(lfd, "127.0.0.1", port, 100, 200, &c);
	unsigned long long t0 = tl_now_ns();
	cr_assert(shutdown(c.client, SHUT_WR) == 0);
	char *line = next_event(w, "FIN", "127.0.0.1", port, &c, 100, 200, t0);
	free(line);
	t0 = tl_now_ns();
	tl_abort(c.client);
	line = next_event(w, "RST", "127.0.0.1", port, &c, 100, 200, t0);
	free(line);

	free(stop_watch(w));
	close(c.server);
	close(lfd);
}

Test(watch, ipv6, .timeout = 30)
{
	need_root();
	int port, lfd = tl_listen_tcp("::1", 0, &port);
	if (lfd < 0)
		cr_skip_test("no IPv6 loopback here");
	struct tl_proc *w = watch_port(port);
	struct conn c;

	open_conn(lfd, "::1", port, 10, 20, &c);
	unsigned long long t0 = tl_now_ns();
	close(c.client);
	char *line = next_event(w, "FIN", "::1", port, &c, 10, 20, t0);
	cr_expect(wj_str_is(line, "family", "ipv6"), "%s", line);
	free(line);
	free(stop_watch(w));
	close(c.server);
	close(lfd);
}

Test(watch, port_filter_excludes_other_ports, .timeout = 30)
{
	need_root();
	int port, other, lfd = listener(&port), ofd = listener(&other);
	struct tl_proc *w = watch_port(port);
	struct conn excluded, included;

	/* First a disconnect on the other port, completed on the server side
	 * (EOF read: the kernel has passed CLOSE_WAIT), then one on ours: the
	 * ring buffer is ordered, so once ours is printed the other would
	 * have been printed before it. */
	open_conn(ofd, "127.0.0.1", other, 1, 1, &excluded);
	close_until_seen(excluded.client, excluded.server);
	open_conn(lfd, "127.0.0.1", port, 1, 1, &included);
	close(included.client);
	free(wait_event(w, included.cport));
	char *out = stop_watch(w);
	char key[48];
	cr_expect(!strstr(out, json_field(key, "lport", other)), "port %d was reported although --port %d:\n%s", other,
		  port, out);
	cr_expect(!strstr(out, json_field(key, "rport", excluded.cport)), "the other connection was reported:\n%s", out);
	close(excluded.server);
	close(included.server);
	close(lfd);
	close(ofd);
}

Test(watch, accepted_only_hides_outgoing_connections, .timeout = 30)
{
	need_root();
	int port, lfd = listener(&port);
	struct tl_proc *w = start_watch(NULL, (const char *[]){ "--accepted", NULL });
	struct conn out, in;

	/* The server closes first: the *client's* socket sees the FIN, an
	 * outgoing connection that --accepted must hide. */
	open_conn(lfd, "127.0.0.1", port, 1, 1, &out);
	close_until_seen(out.server, out.client);
	open_conn(lfd, "127.0.0.1", port, 1, 1, &in);
	close(in.client);
	char *line = wait_event(w, in.cport);
	cr_expect(wj_str_is(line, "dir", "in"), "%s", line);
	free(line);
	char *text = stop_watch(w);
	char key[48];
	cr_expect(!strstr(text, json_field(key, "lport", out.cport)), "an outgoing connection was shown with --accepted:\n%s",
		  text);
	close(out.client);
	close(in.server);
	close(lfd);
}

Test(watch, table_by_default, .timeout = 30)
{
	need_root();
	int port, lfd = listener(&port);
	char pb[16];
	const char *argv[] = { cancelctl(), "watch", "--port", port_args(port, pb, sizeof pb),
			       "--duration", "30", NULL };
	struct tl_proc *w = tl_spawn(argv, NULL, 0);
	cr_assert(w && tl_proc_wait_stderr(w, READY, 10000));
	char *header = tl_proc_wait_line(w, "LADDR", 2000);
	cr_expect(header && strstr(header, "RPORT") && strstr(header, "KIND") &&
		  strstr(header, "AGE_MS") && strstr(header, "RX_B") && strstr(header, "TX_B"),
		  "header: %s", header ? header : "(none)");
	struct conn c;
	open_conn(lfd, "127.0.0.1", port, 3, 4, &c);
	tl_abort(c.client);
	char key[16];
	snprintf(key, sizeof key, " %d ", c.cport);
	char *row = tl_proc_wait_line(w, key, 5000);
	cr_assert(row, "no row for port %d:\n%s", c.cport, tl_proc_stdout(w));
	cr_expect(strstr(row, " RST ") && strstr(row, " in "), "row: %s", row);
	free(header);
	free(row);
	free(stop_watch(w));
	close(c.server);
	close(lfd);
}

Test(watch, duration_ends_the_watch, .timeout = 30)
{
	need_root();
	const char *argv[] = { cancelctl(), "watch", "--json", "--duration", "1", NULL };
	unsigned long long t0 = tl_now_ns();
	struct tl_proc *w = tl_spawn(argv, NULL, 0);
	cr_assert(w);
	int st = tl_proc_wait(w, 10000);
	double secs = (tl_now_ns() - t0) / 1e9;
	cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "status %#x; stderr:\n%s", st, tl_proc_stderr(w));
	cr_expect(secs >= 0.95 && secs < 8, "--duration 1 took %.2f s", secs);
	tl_proc_free(w);
}

/* A copy of cancelctl that any user can run, wherever the build tree is. */
static char *public_cancelctl(char **dir)
{
	size_t len;
	char *data = tl_read_file(cancelctl(), &len);
	cr_assert(data);
	*dir = tl_tmpdir("ebpf");
	cr_assert(*dir);
	cr_assert(chmod(*dir, 0755) == 0);
	char *path = tl_strdupf("%s/cancelctl", *dir);
	cr_assert(tl_write_file(path, data, len) == 0);
	cr_assert(chmod(path, 0755) == 0);
	free(data);
	return path;
}

Test(watch, not_root_is_told_plainly, .timeout = 30)
{
	need_root();
	char *dir, *copy = public_cancelctl(&dir);
	const char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
			       copy, "watch", "--duration", "1", NULL };
	struct tl_proc *p = tl_spawn(argv, NULL, 0);
	cr_assert(p);
	int st = tl_proc_wait(p, 10000);
	char *err = tl_proc_stderr(p), *out = tl_proc_stdout(p);
	cr_expect(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 1,
		  "as nobody: status %#x (1 expected); stderr:\n%s", st, err);
	cr_expect(strstr(err, "cancelctl watch: " NOT_ROOT), "the plain message expected:\n%s", err);
	cr_expect(tl_count(err, "\n") == 1, "one line, not a libbpf log:\n%s", err);
	cr_expect(!*out, "nothing on stdout: %s", out);
	tl_proc_free(p);
	tl_cleanup_dir(dir);
}

Test(watch, capabilities_are_enough_without_root, .timeout = 30)
{
	need_root();
	char *dir, *copy = public_cancelctl(&dir);
	int port, lfd = listener(&port);
	char pb[16];
	const char *prefix[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
				 "--inh-caps=+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon", NULL };
	setenv("CS_CANCELCTL", copy, 1);	/* this test process only */
	struct tl_proc *w = start_watch(prefix, (const char *[]){ "--port", port_args(port, pb, sizeof pb), NULL });
	struct conn c;

	open_conn(lfd, "127.0.0.1", port, 5, 6, &c);
	unsigned long long t0 = tl_now_ns();
	close(c.client);
	char *line = next_event(w, "FIN", "127.0.0.1", port, &c, 5, 6, t0);
	free(line);
	free(stop_watch(w));
	close(c.server);
	close(lfd);
	tl_cleanup_dir(dir);
}

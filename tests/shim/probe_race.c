/* race: disconnects fired at random instants around a thread's entry into a
 * blocking call. churn: many short connections through a worker pool, so
 * descriptor numbers are reused while disconnects are in flight. */
#include "probe.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void spin_ns(int64_t ns)
{
	int64_t end = probe_now_ns() + ns;
	while (probe_now_ns() < end)
		;
}

/* xorshift: each thread its own sequence, reproducible from the seed. */
static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

enum { CALL_RECV, CALL_POLL, CALL_SLEEP, CALLS };
enum { PENDING, GOT_DATA, GOT_CANCELED, GOT_OTHER };

struct race {
	int listeners[3];
	struct endpoint eps[3];
	int up[2];
	_Atomic long ready, finished;	/* iteration numbers */
	_Atomic int abort_it, call, result, err;
	int max_delay_ns;
};

static void *race_server(void *arg)
{
	struct race *r = arg;
	uint32_t seed = 0x9e3779b9u;
	char c;

	for (long i = 1;; i++) {
		struct pollfd p[3] = { { r->listeners[0], POLLIN, 0 }, { r->listeners[1], POLLIN, 0 },
				       { r->listeners[2], POLLIN, 0 } };
		/* Which listener has the connection: the acceptor's poll is a
		 * multiplexing wait, as in any real server. */
		if (poll(p, 3, -1) < 0)
			continue;
		int l = p[0].revents ? r->listeners[0] : p[1].revents ? r->listeners[1] : r->listeners[2];
		int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			die("race accept");
		if (read(s, &c, 1) != 1) {	/* request; 'q' ends the run */
			close(s);
			continue;
		}
		if (c == 'q') {
			close(s);
			return NULL;
		}
		int call = atomic_load(&r->call), abort_it = atomic_load(&r->abort_it);
		atomic_store(&r->ready, i);
		spin_ns(next_rand(&seed) % r->max_delay_ns);
		int ret;
		errno = 0;
		if (call == CALL_RECV) {
			ret = (int)recv(r->up[0], &c, 1, 0);
		} else if (call == CALL_POLL) {
			struct pollfd u = { r->up[0], POLLIN, 0 };
			ret = poll(&u, 1, -1);
			if (ret > 0)
				ret = (int)recv(r->up[0], &c, 1, 0);
		} else {
			struct timespec ts = { abort_it ? 2 : 0, abort_it ? 0 : 20000 };
			ret = nanosleep(&ts, NULL);
			if (ret == 0)
				ret = 1;
		}
		atomic_store(&r->err, ret < 0 ? errno : 0);
		atomic_store(&r->result, ret == 1 ? GOT_DATA : ret < 0 && errno == ECANCELED ? GOT_CANCELED : GOT_OTHER);
		atomic_store(&r->finished, i);
		if (!abort_it)
			write(s, "r", 1);
		close(s);
	}
}

/* race N [MAX_DELAY_US] */
int scenario_race(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	struct race r;
	pthread_t t;
	uint32_t seed = 0x2545f491u;
	long lost = 0, spurious = 0, missed = 0, cancelled = 0, live = 0;
	const char *families[3] = { "unix", "v4", "v6" };

	memset(&r, 0, sizeof r);
	r.max_delay_ns = (argc > 2 ? atoi(argv[2]) : 20) * 1000 + 1;
	for (int i = 0; i < 3; i++)
		r.listeners[i] = probe_listen(families[i], &r.eps[i]);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, r.up) < 0)
		die("socketpair");
	pthread_create(&t, NULL, race_server, &r);
	for (long i = 1; i <= n; i++) {
		uint32_t x = next_rand(&seed);
		int family = (x % 10) < 8 ? 0 : 1 + (x % 2);	/* 80% unix, TCP v4/v6 the rest */
		int abort_it = (x >> 8) & 1, rst = (x >> 9) & 1, call = (int)((x >> 10) % CALLS);
		char c;

		atomic_store(&r.abort_it, abort_it);
		atomic_store(&r.call, call);
		int fd = probe_connect(&r.eps[family]);
		write(fd, "x", 1);
		while (atomic_load(&r.ready) != i)
			;
		spin_ns(next_rand(&seed) % r.max_delay_ns);
		if (abort_it) {
			probe_close_peer(fd, rst);
		} else if (call != CALL_SLEEP) {
			write(r.up[1], "z", 1);
		}
		int64_t deadline = probe_now_ns() + 1000000000LL;
		while (atomic_load(&r.finished) != i && probe_now_ns() < deadline)
			;
		if (atomic_load(&r.finished) != i) {
			lost++;	/* a cancel that did not wake the call */
			if (call != CALL_SLEEP)
				write(r.up[1], "z", 1);
			while (atomic_load(&r.finished) != i)
				;
		}
		int result = atomic_load(&r.result);
		if (abort_it) {
			if (result == GOT_CANCELED)
				cancelled++;
			else
				missed++;
		} else {
			live++;
			if (result != GOT_DATA) {
				spurious++;
				if (spurious < 5)
					fprintf(stderr, "spurious: iteration %ld call %d result %d errno %d\n", i, call,
						result, atomic_load(&r.err));
			}
			read(fd, &c, 1);
			close(fd);
		}
	}
	int q = probe_connect(&r.eps[0]);
	write(q, "q", 1);
	pthread_join(t, NULL);
	close(q);
	out("race iterations=%ld aborted=%ld cancelled=%ld missed=%ld lost=%ld live=%ld spurious=%ld", n,
	    cancelled + missed, cancelled, missed, lost, live, spurious);
	return 0;
}

/* ---- churn ---------------------------------------------------------------- */

#define WORKERS 8
#define CLIENTS 4

struct churn {
	struct endpoint ep;
	int listener;
	long n;
	_Atomic long next_id;
	_Atomic char *outcome;	/* per request: 0 pending, 'c' completed, 'x' cancelled, 'e' other */
	_Atomic char *aborted;
	_Atomic long answered_ok, answered_bad;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int queue[1024];
	int head, tail;
	_Atomic int stopping;
};

static void *churn_acceptor(void *arg)
{
	struct churn *ch = arg;
	for (;;) {
		int s = accept4(ch->listener, NULL, NULL, SOCK_CLOEXEC);
		if (s < 0)
			continue;
		pthread_mutex_lock(&ch->lock);
		ch->queue[ch->tail++ % 1024] = s;
		pthread_cond_signal(&ch->cond);
		pthread_mutex_unlock(&ch->lock);
		if (atomic_load(&ch->stopping))
			return NULL;
	}
}

static void *churn_worker(void *arg)
{
	struct churn *ch = arg;
	int up[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, up) < 0)
		die("socketpair");
	for (;;) {
		char line[32], c;
		int s, n = 0;
		pthread_mutex_lock(&ch->lock);
		while (ch->head == ch->tail)
			pthread_cond_wait(&ch->cond, &ch->lock);
		s = ch->queue[ch->head++ % 1024];
		pthread_mutex_unlock(&ch->lock);
		while (n < (int)sizeof line - 1 && read(s, &line[n], 1) == 1 && line[n] != '\n')
			n++;
		line[n] = 0;
		long id = atol(line);
		if (id < 0) {
			close(s);
			return NULL;
		}
		if (id == 0 || id > ch->n) {
			close(s);
			continue;
		}
		char result = 'c';
		/* The work: upstream round trips and short sleeps. */
		for (int step = 0; step < 4 && result == 'c'; step++) {
			struct timespec ts = { 0, 50000 };
			errno = 0;
			if (send(up[1], "s", 1, 0) != 1 || recv(up[0], &c, 1, 0) != 1 || nanosleep(&ts, NULL) != 0)
			{
				result = errno == ECANCELED ? 'x' : 'e';
				if (result == 'e')
					fprintf(stderr, "request %ld step %d: errno %d\n", id, step, errno);
			}
		}
		atomic_store(&ch->outcome[id], result);
		if (result == 'c') {
			char reply[32];
			int len = snprintf(reply, sizeof reply, "done %ld\n", id);
			write(s, reply, len);
		}
		close(s);
	}
}

static void *churn_client(void *arg)
{
	struct churn *ch = arg;
	uint32_t seed = (uint32_t)(uintptr_t)&seed | 1;
	for (;;) {
		long id = atomic_fetch_add(&ch->next_id, 1);
		if (id > ch->n)
			return NULL;
		char req[32], reply[32];
		int fd = probe_connect(&ch->ep), len = snprintf(req, sizeof req, "%ld\n", id);
		write(fd, req, len);
		uint32_t x = next_rand(&seed);
		if (x % 2) {
			atomic_store(&ch->aborted[id], 1);
			spin_ns(x % 300000);
			probe_close_peer(fd, (x >> 4) & 1);
			continue;
		}
		int n = 0;
		ssize_t r;
		while (n < (int)sizeof reply - 1 && (r = read(fd, reply + n, sizeof reply - 1 - n)) > 0)
			n += (int)r;
		reply[n] = 0;
		char want[32];
		snprintf(want, sizeof want, "done %ld\n", id);
		if (!strcmp(reply, want))
			atomic_fetch_add(&ch->answered_ok, 1);
		else
			atomic_fetch_add(&ch->answered_bad, 1);
		close(fd);
	}
}

/* churn N FAMILY */
int scenario_churn(int argc, char **argv)
{
	struct churn ch;
	pthread_t acc, workers[WORKERS], clients[CLIENTS];
	long spurious = 0, cancelled = 0, aborted = 0, pending = 0;

	signal(SIGPIPE, SIG_IGN);	/* as servers do: a reset peer gives EPIPE */
	memset(&ch, 0, sizeof ch);
	ch.n = argc > 1 ? atol(argv[1]) : 20000;
	ch.outcome = calloc(ch.n + 1, 1);
	ch.aborted = calloc(ch.n + 1, 1);
	ch.next_id = 1;
	pthread_mutex_init(&ch.lock, NULL);
	pthread_cond_init(&ch.cond, NULL);
	ch.listener = probe_listen(argc > 2 ? argv[2] : "unix", &ch.ep);
	pthread_create(&acc, NULL, churn_acceptor, &ch);
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&workers[i], NULL, churn_worker, &ch);
	for (int i = 0; i < CLIENTS; i++)
		pthread_create(&clients[i], NULL, churn_client, &ch);
	for (int i = 0; i < CLIENTS; i++)
		pthread_join(clients[i], NULL);
	/* Stop the pool: one "-1" request per worker, then wake the acceptor. */
	for (int i = 0; i < WORKERS; i++) {
		int fd = probe_connect(&ch.ep);
		write(fd, "-1\n", 3);
		close(fd);
	}
	for (int i = 0; i < WORKERS; i++)
		pthread_join(workers[i], NULL);
	atomic_store(&ch.stopping, 1);
	close(probe_connect(&ch.ep));
	pthread_join(acc, NULL);
	for (long id = 1; id <= ch.n; id++) {
		char o = atomic_load(&ch.outcome[id]);
		if (atomic_load(&ch.aborted[id])) {
			aborted++;
			cancelled += o == 'x';
		} else {
			spurious += o != 'c';
			pending += o == 0;
			if (o != 'c')
				fprintf(stderr, "live request %ld: outcome %c\n", id, o ? o : '0');
		}
	}
	out("churn requests=%ld aborted=%ld cancelled=%ld live_ok=%ld live_bad=%ld spurious=%ld pending=%ld", ch.n,
	    aborted, cancelled, atomic_load(&ch.answered_ok), atomic_load(&ch.answered_bad), spurious, pending);
	return 0;
}

/* cs-fault: runs a program with one system call made to fail by the kernel.
 *
 *   cs-fault --syscall NAME [--nth N | --all | --site 0xOFF] [--errno NAME]
 *            [--anywhere] [--arg I=V] [--arg-set I] [--skip LO-HI]...
 *            [--lib SUBSTR] [--hide-seccomp] [--watch NAME]... [--report FILE]
 *            [--shm-size BYTES [--fill-shm]] [--nofile N] [--memlock N] [--nproc N]
 *            -- PROGRAM ARGS...
 *
 * The child installs a seccomp filter that hands every call of NAME (and of
 * openat with --hide-seccomp) to this process (SECCOMP_RET_USER_NOTIF); the
 * program itself is unmodified, and so is the shim: nothing in the product
 * knows it is being tested. For each call we read the instruction pointer
 * the kernel reports and look it up in /proc/PID/maps: a call whose
 * `syscall` instruction lies in the text of the library named by --lib
 * (default libcancelshim.so), outside the --skip ranges (the shim's
 * pass-through code: the host's own calls that the shim issues for it), is
 * the shim's own. Such calls are counted; the Nth (or every one, or every
 * one from one call site, an offset in the library) fails with --errno.
 * --anywhere counts calls from anywhere instead (for calls the shim makes
 * through libc: pthread_create's clone3, sigaction, the loader's bpf),
 * optionally only those whose argument I equals V (--arg) or is not 0
 * (--arg-set). Every other call continues unchanged.
 *
 * --syscall none injects nothing and installs no filter (the limits only).
 *
 * --watch NAME (repeatable) counts the shim's calls of NAME by call site,
 * injecting nothing: what the suite's discovery run uses.
 *
 * --hide-seccomp: the shim never loads eBPF under a seccomp filter (it reads
 * "Seccomp:" in /proc/self/status). To test mode ebpf under the injector,
 * the shim's own open of /proc/self/status gets a copy that says 0.
 *
 * Environment limits, applied to the child: --shm-size mounts a tmpfs of
 * that size on /dev/shm in a private mount namespace, --fill-shm fills it;
 * --nofile, --memlock, --nproc set the soft and hard limits.
 *
 * The exit status is the program's (128+N when killed by signal N). The
 * --report file gets one line per call site seen and a summary line:
 *   site syscall=NAME off=0xOFF calls=C failed=F
 *   injected=F eligible=C
 * Nothing is written to stdout or stderr but usage errors, so that the
 * program's own output can be compared with a run without the shim. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fault_names.h"

#define MAX_SKIP 128
#define MAX_SITES 256

static struct {
	int nr, err, anywhere, hide_seccomp;
	long nth;		/* 0: see all/site */
	int all;
	unsigned long site;	/* 0: none */
	int arg_idx, arg_set_idx;
	unsigned long arg_val;
	const char *lib, *report;
	struct { unsigned long lo, hi; } skip[MAX_SKIP];
	int nskip;
	long shm_size, nofile, memlock, nproc;
	int fill_shm, none;
	int watch[64], nwatch;	/* --watch: only counted */
} opt = { .nr = -1, .err = EPERM, .arg_idx = -1, .arg_set_idx = -1, .lib = "libcancelshim.so",
	  .shm_size = -1, .nofile = -1, .memlock = -1, .nproc = -1 };

static struct site { int nr; unsigned long off; long calls, failed; } sites[MAX_SITES];
static int nsites;
static long eligible, injected;

static void usage(void)
{
	fprintf(stderr, "usage: cs-fault --syscall NAME [--nth N|--all|--site 0xOFF] [--errno NAME] [--anywhere]\n"
			"       [--arg I=V] [--arg-set I] [--skip LO-HI]... [--lib SUBSTR] [--hide-seccomp] [--watch NAME]...\n"
			"       [--report FILE] [--shm-size B [--fill-shm]] [--nofile N] [--memlock N] [--nproc N] -- PROGRAM ARGS...\n");
	exit(2);
}

/* ---- where a call comes from ------------------------------------------- */

/* The library's executable mappings and its load base, read again from
 * /proc/PID/maps whenever an address falls outside every executable mapping
 * we know (a library loaded since). */
static struct { unsigned long lo, hi; int ours; } exec_maps[512];
static int nexec;
static unsigned long lib_base;

static void read_maps(pid_t pid)
{
	char path[64], line[4096];
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/maps", pid);
	if (!(f = fopen(path, "re")))
		return;
	nexec = 0;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi, off;
		char perms[8];
		int ours;

		if (sscanf(line, "%lx-%lx %7s %lx", &lo, &hi, perms, &off) != 4)
			continue;
		ours = strstr(line, opt.lib) != NULL;
		if (ours && off == 0)
			lib_base = lo;
		if (perms[2] == 'x' && nexec < (int)(sizeof exec_maps / sizeof exec_maps[0]))
			exec_maps[nexec].lo = lo, exec_maps[nexec].hi = hi, exec_maps[nexec++].ours = ours;
	}
	fclose(f);
}

/* 1 and the offset in the library if ip is in its text, else 0. */
static int from_lib(pid_t pid, unsigned long ip, unsigned long *off)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < nexec; i++)
			if (ip >= exec_maps[i].lo && ip < exec_maps[i].hi) {
				if (!exec_maps[i].ours)
					return 0;
				*off = ip - lib_base;
				return 1;
			}
		if (pass == 0)
			read_maps(pid);
	}
	return 0;
}

/* The instruction pointer seccomp reports is the address after `syscall`. */
static int skipped(unsigned long off)
{
	for (int i = 0; i < opt.nskip; i++)
		if (off >= opt.skip[i].lo && off <= opt.skip[i].hi)
			return 1;
	return 0;
}

static struct site *site_of(int nr, unsigned long off)
{
	for (int i = 0; i < nsites; i++)
		if (sites[i].nr == nr && sites[i].off == off)
			return &sites[i];
	if (nsites == MAX_SITES)
		return &sites[MAX_SITES - 1];
	sites[nsites].nr = nr;
	sites[nsites].off = off;
	return &sites[nsites++];
}

static int watched(int nr)
{
	for (int i = 0; i < opt.nwatch; i++)
		if (opt.watch[i] == nr)
			return 1;
	return 0;
}

/* ---- the decision ------------------------------------------------------- */

static int args_match(const struct seccomp_data *d)
{
	if (opt.arg_idx >= 0 && d->args[opt.arg_idx] != opt.arg_val)
		return 0;
	if (opt.arg_set_idx >= 0 && d->args[opt.arg_set_idx] == 0)
		return 0;
	return 1;
}

/* Returns the errno to fail this call with, or 0 to let it run. */
static int decide(const struct seccomp_notif *n, int *ours)
{
	unsigned long off = 0;
	int lib = from_lib(n->pid, n->data.instruction_pointer, &off) && !skipped(off);
	struct site *s;
	int fail;

	*ours = lib;
	if (n->data.nr != opt.nr) {
		if (lib && watched(n->data.nr))
			site_of(n->data.nr, off)->calls++;
		return 0;
	}
	if (!args_match(&n->data) || !(lib || opt.anywhere))
		return 0;
	eligible++;
	s = site_of(n->data.nr, lib ? off : 0);
	s->calls++;
	fail = opt.all || (opt.nth && eligible == opt.nth) || (opt.site && lib && off == opt.site);
	if (!fail)
		return 0;
	s->failed++;
	injected++;
	return opt.err;
}

/* ---- --hide-seccomp ----------------------------------------------------- */

static int read_target_string(pid_t pid, unsigned long addr, char *buf, size_t len)
{
	struct iovec local = { buf, len - 1 }, remote = { (void *)addr, len - 1 };
	ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	return 0;
}

/* Answers the shim's open of /proc/self/status with a copy whose Seccomp
 * lines say 0. Returns 1 if it answered. */
static int answer_status_open(int listener, const struct seccomp_notif *n)
{
	char path[64], status[8192], *p;
	struct seccomp_notif_addfd add = { 0 };
	int src, fd;
	ssize_t len;

	if (read_target_string(n->pid, n->data.args[1], path, sizeof path) < 0 || strcmp(path, "/proc/self/status"))
		return 0;
	snprintf(path, sizeof path, "/proc/%d/status", n->pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	len = read(fd, status, sizeof status - 1);
	close(fd);
	if (len <= 0)
		return 0;
	status[len] = 0;
	for (p = status; (p = strstr(p, "Seccomp")); p++) {
		char *v = strchr(p, ':');
		if (!v)
			break;
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		if (*v >= '0' && *v <= '9')
			*v = '0';
	}
	if ((src = memfd_create("status", MFD_CLOEXEC)) < 0)
		return 0;
	if (write(src, status, (size_t)len) != len || lseek(src, 0, SEEK_SET) != 0) {
		close(src);
		return 0;
	}
	add.id = n->id;
	add.flags = SECCOMP_ADDFD_FLAG_SEND;
	add.srcfd = (unsigned)src;
	add.newfd_flags = O_CLOEXEC;
	fd = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &add);
	close(src);
	return fd >= 0;
}

/* ---- the child ---------------------------------------------------------- */

/* Notifies the calls of the injected system call, of openat with
 * --hide-seccomp and of the --watch list; allows everything else. */
static int install_filter(void)
{
	unsigned nrs[68], count = 0;
	struct sock_filter f[4 + 68 + 2];
	struct sock_fprog prog = { .filter = f };
	unsigned short len = 0;

	if (opt.nr >= 0)
		nrs[count++] = (unsigned)opt.nr;
	if (opt.hide_seccomp)
		nrs[count++] = SYS_openat;
	for (int i = 0; i < opt.nwatch; i++)
		nrs[count++] = (unsigned)opt.watch[i];
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (unsigned i = 0; i < count; i++)	/* a match jumps to the last instruction */
		f[len++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], (unsigned char)(count - i), 0);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	f[len++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	prog.len = len;

	if (geteuid() != 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
}

static void send_fd(int sock, int fd)
{
	char c = 0, ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec v = { &c, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);

	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &fd, sizeof fd);
	if (sendmsg(sock, &m, 0) != 1)
		_exit(126);
}

static int recv_fd(int sock)
{
	char c, ctl[CMSG_SPACE(sizeof(int))];
	struct iovec v = { &c, 1 };
	struct msghdr m = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl };
	struct cmsghdr *h;
	int fd;

	if (recvmsg(sock, &m, 0) != 1 || !(h = CMSG_FIRSTHDR(&m)) || h->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(h), sizeof fd);
	return fd;
}

static void set_limit(int which, long v)
{
	struct rlimit r = { (rlim_t)v, (rlim_t)v };

	if (v >= 0 && setrlimit(which, &r) < 0) {
		perror("cs-fault: setrlimit");
		_exit(126);
	}
}

static void private_shm(void)
{
	char data[64];

	if (opt.shm_size < 0)
		return;
	snprintf(data, sizeof data, "size=%ld,mode=1777", opt.shm_size);
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("cs-fault-shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, data) < 0) {
		perror("cs-fault: private /dev/shm");
		_exit(126);
	}
	if (opt.fill_shm) {	/* another program filled it */
		static char page[4096];
		int fd = open("/dev/shm/cs-fault-filler", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		while (fd >= 0 && write(fd, page, sizeof page) > 0)
			;
		close(fd);
	}
}

static void child(int sock, char **argv)
{
	int listener;

	private_shm();
	set_limit(RLIMIT_MEMLOCK, opt.memlock);
	set_limit(RLIMIT_NPROC, opt.nproc);
	if (opt.nr >= 0 || opt.nwatch) {	/* --syscall none and no --watch: only the limits */
		if ((listener = install_filter()) < 0) {
			perror("cs-fault: seccomp");
			_exit(126);
		}
		send_fd(sock, listener);
		close(listener);
	}
	close(sock);
	set_limit(RLIMIT_NOFILE, opt.nofile);	/* last: the steps above need descriptors */
	execvp(argv[0], argv);
	perror("cs-fault: exec");
	_exit(127);
}

/* ---- the supervisor ----------------------------------------------------- */

static pid_t host;
static void forward(int sig) { kill(host, sig); }

static void write_report(void)
{
	FILE *f;

	if (!opt.report || !(f = fopen(opt.report, "we")))
		return;
	for (int i = 0; i < nsites; i++)
		fprintf(f, "site syscall=%s off=0x%lx calls=%ld failed=%ld\n", fault_syscall_name(sites[i].nr), sites[i].off,
			sites[i].calls, sites[i].failed);
	fprintf(f, "injected=%ld eligible=%ld\n", injected, eligible);
	fclose(f);
}

static int supervise(int listener, int pidfd)
{
	struct seccomp_notif_sizes sz;
	struct seccomp_notif *n;
	struct seccomp_notif_resp *r;
	int status;

	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) < 0)
		return 126;
	n = calloc(1, sz.seccomp_notif > sizeof *n ? sz.seccomp_notif : sizeof *n);
	r = calloc(1, sz.seccomp_notif_resp > sizeof *r ? sz.seccomp_notif_resp : sizeof *r);
	for (;;) {
		struct pollfd p[2] = { { listener, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
		int err, ours;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 126;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN)) {
			if (p[0].revents)	/* every filtered task is gone */
				break;
			continue;
		}
		memset(n, 0, sz.seccomp_notif);
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, n) < 0)
			continue;	/* the caller died meanwhile */
		err = decide(n, &ours);
		if (!err && ours && opt.hide_seccomp && n->data.nr == SYS_openat && answer_status_open(listener, n))
			continue;
		memset(r, 0, sz.seccomp_notif_resp);
		r->id = n->id;
		if (err)
			r->error = -err;
		else
			r->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, r);	/* ENOENT: the caller died */
	}
	while (waitpid(host, &status, 0) < 0)
		if (errno != EINTR)
			return 126;
	write_report();
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void parse(int argc, char **argv, int *first)
{
	int i;

	for (i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

#define VALUE() (v ? (i++, v) : (usage(), ""))
		if (!strcmp(a, "--syscall")) {
			const char *name = VALUE();
			if (!strcmp(name, "none"))
				opt.none = 1;
			else if ((opt.nr = fault_syscall_nr(name)) < 0)
				usage();
		} else if (!strcmp(a, "--errno")) {
			if ((opt.err = fault_errno_value(VALUE())) <= 0)
				usage();
		} else if (!strcmp(a, "--nth"))
			opt.nth = atol(VALUE());
		else if (!strcmp(a, "--all"))
			opt.all = 1;
		else if (!strcmp(a, "--site"))
			opt.site = strtoul(VALUE(), NULL, 0);
		else if (!strcmp(a, "--anywhere"))
			opt.anywhere = 1;
		else if (!strcmp(a, "--arg")) {
			const char *s = VALUE();
			opt.arg_idx = atoi(s);
			opt.arg_val = strchr(s, '=') ? strtoul(strchr(s, '=') + 1, NULL, 0) : 0;
		} else if (!strcmp(a, "--arg-set"))
			opt.arg_set_idx = atoi(VALUE());
		else if (!strcmp(a, "--skip") && opt.nskip < MAX_SKIP) {
			const char *s = VALUE();
			opt.skip[opt.nskip].lo = strtoul(s, NULL, 0);
			opt.skip[opt.nskip++].hi = strchr(s, '-') ? strtoul(strchr(s, '-') + 1, NULL, 0) : 0;
		} else if (!strcmp(a, "--watch") && opt.nwatch < 64) {
			if ((opt.watch[opt.nwatch++] = fault_syscall_nr(VALUE())) < 0)
				usage();
		} else if (!strcmp(a, "--lib"))
			opt.lib = VALUE();
		else if (!strcmp(a, "--hide-seccomp"))
			opt.hide_seccomp = 1;
		else if (!strcmp(a, "--report"))
			opt.report = VALUE();
		else if (!strcmp(a, "--shm-size"))
			opt.shm_size = atol(VALUE());
		else if (!strcmp(a, "--fill-shm"))
			opt.fill_shm = 1;
		else if (!strcmp(a, "--nofile"))
			opt.nofile = atol(VALUE());
		else if (!strcmp(a, "--memlock"))
			opt.memlock = atol(VALUE());
		else if (!strcmp(a, "--nproc"))
			opt.nproc = atol(VALUE());
		else
			usage();
	}
	if (i + 1 >= argc || (opt.nr < 0 && !opt.none) || (opt.arg_idx > 5) || (opt.arg_set_idx > 5))
		usage();
	*first = i + 1;
}

int main(int argc, char **argv)
{
	int first, sv[2], listener, pidfd;

	parse(argc, argv, &first);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 126;
	if ((host = fork()) < 0)
		return 126;
	if (host == 0) {
		close(sv[0]);
		child(sv[1], argv + first);
	}
	close(sv[1]);
	signal(SIGTERM, forward);
	signal(SIGINT, forward);
	signal(SIGPIPE, SIG_IGN);
	listener = opt.nr >= 0 || opt.nwatch ? recv_fd(sv[0]) : -1;
	close(sv[0]);
	pidfd = (int)syscall(SYS_pidfd_open, host, 0);
	if (listener < 0 || pidfd < 0) {
		int status;
		while (waitpid(host, &status, 0) < 0)
			if (errno != EINTR)
				return 126;
		write_report();
		return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
	return supervise(listener, pidfd);
}

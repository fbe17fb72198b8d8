/* seccomp_exec PROGRAM [ARGS...]: runs PROGRAM under a seccomp filter that
 * allows everything. The shim must notice the filter and not call bpf(): a
 * real filter that does not list it may kill the process. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog prog = { .len = 1, .filter = &allow };

	if (argc < 2) {
		fprintf(stderr, "usage: seccomp_exec PROGRAM [ARGS...]\n");
		return 2;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("seccomp_exec");
		return 2;
	}
	execv(argv[1], argv + 1);
	perror("seccomp_exec: exec");
	return 127;
}

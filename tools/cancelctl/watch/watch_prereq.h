/* What `cancelctl watch` needs before it tries to load its eBPF program,
 * checked up front so that the common failures get a plain sentence instead
 * of a verifier log. Plain libc: no libbpf needed. */
#ifndef CANCELCTL_WATCH_PREREQ_H
#define CANCELCTL_WATCH_PREREQ_H

enum watch_prereq {
	WATCH_PREREQ_OK,
	WATCH_PREREQ_NOT_PRIVILEGED,	/* neither CAP_BPF+CAP_PERFMON nor CAP_SYS_ADMIN */
	WATCH_PREREQ_NO_BTF,		/* /sys/kernel/btf/vmlinux missing */
};

enum watch_prereq watch_prereq_check(void);

/* One sentence (no newline) for a failed check. */
const char *watch_prereq_message(enum watch_prereq p);

#endif

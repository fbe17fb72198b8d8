/* Privilege and BTF checks for `cancelctl watch` (see watch_prereq.h). */
#include <sys/syscall.h>
#include <unistd.h>

#include "bpf_prereq.h"
#include "watch_prereq.h"

#define KERNEL_BTF BPF_PREREQ_KERNEL_BTF

/* The effective capability sets, straight from the kernel (no libcap). */
static int privileged(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = { 0 };

	if (syscall(SYS_capget, &h, d) != 0)
		return geteuid() == 0;
	return bpf_prereq_privileged(d);
}

enum watch_prereq watch_prereq_check(void)
{
	if (!privileged())
		return WATCH_PREREQ_NOT_PRIVILEGED;
	if (access(KERNEL_BTF, R_OK) != 0)
		return WATCH_PREREQ_NO_BTF;
	return WATCH_PREREQ_OK;
}

const char *watch_prereq_message(enum watch_prereq p)
{
	switch (p) {
	case WATCH_PREREQ_OK:
		return "ready";
	case WATCH_PREREQ_NOT_PRIVILEGED:
		return "needs root (or CAP_BPF and CAP_PERFMON) to load its eBPF program; run it with sudo";
	case WATCH_PREREQ_NO_BTF:
		return "this kernel has no BTF type information (" KERNEL_BTF " is missing); "
		       "it needs a kernel built with CONFIG_DEBUG_INFO_BTF=y";
	}
	return "?";
}

/* bpf_prereq.h — what loading disconnect.bpf.c needs from the process and
 * the kernel, shared by its two loaders (the shim, cancelctl watch): the
 * capabilities, from capget's effective sets, and kernel BTF. Header-only,
 * no libcap. */
#ifndef CANCELSHIM_BPF_PREREQ_H
#define CANCELSHIM_BPF_PREREQ_H

#include <linux/capability.h>

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define BPF_PREREQ_KERNEL_BTF "/sys/kernel/btf/vmlinux"

/* Enough to load and attach tracing programs? Before Linux 5.8
 * CAP_SYS_ADMIN was the only way in; since then CAP_BPF with CAP_PERFMON. */
static inline int bpf_prereq_privileged(const struct __user_cap_data_struct d[2])
{
#define BPF_PREREQ_HAS(cap) ((d[(cap) / 32].effective >> ((cap) % 32)) & 1)
	return BPF_PREREQ_HAS(CAP_SYS_ADMIN) || (BPF_PREREQ_HAS(CAP_BPF) && BPF_PREREQ_HAS(CAP_PERFMON));
#undef BPF_PREREQ_HAS
}

#endif

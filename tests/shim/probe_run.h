/* Running cs-probe under the shim from a Criterion test. */
#ifndef CS_PROBE_RUN_H
#define CS_PROBE_RUN_H

struct probe_result {
	int status;	/* wait status */
	char *out, *err;
};

/* Runs $CS_PROBE (or $CS_PROBE_FORTIFY when fortified) under the shim with
 * the extra environment env (NULL-terminated, may be NULL) and the given
 * arguments (NULL-terminated). Fails the test if it does not end in time or
 * exits non-zero. */
struct probe_result probe_run(int fortified, const char *const env[], ...);

/* The value of key in the first output line that contains prefix; fails the
 * test when absent. */
long long probe_field(const struct probe_result *r, const char *prefix, const char *key);

void probe_result_free(struct probe_result *r);

/* 1 if the shim should run its eBPF watcher in these tests: the suite's
 * CANCELSHIM_MODE (meson sets it per suite: epoll or ebpf; unset = auto)
 * asks for it, the build has it, and this process could load it (root and
 * kernel BTF). */
int probe_ebpf_expected(void);

#endif

/* torture-drive: what its two halves share. drive_main.c parses the command
 * line and runs sequences; drive_sequence.c runs one sequence (one host
 * process under the shim, its clients, its upstream) and checks the oracle. */
#ifndef CS_TORTURE_DRIVE_H
#define CS_TORTURE_DRIVE_H

#include <stdbool.h>
#include <stdint.h>

/* Classes of actions that break the shim today because of a bug being fixed
 * elsewhere: generated only when enabled (--enable), so the CI slice stays
 * green on main until the fix lands; then flip them on in meson.build. */
enum torture_gate {
	GATE_CLONE = 1 << 0,        /* clone() without CLONE_VM serves a client (issue 10, item 4) */
	GATE_CLOSEANY = 1 << 1,     /* close/close_range/closefrom over descriptors the host does
				     * not know, i.e. the shim's own (item 6) */
	GATE_EBPF_MOVED = 1 << 2,   /* mode ebpf: clients moved by dup/dup2/dup3/F_DUPFD (item 2) */
	GATE_EBPF_QUEUED = 1 << 3,  /* mode ebpf: clients that leave before accept (item 3) */
	GATE_MOVE_BOUND = 1 << 4,   /* both modes: a worker moves its client (dup*, then closes the
				     * original) after reading its request: found by this suite,
				     * the move ends the thread's binding and the disconnect is missed */
};

#define SLOW_CANCEL_MS 250

struct torture_options {
	const char *host;    /* cs-torture */
	const char *shim;    /* libcancelshim.so */
	unsigned gates;      /* enum torture_gate */
	int steps;           /* actions per sequence */
	bool verbose;        /* every action, every report line */
};

struct torture_result {
	int actions;         /* actions executed (client starts included) */
	int clients, stayed, left, canceled;
	int max_cancel_ms;   /* longest time from a client leaving to its worker's report */
	int slow_cancels;    /* reports later than SLOW_CANCEL_MS after the client left */
	bool failed;
	char why[512];       /* the first failure */
};

/* Runs the sequence of SEED under CANCELSHIM_MODE=MODE; prints what it did
 * on failure (or always, verbose). */
void torture_run_sequence(const struct torture_options *o, uint64_t seed, const char *mode,
			  struct torture_result *r);

#endif

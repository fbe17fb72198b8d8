/* The signal that interrupts a cancelled thread's blocking call, and how the
 * application's own use of that signal keeps working around it. */
#ifndef CS_CANCEL_SIGNAL_H
#define CS_CANCEL_SIGNAL_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

/* syscall_cp_x86_64.S */
long cs_syscall_cp(_Atomic uint64_t *state, long nr, long a1, long a2, long a3, long a4, long a5, long a6);
extern const char cs_cp_begin[], cs_cp_end[], cs_cp_cancel[];

/* Installs the handler (SA_SIGINFO|SA_RESTART), keeping whatever the
 * application had installed as its action. 0 or -errno. */
int cs_signal_install(void);

/* Sends the cancel signal to thread tid of this process. 0 or -errno. */
int cs_signal_send(int tid);

/* In a fork child (atfork handler): makes sure the kernel's action for the
 * signal is the shim's handler if the shim believes it installed it. */
void cs_signal_after_fork_child(void);

/* 1 when signo is the shim's signal, the shim is active and its handler is
 * installed (the machinery started). Before that the signal is the
 * application's alone: masks and actions pass through unchanged. */
int cs_signal_is_ours(int signo);

/* At load: notes whether the signal arrives blocked (inherited). */
void cs_signal_at_load(void);

/* A mask passed through unchanged before the machinery started (how, set as
 * given to sigprocmask): notes whether it blocks the signal. */
void cs_signal_mask_passed(int how, const sigset_t *set);

/* A thread's first record (policy/machinery.c): if the signal may have been blocked
 * in it before the machinery started, it is unblocked there, and still reads
 * back as blocked. No system call unless it may have been. */
void cs_signal_thread_claimed(void);

/* sigaction() for the shim's signal once the handler is installed: reads and
 * replaces the application's action, which the handler calls for signals the
 * shim did not send. */
int cs_signal_app_action(const struct sigaction *act, struct sigaction *old);

/* A copy of *mask without the shim's signal, so no mask the application sets
 * can hold back a cancel. Returns mask itself when there is nothing to strip. */
const sigset_t *cs_signal_strip(const sigset_t *mask, sigset_t *copy);

#endif

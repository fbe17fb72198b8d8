/* The file behind the statistics segment, made with raw system calls only
 * (no libc wrapper of ours, no allocation): /dev/shm/cancelshim.<pid>, mode
 * 0600, mapped shared. */
#ifndef CS_STATS_SEGMENT_H
#define CS_STATS_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

/* CS_SEG_DIR "/" CS_SEG_PREFIX "<pid>" into buf (at least 48 bytes). */
void cs_segment_path(int pid, char *buf);

/* Creates (replacing a stale file of the same pid) and maps CS_SEG_SIZE
 * zeroed bytes. The mapping, or NULL with -errno in *err. */
void *cs_segment_create(int pid, int *err);

/* Unlinks the segment of pid. */
void cs_segment_remove(int pid);

/* Removes segments whose process is gone (kill(pid, 0) fails with ESRCH),
 * looking at no more than max of them: a fork child that ends with _exit()
 * (Python's ForkingMixIn does, per request) cannot remove its own, and
 * they must not pile up in /dev/shm until someone runs cancelctl. Returns
 * how many it removed. */
int cs_segment_sweep(int self, int max);

/* Field 22 of /proc/self/stat (start time in clock ticks after boot), 0 if
 * unreadable. */
uint64_t cs_segment_start_time(void);

/* /proc/self/cmdline with the NULs turned into spaces, truncated to len-1. */
void cs_segment_cmdline(char *buf, size_t len);

#endif

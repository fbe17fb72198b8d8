/* The file behind the statistics segment, made with raw system calls only
 * (no libc wrapper of ours, no allocation): /dev/shm/cancelshim.<pidns>.<pid>,
 * mode 0600, mapped shared. */
#ifndef CS_STATS_SEGMENT_H
#define CS_STATS_SEGMENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Room for a segment's path, terminating NUL included. */
#define CS_SEG_PATH_MAX 80

/* CS_SEG_DIR "/" CS_SEG_PREFIX "<ns>.<pid>" into buf (CS_SEG_PATH_MAX). */
void cs_segment_path(uint64_t ns, int pid, char *buf);

/* The inode of this process's pid namespace (/proc/self/ns/pid), 0 if
 * unknown (no /proc): then no segment, since nobody could tell whether its
 * owner lives. */
uint64_t cs_segment_pid_ns(void);

/* The file's identity, to find it again by path without trusting the path. */
struct cs_segment_id {
	uint64_t dev, ino;
};

/* Creates (replacing a stale file of the same name) and maps CS_SEG_SIZE
 * zeroed bytes whose storage is reserved before the mapping is returned: a
 * full /dev/shm fails here (-ENOSPC) instead of with SIGBUS at the first
 * write. The mapping, or NULL with -errno in *err. */
void *cs_segment_create(uint64_t ns, int pid, struct cs_segment_id *id, int *err);

/* Unlinks the segment of pid. */
void cs_segment_remove(uint64_t ns, int pid);

/* Gives the file of the segment (if it still is the file id) to uid, group
 * unchanged. 0 or -errno. */
int cs_segment_chown(uint64_t ns, int pid, const struct cs_segment_id *id, uid_t uid);

/* Removes the segments of namespace ns whose process is gone (kill(pid, 0)
 * fails with ESRCH: same namespace, pid absent), looking at no more than
 * max of them: a fork child that ends with _exit() (Python's ForkingMixIn
 * does, per request) cannot remove its own, and they must not pile up in
 * /dev/shm until someone runs cancelctl. Other namespaces' segments, and
 * names of any other form, are never touched: their owners cannot be proven
 * gone from here. Returns how many it removed. */
int cs_segment_sweep(uint64_t ns, int self, int max);

/* Field 22 of /proc/self/stat (start time in clock ticks after boot), 0 if
 * unreadable. */
uint64_t cs_segment_start_time(void);

/* /proc/self/cmdline with the NULs turned into spaces, truncated to len-1. */
void cs_segment_cmdline(char *buf, size_t len);

#endif

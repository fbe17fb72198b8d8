/* Interposed uid changes, for the statistics segment only. A server started
 * as root that drops to another user after its first accept would leave a
 * root-owned segment behind: at exit it may no longer unlink it (/dev/shm is
 * sticky), and cancelctl would not recognise its owner. So, just before the
 * change and while still privileged, the segment is given to the uid the
 * process is becoming (the effective one, which file access follows); if the
 * change fails it is given back. The calls themselves pass through. */
#include <errno.h>
#include <unistd.h>

#include "base/real.h"
#include "stats/stats.h"
#include "wrap/export.h"

/* Runs call with the segment handed to euid first, undone on failure;
 * errno is the call's. */
#define WITH_SEGMENT_TO(euid, call)                                  \
	do {                                                         \
		int saved = errno;                                   \
		long prev = cs_stats_owner_change(euid);             \
		int rc;                                              \
		errno = saved;                                       \
		rc = (call);                                         \
		if (rc < 0 && prev >= 0) {                           \
			saved = errno;                               \
			cs_stats_owner_restore(prev);                \
			errno = saved;                               \
		}                                                    \
		return rc;                                           \
	} while (0)

CS_EXPORT int setuid(uid_t uid)
{
	WITH_SEGMENT_TO(uid, cs_real.setuid(uid));
}

CS_EXPORT int seteuid(uid_t euid)
{
	WITH_SEGMENT_TO(euid, cs_real.seteuid(euid));
}

CS_EXPORT int setreuid(uid_t ruid, uid_t euid)
{
	WITH_SEGMENT_TO(euid, cs_real.setreuid(ruid, euid));
}

CS_EXPORT int setresuid(uid_t ruid, uid_t euid, uid_t suid)
{
	WITH_SEGMENT_TO(euid, cs_real.setresuid(ruid, euid, suid));
}

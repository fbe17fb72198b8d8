/* What every wrapper file needs to define an exported entry point. The
 * library exports these and nothing else (exports.map); everything of the
 * core is hidden (-fvisibility=hidden). */
#ifndef CS_EXPORT_H
#define CS_EXPORT_H

#include <errno.h>

#define CS_EXPORT __attribute__((visibility("default")))

/* Runs the shim's bookkeeping after a call without touching the errno the
 * call left for the application. */
#define KEEP_ERRNO(stmt) do { int saved_ = errno; stmt; errno = saved_; } while (0)

#endif

/* The thread key and the cancel signal's handler, started once per process
 * by the first thread that binds to a client. */
#ifndef CS_MACHINERY_H
#define CS_MACHINERY_H

struct cs_thread;

/* The calling thread's record, starting the machinery on first use. NULL
 * when the shim could not start (it has then turned itself off). */
struct cs_thread *cs_machinery_thread(void);

#endif

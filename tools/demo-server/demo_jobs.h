/* The demo server's record of its jobs: what each one has done and how it
 * ended. These are the figures `cancelctl demo` shows; they come from the
 * server, so the demo cannot flatter itself from the client side. */
#ifndef DEMO_JOBS_H
#define DEMO_JOBS_H

#include <stdio.h>

#define JOB_ID_MAX 32

struct job;

/* Start recording job `id` (letters, digits, '-', '_', '.'). NULL with errno:
 * EINVAL bad id, EBUSY a job with that id is running, ENOSPC table full. */
struct job *jobs_start(const char *id, int chunks_total);

void jobs_chunk_done(struct job *job);

/* The user pressed Cancel on job `id` (GET /mark-cancel): note the time and
 * the chunks done so far, so that "work after Cancel" and "Cancel to stop"
 * are measured on the server's clock. Only noted: the job never reads it.
 * 0, or -1 with errno: ENOENT no such job, EALREADY noted before. */
int jobs_mark_cancel(const char *id);

/* The job is over: err 0 = it finished, else the errno that stopped it and
 * the storage call that returned it. */
void jobs_end(struct job *job, int err, const char *failed_call);

/* Write every job as JSON, with the server's monotonic clock now:
 *   {"now_ms":N,"jobs":{"ID":{"state":"running|finished|stopped",
 *    "chunks_total":N,"chunks_done":N,"started_ms":N,"last_chunk_ms":N|null,
 *    "ended_ms":N|null,"errno":N,"error":"ECANCELED"|null,
 *    "failed_call":"recv"|null,"cancel_ms":N|null,
 *    "chunks_at_cancel":N|null}, ...}}
 * Times are CLOCK_MONOTONIC milliseconds, comparable across processes. */
void jobs_write_json(FILE *out);

#endif

#include "demo_jobs.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "demo_net.h"

#define MAX_JOBS 64

enum job_state { JOB_RUNNING, JOB_FINISHED, JOB_STOPPED };

static const char *const state_names[] = { "running", "finished", "stopped" };

struct job {
	int used;
	char id[JOB_ID_MAX + 1];
	enum job_state state;
	int chunks_total;
	int chunks_done;
	double started_ms;
	double last_chunk_ms;	/* < 0: no chunk yet */
	double ended_ms;	/* < 0: still running */
	int err;
	const char *failed_call;
	double cancel_ms;	/* < 0: Cancel not pressed */
	int chunks_at_cancel;
};

static struct job jobs[MAX_JOBS];
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;

/* Ids go into JSON keys and URLs unescaped, so keep them plain. */
static int id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > JOB_ID_MAX)
		return 0;
	return strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* The slot for a new job: the old record of the same id, else a free slot,
 * else the job that ended first. Called with jobs_lock held. */
static struct job *pick_slot(const char *id)
{
	struct job *oldest = NULL;

	for (int i = 0; i < MAX_JOBS; i++)
		if (jobs[i].used && !strcmp(jobs[i].id, id))
			return &jobs[i];
	for (int i = 0; i < MAX_JOBS; i++) {
		if (!jobs[i].used)
			return &jobs[i];
		if (jobs[i].state != JOB_RUNNING &&
		    (!oldest || jobs[i].ended_ms < oldest->ended_ms))
			oldest = &jobs[i];
	}
	return oldest;
}

struct job *jobs_start(const char *id, int chunks_total)
{
	struct job *job;

	if (!id_ok(id)) {
		errno = EINVAL;
		return NULL;
	}
	pthread_mutex_lock(&jobs_lock);
	job = pick_slot(id);
	if (!job || (job->used && job->state == JOB_RUNNING)) {
		errno = job ? EBUSY : ENOSPC;
		pthread_mutex_unlock(&jobs_lock);
		return NULL;
	}
	*job = (struct job){
		.used = 1,
		.state = JOB_RUNNING,
		.chunks_total = chunks_total,
		.started_ms = mono_ms(),
		.last_chunk_ms = -1,
		.ended_ms = -1,
		.cancel_ms = -1,
	};
	strcpy(job->id, id);
	pthread_mutex_unlock(&jobs_lock);
	return job;
}

void jobs_chunk_done(struct job *job)
{
	pthread_mutex_lock(&jobs_lock);
	job->chunks_done++;
	job->last_chunk_ms = mono_ms();
	pthread_mutex_unlock(&jobs_lock);
}

int jobs_mark_cancel(const char *id)
{
	int rc = -1;

	errno = ENOENT;
	pthread_mutex_lock(&jobs_lock);
	for (int i = 0; i < MAX_JOBS; i++) {
		struct job *j = &jobs[i];

		if (!j->used || strcmp(j->id, id))
			continue;
		if (j->cancel_ms >= 0) {
			errno = EALREADY;
		} else {
			j->cancel_ms = mono_ms();
			j->chunks_at_cancel = j->chunks_done;
			rc = 0;
		}
		break;
	}
	pthread_mutex_unlock(&jobs_lock);
	return rc;
}

void jobs_end(struct job *job, int err, const char *failed_call)
{
	pthread_mutex_lock(&jobs_lock);
	job->state = err ? JOB_STOPPED : JOB_FINISHED;
	job->err = err;
	job->failed_call = err ? failed_call : NULL;
	job->ended_ms = mono_ms();
	pthread_mutex_unlock(&jobs_lock);
}

static void write_time(FILE *out, const char *name, double ms)
{
	if (ms < 0)
		fprintf(out, ",\"%s\":null", name);
	else
		fprintf(out, ",\"%s\":%.3f", name, ms);
}

static void write_string(FILE *out, const char *name, const char *s)
{
	if (s)
		fprintf(out, ",\"%s\":\"%s\"", name, s);
	else
		fprintf(out, ",\"%s\":null", name);
}

void jobs_write_json(FILE *out)
{
	const char *sep = "";

	pthread_mutex_lock(&jobs_lock);
	fprintf(out, "{\"now_ms\":%.3f,\"jobs\":{", mono_ms());
	for (int i = 0; i < MAX_JOBS; i++) {
		const struct job *j = &jobs[i];

		if (!j->used)
			continue;
		fprintf(out, "%s\"%s\":{\"state\":\"%s\",\"chunks_total\":%d,\"chunks_done\":%d",
			sep, j->id, state_names[j->state], j->chunks_total, j->chunks_done);
		write_time(out, "started_ms", j->started_ms);
		write_time(out, "last_chunk_ms", j->last_chunk_ms);
		write_time(out, "ended_ms", j->ended_ms);
		fprintf(out, ",\"errno\":%d", j->err);
		write_string(out, "error", j->err ? strerrorname_np(j->err) : NULL);
		write_string(out, "failed_call", j->failed_call);
		write_time(out, "cancel_ms", j->cancel_ms);
		if (j->cancel_ms < 0)
			fputs(",\"chunks_at_cancel\":null", out);
		else
			fprintf(out, ",\"chunks_at_cancel\":%d", j->chunks_at_cancel);
		fputc('}', out);
		sep = ",";
	}
	fputs("}}\n", out);
	pthread_mutex_unlock(&jobs_lock);
}

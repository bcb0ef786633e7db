/* gc.h - the blob store's garbage collector, run by the API on a background thread:
 * every interval it walks the job directories older than min_age and removes those
 * whose job no longer exists in Redis (expired after the retention period, or left by
 * a process that crashed before creating its job), unless an upload is still being
 * written there. A Redis error stops the walk (nothing is removed on a guess).
 * Between walks, every min(interval, staging_age / 2) it sweeps the staging files of
 * writers that died (sp_blobs_sweep_staging: unrefreshed for staging_age, unlocked):
 * a process killed mid-upload leaves its file for at most 1.5 staging_age. */
#ifndef SPOOL_API_GC_H
#define SPOOL_API_GC_H

#include <stdint.h>

#include "spool/blob.h"
#include "spool/err.h"

typedef struct api_gc api_gc;

/* Start the thread (the first walk happens after one interval). blobs must outlive
 * it. NULL with err set on failure. */
api_gc *api_gc_start(const char *url, const char *prefix, sp_blobs *blobs, int64_t interval_ms,
                     int64_t min_age_ms, int64_t staging_age_ms, sp_err *err);

/* Stop the thread (interrupting its wait) and free. Accepts NULL. */
void api_gc_stop(api_gc *gc);

/* One walk, on the caller's thread: *removed gets the directories removed. 0 or an
 * error (SP_EREDIS...). Used by the thread and by tests. */
int api_gc_run(const char *url, const char *prefix, sp_blobs *blobs, int64_t min_age_ms,
               int *removed, sp_err *err);

#endif

/* gc.c - blob garbage collection (see gc.h). */
#include "gc.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/queue.h"
#include "spool/ticker.h"
#include "spool/util.h"

/* A staging file written to this recently marks an upload in progress. */
#define API_GC_BUSY_MS (10 * 60 * 1000)

struct api_gc {
    sp_ticker *ticker;
    char url[1024];
    char prefix[128];
    sp_blobs *blobs;
    int64_t interval_ms, min_age_ms, staging_age_ms;
    int64_t next_walk; /* sp_mono_ms() of the next walk over the job directories */
};

typedef struct api__gc_walk {
    sp_queue *q;
    sp_blobs *blobs;
    int64_t min_age_ms;
} api__gc_walk;

static int api__gc_keep(const char *id, void *ud)
{
    api__gc_walk *w = ud;
    sp_job job;
    sp_err err;
    int rc = sp_queue_get(w->q, id, &job, &err);
    sp_job_clear(&job);
    if (rc == 0)
        return 1;
    if (rc != SP_ENOTFOUND)
        return rc;
    /* Uploads write continuously (a stalled one is timed out much sooner). */
    int64_t window = w->min_age_ms > API_GC_BUSY_MS ? w->min_age_ms : API_GC_BUSY_MS;
    return sp_blobs_writing(w->blobs, id, window) ? 1 : 0;
}

int api_gc_run(const char *url, const char *prefix, sp_blobs *blobs, int64_t min_age_ms,
               int *removed, sp_err *err)
{
    *removed = 0;
    api__gc_walk w = {sp_queue_open(url, prefix, err), blobs, min_age_ms};
    if (w.q == NULL)
        return err ? err->code : SP_EINVAL;
    int rc = sp_queue_ping(w.q, err);
    if (rc == 0)
        rc = sp_blobs_gc(blobs, min_age_ms, api__gc_keep, &w, removed, err);
    sp_queue_close(w.q);
    return rc;
}

/* A tick (every half staging age, or interval if shorter): sweep the staging files of
 * dead writers (the file system only); every interval, walk the job directories. */
static void api__gc_tick(void *ud)
{
    api_gc *gc = ud;
    int removed = 0;
    sp_err err;
    if (sp_blobs_sweep_staging(gc->blobs, gc->staging_age_ms, &removed, &err) < 0)
        sp_warn(NULL, "blob gc: %s", err.msg);
    else if (removed > 0)
        sp_info(NULL, "blob gc: removed %d staging files whose writers died", removed);
    if (sp_mono_ms() < gc->next_walk)
        return;
    if (api_gc_run(gc->url, gc->prefix, gc->blobs, gc->min_age_ms, &removed, &err) < 0)
        sp_warn(NULL, "blob gc: %s", err.msg);
    else if (removed > 0)
        sp_info(NULL, "blob gc: removed the files of %d jobs", removed);
    gc->next_walk = sp_mono_ms() + gc->interval_ms;
}

api_gc *api_gc_start(const char *url, const char *prefix, sp_blobs *blobs, int64_t interval_ms,
                     int64_t min_age_ms, int64_t staging_age_ms, sp_err *err)
{
    api_gc *gc = sp_calloc(1, sizeof *gc);
    if (gc == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    int n1 = snprintf(gc->url, sizeof gc->url, "%s", url);
    int n2 = snprintf(gc->prefix, sizeof gc->prefix, "%s", prefix);
    if (n1 < 0 || (size_t)n1 >= sizeof gc->url || n2 < 0 || (size_t)n2 >= sizeof gc->prefix) {
        sp_err_set(err, SP_EINVAL, "Redis URL or key prefix too long");
        sp_free(gc);
        return NULL;
    }
    gc->blobs = blobs;
    gc->interval_ms = interval_ms > 0 ? interval_ms : 600000;
    gc->min_age_ms = min_age_ms;
    gc->staging_age_ms =
        staging_age_ms > SP_BLOB_STALE_MIN_MS ? staging_age_ms : SP_BLOB_STALE_MIN_MS;
    gc->next_walk = sp_mono_ms() + gc->interval_ms;
    int64_t tick = gc->staging_age_ms / 2 < gc->interval_ms ? gc->staging_age_ms / 2
                                                             : gc->interval_ms;
    if ((gc->ticker = sp_ticker_start(tick, api__gc_tick, gc, err)) == NULL) {
        sp_err_prefix(err, "blob gc");
        sp_free(gc);
        return NULL;
    }
    return gc;
}

void api_gc_stop(api_gc *gc)
{
    if (gc == NULL)
        return;
    sp_ticker_stop(gc->ticker);
    sp_free(gc);
}

/* gc.c - blob garbage collection (see gc.h). */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/queue.h"
#include "spool/util.h"

/* A staging file written to this recently marks an upload in progress. */
#define API_GC_BUSY_MS (10 * 60 * 1000)

struct api_gc {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    bool stop;
    char url[1024];
    char prefix[128];
    sp_blobs *blobs;
    int64_t interval_ms, min_age_ms, staging_age_ms;
};

typedef struct api__gc_walk {
    sp_queue *q;
    sp_blobs *blobs;
    int64_t min_age_ms;
} api__gc_walk;

/* True when the job's directory holds a staging file written to within min_age_ms:
 * an upload in progress whose job does not exist yet. */
static bool api__gc_writing(api__gc_walk *w, const char *id)
{
    char path[PATH_MAX];
    if (sp_blob_path(w->blobs, id, "x", path, sizeof path, NULL) < 0)
        return false;
    char *slash = strrchr(path, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    DIR *d = opendir(path);
    if (d == NULL)
        return false;
    bool busy = false;
    int64_t now = sp_now_ms();
    struct dirent *e;
    while (!busy && (e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".tmp-") == NULL)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0) {
            int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
            /* Uploads write continuously (a stalled one is timed out much sooner). */
            int64_t window = w->min_age_ms > API_GC_BUSY_MS ? w->min_age_ms : API_GC_BUSY_MS;
            busy = now - mtime < window;
        }
    }
    closedir(d);
    return busy;
}

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
    return api__gc_writing(w, id) ? 1 : 0;
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

/* Every half staging age (or interval, if shorter): sweep the staging files of dead
 * writers (the file system only). Every interval: the walk over job directories. */
static void *api__gc_main(void *arg)
{
    api_gc *gc = arg;
    int64_t stale_ms = gc->staging_age_ms;
    int64_t tick_ms = stale_ms / 2 < gc->interval_ms ? stale_ms / 2 : gc->interval_ms;
    int64_t next_walk = sp_mono_ms() + gc->interval_ms;
    pthread_mutex_lock(&gc->mu);
    while (!gc->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += tick_ms / 1000;
        ts.tv_nsec += (tick_ms % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (!gc->stop && pthread_cond_timedwait(&gc->cond, &gc->mu, &ts) != ETIMEDOUT)
            ;
        if (gc->stop)
            break;
        pthread_mutex_unlock(&gc->mu);
        int removed = 0;
        sp_err err;
        if (sp_blobs_sweep_staging(gc->blobs, stale_ms, &removed, &err) < 0)
            sp_warn(NULL, "blob gc: %s", err.msg);
        else if (removed > 0)
            sp_info(NULL, "blob gc: removed %d staging files whose writers died", removed);
        if (sp_mono_ms() >= next_walk) {
            int rc = api_gc_run(gc->url, gc->prefix, gc->blobs, gc->min_age_ms, &removed, &err);
            if (rc < 0)
                sp_warn(NULL, "blob gc: %s", err.msg);
            else if (removed > 0)
                sp_info(NULL, "blob gc: removed the files of %d jobs", removed);
            next_walk = sp_mono_ms() + gc->interval_ms;
        }
        pthread_mutex_lock(&gc->mu);
    }
    pthread_mutex_unlock(&gc->mu);
    return NULL;
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
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gc->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&gc->mu, NULL);
    if (pthread_create(&gc->thread, NULL, api__gc_main, gc) != 0) {
        sp_err_set(err, SP_ENOMEM, "cannot start the blob gc thread");
        pthread_cond_destroy(&gc->cond);
        pthread_mutex_destroy(&gc->mu);
        sp_free(gc);
        return NULL;
    }
    return gc;
}

void api_gc_stop(api_gc *gc)
{
    if (gc == NULL)
        return;
    pthread_mutex_lock(&gc->mu);
    gc->stop = true;
    pthread_cond_signal(&gc->cond);
    pthread_mutex_unlock(&gc->mu);
    pthread_join(gc->thread, NULL);
    pthread_cond_destroy(&gc->cond);
    pthread_mutex_destroy(&gc->mu);
    sp_free(gc);
}

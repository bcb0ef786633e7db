/* schedloop.c - the schedules' firing loop (see schedloop.h). */
#include "schedloop.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "schedjob.h"
#include "server.h"
#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/queue.h"
#include "spool/schedule.h"
#include "spool/sha256.h"
#include "submit.h"

#define API_SCHED_BATCH 64 /* schedules taken from the due index per round */
#define API_SCHED_TICKS 16 /* ticks of one schedule fired per round (the rest next round) */
#define API_SCHED_BACKOFF_MIN_MS 1000  /* a tick whose job could not be made is tried again */
#define API_SCHED_BACKOFF_MAX_MS 30000 /* after half its age, within these bounds */
#define API_SCHED_WARN_MS 10000        /* at most one such warning per this long */

struct api_sched_loop {
    const api_config *cfg;
    const sp_routes *routes;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    bool stop;
    bool joined; /* api_sched_halt took the thread (one caller: the server's stop) */
    sp_scheds *h;
    sp_queue *q;
    atomic_uint_least64_t errors;
    int64_t warn_next;  /* the loop's thread only: when the next warning may be logged */
    uint64_t unlogged;  /* and the failures not logged since the last one */
};

/* How long a schedule whose tick (age ms old) could not make its job waits before it is
 * tried again: half the tick's age within the bounds, so a queue that stays full (or a
 * Redis that errs) costs a few tries per schedule, not one every round. */
static int64_t api__backoff(int64_t age)
{
    int64_t b = age / 2;
    return b < API_SCHED_BACKOFF_MIN_MS   ? API_SCHED_BACKOFF_MIN_MS
           : b > API_SCHED_BACKOFF_MAX_MS ? API_SCHED_BACKOFF_MAX_MS
                                          : b;
}

/* The idempotency key of a tick's job, and the fingerprint that goes with it (the key's
 * digest: every process that fires the tick sends the same request). */
static int api__tick_key(const sp_sched *s, int64_t tick, char key[256], char fp[65],
                         sp_err *err)
{
    int n = snprintf(key, 256, "sched:%s:%s:%lld", s->name, s->generation, (long long)tick);
    if (n < 0 || n >= 256)
        return sp_err_set(err, SP_EINVAL, "idempotency key too long");
    return sp_sha256_hex_of(key, (size_t)n, fp, err);
}

/* Make the job of one tick: 0 with id set (the job this call made, or the one another
 * process made for the tick: the same id), or an error (SP_EFULL, SP_EREDIS...). */
static int api__make(api_sched_loop *l, const sp_sched *s, const api_sched_job *j, int64_t tick,
                     char id[SP_ID_LEN + 1], sp_err *err)
{
    char key[256], fp[65];
    int rc = api__tick_key(s, tick, key, fp, err);
    if (rc < 0)
        return rc;
    /* The tick's own id, refused when its job exists: one job per tick even once the
     * idempotency key has expired (a process that died between making the job and
     * moving the schedule on leaves the tick due). */
    if ((rc = sp_sched_tick_id(s, tick, id, err)) < 0)
        return rc;
    sp_enqueue e = {
        .id = id,
        .high_priority = j->high_priority,
        .params_json = sp_buf_cstr(&j->params),
        .input_json = sp_buf_cstr(&j->input),
        .idem_key = key,
        .fingerprint = fp,
        .created_at = sp_now_ms(),
        .new_id = true,
    };
    api_enqueue_defaults(l->cfg, l->routes, j->type, j->callback_url, &e);
    char existing[SP_ID_LEN + 1] = "";
    rc = sp_queue_enqueue(l->q, &e, existing, err);
    if (rc == 1 || rc == SP_ECONFLICT) { /* made already, by this or another process */
        memcpy(id, existing, SP_ID_LEN + 1);
        return 0;
    }
    return rc;
}

/* The template of s as a job, or an error logged (and counted) once per round. */
static int api__template(api_sched_loop *l, const sp_sched *s, api_sched_job *j)
{
    json_error_t jerr;
    json_t *t = json_loads(s->job ? s->job : "", JSON_REJECT_DUPLICATES, &jerr);
    api_invalid inv = {"job", "the stored template is not JSON"};
    int rc = t ? api_sched_job_build(t, (size_t)l->cfg->inline_max, j, &inv) : SP_EINVAL;
    json_decref(t);
    if (rc < 0)
        sp_error(NULL, "schedule %s: its job cannot be made (%s: %s); its due ticks are passed "
                       "over: change the job (PATCH)",
                 s->name, inv.field, inv.message);
    return rc;
}

/* Fire what is due of one schedule at now (Redis's clock). Returns false when the
 * schedule is still due as it was (it could not be read or moved on: the next round
 * takes it again), true when it moved on, went, or another process moved it. */
static bool api__fire(api_sched_loop *l, const char *name, int64_t now)
{
    sp_err err;
    sp_sched s;
    bool moved = true;
    int rc = sp_sched_get(l->h, name, &s, &err);
    if (rc < 0) {
        if (rc != SP_ENOTFOUND)
            sp_warn(NULL, "schedule %s: cannot read it: %s", name, err.msg);
        return rc == SP_ENOTFOUND;
    }
    api_cron c;
    api_tz *tz = NULL;
    int64_t ticks[API_SCHED_TICKS], next = 0, passed = 0, invalid = 0;
    size_t n = 0, made = 0;
    char ids[API_SCHED_TICKS][SP_ID_LEN + 1];
    api_sched_job j;
    api_sched_job_init(&j);
    if (s.paused)
        goto out;
    if ((rc = api_cron_parse(s.cron, &c, &err)) < 0 ||
        (tz = api_tz_open(s.timezone, &err)) == NULL ||
        (rc = api_cron_due(&c, tz, s.last_tick, now, l->cfg->sched_grace_ms, s.run_once, ticks,
                           API_SCHED_TICKS, &n, &next, &passed, &err)) < 0) {
        sp_error(NULL, "schedule %s: cannot work out its ticks (tried again in a minute): %s",
                 name, err.msg);
        atomic_fetch_add(&l->errors, 1);
        /* Not again every round: the same ticks, looked at again a minute from now. */
        sp_sched_step later = {.read = &s, .last_tick = s.last_tick, .next_at = now + 60000};
        moved = sp_sched_advance(l->h, &later, &err) >= 0;
        goto out;
    }
    if (n > 0 && api__template(l, &s, &j) < 0) {
        atomic_fetch_add(&l->errors, n);
        invalid = (int64_t)n; /* nothing fires: pass over them, as invalid (not missed) */
        n = 0;
    }
    for (; made < n; made++) {
        if ((rc = api__make(l, &s, &j, ticks[made], ids[made], &err)) < 0) {
            atomic_fetch_add(&l->errors, 1);
            int64_t t = sp_mono_ms();
            if (t >= l->warn_next) {
                sp_warn(NULL, "schedule %s: the job of tick %lld not made (tried again in %lld "
                              "ms while within SPOOL_SCHEDULE_GRACE): %s (%llu other failures "
                              "not logged since the last line)",
                        name, (long long)ticks[made], (long long)api__backoff(now - ticks[made]),
                        err.msg, (unsigned long long)l->unlogged);
                l->warn_next = t + API_SCHED_WARN_MS;
                l->unlogged = 0;
            } else {
                l->unlogged++;
            }
            break;
        }
        sp_logctx lc = {ids[made], NULL, NULL};
        sp_debug(&lc, "schedule %s: tick %lld", name, (long long)ticks[made]);
    }
    sp_sched_step st = {
        .read = &s,
        /* The first tick after last_tick is the next one: everything before is done. A
         * tick that failed is looked at again after a backoff, not in the next round. */
        .last_tick = made < n ? ticks[made] - 1 : next - 1,
        .next_at = made < n ? now + api__backoff(now - ticks[made]) : next,
        .passed = passed,
        .invalid = invalid,
        .nruns = made,
        .run_ids = (const char(*)[SP_ID_LEN + 1])ids,
        .run_ticks = ticks,
    };
    rc = sp_sched_advance(l->h, &st, &err);
    moved = rc >= 0;
    if (rc < 0)
        sp_warn(NULL, "schedule %s: cannot move it on (another round will): %s", name, err.msg);
    else if (rc == 1 && passed > 0)
        sp_info(NULL, "schedule %s: %lld missed ticks passed over (policy %s)", name,
                (long long)passed, s.run_once ? "run_once" : "skip");
out:
    api_sched_job_free(&j);
    api_tz_free(tz);
    sp_sched_clear(&s);
    return moved;
}

/* One round: fire every due schedule, from the skip-th on (*skip: the due schedules that
 * stay due whatever is tried, ahead in the index, which the next round steps over).
 * Returns how long to sleep (ms). */
static int64_t api__round(api_sched_loop *l, size_t *skip)
{
    sp_err err;
    int64_t now, earliest = 0;
    char names[API_SCHED_BATCH][SP_SCHED_NAME_MAX + 1];
    size_t n = 0, stuck = 0;
    if (sp_scheds_time(l->h, &now, &err) < 0 ||
        sp_sched_due(l->h, now, *skip, names, API_SCHED_BATCH, &n, &earliest, &err) < 0) {
        sp_debug(NULL, "scheduler: %s", err.msg);
        *skip = 0;
        return API_SCHED_WAKE_MS;
    }
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&l->mu);
        bool stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        if (!api__fire(l, names[i], now))
            stuck++;
    }
    if (n == API_SCHED_BATCH) {
        /* More are due: at once, past the ones that stayed due; but a batch where nothing
         * moved waits as any round does. */
        *skip += stuck;
        if (stuck < n)
            return 0;
    } else {
        *skip = 0;
    }
    int64_t wait = earliest > 0 ? earliest - now : API_SCHED_WAKE_MS;
    return wait < 1 ? 1 : wait > API_SCHED_WAKE_MS ? API_SCHED_WAKE_MS : wait;
}

static void *api__main(void *arg)
{
    api_sched_loop *l = arg;
    size_t skip = 0;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        pthread_mutex_unlock(&l->mu);
        int64_t wait = api__round(l, &skip);
        pthread_mutex_lock(&l->mu);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

api_sched_loop *api_sched_start(const api_config *cfg, const sp_routes *routes, sp_err *err)
{
    api_sched_loop *l = sp_calloc(1, sizeof *l);
    if (l == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    l->cfg = cfg;
    l->routes = routes;
    if ((l->h = sp_scheds_open(cfg->common.redis_url, cfg->common.prefix, err)) == NULL ||
        (l->q = sp_queue_open(cfg->common.redis_url, cfg->common.prefix, err)) == NULL) {
        sp_scheds_close(l->h);
        sp_free(l);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->mu, NULL);
    if (pthread_create(&l->thread, NULL, api__main, l) != 0) {
        sp_err_set(err, SP_ENOMEM, "cannot start the scheduler's thread");
        pthread_cond_destroy(&l->cond);
        pthread_mutex_destroy(&l->mu);
        sp_queue_close(l->q);
        sp_scheds_close(l->h);
        sp_free(l);
        return NULL;
    }
    return l;
}

void api_sched_halt(api_sched_loop *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    bool joined = l->joined;
    l->stop = true;
    l->joined = true;
    pthread_cond_signal(&l->cond);
    pthread_mutex_unlock(&l->mu);
    if (!joined)
        pthread_join(l->thread, NULL);
}

void api_sched_stop(api_sched_loop *l)
{
    if (l == NULL)
        return;
    api_sched_halt(l);
    pthread_cond_destroy(&l->cond);
    pthread_mutex_destroy(&l->mu);
    sp_queue_close(l->q);
    sp_scheds_close(l->h);
    sp_free(l);
}

uint64_t api_sched_errors(const api_sched_loop *l)
{
    return l ? atomic_load(&((api_sched_loop *)l)->errors) : 0;
}

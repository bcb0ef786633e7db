/* worker.c - the runtime shared by the worker binaries (see worker.h). */
#include "spool/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/outbound.h"
#include "spool/queue.h"
#include "spool/util.h"

#define SP_MAX_SLOTS 64
#define SP_PREFETCH_HOLD_MS 1000 /* longest a prefetched claim waits behind a job */
#define SP_MAX_QUEUES 16

typedef struct sp__worker sp__worker;

struct sp_job_ctx {
    sp__worker *w;
    int slot;
    sp_consumer *consumer;
    sp_job job;
    sp_logctx log;
    /* Shared between the slot thread and the keeper thread. */
    atomic_int active;   /* a job is running in this slot */
    atomic_int progress; /* last progress set by the handler, -1 none */
    atomic_int written;  /* last progress the keeper wrote to Redis */
    sp_flag stop;        /* non-zero: the handler must stop (read by libav/libcurl) */
    atomic_int reason;   /* why: SP_ECANCELLED, SP_ELOST, SP_ETIMEDOUT, SP_ESHUTDOWN */
    atomic_llong started_mono;
    atomic_llong time_limit_ms;
    atomic_int unclaimed; /* keeper: work held ahead already given back for this job */
    pthread_mutex_t mu;  /* guards the job id/token the keeper reads */
    /* Slot thread only. */
    sp_buf outputs;      /* JSON array members, comma separated */
    char *metadata;
    bool failed;
    bool fail_retryable;
    char fail_code[64];
    char fail_msg[768];
};

struct sp__worker {
    const sp_worker_def *def;
    sp_common_config common;
    char *queues_opt;
    int64_t concurrency;
    int64_t lease_ms;
    int64_t grace_ms;
    int64_t renew_ms;
    int64_t worker_ttl_ms;
    int64_t maintain_ms;
    int64_t prefetch_ms;
    char *worker_id_opt;

    char id[128];
    char run[24]; /* this process's run of the id (see sp_worker_info.run) */
    char host[64];
    int64_t started_at;
    char queue_names[SP_MAX_QUEUES][SP_QUEUE_MAX + 1];
    const char *queues[SP_MAX_QUEUES];
    size_t nqueues;
    sp_blobs *blobs;
    sp_outbound *outbound; /* SPOOL_OUTBOUND_ALLOW, for the handlers' fetches */
    sp_logctx log;

    sp_flag draining; /* stop taking jobs */
    sp_flag grace_over; /* draining, and the grace period has run out */
    sp_flag stopping; /* the keeper and slots must exit */
    atomic_llong processed;
    atomic_llong failed;
    sp_job_ctx slots[SP_MAX_SLOTS];
    pthread_t slot_threads[SP_MAX_SLOTS];
    atomic_int slots_running;
};

/* ---- the handler's side ------------------------------------------------------------ */

const sp_job *sp_job_ctx_job(const sp_job_ctx *ctx)
{
    return &ctx->job;
}

const sp_outbound *sp_job_ctx_outbound(const sp_job_ctx *ctx)
{
    return ctx->w->outbound;
}

sp_blobs *sp_job_ctx_blobs(const sp_job_ctx *ctx)
{
    return ctx->w->blobs;
}

const sp_logctx *sp_job_ctx_log(const sp_job_ctx *ctx)
{
    return &ctx->log;
}

void sp_job_ctx_progress(sp_job_ctx *ctx, int percent)
{
    if (percent < 0)
        percent = 0;
    if (percent > 100)
        percent = 100;
    atomic_store(&ctx->progress, percent);
}

bool sp_job_ctx_stopping(const sp_job_ctx *ctx)
{
    return atomic_load(&ctx->stop) != 0;
}

int sp_job_ctx_stop_reason(const sp_job_ctx *ctx)
{
    return atomic_load(&((sp_job_ctx *)ctx)->reason);
}

const sp_flag *sp_job_ctx_stop_flag(const sp_job_ctx *ctx)
{
    return &ctx->stop;
}

void sp_job_ctx_set_time_limit(sp_job_ctx *ctx, int64_t ms)
{
    atomic_store(&ctx->time_limit_ms, ms > 0 ? ms : 0);
}

/* Ask the job in ctx to stop for reason; the first reason wins. */
static void sp__ctx_stop(sp_job_ctx *ctx, int reason)
{
    int expected = 0;
    atomic_compare_exchange_strong(&ctx->reason, &expected, reason);
    atomic_store(&ctx->stop, 1);
}

int sp_job_ctx_set_metadata(sp_job_ctx *ctx, const char *json)
{
    char *copy = sp_strdup(json);
    if (copy == NULL)
        return SP_ENOMEM;
    sp_free(ctx->metadata);
    ctx->metadata = copy;
    sp_err err;
    int rc = sp_queue_annotate(sp_consumer_queue(ctx->consumer), ctx->job.id, ctx->job.token,
                               json, &err);
    if (rc == SP_ELOST)
        sp__ctx_stop(ctx, SP_ELOST);
    else if (rc < 0)
        sp_warn(&ctx->log, "could not store metadata now (kept for the result): %s", err.msg);
    return rc == SP_ELOST ? rc : 0;
}

int sp_job_ctx_add_output(sp_job_ctx *ctx, const char *name, const char *content_type,
                          int64_t bytes, const char *extra_json)
{
    sp_buf *b = &ctx->outputs;
    size_t mark = b->len;
    int rc = 0;
    if (b->len > 0)
        rc = sp_buf_addc(b, ',');
    if (rc == 0)
        rc = sp_buf_adds(b, "{\"name\":\"");
    if (rc == 0)
        rc = sp_buf_add_json_escaped(b, name, strlen(name));
    if (rc == 0)
        rc = sp_buf_adds(b, "\",\"content_type\":\"");
    if (rc == 0)
        rc = sp_buf_add_json_escaped(b, content_type, strlen(content_type));
    if (rc == 0)
        rc = sp_buf_addf(b, "\",\"bytes\":%lld", (long long)bytes);
    if (rc == 0 && extra_json != NULL) {
        /* Splice the members of the extra object into this entry. */
        const char *open = strchr(extra_json, '{');
        const char *close = strrchr(extra_json, '}');
        if (open && close && close > open + 1) {
            rc = sp_buf_addc(b, ',');
            if (rc == 0)
                rc = sp_buf_add(b, open + 1, (size_t)(close - open - 1));
        }
    }
    if (rc == 0)
        rc = sp_buf_addc(b, '}');
    if (rc < 0) {
        b->len = mark;
        if (b->data)
            b->data[mark] = '\0';
    }
    return rc;
}

int sp_job_ctx_fail(sp_job_ctx *ctx, int code, bool retryable, const char *error_code,
                    const char *fmt, ...)
{
    ctx->failed = true;
    ctx->fail_retryable = retryable;
    snprintf(ctx->fail_code, sizeof ctx->fail_code, "%s",
             error_code && error_code[0] ? error_code : sp_code_name(code));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->fail_msg, sizeof ctx->fail_msg, fmt, ap);
    va_end(ap);
    return code < 0 ? code : SP_EINVAL;
}

/* ---- running one job ------------------------------------------------------------------ */

static void sp__ctx_reset(sp_job_ctx *ctx)
{
    sp_buf_reset(&ctx->outputs);
    sp_free(ctx->metadata);
    ctx->metadata = NULL;
    ctx->failed = false;
    ctx->fail_retryable = false;
    ctx->fail_code[0] = '\0';
    ctx->fail_msg[0] = '\0';
    atomic_store(&ctx->progress, -1);
    atomic_store(&ctx->written, -1);
    atomic_store(&ctx->reason, 0);
    atomic_store(&ctx->time_limit_ms, 0);
    atomic_store(&ctx->stop, 0);
}

/* Decide the outcome of a handler's return. Returns false when nothing may be written
 * (the lease was lost). */
static bool sp__outcome(sp_job_ctx *ctx, int rc, sp_outcome *o, char *outputs_json,
                        size_t outlen, char *msg, size_t msglen)
{
    int reason = atomic_load(&ctx->reason);
    memset(o, 0, sizeof *o);
    o->delay_ms = -1;
    o->metadata_json = ctx->metadata;
    if (reason == SP_ELOST)
        return false;
    if (rc == 0) {
        o->mode = SP_FINISH_SUCCEEDED;
        snprintf(outputs_json, outlen, "[%s]", sp_buf_cstr(&ctx->outputs));
        o->outputs_json = outputs_json;
        return true;
    }
    if (reason == SP_ECANCELLED) {
        o->mode = SP_FINISH_CANCELLED;
    } else if (reason == SP_ESHUTDOWN) {
        o->mode = SP_FINISH_RELEASE;
    } else if (reason == SP_ETIMEDOUT) {
        o->mode = SP_FINISH_RETRY;
        o->error_code = "timed_out";
        snprintf(msg, msglen, "the job ran longer than its time limit of %lld s",
                 (long long)(atomic_load(&ctx->time_limit_ms) / 1000));
        o->error_message = msg;
    } else if (ctx->failed) {
        o->mode = ctx->fail_retryable ? SP_FINISH_RETRY : SP_FINISH_FAILED;
        o->error_code = ctx->fail_code;
        o->error_message = ctx->fail_msg;
    } else {
        o->mode = sp_code_transient(rc) ? SP_FINISH_RETRY : SP_FINISH_FAILED;
        o->error_code = sp_code_name(rc);
        snprintf(msg, msglen, "%s", sp_strerror(rc));
        o->error_message = msg;
    }
    return true;
}

/* While Redis is away (restarting, or a Sentinel failover electing a new master), try
 * again after 100 ms, doubling up to this: a failover is over within about two seconds,
 * and a worker should be back at work within half a second of it. */
#define SP__REDIS_BACKOFF_MAX_MS 500
/* How long an outcome is retried before the worker gives up on recording it (the lease
 * rules then run the job again). */
#define SP__REDIS_PATIENCE_MS 120000

/* Record the outcome o of ctx's job, trying again while Redis is away: a finished job
 * that is not recorded would be done again when its lease runs out. A worker whose
 * shutdown grace period is over stops trying (the job then runs again elsewhere), so
 * that it exits when its supervisor expects it to. Returns sp_consumer_finish's
 * result; the outcome itself goes to sp__on_finished. */
static int sp__finish(sp_job_ctx *ctx, const sp_outcome *o, bool take_next, sp_err *err)
{
    int rc;
    int64_t backoff = 100, until = sp_mono_ms() + SP__REDIS_PATIENCE_MS;
    for (int tries = 0;; tries++) {
        rc = sp_consumer_finish(ctx->consumer, &ctx->job, o, take_next, NULL, err);
        if (rc != SP_EREDIS || sp_mono_ms() >= until)
            return rc;
        if (ctx->w->grace_over) {
            sp_warn(&ctx->log, "grace period over with Redis away: the outcome is not "
                    "recorded, and the job runs again once its lease runs out");
            return rc;
        }
        if (tries == 0)
            sp_warn(&ctx->log, "cannot record the outcome yet: %s (retrying)", err->msg);
        sp_sleep_ms(backoff, &ctx->w->grace_over);
        backoff = backoff < SP__REDIS_BACKOFF_MAX_MS ? backoff * 2 : SP__REDIS_BACKOFF_MAX_MS;
    }
}

/* A job taken after SIGTERM (the wait for one was under way, or it was started ahead
 * in a batch): give it back without running it, attempt not counted, so a
 * worker that is shutting down starts nothing new. */
static void sp__give_back(sp_job_ctx *ctx)
{
    sp_outcome o = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
    sp_err err;
    int rc = sp__finish(ctx, &o, false, &err);
    if (rc < 0 && rc != SP_ELOST)
        sp_error(&ctx->log, "could not give back a job taken while shutting down: %s "
                            "(it is redone when its lease runs out)", err.msg);
}

/* A finish recorded, at once or with a later batch (prefetch): log and count it. Runs
 * on the slot's thread, or on the keeper's when it flushes a slot's batch. */
static void sp__on_finished(void *arg, const sp_finished *f)
{
    sp__worker *w = arg;
    sp_logctx log = {f->id, f->queue, w->id};
    long long ms = (long long)f->ran_ms;
    if (f->rc == SP_ELOST) {
        sp_warn(&log, "finished after its lease ran out; the job was given to another "
                      "attempt, this result is discarded");
        return;
    }
    if (f->rc < 0) {
        sp_error(&log, "could not record the outcome: %s", sp_strerror(f->rc));
        return;
    }
    switch (f->state) {
    case SP_STATE_SUCCEEDED:
        atomic_fetch_add(&w->processed, 1);
        sp_info(&log, "succeeded in %lld ms", ms);
        break;
    case SP_STATE_QUEUED:
        sp_info(&log, "given back to the queue, attempt not counted");
        break;
    case SP_STATE_CANCELLED:
        sp_info(&log, "cancelled after %lld ms", ms);
        break;
    default:
        atomic_fetch_add(&w->failed, 1);
        sp_warn(&log, "%s after %lld ms: %s: %s", sp_state_name(f->state), ms, f->error_code,
                f->error_message);
    }
}

static void sp__run_job(sp__worker *w, sp_job_ctx *ctx)
{
    sp__ctx_reset(ctx);
    atomic_store(&ctx->started_mono, sp_mono_ms());
    atomic_store(&ctx->unclaimed, 0);
    pthread_mutex_lock(&ctx->mu);
    atomic_store(&ctx->active, 1);
    pthread_mutex_unlock(&ctx->mu);
    sp_info(&ctx->log, "started %s (attempt %lld of %lld)", ctx->job.type,
            (long long)ctx->job.attempts, (long long)ctx->job.max_attempts);
    if (ctx->job.attempts > 1) {
        /* An earlier attempt may have died mid-write: its staging files go, so the job
         * ends with one set of files. */
        sp_err serr;
        if (sp_blobs_remove_staging(w->blobs, ctx->job.id, &serr) < 0)
            sp_warn(&ctx->log, "could not remove an earlier attempt's files: %s", serr.msg);
    }
    int64_t t0 = sp_mono_ms();
    int rc = w->def->handler(ctx, w->def->userdata, ctx->slot);

    pthread_mutex_lock(&ctx->mu);
    atomic_store(&ctx->active, 0);
    pthread_mutex_unlock(&ctx->mu);

    sp_outcome o;
    char outputs[65536], msg[512];
    bool write = sp__outcome(ctx, rc, &o, outputs, sizeof outputs, msg, sizeof msg);
    if (!write) {
        sp_warn(&ctx->log, "lease lost after %lld ms: another attempt owns the job now",
                (long long)(sp_mono_ms() - t0));
        return;
    }
    /* The outcome is logged and counted by sp__on_finished once Redis has it. */
    sp_err err;
    int frc = sp__finish(ctx, &o, !w->draining, &err);
    if (frc < 0 && frc != SP_ELOST)
        sp_error(&ctx->log, "could not record the outcome: %s", err.msg);
}

static void *sp__slot_main(void *arg)
{
    sp_job_ctx *ctx = arg;
    sp__worker *w = ctx->w;
    sp_logctx slog = {NULL, NULL, w->id};
    bool outage = false;
    int64_t backoff = 100;
    while (!w->draining) {
        sp_err err;
        sp_job job;
        int rc = sp_consumer_next(ctx->consumer, 1000, &job, &err);
        if (rc == SP_ETIMEDOUT)
            continue;
        if (rc < 0) {
            if (!outage)
                sp_error(&slog, "cannot take jobs: %s (retrying)", err.msg);
            outage = true;
            sp_sleep_ms(backoff, &w->draining);
            backoff = backoff < SP__REDIS_BACKOFF_MAX_MS ? backoff * 2 : SP__REDIS_BACKOFF_MAX_MS;
            continue;
        }
        if (outage)
            sp_info(&slog, "Redis is reachable again; taking jobs");
        outage = false;
        backoff = 100;
        pthread_mutex_lock(&ctx->mu);
        ctx->job = job;
        pthread_mutex_unlock(&ctx->mu);
        ctx->log.job = ctx->job.id;
        ctx->log.queue = ctx->job.queue;
        ctx->log.worker = w->id;
        /* SIGTERM may have come while we waited for this job: a draining worker starts
         * nothing new. */
        if (w->draining)
            sp__give_back(ctx);
        else
            sp__run_job(w, ctx);
        pthread_mutex_lock(&ctx->mu);
        sp_job_clear(&ctx->job);
        pthread_mutex_unlock(&ctx->mu);
    }
    /* Jobs claimed or started ahead (prefetch, a finish's claim) go back now rather than
     * when the process exits: other workers take them while running jobs finish. */
    sp_err gerr;
    if (sp_consumer_give_back(ctx->consumer, NULL, &gerr) < 0)
        sp_warn(&slog, "could not give back the jobs taken ahead: %s", gerr.msg);
    atomic_fetch_sub(&w->slots_running, 1);
    return NULL;
}

/* ---- the keeper: leases, cancels, time limits, heartbeats, maintenance --------------- */

/* Prefetch: jobs a slot holds ahead, and finishes it holds back, must not wait behind
 * a job that turns out long. Past the prefetch time the slot's held finishes are
 * recorded; past SP_PREFETCH_HOLD_MS the jobs it holds ahead go back to their queues
 * for other workers. Through the keeper's own connection. */
static void sp__tend_slot(sp__worker *w, sp_queue *q, sp_job_ctx *ctx)
{
    if (w->prefetch_ms <= 0 || !atomic_load(&ctx->active) || atomic_load(&ctx->unclaimed))
        return;
    int64_t ran = sp_mono_ms() - atomic_load(&ctx->started_mono);
    sp_err err;
    int rc = 0;
    if (ran > SP_PREFETCH_HOLD_MS) {
        atomic_store(&ctx->unclaimed, 1);
        rc = sp_consumer_give_back(ctx->consumer, q, &err);
    } else if (ran > w->prefetch_ms) {
        rc = sp_consumer_flush(ctx->consumer, q, &err);
    }
    if (rc < 0)
        sp_debug(&ctx->log, "could not hand back the work held ahead: %s", err.msg);
}

static void sp__keep_slot(sp__worker *w, sp_queue *q, sp_job_ctx *ctx)
{
    char id[SP_ID_LEN + 1], token[SP_TOKEN_LEN + 1];
    pthread_mutex_lock(&ctx->mu);
    bool active = atomic_load(&ctx->active);
    if (active) {
        memcpy(id, ctx->job.id, sizeof id);
        memcpy(token, ctx->job.token, sizeof token);
    }
    pthread_mutex_unlock(&ctx->mu);
    if (!active)
        return;
    int64_t ran = sp_mono_ms() - atomic_load(&ctx->started_mono);
    int64_t limit = atomic_load(&ctx->time_limit_ms);
    if (limit > 0 && ran > limit)
        sp__ctx_stop(ctx, SP_ETIMEDOUT);
    int p = atomic_load(&ctx->progress);
    bool cancel = false;
    sp_err err;
    int rc = sp_queue_renew(q, id, token, w->lease_ms, p == atomic_load(&ctx->written) ? -1 : p,
                            &cancel, &err);
    /* The answer is about the job renewed: the slot may have finished it and started
     * another meanwhile, which the answer must not stop. Checked and acted on under the
     * lock, so the next job cannot start (and reset the stop flag) in between. */
    pthread_mutex_lock(&ctx->mu);
    bool same = atomic_load(&ctx->active) && strcmp(ctx->job.id, id) == 0 &&
                strcmp(ctx->job.token, token) == 0;
    if (same && rc == 0) {
        atomic_store(&ctx->written, p);
        if (cancel && !sp_job_ctx_stopping(ctx)) {
            sp_info(&ctx->log, "cancel requested: stopping");
            sp__ctx_stop(ctx, SP_ECANCELLED);
        }
    } else if (same && rc == SP_ELOST) {
        sp_warn(&ctx->log, "lease lost: stopping the job");
        sp__ctx_stop(ctx, SP_ELOST);
    }
    pthread_mutex_unlock(&ctx->mu);
    /* SP_EREDIS: keep working; the lease may still be ours when Redis is back. */
}

static int sp__beat(sp__worker *w, sp_queue *q, sp_err *err)
{
    sp_worker_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", w->id);
    snprintf(info.kind, sizeof info.kind, "%s", w->def->kind);
    snprintf(info.host, sizeof info.host, "%s", w->host);
    snprintf(info.run, sizeof info.run, "%s", w->run);
    info.pid = getpid();
    info.concurrency = w->concurrency;
    info.started_at = w->started_at;
    info.processed = atomic_load(&w->processed);
    info.failed = atomic_load(&w->failed);
    size_t qn = 0;
    for (size_t i = 0; i < w->nqueues; i++)
        qn += (size_t)snprintf(info.queues + qn, sizeof info.queues - qn, "%s%s", i ? "," : "",
                               w->queues[i]);
    size_t cn = 0;
    for (int64_t i = 0; i < w->concurrency; i++) {
        sp_job_ctx *ctx = &w->slots[i];
        pthread_mutex_lock(&ctx->mu);
        if (atomic_load(&ctx->active) && cn + SP_ID_LEN + 2 < sizeof info.current)
            cn += (size_t)snprintf(info.current + cn, sizeof info.current - cn, "%s%s",
                                   cn ? "," : "", ctx->job.id);
        pthread_mutex_unlock(&ctx->mu);
    }
    return sp_queue_worker_beat(q, &info, w->worker_ttl_ms, err);
}

static void *sp__keeper_main(void *arg)
{
    sp__worker *w = arg;
    sp_err err;
    sp_queue *q = sp_queue_open(w->common.redis_url, w->common.prefix, &err);
    if (q == NULL) {
        sp_error(&w->log, "keeper: %s", err.msg);
        return NULL;
    }
    int64_t next_beat = 0, next_maint = 0, next_renew = 0, warned = 0;
    bool outage = false;
    while (!w->stopping) {
        int64_t now = sp_mono_ms();
        int rc = 0;
        bool called = false; /* whether rc tells how Redis is */
        for (int64_t i = 0; i < w->concurrency; i++)
            sp__tend_slot(w, q, &w->slots[i]);
        if (now >= next_renew) {
            for (int64_t i = 0; i < w->concurrency; i++)
                sp__keep_slot(w, q, &w->slots[i]);
            next_renew = now + w->renew_ms;
        }
        if (now >= next_beat) {
            rc = sp__beat(w, q, &err);
            called = true;
            next_beat = now + (w->worker_ttl_ms / 5 < 1000 ? w->worker_ttl_ms / 5 : 1000);
        }
        if (now >= next_maint && rc == 0) {
            sp_maint_report r;
            err.code = 0;
            rc = sp_queue_maintain(q, w->queues, w->nqueues, w->common.retention_ms, &r, &err);
            called = true;
            if (rc == 0 && (r.promoted || r.expired || r.workers_reaped))
                sp_info(&w->log,
                        "maintenance: %d retries due, %d running jobs sent back (lease out or "
                        "worker silent), %d dead workers (%d claimed jobs given back)",
                        r.promoted, r.expired, r.workers_reaped, r.reclaimed);
            next_maint = now + w->maintain_ms;
        }
        /* An outage is reported when it starts, then once a minute while it lasts. */
        if (called && rc == SP_EREDIS && (!outage || now - warned >= 60000)) {
            sp_warn(&w->log, "keeper: %s%s", err.msg, outage ? " (still retrying)" : "");
            warned = now;
        }
        if (called)
            outage = rc == SP_EREDIS;
        int64_t wake = next_renew < next_beat ? next_renew : next_beat;
        if (next_maint < wake)
            wake = next_maint;
        int64_t sleep = wake - sp_mono_ms();
        if (w->prefetch_ms > 0 && sleep > w->prefetch_ms)
            sleep = w->prefetch_ms; /* sp__tend_slot's clock */
        sp_sleep_ms(sleep < 10 ? 10 : sleep > 250 ? 250 : sleep, &w->stopping);
    }
    sp_queue_close(q);
    return NULL;
}

/* ---- setup and shutdown -------------------------------------------------------------- */

static int sp__parse_queues(sp__worker *w, sp_err *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", w->queues_opt ? w->queues_opt : "");
    char *save = NULL;
    for (char *q = strtok_r(buf, ", ", &save); q; q = strtok_r(NULL, ", ", &save)) {
        if (!sp_queue_name_valid(q))
            return sp_err_set(err, SP_EINVAL, "bad queue name '%s' in --queues", q);
        if (w->nqueues == SP_MAX_QUEUES)
            return sp_err_set(err, SP_EINVAL, "too many queues (max %d)", SP_MAX_QUEUES);
        snprintf(w->queue_names[w->nqueues], sizeof w->queue_names[0], "%s", q);
        w->queues[w->nqueues] = w->queue_names[w->nqueues];
        w->nqueues++;
    }
    if (w->nqueues == 0)
        return sp_err_set(err, SP_EINVAL, "no queues to take jobs from (--queues)");
    return 0;
}

/* A job renews its lease every renew interval, and its worker beats five times per
 * TTL: either running out must take several missed renewals, or a short stall (a busy
 * host, a slow Redis reply) would hand a live job to a second worker. */
static int sp__check_timing(const sp__worker *w, sp_err *err)
{
    if (w->renew_ms * 3 > w->lease_ms || w->renew_ms * 3 > w->worker_ttl_ms)
        return sp_err_set(err, SP_EINVAL,
                          "--renew-interval (%lld ms) must be at most a third of --lease "
                          "(%lld ms) and of --worker-ttl (%lld ms)",
                          (long long)w->renew_ms, (long long)w->lease_ms,
                          (long long)w->worker_ttl_ms);
    return 0;
}

static int sp__worker_options(sp__worker *w, sp_option *opts, size_t *n)
{
    sp_common_options(&w->common, opts);
    size_t k = SP_COMMON_OPTION_COUNT;
    sp_option more[] = {
        {"queues", "SPOOL_QUEUES", SP_OPT_STR, &w->queues_opt, w->def->default_queues,
         "comma-separated queues to take jobs from, in order of preference", 0, 0},
        {"concurrency", "SPOOL_CONCURRENCY", SP_OPT_INT, &w->concurrency, "1",
         "jobs run at once (one thread each)", 1, SP_MAX_SLOTS},
        {"lease", "SPOOL_LEASE", SP_OPT_DURATION, &w->lease_ms, "30s",
         "lease length: a job that stops being renewed goes back to the queue after it at "
         "the latest (after --worker-ttl when its worker has gone silent too)",
         1000, 86400000},
        {"grace", "SPOOL_GRACE", SP_OPT_DURATION, &w->grace_ms, "30s",
         "on SIGTERM, how long running jobs may take to finish before they are given back",
         0, 86400000},
        {"renew-interval", "SPOOL_RENEW_INTERVAL", SP_OPT_DURATION, &w->renew_ms, "500ms",
         "how often running jobs renew their lease, report progress and check for cancel; "
         "at most a third of --lease and of --worker-ttl",
         50, 60000},
        {"worker-ttl", "SPOOL_WORKER_TTL", SP_OPT_DURATION, &w->worker_ttl_ms, "10s",
         "a worker without a heartbeat for this long is dead: its claimed jobs go back, and "
         "its running jobs once they too have gone this long without a lease renewal",
         1000, 3600000},
        {"maintain-interval", "SPOOL_MAINTAIN_INTERVAL", SP_OPT_DURATION, &w->maintain_ms,
         "250ms",
         "how often this worker promotes due retries, expires lapsed leases and sends back "
         "the jobs of silent workers",
         10, 60000},
        {"prefetch", "SPOOL_PREFETCH", SP_OPT_DURATION, &w->prefetch_ms, "50ms",
         "while jobs finish faster than this, hold up to this much work started ahead and "
         "report finished jobs in batches (up to 32 jobs per Redis round trip); held jobs go "
         "back after 1 s behind a long job; 0 turns it off",
         0, 60000},
        {"worker-id", "SPOOL_WORKER_ID", SP_OPT_STR, &w->worker_id_opt, "",
         "this worker's id in the registry (default: host-pid-random)", 0, 0},
    };
    memcpy(opts + k, more, sizeof more);
    *n = k + sizeof more / sizeof more[0];
    return 0;
}

int sp_worker_main(const sp_worker_def *def, sp_option *extra, size_t nextra, int argc,
                   char **argv)
{
    static sp__worker worker; /* one per process: signal handling is process-wide */
    sp__worker *w = &worker;
    memset(w, 0, sizeof *w);
    w->def = def;
    size_t nopt = 0;
    sp_option opts[64];
    sp__worker_options(w, opts, &nopt);
    if (nopt + nextra > sizeof opts / sizeof opts[0]) {
        fprintf(stderr, "%s: too many options\n", def->program);
        return 2;
    }
    if (nextra > 0)
        memcpy(opts + nopt, extra, nextra * sizeof *extra);
    sp_err err;
    sp_err_clear(&err);
    int rc = sp_options_parse(def->program, def->summary, opts, nopt + nextra, argc, argv, &err);
    if (rc == 0)
        rc = sp__parse_queues(w, &err);
    if (rc == 0)
        rc = sp__check_timing(w, &err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", def->program, err.msg);
        sp_options_free(opts, nopt + nextra);
        return rc > 0 ? 0 : 2;
    }
    sp_log_init(def->program, w->common.log_level, w->common.log_format);

    gethostname(w->host, sizeof w->host - 1);
    if (w->worker_id_opt && w->worker_id_opt[0])
        snprintf(w->id, sizeof w->id, "%s", w->worker_id_opt);
    else
        sp_worker_id_new(w->id, w->host);
    w->log.worker = w->id;
    w->started_at = sp_now_ms();
    unsigned char raw[8];
    if (sp_random_bytes(raw, sizeof raw) == 0)
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(w->run + 2 * i, 3, "%02x", raw[i]);

    int exit_code = 0;
    w->outbound = sp_outbound_new(w->common.outbound_allow, &err);
    if (w->outbound == NULL) {
        sp_error(&w->log, "%s", err.msg);
        exit_code = 2;
        goto out_opts;
    }
    sp_blob_config bc;
    sp_blob_config_from(&w->common, &bc);
    w->blobs = sp_blobs_open(&bc, &err);
    if (w->blobs == NULL) {
        sp_error(&w->log, "blob store: %s", err.msg);
        exit_code = 2;
        goto out_opts;
    }
    sp_info(&w->log, "blob store: %s", sp_blobs_describe(w->blobs));
    /* Said now rather than first in a job's error; not fatal, as a store that is down at
     * start may come back (jobs meanwhile fail as retryable, with the same reason). */
    if (sp_blobs_check(w->blobs, &err) < 0)
        sp_warn(&w->log, "the blob store cannot be used now: %s", err.msg);
    if (def->setup && def->setup(def->userdata, &err) < 0) {
        sp_error(&w->log, "%s", err.msg);
        exit_code = 2;
        goto out_blobs;
    }

    /* Signals go to the main thread only (sigtimedwait below). */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int64_t nslots = w->concurrency;
    for (int64_t i = 0; i < nslots; i++) {
        sp_job_ctx *ctx = &w->slots[i];
        ctx->w = w;
        ctx->slot = (int)i;
        pthread_mutex_init(&ctx->mu, NULL);
        sp_buf_init(&ctx->outputs, 60000);
        sp_consumer_opts co = {w->common.redis_url, w->common.prefix, w->id, w->queues,
                               w->nqueues, w->lease_ms, w->common.retention_ms,
                               w->prefetch_ms, sp__on_finished, w, w->worker_ttl_ms};
        ctx->consumer = sp_consumer_new(&co, &err);
        if (ctx->consumer == NULL) {
            sp_error(&w->log, "%s", err.msg);
            exit_code = 2;
            nslots = i;
            goto out_slots;
        }
    }
    {
        /* An earlier run under the same id (a fixed SPOOL_WORKER_ID, restarted after a
         * crash) may have left claimed jobs: they go back before this run registers,
         * which tells reapers that the jobs that run left running are orphans. Register
         * before taking jobs so a crash between is visible to reapers. */
        sp_queue *q = sp_queue_open(w->common.redis_url, w->common.prefix, &err);
        int brc = q ? sp_queue_worker_leave(q, w->id, &err) : err.code;
        if (brc == 0)
            brc = sp__beat(w, q, &err);
        if (brc < 0)
            sp_error(&w->log, "cannot use Redis: %s (retrying; no job is taken until it works)",
                     err.msg);
        sp_queue_close(q);
    }
    sp_info(&w->log, "ready: queues %s, concurrency %lld, lease %lld ms, worker TTL %lld ms",
            w->queues_opt, (long long)w->concurrency, (long long)w->lease_ms,
            (long long)w->worker_ttl_ms);

    pthread_t keeper;
    pthread_create(&keeper, NULL, sp__keeper_main, w);
    atomic_store(&w->slots_running, (int)nslots);
    for (int64_t i = 0; i < nslots; i++)
        pthread_create(&w->slot_threads[i], NULL, sp__slot_main, &w->slots[i]);

    int64_t grace_end = 0;
    while (atomic_load(&w->slots_running) > 0) {
        struct timespec ts = {0, 100 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!w->draining) {
                w->draining = 1;
                grace_end = sp_mono_ms() + w->grace_ms;
                sp_info(&w->log, "%s: finishing running jobs (grace %lld ms), taking no more",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT", (long long)w->grace_ms);
            } else {
                grace_end = sp_mono_ms(); /* a second signal: stop now */
            }
        }
        if (w->draining && sp_mono_ms() >= grace_end && grace_end != -1) {
            w->grace_over = 1;
            for (int64_t i = 0; i < nslots; i++) {
                if (atomic_load(&w->slots[i].active)) {
                    sp_warn(&w->slots[i].log, "grace period over: giving the job back");
                    sp__ctx_stop(&w->slots[i], SP_ESHUTDOWN);
                }
            }
            grace_end = -1;
        }
    }
    for (int64_t i = 0; i < nslots; i++)
        pthread_join(w->slot_threads[i], NULL);
    w->stopping = 1;
    pthread_join(keeper, NULL);

out_slots:
    for (int64_t i = 0; i < nslots; i++) {
        sp_consumer_free(w->slots[i].consumer);
        sp_buf_free(&w->slots[i].outputs);
        sp_free(w->slots[i].metadata);
        pthread_mutex_destroy(&w->slots[i].mu);
    }
    {
        sp_queue *q = sp_queue_open(w->common.redis_url, w->common.prefix, &err);
        if (q && sp_queue_worker_leave(q, w->id, &err) < 0)
            sp_warn(&w->log, "could not deregister: %s", err.msg);
        sp_queue_close(q);
    }
    if (def->teardown)
        def->teardown(def->userdata);
    if (exit_code == 0)
        sp_info(&w->log, "stopped");
out_blobs:
    sp_blobs_close(w->blobs);
out_opts:
    sp_outbound_free(w->outbound);
    sp_options_free(opts, nopt + nextra);
    return exit_code;
}

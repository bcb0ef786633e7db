/* webhook.c - the webhook deliverer: slot threads that deliver, a keeper that beats
 * and maintains the queue (see webhook.h). */
#include "webhook.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobjson.h"
#include "server.h"
#include "spool/alloc.h"
#include "spool/fetch.h"
#include "spool/log.h"
#include "spool/queue.h"
#include "spool/webhook.h"

#define API_WH_MAX_SLOTS 64
#define API_WH_TTL_MS 10000     /* the registry's heartbeat TTL */
#define API_WH_BEAT_MS 1000     /* a fifth of it at most, see sp_queue_worker_beat */
#define API_WH_MAINTAIN_MS 250  /* due retries are promoted within this */
#define API_WH_BODY_MAX (16 * 1024 * 1024) /* the job's JSON, as GET renders it */
#define API_WH_REDIS_PATIENCE_MS 30000 /* recording an outcome while Redis is away */

typedef struct api__slot {
    api_webhooks *w;
    sp_consumer *c;
    pthread_t thread;
    pthread_mutex_t mu;
    char current[SP_ID_LEN + 1]; /* the delivery under way ("" none), for the beat */
} api__slot;

struct api_webhooks {
    const api_config *cfg;
    char id[128];
    char host[64];
    char run[24];
    int64_t started_at;
    sp_logctx log;
    sp_flag draining; /* take no more deliveries */
    sp_flag abort;    /* stop those under way (curl's progress callback reads it) */
    sp_flag stopping; /* the keeper exits */
    atomic_llong processed, failed;
    atomic_int running; /* slot threads not yet finished */
    pthread_t keeper;
    bool keeper_started;
    int64_t nslots, nthreads;
    api__slot slots[API_WH_MAX_SLOTS];
};

int api_webhooks_check(const api_config *cfg, sp_err *err)
{
    const char *url = cfg->webhook_url;
    if (url && url[0]) {
        int rc = sp_webhook_url_check(cfg->outbound, url, strlen(url), err);
        if (rc < 0) {
            sp_err_prefix(err, "SPOOL_WEBHOOK_URL");
            err->code = SP_EINVAL;
            return SP_EINVAL;
        }
    }
    if (cfg->webhook_retry_cap_ms < cfg->webhook_retry_base_ms)
        return sp_err_set(err, SP_EINVAL,
                          "SPOOL_WEBHOOK_RETRY_CAP (%lld ms) is below SPOOL_WEBHOOK_RETRY_BASE "
                          "(%lld ms)",
                          (long long)cfg->webhook_retry_cap_ms,
                          (long long)cfg->webhook_retry_base_ms);
    return 0;
}

/* ---- one delivery -------------------------------------------------------------------- */

/* What one attempt came to: the finish and the metadata it records. */
typedef struct api__attempt {
    sp_outcome o;
    char code[48];
    char msg[512];
    json_t *meta; /* the delivery job's metadata (owned) */
} api__attempt;

static void api__end(api__attempt *a, int mode, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void api__end(api__attempt *a, int mode, const char *code, const char *fmt, ...)
{
    a->o.mode = mode;
    snprintf(a->code, sizeof a->code, "%s", code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->msg, sizeof a->msg, fmt, ap);
    va_end(ap);
}

/* An event name as the contract writes it ("job.succeeded"): safe in a header. */
static bool api__event_valid(const char *e)
{
    size_t n = e ? strlen(e) : 0;
    if (n < 5 || n > 31 || strncmp(e, "job.", 4) != 0)
        return false;
    for (size_t i = 4; i < n; i++)
        if (e[i] < 'a' || e[i] > 'z')
            return false;
    return true;
}

/* POST the rendered job to url and judge the answer into a. */
static void api__post(api__slot *s, const sp_job *d, const char *jid, const char *url,
                      const char *event, const sp_buf *body, api__attempt *a)
{
    api_webhooks *w = s->w;
    const api_config *cfg = w->cfg;
    sp_logctx lc = {d->id, d->queue, w->id};
    char evid[64], ev[64], sig[32 + SP_WEBHOOK_SIG_MAX];
    snprintf(evid, sizeof evid, "Spool-Event-Id: %s", d->id);
    snprintf(ev, sizeof ev, "Spool-Event: %s", event);
    const char *headers[5] = {"Content-Type: application/json",
                              "User-Agent: spool-webhook/" SPOOL_VERSION, evid, ev, NULL};
    size_t nh = 4;
    sp_err err;
    size_t secret_len = cfg->webhook_secret ? strlen(cfg->webhook_secret) : 0;
    if (secret_len > 0) {
        char v[SP_WEBHOOK_SIG_MAX];
        if (sp_webhook_sign(cfg->webhook_secret, secret_len, sp_now_ms() / 1000, body->data,
                            body->len, v, &err) < 0) {
            api__end(a, SP_FINISH_RETRY, "internal_error", "cannot sign the delivery: %s", err.msg);
            return;
        }
        snprintf(sig, sizeof sig, "Spool-Signature: %s", v);
        headers[nh++] = sig;
    }
    json_object_set_new(a->meta, "signed", json_boolean(secret_len > 0));
    sp_err detail;
    sp_fetch_opts fo = {.connect_timeout_ms = cfg->webhook_timeout_ms,
                        .total_timeout_ms = cfg->webhook_timeout_ms,
                        .stop = &w->abort,
                        .outbound = cfg->outbound,
                        .detail = &detail};
    sp_fetch_reply reply;
    int64_t t0 = sp_mono_ms();
    int rc = sp_fetch_post(url, headers, nh, body->data, body->len, &fo, &reply, &err);
    int64_t ms = sp_mono_ms() - t0;
    json_object_set_new(a->meta, "duration_ms", json_integer(ms));
    if (rc == 0) {
        char excerpt[SP_FETCH_REPLY_MAX + 1];
        size_t n = sp_webhook_excerpt(reply.body, reply.body_len, excerpt, sizeof excerpt);
        json_object_set_new(a->meta, "status", json_integer(reply.status));
        json_object_set_new(a->meta, "response", json_stringn(excerpt, n));
        if (reply.status >= 200 && reply.status < 300) {
            api__end(a, SP_FINISH_SUCCEEDED, "", "%s", "");
            sp_info(&lc, "delivered %s of job %s: HTTP %ld in %lld ms (attempt %lld)", event, jid,
                    reply.status, (long long)ms, (long long)d->attempts);
            return;
        }
        api__end(a, SP_FINISH_RETRY, "callback_status",
                 "the receiver answered HTTP %ld; a 2xx answer is expected (redirects are not "
                 "followed)",
                 reply.status);
        return;
    }
    json_object_set_new(a->meta, "status", json_null());
    json_object_set_new(a->meta, "response", json_null());
    if (rc == SP_ECANCELLED) {
        api__end(a, SP_FINISH_RELEASE, "", "%s", "");
        return;
    }
    if (rc == SP_EUNREACHABLE) {
        /* The job sees the uniform message; the cause is for the operator. */
        sp_warn(&lc, "delivery %s: %s", reply.refused ? "refused" : "failed", detail.msg);
        api__end(a, reply.refused ? SP_FINISH_FAILED : SP_FINISH_RETRY, "callback_unreachable",
                 "%s", err.msg);
        return;
    }
    if (rc == SP_EINVAL) {
        api__end(a, SP_FINISH_FAILED, "invalid_callback_url", "%s", err.msg);
        return;
    }
    api__end(a, SP_FINISH_RETRY, sp_code_name(rc), "%s", err.msg);
}

/* Deliver d (its attempt started): its params, the ended job, the POST. */
static void api__deliver(api__slot *s, const sp_job *d, api__attempt *a)
{
    api_webhooks *w = s->w;
    sp_logctx lc = {d->id, d->queue, w->id};
    json_object_set_new(a->meta, "attempt", json_integer(d->attempts));
    if (strcmp(d->type, SP_WEBHOOK_TYPE) != 0) {
        api__end(a, SP_FINISH_FAILED, "unsupported_type",
                 "queue %s takes only %s jobs, not %.64s", SP_WEBHOOK_QUEUE, SP_WEBHOOK_TYPE,
                 d->type);
        return;
    }
    json_t *p = d->params ? json_loads(d->params, 0, NULL) : NULL;
    const char *jid = json_string_value(json_object_get(p, "job_id"));
    const char *event = json_string_value(json_object_get(p, "event"));
    const char *url = json_string_value(json_object_get(p, "url"));
    if (jid == NULL || !sp_id_valid(jid) || !api__event_valid(event) || url == NULL) {
        api__end(a, SP_FINISH_FAILED, "invalid_delivery",
                 "the delivery's params must hold job_id (a job id), event (job.<state>) and "
                 "url");
        json_decref(p);
        return;
    }
    sp_err err;
    int rc = sp_webhook_url_check(w->cfg->outbound, url, strlen(url), &err);
    if (rc == SP_EUNREACHABLE) {
        sp_warn(&lc, "delivery refused before connecting: %s", err.msg);
        api__end(a, SP_FINISH_FAILED, "callback_unreachable", "%s", SP_OUTBOUND_UNREACHABLE_MSG);
    } else if (rc < 0) {
        api__end(a, rc == SP_EINVAL ? SP_FINISH_FAILED : SP_FINISH_RETRY,
                 rc == SP_EINVAL ? "invalid_callback_url" : "internal_error", "the callback URL %s",
                 err.msg);
    }
    sp_job job;
    sp_job_init(&job);
    if (rc == 0) {
        rc = sp_queue_get(sp_consumer_queue(s->c), jid, &job, &err);
        if (rc == SP_ENOTFOUND)
            api__end(a, SP_FINISH_FAILED, "job_not_found",
                     "job %s no longer exists (it expired after the retention period)", jid);
        else if (rc < 0)
            api__end(a, SP_FINISH_RETRY, sp_code_name(rc), "cannot read job %s: %s", jid,
                     err.msg);
    }
    sp_buf body;
    sp_buf_init(&body, API_WH_BODY_MAX);
    if (rc == 0) {
        rc = api_job_render(&job, &body);
        if (rc == 0)
            rc = sp_buf_addc(&body, '\n');
        if (rc < 0)
            api__end(a, rc == SP_ETOOBIG ? SP_FINISH_FAILED : SP_FINISH_RETRY,
                     sp_code_name(rc), "cannot render job %s: %s", jid, sp_strerror(rc));
    }
    if (rc == 0)
        api__post(s, d, jid, url, event, &body, a);
    sp_buf_free(&body);
    sp_job_clear(&job);
    json_decref(p);
}

/* Record the outcome, trying again while Redis is away (an unrecorded outcome is
 * redone when the lease runs out: the receiver sees the delivery again). */
static void api__finish(api__slot *s, const sp_job *d, const sp_outcome *o)
{
    sp_logctx lc = {d->id, d->queue, s->w->id};
    int64_t backoff = 100, until = sp_mono_ms() + API_WH_REDIS_PATIENCE_MS;
    for (;;) {
        sp_err err;
        int rc = sp_consumer_finish(s->c, d, o, false, NULL, &err);
        if (rc == 0 || rc == SP_ELOST)
            return; /* logged by api__on_finished */
        if (rc != SP_EREDIS || sp_mono_ms() >= until || s->w->abort) {
            sp_error(&lc, "could not record the delivery's outcome: %s (it is redone when its "
                          "lease runs out)",
                     err.msg);
            return;
        }
        sp_sleep_ms(backoff, &s->w->abort);
        backoff = backoff < 2000 ? backoff * 2 : 2000;
    }
}

static void api__run(api__slot *s, const sp_job *d)
{
    api_webhooks *w = s->w;
    api__attempt a;
    memset(&a, 0, sizeof a);
    a.meta = json_object();
    if (a.meta == NULL) {
        api__end(&a, SP_FINISH_RETRY, "out_of_memory", "out of memory");
    } else {
        api__deliver(s, d, &a);
    }
    char *meta = a.meta ? json_dumps(a.meta, JSON_COMPACT) : NULL;
    json_decref(a.meta);
    a.o.metadata_json = meta;
    a.o.error_code = a.code;
    a.o.error_message = a.msg;
    a.o.delay_ms = sp_retry_delay_ms(d->attempts, w->cfg->webhook_retry_base_ms,
                                     w->cfg->webhook_retry_cap_ms);
    if (a.o.mode == SP_FINISH_RELEASE)
        a.o.metadata_json = NULL;
    api__finish(s, d, &a.o);
    sp_free(meta);
}

/* ---- threads --------------------------------------------------------------------------- */

static void api__on_finished(void *arg, const sp_finished *f)
{
    api_webhooks *w = arg;
    sp_logctx lc = {f->id, f->queue, w->id};
    if (f->rc == SP_ELOST) {
        sp_warn(&lc, "delivery finished after its lease ran out; this outcome is discarded");
        return;
    }
    if (f->rc < 0) {
        sp_error(&lc, "could not record the delivery's outcome: %s", sp_strerror(f->rc));
        return;
    }
    switch (f->state) {
    case SP_STATE_SUCCEEDED:
        atomic_fetch_add(&w->processed, 1);
        break;
    case SP_STATE_QUEUED:
        sp_info(&lc, "delivery given back to the queue, attempt not counted");
        break;
    case SP_STATE_RETRYING:
        sp_info(&lc, "delivery attempt failed, retrying later: %s: %s", f->error_code,
                f->error_message);
        break;
    default:
        atomic_fetch_add(&w->failed, 1);
        sp_warn(&lc, "delivery %s: %s: %s (dead-lettered on queue %s)", sp_state_name(f->state),
                f->error_code, f->error_message, SP_WEBHOOK_QUEUE);
    }
}

static void *api__slot_main(void *arg)
{
    api__slot *s = arg;
    api_webhooks *w = s->w;
    bool outage = false;
    int64_t backoff = 100;
    while (!w->draining) {
        sp_err err;
        sp_job d;
        int rc = sp_consumer_next(s->c, 1000, &d, &err);
        if (rc == SP_ETIMEDOUT)
            continue;
        if (rc < 0) {
            if (!outage)
                sp_error(&w->log, "webhooks: cannot take deliveries: %s (retrying)", err.msg);
            outage = true;
            sp_sleep_ms(backoff, &w->draining);
            backoff = backoff < 2000 ? backoff * 2 : 2000;
            continue;
        }
        if (outage)
            sp_info(&w->log, "webhooks: Redis is reachable again; taking deliveries");
        outage = false;
        backoff = 100;
        pthread_mutex_lock(&s->mu);
        memcpy(s->current, d.id, sizeof s->current);
        pthread_mutex_unlock(&s->mu);
        if (w->draining) { /* taken while shutting down: back at once, not counted */
            sp_outcome o = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
            api__finish(s, &d, &o);
        } else {
            api__run(s, &d);
        }
        pthread_mutex_lock(&s->mu);
        s->current[0] = '\0';
        pthread_mutex_unlock(&s->mu);
        sp_job_clear(&d);
    }
    sp_err gerr;
    if (sp_consumer_give_back(s->c, NULL, &gerr) < 0)
        sp_warn(&w->log, "webhooks: could not give back the deliveries taken ahead: %s",
                gerr.msg);
    atomic_fetch_sub(&w->running, 1);
    return NULL;
}

static int api__beat(api_webhooks *w, sp_queue *q, sp_err *err)
{
    sp_worker_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.id, sizeof info.id, "%s", w->id);
    snprintf(info.kind, sizeof info.kind, "webhook");
    snprintf(info.host, sizeof info.host, "%s", w->host);
    snprintf(info.run, sizeof info.run, "%s", w->run);
    snprintf(info.queues, sizeof info.queues, "%s", SP_WEBHOOK_QUEUE);
    info.pid = getpid();
    info.concurrency = w->nslots;
    info.started_at = w->started_at;
    info.processed = atomic_load(&w->processed);
    info.failed = atomic_load(&w->failed);
    size_t cn = 0;
    for (int64_t i = 0; i < w->nslots; i++) {
        api__slot *s = &w->slots[i];
        pthread_mutex_lock(&s->mu);
        if (s->current[0] && cn + SP_ID_LEN + 2 < sizeof info.current)
            cn += (size_t)snprintf(info.current + cn, sizeof info.current - cn, "%s%s",
                                   cn ? "," : "", s->current);
        pthread_mutex_unlock(&s->mu);
    }
    return sp_queue_worker_beat(q, &info, API_WH_TTL_MS, err);
}

static void *api__keeper_main(void *arg)
{
    api_webhooks *w = arg;
    const api_config *cfg = w->cfg;
    sp_err err;
    sp_queue *q = sp_queue_open(cfg->common.redis_url, cfg->common.prefix, &err);
    if (q == NULL) {
        sp_error(&w->log, "webhooks keeper: %s", err.msg);
        return NULL;
    }
    static const char *const queues[] = {SP_WEBHOOK_QUEUE};
    int64_t next_beat = 0, next_maint = 0, warned = 0;
    bool outage = false;
    while (!w->stopping) {
        int64_t now = sp_mono_ms();
        int rc = 0;
        bool called = false;
        if (now >= next_beat) {
            rc = api__beat(w, q, &err);
            called = true;
            next_beat = now + API_WH_BEAT_MS;
        }
        if (now >= next_maint && rc == 0) {
            sp_maint_report r;
            rc = sp_queue_maintain(q, queues, 1, cfg->common.retention_ms, &r, &err);
            called = true;
            if (rc == 0 && (r.expired || r.workers_reaped))
                sp_info(&w->log,
                        "webhooks maintenance: %d deliveries sent back (lease out or worker "
                        "silent), %d dead workers (%d claimed deliveries given back)",
                        r.expired, r.workers_reaped, r.reclaimed);
            next_maint = now + API_WH_MAINTAIN_MS;
        }
        if (called && rc < 0 && (!outage || now - warned >= 60000)) {
            sp_warn(&w->log, "webhooks keeper: %s%s", err.msg, outage ? " (still retrying)" : "");
            warned = now;
        }
        if (called)
            outage = rc < 0;
        int64_t wake = (next_beat < next_maint ? next_beat : next_maint) - sp_mono_ms();
        sp_sleep_ms(wake < 10 ? 10 : wake > 250 ? 250 : wake, &w->stopping);
    }
    sp_queue_close(q);
    return NULL;
}

/* ---- start and stop -------------------------------------------------------------------- */

api_webhooks *api_webhooks_start(const api_config *cfg, sp_err *err)
{
    if (cfg->webhook_concurrency < 1 || cfg->webhook_concurrency > API_WH_MAX_SLOTS) {
        sp_err_set(err, SP_EINVAL, "SPOOL_WEBHOOK_CONCURRENCY must be 1 to %d here",
                   API_WH_MAX_SLOTS);
        return NULL;
    }
    api_webhooks *w = sp_calloc(1, sizeof *w);
    if (w == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    w->cfg = cfg;
    gethostname(w->host, sizeof w->host - 1);
    sp_worker_id_new(w->id, w->host);
    unsigned char raw[8];
    if (sp_random_bytes(raw, sizeof raw) == 0)
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(w->run + 2 * i, 3, "%02x", raw[i]);
    w->started_at = sp_now_ms();
    w->log.worker = w->id;
    static const char *const queues[] = {SP_WEBHOOK_QUEUE};
    for (int64_t i = 0; i < cfg->webhook_concurrency; i++) {
        api__slot *s = &w->slots[i];
        s->w = w;
        pthread_mutex_init(&s->mu, NULL);
        w->nslots = i + 1;
        sp_consumer_opts co = {.url = cfg->common.redis_url,
                               .prefix = cfg->common.prefix,
                               .worker_id = w->id,
                               .queues = queues,
                               .nqueues = 1,
                               .lease_ms = cfg->webhook_timeout_ms + 30000,
                               .retention_ms = cfg->common.retention_ms,
                               .prefetch_ms = 0,
                               .on_finished = api__on_finished,
                               .on_finished_arg = w,
                               .worker_ttl_ms = API_WH_TTL_MS};
        if ((s->c = sp_consumer_new(&co, err)) == NULL) {
            api_webhooks_stop(w, 0);
            return NULL;
        }
    }
    /* Registered before any slot takes a delivery, so a crash in between is visible to
     * reapers. With Redis away the keeper registers once it can. */
    sp_queue *q = sp_queue_open(cfg->common.redis_url, cfg->common.prefix, err);
    if (q == NULL || api__beat(w, q, err) < 0)
        sp_warn(&w->log, "webhooks: cannot register yet: %s", err->msg);
    sp_queue_close(q);
    if (pthread_create(&w->keeper, NULL, api__keeper_main, w) != 0) {
        sp_err_set(err, SP_ENOMEM, "cannot start the webhook keeper thread");
        api_webhooks_stop(w, 0);
        return NULL;
    }
    w->keeper_started = true;
    for (int64_t i = 0; i < w->nslots; i++) {
        atomic_fetch_add(&w->running, 1);
        if (pthread_create(&w->slots[i].thread, NULL, api__slot_main, &w->slots[i]) != 0) {
            atomic_fetch_sub(&w->running, 1);
            sp_err_set(err, SP_ENOMEM, "cannot start a webhook delivery thread");
            api_webhooks_stop(w, 0);
            return NULL;
        }
        w->nthreads = i + 1;
    }
    sp_info(&w->log, "webhooks: delivering from queue %s with %lld threads (timeout %lld ms, "
                     "%s)",
            SP_WEBHOOK_QUEUE, (long long)w->nslots, (long long)cfg->webhook_timeout_ms,
            cfg->webhook_secret && cfg->webhook_secret[0] ? "signed" : "unsigned");
    return w;
}

void api_webhooks_drain(api_webhooks *w)
{
    if (w)
        atomic_store(&w->draining, 1);
}

void api_webhooks_stop(api_webhooks *w, int64_t grace_ms)
{
    if (w == NULL)
        return;
    api_webhooks_drain(w);
    int64_t end = sp_mono_ms() + (grace_ms > 0 ? grace_ms : 0);
    while (atomic_load(&w->running) > 0 && sp_mono_ms() < end)
        sp_sleep_ms(10, NULL);
    if (atomic_load(&w->running) > 0) {
        sp_warn(&w->log, "webhooks: stopping the deliveries still under way (they go back to "
                         "the queue)");
        atomic_store(&w->abort, 1);
    }
    for (int64_t i = 0; i < w->nthreads; i++)
        pthread_join(w->slots[i].thread, NULL);
    atomic_store(&w->stopping, 1);
    if (w->keeper_started)
        pthread_join(w->keeper, NULL);
    for (int64_t i = 0; i < w->nslots; i++) {
        sp_consumer_free(w->slots[i].c);
        pthread_mutex_destroy(&w->slots[i].mu);
    }
    if (w->keeper_started) {
        sp_err err;
        sp_queue *q = sp_queue_open(w->cfg->common.redis_url, w->cfg->common.prefix, &err);
        if (q == NULL || sp_queue_worker_leave(q, w->id, &err) < 0)
            sp_warn(&w->log, "webhooks: could not deregister: %s", err.msg);
        sp_queue_close(q);
    }
    sp_free(w);
}

/* system.c - the routes about the service itself: /healthz (the process is up),
 * /readyz (Redis answers and the blob store takes writes), /metrics (Prometheus) and
 * /v1/queues (depths per queue and the live workers). */
#include <jansson.h>
#include <stdatomic.h>
#include <string.h>

#include "handlers.h"
#include "jobjson.h"
#include "metrics.h"
#include "reply.h"
#include "spool/alloc.h"
#include "spool/log.h"
#include "validate.h"

#define API_MAX_QUEUES 256
#define API_MAX_WORKERS 1024

enum MHD_Result api_sys_healthz(api_req *r)
{
    sp_buf b;
    sp_buf_init(&b, 64);
    if (sp_buf_adds(&b, "{\"status\":\"ok\"}\n") < 0)
        return MHD_NO;
    return api_reply_json(r, 200, &b, NULL, 0);
}

/* Whether the last /readyz found the API not ready: its recovery is logged once. */
static atomic_bool api__unready;

enum MHD_Result api_sys_readyz(api_req *r)
{
    sp_err rerr, serr;
    sp_queue *q = api_queue(r, &rerr);
    int redis = q ? sp_queue_ping(q, &rerr) : rerr.code;
    int storage = sp_blobs_check(r->srv->blobs, &serr);
    bool was = atomic_exchange(&api__unready, redis != 0 || storage != 0);
    if (was && redis == 0 && storage == 0)
        sp_info(NULL, "ready again: Redis answers and the blob store takes writes");
    if (redis == 0 && storage == 0) {
        sp_buf b;
        sp_buf_init(&b, 128);
        if (sp_buf_adds(&b, "{\"status\":\"ready\",\"redis\":\"ok\",\"storage\":\"ok\"}\n") < 0)
            return MHD_NO;
        return api_reply_json(r, 200, &b, NULL, 0);
    }
    return api_reply_error(r, API_E_NOT_READY, "not ready: redis %s; storage %s",
                           redis == 0 ? "ok" : rerr.msg, storage == 0 ? "ok" : serr.msg);
}

/* Schedules: how many, paused, their ticks by outcome (every process together, from
 * Redis; left out when Redis cannot be read, as the queues' series are: zeros would be
 * a counter reset), and this process's ticks that could not make their job. No
 * per-schedule labels: their number is the operator's. */
static int api__schedule_metrics(api_req *r, int up, sp_buf *b)
{
    sp_err err;
    sp_sched_counts c;
    sp_scheds *h = up ? api_scheds(r, &err) : NULL;
    int rc = 0;
    if (h != NULL && sp_sched_counts_get(h, &c, &err) == 0)
        rc = sp_buf_addf(b,
                         "# HELP spool_schedules Schedules that exist, by whether they are "
                         "paused.\n"
                         "# TYPE spool_schedules gauge\n"
                         "spool_schedules{paused=\"false\"} %lld\n"
                         "spool_schedules{paused=\"true\"} %lld\n"
                         "# HELP spool_schedule_ticks_total Schedule ticks since the first, by "
                         "outcome: fired (made a job), missed (passed over: no process could "
                         "fire it within SPOOL_SCHEDULE_GRACE; see the schedule's missed policy) "
                         "or invalid (passed over: the stored job template no longer "
                         "validates).\n"
                         "# TYPE spool_schedule_ticks_total counter\n"
                         "spool_schedule_ticks_total{outcome=\"fired\"} %lld\n"
                         "spool_schedule_ticks_total{outcome=\"missed\"} %lld\n"
                         "spool_schedule_ticks_total{outcome=\"invalid\"} %lld\n",
                         (long long)(c.schedules - c.paused), (long long)c.paused,
                         (long long)c.fired, (long long)c.passed, (long long)c.invalid);
    if (rc == 0)
        rc = sp_buf_addf(b,
                         "# HELP spool_schedule_errors_total Ticks this process could not make "
                         "a job for (a template no longer valid, Redis or the queue refusing).\n"
                         "# TYPE spool_schedule_errors_total counter\n"
                         "spool_schedule_errors_total %llu\n",
                         (unsigned long long)api_sched_errors(r->srv->sched));
    return rc;
}

enum MHD_Result api_sys_metrics(api_req *r)
{
    sp_buf b;
    sp_buf_init(&b, 16 * 1024 * 1024);
    int rc = api_metrics_render(&b);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    sp_queue_stat *st = sp_calloc(API_MAX_QUEUES, sizeof *st);
    size_t n = 0, nworkers = 0;
    int up = q && st && sp_queue_stats(q, st, API_MAX_QUEUES, &n, &err) == 0;
    if (up) {
        sp_worker_info *w = sp_calloc(API_MAX_WORKERS, sizeof *w);
        up = w && sp_queue_workers(q, w, API_MAX_WORKERS, &nworkers, &err) == 0;
        sp_free(w);
    }
    if (rc == 0)
        rc = api_metrics_render_queues(&b, up, st, n, nworkers, api_lp_waiting(r->srv->lp));
    uint64_t over, late;
    api_conns_counts(r->srv->conns, &over, &late);
    if (rc == 0)
        rc = sp_buf_addf(&b,
                         "# HELP spool_api_connections_cut_total Connections closed unanswered: "
                         "past the per-address limit, or headers not in by SPOOL_HEADER_TIMEOUT.\n"
                         "# TYPE spool_api_connections_cut_total counter\n"
                         "spool_api_connections_cut_total{reason=\"per_address_limit\"} %llu\n"
                         "spool_api_connections_cut_total{reason=\"header_timeout\"} %llu\n",
                         (unsigned long long)over, (unsigned long long)late);
    size_t streams;
    uint64_t behind;
    api_sse_counts(r->srv->sse, &streams, &behind);
    if (rc == 0)
        rc = sp_buf_addf(&b,
                         "# HELP spool_api_event_streams Live event streams (SSE) open now.\n"
                         "# TYPE spool_api_event_streams gauge\n"
                         "spool_api_event_streams %zu\n"
                         "# HELP spool_api_event_streams_behind_total Times a live event "
                         "stream's client fell 64 KiB behind and the stream went back to "
                         "reading from Redis at the client's pace.\n"
                         "# TYPE spool_api_event_streams_behind_total counter\n"
                         "spool_api_event_streams_behind_total %llu\n",
                         streams, (unsigned long long)behind);
    if (rc == 0)
        rc = api__schedule_metrics(r, up, &b);
    sp_free(st);
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_error(r, API_E_INTERNAL, "cannot render metrics: %s", sp_strerror(rc));
    }
    return api_reply_body(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL, 0);
}

/* One queue as GET /v1/queues lists it (workers counted by the caller). */
static json_t *api__queue_json(const sp_queue_stat *s)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:b, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I}}",
                     "name", s->name, "depth", (json_int_t)s->ready, "running",
                     (json_int_t)s->running, "delayed", (json_int_t)s->delayed, "dead",
                     (json_int_t)s->dead, "workers", (json_int_t)0, "paused", s->paused,
                     "paused_at", api_json_time(s->paused_at), "totals", "enqueued",
                     (json_int_t)s->enqueued, "succeeded", (json_int_t)s->succeeded, "failed",
                     (json_int_t)s->failed, "cancelled", (json_int_t)s->cancelled, "retried",
                     (json_int_t)s->retried, "expired", (json_int_t)s->expired, "requeued",
                     (json_int_t)s->requeued);
}

enum MHD_Result api_sys_queues(api_req *r)
{
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL)
        return api_reply_code(r, err.code, &err);
    sp_queue_stat *st = sp_calloc(API_MAX_QUEUES, sizeof *st);
    sp_worker_info *w = sp_calloc(API_MAX_WORKERS, sizeof *w);
    size_t n = 0, nw = 0;
    int rc = st && w ? 0 : SP_ENOMEM;
    if (rc == 0)
        rc = sp_queue_stats(q, st, API_MAX_QUEUES, &n, &err);
    if (rc == 0)
        rc = sp_queue_workers(q, w, API_MAX_WORKERS, &nw, &err);
    json_t *out = NULL;
    if (rc == 0) {
        json_t *queues = json_array(), *workers = json_array();
        for (size_t i = 0; i < n && queues; i++)
            json_array_append_new(queues, api__queue_json(&st[i]));
        for (size_t i = 0; i < nw && workers; i++)
            json_array_append_new(workers, api_worker_json(&w[i]));
        /* Count the live workers that take each queue. */
        for (size_t i = 0; i < n && queues; i++) {
            json_int_t count = 0;
            for (size_t k = 0; k < nw; k++) {
                char qs[sizeof w[k].queues];
                memcpy(qs, w[k].queues, sizeof qs);
                char *save = NULL;
                for (char *name = strtok_r(qs, ",", &save); name;
                     name = strtok_r(NULL, ",", &save))
                    count += strcmp(name, st[i].name) == 0;
            }
            json_object_set_new(json_array_get(queues, i), "workers", json_integer(count));
        }
        out = json_pack("{s:o?, s:o?}", "queues", queues, "workers", workers);
        if (out == NULL)
            rc = SP_ENOMEM;
    }
    sp_free(st);
    sp_free(w);
    if (rc < 0)
        return rc == SP_ENOMEM ? api_reply_code(r, rc, NULL)
                               : api_reply_code(r, rc, &err);
    return api_reply_json_value(r, 200, out);
}

/* POST /v1/queues/{name}/pause and .../resume: 200 with the queue as GET /v1/queues
 * lists it (without its worker count). Pausing a paused queue changes nothing. */
enum MHD_Result api_sys_queue_pause(api_req *r)
{
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL)
        return api_reply_code(r, err.code, &err);
    bool pause = r->route.id == API_R_QUEUE_PAUSE;
    sp_queue_stat st;
    int rc = sp_queue_pause(q, r->route.queue, pause, &err);
    if (rc == 0)
        rc = sp_queue_stat_one(q, r->route.queue, &st, &err);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    sp_logctx lc = {NULL, r->route.queue, NULL};
    sp_info(&lc, "queue %s", pause ? "paused" : "resumed");
    json_t *out = api__queue_json(&st);
    if (out)
        json_object_del(out, "workers");
    return api_reply_json_value(r, 200, out);
}

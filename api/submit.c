/* submit.c - job creation shared by /v1/videos and /v1/exports (see submit.h). */
#include "submit.h"

#include <string.h>

#include "jobjson.h"
#include "metrics.h"
#include "reply.h"
#include "spool/log.h"

static int api__hash_arg(void *ud, const char *name, const char *value)
{
    api_req *r = ud;
    sp_sha256_update(&r->fp, name, strlen(name) + 1);
    sp_sha256_update(&r->fp, value, strlen(value) + 1);
    return 0;
}

int api_submit_begin(api_req *r)
{
    const char *key = api_header(r, "Idempotency-Key");
    if (key == NULL)
        return 0;
    size_t n = strlen(key);
    bool ok = n > 0 && n <= API_IDEM_KEY_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = key[i] > 0x20 && key[i] < 0x7f;
    if (!ok) {
        api_invalid inv;
        api_invalid_set(&inv, "Idempotency-Key",
                        "Idempotency-Key must be 1 to %d printable ASCII characters without "
                        "spaces",
                        API_IDEM_KEY_MAX);
        api_reply_invalid(r, &inv);
        return -1;
    }
    memcpy(r->idem_key, key, n + 1);
    r->idem = true;
    sp_err err;
    if (sp_sha256_init(&r->fp, &err) < 0) {
        api_reply_code(r, err.code, &err);
        return -1;
    }
    static const char method[] = "POST";
    sp_sha256_update(&r->fp, method, sizeof method);
    sp_sha256_update(&r->fp, r->path, strlen(r->path) + 1);
    sp_sha256_update(&r->fp, r->media.type, strlen(r->media.type) + 1);
    api_query_each(r, api__hash_arg, r);
    sp_sha256_update(&r->fp, "\n", 1);
    return 0;
}

void api_submit_hash(api_req *r, const void *data, size_t n)
{
    if (r->idem)
        sp_sha256_update(&r->fp, data, n);
}

int api_submit_check_length(api_req *r, int64_t limit)
{
    const char *cl = api_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t len;
    if (cl && sp_parse_i64(cl, 0, INT64_MAX, &len) == 0 && len > limit) {
        api_reply_error(r, API_E_TOO_LARGE, "the body (%lld bytes) is larger than the limit of "
                                            "%lld bytes",
                        (long long)len, (long long)limit);
        return -1;
    }
    return 0;
}

int api_submit_precheck(api_req *r, const char *type)
{
    api_server *s = r->srv;
    const char *queue = sp_routes_queue(&s->routes, type);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL) {
        api_reply_code(r, err.code, &err);
        return -1;
    }
    sp_queue_stat st;
    int rc = sp_queue_stat_one(q, queue, &st, &err);
    if (rc < 0) {
        api_reply_code(r, rc, &err);
        return -1;
    }
    if (s->cfg->queue_limit > 0 && st.ready >= s->cfg->queue_limit) {
        /* A client retrying a request whose job exists gets that job, full queue or not:
         * the enqueue checks the key before the limit. */
        char existing[SP_ID_LEN + 1];
        if (r->idem && sp_queue_idem_lookup(q, r->idem_key, existing, &err) == 1)
            return 0;
        api_reply_error(r, API_E_QUEUE_FULL, "queue %s is full (%lld jobs waiting)", queue,
                        (long long)st.ready);
        return -1;
    }
    return 0;
}

int api_submit_blob_open(api_req *r, const char *name)
{
    sp_err err;
    if (r->id[0] == '\0' && sp_id_new(r->id) < 0) {
        api_reply_error(r, API_E_INTERNAL, "cannot make a job id: no randomness");
        return -1;
    }
    r->made_blobs = true;
    int rc = sp_blob_create(r->srv->blobs, r->id, name, r->srv->cfg->max_upload, &r->blob, &err);
    if (rc < 0) {
        api_reply_error(r, API_E_STORAGE, "cannot store the upload: %s", err.msg);
        return -1;
    }
    return 0;
}

int api_submit_blob_write(api_req *r, const char *data, size_t n)
{
    sp_err err;
    int rc = sp_blob_write(r->blob, data, n, &err);
    if (rc == SP_ETOOBIG) {
        api_reply_error(r, API_E_TOO_LARGE, "the upload is larger than the limit of %lld bytes",
                        (long long)r->srv->cfg->max_upload);
        return -1;
    }
    if (rc < 0) {
        api_reply_error(r, API_E_STORAGE, "cannot store the upload: %s", err.msg);
        return -1;
    }
    api_submit_hash(r, data, n);
    return 0;
}

int api_submit_blob_commit(api_req *r, int64_t *bytes)
{
    sp_err err;
    sp_blob_writer *w = r->blob;
    r->blob = NULL;
    int rc = sp_blob_commit(w, sp_blob_written(w) >= API_DURABLE_MIN_BYTES, bytes, &err);
    if (rc < 0) {
        api_reply_error(r, API_E_STORAGE, "cannot store the upload: %s", err.msg);
        return -1;
    }
    api_metrics_upload_bytes((uint64_t)*bytes);
    return 0;
}

/* With SPOOL_REDIS_WAIT_REPLICAS, a job is accepted only once that many replicas have
 * it, so that a failover cannot lose it: 0 when they do (or none are asked for), or the
 * reply already sent (503 not_replicated: the job may exist, and a retry with the same
 * Idempotency-Key finds it, or creates it if the failover lost it). */
static int api__replicated(api_req *r, sp_queue *q, const char *id, enum MHD_Result *ret)
{
    const api_config *cfg = r->srv->cfg;
    if (cfg->wait_replicas <= 0)
        return 0;
    sp_err err;
    int n = sp_queue_wait_replicas(q, (int)cfg->wait_replicas, cfg->wait_timeout_ms, &err);
    if (n >= cfg->wait_replicas)
        return 0;
    if (n < 0) {
        *ret = api_reply_code(r, n, &err);
        return -1;
    }
    sp_logctx lc = {id, NULL, NULL};
    sp_warn(&lc, "%d of %lld Redis replicas have the job after %lld ms: answered 503", n,
            (long long)cfg->wait_replicas, (long long)cfg->wait_timeout_ms);
    *ret = api_reply_error(r, API_E_NOT_REPLICATED,
                           "job %s is recorded, but only %d of the %lld Redis replicas required "
                           "confirmed it within %lld ms: a failover could lose it; retry with "
                           "the same Idempotency-Key",
                           id, n, (long long)cfg->wait_replicas,
                           (long long)cfg->wait_timeout_ms);
    return -1;
}

/* Answer 202 with job j. */
static enum MHD_Result api__accepted(api_req *r, const sp_job *j, bool replayed)
{
    sp_buf b;
    sp_buf_init(&b, 16 * 1024 * 1024);
    int rc = api_job_render(j, &b);
    if (rc == 0)
        rc = sp_buf_addc(&b, '\n');
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_code(r, rc, NULL);
    }
    char loc[64], etag[32];
    snprintf(loc, sizeof loc, "/v1/jobs/%s", j->id);
    api_job_etag(j, etag);
    api_hdr_kv h[] = {{"Location", loc}, {"ETag", etag}, {"Idempotent-Replayed", "true"}};
    return api_reply_json(r, 202, &b, h, replayed ? 3 : 2);
}

void api_enqueue_defaults(const api_config *cfg, const sp_routes *routes, const char *type,
                          const char *callback_url, sp_enqueue *e)
{
    if (callback_url == NULL || callback_url[0] == '\0')
        callback_url = cfg->webhook_url && cfg->webhook_url[0] ? cfg->webhook_url : NULL;
    sp_retry_policy pol = sp_routes_retry(routes, type);
    e->type = type;
    e->queue = sp_routes_queue(routes, type);
    e->max_attempts = pol.max_attempts;
    e->retry_base_ms = pol.base_ms;
    e->retry_cap_ms = pol.cap_ms;
    e->queue_limit = cfg->queue_limit;
    e->idem_ttl_ms = cfg->idem_ttl_ms;
    e->callback_url = callback_url;
    e->callback_attempts = cfg->webhook_max_attempts;
}

enum MHD_Result api_submit(api_req *r, const char *type, const char *params, const char *input,
                           bool high_priority, const char *callback_url, const api_when *when)
{
    api_server *s = r->srv;
    sp_err err;
    if (r->id[0] == '\0' && sp_id_new(r->id) < 0)
        return api_reply_error(r, API_E_INTERNAL, "cannot make a job id: no randomness");
    char fp[65];
    if (r->idem && sp_sha256_hex(&r->fp, fp, &err) < 0)
        return api_reply_code(r, err.code, &err);
    int64_t now = sp_now_ms();
    sp_enqueue e = {
        .id = r->id,
        .high_priority = high_priority,
        .params_json = params,
        .input_json = input,
        .idem_key = r->idem ? r->idem_key : NULL,
        .fingerprint = r->idem ? fp : NULL,
        .created_at = now,
        .run_at_ms = when ? when->run_at_ms : 0,
        .delay_ms = when ? when->delay_ms : 0,
    };
    api_enqueue_defaults(s->cfg, &s->routes, type, callback_url, &e);
    const char *queue = e.queue;
    callback_url = e.callback_url;
    sp_queue *q = api_queue(r, &err);
    char existing[SP_ID_LEN + 1] = "";
    int rc = q ? sp_queue_enqueue(q, &e, existing, &err) : err.code;
    bool unanswered = rc == SP_EREDIS && q && sp_queue_unanswered(q);
    if (rc == SP_EREDIS && q) {
        /* The connection failed: before or after Redis ran the script? Ask again once
         * (a new connection); only a job that is not there is refused. */
        sp_job j;
        sp_err err2;
        int found = sp_queue_get(q, r->id, &j, &err2);
        sp_job_clear(&j);
        if (found == 0) {
            rc = 0;
        } else if (found != SP_ENOTFOUND && unanswered) {
            /* The script was sent and no Redis answers the check (a failover under
             * way): it may have run and reached a replica that becomes the master, so
             * the job may exist. Its blobs stay (gc removes them if it does not), and
             * the 503 says to retry with the same Idempotency-Key. */
            r->job_created = true;
            return api_reply_code(r, rc, &err);
        }
    }
    enum MHD_Result ret;
    if (rc == 0 && api__replicated(r, q, r->id, &ret) < 0) {
        r->job_created = true; /* its blobs stay: the job may exist */
        return ret;
    }
    if (rc == 0 && when && when->given) {
        /* A delayed job: whether it is scheduled, and until when, Redis's clock decided;
         * answer with the record. */
        r->job_created = true;
        sp_job j;
        if (sp_queue_get(q, r->id, &j, &err) == 0) {
            ret = api__accepted(r, &j, false);
            sp_job_clear(&j);
            return ret;
        }
        return api_reply_code(r, err.code, &err);
    }
    if (rc == 0) {
        r->job_created = true;
        /* The job as the enqueue script recorded it, without a second round trip. */
        sp_job j;
        sp_job_init(&j);
        memcpy(j.id, r->id, sizeof j.id);
        snprintf(j.type, sizeof j.type, "%s", type);
        snprintf(j.queue, sizeof j.queue, "%s", queue);
        j.state = SP_STATE_QUEUED;
        j.max_attempts = e.max_attempts;
        j.high_priority = high_priority;
        j.version = 1;
        j.created_at = j.updated_at = now;
        j.params = (char *)params;
        j.input = (char *)input;
        j.callback_url = (char *)callback_url;
        j.callback_attempts = s->cfg->webhook_max_attempts;
        sp_logctx lc = {r->id, queue, NULL};
        sp_debug(&lc, "created %s job", type);
        return api__accepted(r, &j, false);
    }
    api_req_drop_blobs(r);
    if (rc == 1) {
        /* The same request again: answer with the job the first one created. */
        sp_job j;
        rc = sp_queue_get(q, existing, &j, &err);
        if (rc == SP_ENOTFOUND)
            return api_reply_error(r, API_E_IDEMPOTENCY,
                                   "the job created with this Idempotency-Key (%s) no longer "
                                   "exists",
                                   existing);
        if (rc < 0)
            return api_reply_code(r, rc, &err);
        if (api__replicated(r, q, existing, &ret) == 0)
            ret = api__accepted(r, &j, true);
        sp_job_clear(&j);
        return ret;
    }
    return api_reply_code(r, rc, &err);
}

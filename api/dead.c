/* dead.c - a queue's dead-letter set: GET /v1/queues/{name}/dead (a page of it, the
 * latest failure first), POST /v1/queues/{name}/dead/retry and .../dead/purge with a
 * JSON body {"ids":[...]} (those jobs) or {"all":true} (the whole set, up to
 * API_DEAD_ALL_MAX jobs a request: "remaining" says how many are left).
 *
 * Purge is a POST to its own address, like retry, rather than DELETE on the set: both
 * take the same body (a list of ids can be long), a DELETE with a body is dropped by
 * some clients and proxies, and a DELETE without one would empty the set on a slip. */
#include <jansson.h>
#include <string.h>

#include "handlers.h"
#include "jobjson.h"
#include "reply.h"
#include "spool/alloc.h"

#define API_DEAD_PAGE_DEFAULT 50
#define API_DEAD_PAGE_MAX 500
#define API_DEAD_OFFSET_MAX 1000000
/* The most ids one request names, and the most jobs {"all":true} handles at once. */
#define API_DEAD_IDS_MAX 1000
#define API_DEAD_ALL_MAX 10000
#define API_DEAD_BATCH 500
#define API_DEAD_BODY_MAX (64 * 1024)

typedef struct api__dead_page {
    api_req *r;
    int64_t offset, limit;
} api__dead_page;

static int api__dead_arg(void *ud, const char *name, const char *value)
{
    api__dead_page *a = ud;
    api_invalid inv;
    if (strcmp(name, "offset") == 0) {
        if (sp_parse_i64(value, 0, API_DEAD_OFFSET_MAX, &a->offset) == 0)
            return 0;
        api_invalid_set(&inv, name, "offset must be from 0 to %d", API_DEAD_OFFSET_MAX);
    } else if (strcmp(name, "limit") == 0) {
        if (sp_parse_i64(value, 1, API_DEAD_PAGE_MAX, &a->limit) == 0)
            return 0;
        api_invalid_set(&inv, name, "limit must be from 1 to %d", API_DEAD_PAGE_MAX);
    } else {
        api_invalid_set(&inv, name, "unknown parameter '%s' (expected offset, limit)", name);
    }
    api_reply_invalid(a->r, &inv);
    return -1;
}

/* GET /v1/queues/{name}/dead?offset=&limit=: {"queue","total","offset","jobs":[...]}. */
enum MHD_Result api_dead_list(api_req *r)
{
    api__dead_page a = {r, 0, API_DEAD_PAGE_DEFAULT};
    if (api_query_each(r, api__dead_arg, &a) != 0)
        return api_replied(r);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL)
        return api_reply_code(r, err.code, &err);
    sp_job *jobs = sp_calloc((size_t)a.limit, sizeof *jobs);
    if (jobs == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    size_t n = 0;
    int64_t total = 0;
    int rc = sp_queue_dead_list(q, r->route.queue, (size_t)a.offset, (size_t)a.limit, jobs, &n,
                                &total, &err);
    sp_buf b;
    sp_buf_init(&b, 256 * 1024 * 1024);
    if (rc == 0)
        rc = sp_buf_addf(&b, "{\"queue\":\"%s\",\"total\":%lld,\"offset\":%lld,\"jobs\":",
                         r->route.queue, (long long)total, (long long)a.offset);
    if (rc == 0)
        rc = api_job_render_list(jobs, n, &b);
    if (rc == 0)
        rc = sp_buf_adds(&b, "}\n");
    for (size_t i = 0; i < n; i++)
        sp_job_clear(&jobs[i]);
    sp_free(jobs);
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_code(r, rc, rc == SP_EREDIS ? &err : NULL);
    }
    return api_reply_json(r, 200, &b, NULL, 0);
}

enum MHD_Result api_dead_begin(api_req *r)
{
    return api_json_body_begin(r, API_DEAD_BODY_MAX);
}

/* The ids of body {"ids":[...]} into ids (pointing into body), or *all for
 * {"all":true}. Replies and returns -1 when the body is not one of these. */
static int api__dead_body(api_req *r, const json_t *body, const char **ids, size_t *n, bool *all)
{
    *n = 0;
    *all = false;
    api_invalid inv;
    const json_t *jids = json_object_get(body, "ids");
    const json_t *jall = json_object_get(body, "all");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "ids") != 0 && strcmp(key, "all") != 0) {
            api_invalid_set(&inv, key, "unknown field '%s' (expected ids or all)", key);
            goto refuse;
        }
    }
    if ((jids == NULL) == (jall == NULL)) {
        api_invalid_set(&inv, "ids", "give either ids (a list of job ids) or \"all\": true");
        goto refuse;
    }
    if (jall) {
        if (!json_is_true(jall)) {
            api_invalid_set(&inv, "all", "all must be true (or give ids instead)");
            goto refuse;
        }
        *all = true;
        return 0;
    }
    if (!json_is_array(jids) || json_array_size(jids) == 0 ||
        json_array_size(jids) > API_DEAD_IDS_MAX) {
        api_invalid_set(&inv, "ids", "ids must be a list of 1 to %d job ids", API_DEAD_IDS_MAX);
        goto refuse;
    }
    for (size_t i = 0; i < json_array_size(jids); i++) {
        const char *id = json_string_value(json_array_get(jids, i));
        if (id == NULL || !sp_id_valid(id)) {
            api_invalid_set(&inv, "ids", "ids[%zu] is not a job id", i);
            goto refuse;
        }
        ids[(*n)++] = id;
    }
    return 0;
refuse:
    api_reply_invalid(r, &inv);
    return -1;
}

typedef struct api__dead_tally {
    json_int_t done;
    json_t *not_found, *not_failed; /* ids */
} api__dead_tally;

static int api__tally(api__dead_tally *t, const char *const *ids, const int *res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *to = res[i] == 0 ? NULL : res[i] == SP_ESTATE ? t->not_failed : t->not_found;
        if (res[i] == 0)
            t->done++;
        else if (json_array_append_new(to, json_string(ids[i])) < 0)
            return SP_ENOMEM;
    }
    return 0;
}

/* Retry or purge the whole set: batches from its head until it is empty, API_DEAD_ALL_MAX
 * jobs were handled, or a batch changed nothing (jobs that are in the set but not
 * failed). */
static int api__dead_all(sp_queue *q, const char *queue, int action, api__dead_tally *t,
                         sp_err *err)
{
    char(*ids)[SP_ID_LEN + 1] = sp_calloc(API_DEAD_BATCH, sizeof *ids);
    const char **ptr = sp_calloc(API_DEAD_BATCH, sizeof *ptr);
    int *res = sp_calloc(API_DEAD_BATCH, sizeof *res);
    int rc = ids && ptr && res ? 0 : SP_ENOMEM;
    for (size_t handled = 0; rc == 0 && handled < API_DEAD_ALL_MAX;) {
        size_t n = 0;
        size_t want = API_DEAD_ALL_MAX - handled < API_DEAD_BATCH ? API_DEAD_ALL_MAX - handled
                                                                  : API_DEAD_BATCH;
        rc = sp_queue_dead_ids(q, queue, want, ids, &n, err);
        if (rc < 0 || n == 0)
            break;
        for (size_t i = 0; i < n; i++)
            ptr[i] = ids[i];
        json_int_t before = t->done;
        rc = sp_queue_dead_apply(q, queue, action, ptr, n, res, err);
        if (rc == 0)
            rc = api__tally(t, ptr, res, n);
        handled += n;
        if (t->done == before)
            break;
    }
    sp_free(ids);
    sp_free(ptr);
    sp_free(res);
    return rc;
}

enum MHD_Result api_dead_end(api_req *r)
{
    int action = r->route.id == API_R_QUEUE_DEAD_PURGE ? SP_DEAD_PURGE : SP_DEAD_RETRY;
    json_error_t jerr;
    json_t *body = json_loadb(r->text.data ? r->text.data : "", r->text.len, JSON_REJECT_DUPLICATES,
                              &jerr);
    if (body == NULL)
        return api_reply_error(r, API_E_INVALID_JSON, "the body is not JSON: %s", jerr.text);
    if (!json_is_object(body)) {
        json_decref(body);
        return api_reply_error(r, API_E_INVALID_JSON, "the body must be a JSON object");
    }
    const char **ids = sp_calloc(API_DEAD_IDS_MAX, sizeof *ids);
    int *res = sp_calloc(API_DEAD_IDS_MAX, sizeof *res);
    size_t n = 0;
    bool all = false;
    if (ids == NULL || res == NULL || api__dead_body(r, body, ids, &n, &all) < 0) {
        sp_free(ids);
        sp_free(res);
        json_decref(body);
        return r->status ? api_replied(r) : api_reply_code(r, SP_ENOMEM, NULL);
    }
    api__dead_tally t = {0, json_array(), json_array()};
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    int rc = q == NULL ? err.code : t.not_found && t.not_failed ? 0 : SP_ENOMEM;
    if (rc == 0 && all)
        rc = api__dead_all(q, r->route.queue, action, &t, &err);
    else if (rc == 0) {
        rc = sp_queue_dead_apply(q, r->route.queue, action, ids, n, res, &err);
        if (rc == 0)
            rc = api__tally(&t, ids, res, n);
    }
    int64_t remaining = 0;
    size_t none;
    if (rc == 0)
        rc = sp_queue_dead_list(q, r->route.queue, 0, 0, NULL, &none, &remaining, &err);
    sp_free(ids);
    sp_free(res);
    json_decref(body); /* after the ids that pointed into it */
    if (rc < 0) {
        json_decref(t.not_found);
        json_decref(t.not_failed);
        return api_reply_code(r, rc, rc == SP_ENOMEM ? NULL : &err);
    }
    json_t *out = json_pack("{s:s, s:s, s:I, s:o, s:o, s:I}", "queue", r->route.queue, "action",
                            action == SP_DEAD_PURGE ? "purge" : "retry",
                            action == SP_DEAD_PURGE ? "purged" : "retried", t.done, "not_found",
                            t.not_found, "not_failed", t.not_failed, "remaining",
                            (json_int_t)remaining);
    return api_reply_json_value(r, 200, out);
}

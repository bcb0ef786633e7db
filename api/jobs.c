/* jobs.c - the /v1/jobs resource: one job (with long-poll and ETags), cancel, retry,
 * the list of recent jobs, and output downloads with Range. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "handlers.h"
#include "jobjson.h"
#include "reply.h"
#include "spool/alloc.h"

#define API_LIST_DEFAULT 50
#define API_LIST_MAX 1000

/* Read the request's job; replies (404, 503...) and returns a negative code on
 * failure. */
static int api__load(api_req *r, sp_job *j)
{
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    int rc = q ? sp_queue_get(q, r->route.job, j, &err) : err.code;
    if (rc < 0) {
        if (rc == SP_ENOTFOUND)
            api_reply_error(r, API_E_NOT_FOUND, "no such job: %s", r->route.job);
        else
            api_reply_code(r, rc, &err);
    }
    return rc;
}

/* Answer status with job j (and Location when location is true). */
static enum MHD_Result api__job_reply(api_req *r, int status, const sp_job *j, bool location)
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
    char etag[32], loc[64];
    api_job_etag(j, etag);
    snprintf(loc, sizeof loc, "/v1/jobs/%s", j->id);
    api_hdr_kv h[] = {{"ETag", etag}, {"Cache-Control", "no-cache"}, {"Location", loc}};
    return api_reply_json(r, status, &b, h, location ? 3 : 2);
}

typedef struct api__get_args {
    api_req *r;
    int64_t wait_ms;
} api__get_args;

static int api__get_arg(void *ud, const char *name, const char *value)
{
    api__get_args *a = ud;
    api_invalid inv;
    int64_t max_s = a->r->srv->cfg->max_wait_ms / 1000;
    int64_t secs;
    if (strcmp(name, "wait") != 0)
        api_invalid_set(&inv, name, "unknown parameter '%s' (expected wait)", name);
    else if (sp_parse_i64(value, 0, max_s, &secs) < 0)
        api_invalid_set(&inv, name, "wait must be a whole number of seconds from 0 to %lld",
                        (long long)max_s);
    else {
        a->wait_ms = secs * 1000;
        return 0;
    }
    api_reply_invalid(a->r, &inv);
    return -1;
}

/* GET /v1/jobs/{id}[?wait=N]. Called when the headers are read and again each time a
 * long-poll is woken. */
enum MHD_Result api_jobs_get(api_req *r)
{
    api__get_args a = {r, 0};
    if (!r->suspended && api_query_each(r, api__get_arg, &a) != 0)
        return api_replied(r);
    sp_job j;
    if (api__load(r, &j) < 0)
        return api_replied(r);
    char etag[32];
    api_job_etag(&j, etag);
    const char *inm = api_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool can_wait = !sp_state_terminal(j.state) && !atomic_load(&r->srv->stopping);
    bool wait = false;
    int64_t now = sp_mono_ms();
    if (!r->suspended) {
        /* Wait when the client has seen this version (or named none). */
        if (a.wait_ms > 0 && can_wait && (inm == NULL || api_hdr_etag_match(inm, etag))) {
            r->base_version = j.version;
            memcpy(r->waiter.id, j.id, sizeof r->waiter.id);
            r->waiter.deadline_ms = now + a.wait_ms;
            r->waiter.recheck = true;
            wait = true;
        }
    } else if (j.version == r->base_version && can_wait && now < r->waiter.deadline_ms) {
        r->waiter.recheck = false; /* woken early (a recheck or a lost subscriber) */
        wait = true;
    }
    if (wait) {
        sp_job_clear(&j);
        api_suspend(r);
        return MHD_YES;
    }
    enum MHD_Result ret;
    if (inm && api_hdr_etag_match(inm, etag)) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp && MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag) == MHD_YES &&
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_YES)
            ret = api_reply_response(r, 304, resp);
        else
            ret = api_reply_response(r, 500, resp);
    } else {
        ret = api__job_reply(r, 200, &j, false);
    }
    sp_job_clear(&j);
    return ret;
}

/* Answer status with the job as it is now, after a cancel or a retry changed it. */
static enum MHD_Result api__job_now(api_req *r, int status, bool location)
{
    sp_job j;
    if (api__load(r, &j) < 0)
        return api_replied(r);
    enum MHD_Result ret = api__job_reply(r, status, &j, location);
    sp_job_clear(&j);
    return ret;
}

/* DELETE /v1/jobs/{id}: 200 when it is cancelled, 202 when its worker was asked to
 * stop, 409 when it had already ended. */
enum MHD_Result api_jobs_cancel(api_req *r)
{
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    int rc = q ? sp_queue_cancel(q, r->route.job, r->srv->cfg->common.retention_ms, &err)
               : err.code;
    if (rc == SP_ESTATE)
        return api_reply_error(r, API_E_ENDED, "the job cannot be cancelled: %s", err.msg);
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "no such job: %s", r->route.job);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    return api__job_now(r, rc == 0 ? 200 : 202, false);
}

/* POST /v1/jobs/{id}/retry: a failed job back on its queue. */
enum MHD_Result api_jobs_retry(api_req *r)
{
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    int rc = q ? sp_queue_requeue(q, r->route.job, &err) : err.code;
    if (rc == SP_ESTATE)
        return api_reply_error(r, API_E_NOT_FAILED, "%s", err.msg);
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "no such job: %s", r->route.job);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    return api__job_now(r, 202, true);
}

typedef struct api__list_args {
    api_req *r;
    sp_list_filter f;
    char type[SP_TYPE_MAX + 1];
} api__list_args;

static int api__list_arg(void *ud, const char *name, const char *value)
{
    api__list_args *a = ud;
    api_invalid inv;
    int64_t v;
    if (strcmp(name, "state") == 0) {
        if (sp_state_parse(value, &a->f.state) == 0) {
            a->f.has_state = true;
            return 0;
        }
        api_invalid_set(&inv, name, "state must be queued, running, retrying, succeeded, failed "
                                    "or cancelled");
    } else if (strcmp(name, "type") == 0) {
        size_t n = strlen(value);
        bool ok = n > 0 && n <= SP_TYPE_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = (value[i] >= 'a' && value[i] <= 'z') || (value[i] >= '0' && value[i] <= '9') ||
                 value[i] == '.' || value[i] == '_' || value[i] == '-';
        if (ok) {
            memcpy(a->type, value, n + 1);
            a->f.type = a->type;
            return 0;
        }
        api_invalid_set(&inv, name, "type must be a job type such as video.transcode");
    } else if (strcmp(name, "limit") == 0) {
        if (sp_parse_i64(value, 1, API_LIST_MAX, &v) == 0) {
            a->f.limit = (size_t)v;
            return 0;
        }
        api_invalid_set(&inv, name, "limit must be from 1 to %d", API_LIST_MAX);
    } else {
        api_invalid_set(&inv, name, "unknown parameter '%s' (expected state, type, limit)", name);
    }
    api_reply_invalid(a->r, &inv);
    return -1;
}

/* GET /v1/jobs?state=&type=&limit=: recent jobs, newest first. */
enum MHD_Result api_jobs_list(api_req *r)
{
    api__list_args a;
    memset(&a, 0, sizeof a);
    a.r = r;
    a.f.limit = API_LIST_DEFAULT;
    if (api_query_each(r, api__list_arg, &a) != 0)
        return api_replied(r);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL)
        return api_reply_code(r, err.code, &err);
    sp_job *jobs = sp_calloc(a.f.limit, sizeof *jobs);
    if (jobs == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    size_t n = 0;
    int rc = sp_queue_list(q, &a.f, jobs, &n, &err);
    sp_buf b;
    sp_buf_init(&b, 256 * 1024 * 1024);
    if (rc == 0)
        rc = sp_buf_adds(&b, "{\"jobs\":[");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = sp_buf_addc(&b, ',');
        if (rc == 0)
            rc = api_job_render(&jobs[i], &b);
    }
    if (rc == 0)
        rc = sp_buf_adds(&b, "]}\n");
    for (size_t i = 0; i < n; i++)
        sp_job_clear(&jobs[i]);
    sp_free(jobs);
    if (rc < 0) {
        sp_buf_free(&b);
        return rc == SP_EREDIS ? api_reply_code(r, rc, &err)
                               : api_reply_error(r, API_E_INTERNAL, "cannot list jobs: %s",
                                                 sp_strerror(rc));
    }
    return api_reply_json(r, 200, &b, NULL, 0);
}

/* GET /v1/jobs/{id}/outputs/{name}: the file, with Range for players that seek. */
enum MHD_Result api_jobs_output(api_req *r)
{
    sp_job j;
    if (api__load(r, &j) < 0)
        return api_replied(r);
    char ctype[128];
    int rc = api_job_output(&j, r->route.name, ctype, sizeof ctype);
    sp_job_clear(&j);
    if (rc < 0)
        return api_reply_error(r, API_E_NOT_FOUND, "the job has no output named %s",
                               r->route.name);
    int fd;
    int64_t size;
    sp_err err;
    rc = sp_blob_open_read(r->srv->blobs, r->route.job, r->route.name, &fd, &size, &err);
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "the file of output %s is gone",
                               r->route.name);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    int64_t start = 0, len = size;
    int range = api_hdr_range(api_header(r, MHD_HTTP_HEADER_RANGE), size, &start, &len);
    char crange[96];
    if (range == API_RANGE_UNSATISFIABLE) {
        close(fd);
        snprintf(crange, sizeof crange, "bytes */%lld", (long long)size);
        api_hdr_kv h[] = {{"Content-Range", crange}};
        return api_reply_errorh(r, API_E_RANGE, h, 1, "the range is outside the file (%lld bytes)",
                                (long long)size);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd_at_offset64((uint64_t)len, fd,
                                                                        (uint64_t)start);
    if (resp == NULL) {
        close(fd);
        return api_reply_code(r, SP_ENOMEM, NULL);
    }
    char disp[128];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", r->route.name);
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") == MHD_YES;
    if (ok && range == API_RANGE_PARTIAL) {
        snprintf(crange, sizeof crange, "bytes %lld-%lld/%lld", (long long)start,
                 (long long)(start + len - 1), (long long)size);
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, crange) == MHD_YES;
    }
    if (!ok) {
        MHD_destroy_response(resp);
        return api_reply_code(r, SP_ENOMEM, NULL);
    }
    return api_reply_response(r, range == API_RANGE_PARTIAL ? 206 : 200, resp);
}

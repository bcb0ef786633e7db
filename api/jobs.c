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
#include "spool/config.h"
#include "spool/log.h"

#define API_LIST_DEFAULT 50
/* An output streamed from an object store is read in ranged GETs of this size, each
 * held in memory only while it is sent. */
#define API_DOWNLOAD_CHUNK (1024 * 1024)
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
    char queue[SP_QUEUE_MAX + 1];
    char before[SP_ID_LEN + 1];
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
        api_invalid_set(&inv, name, "state must be scheduled, queued, running, retrying, "
                                    "succeeded, failed or cancelled");
    } else if (strcmp(name, "type") == 0) {
        if (sp_job_type_valid(value)) {
            memcpy(a->type, value, strlen(value) + 1);
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
    } else if (strcmp(name, "queue") == 0) {
        if (sp_queue_name_valid(value)) {
            memcpy(a->queue, value, strlen(value) + 1);
            a->f.queue = a->queue;
            return 0;
        }
        api_invalid_set(&inv, name, "queue must be a queue name (1-64 of A-Z a-z 0-9 _ . -)");
    } else if (strcmp(name, "before") == 0) {
        if (sp_id_valid(value)) {
            memcpy(a->before, value, SP_ID_LEN + 1);
            a->f.before = a->before;
            return 0;
        }
        api_invalid_set(&inv, name, "before must be a job id (the next cursor of a page)");
    } else {
        api_invalid_set(&inv, name,
                        "unknown parameter '%s' (expected state, type, queue, limit, before)",
                        name);
    }
    api_reply_invalid(a->r, &inv);
    return -1;
}

/* GET /v1/jobs?state=&type=&queue=&limit=&before=: recent jobs, newest first, a page at
 * a time: {"jobs":[...],"next":cursor|null}; the next page is ?before=cursor with the
 * same filters. */
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
    char next[SP_ID_LEN + 1];
    int rc = sp_queue_list_page(q, &a.f, jobs, &n, next, &err);
    if (rc == SP_ENOTFOUND) {
        sp_free(jobs);
        api_invalid inv;
        api_invalid_set(&inv, "before", "the cursor's job is no longer listed (expired)");
        return api_reply_invalid(r, &inv);
    }
    sp_buf b;
    sp_buf_init(&b, 256 * 1024 * 1024);
    if (rc == 0)
        rc = sp_buf_adds(&b, "{\"jobs\":");
    if (rc == 0)
        rc = api_job_render_list(jobs, n, &b);
    if (rc == 0)
        rc = next[0] ? sp_buf_addf(&b, ",\"next\":\"%s\"}\n", next)
                     : sp_buf_adds(&b, ",\"next\":null}\n");
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

/* An output streamed from a reader without a file descriptor (an object store): bytes
 * [start, start + len) of the blob, fetched a chunk at a time. */
typedef struct api__stream {
    sp_blob_reader *reader;
    int64_t start, len;
    int64_t have_at; /* offset (from start) of the chunk in buf, -1 for none */
    size_t have;
    char buf[API_DOWNLOAD_CHUNK];
} api__stream;

static ssize_t api__stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    api__stream *st = cls;
    int64_t p = (int64_t)pos;
    if (p >= st->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (st->have_at < 0 || p < st->have_at || p >= st->have_at + (int64_t)st->have) {
        int64_t want = st->len - p < API_DOWNLOAD_CHUNK ? st->len - p : API_DOWNLOAD_CHUNK;
        sp_err err;
        st->have_at = -1;
        if (sp_blob_read(st->reader, st->start + p, st->buf, (size_t)want, &st->have, &err) < 0 ||
            st->have == 0) {
            sp_warn(NULL, "download stopped at byte %lld: %s", (long long)(st->start + p),
                    st->have == 0 ? "the output ended early" : err.msg);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        st->have_at = p;
    }
    size_t off = (size_t)(p - st->have_at);
    size_t n = st->have - off < max ? st->have - off : max;
    memcpy(out, st->buf + off, n);
    return (ssize_t)n;
}

static void api__stream_free(void *cls)
{
    api__stream *st = cls;
    sp_blob_reader_close(st->reader);
    sp_free(st);
}

/* The response for bytes [start, start + len) of the output r reads: from its file
 * (sendfile), or streamed from the store. Takes r (closed on failure too). */
static struct MHD_Response *api__output_response(sp_blob_reader *r, int64_t start, int64_t len)
{
    int fd = sp_blob_reader_fd(r);
    if (fd >= 0) {
        int own = dup(fd);
        sp_blob_reader_close(r);
        struct MHD_Response *resp =
            own < 0 ? NULL
                    : MHD_create_response_from_fd_at_offset64((uint64_t)len, own, (uint64_t)start);
        if (resp == NULL && own >= 0)
            close(own);
        return resp;
    }
    api__stream *st = sp_malloc(sizeof *st);
    if (st == NULL) {
        sp_blob_reader_close(r);
        return NULL;
    }
    *st = (api__stream){.reader = r, .start = start, .len = len, .have_at = -1};
    struct MHD_Response *resp = MHD_create_response_from_callback(
        (uint64_t)len, 64 * 1024, api__stream_read, st, api__stream_free);
    if (resp == NULL)
        api__stream_free(st);
    return resp;
}

/* SPOOL_DOWNLOADS=redirect: 307 to a presigned URL of the object, answered with the
 * output's type and disposition; the client's Range goes to the store. */
static enum MHD_Result api__redirect(api_req *r, const char *ctype, const char *disp)
{
    const api_config *cfg = r->srv->cfg;
    char url[8192];
    sp_err err;
    int rc = sp_blob_presign(r->srv->blobs, r->route.job, r->route.name, cfg->public_endpoint,
                             (cfg->download_ttl_ms + 999) / 1000, ctype, disp, url, sizeof url,
                             &err);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, url) != MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES) {
        MHD_destroy_response(resp);
        return api_reply_code(r, SP_ENOMEM, NULL);
    }
    return api_reply_response(r, 307, resp);
}

static bool api__is_playlist(const char *ctype)
{
    return strcmp(ctype, "application/vnd.apple.mpegurl") == 0;
}

/* Files that name other files of their set relative to their own URL: playlists, and
 * a sprite sheet's WebVTT cues ("sprite.jpg#xywh=..."). */
static bool api__names_relatives(const char *ctype)
{
    return api__is_playlist(ctype) || strcmp(ctype, "text/vtt") == 0;
}

/* Cache-Control for an output: a streaming set's media never change once listed
 * (immutable, a year); its playlists are looked at again soon (a few seconds), since a
 * retried or deleted job changes them. Private when the API takes tokens, so a shared
 * cache never hands one client's files to another. NULL: none (single files). */
static const char *api__output_cache(const api_req *r, const char *ctype)
{
    bool auth = r->srv->ntokens > 0;
    if (strchr(r->route.name, '/') == NULL)
        return NULL;
    if (api__is_playlist(ctype))
        return auth ? "private, max-age=5" : "public, max-age=5";
    return auth ? "private, max-age=31536000, immutable" : "public, max-age=31536000, immutable";
}

/* GET /v1/jobs/{id}/outputs/{name}: the file, with Range for players that seek. A name
 * may be a path into a listed set (hls/720p/seg_00001.m4s). */
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
    sp_err err;
    /* Files of a streaming set (in a folder) play in place; others download under their
     * own name. */
    const char *base = strrchr(r->route.name, '/');
    bool in_set = base != NULL;
    char disp[128 + SP_BLOB_NAME_MAX];
    snprintf(disp, sizeof disp, "%s; filename=\"%s\"", in_set ? "inline" : "attachment",
             in_set ? base + 1 : r->route.name);
    const char *cache = api__output_cache(r, ctype);
    /* Playlists and WebVTT cues name their files relative to themselves, so they are
     * always answered here: a redirect would resolve those names against the store's
     * URL, where they have no signature. */
    if (r->srv->redirect_downloads && !api__names_relatives(ctype))
        return api__redirect(r, ctype, disp);
    sp_blob_reader *reader;
    int64_t size;
    rc = sp_blob_reader_open(r->srv->blobs, r->route.job, r->route.name, &reader, &size, &err);
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "the file of output %s is gone",
                               r->route.name);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    int64_t start = 0, len = size;
    int range = api_hdr_range(api_header(r, MHD_HTTP_HEADER_RANGE), size, &start, &len);
    char crange[96];
    if (range == API_RANGE_UNSATISFIABLE) {
        sp_blob_reader_close(reader);
        snprintf(crange, sizeof crange, "bytes */%lld", (long long)size);
        api_hdr_kv h[] = {{"Content-Range", crange}};
        return api_reply_errorh(r, API_E_RANGE, h, 1, "the range is outside the file (%lld bytes)",
                                (long long)size);
    }
    struct MHD_Response *resp = api__output_response(reader, start, len);
    if (resp == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_DISPOSITION, disp) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") == MHD_YES &&
              (cache == NULL ||
               MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache) == MHD_YES);
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

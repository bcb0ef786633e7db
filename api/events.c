/* events.c - the live event routes, GET /v1/events (?queue=, ?type=) and GET
 * /v1/jobs/{id}/events: validate the request, open a stream on the hub (ssehub.h) and
 * answer with it. A per-job stream starts with the job's current state and ends after
 * a terminal state. */
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "reply.h"
#include "spool/config.h"
#include "spool/log.h"

typedef struct api__ev_args {
    api_req *r;
    api_sse_filter *f;
    bool per_job; /* no parameters on the per-job route */
} api__ev_args;

static int api__ev_arg(void *ud, const char *name, const char *value)
{
    api__ev_args *a = ud;
    api_invalid inv;
    if (!a->per_job && strcmp(name, "queue") == 0) {
        if (sp_queue_name_valid(value)) {
            snprintf(a->f->queue, sizeof a->f->queue, "%s", value);
            return 0;
        }
        api_invalid_set(&inv, name, "queue must be 1-64 of A-Z a-z 0-9 _ . -");
    } else if (!a->per_job && strcmp(name, "type") == 0) {
        if (sp_job_type_valid(value)) {
            snprintf(a->f->type, sizeof a->f->type, "%s", value);
            return 0;
        }
        api_invalid_set(&inv, name, "type must be a job type such as video.transcode");
    } else {
        api_invalid_set(&inv, name, "unknown parameter '%s'%s", name,
                        a->per_job ? " (this route takes none)" : " (expected queue, type)");
    }
    api_reply_invalid(a->r, &inv);
    return -1;
}

/* Last-Event-ID into *id: 0 (absent: *has false), or -1 after a 422. */
static int api__last_id(api_req *r, sp_evid *id, bool *has)
{
    const char *v = api_header(r, "Last-Event-ID");
    *has = false;
    if (v == NULL || *v == '\0')
        return 0; /* an empty Last-Event-ID is what a client sends before any id */
    if (sp_evid_parse(v, id) < 0) {
        api_invalid inv;
        api_invalid_set(&inv, "Last-Event-ID",
                        "Last-Event-ID must be an event id as sent (e.g. 1765112345678-0/3)");
        api_reply_invalid(r, &inv);
        return -1;
    }
    *has = true;
    return 0;
}

static enum MHD_Result api__open_failed(api_req *r, const sp_err *err)
{
    if (err->code == SP_EFULL)
        return api_reply_error(r, API_E_TOO_MANY_STREAMS, "%s", err->msg);
    if (err->code == SP_ESHUTDOWN)
        return api_reply_error(r, API_E_SHUTTING_DOWN, "the server is shutting down");
    return api_reply_code(r, err->code, err);
}

/* Whether events after `after` were trimmed away: 0 (none), 1 (*oldest set), or -1
 * after an answer (503). */
static int api__gap(api_req *r, const sp_evid *after, sp_evid *oldest)
{
    sp_err err;
    sp_evstream *es = api_sse_thread_stream(r->srv->sse, &err);
    int rc = es ? sp_evstream_gap(es, after, oldest, &err) : err.code;
    if (rc < 0) {
        api_reply_code(r, rc, &err);
        return -1;
    }
    return rc;
}

/* Put the gap notice first in s; 0 or -1 after an answer. */
static int api__tell_gap(api_req *r, api_sse_stream *s, const sp_evid *oldest)
{
    sp_buf b;
    sp_buf_init(&b, 4096);
    int rc = api_sse_gap_text(oldest, &b);
    if (rc == 0)
        rc = api_sse_prepend(s, b.data, b.len);
    sp_buf_free(&b);
    if (rc < 0) {
        api_reply_code(r, rc, NULL);
        return -1;
    }
    api_sse_gap_told(s, oldest);
    return 0;
}

/* What both routes read first: the query parameters into f (per_job: none allowed),
 * and Last-Event-ID into *last (*resume says whether it came). 0, or -1 after an answer. */
static int api__ev_request(api_req *r, api_sse_filter *f, bool per_job, sp_evid *last,
                           bool *resume)
{
    api__ev_args a = {r, f, per_job};
    if (api_query_each(r, api__ev_arg, &a) != 0)
        return -1;
    return api__last_id(r, last, resume);
}

/* Answer with the stream. */
static enum MHD_Result api__start(api_req *r, api_sse_stream *s)
{
    struct MHD_Response *resp = api_sse_response(s);
    if (resp == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    return api_reply_response(r, 200, resp);
}

/* GET /v1/events[?queue=&type=] */
enum MHD_Result api_events_all(api_req *r)
{
    api_sse_filter f;
    memset(&f, 0, sizeof f);
    sp_evid last;
    bool resume;
    if (api__ev_request(r, &f, false, &last, &resume) < 0)
        return api_replied(r);
    sp_err err;
    sp_evid pos;
    api_sse_stream *s = api_sse_open(r->srv->sse, r->conn, &f, resume ? &last : NULL, &pos, &err);
    if (s == NULL)
        return api__open_failed(r, &err);
    /* The gap is told here (and the catch-up goes on from the oldest kept): a Redis
     * that cannot answer is a 503 now rather than a stream that ends at once. */
    sp_evid oldest;
    int gap = resume ? api__gap(r, &last, &oldest) : 0;
    if (gap < 0 || (gap == 1 && api__tell_gap(r, s, &oldest) < 0)) {
        api_sse_cancel(s);
        return api_replied(r);
    }
    return api__start(r, s);
}

/* GET /v1/jobs/{id}/events */
enum MHD_Result api_events_job(api_req *r)
{
    api_sse_filter f;
    memset(&f, 0, sizeof f);
    memcpy(f.job, r->route.job, sizeof f.job);
    sp_evid last;
    bool resume;
    if (api__ev_request(r, &f, true, &last, &resume) < 0)
        return api_replied(r);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    sp_job j;
    /* A first look, so an unknown job is a 404 before a stream exists. */
    int rc = q ? sp_queue_get(q, r->route.job, &j, &err) : err.code;
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "no such job: %s", r->route.job);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    bool terminal = sp_state_terminal(j.state);
    int64_t finished = j.finished_at ? j.finished_at : j.updated_at;
    sp_job_clear(&j);
    if (terminal && resume && finished > 0 && (uint64_t)finished <= last.ms) {
        /* It ended before what the client saw last: nothing more will come. 204 tells
         * an EventSource to stop reconnecting. */
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        return api_reply_response(r, 204, resp);
    }
    /* Events the client missed that are gone: tell it, then its state now and what
     * comes from here (replaying what is left of its history after the state would
     * show it older states last). */
    sp_evid oldest;
    int gap = resume && !terminal ? api__gap(r, &last, &oldest) : 0;
    if (gap < 0)
        return api_replied(r);
    sp_evid pos;
    api_sse_stream *s = api_sse_open(r->srv->sse, r->conn, &f,
                                     resume && !terminal && !gap ? &last : NULL, &pos, &err);
    if (s == NULL)
        return api__open_failed(r, &err);
    if (gap == 1 && api__tell_gap(r, s, &oldest) < 0) {
        api_sse_cancel(s);
        return api_replied(r);
    }
    if (!resume || terminal || gap) {
        /* The state now (read after the stream joined, so nothing after it is missed),
         * under the reader's position as its id. */
        rc = sp_queue_get(q, r->route.job, &j, &err);
        if (rc < 0) {
            api_sse_cancel(s);
            if (rc == SP_ENOTFOUND)
                return api_reply_error(r, API_E_NOT_FOUND, "no such job: %s", r->route.job);
            return api_reply_code(r, rc, &err);
        }
        sp_buf b;
        sp_buf_init(&b, 4096);
        sp_event ev;
        memset(&ev, 0, sizeof ev);
        ev.id = pos;
        memcpy(ev.job, j.id, sizeof ev.job);
        ev.state = j.state;
        ev.progress = j.progress;
        snprintf(ev.queue, sizeof ev.queue, "%s", j.queue);
        snprintf(ev.type, sizeof ev.type, "%s", j.type);
        ev.at_ms = j.updated_at ? j.updated_at : j.created_at;
        terminal = sp_state_terminal(j.state);
        sp_job_clear(&j);
        if (api_sse_format(&ev, &b) < 0 || api_sse_prepend(s, b.data, b.len) < 0) {
            sp_buf_free(&b);
            api_sse_cancel(s);
            return api_reply_code(r, SP_ENOMEM, NULL);
        }
        sp_buf_free(&b);
        if (terminal)
            api_sse_end_after(s);
    }
    return api__start(r, s);
}

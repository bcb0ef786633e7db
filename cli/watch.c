/* watch.c - `spoolctl watch [ID]`: print the live event stream (Server-Sent Events from
 * GET /v1/events or /v1/jobs/{id}/events) one line per event, reconnecting with
 * Last-Event-ID where it left off; watching one job ends when the job ends. */
#include <jansson.h>
#include <string.h>

#include "commands.h"
#include "output.h"
#include "spool/util.h"

#define CTL_WATCH_LINE_MAX (64 * 1024) /* longest SSE line accepted */
#define CTL_WATCH_STALL_MS 45000       /* three missed heartbeats: the connection is dead */
#define CTL_WATCH_RETRY_MAX_MS 30000

typedef struct ctl__watch {
    ctl_client *c;
    sp_buf line;       /* the line being read */
    sp_buf data;       /* the event's data lines */
    char event[32];    /* the event's type ("" for a job event) */
    char id[64];       /* the event's id, if any */
    char last_id[64];  /* the last id received: Last-Event-ID on reconnect */
    int64_t retry_ms;  /* the server's retry: hint */
    const char *ended; /* watching one job: its terminal state, once seen */
    int exit;          /* set when output failed */
} ctl__watch;

/* One job event (its JSON data) to the output. */
static void ctl__print_event(ctl__watch *w, json_t *ev)
{
    ctl_client *c = w->c;
    if (c->o->json) {
        if (ctl_client_print_json(c, ev) != 0)
            w->exit = CTL_EXIT_SERVER;
        return;
    }
    const char *at = json_string_value(json_object_get(ev, "at"));
    const char *job = json_string_value(json_object_get(ev, "job_id"));
    const char *state = json_string_value(json_object_get(ev, "state"));
    const char *queue = json_string_value(json_object_get(ev, "queue"));
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_int_t progress = json_integer_value(json_object_get(ev, "progress"));
    sp_buf b;
    sp_buf_init(&b, 4096);
    int rc = 0;
    if (c->o->quiet)
        rc = sp_buf_addf(&b, "%s %s", job ? job : "?", state ? state : "?");
    else
        rc = sp_buf_addf(&b, "%s  %s  %-9s %3lld%%  %s  %s", at ? at : "?", job ? job : "?",
                         state ? state : "?", (long long)progress, queue ? queue : "?",
                         type ? type : "?");
    /* the text came from the server: keep control characters off the terminal */
    sp_buf clean;
    sp_buf_init(&clean, 8192);
    if (rc == 0 && ctl_out_clean(&clean, sp_buf_cstr(&b)) == 0 && sp_buf_addc(&clean, '\n') == 0) {
        if (ctl_client_print(c, &clean) != 0)
            w->exit = CTL_EXIT_SERVER;
    }
    sp_buf_free(&clean);
    sp_buf_free(&b);
}

/* A blank line: the event read so far is complete. */
static void ctl__dispatch(ctl__watch *w)
{
    if (w->id[0])
        memcpy(w->last_id, w->id, sizeof w->last_id);
    if (w->data.len > 0) {
        json_t *ev = json_loadb(w->data.data, w->data.len, 0, NULL);
        if (strcmp(w->event, "gap") == 0) {
            const char *msg = json_string_value(json_object_get(ev, "message"));
            fprintf(w->c->err, "spoolctl: %s\n", msg ? msg : "some events were lost");
        } else if (w->event[0] == '\0' && json_is_object(ev)) {
            ctl__print_event(w, ev);
            const char *state = json_string_value(json_object_get(ev, "state"));
            if (w->c->o->target && state &&
                (strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
                 strcmp(state, "cancelled") == 0))
                w->ended = strcmp(state, "succeeded") == 0   ? "succeeded"
                           : strcmp(state, "failed") == 0 ? "failed"
                                                          : "cancelled";
        }
        json_decref(ev);
    }
    sp_buf_reset(&w->data);
    w->event[0] = '\0';
    w->id[0] = '\0';
}

/* One line of the stream (without its end of line). */
static void ctl__line(ctl__watch *w, const char *s, size_t n)
{
    if (n == 0) {
        ctl__dispatch(w);
        return;
    }
    if (s[0] == ':')
        return; /* a comment: the heartbeat */
    const char *colon = memchr(s, ':', n);
    size_t flen = colon ? (size_t)(colon - s) : n;
    const char *v = colon ? colon + 1 : s + n;
    size_t vlen = n - (size_t)(v - s);
    if (vlen > 0 && *v == ' ') {
        v++;
        vlen--;
    }
    if (flen == 4 && memcmp(s, "data", 4) == 0) {
        if (w->data.len > 0)
            sp_buf_addc(&w->data, '\n');
        sp_buf_add(&w->data, v, vlen);
    } else if (flen == 5 && memcmp(s, "event", 5) == 0) {
        snprintf(w->event, sizeof w->event, "%.*s", (int)vlen, v);
    } else if (flen == 2 && memcmp(s, "id", 2) == 0) {
        if (vlen < sizeof w->id && memchr(v, '\0', vlen) == NULL)
            snprintf(w->id, sizeof w->id, "%.*s", (int)vlen, v);
    } else if (flen == 5 && memcmp(s, "retry", 5) == 0) {
        int64_t ms;
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(vlen < 23 ? vlen : 23), v);
        if (sp_parse_i64(tmp, 0, CTL_WATCH_RETRY_MAX_MS, &ms) == 0)
            w->retry_ms = ms;
    }
}

static int ctl__sink(void *ud, const void *data, size_t n, sp_err *err)
{
    ctl__watch *w = ud;
    const char *p = data;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            size_t len = w->line.len;
            if (len > 0 && w->line.data[len - 1] == '\r')
                len--;
            ctl__line(w, w->line.data ? w->line.data : "", len);
            sp_buf_reset(&w->line);
            if (w->exit)
                return sp_err_set(err, SP_EIO, "cannot write the output");
        } else if (sp_buf_addc(&w->line, p[i]) < 0) {
            return sp_err_set(err, SP_ETOOBIG, "the server sent a line longer than %d bytes",
                              CTL_WATCH_LINE_MAX);
        }
    }
    return 0;
}

int ctl_cmd_watch(ctl_client *c)
{
    const ctl_opts *o = c->o;
    ctl__watch w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.retry_ms = 3000;
    sp_buf_init(&w.line, CTL_WATCH_LINE_MAX);
    sp_buf_init(&w.data, CTL_WATCH_LINE_MAX);
    sp_buf path;
    sp_buf_init(&path, 4096);
    int rc = 0;
    if (o->target) {
        rc = sp_buf_addf(&path, "/v1/jobs/%s/events", o->target);
    } else {
        rc = sp_buf_adds(&path, "/v1/events");
        const char *sep = "?";
        if (rc == 0 && o->queue) {
            rc = sp_buf_addf(&path, "%squeue=", sep);
            rc = rc ? rc : ctl_url_escape(&path, o->queue);
            sep = "&";
        }
        if (rc == 0 && o->type) {
            rc = sp_buf_addf(&path, "%stype=", sep);
            rc = rc ? rc : ctl_url_escape(&path, o->type);
        }
    }
    if (rc < 0) {
        sp_buf_free(&path);
        return ctl_client_fail(c, CTL_EXIT_USAGE, "bad_request", "the request is too long");
    }
    int64_t backoff = 0;
    int exit = -1;
    ctl_response resp;
    ctl_response_init(&resp);
    while (exit < 0) {
        ctl_request rq;
        ctl_request_init(&rq, "GET", sp_buf_cstr(&path));
        rq.accept = "text/event-stream";
        rq.last_event_id = w.last_id[0] ? w.last_id : NULL;
        rq.stall_ms = CTL_WATCH_STALL_MS;
        rq.sink = ctl__sink;
        rq.sink_ud = &w;
        sp_err err;
        sp_err_clear(&err);
        sp_buf_reset(&w.line);
        sp_buf_reset(&w.data);
        w.event[0] = w.id[0] = '\0';
        int hr = ctl_http_do(c->http, &rq, &resp, &err);
        if (w.exit) {
            exit = w.exit;
        } else if (w.ended) {
            exit = strcmp(w.ended, "succeeded") == 0 ? CTL_EXIT_OK : CTL_EXIT_JOB;
        } else if (hr == SP_ECANCELLED || ctl_interrupted) {
            exit = CTL_EXIT_INTERRUPTED;
        } else if (hr == 0 && resp.status == 204) {
            exit = CTL_EXIT_OK; /* the job had ended before what we saw last */
        } else if (hr == 0 && resp.status >= 400 && resp.status != 429 && resp.status != 502 &&
                   resp.status != 503 && resp.status != 504) {
            exit = ctl_client_fail_answer(c, &resp, o->target ? o->target : "the event stream");
        } else if (hr < 0 && hr != SP_EIO && hr != SP_ETIMEDOUT) {
            exit = ctl_client_fail_exchange(c, hr, &err);
        } else {
            /* The stream ended or broke, or the server is busy: come back where we were
             * (a stream that delivered something starts the backoff over). */
            bool got = hr == 0 && resp.status == 200;
            backoff = got ? w.retry_ms : backoff ? backoff * 2 : w.retry_ms;
            if (backoff > CTL_WATCH_RETRY_MAX_MS)
                backoff = CTL_WATCH_RETRY_MAX_MS;
            if (!o->quiet && !got)
                fprintf(c->err, "spoolctl: %s; reconnecting in %lld ms\n",
                        hr < 0 ? err.msg : "the server is busy", (long long)backoff);
            ctl_client_sleep(backoff);
            if (ctl_interrupted)
                exit = CTL_EXIT_INTERRUPTED;
        }
    }
    ctl_response_free(&resp);
    sp_buf_free(&path);
    sp_buf_free(&w.line);
    sp_buf_free(&w.data);
    return exit;
}

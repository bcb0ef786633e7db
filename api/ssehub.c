/* ssehub.c - the Server-Sent Events hub: one reader thread, suspended streams (see
 * ssehub.h). Locks: h->mu guards the list of streams, the reader's position and each
 * stream's live flag and cursor while it is live; s->mu guards a stream's buffer and
 * flags. Order: h->mu before s->mu. Connections are resumed with no lock held: a
 * suspended connection cannot close until it is resumed, and only whoever cleared
 * s->suspended resumes it. */
#include "ssehub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/log.h"
#include "spool/util.h"

#define API_SSE_BLOCK_MS 500      /* longest XREAD wait: how soon the reader sees a stop */
#define API_SSE_READ_MAX 512      /* entries per XREAD */
#define API_SSE_CATCHUP_MAX 128   /* entries per catch-up XRANGE */
#define API_SSE_CATCHUP_STEPS 8   /* XRANGEs in one call of the content callback */
#define API_SSE_RETRY_DELAY_MS 500 /* after a failed read */
#define API_SSE_KEEP 4096         /* buffer bytes a drained stream keeps allocated */

struct api_sse_stream {
    api_sse *hub;
    struct MHD_Connection *conn;
    api_sse_stream *prev, *next; /* h->streams */
    api_sse_filter f;
    /* under h->mu */
    _Atomic bool live; /* gets what the reader fans out (written under h->mu, read
                        * without it by the HTTP thread that only needs a glance) */
    sp_evid cursor; /* the last entry it has (live), or read so far (catching up) */
    /* under s->mu */
    pthread_mutex_t mu;
    sp_buf out;
    size_t off;    /* bytes of out already handed to libmicrohttpd */
    size_t head;   /* before the response: bytes of out that api_sse_prepend put first */
    bool suspended;
    bool ending;   /* end once out is sent */
    bool dropped;  /* out of memory: close */
    /* the catch-up's (HTTP thread's) own */
    bool gap_told;     /* a gap notice went out ... */
    sp_evid gap_oldest; /* ... naming this oldest entry */
};

struct api_sse {
    pthread_mutex_t mu;
    pthread_t thread;
    bool thread_started;
    pthread_key_t tkey;            /* this HTTP thread's sp_evstream */
    char url[1024], prefix[128];
    size_t max_streams;
    int64_t heartbeat_ms;
    /* under mu */
    bool stopping;
    bool ready;                    /* the reader knows its position */
    sp_evid last;                  /* the last entry fanned out */
    api_sse_stream *streams;
    size_t count;
    uint64_t behind;               /* live streams that fell back to catching up */
    sp_evstream *es;               /* the reader's handle (the thread's once started) */
};

/* ---- formatting --------------------------------------------------------------------- */

static int api__event_text(const sp_evid *id, const char *job, sp_state state, int progress,
                           const char *queue, const char *type, int64_t at_ms, sp_buf *b)
{
    char ids[SP_EVID_LEN], at[SP_TIME_LEN];
    sp_evid_format(id, ids);
    sp_format_time(at_ms, at);
    /* The stream's fields were checked to plain charsets when parsed; a job record's
     * queue and type (the per-job stream's first event) are escaped all the same. */
    int rc = sp_buf_addf(b,
                         "id: %s\ndata: {\"id\":\"%s\",\"job_id\":\"%s\",\"state\":\"%s\","
                         "\"progress\":%d,\"queue\":\"",
                         ids, ids, job, sp_state_name(state), progress);
    if (rc == 0)
        rc = sp_buf_add_json_escaped(b, queue, strlen(queue));
    if (rc == 0)
        rc = sp_buf_adds(b, "\",\"type\":\"");
    if (rc == 0)
        rc = sp_buf_add_json_escaped(b, type, strlen(type));
    if (rc == 0)
        rc = sp_buf_addf(b, "\",\"at\":\"%s\"}\n\n", at);
    return rc;
}

int api_sse_format(const sp_event *ev, sp_buf *b)
{
    return api__event_text(&ev->id, ev->job, ev->state, ev->progress, ev->queue, ev->type,
                           ev->at_ms, b);
}

static bool api__wants(const api_sse_filter *f, const sp_event *ev)
{
    return (!f->job[0] || strcmp(f->job, ev->job) == 0) &&
           (!f->queue[0] || strcmp(f->queue, ev->queue) == 0) &&
           (!f->type[0] || strcmp(f->type, ev->type) == 0);
}

/* ---- streams ------------------------------------------------------------------------- */

/* Append to a stream's buffer (s->mu held). False (nothing added) when that would put
 * it past API_SSE_BUF_MAX unsent bytes, or out of memory. */
static bool api__append(api_sse_stream *s, const char *text, size_t n)
{
    if (s->off > 0 && s->off >= s->out.len / 2) {
        /* drop what was sent, so the buffer holds at most twice the unsent bytes */
        memmove(s->out.data, s->out.data + s->off, s->out.len - s->off);
        s->out.len -= s->off;
        s->out.data[s->out.len] = '\0';
        s->off = 0;
    }
    return s->out.len - s->off + n <= API_SSE_BUF_MAX && sp_buf_add(&s->out, text, n) == 0;
}

/* Mark s to be resumed (s->mu held): true when the caller must resume it (unlocked). */
static bool api__take_suspended(api_sse_stream *s)
{
    if (!s->suspended)
        return false;
    s->suspended = false;
    return true;
}

/* Resume the streams collected in list[0..n-1] (no lock held). */
static void api__resume_all(struct MHD_Connection **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        MHD_resume_connection(list[i]);
}

static void api__unlink(api_sse *h, api_sse_stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (h->streams == s)
        h->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void api__stream_free(api_sse_stream *s)
{
    if (s == NULL)
        return;
    api_sse *h = s->hub;
    pthread_mutex_lock(&h->mu);
    api__unlink(h, s);
    h->count--;
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_destroy(&s->mu);
    sp_buf_free(&s->out);
    sp_free(s);
}

api_sse_stream *api_sse_open(api_sse *h, struct MHD_Connection *conn, const api_sse_filter *f,
                             const sp_evid *resume, sp_evid *pos, sp_err *err)
{
    api_sse_stream *s = sp_calloc(1, sizeof *s);
    if (s == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    s->hub = h;
    s->conn = conn;
    s->f = *f;
    sp_buf_init(&s->out, SIZE_MAX); /* the limit is checked on each append (api__append) */
    pthread_mutex_init(&s->mu, NULL);
    char retry[32];
    int k = snprintf(retry, sizeof retry, "retry: %d\n\n", API_SSE_RETRY_MS);
    if (sp_buf_add(&s->out, retry, (size_t)k) < 0) {
        pthread_mutex_destroy(&s->mu);
        sp_free(s);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    s->head = s->out.len;
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (h->stopping)
        rc = sp_err_set(err, SP_ESHUTDOWN, "the server is shutting down");
    else if (h->count >= h->max_streams)
        rc = sp_err_set(err, SP_EFULL, "%zu event streams are open, the most this server "
                        "keeps (SPOOL_SSE_MAX_STREAMS)", h->count);
    else if (!h->ready)
        rc = sp_err_set(err, SP_EREDIS, "the event stream is not readable yet (Redis down?)");
    if (rc < 0) {
        pthread_mutex_unlock(&h->mu);
        pthread_mutex_destroy(&s->mu);
        sp_buf_free(&s->out);
        sp_free(s);
        return NULL;
    }
    *pos = h->last;
    if (resume) {
        s->cursor = *resume;
        s->live = false;
    } else {
        s->cursor = h->last;
        s->live = true;
    }
    s->next = h->streams;
    if (h->streams)
        h->streams->prev = s;
    h->streams = s;
    h->count++;
    pthread_mutex_unlock(&h->mu);
    return s;
}

int api_sse_prepend(api_sse_stream *s, const char *text, size_t n)
{
    pthread_mutex_lock(&s->mu);
    /* Nothing has been sent yet (off is 0), but the reader may have appended events
     * already: insert after the earlier prepends, before those. */
    sp_buf nb;
    sp_buf_init(&nb, SIZE_MAX);
    const char *old = s->out.data ? s->out.data : "";
    int rc = sp_buf_add(&nb, old, s->head);
    if (rc == 0)
        rc = sp_buf_add(&nb, text, n);
    if (rc == 0)
        rc = sp_buf_add(&nb, old + s->head, s->out.len - s->head);
    if (rc == 0) {
        sp_buf_free(&s->out);
        s->out = nb;
        s->head += n;
    } else {
        sp_buf_free(&nb);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void api_sse_gap_told(api_sse_stream *s, const sp_evid *oldest)
{
    s->gap_told = true;
    s->gap_oldest = *oldest;
}

int api_sse_gap_text(const sp_evid *oldest, sp_buf *b)
{
    char ids[SP_EVID_LEN];
    sp_evid_format(oldest, ids);
    return sp_buf_addf(b, "event: gap\ndata: {\"message\":\"events after the last one this "
                          "client saw were trimmed from the history; continuing from the "
                          "oldest kept\",\"oldest\":\"%s\"}\n\n",
                       ids);
}

void api_sse_end_after(api_sse_stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->ending = true;
    pthread_mutex_unlock(&s->mu);
}

void api_sse_cancel(api_sse_stream *s)
{
    api__stream_free(s);
}

/* ---- catching up ---------------------------------------------------------------------- */

static void api__tkey_dtor(void *p)
{
    sp_evstream_close(p);
}

sp_evstream *api_sse_thread_stream(api_sse *h, sp_err *err)
{
    sp_evstream *es = pthread_getspecific(h->tkey);
    if (es)
        return es;
    es = sp_evstream_open(h->url, h->prefix, err);
    if (es && pthread_setspecific(h->tkey, es) != 0) {
        sp_evstream_close(es);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    return es;
}

/* One catch-up step for a stream that is not live (on its HTTP thread, buffer empty):
 * read a batch after its cursor into its buffer; join the live streams once it has
 * read as far as the reader has fanned out. */
static void api__catch_up(api_sse_stream *s)
{
    api_sse *h = s->hub;
    sp_err err;
    sp_evbatch b;
    sp_evbatch_init(&b);
    sp_evstream *es = api_sse_thread_stream(h, &err);
    sp_buf text;
    sp_buf_init(&text, SIZE_MAX);
    /* A catch-up slower than the writers can be overtaken by trimming: say so. */
    sp_evid oldest;
    int n = es ? sp_evstream_gap(es, &s->cursor, &oldest, &err) : err.code;
    if (n == 1 && (!s->gap_told || sp_evid_cmp_entry(&oldest, &s->gap_oldest) != 0)) {
        api_sse_gap_told(s, &oldest);
        api_sse_gap_text(&oldest, &text);
    }
    if (n >= 0)
        n = sp_evstream_range(es, &s->cursor, API_SSE_CATCHUP_MAX, &b, &err);
    if (n < 0) {
        sp_buf_free(&text);
        sp_warn(NULL, "event stream: a resuming client's catch-up failed: %s", err.msg);
        pthread_mutex_lock(&s->mu);
        s->ending = true; /* it will come back with its Last-Event-ID */
        pthread_mutex_unlock(&s->mu);
        return;
    }
    bool end = false;
    for (size_t i = 0; i < b.n && !end; i++) {
        if (!api__wants(&s->f, &b.ev[i]))
            continue;
        if (api_sse_format(&b.ev[i], &text) < 0)
            break;
        end = s->f.job[0] && sp_state_terminal(b.ev[i].state);
    }
    if (n > 0)
        s->cursor = b.last;
    pthread_mutex_lock(&h->mu);
    /* Caught up: Redis has nothing after the cursor, or no more than the reader fanned
     * out. With nothing after it the stream joins at once: at the reader's position when
     * Redis holds less than the reader saw (entries lost to a crash or a failover), rather
     * than reading empty ranges forever; at its own cursor when that is ahead of the
     * reader (the reader has yet to fan out what the client saw, or the id is made up),
     * so the fan-out skips what the client has. */
    if (!end && (size_t)n < API_SSE_CATCHUP_MAX &&
        (n == 0 || sp_evid_cmp_entry(&h->last, &s->cursor) <= 0)) {
        if (sp_evid_cmp_entry(&h->last, &s->cursor) > 0)
            s->cursor = h->last;
        s->cursor.idx = -1;
        s->live = true; /* from here the reader brings what comes after cursor */
    }
    pthread_mutex_lock(&s->mu);
    pthread_mutex_unlock(&h->mu);
    if (text.len > 0 && sp_buf_add(&s->out, text.data, text.len) < 0)
        s->dropped = true;
    if (end)
        s->ending = true;
    pthread_mutex_unlock(&s->mu);
    sp_buf_free(&text);
    sp_evbatch_free(&b);
}

/* ---- the response ---------------------------------------------------------------------- */

static ssize_t api__read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    api_sse_stream *s = cls;
    int steps = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        if (s->dropped) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->out.len > s->off) {
            size_t n = s->out.len - s->off;
            if (n > max)
                n = max;
            memcpy(buf, s->out.data + s->off, n);
            s->off += n;
            if (s->off == s->out.len) {
                /* all sent: an idle stream keeps a small buffer, not its largest */
                if (s->out.cap > API_SSE_KEEP)
                    sp_buf_free(&s->out);
                else
                    sp_buf_reset(&s->out);
                s->off = 0;
            }
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)n;
        }
        if (s->ending) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        pthread_mutex_unlock(&s->mu);
        /* Live or not is the hub's to say (a stream only becomes not live with unsent
         * bytes, seen above; it becomes live in api__catch_up, on this thread): a
         * stream that is not live reads on. */
        if (!atomic_load(&s->live)) {
            if (steps++ == API_SSE_CATCHUP_STEPS) {
                /* A filter that matched nothing in a long stretch: hand the thread to
                 * other connections (an empty comment) and come back. */
                static const char empty[] = ":\n\n";
                pthread_mutex_lock(&s->mu);
                sp_buf_add(&s->out, empty, sizeof empty - 1);
                pthread_mutex_unlock(&s->mu);
                continue;
            }
            api__catch_up(s);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        if (s->out.len > s->off || s->ending || s->dropped) {
            pthread_mutex_unlock(&s->mu);
            continue; /* something came meanwhile */
        }
        s->suspended = true;
        MHD_suspend_connection(s->conn);
        pthread_mutex_unlock(&s->mu);
        return 0; /* called again once resumed */
    }
}

static void api__response_done(void *cls)
{
    api__stream_free(cls);
}

struct MHD_Response *api_sse_response(api_sse_stream *s)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, api__read, s, api__response_done);
    if (resp == NULL) {
        api__stream_free(s);
        return NULL;
    }
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream") !=
            MHD_YES ||
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") != MHD_YES ||
        MHD_add_response_header(resp, "X-Accel-Buffering", "no") != MHD_YES) {
        MHD_destroy_response(resp); /* frees s */
        return NULL;
    }
    return resp;
}

/* ---- the reader thread --------------------------------------------------------------- */

/* Fan a batch out to the live streams, then advance the position to b->last. */
static void api__fan_out(api_sse *h, const sp_evbatch *b)
{
    struct MHD_Connection *wake[64];
    size_t nwake = 0;
    sp_buf text;
    sp_buf_init(&text, SIZE_MAX);
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < b->n; i++) {
        const sp_event *ev = &b->ev[i];
        sp_buf_reset(&text);
        bool formatted = false;
        for (api_sse_stream *s = h->streams; s; s = s->next) {
            if (!s->live || sp_evid_cmp(&ev->id, &s->cursor) <= 0 || !api__wants(&s->f, ev))
                continue;
            if (!formatted && api_sse_format(ev, &text) < 0)
                break;
            formatted = true;
            pthread_mutex_lock(&s->mu);
            if (s->ending || s->dropped) {
                /* nothing more for it */
            } else if (api__append(s, text.data, text.len)) {
                s->cursor = ev->id;
                if (s->f.job[0] && sp_state_terminal(ev->state))
                    s->ending = true;
            } else {
                /* Its client is API_SSE_BUF_MAX behind: it leaves the live streams and
                 * reads on from Redis at its own pace, after the last event it got. A
                 * client that reads nothing at all is closed by the idle timeout. */
                s->live = false;
                h->behind++;
                sp_debug(NULL, "event stream: a client fell %d KiB behind; it catches up "
                         "from Redis", API_SSE_BUF_MAX / 1024);
            }
            bool w = api__take_suspended(s);
            pthread_mutex_unlock(&s->mu);
            if (w) {
                if (nwake == sizeof wake / sizeof *wake) {
                    /* still suspended: nothing can close it while h->mu is held */
                    pthread_mutex_unlock(&h->mu);
                    api__resume_all(wake, nwake);
                    nwake = 0;
                    pthread_mutex_lock(&h->mu);
                    /* the list may have changed: s is still linked (it was suspended
                     * until now, and only its own close unlinks it), go on from it */
                }
                wake[nwake++] = s->conn;
            }
        }
    }
    for (api_sse_stream *s = h->streams; s; s = s->next) {
        /* Only forward: a catch-up may have joined with a cursor past this batch. */
        if (s->live && sp_evid_cmp_entry(&b->last, &s->cursor) > 0)
            s->cursor = b->last;
    }
    h->last = b->last;
    pthread_mutex_unlock(&h->mu);
    api__resume_all(wake, nwake);
    sp_buf_free(&text);
}

/* Call fn on every stream (h->mu held) and resume those it returns true for (s->mu held
 * in fn). */
static void api__each_resume(api_sse *h, bool (*fn)(api_sse_stream *s, void *ud), void *ud)
{
    pthread_mutex_lock(&h->mu);
    size_t n = 0;
    struct MHD_Connection **wake = sp_calloc(h->count + 1, sizeof *wake);
    for (api_sse_stream *s = h->streams; s; s = s->next) {
        pthread_mutex_lock(&s->mu);
        bool want = fn(s, ud);
        /* out of memory for the list: leave it suspended (its next event resumes it) */
        bool w = want && wake && api__take_suspended(s);
        pthread_mutex_unlock(&s->mu);
        if (w)
            wake[n++] = s->conn;
    }
    pthread_mutex_unlock(&h->mu);
    api__resume_all(wake, n);
    sp_free(wake);
}

static bool api__beat(api_sse_stream *s, void *ud)
{
    (void)ud;
    static const char ping[] = ": ping\n\n";
    /* a full buffer has something to send already */
    return s->live && !s->ending && !s->dropped && api__append(s, ping, sizeof ping - 1);
}

static bool api__end(api_sse_stream *s, void *ud)
{
    (void)ud;
    s->ending = true;
    return true;
}

static void *api__reader(void *arg)
{
    api_sse *h = arg;
    sp_err err;
    sp_evstream *es = h->es;
    pthread_mutex_lock(&h->mu);
    sp_evid pos = h->last;
    bool have_pos = h->ready, warned = false;
    pthread_mutex_unlock(&h->mu);
    int64_t next_beat = sp_mono_ms() + h->heartbeat_ms;
    sp_evbatch b;
    sp_evbatch_init(&b);
    for (;;) {
        pthread_mutex_lock(&h->mu);
        bool stopping = h->stopping;
        pthread_mutex_unlock(&h->mu);
        if (stopping)
            break;
        int rc;
        int64_t now = sp_mono_ms();
        if (!have_pos) {
            rc = sp_evstream_tail(es, &pos, &err);
            if (rc == 0) {
                have_pos = true;
                pthread_mutex_lock(&h->mu);
                h->last = pos;
                h->ready = true;
                pthread_mutex_unlock(&h->mu);
            }
        } else {
            int64_t wait = next_beat - now;
            wait = wait < 1 ? 1 : wait > API_SSE_BLOCK_MS ? API_SSE_BLOCK_MS : wait;
            rc = sp_evstream_read(es, &pos, wait, API_SSE_READ_MAX, &b, &err);
            if (rc > 0) {
                api__fan_out(h, &b);
                pos = b.last;
            }
            sp_evbatch_free(&b);
        }
        if (rc < 0) {
            if (!warned)
                sp_warn(NULL, "event stream: cannot read it (%s); retrying", err.msg);
            warned = true;
            sp_sleep_ms(API_SSE_RETRY_DELAY_MS, NULL);
        } else if (warned) {
            sp_info(NULL, "event stream: reading again");
            warned = false;
        }
        now = sp_mono_ms();
        if (now >= next_beat) {
            api__each_resume(h, api__beat, NULL);
            next_beat = now + h->heartbeat_ms;
        }
    }
    sp_evbatch_free(&b);
    return NULL;
}

/* ---- start and stop --------------------------------------------------------------------- */

api_sse *api_sse_start(const char *url, const char *prefix, size_t max_streams,
                       int64_t heartbeat_ms, sp_err *err)
{
    api_sse *h = sp_calloc(1, sizeof *h);
    if (h == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (snprintf(h->url, sizeof h->url, "%s", url) >= (int)sizeof h->url ||
        snprintf(h->prefix, sizeof h->prefix, "%s", prefix) >= (int)sizeof h->prefix) {
        sp_free(h);
        sp_err_set(err, SP_EINVAL, "the Redis URL or key prefix is too long");
        return NULL;
    }
    h->max_streams = max_streams;
    h->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 15000;
    h->last.idx = -1;
    if ((h->es = sp_evstream_open(url, prefix, err)) == NULL) {
        sp_free(h);
        return NULL;
    }
    /* Know the position before the server listens, so the first clients find the hub
     * ready; when Redis is not there yet, the thread keeps trying. */
    sp_err e2;
    if (sp_evstream_tail(h->es, &h->last, &e2) == 0)
        h->ready = true;
    else
        sp_warn(NULL, "event stream: cannot read it yet (%s); retrying", e2.msg);
    pthread_mutex_init(&h->mu, NULL);
    if (pthread_key_create(&h->tkey, api__tkey_dtor) != 0) {
        sp_evstream_close(h->es);
        pthread_mutex_destroy(&h->mu);
        sp_free(h);
        sp_err_set(err, SP_ENOMEM, "cannot create a thread key");
        return NULL;
    }
    if (pthread_create(&h->thread, NULL, api__reader, h) != 0) {
        sp_evstream_close(h->es);
        pthread_key_delete(h->tkey);
        pthread_mutex_destroy(&h->mu);
        sp_free(h);
        sp_err_set(err, SP_ENOMEM, "cannot start the event stream thread");
        return NULL;
    }
    h->thread_started = true;
    return h;
}

void api_sse_counts(api_sse *h, size_t *open, uint64_t *behind)
{
    *open = 0;
    *behind = 0;
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    *open = h->count;
    *behind = h->behind;
    pthread_mutex_unlock(&h->mu);
}

void api_sse_stop(api_sse *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    bool was = h->stopping;
    h->stopping = true;
    pthread_mutex_unlock(&h->mu);
    api__each_resume(h, api__end, NULL);
    if (!was && h->thread_started) {
        pthread_join(h->thread, NULL);
        h->thread_started = false;
    }
}

void api_sse_free(api_sse *h)
{
    if (h == NULL)
        return;
    api_sse_stop(h);
    /* HTTP threads closed their handles as they ended (the key's destructor) */
    pthread_key_delete(h->tkey);
    sp_evstream_close(h->es);
    pthread_mutex_destroy(&h->mu);
    sp_free(h);
}

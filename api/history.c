/* history.c - the queues' sampled history (see history.h). */
#include "history.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/ticker.h"
#include "spool/util.h"

typedef struct api__sample {
    int64_t at;
    int64_t ready, running, delayed, dead;
    int64_t enqueued, succeeded, failed, retried, cancelled;
} api__sample;

typedef struct api__ring {
    char name[SP_QUEUE_MAX + 1];
    api__sample *s; /* cap samples; the oldest at (head + cap - len) % cap */
    size_t head, len;
} api__ring;

struct api_history {
    sp_ticker *ticker;
    char url[1024];
    char prefix[128];
    int64_t interval_ms;
    size_t cap; /* samples kept per queue */
    sp_queue *q; /* the thread's own handle */
    sp_queue_stat *st;
    bool warned; /* a failed sample is logged once until one works again */
    pthread_mutex_t mu; /* guards rings and nrings */
    api__ring rings[API_HISTORY_QUEUES];
    size_t nrings;
};

static api__ring *api__ring_for(api_history *h, const char *name)
{
    for (size_t i = 0; i < h->nrings; i++) {
        if (strcmp(h->rings[i].name, name) == 0)
            return &h->rings[i];
    }
    if (h->nrings == API_HISTORY_QUEUES)
        return NULL;
    api__ring *r = &h->rings[h->nrings];
    r->s = sp_calloc(h->cap, sizeof *r->s);
    if (r->s == NULL)
        return NULL;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->head = r->len = 0;
    h->nrings++;
    return r;
}

void api_history_add(api_history *h, int64_t at_ms, const sp_queue_stat *st, size_t n)
{
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        api__ring *r = api__ring_for(h, st[i].name);
        if (r == NULL)
            continue;
        r->s[r->head] = (api__sample){at_ms,          st[i].ready,     st[i].running,
                                      st[i].delayed,  st[i].dead,      st[i].enqueued,
                                      st[i].succeeded, st[i].failed,   st[i].retried,
                                      st[i].cancelled};
        r->head = (r->head + 1) % h->cap;
        if (r->len < h->cap)
            r->len++;
    }
    pthread_mutex_unlock(&h->mu);
}

static void api__history_tick(void *ud)
{
    api_history *h = ud;
    sp_err err;
    size_t n = 0;
    if (h->q == NULL)
        h->q = sp_queue_open(h->url, h->prefix, &err);
    int rc = h->q ? sp_queue_stats(h->q, h->st, API_HISTORY_QUEUES, &n, &err) : err.code;
    if (rc < 0) {
        if (!h->warned)
            sp_warn(NULL, "queue history: cannot sample the queues: %s", err.msg);
        h->warned = true;
        return;
    }
    h->warned = false;
    api_history_add(h, sp_now_ms(), h->st, n);
}

api_history *api_history_start(const char *url, const char *prefix, int64_t interval_ms,
                               sp_err *err)
{
    api_history *h = sp_calloc(1, sizeof *h);
    if (h)
        h->st = sp_calloc(API_HISTORY_QUEUES, sizeof *h->st);
    if (h == NULL || h->st == NULL) {
        if (h)
            sp_free(h);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(h->url, sizeof h->url, "%s", url ? url : "");
    snprintf(h->prefix, sizeof h->prefix, "%s", prefix ? prefix : "");
    h->interval_ms = interval_ms > 0 ? interval_ms : 5000;
    /* one more than the window holds, so the first kept sample is a base for the rest */
    h->cap = (size_t)(API_HISTORY_WINDOW_MS / h->interval_ms) + 1;
    pthread_mutex_init(&h->mu, NULL);
    if (url && (h->ticker = sp_ticker_start(h->interval_ms, api__history_tick, h, err)) == NULL) {
        api_history_stop(h);
        return NULL;
    }
    return h;
}

void api_history_stop(api_history *h)
{
    if (h == NULL)
        return;
    sp_ticker_stop(h->ticker);
    sp_queue_close(h->q);
    for (size_t i = 0; i < h->nrings; i++)
        sp_free(h->rings[i].s);
    pthread_mutex_destroy(&h->mu);
    sp_free(h->st);
    sp_free(h);
}

/* b minus a for a counter, 0 when it went down (the queue's keys were reset). */
static int64_t api__delta(int64_t a, int64_t b)
{
    return b >= a ? b - a : 0;
}

int api_history_render(api_history *h, const char *queue, sp_buf *out)
{
    int rc = sp_buf_addf(out, "{\"queue\":\"%s\",\"interval_ms\":%lld,\"window_ms\":%d,\"samples\":[",
                         queue, (long long)h->interval_ms, API_HISTORY_WINDOW_MS);
    pthread_mutex_lock(&h->mu);
    const api__ring *r = NULL;
    for (size_t i = 0; i < h->nrings && r == NULL; i++)
        if (strcmp(h->rings[i].name, queue) == 0)
            r = &h->rings[i];
    size_t len = r ? r->len : 0;
    for (size_t i = 1; i < len && rc == 0; i++) {
        const api__sample *a = &r->s[(r->head + h->cap - len + i - 1) % h->cap];
        const api__sample *b = &r->s[(r->head + h->cap - len + i) % h->cap];
        char t[SP_TIME_LEN];
        sp_format_time(b->at, t);
        rc = sp_buf_addf(out,
                         "%s{\"at\":\"%s\",\"ready\":%lld,\"running\":%lld,\"delayed\":%lld,"
                         "\"dead\":%lld,\"enqueued\":%lld,\"succeeded\":%lld,\"failed\":%lld,"
                         "\"retried\":%lld,\"cancelled\":%lld}",
                         i > 1 ? "," : "", t, (long long)b->ready, (long long)b->running,
                         (long long)b->delayed, (long long)b->dead,
                         (long long)api__delta(a->enqueued, b->enqueued),
                         (long long)api__delta(a->succeeded, b->succeeded),
                         (long long)api__delta(a->failed, b->failed),
                         (long long)api__delta(a->retried, b->retried),
                         (long long)api__delta(a->cancelled, b->cancelled));
    }
    pthread_mutex_unlock(&h->mu);
    if (rc == 0)
        rc = sp_buf_adds(out, "]}\n");
    return rc;
}

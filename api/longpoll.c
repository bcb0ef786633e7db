/* longpoll.c - the long-poll event thread (see longpoll.h). */
#include "longpoll.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/queue.h"

#define API_LP_BUCKETS 1024
#define API_LP_RECHECK_MS 100 /* first wake after registering */
#define API_LP_POLL_MS 1000   /* wake period while the subscriber is down */

struct api_lp {
    pthread_t thread;
    pthread_mutex_t mu;
    int wake_fd;
    bool stopping;        /* under mu */
    api_waiter *pending;  /* under mu: registered but not yet seen by the thread */
    void (*wake)(api_waiter *w);
    _Atomic size_t count;
    /* Owned by the thread. */
    sp_events *ev;
    api_waiter *buckets[API_LP_BUCKETS];
    api_waiter **heap;
    size_t nheap, capheap;
};

static size_t api__bucket(const char *id)
{
    uint32_t h = 2166136261u;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % API_LP_BUCKETS;
}

/* ---- the deadline heap ---------------------------------------------------------- */

static void api__heap_set(api_lp *lp, size_t i, api_waiter *w)
{
    lp->heap[i] = w;
    w->heap_pos = i;
}

static void api__heap_up(api_lp *lp, size_t i)
{
    api_waiter *w = lp->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (lp->heap[parent]->due <= w->due)
            break;
        api__heap_set(lp, i, lp->heap[parent]);
        i = parent;
    }
    api__heap_set(lp, i, w);
}

static void api__heap_down(api_lp *lp, size_t i)
{
    api_waiter *w = lp->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= lp->nheap)
            break;
        if (c + 1 < lp->nheap && lp->heap[c + 1]->due < lp->heap[c]->due)
            c++;
        if (w->due <= lp->heap[c]->due)
            break;
        api__heap_set(lp, i, lp->heap[c]);
        i = c;
    }
    api__heap_set(lp, i, w);
}

static int api__heap_push(api_lp *lp, api_waiter *w)
{
    if (lp->nheap == lp->capheap) {
        size_t cap = lp->capheap ? lp->capheap * 2 : 256;
        api_waiter **h = sp_realloc(lp->heap, cap * sizeof *h);
        if (h == NULL)
            return SP_ENOMEM;
        lp->heap = h;
        lp->capheap = cap;
    }
    api__heap_set(lp, lp->nheap++, w);
    api__heap_up(lp, lp->nheap - 1);
    return 0;
}

static void api__heap_remove(api_lp *lp, api_waiter *w)
{
    size_t i = w->heap_pos;
    api_waiter *last = lp->heap[--lp->nheap];
    if (i == lp->nheap)
        return;
    api__heap_set(lp, i, last);
    api__heap_down(lp, i);
    api__heap_up(lp, last->heap_pos);
}

/* ---- registration --------------------------------------------------------------- */

/* True when another waiter on id is subscribed. */
static bool api__id_watched(api_lp *lp, const char *id, const api_waiter *except)
{
    for (api_waiter *o = lp->buckets[api__bucket(id)]; o; o = o->next) {
        if (o != except && o->watching && strcmp(o->id, id) == 0)
            return true;
    }
    return false;
}

static void api__unlink(api_lp *lp, api_waiter *w)
{
    api_waiter **pp = &lp->buckets[api__bucket(w->id)];
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp)
        *pp = w->next;
    w->next = NULL;
    api__heap_remove(lp, w);
    if (w->watching && !api__id_watched(lp, w->id, NULL) && sp_events_fd(lp->ev) >= 0) {
        sp_err err;
        if (sp_events_unwatch(lp->ev, w->id, &err) < 0)
            sp_debug(NULL, "long-poll: unsubscribe failed: %s", err.msg);
    }
    w->watching = false;
}

/* Unregister w and hand it back through the wake function. */
static void api__fire(api_lp *lp, api_waiter *w)
{
    api__unlink(lp, w);
    atomic_fetch_sub(&lp->count, 1);
    lp->wake(w);
}

static void api__fire_all(api_lp *lp)
{
    while (lp->nheap > 0)
        api__fire(lp, lp->heap[0]);
}

static void api__add(api_lp *lp, api_waiter *w, int64_t now)
{
    w->due = w->deadline_ms;
    if (w->recheck && now + API_LP_RECHECK_MS < w->due)
        w->due = now + API_LP_RECHECK_MS;
    w->watching = false;
    if (api__id_watched(lp, w->id, NULL)) {
        w->watching = true;
    } else {
        sp_err err;
        if (sp_events_watch(lp->ev, w->id, &err) == 0)
            w->watching = true;
        else
            sp_debug(NULL, "long-poll: subscribe failed, polling instead: %s", err.msg);
    }
    if (!w->watching && now + API_LP_POLL_MS < w->due)
        w->due = now + API_LP_POLL_MS;
    size_t b = api__bucket(w->id);
    if (api__heap_push(lp, w) < 0) {
        atomic_fetch_sub(&lp->count, 1);
        lp->wake(w); /* out of memory: let the handler answer now */
        return;
    }
    w->next = lp->buckets[b];
    lp->buckets[b] = w;
}

/* The subscriber failed: every subscription is gone. Wake everyone so each handler
 * reads its job again and registers again (subscribing on a new connection). */
static void api__events_lost(api_lp *lp, const sp_err *err)
{
    sp_warn(NULL, "long-poll: job events connection lost (%s); waiters will poll", err->msg);
    for (size_t b = 0; b < API_LP_BUCKETS; b++) {
        for (api_waiter *w = lp->buckets[b]; w; w = w->next)
            w->watching = false;
    }
    api__fire_all(lp);
}

static void *api__lp_main(void *arg)
{
    api_lp *lp = arg;
    for (;;) {
        pthread_mutex_lock(&lp->mu);
        api_waiter *fresh = lp->pending;
        lp->pending = NULL;
        bool stopping = lp->stopping;
        pthread_mutex_unlock(&lp->mu);
        int64_t now = sp_mono_ms();
        while (fresh) {
            api_waiter *w = fresh;
            fresh = w->next;
            w->next = NULL;
            if (stopping) {
                atomic_fetch_sub(&lp->count, 1);
                lp->wake(w);
            } else {
                api__add(lp, w, now);
            }
        }
        if (stopping) {
            api__fire_all(lp);
            break;
        }
        struct pollfd pfd[2] = {{lp->wake_fd, POLLIN, 0}, {sp_events_fd(lp->ev), POLLIN, 0}};
        int timeout = -1;
        if (lp->nheap > 0) {
            int64_t left = lp->heap[0]->due - now;
            timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
        }
        int n = poll(pfd, pfd[1].fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            sp_error(NULL, "long-poll: poll: %s", strerror(errno));
            sp_sleep_ms(100, NULL);
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            uint64_t v;
            if (read(lp->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
                sp_debug(NULL, "long-poll: wake read: %s", strerror(errno));
        }
        if (n > 0 && pfd[1].fd >= 0 && pfd[1].revents) {
            for (;;) {
                char id[SP_ID_LEN + 1], event[32];
                sp_err err;
                int rc = sp_events_read(lp->ev, id, event, &err);
                if (rc == 0)
                    break;
                if (rc < 0) {
                    api__events_lost(lp, &err);
                    break;
                }
                api_waiter **pp = &lp->buckets[api__bucket(id)];
                while (*pp) {
                    api_waiter *w = *pp;
                    if (strcmp(w->id, id) == 0)
                        api__fire(lp, w); /* unlinks w: *pp is now the next one */
                    else
                        pp = &w->next;
                }
            }
        }
        now = sp_mono_ms();
        while (lp->nheap > 0 && lp->heap[0]->due <= now)
            api__fire(lp, lp->heap[0]);
    }
    return NULL;
}

api_lp *api_lp_start(const char *url, const char *prefix, void (*wake)(api_waiter *w),
                     sp_err *err)
{
    api_lp *lp = sp_calloc(1, sizeof *lp);
    if (lp == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    lp->wake = wake;
    lp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->wake_fd < 0) {
        sp_err_set(err, SP_EIO, "eventfd: %s", strerror(errno));
        sp_free(lp);
        return NULL;
    }
    lp->ev = sp_events_open(url, prefix, err);
    if (lp->ev == NULL) {
        close(lp->wake_fd);
        sp_free(lp);
        return NULL;
    }
    pthread_mutex_init(&lp->mu, NULL);
    if (pthread_create(&lp->thread, NULL, api__lp_main, lp) != 0) {
        sp_err_set(err, SP_ENOMEM, "cannot start the long-poll thread");
        pthread_mutex_destroy(&lp->mu);
        sp_events_close(lp->ev);
        close(lp->wake_fd);
        sp_free(lp);
        return NULL;
    }
    return lp;
}

static void api__signal(api_lp *lp)
{
    uint64_t one = 1;
    if (write(lp->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        sp_warn(NULL, "long-poll: wake write: %s", strerror(errno));
}

int api_lp_wait(api_lp *lp, api_waiter *w)
{
    pthread_mutex_lock(&lp->mu);
    if (lp->stopping) {
        pthread_mutex_unlock(&lp->mu);
        return SP_ESHUTDOWN;
    }
    w->next = lp->pending;
    lp->pending = w;
    atomic_fetch_add(&lp->count, 1);
    pthread_mutex_unlock(&lp->mu);
    api__signal(lp);
    return 0;
}

size_t api_lp_waiting(api_lp *lp)
{
    return lp ? atomic_load(&lp->count) : 0;
}

void api_lp_stop(api_lp *lp)
{
    if (lp == NULL)
        return;
    pthread_mutex_lock(&lp->mu);
    bool was = lp->stopping;
    lp->stopping = true;
    pthread_mutex_unlock(&lp->mu);
    if (was)
        return;
    api__signal(lp);
    pthread_join(lp->thread, NULL);
}

void api_lp_free(api_lp *lp)
{
    if (lp == NULL)
        return;
    api_lp_stop(lp);
    sp_events_close(lp->ev);
    sp_free(lp->heap);
    pthread_mutex_destroy(&lp->mu);
    close(lp->wake_fd);
    sp_free(lp);
}

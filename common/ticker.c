/* ticker.c - a periodic call on a thread of its own (see spool/ticker.h). */
#include "spool/ticker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "spool/alloc.h"

struct sp_ticker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond; /* on CLOCK_MONOTONIC */
    bool stop;
    int64_t period_ms;
    void (*fn)(void *ud);
    void *ud;
};

static void *sp__ticker_main(void *arg)
{
    sp_ticker *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += t->period_ms / 1000;
        ts.tv_nsec += (t->period_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!t->stop && pthread_cond_timedwait(&t->cond, &t->mu, &ts) != ETIMEDOUT)
            ;
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->mu);
        t->fn(t->ud);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

sp_ticker *sp_ticker_start(int64_t period_ms, void (*fn)(void *ud), void *ud, sp_err *err)
{
    sp_ticker *t = sp_calloc(1, sizeof *t);
    if (t == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    t->period_ms = period_ms > 0 ? period_ms : 1;
    t->fn = fn;
    t->ud = ud;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->thread, NULL, sp__ticker_main, t) != 0) {
        sp_err_set(err, SP_ENOMEM, "cannot start a thread");
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->mu);
        sp_free(t);
        return NULL;
    }
    return t;
}

void sp_ticker_stop(sp_ticker *t)
{
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
    sp_free(t);
}

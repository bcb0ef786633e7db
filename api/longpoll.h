/* longpoll.h - one event thread for every `GET /v1/jobs/{id}?wait=N`: it owns an
 * sp_events subscriber, watches the jobs clients wait on, and wakes a waiter when its
 * job changes, when its deadline passes, or once shortly after it registered (a change
 * between the handler's read and the subscription would otherwise be missed). Waking
 * calls the wake function given at start (the server resumes the suspended HTTP
 * connection); the woken handler reads the job again and either answers or registers
 * again. If the subscriber cannot reach Redis, waiters are woken every second to poll. */
#ifndef SPOOL_API_LONGPOLL_H
#define SPOOL_API_LONGPOLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/util.h"

typedef struct api_waiter {
    /* Set by the caller before api_lp_wait. */
    void *ud;                 /* for the wake function (the connection) */
    char id[SP_ID_LEN + 1];   /* the job */
    int64_t deadline_ms;      /* sp_mono_ms() time to give up waiting */
    bool recheck;             /* wake once soon after registering */
    /* Owned by the event thread while registered. */
    struct api_waiter *next;
    size_t heap_pos;
    int64_t due;
    bool watching;
} api_waiter;

typedef struct api_lp api_lp;

/* Start the event thread for the Redis at url with key prefix. wake(w) is called on
 * the event thread after w has been unregistered (the thread no longer touches it).
 * NULL with err set on failure. */
api_lp *api_lp_start(const char *url, const char *prefix, void (*wake)(api_waiter *w),
                     sp_err *err);

/* Register w. Returns 0, or SP_ESHUTDOWN when the thread is stopping (w is not
 * registered and will not be woken: the caller answers itself). */
int api_lp_wait(api_lp *lp, api_waiter *w);

/* Number of registered waiters. */
size_t api_lp_waiting(api_lp *lp);

/* Wake every waiter and stop the thread; later api_lp_wait calls fail with
 * SP_ESHUTDOWN. Idempotent; accepts NULL. */
void api_lp_stop(api_lp *lp);

/* Stop (if needed) and free. Accepts NULL. */
void api_lp_free(api_lp *lp);

#endif

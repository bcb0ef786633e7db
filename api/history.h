/* history.h - the queues' recent history for the dashboard's chart, kept in this
 * process's memory: a thread samples every queue's depths and counters (one
 * sp_queue_stats call, as GET /v1/queues makes) every interval and keeps the last 30
 * minutes of samples per queue in a ring. The workers do no extra Redis work per job
 * for it: throughput and failures are the differences of the counters they keep
 * anyway. Each API process keeps its own history, from its start. */
#ifndef SPOOL_API_HISTORY_H
#define SPOOL_API_HISTORY_H

#include <stdint.h>

#include "spool/buf.h"
#include "spool/err.h"
#include "spool/queue.h"

#define API_HISTORY_WINDOW_MS (30 * 60 * 1000)
#define API_HISTORY_QUEUES 64 /* queues followed; more are left out (sorted by name) */

typedef struct api_history api_history;

/* Start sampling every interval_ms (the first sample one interval from now). NULL
 * with err set when the thread cannot start. Stop with api_history_stop. */
api_history *api_history_start(const char *url, const char *prefix, int64_t interval_ms,
                               sp_err *err);

/* Stop the thread and free. Accepts NULL. */
void api_history_stop(api_history *h);

/* Record one sample taken at at_ms (wall clock) from st[0..n-1]. Used by the thread
 * and by tests. */
void api_history_add(api_history *h, int64_t at_ms, const sp_queue_stat *st, size_t n);

/* Append queue's history as JSON to out: {"queue","interval_ms","window_ms",
 * "samples":[{"at","ready","running","delayed","dead","enqueued","succeeded","failed",
 * "retried","cancelled"}...]}, oldest first, where the depths are as sampled and the
 * counts are what happened since the previous sample (the first sample of a queue
 * only sets the base). A queue never sampled has no samples. 0 or SP_ENOMEM/SP_ETOOBIG
 * (the buffer's limit). */
int api_history_render(api_history *h, const char *queue, sp_buf *out);

#endif

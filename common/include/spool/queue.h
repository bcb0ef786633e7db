/* queue.h - the Redis job queue: producer, admin, consumer and maintenance sides.
 *
 * Delivery is at least once, effectively once: taking a job and starting its lease is
 * atomic, workers renew their lease while they work, finishing is fenced by the lease
 * token, and a lease that runs out sends the job back to its queue. Every state change
 * is one Lua script that checks the state it expects first. See DESIGN.md.
 *
 * Handles are not thread-safe: use one sp_queue or sp_consumer per thread. Every call
 * that talks to Redis returns SP_EREDIS when Redis is unreachable (the next call
 * reconnects), never crashes, and leaves Redis unchanged when it fails. */
#ifndef SPOOL_QUEUE_H
#define SPOOL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/job.h"

typedef struct sp_queue sp_queue;

/* Open a handle on the Redis at url, with every key prefixed by prefix (e.g.
 * "spool:"). Connects lazily. Returns NULL with err set for a bad URL or prefix.
 * Close with sp_queue_close. */
sp_queue *sp_queue_open(const char *url, const char *prefix, sp_err *err);
void sp_queue_close(sp_queue *q); /* accepts NULL */

/* Round trip to Redis. 0 or SP_EREDIS. */
int sp_queue_ping(sp_queue *q, sp_err *err);

/* ---- producing ---------------------------------------------------------------- */

typedef struct sp_enqueue {
    const char *id;            /* from sp_id_new */
    const char *type;          /* e.g. "video.transcode" */
    const char *queue;         /* from the routing table */
    int64_t max_attempts;      /* >= 1 */
    int64_t retry_base_ms;
    int64_t retry_cap_ms;
    bool high_priority;        /* jump to the front of the queue */
    const char *params_json;   /* JSON object or NULL */
    const char *input_json;    /* JSON object or NULL */
    const char *idem_key;      /* client's Idempotency-Key or NULL */
    const char *fingerprint;   /* digest of the request, required with idem_key */
    int64_t queue_limit;       /* reject past this many ready jobs; 0: no limit */
    int64_t idem_ttl_ms;       /* how long the idempotency key is remembered */
    int64_t created_at;        /* ms since the epoch; 0: now, by this host's clock */
    const char *callback_url;  /* where the job's end is POSTed (a webhook), or NULL */
    int64_t callback_attempts; /* attempts of that delivery; 0: 12 */
    int64_t run_at_ms;         /* > 0: scheduled until then (ms since the epoch) */
    int64_t delay_ms;          /* > 0: scheduled until this long from now by Redis's clock
                                * (run_at_ms wins when both are set); a due time already
                                * past queues the job at once */
    bool new_id;               /* refuse an id that names a job already (a derived id, not
                                * sp_id_new's): answered as an idempotent repeat */
} sp_enqueue;

/* Record the job and queue it in one step.
 * Returns 0 (created), 1 (an earlier request with the same idempotency key and the
 * same fingerprint created job existing_id; or, with new_id, a job with this id exists
 * and existing_id is the id: nothing changed), SP_ECONFLICT (same key, different
 * request; existing_id set), SP_EFULL (queue at its limit), or an error. */
int sp_queue_enqueue(sp_queue *q, const sp_enqueue *e, char existing_id[SP_ID_LEN + 1],
                     sp_err *err);

/* Whether an idempotency key is known: 1 with existing_id filled when a job was
 * created with it (and the key has not expired), 0 when not, or an error. Lets a
 * caller accept a retried request that a full queue would otherwise refuse. */
int sp_queue_idem_lookup(sp_queue *q, const char *idem_key, char existing_id[SP_ID_LEN + 1],
                         sp_err *err);

/* Wait until n replicas of the Redis master have everything this handle has written
 * (and read) so far, at most timeout_ms: Redis's WAIT, after a write of this
 * connection's own (a PUBLISH to nobody), so that it also covers records another
 * connection wrote and this one read. Returns the replicas that confirmed (0 when the
 * connection changed on the way, or when, with Sentinel, a failover has replaced the
 * master that confirmed: what was written may be lost), or an error. */
int sp_queue_wait_replicas(sp_queue *q, int n, int64_t timeout_ms, sp_err *err);

/* After a call that failed with SP_EREDIS: true when its command reached Redis and no
 * answer came back (Redis may have run it: a master that died before answering, whose
 * replica takes over), false when nothing was sent (no connection could be made). */
bool sp_queue_unanswered(const sp_queue *q);

/* Enqueue n jobs in one pipeline. results[i] gets what sp_queue_enqueue would have
 * returned for e[i]. Returns 0 when every reply arrived, else an error. */
int sp_queue_enqueue_many(sp_queue *q, const sp_enqueue *e, size_t n, int *results,
                          sp_err *err);

/* ---- reading and administration ---------------------------------------------- */

/* Read a job record into out (sp_job_clear it afterwards). SP_ENOTFOUND when there is
 * no such job (never existed or expired). */
int sp_queue_get(sp_queue *q, const char *id, sp_job *out, sp_err *err);

/* Cancel a job. Returns 0 when it was queued or retrying and is now cancelled (it will
 * never start), 1 when it is running and its worker was asked to stop (it sees the
 * request within a second), SP_ESTATE when it had already ended, SP_ENOTFOUND. */
int sp_queue_cancel(sp_queue *q, const char *id, int64_t retention_ms, sp_err *err);

/* Run a failed job again from its queue's dead-letter set with fresh attempts.
 * 0, SP_ESTATE (not failed), SP_ENOTFOUND. */
int sp_queue_requeue(sp_queue *q, const char *id, sp_err *err);

typedef struct sp_list_filter {
    bool has_state;
    sp_state state;
    const char *type;  /* exact type or NULL */
    size_t limit;      /* at most this many results */
    const char *queue; /* exact queue or NULL */
    const char *before; /* a page's cursor: only jobs after this one (older); NULL: from
                         * the newest */
} sp_list_filter;

/* The most recent jobs (newest first, by creation millisecond) matching f, into out[0..*n-1] (each to be
 * sp_job_clear'ed). Looks at no more than 10000 recent jobs. */
int sp_queue_list(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n, sp_err *err);

/* The same, a page at a time: next gets the cursor of the following page (pass it as
 * f->before), "" when the index has nothing older. A page looks at no more than 10000
 * jobs: it may be short (even empty) with a cursor when few jobs match. SP_ENOTFOUND
 * when f->before is no longer in the index (expired). */
int sp_queue_list_page(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n,
                       char next[SP_ID_LEN + 1], sp_err *err);

typedef struct sp_queue_stat {
    char name[SP_QUEUE_MAX + 1];
    int64_t ready, running, delayed, dead;                 /* current depths */
    int64_t enqueued, succeeded, failed, cancelled;        /* counters since creation */
    int64_t retried, expired, requeued;
    bool paused;
    int64_t paused_at; /* ms since the epoch (Redis's clock) when paused, 0 when not */
} sp_queue_stat;

/* Depths and counters of every queue that has seen a job, sorted by name, into
 * out[0..*n-1] (at most max). */
int sp_queue_stats(sp_queue *q, sp_queue_stat *out, size_t max, size_t *n, sp_err *err);

/* Depth and counters of one named queue (zeros when it never saw a job). */
int sp_queue_stat_one(sp_queue *q, const char *queue, sp_queue_stat *out, sp_err *err);

/* ---- the dead-letter set of a queue ------------------------------------------- */

/* One page of queue's dead-letter set, the latest failure first: the jobs from rank
 * offset on, at most max, into out[0..*n-1] (each to be sp_job_clear'ed; a job whose
 * record is gone is left out); *total gets the size of the set. */
int sp_queue_dead_list(sp_queue *q, const char *queue, size_t offset, size_t max, sp_job *out,
                       size_t *n, int64_t *total, sp_err *err);

/* The first max ids of queue's dead-letter set (the latest failure first) into
 * ids[0..*n-1]. */
int sp_queue_dead_ids(sp_queue *q, const char *queue, size_t max, char (*ids)[SP_ID_LEN + 1],
                      size_t *n, sp_err *err);

enum sp_dead_action {
    SP_DEAD_RETRY, /* back on the queue with fresh attempts (sp_queue_requeue) */
    SP_DEAD_PURGE  /* deleted for good: record, dead-set entry, index entry */
};

/* Apply action to each of ids[0..n-1] that is in queue's dead-letter set: results[i]
 * gets 0 (done), SP_ENOTFOUND (not in this queue's dead set, or the id is malformed)
 * or SP_ESTATE (no longer failed: retried meanwhile). Returns 0, or the first Redis
 * error (results of the ids before it stand; the others are SP_EREDIS). */
int sp_queue_dead_apply(sp_queue *q, const char *queue, int action, const char *const *ids,
                        size_t n, int *results, sp_err *err);

/* Pause a queue (paused true) or resume it. A paused queue still takes new jobs but its
 * consumers start none: not the ones waiting, nor ids they claimed ahead (those go back
 * to the queue's front); a job already running finishes. Consumers see a resume within
 * about a second. The queue is listed by sp_queue_stats from then on. 0 or an error
 * (SP_EINVAL for a bad name). Pausing a paused queue keeps its first pause time. */
int sp_queue_pause(sp_queue *q, const char *queue, bool paused, sp_err *err);

/* ---- workers ------------------------------------------------------------------ */

typedef struct sp_worker_info {
    char id[128];
    char kind[32];          /* "video", "pdf", ... */
    char host[64];
    int64_t pid;
    char queues[256];       /* comma-separated */
    int64_t concurrency;
    int64_t started_at;
    int64_t last_seen;      /* filled by sp_queue_workers */
    char current[512];      /* comma-separated ids of the jobs it is running */
    int64_t processed, failed;
    char run[24];           /* this process's run of the id (random; "" none): a worker
                             * restarted under the same id vouches only for jobs it
                             * started itself */
} sp_worker_info;

/* Register a worker or refresh its heartbeat; it counts as dead after ttl_ms without
 * one: its claimed jobs go back, and so do the jobs it runs once they too have gone
 * ttl_ms without a renewal (see sp_consumer_opts.worker_ttl_ms). Beat at least five
 * times per ttl_ms: a pause in every worker's heartbeats longer than half of it is
 * taken for Redis being away, and silences across it do not count. */
int sp_queue_worker_beat(sp_queue *q, const sp_worker_info *w, int64_t ttl_ms, sp_err *err);

/* Deregister a worker and give back the jobs it had claimed but not started. Also
 * for a worker starting under a fixed id: what an earlier run left goes back. */
int sp_queue_worker_leave(sp_queue *q, const char *worker_id, sp_err *err);

/* Live workers into out[0..*n-1] (at most max). */
int sp_queue_workers(sp_queue *q, sp_worker_info *out, size_t max, size_t *n, sp_err *err);

/* A worker id: "<host>-<pid>-<random>", safe in keys and logs. */
void sp_worker_id_new(char out[128], const char *host);

/* ---- running attempts (any thread with its own handle) ------------------------- */

/* Extend the lease of the attempt (id, token) by lease_ms from now, store progress
 * (-1: unchanged), and set *cancel when a cancel was requested. SP_ELOST when the
 * lease is no longer this attempt's: the caller must stop the work. */
int sp_queue_renew(sp_queue *q, const char *id, const char *token, int64_t lease_ms,
                   int progress, bool *cancel, sp_err *err);

/* Store metadata (a JSON object) on a running attempt's job. SP_ELOST as above. */
int sp_queue_annotate(sp_queue *q, const char *id, const char *token, const char *metadata_json,
                      sp_err *err);

/* ---- maintenance (run by every worker, a few times a second) ------------------- */

typedef struct sp_maint_report {
    int promoted;        /* retrying jobs whose delay passed, and scheduled jobs whose
                          * run_at came, back on (or onto) their queue */
    int expired;         /* running jobs whose lease ran out or whose worker went silent */
    int workers_reaped;  /* dead workers whose claimed jobs were given back */
    int reclaimed;       /* jobs those workers had claimed */
} sp_maint_report;

/* Promote due retries on the given queues, reap dead workers (their claimed jobs go
 * back), send back running jobs whose lease ran out or whose worker went silent (see
 * sp_consumer_opts.worker_ttl_ms; either counts the attempt), and trim the jobs index
 * and dead-letter sets past retention_ms. Idempotent and safe to run from many
 * processes at once. */
int sp_queue_maintain(sp_queue *q, const char *const *queues, size_t nqueues,
                      int64_t retention_ms, sp_maint_report *report, sp_err *err);

/* ---- consuming ---------------------------------------------------------------- */

typedef struct sp_consumer sp_consumer;

/* What became of a finished attempt (see sp_consumer_opts.on_finished). */
typedef struct sp_finished {
    const char *id;
    const char *queue;
    int rc;                    /* 0: recorded; SP_ELOST: the lease was no longer ours and
                                * nothing changed; another code: it could not be recorded */
    sp_state state;            /* the job's state afterwards, when rc is 0 */
    const char *error_code;    /* as passed to sp_consumer_finish ("" when none) */
    const char *error_message;
    int64_t ran_ms;            /* from sp_consumer_next handing the job out to its finish */
} sp_finished;

typedef void sp_finished_fn(void *arg, const sp_finished *f);

typedef struct sp_consumer_opts {
    const char *url;
    const char *prefix;
    const char *worker_id;        /* from sp_worker_id_new; registered by the caller */
    const char *const *queues;    /* taken in this order of preference */
    size_t nqueues;
    int64_t lease_ms;             /* default 30000 */
    int64_t retention_ms;         /* how long finished jobs are kept; default 7 days */
    /* Prefetch while jobs are short: the consumer holds up to about this much work
     * (ms, judged by the previous job) started ahead of the running job, at most
     * SP_CONSUMER_BATCH_MAX jobs, and reports finished jobs in batches: one round trip
     * then finishes a batch, starts the next and claims the one after. 0: off (one job
     * at a time; a finish may still claim the next). A consumer that prefetches must
     * not sit on work behind a job that turns out long: call sp_consumer_flush and
     * sp_consumer_give_back from another thread while such a job runs. */
    int64_t prefetch_ms;
    /* Called with the outcome of every finish once Redis has answered it, from the
     * thread that made the round trip (the consumer's, or the one calling
     * sp_consumer_flush or sp_consumer_give_back), with the consumer locked: it must
     * not call the consumer. NULL: not reported. */
    sp_finished_fn *on_finished;
    void *on_finished_arg;
    /* The heartbeat TTL the worker registers with (sp_queue_worker_beat). A job it
     * runs whose renewals stop for this long, while its worker's heartbeat has run out
     * too and other heartbeats were heard all along, goes back to its queue before its
     * lease ends (sp_queue_maintain). 0: the worker does not beat; only the lease
     * counts. */
    int64_t worker_ttl_ms;
} sp_consumer_opts;

/* The most jobs a consumer starts, or reports finished, in one round trip. */
#define SP_CONSUMER_BATCH_MAX 32

/* A consumer for one worker slot (one thread). NULL with err set on bad options. */
sp_consumer *sp_consumer_new(const sp_consumer_opts *o, sp_err *err);

/* Record held-back finishes, give back what c holds ahead, and free. Accepts NULL. */
void sp_consumer_free(sp_consumer *c);

/* Record the finishes c holds back (prefetching) now. Through via (another thread's
 * own connection, for a keeper thread while c's job runs long) or, when via is NULL,
 * through c's own connection (only from c's thread). 0 or an error (SP_EREDIS...):
 * the finishes stay held and go with the next round trip. */
int sp_consumer_flush(sp_consumer *c, sp_queue *via, sp_err *err);

/* Record held-back finishes and give back the jobs c holds ahead for its next
 * sp_consumer_next: jobs started ahead go back to the queue with their attempt not
 * counted, ids claimed but not started go back to the front of their queue. For a
 * slot that stops taking jobs (shutdown), or whose job runs long, so other workers
 * take them now. via as for sp_consumer_flush. 0, or the first error (SP_EREDIS...):
 * a started job that could not be given back is redone when its lease runs out, a
 * claim that could not be stays held and sp_consumer_free tries it again. */
int sp_consumer_give_back(sp_consumer *c, sp_queue *via, sp_err *err);

/* The consumer's own connection, for other calls (sp_queue_annotate...) made from the
 * consumer's thread. Owned by the consumer. */
sp_queue *sp_consumer_queue(sp_consumer *c);

/* Take the next job and start its lease, waiting up to block_ms for one to arrive
 * (blocking in Redis, no polling). On 0, *job holds the started record (attempts
 * already counted, token set); sp_job_clear it when done. SP_ETIMEDOUT when no job
 * came; SP_EREDIS and others on failure. Skips jobs that are no longer wanted. */
int sp_consumer_next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err);

enum sp_finish_mode {
    SP_FINISH_SUCCEEDED,
    SP_FINISH_RETRY,     /* a transient failure: retry after backoff if attempts remain */
    SP_FINISH_FAILED,    /* a permanent failure: no retries, to the dead-letter set */
    SP_FINISH_CANCELLED, /* stopped because a cancel was requested */
    SP_FINISH_RELEASE    /* shutting down: back to the queue now, attempt not counted */
};

typedef struct sp_outcome {
    int mode;                  /* enum sp_finish_mode */
    const char *outputs_json;  /* SUCCEEDED: JSON array of outputs ("[]" if NULL) */
    const char *metadata_json; /* any mode: replaces the metadata; NULL keeps it */
    const char *error_code;    /* RETRY/FAILED: snake_case code */
    const char *error_message; /* RETRY/FAILED: what a person can act on */
    int64_t delay_ms;          /* RETRY: -1 computes backoff with full jitter */
} sp_outcome;

/* End the attempt described by job (its id, queue, token and attempts). When
 * take_next is true the same step takes the next job and starts it (prefetching: starts
 * the batch claimed ahead, if any, and claims the next), which the following sp_consumer_next
 * hands out without a round trip; a job started ahead that is not run must be given
 * back (sp_consumer_give_back, sp_consumer_free), or it counts an attempt when its lease
 * runs out. Returns 0 with *new_state (may be NULL) set
 * to the job's state afterwards; 1 when the finish is held back because a prefetched
 * job is waiting to run next: it is recorded with the consumer's next round trip, at
 * the latest when the jobs started ahead run out, or by sp_consumer_flush, and its
 * outcome goes to on_finished; SP_ELOST when the lease had expired or another attempt
 * owns the job (nothing is changed then); or an error (SP_EREDIS: call again with the
 * same job to retry). Every recorded finish is also reported to on_finished. */
int sp_consumer_finish(sp_consumer *c, const sp_job *job, const sp_outcome *o, bool take_next,
                       sp_state *new_state, sp_err *err);

/* The retry delay for the attempt-th attempt: uniform in [0, min(cap, base*2^(n-1))]. */
int64_t sp_retry_delay_ms(int64_t attempt, int64_t base_ms, int64_t cap_ms);

/* ---- job events (long-poll) ----------------------------------------------------- */

/* A subscriber connection that reports changes to the jobs it watches. Not
 * thread-safe; meant to be driven by one event thread with poll(2) on sp_events_fd.
 * After an error the caller reopens and subscribes again. */
typedef struct sp_events sp_events;

sp_events *sp_events_open(const char *url, const char *prefix, sp_err *err);
void sp_events_close(sp_events *ev); /* accepts NULL */

/* Start or stop watching a job. Watching subscribes without waiting for the answer,
 * then marks the job's record as watched (one round trip on a second connection):
 * workers announce a job's start and end only once it is marked, so events from
 * before the mark may be missed (the caller reads the job again after watching).
 * An error leaves the job unwatched. Unwatching sends without waiting. */
int sp_events_watch(sp_events *ev, const char *id, sp_err *err);
int sp_events_unwatch(sp_events *ev, const char *id, sp_err *err);

/* The socket to poll for input, or -1 when not connected. */
int sp_events_fd(const sp_events *ev);

/* Read one pending event without blocking: 1 with id (and the event name, e.g.
 * "progress") filled, 0 when none is pending, or an error (SP_EREDIS). */
int sp_events_read(sp_events *ev, char id[SP_ID_LEN + 1], char event[32], sp_err *err);

#endif

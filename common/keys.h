/* keys.h - the one place Redis key and channel names are built (internal to common/).
 * Scripts receive every key they touch in KEYS; none builds a key name itself.
 *
 * Which keys each script touches, for Redis Cluster later (a script's keys must all
 * hash to one slot there). P = prefix, Q = a queue, J = a job, W = a worker:
 *
 *   script        job hash  queue keys (P q:Q:*)            global keys          worker keys
 *   enqueue       J         ready, stats                     jobs, queues, events,-
 *                                                            idem
 *   cancel        J         ready, delayed, stats            events (+ webhooks)  -
 *   promote       J         delayed, ready                   events               -
 *   requeue       J         dead, ready, stats               events               -
 *   purge         J         dead                             jobs                 -
 *   renew         J         leases                           events               -
 *   annotate      J         -                                -                    -
 *   expire        J         leases, ready, dead, stats       workers, watch, runs,-
 *                                                            events (+ webhooks)
 *   step          F+S jobs  all 7 of each of G queues        events (+ webhooks)  claim:Q
 *   pause         -         paused                           queues               -
 *                 (+ taken jobs: named from a job hash prefix in ARGV, see below)
 *   (+ webhooks): the webhooks queue's ready and stats, jobs, queues; and delivery job
 *                 hashes named from the job hash prefix (lib.lua's webhook())
 *   scan          -         delayed, leases, dead of each Q  jobs, workers        -
 *   worker_beat   -         -                                workers, watch, runs W
 *   worker_leave  -         ready of each Q                  workers, runs        W, claim:Q
 *
 * Schedules (spool/schedule.h, common/schedule.c), S = a schedule's name:
 *   sched_create  sched:S, sched:S:runs, schedules, schedules:due
 *   sched_update  sched:S, schedules:due
 *   sched_delete  sched:S, sched:S:runs, schedules, schedules:due
 *   sched_advance sched:S, sched:S:runs, schedules:due, schedules:stats
 * The jobs a tick makes go through enqueue like any other, under an id derived from
 * the tick (sp_sched_tick_id; the enqueue refuses it once its job exists) and with the
 * idempotency key "sched:<S>:<generation>:<tick ms>".
 *
 * Today every key of a deployment may live on one Redis (or one Sentinel-managed
 * master). On Cluster, the smallest change that keeps every script legal is one hash
 * tag for the whole prefix ("{spool}:...", SPOOL_KEY_PREFIX="{spool}:"): correct, but
 * one slot, so no faster than one master. Spreading queues over shards needs a tag per
 * queue ("P{Q}:...") on the queue keys, the claim lists and the records of that
 * queue's jobs (the record key then names its queue, which the API knows from the
 * route); the global keys split per queue (jobs index, queues set) or leave the
 * scripts (expire and worker_leave would read workers/watch/runs in a separate call,
 * accepting a race the lease already tolerates); step claims from one queue per call;
 * idempotency keys carry the queue's tag. None of this is done: no script builds a key
 * of its own, so the change stays in this file and the callers that pass KEYS. */
#ifndef SPOOL_KEYS_H
#define SPOOL_KEYS_H

#include <stdio.h>

#define SP_KEY_MAX 384

/* The events stream ("<prefix>events") keeps about this many entries (XADD MAXLEN ~);
 * lib.lua's EVENTS_KEEP says the same for the scripts. */
#define SP_EVENTS_KEEP "100000"
typedef struct sp_key {
    char s[SP_KEY_MAX];
} sp_key;

/* "<prefix>job:<id>": the job's record. */
static inline const char *sp__key_job(sp_key *k, const char *p, const char *id)
{
    snprintf(k->s, sizeof k->s, "%sjob:%.64s", p, id); /* ids are 36 characters */
    return k->s;
}

/* "<prefix>q:<queue>:<part>": ready (list), leases (zset of running jobs by when
 * maintenance looks at them next: the lease's end, or sooner when a renewal is due
 * within the worker's heartbeat TTL), delayed (zset by due time), dead (zset by failure
 * time), stats (hash of counters), paused (string: when the queue was paused; absent
 * while it runs). */
static inline const char *sp__key_q(sp_key *k, const char *p, const char *queue,
                                    const char *part)
{
    snprintf(k->s, sizeof k->s, "%sq:%s:%s", p, queue, part);
    return k->s;
}

/* "<prefix>w:<worker>:claim:<queue>": ids a worker took but has not started yet. */
static inline const char *sp__key_claim(sp_key *k, const char *p, const char *worker,
                                        const char *queue)
{
    snprintf(k->s, sizeof k->s, "%sw:%s:claim:%s", p, worker, queue);
    return k->s;
}

/* "<prefix>worker:<id>": what a worker reports about itself. */
static inline const char *sp__key_worker(sp_key *k, const char *p, const char *worker)
{
    snprintf(k->s, sizeof k->s, "%sworker:%s", p, worker);
    return k->s;
}

/* "<prefix><name>": jobs (index zset by creation), queues (set of names), events (the
 * stream of job events, see SP_EVENTS_KEEP and lib.lua's event()), workers
 * (zset by heartbeat deadline), runs (zset of worker ids by when their current process
 * first beat), watch (hash: last, the latest heartbeat of any worker, and since, when
 * heartbeats were last heard again after a gap). */
static inline const char *sp__key(sp_key *k, const char *p, const char *name)
{
    snprintf(k->s, sizeof k->s, "%s%s", p, name);
    return k->s;
}

/* The webhooks queue's name: deliveries of jobs' callbacks are jobs on it. */
#define SP_WEBHOOK_QUEUE "webhooks"

/* "<prefix>idem:<sha256 of the client's key>": "<job id> <fingerprint>". */
static inline const char *sp__key_idem(sp_key *k, const char *p, const char *digest)
{
    snprintf(k->s, sizeof k->s, "%sidem:%s", p, digest);
    return k->s;
}

/* Schedules. "<prefix>sched:<name>": one schedule's hash (name, cron, timezone,
 * missed, job (the template, JSON), paused "0"/"1", generation, version, created_at,
 * updated_at, last_tick, next_at, last_fired (ms), fired, passed); "<prefix>sched:<name>:runs"
 * (part "runs"): zset of the ids of the jobs it made by tick (ms), the latest
 * SP_SCHED_RUNS_KEEP. Names have no ':', so the two cannot meet. part NULL: the hash. */
static inline const char *sp__key_sched(sp_key *k, const char *p, const char *name,
                                        const char *part)
{
    snprintf(k->s, sizeof k->s, "%ssched:%.64s%s%s", p, name, part ? ":" : "", part ? part : "");
    return k->s;
}

/* "<prefix>schedules" (zset of every schedule's name, score 0: listed by name),
 * "<prefix>schedules:due" (zset of the unpaused ones by next_at, ms) and
 * "<prefix>schedules:stats" (hash: fired, passed: ticks of all schedules since the
 * first) are sp__key(k, p, "schedules"...). */

/* "<prefix>job:": what a job's hash name is before its id. step.lua starts jobs it pops
 * off a ready list in the same call, before their ids are known to the caller: it names
 * their hashes as this prefix followed by the id; and a job with a callback that ends
 * (step, cancel, expire) makes a delivery job whose id only the script derives (the
 * keys the scripts name that are not in KEYS). Under either Cluster plan above the hash shares the slot of its queue's
 * keys (one tag for the whole prefix; or the queue's tag, which this prefix then
 * carries). */
static inline const char *sp__key_job_prefix(sp_key *k, const char *p)
{
    snprintf(k->s, sizeof k->s, "%sjob:", p);
    return k->s;
}

/* "<prefix>ev:": what a job's event channel is before its id (not a key). */
static inline const char *sp__chan_prefix(sp_key *k, const char *p)
{
    snprintf(k->s, sizeof k->s, "%sev:", p);
    return k->s;
}

/* "<prefix>ev:<id>": the pub/sub channel announcing changes to a job. */
static inline const char *sp__chan_job(sp_key *k, const char *p, const char *id)
{
    snprintf(k->s, sizeof k->s, "%sev:%.64s", p, id);
    return k->s;
}

#endif

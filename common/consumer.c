/* consumer.c - the worker side of the queue: take, start, finish (see queue.h).
 *
 * Every change goes through one script, step.lua, that in one round trip records the
 * finishes the consumer holds, gives back ids it will not start, starts the ids it
 * claimed while waiting, and takes and starts the next jobs, whose records come back
 * in its reply. Running long jobs, a consumer finishes one job per round trip and
 * starts the next; running short jobs (prefetch), it starts and reports whole batches,
 * so Redis sees one call per batch instead of per job. */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/util.h"

#define SP_CONSUMER_MAXQ 16
#define SP_BATCH SP_CONSUMER_BATCH_MAX
#define SP_DONE_MAX (2 * SP_BATCH + 1) /* held finishes plus give-backs of started jobs */

enum {
    SP_QK_READY,
    SP_QK_CLAIM,
    SP_QK_LEASES,
    SP_QK_DELAYED,
    SP_QK_DEAD,
    SP_QK_STATS,
    SP_QK_PAUSED,
    SP_QK_N
};
/* After the queues' keys, step.lua takes the events stream and the webhooks keys. */
enum { SP_GK_EVENTS, SP_GK_WH_READY, SP_GK_WH_STATS, SP_GK_JOBS, SP_GK_QUEUES, SP_GK_N };

/* How long a consumer whose queues are all paused waits before it looks again. */
#define SP_PAUSED_RECHECK_MS 1000

/* An id on our claim list, not started yet. */
typedef struct sp__claim {
    char id[SP_ID_LEN + 1];
    size_t qi;
} sp__claim;

/* A finish waiting for a round trip. Its strings are owned copies. */
typedef struct sp__done {
    char id[SP_ID_LEN + 1];
    char token[SP_TOKEN_LEN + 1];
    size_t qi;
    int mode;
    char delay[24];
    char *outputs, *metadata, *code, *msg;
    int64_t ran_ms;
} sp__done;

struct sp_consumer {
    sp_queue q; /* the main connection */
    char worker[128];
    size_t nq;
    char queues[SP_CONSUMER_MAXQ][SP_QUEUE_MAX + 1];
    sp_key qk[SP_CONSUMER_MAXQ][SP_QK_N];
    sp_key gk[SP_GK_N];
    bool paused[SP_CONSUMER_MAXQ]; /* as the last step found them */
    char lease_ms[24];
    int64_t lease_n;
    char retention_ms[24];
    char ttl_ms[24]; /* the worker's heartbeat TTL, "0" when it has none */
    int64_t prefetch_us;
    int64_t job_t0;  /* when the current job was handed out (monotonic us) */
    int64_t last_us; /* how long the previous job took */
    sp_finished_fn *on_finished;
    void *on_finished_arg;
    /* One extra connection per queue, for blocking on several queues at once. */
    sp_redis *block[SP_CONSUMER_MAXQ];
    char url[512];

    /* Guards everything below: the consumer's thread and one calling sp_consumer_flush
     * or sp_consumer_give_back with its own connection. */
    pthread_mutex_t mu;
    sp__claim claimed[SP_BATCH];
    size_t nclaimed;
    sp_job held[SP_BATCH]; /* started ahead, handed out in order */
    size_t held_first, nheld;
    int64_t held_at; /* when they were started (monotonic ms) */
    sp__done done[SP_DONE_MAX];
    size_t ndone;
    /* After a connection error an id may sit on a claim list without us knowing
     * (the move ran, its answer was lost): look there before taking more. */
    bool recover;
    /* Scratch for building one step call. */
    sp_key jobk[SP_DONE_MAX + SP_BATCH];
    char tokens[SP_BATCH][SP_TOKEN_LEN + 1];
    char gidx[SP_CONSUMER_MAXQ][24];
    sp_key jobpfx, chanpfx;
};

sp_consumer *sp_consumer_new(const sp_consumer_opts *o, sp_err *err)
{
    if (o->nqueues == 0 || o->nqueues > SP_CONSUMER_MAXQ) {
        sp_err_set(err, SP_EINVAL, "a consumer needs 1 to %d queues", SP_CONSUMER_MAXQ);
        return NULL;
    }
    if (o->worker_id == NULL || o->worker_id[0] == '\0' || strlen(o->worker_id) >= 128) {
        sp_err_set(err, SP_EINVAL, "a consumer needs a worker id");
        return NULL;
    }
    if (o->url == NULL || strlen(o->url) >= 512) {
        sp_err_set(err, SP_EINVAL, "bad Redis URL");
        return NULL;
    }
    sp_consumer *c = sp_calloc(1, sizeof *c);
    if (c == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (sp__queue_init(&c->q, o->url, o->prefix, err) < 0) {
        sp_free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    snprintf(c->url, sizeof c->url, "%s", o->url);
    snprintf(c->worker, sizeof c->worker, "%s", o->worker_id);
    static const char *const parts[SP_QK_N] = {"ready", NULL,    "leases", "delayed",
                                               "dead",  "stats", "paused"};
    for (size_t i = 0; i < o->nqueues; i++) {
        if (!sp_queue_name_valid(o->queues[i])) {
            sp_err_set(err, SP_EINVAL, "bad queue name '%s'", o->queues[i]);
            sp_consumer_free(c);
            return NULL;
        }
        snprintf(c->queues[i], sizeof c->queues[i], "%s", o->queues[i]);
        for (int k = 0; k < SP_QK_N; k++) {
            if (k == SP_QK_CLAIM)
                sp__key_claim(&c->qk[i][k], c->q.prefix, c->worker, c->queues[i]);
            else
                sp__key_q(&c->qk[i][k], c->q.prefix, c->queues[i], parts[k]);
        }
        snprintf(c->gidx[i], sizeof c->gidx[i], "%zu", i + 1);
    }
    c->nq = o->nqueues;
    sp__key(&c->gk[SP_GK_EVENTS], c->q.prefix, "events");
    sp__key_q(&c->gk[SP_GK_WH_READY], c->q.prefix, SP_WEBHOOK_QUEUE, "ready");
    sp__key_q(&c->gk[SP_GK_WH_STATS], c->q.prefix, SP_WEBHOOK_QUEUE, "stats");
    sp__key(&c->gk[SP_GK_JOBS], c->q.prefix, "jobs");
    sp__key(&c->gk[SP_GK_QUEUES], c->q.prefix, "queues");
    sp__key_job_prefix(&c->jobpfx, c->q.prefix);
    sp__chan_prefix(&c->chanpfx, c->q.prefix);
    c->lease_n = o->lease_ms > 0 ? o->lease_ms : 30000;
    snprintf(c->lease_ms, sizeof c->lease_ms, "%lld", (long long)c->lease_n);
    snprintf(c->retention_ms, sizeof c->retention_ms, "%lld",
             (long long)(o->retention_ms > 0 ? o->retention_ms : 604800000));
    snprintf(c->ttl_ms, sizeof c->ttl_ms, "%lld",
             (long long)(o->worker_ttl_ms > 0 ? o->worker_ttl_ms : 0));
    c->prefetch_us = o->prefetch_ms > 0 ? o->prefetch_ms * 1000 : 0;
    c->last_us = INT64_MAX;
    c->on_finished = o->on_finished;
    c->on_finished_arg = o->on_finished_arg;
    return c;
}

sp_queue *sp_consumer_queue(sp_consumer *c)
{
    return &c->q;
}

/* How many jobs to start per round trip while the previous job took last_us: enough
 * to hold about prefetch_ms of work; 0 when not prefetching. */
static int sp__window(const sp_consumer *c)
{
    if (c->prefetch_us <= 0 || c->last_us >= c->prefetch_us)
        return 0;
    int64_t n = c->prefetch_us / (c->last_us > 0 ? c->last_us : 1);
    return n < 1 ? 1 : n > SP_BATCH ? SP_BATCH : (int)n;
}

static void sp__done_free(sp__done *d)
{
    sp_free(d->outputs);
    sp_free(d->metadata);
    sp_free(d->code);
    sp_free(d->msg);
    memset(d, 0, sizeof *d);
}

static int sp__queue_index(const sp_consumer *c, const char *queue, size_t *qi)
{
    for (size_t i = 0; i < c->nq; i++) {
        if (strcmp(c->queues[i], queue) == 0) {
            *qi = i;
            return 0;
        }
    }
    return -1;
}

static const char *const sp__modes[] = {"succeeded", "retry", "failed", "cancelled", "release"};

/* Add a finish of job to the held list (a finish of the same attempt already there is
 * kept as it is: the caller is retrying). The index of the entry, or an error. */
static int sp__done_add(sp_consumer *c, const sp_job *job, const sp_outcome *o, int64_t ran_ms,
                        sp_err *err)
{
    for (size_t i = 0; i < c->ndone; i++)
        if (strcmp(c->done[i].id, job->id) == 0 && strcmp(c->done[i].token, job->token) == 0)
            return (int)i;
    if (c->ndone == SP_DONE_MAX)
        return sp_err_set(err, SP_EINVAL, "finish: too many finishes held");
    size_t qi;
    if (sp__queue_index(c, job->queue, &qi) < 0)
        return sp_err_set(err, SP_EINVAL, "finish: queue '%s' is not this consumer's",
                          job->queue);
    sp__done *d = &c->done[c->ndone];
    memcpy(d->id, job->id, sizeof d->id);
    snprintf(d->token, sizeof d->token, "%s", job->token);
    d->qi = qi;
    d->mode = o->mode;
    d->ran_ms = ran_ms;
    int64_t delay = o->delay_ms;
    if (o->mode == SP_FINISH_RETRY && delay < 0)
        delay = sp_retry_delay_ms(job->attempts, job->retry_base_ms, job->retry_cap_ms);
    snprintf(d->delay, sizeof d->delay, "%lld", (long long)(delay > 0 ? delay : 0));
    const char *code = o->error_code ? o->error_code : "";
    if ((o->mode == SP_FINISH_RETRY || o->mode == SP_FINISH_FAILED) && code[0] == '\0')
        code = "failed";
    d->outputs = sp_strdup(o->outputs_json ? o->outputs_json : "[]");
    d->metadata = sp_strdup(o->metadata_json ? o->metadata_json : "");
    d->code = sp_strdup(code);
    d->msg = sp_strdup(o->error_message ? o->error_message : "");
    if (!d->outputs || !d->metadata || !d->code || !d->msg) {
        sp__done_free(d);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    return (int)c->ndone++;
}

static void sp__report(sp_consumer *c, const sp__done *d, int rc, sp_state st)
{
    if (c->on_finished == NULL)
        return;
    sp_finished f = {d->id, c->queues[d->qi], rc, st, d->code, d->msg, d->ran_ms};
    c->on_finished(c->on_finished_arg, &f);
}

/* Copy an id from a reply (BLMOVE's, a claim's). 1 when it is an id, 0 for nil. */
static int sp__moved_id(const redisReply *rep, char id[SP_ID_LEN + 1])
{
    size_t n;
    const char *v = sp_reply_str(rep, &n);
    if (v == NULL || n != SP_ID_LEN)
        return 0;
    memcpy(id, v, SP_ID_LEN + 1);
    return 1;
}

/* What a step should do besides recording the held finishes. */
typedef struct sp__step_req {
    bool start;             /* start every claimed id */
    int claim;              /* how many ids to claim */
    int take;               /* how many jobs to take off the ready lists and start (with
                             * start, at most SP_BATCH - c->nclaimed are) */
    const sp__claim *give;  /* ids on our claim lists to give back to their queue */
    size_t ngive;
    int own;                /* index in done of the caller's finish, or -1 */
    int own_rc;             /* out: its result (0, SP_ELOST or SP_EPROTO); left as it
                             * was when the step did not record it */
    sp_state own_state;     /* out: its new state */
} sp__step_req;

/* Read the records of the jobs a step started (one HGETALL reply each, in order) into
 * the held list. */
static int sp__step_read_started(sp_consumer *c, sp_redis *r, const redisReply *starts,
                                 const sp__claim *started, size_t n, sp_err *err)
{
    int rc = 0;
    c->held_first = 0;
    c->nheld = 0;
    c->held_at = sp_mono_ms();
    for (size_t i = 0; i < n; i++) {
        redisReply *rec = NULL;
        sp_err e;
        int rrc = sp_redis_read(r, &rec, &e);
        if (rrc == SP_EREDIS) {
            if (err)
                *err = e;
            rc = rrc; /* the rest started too; their leases run out */
            break;
        }
        if (rrc < 0 || !sp_reply_is(sp_reply_elem(starts, i), "ok")) {
            sp_redis_reply_free(rec);
            continue;
        }
        sp_job *job = &c->held[c->nheld];
        if (sp__job_from_reply(rec, started[i].id, job, &e) == 0) {
            if (strcmp(job->token, c->tokens[i]) == 0)
                c->nheld++;
            else
                sp_job_clear(job);
        }
        sp_redis_reply_free(rec);
    }
    return rc;
}

/* Append the jobs a step took ((queue index, id, record) triples) to the held list. */
static void sp__step_hold_taken(sp_consumer *c, const redisReply *taken)
{
    for (size_t i = 0; i + 2 < sp_reply_len(taken) && c->nheld < SP_BATCH; i += 3) {
        int64_t g = sp_reply_int(sp_reply_elem(taken, i), 0);
        char id[SP_ID_LEN + 1];
        sp_job *job = &c->held[c->nheld];
        sp_err e;
        if (g < 1 || (size_t)g > c->nq || !sp__moved_id(sp_reply_elem(taken, i + 1), id) ||
            sp__job_from_reply(sp_reply_elem(taken, i + 2), id, job, &e) < 0)
            continue; /* not expected; its lease runs out */
        c->nheld++;
    }
}

/* One round trip through step.lua on r (c's connection or another thread's): record
 * every held finish, then what req asks. Called with c->mu held. */
static int sp__step(sp_consumer *c, sp_redis *r, sp__step_req *req, sp_err *err)
{
    size_t nf = c->ndone;
    size_t ns = req->start ? c->nclaimed : 0;
    size_t nt = req->take > 0 ? (size_t)req->take : 0;
    if (ns + nt > SP_BATCH)
        nt = ns < SP_BATCH ? SP_BATCH - ns : 0;
    const char *keys[SP_CONSUMER_MAXQ * SP_QK_N + SP_GK_N + SP_DONE_MAX + SP_BATCH];
    const char *args[12 + SP_CONSUMER_MAXQ + 10 * SP_DONE_MAX + 2 * SP_BATCH + 3 * SP_BATCH +
                     SP_BATCH];
    char counts[6][24];
    int nk = 0, na = 0;
    for (size_t g = 0; g < c->nq; g++)
        for (int k = 0; k < SP_QK_N; k++)
            keys[nk++] = c->qk[g][k].s;
    for (int k = 0; k < SP_GK_N; k++)
        keys[nk++] = c->gk[k].s;
    snprintf(counts[0], sizeof counts[0], "%zu", c->nq);
    snprintf(counts[1], sizeof counts[1], "%zu", req->ngive);
    snprintf(counts[2], sizeof counts[2], "%zu", nf);
    snprintf(counts[3], sizeof counts[3], "%zu", ns);
    snprintf(counts[4], sizeof counts[4], "%d", req->claim);
    snprintf(counts[5], sizeof counts[5], "%zu", nt);
    for (int i = 0; i < 6; i++)
        args[na++] = counts[i];
    args[na++] = c->worker;
    args[na++] = c->lease_ms;
    args[na++] = c->retention_ms;
    args[na++] = c->ttl_ms;
    args[na++] = c->chanpfx.s;
    args[na++] = c->jobpfx.s;
    for (size_t g = 0; g < c->nq; g++)
        args[na++] = c->queues[g];
    for (size_t i = 0; i < req->ngive; i++) {
        args[na++] = c->gidx[req->give[i].qi];
        args[na++] = req->give[i].id;
    }
    const char *p = c->q.prefix;
    for (size_t i = 0; i < nf; i++) {
        sp__done *d = &c->done[i];
        keys[nk++] = sp__key_job(&c->jobk[i], p, d->id);
        const char *a[] = {c->gidx[d->qi], d->id, d->token, sp__modes[d->mode], d->outputs,
                           d->metadata, d->code, d->msg,
                           d->mode == SP_FINISH_RETRY ? "1" : "0", d->delay};
        memcpy(args + na, a, sizeof a);
        na += 10;
    }
    sp__claim started[SP_BATCH];
    if (ns + nt > 0) {
        unsigned char raw[SP_BATCH][SP_TOKEN_LEN / 2];
        if (sp_random_bytes(raw, (ns + nt) * sizeof raw[0]) < 0)
            return sp_err_set(err, SP_EIO, "no randomness for a lease token");
        for (size_t i = 0; i < ns + nt; i++)
            for (size_t b = 0; b < sizeof raw[0]; b++)
                snprintf(c->tokens[i] + 2 * b, 3, "%02x", raw[i][b]);
        memcpy(started, c->claimed, ns * sizeof *started);
        for (size_t i = 0; i < ns; i++) {
            keys[nk++] = sp__key_job(&c->jobk[nf + i], p, started[i].id);
            args[na++] = c->gidx[started[i].qi];
            args[na++] = started[i].id;
            args[na++] = c->tokens[i];
        }
        for (size_t i = 0; i < nt; i++)
            args[na++] = c->tokens[ns + i];
    }
    int rc = sp_redis_append_eval(r, SP_LUA_STEP, nk, keys, na, args, NULL, err);
    for (size_t i = 0; i < ns && rc == 0; i++) {
        const char *argv[] = {"HGETALL", c->jobk[nf + i].s};
        rc = sp_redis_append(r, err, 2, argv, NULL);
    }
    redisReply *rep = NULL;
    if (rc == 0)
        rc = sp_redis_read(r, &rep, err);
    if (rc < 0) {
        if (rc != SP_EREDIS)
            sp_redis_disconnect(r); /* replies may be left unread */
        /* Held finishes stay for the next try. Claimed ids may have been started (then
         * their leases run out) or may still be ours: look on the claim lists. */
        if (ns > 0 || req->claim > 0 || req->ngive > 0 || nt > 0) {
            c->nclaimed = 0;
            c->recover = true;
        }
        sp_redis_reply_free(rep);
        return rc;
    }
    const redisReply *outcomes = sp_reply_elem(rep, 0);
    const redisReply *starts = sp_reply_elem(rep, 1);
    const redisReply *claims = sp_reply_elem(rep, 2);
    const redisReply *taken = sp_reply_elem(rep, 3);
    const redisReply *paused = sp_reply_elem(rep, 4);
    memset(c->paused, 0, sizeof c->paused);
    for (size_t i = 0; i < sp_reply_len(paused); i++) {
        int64_t g = sp_reply_int(sp_reply_elem(paused, i), 0);
        if (g >= 1 && (size_t)g <= c->nq)
            c->paused[g - 1] = true;
    }
    /* The finishes are recorded: report them and drop them. */
    for (size_t i = 0; i < nf; i++) {
        const char *o = sp_reply_str(sp_reply_elem(outcomes, i), NULL);
        sp_state st = SP_STATE_RUNNING;
        int frc;
        if (o == NULL)
            frc = SP_EPROTO;
        else if (strcmp(o, "lost") == 0)
            frc = SP_ELOST;
        else
            frc = sp_state_parse(o, &st) == 0 ? 0 : SP_EPROTO;
        if ((int)i == req->own) {
            req->own_rc = frc;
            req->own_state = st;
        }
        sp__report(c, &c->done[i], frc, st);
        sp__done_free(&c->done[i]);
    }
    c->ndone = 0;
    if (req->start) {
        c->nclaimed = 0;
        rc = sp__step_read_started(c, r, starts, started, ns, err);
    }
    if (nt > 0) {
        if (!req->start) {
            c->nheld = c->held_first = 0;
            c->held_at = sp_mono_ms();
        }
        sp__step_hold_taken(c, taken);
    }
    for (size_t i = 0; i + 1 < sp_reply_len(claims) && c->nclaimed < SP_BATCH; i += 2) {
        int64_t g = sp_reply_int(sp_reply_elem(claims, i), 0);
        sp__claim *cl = &c->claimed[c->nclaimed];
        if (g >= 1 && (size_t)g <= c->nq &&
            sp__moved_id(sp_reply_elem(claims, i + 1), cl->id)) {
            cl->qi = (size_t)g - 1;
            c->nclaimed++;
        }
    }
    if (rc == SP_EREDIS)
        c->recover = true;
    sp_redis_reply_free(rep);
    return rc;
}

static sp_redis *sp__via(sp_consumer *c, sp_queue *via)
{
    return via ? via->r : c->q.r;
}

int sp_consumer_flush(sp_consumer *c, sp_queue *via, sp_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    if (c->ndone > 0) {
        sp__step_req req = {.own = -1};
        rc = sp__step(c, sp__via(c, via), &req, err);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Give back everything held ahead (with c->mu held). */
static int sp__give_back(sp_consumer *c, sp_redis *r, sp_err *err)
{
    if (c->nheld == 0 && c->nclaimed == 0 && c->ndone == 0)
        return 0;
    /* Started jobs go back as releases (fenced by their tokens, attempt not counted),
     * claimed ids as they are; newest first, so they keep their order at the front of
     * their queues. */
    sp_outcome rel = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
    for (size_t i = c->nheld; i-- > 0;) {
        sp_job *job = &c->held[c->held_first + i];
        int rc = sp__done_add(c, job, &rel, 0, err);
        if (rc < 0)
            return rc;
        sp_job_clear(job);
        c->nheld--;
    }
    sp__claim give[SP_BATCH];
    size_t ngive = c->nclaimed;
    for (size_t i = 0; i < ngive; i++)
        give[i] = c->claimed[ngive - 1 - i];
    c->nclaimed = 0;
    sp__step_req req = {.give = give, .ngive = ngive, .own = -1};
    int rc = sp__step(c, r, &req, err);
    if (rc < 0 && rc != SP_EREDIS) {
        c->nclaimed = ngive; /* kept: sp_consumer_free tries again */
        for (size_t i = 0; i < ngive; i++)
            c->claimed[i] = give[ngive - 1 - i];
    }
    return rc;
}

int sp_consumer_give_back(sp_consumer *c, sp_queue *via, sp_err *err)
{
    pthread_mutex_lock(&c->mu);
    int rc = sp__give_back(c, sp__via(c, via), err);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void sp_consumer_free(sp_consumer *c)
{
    if (c == NULL)
        return;
    sp_err e;
    sp_consumer_give_back(c, NULL, &e);
    for (size_t i = 0; i < c->ndone; i++)
        sp__done_free(&c->done[i]);
    for (size_t i = 0; i < c->nheld; i++)
        sp_job_clear(&c->held[c->held_first + i]);
    for (size_t i = 0; i < SP_CONSUMER_MAXQ; i++)
        sp_redis_free(c->block[i]);
    pthread_mutex_destroy(&c->mu);
    sp__queue_fini(&c->q);
    sp_free(c);
}

static void sp__blmove_argv(sp_consumer *c, size_t i, char *timeout, int64_t ms,
                            const char *argv[6])
{
    snprintf(timeout, 32, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
    argv[0] = "BLMOVE";
    argv[1] = c->qk[i][SP_QK_READY].s;
    argv[2] = c->qk[i][SP_QK_CLAIM].s;
    argv[3] = "RIGHT";
    argv[4] = "LEFT";
    argv[5] = timeout;
}

/* Wait for a job on any of our queues that is not paused for up to ms: 1 with id and
 * *qi, 0 on timeout. One queue blocks on the main connection; several block on one
 * connection each and unblock the others (CLIENT UNBLOCK) once one delivers. With every
 * queue paused it only sleeps. Called with c->mu released (c holds nothing then), so a
 * keeper is never stuck behind the wait; reads c->paused, which only this thread's
 * steps write. */
static int sp__wait(sp_consumer *c, int64_t ms, char id[SP_ID_LEN + 1], size_t *qi,
                    sp_err *err)
{
    const char *argv[6];
    char timeout[32];
    size_t active = 0;
    for (size_t i = 0; i < c->nq; i++)
        active += !c->paused[i];
    if (active == 0) {
        poll(NULL, 0, (int)ms);
        return 0;
    }
    if (c->nq == 1) {
        sp__blmove_argv(c, 0, timeout, ms, argv);
        redisReply *rep;
        int rc = sp_redis_cmd_blocking(c->q.r, ms, &rep, err, 6, argv, NULL);
        if (rc < 0)
            return rc;
        rc = sp__moved_id(rep, id);
        *qi = 0;
        sp_redis_reply_free(rep);
        return rc;
    }
    int rc = 0;
    for (size_t i = 0; i < c->nq && rc == 0; i++) {
        if (c->paused[i])
            continue;
        if (c->block[i] == NULL) {
            c->block[i] = sp__redis_open(c->url, err);
            if (c->block[i] == NULL)
                return err ? err->code : SP_ENOMEM;
        }
        rc = sp_redis_connect(c->block[i], err);
    }
    if (rc < 0)
        return rc;
    bool done[SP_CONSUMER_MAXQ] = {false};
    size_t ndone = 0;
    for (size_t i = 0; i < c->nq; i++) {
        if (c->paused[i]) {
            done[i] = true;
            ndone++;
            continue;
        }
        sp__blmove_argv(c, i, timeout, ms, argv);
        rc = sp_redis_send(c->block[i], err, 6, argv, NULL);
        if (rc < 0) {
            /* Connections that did get a BLMOVE are dropped: cheaper than draining. */
            for (size_t j = 0; j < i; j++)
                if (!c->paused[j])
                    sp_redis_disconnect(c->block[j]);
            return rc;
        }
    }
    int found = 0;
    bool unblocked = false;
    sp__claim extra[SP_CONSUMER_MAXQ];
    size_t nextra = 0;
    int64_t deadline = sp_mono_ms() + ms + 5000;
    while (ndone < c->nq && rc == 0) {
        if (found && !unblocked) {
            /* One queue delivered: wake the other waits so they answer now. */
            unblocked = true;
            for (size_t i = 0; i < c->nq; i++) {
                if (done[i])
                    continue;
                char cid[24];
                snprintf(cid, sizeof cid, "%lld", (long long)sp_redis_client_id(c->block[i]));
                const char *ua[] = {"CLIENT", "UNBLOCK", cid};
                redisReply *u;
                if (sp_redis_cmd(c->q.r, &u, err, 3, ua, NULL) == 0)
                    sp_redis_reply_free(u);
            }
        }
        struct pollfd pfd[SP_CONSUMER_MAXQ];
        size_t map[SP_CONSUMER_MAXQ];
        nfds_t np = 0;
        for (size_t i = 0; i < c->nq; i++) {
            if (done[i])
                continue;
            pfd[np] = (struct pollfd){sp_redis_fd(c->block[i]), POLLIN, 0};
            map[np++] = i;
        }
        int64_t left = deadline - sp_mono_ms();
        if (left <= 0) {
            rc = sp_err_set(err, SP_EREDIS, "Redis did not answer a blocking wait");
            break;
        }
        if (poll(pfd, np, (int)(left > 1000 ? 1000 : left)) <= 0)
            continue;
        for (nfds_t k = 0; k < np && rc == 0; k++) {
            if (pfd[k].revents == 0)
                continue;
            size_t i = map[k];
            redisReply *rep;
            int r = sp_redis_try_read(c->block[i], &rep, err);
            if (r < 0)
                rc = r;
            if (r <= 0)
                continue;
            done[i] = true;
            ndone++;
            char got[SP_ID_LEN + 1];
            if (sp__moved_id(rep, got)) {
                if (!found) {
                    memcpy(id, got, sizeof got);
                    *qi = i;
                    found = 1;
                } else {
                    memcpy(extra[nextra].id, got, sizeof got);
                    extra[nextra++].qi = i;
                }
            }
            sp_redis_reply_free(rep);
        }
    }
    if (nextra > 0) {
        /* Ids that arrived on other queues at the same time go back to their front. If
         * this fails they are reaped with us. */
        sp_err e2;
        sp__step_req req = {.give = extra, .ngive = nextra, .own = -1};
        pthread_mutex_lock(&c->mu);
        sp__step(c, c->q.r, &req, &e2);
        pthread_mutex_unlock(&c->mu);
    }
    if (rc < 0) {
        for (size_t i = 0; i < c->nq; i++)
            if (!done[i])
                sp_redis_disconnect(c->block[i]);
        if (!found)
            return rc;
        sp_err_clear(err); /* we hold a claimed id: hand it over despite the error */
    }
    return found;
}

/* Put the ids left on our claim lists (a connection error hid their moves) in the
 * claimed list. */
static int sp__recover(sp_consumer *c, sp_err *err)
{
    for (size_t i = 0; i < c->nq && c->nclaimed < SP_BATCH; i++) {
        char last[8];
        snprintf(last, sizeof last, "%zu", SP_BATCH - c->nclaimed - 1);
        const char *argv[] = {"LRANGE", c->qk[i][SP_QK_CLAIM].s, "0", last};
        redisReply *rep;
        int rc = sp_redis_cmd(c->q.r, &rep, err, 4, argv, NULL);
        if (rc < 0)
            return rc;
        for (size_t k = sp_reply_len(rep); k-- > 0 && c->nclaimed < SP_BATCH;) {
            sp__claim *cl = &c->claimed[c->nclaimed];
            if (sp__moved_id(sp_reply_elem(rep, k), cl->id)) {
                cl->qi = i;
                c->nclaimed++;
            }
        }
        sp_redis_reply_free(rep);
    }
    c->recover = false;
    return 0;
}

/* Hand out the next job started ahead: 1 with *job, 0 when none is held. Jobs held
 * for half their lease (a keeper that should have given them back could not) go back
 * rather than run on a lease about to end. */
static int sp__pop_held(sp_consumer *c, sp_job *job, sp_err *err)
{
    if (c->nheld == 0)
        return 0;
    if (sp_mono_ms() - c->held_at > c->lease_n / 2) {
        int rc = sp__give_back(c, c->q.r, err);
        return rc < 0 ? rc : 0;
    }
    *job = c->held[c->held_first];
    sp_job_init(&c->held[c->held_first]);
    c->held_first++;
    c->nheld--;
    return 1;
}

static int sp__next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err)
{
    int64_t deadline = sp_mono_ms() + (block_ms > 0 ? block_ms : 0);
    for (;;) {
        int rc = sp__pop_held(c, job, err);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (c->recover) {
            rc = sp__recover(c, err);
            if (rc < 0)
                return rc;
        }
        /* Record what is held, start what is claimed, and take jobs without waiting:
         * a batch while jobs are short, else one. */
        /* Record what is held and start what is claimed. Prefetching, the same step
         * claims the next batch (whose records the step after it reads with pipelined
         * HGETALLs, cheaper for Redis than a script returning them); otherwise it takes
         * one job without waiting, claiming and starting it in this one call. */
        int window = sp__window(c);
        sp__step_req req = {.start = true, .claim = window, .own = -1};
        if (c->nclaimed == 0 && window == 0)
            req.take = 1;
        rc = sp__step(c, c->q.r, &req, err);
        if (rc < 0)
            return rc;
        if (c->nheld > 0 || c->nclaimed > 0)
            continue;
        int64_t left = deadline - sp_mono_ms();
        if (left <= 0)
            return sp_err_set(err, SP_ETIMEDOUT, "no job arrived");
        /* With a queue paused, look again now and then: a resume is a key going away,
         * which no blocking wait sees. */
        bool any_paused = false;
        for (size_t i = 0; i < c->nq; i++)
            any_paused |= c->paused[i];
        if (any_paused && left > SP_PAUSED_RECHECK_MS)
            left = SP_PAUSED_RECHECK_MS;
        sp__claim got;
        pthread_mutex_unlock(&c->mu);
        rc = sp__wait(c, left, got.id, &got.qi, err);
        pthread_mutex_lock(&c->mu);
        if (rc < 0)
            return rc;
        if (rc == 0 && (!any_paused || sp_mono_ms() >= deadline))
            return sp_err_set(err, SP_ETIMEDOUT, "no job arrived");
        if (rc == 0)
            continue;
        if (c->nclaimed < SP_BATCH)
            c->claimed[c->nclaimed++] = got;
    }
}

int sp_consumer_next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err)
{
    sp_job_init(job);
    pthread_mutex_lock(&c->mu);
    int rc = sp__next(c, block_ms, job, err);
    if (rc == SP_EREDIS)
        c->recover = true;
    pthread_mutex_unlock(&c->mu);
    if (rc == 0)
        c->job_t0 = sp_mono_us();
    return rc;
}

int sp_consumer_finish(sp_consumer *c, const sp_job *job, const sp_outcome *o, bool take_next,
                       sp_state *new_state, sp_err *err)
{
    if (o->mode < SP_FINISH_SUCCEEDED || o->mode > SP_FINISH_RELEASE)
        return sp_err_set(err, SP_EINVAL, "bad finish mode");
    if (!sp_id_valid(job->id) || !sp_queue_name_valid(job->queue))
        return sp_err_set(err, SP_EINVAL, "finish: bad job");
    int64_t ran_us = sp_mono_us() - c->job_t0;
    if (o->mode != SP_FINISH_RELEASE)
        c->last_us = ran_us;
    pthread_mutex_lock(&c->mu);
    int own = sp__done_add(c, job, o, ran_us / 1000, err);
    if (own < 0) {
        pthread_mutex_unlock(&c->mu);
        return own;
    }
    int window = sp__window(c);
    /* A job started ahead runs next and jobs are short: report this one with the
     * batch's round trip. */
    if (take_next && window > 0 && c->nheld > 0 && o->mode != SP_FINISH_RELEASE &&
        c->ndone < SP_BATCH) {
        pthread_mutex_unlock(&c->mu);
        return 1;
    }
    /* Record now. The same step starts what is claimed and claims the next batch
     * (prefetching), or takes and starts the next job: sp_consumer_next then hands it
     * out without a round trip. */
    sp__step_req req = {.own = own, .own_rc = 1}; /* 1: not recorded */
    if (take_next && c->nheld == 0) {
        req.start = true;
        if (window > 0)
            req.claim = window;
        else if (c->nclaimed == 0)
            req.take = 1;
    }
    int rc = sp__step(c, c->q.r, &req, err);
    pthread_mutex_unlock(&c->mu);
    if (req.own_rc == 1)
        return rc < 0 ? rc : sp_err_set(err, SP_EPROTO, "finish: not recorded");
    if (req.own_rc == SP_ELOST)
        return sp_err_set(err, SP_ELOST,
                          "lease lost: the lease expired or another attempt owns the job");
    if (req.own_rc < 0)
        return sp_err_set(err, req.own_rc, "finish: unexpected reply");
    if (new_state)
        *new_state = req.own_state;
    return 0;
}

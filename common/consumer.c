/* consumer.c - the worker side of the queue: take, start, finish (see queue.h). */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/util.h"

#define SP_CONSUMER_MAXQ 16

struct sp_consumer {
    sp_queue q; /* the main connection */
    char worker[128];
    size_t nq;
    char queues[SP_CONSUMER_MAXQ][SP_QUEUE_MAX + 1];
    sp_key ready[SP_CONSUMER_MAXQ];
    sp_key claim[SP_CONSUMER_MAXQ];
    char lease_ms[24];
    char retention_ms[24];
    /* A job claimed by the previous finish (or a start that failed to reach Redis),
     * to be started by the next sp_consumer_next. */
    bool has_pending;
    char pending[SP_ID_LEN + 1];
    size_t pending_q;
    /* Prefetch: while jobs take under prefetch_ms, finishing one also starts the next
     * (claimed earlier) and claims another, all in one round trip. */
    int64_t prefetch_ms;
    int64_t job_t0;       /* when the current job was handed out (monotonic ms) */
    int64_t last_ms;      /* how long the previous job took */
    bool has_started;     /* a job already started by a pipelined finish */
    sp_job started;
    /* After a connection error an id may sit on a claim list without us knowing
     * (the move ran, its answer was lost): look there before taking more. */
    bool recover;
    /* One extra connection per queue, for blocking on several queues at once. */
    sp_redis *block[SP_CONSUMER_MAXQ];
    char url[512];
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
    snprintf(c->url, sizeof c->url, "%s", o->url);
    snprintf(c->worker, sizeof c->worker, "%s", o->worker_id);
    for (size_t i = 0; i < o->nqueues; i++) {
        if (!sp_queue_name_valid(o->queues[i])) {
            sp_err_set(err, SP_EINVAL, "bad queue name '%s'", o->queues[i]);
            sp_consumer_free(c);
            return NULL;
        }
        snprintf(c->queues[i], sizeof c->queues[i], "%s", o->queues[i]);
        sp__key_q(&c->ready[i], c->q.prefix, c->queues[i], "ready");
        sp__key_claim(&c->claim[i], c->q.prefix, c->worker, c->queues[i]);
    }
    c->nq = o->nqueues;
    snprintf(c->lease_ms, sizeof c->lease_ms, "%lld",
             (long long)(o->lease_ms > 0 ? o->lease_ms : 30000));
    snprintf(c->retention_ms, sizeof c->retention_ms, "%lld",
             (long long)(o->retention_ms > 0 ? o->retention_ms : 604800000));
    c->prefetch_ms = o->prefetch_ms > 0 ? o->prefetch_ms : 0;
    c->last_ms = INT64_MAX;
    return c;
}

/* Give one claimed, not started id back to the front of its queue. */
static int sp__unclaim(sp_consumer *c, const char *id, size_t qi, sp_err *err)
{
    const char *keys[] = {c->claim[qi].s, c->ready[qi].s};
    const char *args[] = {id};
    redisReply *rep;
    int rc = sp_redis_eval(c->q.r, SP_LUA_UNCLAIM, 2, keys, 1, args, NULL, &rep, err);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_consumer_give_back(sp_consumer *c, sp_err *err)
{
    int rc = 0;
    if (c->has_started) {
        /* Started by a pipelined finish but never handed out: back to the queue now,
         * without counting the attempt. Not retried: if this fails its lease runs out. */
        sp_outcome o = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
        c->has_started = false;
        rc = sp_consumer_finish(c, &c->started, &o, false, NULL, err);
        sp_job_clear(&c->started);
    }
    if (c->has_pending) {
        sp_err e;
        int urc = sp__unclaim(c, c->pending, c->pending_q, &e);
        if (urc == 0)
            c->has_pending = false;
        else if (rc == 0 && err)
            *err = e;
        if (rc == 0)
            rc = urc;
    }
    return rc == SP_ELOST ? 0 : rc; /* lost: the job is someone else's already */
}

void sp_consumer_free(sp_consumer *c)
{
    if (c == NULL)
        return;
    sp_err e;
    sp_consumer_give_back(c, &e);
    for (size_t i = 0; i < SP_CONSUMER_MAXQ; i++)
        sp_redis_free(c->block[i]);
    sp__queue_fini(&c->q);
    sp_free(c);
}

sp_queue *sp_consumer_queue(sp_consumer *c)
{
    return &c->q;
}

/* Move the next ready id into our claim list without waiting: 1 when one was taken,
 * 0 when every queue is empty. */
static int sp__take(sp_consumer *c, char id[SP_ID_LEN + 1], size_t *qi, sp_err *err)
{
    const char *keys[2 * SP_CONSUMER_MAXQ];
    for (size_t i = 0; i < c->nq; i++) {
        keys[2 * i] = c->ready[i].s;
        keys[2 * i + 1] = c->claim[i].s;
    }
    redisReply *rep;
    int rc = sp_redis_eval(c->q.r, SP_LUA_TAKE, (int)(2 * c->nq), keys, 0, NULL, NULL, &rep, err);
    if (rc < 0)
        return rc;
    int64_t idx = sp_reply_int(sp_reply_elem(rep, 0), 0);
    size_t n;
    const char *v = sp_reply_str(sp_reply_elem(rep, 1), &n);
    rc = 0;
    if (idx >= 1 && (size_t)idx <= c->nq && v != NULL && n == SP_ID_LEN) {
        memcpy(id, v, SP_ID_LEN + 1);
        *qi = (size_t)idx - 1;
        rc = 1;
    }
    sp_redis_reply_free(rep);
    return rc;
}

static void sp__blmove_argv(sp_consumer *c, size_t i, char *timeout, int64_t ms,
                            const char *argv[6])
{
    snprintf(timeout, 32, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
    argv[0] = "BLMOVE";
    argv[1] = c->ready[i].s;
    argv[2] = c->claim[i].s;
    argv[3] = "RIGHT";
    argv[4] = "LEFT";
    argv[5] = timeout;
}

/* Copy a BLMOVE reply's id. 1 when it is an id, 0 for nil. */
static int sp__moved_id(const redisReply *rep, char id[SP_ID_LEN + 1])
{
    size_t n;
    const char *v = sp_reply_str(rep, &n);
    if (v == NULL || n != SP_ID_LEN)
        return 0;
    memcpy(id, v, SP_ID_LEN + 1);
    return 1;
}

/* Wait for a job on any of our queues for up to ms: 1 with id and *qi, 0 on timeout.
 * One queue blocks on the main connection; several block on one connection each and
 * unblock the others (CLIENT UNBLOCK) once one delivers. */
static int sp__wait(sp_consumer *c, int64_t ms, char id[SP_ID_LEN + 1], size_t *qi,
                    sp_err *err)
{
    const char *argv[6];
    char timeout[32];
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
        if (c->block[i] == NULL) {
            c->block[i] = sp__redis_open(c->url, err);
            if (c->block[i] == NULL)
                return err ? err->code : SP_ENOMEM;
        }
        rc = sp_redis_connect(c->block[i], err);
    }
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < c->nq; i++) {
        sp__blmove_argv(c, i, timeout, ms, argv);
        rc = sp_redis_send(c->block[i], err, 6, argv, NULL);
        if (rc < 0) {
            /* Connections that did get a BLMOVE are dropped: cheaper than draining. */
            for (size_t j = 0; j < i; j++)
                sp_redis_disconnect(c->block[j]);
            return rc;
        }
    }
    bool done[SP_CONSUMER_MAXQ] = {false};
    size_t ndone = 0;
    int found = 0;
    bool unblocked = false;
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
                    sp_err e2;
                    sp__unclaim(c, got, i, &e2); /* if this fails, it is reaped with us */
                }
            }
            sp_redis_reply_free(rep);
        }
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

/* The arguments of one start.lua call. */
typedef struct sp__start_call {
    char token[SP_TOKEN_LEN + 1];
    sp_key k[3];
    const char *keys[3];
    const char *args[5];
} sp__start_call;

static int sp__start_prepare(sp_consumer *c, const char *id, size_t qi, sp__start_call *s,
                             sp_err *err)
{
    unsigned char raw[SP_TOKEN_LEN / 2];
    if (sp_random_bytes(raw, sizeof raw) < 0)
        return sp_err_set(err, SP_EIO, "no randomness for a lease token");
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->token + 2 * i, 3, "%02x", raw[i]);
    const char *p = c->q.prefix;
    s->keys[0] = sp__key_job(&s->k[0], p, id);
    s->keys[1] = c->claim[qi].s;
    s->keys[2] = sp__key_q(&s->k[1], p, c->queues[qi], "leases");
    s->args[0] = id;
    s->args[1] = c->worker;
    s->args[2] = s->token;
    s->args[3] = c->lease_ms;
    s->args[4] = sp__chan_job(&s->k[2], p, id);
    return 0;
}

/* Read the two replies of a start: the script's and the HGETALL pipelined after it.
 * 0 with *job filled when started, 1 when the id was not ours or not wanted any more,
 * or an error (SP_EREDIS: the connection failed mid-way). */
static int sp__start_read(sp_consumer *c, const redisReply *script, const sp__start_call *s,
                          sp_job *job, sp_err *err)
{
    sp_job_init(job);
    redisReply *rec = NULL;
    int rc = sp_redis_read(c->q.r, &rec, err);
    if (rc < 0)
        return rc;
    if (!sp_reply_is(sp_reply_elem(script, 0), "ok")) {
        sp_redis_reply_free(rec);
        return 1;
    }
    rc = sp__job_from_reply(rec, s->args[0], job, err);
    sp_redis_reply_free(rec);
    if (rc == 0 && strcmp(job->token, s->token) != 0) {
        sp_job_clear(job);
        rc = sp_err_set(err, SP_EPROTO, "start: token mismatch");
    }
    return rc;
}

/* Queue an HGETALL of the job a start call starts, to run right after the script. */
static int sp__start_append_read(sp_consumer *c, const sp__start_call *s, sp_err *err)
{
    const char *argv[] = {"HGETALL", s->keys[0]};
    return sp_redis_append(c->q.r, err, 2, argv, NULL);
}

static void sp__set_pending(sp_consumer *c, const char *id, size_t qi)
{
    c->has_pending = true;
    memcpy(c->pending, id, SP_ID_LEN + 1);
    c->pending_q = qi;
}

/* Start a claimed id: 0 with *job filled, 1 when the id was not ours or not wanted any
 * more (skipped), or an error. With prefetch on, the same round trip claims the next
 * job. */
static int sp__start(sp_consumer *c, const char *id, size_t qi, sp_job *job, sp_err *err)
{
    sp__start_call s;
    int rc = sp__start_prepare(c, id, qi, &s, err);
    if (rc < 0)
        return rc;
    bool prefetch = c->prefetch_ms > 0 && c->last_ms < c->prefetch_ms && !c->has_pending;
    const char *tkeys[2 * SP_CONSUMER_MAXQ];
    for (size_t i = 0; prefetch && i < c->nq; i++) {
        tkeys[2 * i] = c->ready[i].s;
        tkeys[2 * i + 1] = c->claim[i].s;
    }
    char sid[SP_ID_LEN + 1];
    memcpy(sid, id, sizeof sid);
    rc = sp_redis_append_eval(c->q.r, SP_LUA_START, 3, s.keys, 5, s.args, NULL, err);
    if (rc == 0)
        rc = sp__start_append_read(c, &s, err);
    if (rc == 0 && prefetch)
        rc = sp_redis_append_eval(c->q.r, SP_LUA_TAKE, (int)(2 * c->nq), tkeys, 0, NULL, NULL,
                                  err);
    redisReply *rep = NULL;
    if (rc == 0)
        rc = sp_redis_read(c->q.r, &rep, err);
    if (rc == 0) {
        rc = sp__start_read(c, rep, &s, job, err);
        if (rc == SP_EREDIS) {
            sp_redis_reply_free(rep);
            return rc; /* it may have started; if so its lease runs out */
        }
    } else {
        /* Keep the id: it is still on our claim list unless the script ran. A script
         * error leaves replies unread: drop the connection rather than read them. */
        if (rc != SP_EREDIS)
            sp_redis_disconnect(c->q.r);
        sp_redis_reply_free(rep);
        sp__set_pending(c, sid, qi);
        return rc;
    }
    sp_redis_reply_free(rep);
    if (prefetch) {
        redisReply *t = NULL;
        sp_err e2;
        if (sp_redis_read(c->q.r, &t, &e2) == 0) {
            int64_t idx = sp_reply_int(sp_reply_elem(t, 0), 0);
            size_t n;
            const char *v = sp_reply_str(sp_reply_elem(t, 1), &n);
            if (idx >= 1 && (size_t)idx <= c->nq && v != NULL && n == SP_ID_LEN)
                sp__set_pending(c, v, (size_t)idx - 1);
        } else {
            c->recover = true;
        }
        sp_redis_reply_free(t);
    }
    return rc;
}

static int sp__next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err);

/* Find an id left on one of our claim lists: 1 with id and *qi, 0 when none. */
static int sp__recover(sp_consumer *c, char id[SP_ID_LEN + 1], size_t *qi, sp_err *err)
{
    for (size_t i = 0; i < c->nq; i++) {
        const char *argv[] = {"LINDEX", c->claim[i].s, "-1"};
        redisReply *rep;
        int rc = sp_redis_cmd(c->q.r, &rep, err, 3, argv, NULL);
        if (rc < 0)
            return rc;
        int got = sp__moved_id(rep, id);
        sp_redis_reply_free(rep);
        if (got) {
            *qi = i;
            return 1;
        }
    }
    c->recover = false;
    return 0;
}

int sp_consumer_next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err)
{
    int rc = sp__next(c, block_ms, job, err);
    if (rc == SP_EREDIS)
        c->recover = true;
    if (rc == 0)
        c->job_t0 = sp_mono_ms();
    return rc;
}

static int sp__next(sp_consumer *c, int64_t block_ms, sp_job *job, sp_err *err)
{
    sp_job_init(job);
    if (c->has_started) {
        *job = c->started;
        sp_job_init(&c->started);
        c->has_started = false;
        return 0;
    }
    int64_t deadline = sp_mono_ms() + (block_ms > 0 ? block_ms : 0);
    for (;;) {
        char id[SP_ID_LEN + 1];
        size_t qi = 0;
        int rc;
        if (c->has_pending) {
            memcpy(id, c->pending, sizeof id);
            qi = c->pending_q;
            c->has_pending = false;
        } else if (c->recover && (rc = sp__recover(c, id, &qi, err)) != 0) {
            if (rc < 0)
                return rc;
        } else {
            rc = sp__take(c, id, &qi, err);
            if (rc < 0)
                return rc;
            if (rc == 0) {
                int64_t left = deadline - sp_mono_ms();
                if (left <= 0)
                    return sp_err_set(err, SP_ETIMEDOUT, "no job arrived");
                rc = sp__wait(c, left, id, &qi, err);
                if (rc < 0)
                    return rc;
                if (rc == 0)
                    return sp_err_set(err, SP_ETIMEDOUT, "no job arrived");
            }
        }
        rc = sp__start(c, id, qi, job, err);
        if (rc <= 0)
            return rc;
    }
}

static const char *const sp__modes[] = {"succeeded", "retry", "failed", "cancelled", "release"};

int sp_consumer_finish(sp_consumer *c, const sp_job *job, const sp_outcome *o, bool take_next,
                       sp_state *new_state, sp_err *err)
{
    if (o->mode < SP_FINISH_SUCCEEDED || o->mode > SP_FINISH_RELEASE)
        return sp_err_set(err, SP_EINVAL, "bad finish mode");
    if (!sp_id_valid(job->id) || !sp_queue_name_valid(job->queue))
        return sp_err_set(err, SP_EINVAL, "finish: bad job");
    if (o->mode != SP_FINISH_RELEASE)
        c->last_ms = sp_mono_ms() - c->job_t0;
    /* Prefetching (short jobs): start the job claimed earlier in this same round trip,
     * and claim the one after it. Otherwise claim the next job only. */
    bool start_pending = take_next && c->has_pending && !c->has_started &&
                         c->prefetch_ms > 0 && c->last_ms < c->prefetch_ms;
    bool claim = take_next && (!c->has_pending || start_pending);
    const char *p = c->q.prefix;
    const char *q = job->queue;
    sp_key k[7];
    const char *keys[9 + 2 * SP_CONSUMER_MAXQ];
    keys[0] = sp__key_job(&k[0], p, job->id);
    keys[1] = sp__key_q(&k[1], p, q, "leases");
    keys[2] = sp__key_q(&k[2], p, q, "ready");
    keys[3] = sp__key_q(&k[3], p, q, "delayed");
    keys[4] = sp__key_q(&k[4], p, q, "dead");
    keys[5] = sp__key_q(&k[5], p, q, "stats");
    int nkeys = 6;
    for (size_t i = 0; claim && i < c->nq; i++) {
        keys[nkeys++] = c->ready[i].s;
        keys[nkeys++] = c->claim[i].s;
    }
    char delay[24];
    int64_t d = o->delay_ms;
    if (o->mode == SP_FINISH_RETRY && d < 0)
        d = sp_retry_delay_ms(job->attempts, job->retry_base_ms, job->retry_cap_ms);
    snprintf(delay, sizeof delay, "%lld", (long long)(d > 0 ? d : 0));
    const char *code = o->error_code ? o->error_code : "";
    const char *msg = o->error_message ? o->error_message : "";
    if ((o->mode == SP_FINISH_RETRY || o->mode == SP_FINISH_FAILED) && code[0] == '\0')
        code = "failed";
    bool retryable = o->mode == SP_FINISH_RETRY;
    sp__start_call sc;
    char started_id[SP_ID_LEN + 1];
    size_t started_q = 0;
    const char *args[16] = {job->id,
                            job->token,
                            sp__modes[o->mode],
                            c->retention_ms,
                            o->outputs_json ? o->outputs_json : "[]",
                            o->metadata_json ? o->metadata_json : "",
                            code,
                            msg,
                            retryable ? "1" : "0",
                            delay,
                            sp__chan_job(&k[6], p, job->id),
                            ""};
    int nargs = 12;
    int rc = 0;
    if (start_pending) {
        memcpy(started_id, c->pending, sizeof started_id);
        started_q = c->pending_q;
        c->has_pending = false;
        rc = sp__start_prepare(c, started_id, started_q, &sc, err);
        /* The claimed job's keys go between the job's and the claim pairs. */
        memmove(keys + 9, keys + 6, (size_t)(nkeys - 6) * sizeof *keys);
        keys[6] = sc.keys[0];
        keys[7] = sc.keys[1];
        keys[8] = sc.keys[2];
        nkeys += 3;
        args[11] = sc.args[0];
        args[12] = sc.args[1];
        args[13] = sc.args[2];
        args[14] = sc.args[3];
        args[15] = sc.args[4];
        nargs = 16;
    }
    redisReply *rep = NULL;
    if (rc == 0)
        rc = sp_redis_append_eval(c->q.r, SP_LUA_FINISH, nkeys, keys, nargs, args, NULL, err);
    if (rc == 0 && start_pending)
        rc = sp__start_append_read(c, &sc, err);
    if (rc == 0)
        rc = sp_redis_read(c->q.r, &rep, err);
    if (rc < 0) {
        if (rc != SP_EREDIS)
            sp_redis_disconnect(c->q.r); /* replies may be left unread */
        if (start_pending)
            sp__set_pending(c, started_id, started_q); /* try it again next time */
        if (rc == SP_EREDIS)
            c->recover = true; /* it may have started; if so its lease runs out */
        sp_redis_reply_free(rep);
        return rc;
    }
    const char *outcome = sp_reply_str(sp_reply_elem(rep, 0), NULL);
    int64_t idx = sp_reply_int(sp_reply_elem(rep, 1), 0);
    size_t n;
    const char *nid = sp_reply_str(sp_reply_elem(rep, 2), &n);
    if (idx >= 1 && (size_t)idx <= c->nq && nid && n == SP_ID_LEN)
        sp__set_pending(c, nid, (size_t)idx - 1);
    if (start_pending) {
        sp_err e2;
        int src = sp__start_read(c, sp_reply_elem(rep, 3), &sc, &c->started, &e2);
        if (src == 0)
            c->has_started = true;
        else if (src == SP_EREDIS)
            c->recover = true; /* it started; its lease runs out and it is redone */
    }
    sp_state st;
    if (outcome == NULL)
        rc = sp_err_set(err, SP_EPROTO, "finish: unexpected reply");
    else if (strcmp(outcome, "lost") == 0)
        rc = sp_err_set(err, SP_ELOST,
                        "lease lost: the lease expired or another attempt owns the job");
    else if (sp_state_parse(outcome, &st) == 0 && new_state)
        *new_state = st;
    sp_redis_reply_free(rep);
    return rc;
}

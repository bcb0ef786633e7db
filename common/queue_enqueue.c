/* queue_enqueue.c - producing: one job (a script when it needs checks, else MULTI/EXEC),
 * many jobs in one pipeline, and idempotency-key lookups. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/sha256.h"
#include "spool/util.h"

#define SP_ENQ_KEYS 8
#define SP_ENQ_ARGS 28
#define SP_ENQ_FIELDS 9 /* args[SP_ENQ_FIELDS..] are the record's field, value pairs */

typedef struct sp__enq_call {
    sp_key k[SP_ENQ_KEYS];
    const char *keys[SP_ENQ_KEYS];
    int nkeys;
    const char *args[SP_ENQ_ARGS];
    int nargs;
    char limit[24], ttl[24], maxatt[24], base[24], cap[24], created[24], cbatt[24], due[24];
} sp__enq_call;

static int sp__enq_build(sp_queue *q, const sp_enqueue *e, sp__enq_call *c, sp_err *err)
{
    if (e->id == NULL || !sp_id_valid(e->id))
        return sp_err_set(err, SP_EINVAL, "enqueue: bad job id");
    if (e->type == NULL || e->type[0] == '\0' || strlen(e->type) > SP_TYPE_MAX)
        return sp_err_set(err, SP_EINVAL, "enqueue: bad job type");
    if (e->queue == NULL || strlen(e->queue) > SP_QUEUE_MAX || e->queue[0] == '\0')
        return sp_err_set(err, SP_EINVAL, "enqueue: bad queue name");
    if (e->idem_key && e->fingerprint == NULL)
        return sp_err_set(err, SP_EINVAL, "enqueue: idempotency key without a fingerprint");
    const char *p = q->prefix;
    c->keys[0] = sp__key_job(&c->k[0], p, e->id);
    c->keys[1] = sp__key_q(&c->k[1], p, e->queue, "ready");
    c->keys[2] = sp__key(&c->k[2], p, "jobs");
    c->keys[3] = sp__key_q(&c->k[3], p, e->queue, "stats");
    c->keys[4] = sp__key(&c->k[4], p, "queues");
    c->keys[5] = sp__key(&c->k[5], p, "events");
    c->keys[6] = sp__key_q(&c->k[6], p, e->queue, "delayed");
    c->nkeys = 7;
    if (e->idem_key) {
        char digest[65];
        int rc = sp_sha256_hex_of(e->idem_key, strlen(e->idem_key), digest, err);
        if (rc < 0)
            return rc;
        c->keys[7] = sp__key_idem(&c->k[7], p, digest);
        c->nkeys = 8;
    }
    if (e->run_at_ms > 0)
        snprintf(c->due, sizeof c->due, "%lld", (long long)e->run_at_ms);
    else if (e->delay_ms > 0)
        snprintf(c->due, sizeof c->due, "+%lld", (long long)e->delay_ms);
    else
        c->due[0] = '\0';
    snprintf(c->limit, sizeof c->limit, "%lld", (long long)(e->queue_limit > 0 ? e->queue_limit : 0));
    snprintf(c->ttl, sizeof c->ttl, "%lld",
             (long long)(e->idem_ttl_ms > 0 ? e->idem_ttl_ms : 86400000));
    snprintf(c->maxatt, sizeof c->maxatt, "%lld",
             (long long)(e->max_attempts > 0 ? e->max_attempts : 1));
    snprintf(c->base, sizeof c->base, "%lld", (long long)(e->retry_base_ms > 0 ? e->retry_base_ms : 1000));
    snprintf(c->cap, sizeof c->cap, "%lld",
             (long long)(e->retry_cap_ms > 0 ? e->retry_cap_ms : 300000));
    snprintf(c->created, sizeof c->created, "%lld",
             (long long)(e->created_at > 0 ? e->created_at : sp_now_ms()));
    int n = 0;
    c->args[n++] = e->id;
    c->args[n++] = e->queue;
    c->args[n++] = c->limit;
    c->args[n++] = e->high_priority ? "high" : "normal";
    c->args[n++] = c->ttl;
    c->args[n++] = e->fingerprint ? e->fingerprint : "";
    c->args[n++] = c->created;
    c->args[n++] = c->due;
    c->args[n++] = e->new_id ? "1" : "";
    c->args[n++] = "type";
    c->args[n++] = e->type;
    c->args[n++] = "max_attempts";
    c->args[n++] = c->maxatt;
    c->args[n++] = "retry_base_ms";
    c->args[n++] = c->base;
    c->args[n++] = "retry_cap_ms";
    c->args[n++] = c->cap;
    if (e->high_priority) {
        c->args[n++] = "priority";
        c->args[n++] = "high";
    }
    if (e->params_json) {
        c->args[n++] = "params";
        c->args[n++] = e->params_json;
    }
    if (e->input_json) {
        c->args[n++] = "input";
        c->args[n++] = e->input_json;
    }
    if (e->callback_url) {
        snprintf(c->cbatt, sizeof c->cbatt, "%lld",
                 (long long)(e->callback_attempts > 0 ? e->callback_attempts : 12));
        c->args[n++] = "callback_url";
        c->args[n++] = e->callback_url;
        c->args[n++] = "callback_attempts";
        c->args[n++] = c->cbatt;
    }
    c->nargs = n;
    return 0;
}

/* A plain enqueue (no idempotency key, no length limit) needs no check, so it runs as
 * MULTI/EXEC instead of a script: the records and the queue entries still appear
 * together or not at all, at a fraction of a script's cost in Redis. A run of plain
 * enqueues shares one transaction: one HSET per record, then one push per (queue, end)
 * with every id in order, one ZADD to the index, one HINCRBY per queue and one SADD. */
#define SP_ENQ_BATCH 128

static bool sp__enq_plain(const sp_enqueue *e)
{
    return e->idem_key == NULL && e->queue_limit <= 0 && e->run_at_ms <= 0 &&
           e->delay_ms <= 0 && !e->new_id;
}

/* The queues of a batch, each with its pushes to either end of its ready list. */
typedef struct sp__enq_group {
    const char *queue;
    size_t pushed[2]; /* [0] LPUSH (normal), [1] RPUSH (high priority) */
} sp__enq_group;

/* The index of queue's group in g[0..*ng), added when new. */
static size_t sp__enq_group_of(sp__enq_group *g, size_t *ng, const char *queue)
{
    for (size_t i = 0; i < *ng; i++)
        if (strcmp(g[i].queue, queue) == 0)
            return i;
    g[*ng] = (sp__enq_group){queue, {0, 0}};
    return (*ng)++;
}

/* Append one transaction enqueueing e[0..m) (all plain, already validated by
 * sp__enq_build, m <= SP_ENQ_BATCH); *nreplies is how many replies it will produce. */
static int sp__enq_append_batch(sp_queue *q, const sp_enqueue *e, size_t m,
                                const sp__enq_call *calls, size_t *nreplies, sp_err *err)
{
    const char *one[6 + 2 * SP_ENQ_BATCH];
    char evbuf[SP_ENQ_BATCH][SP_QUEUE_MAX + SP_TYPE_MAX + 16];
    sp__enq_group groups[SP_ENQ_BATCH];
    size_t group[SP_ENQ_BATCH]; /* each job's group */
    size_t ng = 0, sent = 0;
    one[0] = "MULTI";
    int rc = sp_redis_append(q->r, err, 1, one, NULL);
    sent++;
    for (size_t i = 0; i < m && rc == 0; i++, sent++) {
        const sp__enq_call *c = &calls[i];
        const char *hset[2 + 8 + SP_ENQ_ARGS];
        int n = 0;
        hset[n++] = "HSET";
        hset[n++] = c->keys[0];
        hset[n++] = "queue";
        hset[n++] = e[i].queue;
        hset[n++] = "state";
        hset[n++] = "queued";
        hset[n++] = "version";
        hset[n++] = "1";
        hset[n++] = "created_at";
        hset[n++] = c->created;
        for (int a = SP_ENQ_FIELDS; a < c->nargs; a++) /* the field, value pairs */
            hset[n++] = c->args[a];
        rc = sp_redis_append(q->r, err, n, hset, NULL);
        group[i] = sp__enq_group_of(groups, &ng, e[i].queue);
        groups[group[i]].pushed[e[i].high_priority ? 1 : 0]++;
    }
    for (size_t gi = 0; gi < ng && rc == 0; gi++) {
        for (int end = 0; end < 2 && rc == 0; end++) {
            if (groups[gi].pushed[end] == 0)
                continue;
            sp_key k;
            int n = 0;
            one[n++] = end ? "RPUSH" : "LPUSH";
            one[n++] = sp__key_q(&k, q->prefix, groups[gi].queue, "ready");
            for (size_t i = 0; i < m; i++)
                if (group[i] == gi && (e[i].high_priority ? 1 : 0) == end)
                    one[n++] = e[i].id;
            rc = sp_redis_append(q->r, err, n, one, NULL);
            sent++;
        }
    }
    if (rc == 0) {
        sp_key k;
        int n = 0;
        one[n++] = "ZADD";
        one[n++] = sp__key(&k, q->prefix, "jobs");
        for (size_t i = 0; i < m; i++) {
            one[n++] = calls[i].created;
            one[n++] = e[i].id;
        }
        rc = sp_redis_append(q->r, err, n, one, NULL);
        sent++;
    }
    if (rc == 0) {
        /* One entry of the events stream for the batch (lib.lua's event()). */
        sp_key k;
        int n = 0;
        one[n++] = "XADD";
        one[n++] = sp__key(&k, q->prefix, "events");
        one[n++] = "MAXLEN";
        one[n++] = "~";
        one[n++] = SP_EVENTS_KEEP;
        one[n++] = "*";
        for (size_t i = 0; i < m; i++) {
            char *v = evbuf[i];
            snprintf(v, sizeof evbuf[i], "queued 0 %s %s", e[i].queue, e[i].type);
            one[n++] = e[i].id;
            one[n++] = v;
        }
        rc = sp_redis_append(q->r, err, n, one, NULL);
        sent++;
    }
    for (size_t gi = 0; gi < ng && rc == 0; gi++, sent++) {
        sp_key k;
        char count[24];
        snprintf(count, sizeof count, "%zu", groups[gi].pushed[0] + groups[gi].pushed[1]);
        const char *incr[] = {"HINCRBY", sp__key_q(&k, q->prefix, groups[gi].queue, "stats"),
                              "enqueued", count};
        rc = sp_redis_append(q->r, err, 4, incr, NULL);
    }
    if (rc == 0) {
        sp_key k;
        int n = 0;
        one[n++] = "SADD";
        one[n++] = sp__key(&k, q->prefix, "queues");
        for (size_t gi = 0; gi < ng; gi++)
            one[n++] = groups[gi].queue;
        rc = sp_redis_append(q->r, err, n, one, NULL);
        sent++;
    }
    if (rc == 0) {
        one[0] = "EXEC";
        rc = sp_redis_append(q->r, err, 1, one, NULL);
        sent++;
    }
    *nreplies = sent;
    return rc;
}

/* Read a batch's replies: 0 when EXEC ran every command. */
static int sp__enq_read_batch(sp_queue *q, size_t nreplies, sp_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < nreplies; i++) {
        redisReply *rep;
        int r = sp_redis_read(q->r, &rep, err);
        if (r == SP_EREDIS)
            return r;
        if (r < 0 && rc == 0)
            rc = r;
        if (r == 0 && i == nreplies - 1 && rep->type != REDIS_REPLY_ARRAY)
            rc = sp_err_set(err, SP_EPROTO, "enqueue: the transaction was aborted");
        sp_redis_reply_free(rep);
    }
    return rc;
}

static int sp__enq_result(const redisReply *rep, char existing_id[SP_ID_LEN + 1], sp_err *err)
{
    const redisReply *status = sp_reply_elem(rep, 0);
    const char *val = sp_reply_str(sp_reply_elem(rep, 1), NULL);
    if (status == NULL || val == NULL)
        return sp_err_set(err, SP_EPROTO, "enqueue: unexpected reply");
    if (sp_reply_is(status, "ok"))
        return 0;
    if (sp_reply_is(status, "full"))
        return sp_err_set(err, SP_EFULL, "queue is full (%s jobs waiting)", val);
    if (existing_id)
        snprintf(existing_id, SP_ID_LEN + 1, "%s", val);
    if (sp_reply_is(status, "exists"))
        return 1;
    if (sp_reply_is(status, "conflict"))
        return sp_err_set(err, SP_ECONFLICT,
                          "Idempotency-Key was already used for a different request (job %s)",
                          val);
    return sp_err_set(err, SP_EPROTO, "enqueue: unexpected status");
}

int sp_queue_enqueue(sp_queue *q, const sp_enqueue *e, char existing_id[SP_ID_LEN + 1],
                     sp_err *err)
{
    sp__enq_call c;
    int rc = sp__enq_build(q, e, &c, err);
    if (rc < 0)
        return rc;
    if (sp__enq_plain(e)) {
        size_t nreplies;
        rc = sp__enq_append_batch(q, e, 1, &c, &nreplies, err);
        return rc < 0 ? rc : sp__enq_read_batch(q, nreplies, err);
    }
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_ENQUEUE, c.nkeys, c.keys, c.nargs, c.args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    rc = sp__enq_result(rep, existing_id, err);
    sp_redis_reply_free(rep);
    return rc;
}

/* What enqueue_many sent in one go: a transaction of plain enqueues, or one script. */
typedef struct sp__enq_seg {
    size_t first, count, nreplies;
    bool batch;
} sp__enq_seg;

int sp_queue_enqueue_many(sp_queue *q, const sp_enqueue *e, size_t n, int *results,
                          sp_err *err)
{
    /* Built calls live until their batch is appended: at most SP_ENQ_BATCH at once. */
    size_t ncalls = n == 0 ? 1 : n < SP_ENQ_BATCH ? n : SP_ENQ_BATCH;
    sp__enq_call *calls = sp_malloc(ncalls * sizeof *calls);
    sp__enq_seg *segs = sp_malloc((n ? n : 1) * sizeof *segs);
    if (calls == NULL || segs == NULL) {
        sp_free(calls);
        sp_free(segs);
        for (size_t j = 0; j < n; j++)
            results[j] = SP_ENOMEM;
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    /* Send everything, then read: one round trip for the lot. A job that fails
     * validation stops the sending; it and every job after it get its error. */
    size_t sent = 0, nseg = 0;
    int rc = 0;
    while (sent < n && rc == 0) {
        sp__enq_seg *sg = &segs[nseg];
        if (!sp__enq_plain(&e[sent])) {
            rc = sp__enq_build(q, &e[sent], &calls[0], err);
            if (rc == 0)
                rc = sp_redis_append_eval(q->r, SP_LUA_ENQUEUE, calls[0].nkeys, calls[0].keys,
                                          calls[0].nargs, calls[0].args, NULL, err);
            if (rc == 0) {
                *sg = (sp__enq_seg){sent, 1, 1, false};
                sent++;
                nseg++;
            }
            continue;
        }
        size_t m = 0;
        while (sent + m < n && m < SP_ENQ_BATCH && sp__enq_plain(&e[sent + m]) &&
               (rc = sp__enq_build(q, &e[sent + m], &calls[m], err)) == 0)
            m++;
        int invalid = rc; /* job sent + m failed validation */
        if (m > 0) {
            size_t nreplies = 0;
            rc = sp__enq_append_batch(q, &e[sent], m, calls, &nreplies, err);
            if (rc < 0)
                continue;
            *sg = (sp__enq_seg){sent, m, nreplies, true};
            sent += m;
            nseg++;
        }
        rc = invalid;
    }
    bool lost = false;
    for (size_t si = 0; si < nseg && !lost; si++) {
        const sp__enq_seg *sg = &segs[si];
        sp_err one;
        int r;
        if (sg->batch) {
            r = sp__enq_read_batch(q, sg->nreplies, &one);
        } else {
            redisReply *rep;
            r = sp_redis_read(q->r, &rep, &one);
            if (r == 0)
                r = sp__enq_result(rep, NULL, &one);
            sp_redis_reply_free(rep);
        }
        if (r == SP_EREDIS) {
            for (size_t j = sg->first; j < n; j++)
                results[j] = SP_EREDIS;
            if (err)
                *err = one;
            rc = SP_EREDIS;
            lost = true;
        }
        for (size_t j = sg->first; j < sg->first + sg->count && !lost; j++)
            results[j] = r;
    }
    for (size_t j = sent; j < n && !lost; j++)
        results[j] = rc;
    sp_free(calls);
    sp_free(segs);
    return rc;
}

int sp_queue_idem_lookup(sp_queue *q, const char *idem_key, char existing_id[SP_ID_LEN + 1],
                         sp_err *err)
{
    char digest[65];
    int rc = sp_sha256_hex_of(idem_key, strlen(idem_key), digest, err);
    if (rc < 0)
        return rc;
    sp_key k;
    const char *argv[] = {"GET", sp__key_idem(&k, q->prefix, digest)};
    redisReply *rep;
    rc = sp_redis_cmd(q->r, &rep, err, 2, argv, NULL);
    if (rc < 0)
        return rc;
    size_t n;
    const char *v = sp_reply_str(rep, &n);
    rc = 0;
    if (v && n > SP_ID_LEN && v[SP_ID_LEN] == ' ') {
        memcpy(existing_id, v, SP_ID_LEN);
        existing_id[SP_ID_LEN] = '\0';
        rc = sp_id_valid(existing_id) ? 1 : 0;
    }
    sp_redis_reply_free(rep);
    return rc;
}

bool sp_queue_unanswered(const sp_queue *q)
{
    return sp_redis_unanswered(q->r);
}

int sp_queue_wait_replicas(sp_queue *q, int n, int64_t timeout_ms, sp_err *err)
{
    uint64_t gen = sp_redis_generation(q->r);
    char channel[SP_PREFIX_MAX + 16], nbuf[16], msbuf[24];
    snprintf(channel, sizeof channel, "%sfence", q->prefix);
    const char *pub[] = {"PUBLISH", channel, ""};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 3, pub, NULL);
    if (rc < 0)
        return rc;
    sp_redis_reply_free(rep);
    if (sp_redis_generation(q->r) != gen)
        return 0;
    snprintf(nbuf, sizeof nbuf, "%d", n);
    snprintf(msbuf, sizeof msbuf, "%lld", (long long)(timeout_ms > 0 ? timeout_ms : 1));
    const char *wait[] = {"WAIT", nbuf, msbuf};
    rc = sp_redis_cmd_blocking(q->r, timeout_ms, &rep, err, 3, wait, NULL);
    if (rc < 0)
        return rc;
    int64_t acked = sp_reply_int(rep, -1);
    sp_redis_reply_free(rep);
    if (acked < 0)
        return sp_err_set(err, SP_EPROTO, "WAIT: unexpected reply");
    /* Replicas of a master that a failover has already replaced (frozen or cut off
     * while it happened) confirm writes the sentinels will throw away. */
    if (acked >= n && sp_redis_master_moved(q->r))
        return 0;
    return (int)(acked > n ? n : acked);
}

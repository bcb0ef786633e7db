/* queue.c - producing, reading, administration, lease renewal and maintenance. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/sha256.h"
#include "spool/util.h"

int sp__prefix_copy(char out[SP_PREFIX_MAX + 1], const char *prefix, sp_err *err)
{
    size_t n = prefix ? strlen(prefix) : 0;
    if (n > SP_PREFIX_MAX)
        return sp_err_set(err, SP_EINVAL, "key prefix longer than %d bytes", SP_PREFIX_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)prefix[i];
        if (c <= ' ' || c >= 0x7f)
            return sp_err_set(err, SP_EINVAL, "key prefix has a space or control character");
    }
    memcpy(out, prefix ? prefix : "", n + 1);
    return 0;
}

/* Read-only calls are made twice when the first finds the connection broken: after
 * Redis restarts, the first call on an old connection fails and the second reconnects.
 * Writes are never repeated this way. */
static bool sp__retry_read(const sp_queue *q, int rc)
{
    return rc == SP_EREDIS && sp_redis_stale_error(q->r);
}

int sp__queue_init(sp_queue *q, const char *url, const char *prefix, sp_err *err)
{
    memset(q, 0, sizeof *q);
    int rc = sp__prefix_copy(q->prefix, prefix, err);
    if (rc < 0)
        return rc;
    q->r = sp__redis_open(url, err);
    return q->r ? 0 : (err ? err->code : SP_EINVAL);
}

void sp__queue_fini(sp_queue *q)
{
    sp_redis_free(q->r);
    q->r = NULL;
}

sp_queue *sp_queue_open(const char *url, const char *prefix, sp_err *err)
{
    sp_queue *q = sp_malloc(sizeof *q);
    if (q == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (sp__queue_init(q, url, prefix, err) < 0) {
        sp_free(q);
        return NULL;
    }
    return q;
}

void sp_queue_close(sp_queue *q)
{
    if (q == NULL)
        return;
    sp__queue_fini(q);
    sp_free(q);
}

static int sp__ping_once(sp_queue *q, sp_err *err)
{
    redisReply *rep;
    const char *argv[] = {"PING"};
    int rc = sp_redis_cmd(q->r, &rep, err, 1, argv, NULL);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_ping(sp_queue *q, sp_err *err)
{
    int rc = sp__ping_once(q, err);
    return sp__retry_read(q, rc) ? sp__ping_once(q, err) : rc;
}

int sp__job_from_reply(const redisReply *r, const char *id, sp_job *job, sp_err *err)
{
    sp_job_init(job);
    if (id && sp_id_valid(id))
        memcpy(job->id, id, SP_ID_LEN + 1);
    size_t n = sp_reply_len(r);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return sp_err_set(err, SP_EPROTO, "job record: unexpected reply");
    if (n == 0)
        return sp_err_set(err, SP_ENOTFOUND, "no such job");
    for (size_t i = 0; i + 1 < n; i += 2) {
        size_t vlen;
        const char *name = sp_reply_str(sp_reply_elem(r, i), NULL);
        const redisReply *v = sp_reply_elem(r, i + 1);
        const char *val = sp_reply_str(v, &vlen);
        char num[24];
        if (val == NULL && v && v->type == REDIS_REPLY_INTEGER) {
            /* Values a script computed come back as integers. */
            vlen = (size_t)snprintf(num, sizeof num, "%lld", (long long)v->integer);
            val = num;
        }
        if (name == NULL || val == NULL)
            continue;
        if (sp_job_set_field(job, name, val, vlen) < 0) {
            sp_job_clear(job);
            return sp_err_set(err, SP_ENOMEM, "out of memory reading a job");
        }
    }
    if (!sp_id_valid(job->id)) {
        sp_job_clear(job);
        return sp_err_set(err, SP_ENOTFOUND, "no such job");
    }
    /* Scripts write only the timestamp of the change they make: the latest is when
     * the job was last updated. */
    int64_t t[] = {job->created_at, job->started_at, job->finished_at};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (t[i] > job->updated_at)
            job->updated_at = t[i];
    return 0;
}

/* ---- producing ---------------------------------------------------------------- */

#define SP_ENQ_KEYS 6
#define SP_ENQ_ARGS 22

typedef struct sp__enq_call {
    sp_key k[SP_ENQ_KEYS];
    const char *keys[SP_ENQ_KEYS];
    int nkeys;
    const char *args[SP_ENQ_ARGS];
    int nargs;
    char limit[24], ttl[24], maxatt[24], base[24], cap[24], created[24];
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
    c->nkeys = 5;
    if (e->idem_key) {
        char digest[65];
        int rc = sp_sha256_hex_of(e->idem_key, strlen(e->idem_key), digest, err);
        if (rc < 0)
            return rc;
        c->keys[5] = sp__key_idem(&c->k[5], p, digest);
        c->nkeys = 6;
    }
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
    return e->idem_key == NULL && e->queue_limit <= 0;
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
    const char *one[2 + 2 * SP_ENQ_BATCH];
    sp__enq_group groups[SP_ENQ_BATCH];
    size_t group[SP_ENQ_BATCH]; /* each job's group */
    size_t ng = 0, sent = 0;
    one[0] = "MULTI";
    int rc = sp_redis_append(q->r, err, 1, one, NULL);
    sent++;
    for (size_t i = 0; i < m && rc == 0; i++, sent++) {
        const sp__enq_call *c = &calls[i];
        const char *hset[2 + 2 * 12];
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
        for (int a = 7; a < c->nargs; a++) /* the field, value pairs */
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

/* ---- reading and administration ---------------------------------------------- */

static int sp__get_once(sp_queue *q, const char *id, sp_job *out, sp_err *err)
{
    sp_job_init(out);
    if (!sp_id_valid(id))
        return sp_err_set(err, SP_ENOTFOUND, "no such job");
    sp_key k;
    const char *argv[] = {"HGETALL", sp__key_job(&k, q->prefix, id)};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 2, argv, NULL);
    if (rc < 0)
        return rc;
    rc = sp__job_from_reply(rep, id, out, err);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_get(sp_queue *q, const char *id, sp_job *out, sp_err *err)
{
    int rc = sp__get_once(q, id, out, err);
    return sp__retry_read(q, rc) ? sp__get_once(q, id, out, err) : rc;
}

/* Read just the queue a job is on. */
static int sp__job_queue_once(sp_queue *q, const char *id, char queue[SP_QUEUE_MAX + 1], sp_err *err)
{
    if (!sp_id_valid(id))
        return sp_err_set(err, SP_ENOTFOUND, "no such job");
    sp_key k;
    const char *argv[] = {"HGET", sp__key_job(&k, q->prefix, id), "queue"};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 3, argv, NULL);
    if (rc < 0)
        return rc;
    size_t n;
    const char *v = sp_reply_str(rep, &n);
    if (v == NULL || n == 0 || n > SP_QUEUE_MAX)
        rc = sp_err_set(err, SP_ENOTFOUND, "no such job");
    else
        memcpy(queue, v, n + 1);
    sp_redis_reply_free(rep);
    return rc;
}

static int sp__job_queue(sp_queue *q, const char *id, char queue[SP_QUEUE_MAX + 1], sp_err *err)
{
    int rc = sp__job_queue_once(q, id, queue, err);
    return sp__retry_read(q, rc) ? sp__job_queue_once(q, id, queue, err) : rc;
}

int sp_queue_cancel(sp_queue *q, const char *id, int64_t retention_ms, sp_err *err)
{
    char queue[SP_QUEUE_MAX + 1];
    int rc = sp__job_queue(q, id, queue, err);
    if (rc < 0)
        return rc;
    const char *p = q->prefix;
    sp_key k[5];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "ready"),
                          sp__key_q(&k[2], p, queue, "delayed"),
                          sp__key_q(&k[3], p, queue, "stats")};
    char ret[24];
    snprintf(ret, sizeof ret, "%lld", (long long)(retention_ms > 0 ? retention_ms : 604800000));
    const char *args[] = {id, ret, sp__chan_job(&k[4], p, id)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_CANCEL, 4, keys, 3, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    const redisReply *st = sp_reply_elem(rep, 0);
    if (sp_reply_is(st, "cancelled"))
        rc = 0;
    else if (sp_reply_is(st, "requested"))
        rc = 1;
    else if (sp_reply_is(st, "ended"))
        rc = sp_err_set(err, SP_ESTATE, "job has already ended (%s)",
                        sp_reply_str(sp_reply_elem(rep, 1), NULL) ?: "?");
    else if (sp_reply_is(st, "notfound"))
        rc = sp_err_set(err, SP_ENOTFOUND, "no such job");
    else
        rc = sp_err_set(err, SP_EPROTO, "cancel: unexpected reply");
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_requeue(sp_queue *q, const char *id, sp_err *err)
{
    char queue[SP_QUEUE_MAX + 1];
    int rc = sp__job_queue(q, id, queue, err);
    if (rc < 0)
        return rc;
    const char *p = q->prefix;
    sp_key k[5];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "dead"),
                          sp__key_q(&k[2], p, queue, "ready"),
                          sp__key_q(&k[3], p, queue, "stats")};
    const char *args[] = {id, sp__chan_job(&k[4], p, id)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_REQUEUE, 4, keys, 2, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    const redisReply *st = sp_reply_elem(rep, 0);
    if (sp_reply_is(st, "queued"))
        rc = 0;
    else if (sp_reply_is(st, "notfound"))
        rc = sp_err_set(err, SP_ENOTFOUND, "no such job");
    else if (sp_reply_is(st, "state"))
        rc = sp_err_set(err, SP_ESTATE, "only failed jobs can be retried (job is %s)",
                        sp_reply_str(sp_reply_elem(rep, 1), NULL) ?: "?");
    else
        rc = sp_err_set(err, SP_EPROTO, "requeue: unexpected reply");
    sp_redis_reply_free(rep);
    return rc;
}

#define SP_LIST_SCAN_MAX 10000
#define SP_LIST_BATCH 256

static int sp__list_once(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n, sp_err *err)
{
    *n = 0;
    size_t limit = f->limit;
    if (limit == 0)
        return 0;
    sp_key k;
    const char *index = sp__key(&k, q->prefix, "jobs");
    for (size_t start = 0; start < SP_LIST_SCAN_MAX && *n < limit; start += SP_LIST_BATCH) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%zu", start);
        snprintf(b, sizeof b, "%zu", start + SP_LIST_BATCH - 1);
        const char *argv[] = {"ZREVRANGE", index, a, b};
        redisReply *ids;
        int rc = sp_redis_cmd(q->r, &ids, err, 4, argv, NULL);
        if (rc < 0)
            return rc;
        size_t m = sp_reply_len(ids);
        for (size_t i = 0; i < m && rc == 0; i++) {
            const char *id = sp_reply_str(sp_reply_elem(ids, i), NULL);
            sp_key jk;
            const char *hv[] = {"HGETALL", sp__key_job(&jk, q->prefix, id ? id : "")};
            rc = sp_redis_append(q->r, err, 2, hv, NULL);
        }
        for (size_t i = 0; i < m && rc == 0; i++) {
            redisReply *rep;
            rc = sp_redis_read(q->r, &rep, err);
            if (rc < 0)
                break;
            sp_job j;
            sp_err e2;
            int r = sp__job_from_reply(rep, sp_reply_str(sp_reply_elem(ids, i), NULL), &j, &e2);
            sp_redis_reply_free(rep);
            if (r == SP_ENOTFOUND)
                continue; /* expired between the index read and now */
            if (r < 0) {
                rc = r;
                if (err)
                    *err = e2;
                break;
            }
            bool keep = *n < limit && (!f->has_state || j.state == f->state) &&
                        (f->type == NULL || strcmp(f->type, j.type) == 0);
            if (keep)
                out[(*n)++] = j;
            else
                sp_job_clear(&j);
        }
        sp_redis_reply_free(ids);
        if (rc < 0) {
            for (size_t i = 0; i < *n; i++)
                sp_job_clear(&out[i]);
            *n = 0;
            return rc;
        }
        if (m < SP_LIST_BATCH)
            break;
    }
    return 0;
}

int sp_queue_list(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n, sp_err *err)
{
    int rc = sp__list_once(q, f, out, n, err);
    return sp__retry_read(q, rc) ? sp__list_once(q, f, out, n, err) : rc;
}

static void sp__stat_counters(sp_queue_stat *s, const redisReply *h)
{
    for (size_t i = 0; i + 1 < sp_reply_len(h); i += 2) {
        const char *name = sp_reply_str(sp_reply_elem(h, i), NULL);
        int64_t v = sp_reply_int(sp_reply_elem(h, i + 1), 0);
        if (name == NULL)
            continue;
        if (!strcmp(name, "enqueued"))
            s->enqueued = v;
        else if (!strcmp(name, "succeeded"))
            s->succeeded = v;
        else if (!strcmp(name, "failed"))
            s->failed = v;
        else if (!strcmp(name, "cancelled"))
            s->cancelled = v;
        else if (!strcmp(name, "retried"))
            s->retried = v;
        else if (!strcmp(name, "expired"))
            s->expired = v;
        else if (!strcmp(name, "requeued"))
            s->requeued = v;
    }
}

static int sp__stat_one_once(sp_queue *q, const char *queue, sp_queue_stat *s, sp_err *err)
{
    memset(s, 0, sizeof *s);
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    snprintf(s->name, sizeof s->name, "%s", queue);
    const char *p = q->prefix;
    sp_key k[5];
    const char *c0[] = {"LLEN", sp__key_q(&k[0], p, queue, "ready")};
    const char *c1[] = {"ZCARD", sp__key_q(&k[1], p, queue, "leases")};
    const char *c2[] = {"ZCARD", sp__key_q(&k[2], p, queue, "delayed")};
    const char *c3[] = {"ZCARD", sp__key_q(&k[3], p, queue, "dead")};
    const char *c4[] = {"HGETALL", sp__key_q(&k[4], p, queue, "stats")};
    const char *const *cmds[] = {c0, c1, c2, c3, c4};
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = sp_redis_append(q->r, err, 2, (const char **)cmds[i], NULL);
    int64_t *depth[] = {&s->ready, &s->running, &s->delayed, &s->dead};
    for (int i = 0; i < 5 && rc == 0; i++) {
        redisReply *rep;
        rc = sp_redis_read(q->r, &rep, err);
        if (rc < 0)
            break;
        if (i < 4)
            *depth[i] = sp_reply_int(rep, 0);
        else
            sp__stat_counters(s, rep);
        sp_redis_reply_free(rep);
    }
    return rc;
}

int sp_queue_stat_one(sp_queue *q, const char *queue, sp_queue_stat *s, sp_err *err)
{
    int rc = sp__stat_one_once(q, queue, s, err);
    return sp__retry_read(q, rc) ? sp__stat_one_once(q, queue, s, err) : rc;
}

static int sp__cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int sp__stats_once(sp_queue *q, sp_queue_stat *out, size_t max, size_t *n, sp_err *err)
{
    *n = 0;
    sp_key k;
    const char *argv[] = {"SMEMBERS", sp__key(&k, q->prefix, "queues")};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 2, argv, NULL);
    if (rc < 0)
        return rc;
    size_t m = sp_reply_len(rep);
    const char **names = sp_calloc(m ? m : 1, sizeof *names);
    if (names == NULL) {
        sp_redis_reply_free(rep);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    size_t valid = 0;
    for (size_t i = 0; i < m; i++) {
        const char *name = sp_reply_str(sp_reply_elem(rep, i), NULL);
        if (name && sp_queue_name_valid(name))
            names[valid++] = name;
    }
    qsort(names, valid, sizeof *names, sp__cmp_str);
    for (size_t i = 0; i < valid && *n < max && rc == 0; i++) {
        rc = sp_queue_stat_one(q, names[i], &out[*n], err);
        if (rc == 0)
            (*n)++;
    }
    sp_free(names);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_stats(sp_queue *q, sp_queue_stat *out, size_t max, size_t *n, sp_err *err)
{
    int rc = sp__stats_once(q, out, max, n, err);
    return sp__retry_read(q, rc) ? sp__stats_once(q, out, max, n, err) : rc;
}

/* ---- workers ------------------------------------------------------------------ */

void sp_worker_id_new(char out[128], const char *host)
{
    char h[48];
    size_t j = 0;
    for (const char *s = host ? host : "host"; *s && j < sizeof h - 1; s++) {
        char c = *s;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        h[j++] = ok ? c : '_';
    }
    h[j] = '\0';
    snprintf(out, 128, "%s-%ld-%06llx", j ? h : "host", (long)getpid(),
             (unsigned long long)sp_random_below(0x1000000));
}

int sp_queue_worker_beat(sp_queue *q, const sp_worker_info *w, int64_t ttl_ms, sp_err *err)
{
    const char *p = q->prefix;
    sp_key k[2];
    const char *keys[] = {sp__key(&k[0], p, "workers"), sp__key_worker(&k[1], p, w->id)};
    char ttl[24], pid[24], conc[24], started[24], processed[24], failed[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    snprintf(pid, sizeof pid, "%lld", (long long)w->pid);
    snprintf(conc, sizeof conc, "%lld", (long long)w->concurrency);
    snprintf(started, sizeof started, "%lld", (long long)w->started_at);
    snprintf(processed, sizeof processed, "%lld", (long long)w->processed);
    snprintf(failed, sizeof failed, "%lld", (long long)w->failed);
    const char *args[] = {w->id,     ttl,      "id",       w->id,     "kind",       w->kind,
                          "host",    w->host,  "pid",      pid,       "queues",     w->queues,
                          "concurrency", conc, "started_at", started, "current",   w->current,
                          "processed", processed, "failed", failed};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_WORKER_BEAT, 2, keys, (int)(sizeof args / sizeof *args),
                           args, NULL, &rep, err);
    sp_redis_reply_free(rep);
    return rc;
}

/* Run worker_leave for worker_id in mode ("leave" or "reap") over the queues in the
 * worker's record. *moved gets the number of jobs given back (-1: worker alive). */
static int sp__worker_leave(sp_queue *q, const char *worker_id, const char *mode, int *moved,
                            sp_err *err)
{
    const char *p = q->prefix;
    char list[256] = "";
    { /* the queues the worker registered */
        sp_key wk;
        const char *argv[] = {"HGET", sp__key_worker(&wk, p, worker_id), "queues"};
        redisReply *rep;
        int rc = sp_redis_cmd(q->r, &rep, err, 3, argv, NULL);
        if (rc < 0)
            return rc;
        const char *v = sp_reply_str(rep, NULL);
        if (v)
            snprintf(list, sizeof list, "%s", v);
        sp_redis_reply_free(rep);
    }
    enum { MAXQ = 16 };
    const char *names[MAXQ];
    size_t nnames = 0;
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name && nnames < MAXQ;
         name = strtok_r(NULL, ",", &save))
        names[nnames++] = name;

    sp_key k[2 + 2 * MAXQ];
    const char *keys[2 + 2 * MAXQ];
    int nkeys = 0;
    keys[nkeys] = sp__key(&k[nkeys], p, "workers");
    nkeys++;
    keys[nkeys] = sp__key_worker(&k[nkeys], p, worker_id);
    nkeys++;
    for (size_t i = 0; i < nnames; i++) {
        if (!sp_queue_name_valid(names[i]))
            continue;
        keys[nkeys] = sp__key_claim(&k[nkeys], p, worker_id, names[i]);
        nkeys++;
        keys[nkeys] = sp__key_q(&k[nkeys], p, names[i], "ready");
        nkeys++;
    }
    const char *args[] = {worker_id, mode};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_WORKER_LEAVE, nkeys, keys, 2, args, NULL, &rep, err);
    if (rc == 0 && moved)
        *moved = (int)sp_reply_int(rep, 0);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_worker_leave(sp_queue *q, const char *worker_id, sp_err *err)
{
    return sp__worker_leave(q, worker_id, "leave", NULL, err);
}

static void sp__worker_field(sp_worker_info *w, const char *name, const char *v)
{
#define SP_CPY(f) snprintf(w->f, sizeof w->f, "%s", v)
    if (!strcmp(name, "kind"))
        SP_CPY(kind);
    else if (!strcmp(name, "host"))
        SP_CPY(host);
    else if (!strcmp(name, "queues"))
        SP_CPY(queues);
    else if (!strcmp(name, "current"))
        SP_CPY(current);
    else if (!strcmp(name, "pid"))
        w->pid = strtoll(v, NULL, 10);
    else if (!strcmp(name, "concurrency"))
        w->concurrency = strtoll(v, NULL, 10);
    else if (!strcmp(name, "started_at"))
        w->started_at = strtoll(v, NULL, 10);
    else if (!strcmp(name, "last_seen"))
        w->last_seen = strtoll(v, NULL, 10);
    else if (!strcmp(name, "processed"))
        w->processed = strtoll(v, NULL, 10);
    else if (!strcmp(name, "failed"))
        w->failed = strtoll(v, NULL, 10);
#undef SP_CPY
}

static int sp__workers_once(sp_queue *q, sp_worker_info *out, size_t max, size_t *n, sp_err *err)
{
    *n = 0;
    const char *p = q->prefix;
    sp_key k;
    const char *t[] = {"TIME"};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 1, t, NULL);
    if (rc < 0)
        return rc;
    int64_t now = sp_reply_int(sp_reply_elem(rep, 0), 0) * 1000 +
                  sp_reply_int(sp_reply_elem(rep, 1), 0) / 1000;
    sp_redis_reply_free(rep);
    char min[24];
    snprintf(min, sizeof min, "%lld", (long long)now);
    const char *argv[] = {"ZRANGEBYSCORE", sp__key(&k, p, "workers"), min, "+inf"};
    rc = sp_redis_cmd(q->r, &rep, err, 4, argv, NULL);
    if (rc < 0)
        return rc;
    size_t m = sp_reply_len(rep);
    if (m > max)
        m = max;
    for (size_t i = 0; i < m && rc == 0; i++) {
        sp_key wk;
        const char *id = sp_reply_str(sp_reply_elem(rep, i), NULL);
        const char *hv[] = {"HGETALL", sp__key_worker(&wk, p, id ? id : "")};
        rc = sp_redis_append(q->r, err, 2, hv, NULL);
    }
    for (size_t i = 0; i < m && rc == 0; i++) {
        redisReply *h;
        rc = sp_redis_read(q->r, &h, err);
        if (rc < 0)
            break;
        sp_worker_info *w = &out[*n];
        memset(w, 0, sizeof *w);
        snprintf(w->id, sizeof w->id, "%s", sp_reply_str(sp_reply_elem(rep, i), NULL) ?: "");
        for (size_t j = 0; j + 1 < sp_reply_len(h); j += 2) {
            const char *name = sp_reply_str(sp_reply_elem(h, j), NULL);
            const char *v = sp_reply_str(sp_reply_elem(h, j + 1), NULL);
            if (name && v)
                sp__worker_field(w, name, v);
        }
        if (sp_reply_len(h) > 0)
            (*n)++;
        sp_redis_reply_free(h);
    }
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_workers(sp_queue *q, sp_worker_info *out, size_t max, size_t *n, sp_err *err)
{
    int rc = sp__workers_once(q, out, max, n, err);
    return sp__retry_read(q, rc) ? sp__workers_once(q, out, max, n, err) : rc;
}

/* ---- running attempts ---------------------------------------------------------- */

int sp_queue_renew(sp_queue *q, const char *id, const char *token, int64_t lease_ms,
                   int progress, bool *cancel, sp_err *err)
{
    char queue[SP_QUEUE_MAX + 1];
    int rc = sp__job_queue(q, id, queue, err);
    if (rc == SP_ENOTFOUND)
        return sp_err_set(err, SP_ELOST, "job no longer exists");
    if (rc < 0)
        return rc;
    const char *p = q->prefix;
    sp_key k[3];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "leases")};
    char lease[24], prog[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    snprintf(prog, sizeof prog, "%d", progress < -1 ? -1 : progress > 100 ? 100 : progress);
    const char *args[] = {id, token, lease, prog, sp__chan_job(&k[2], p, id)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_RENEW, 2, keys, 5, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    if (sp_reply_is(sp_reply_elem(rep, 0), "ok")) {
        if (cancel)
            *cancel = sp_reply_is(sp_reply_elem(rep, 1), "1");
    } else {
        rc = sp_err_set(err, SP_ELOST, "lease lost: the job was given to another attempt");
    }
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_annotate(sp_queue *q, const char *id, const char *token, const char *metadata_json,
                      sp_err *err)
{
    if (!sp_id_valid(id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    sp_key k[2];
    const char *keys[] = {sp__key_job(&k[0], q->prefix, id)};
    const char *args[] = {token, metadata_json, sp__chan_job(&k[1], q->prefix, id)};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_ANNOTATE, 1, keys, 3, args, NULL, &rep, err);
    if (rc == 0 && sp_reply_int(rep, 0) != 1)
        rc = sp_err_set(err, SP_ELOST, "lease lost: the job was given to another attempt");
    sp_redis_reply_free(rep);
    return rc;
}

/* ---- maintenance --------------------------------------------------------------- */

#define SP_MAINT_BATCH 100
#define SP_MAINT_MAXQ 16

/* Run one per-id script (promote or expire) for every id in ids, pipelined, and count
 * the ids it acted on. */
static int sp__maint_each(sp_queue *q, const redisReply *ids, const char *queue, int script,
                          const char *retention, int *count, sp_err *err)
{
    const char *p = q->prefix;
    size_t m = sp_reply_len(ids);
    size_t sent = 0;
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++) {
        const char *id = sp_reply_str(sp_reply_elem(ids, i), NULL);
        if (id == NULL || !sp_id_valid(id))
            continue;
        sp_key k[6];
        if (script == SP_LUA_PROMOTE) {
            const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "delayed"),
                                  sp__key_q(&k[2], p, queue, "ready")};
            const char *args[] = {id, sp__chan_job(&k[3], p, id)};
            rc = sp_redis_append_eval(q->r, SP_LUA_PROMOTE, 3, keys, 2, args, NULL, err);
        } else {
            const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "leases"),
                                  sp__key_q(&k[2], p, queue, "ready"),
                                  sp__key_q(&k[3], p, queue, "dead"),
                                  sp__key_q(&k[4], p, queue, "stats")};
            const char *args[] = {id, retention, sp__chan_job(&k[5], p, id)};
            rc = sp_redis_append_eval(q->r, SP_LUA_EXPIRE, 5, keys, 3, args, NULL, err);
        }
        if (rc == 0)
            sent++;
    }
    for (size_t i = 0; i < sent; i++) {
        redisReply *rep;
        int r = sp_redis_read(q->r, &rep, err);
        if (r == SP_EREDIS)
            return r;
        if (r == 0 && (script == SP_LUA_PROMOTE ? sp_reply_int(rep, 0) == 1
                                               : !sp_reply_is(rep, "no")))
            (*count)++;
        if (r < 0 && rc == 0)
            rc = r;
        sp_redis_reply_free(rep);
    }
    return rc;
}

int sp_queue_maintain(sp_queue *q, const char *const *queues, size_t nqueues,
                      int64_t retention_ms, sp_maint_report *report, sp_err *err)
{
    sp_maint_report rep0 = {0, 0, 0, 0};
    sp_maint_report *r = report ? report : &rep0;
    memset(r, 0, sizeof *r);
    if (nqueues > SP_MAINT_MAXQ)
        return sp_err_set(err, SP_EINVAL, "too many queues (max %d)", SP_MAINT_MAXQ);
    const char *p = q->prefix;
    sp_key k[2 + 3 * SP_MAINT_MAXQ];
    const char *keys[2 + 3 * SP_MAINT_MAXQ];
    int nkeys = 0;
    keys[nkeys] = sp__key(&k[nkeys], p, "jobs");
    nkeys++;
    keys[nkeys] = sp__key(&k[nkeys], p, "workers");
    nkeys++;
    for (size_t i = 0; i < nqueues; i++) {
        if (!sp_queue_name_valid(queues[i]))
            return sp_err_set(err, SP_EINVAL, "bad queue name '%s'", queues[i]);
        keys[nkeys] = sp__key_q(&k[nkeys], p, queues[i], "delayed");
        nkeys++;
        keys[nkeys] = sp__key_q(&k[nkeys], p, queues[i], "leases");
        nkeys++;
        keys[nkeys] = sp__key_q(&k[nkeys], p, queues[i], "dead");
        nkeys++;
    }
    char limit[16], ret[24];
    snprintf(limit, sizeof limit, "%d", SP_MAINT_BATCH);
    snprintf(ret, sizeof ret, "%lld", (long long)(retention_ms > 0 ? retention_ms : 604800000));
    const char *args[] = {limit, ret};
    redisReply *scan;
    int rc = sp_redis_eval(q->r, SP_LUA_SCAN, nkeys, keys, 2, args, NULL, &scan, err);
    if (rc < 0)
        return rc;
    const redisReply *dead = sp_reply_elem(scan, 1);
    for (size_t i = 0; i < sp_reply_len(dead) && rc == 0; i++) {
        const char *wid = sp_reply_str(sp_reply_elem(dead, i), NULL);
        int moved = 0;
        if (wid == NULL)
            continue;
        rc = sp__worker_leave(q, wid, "reap", &moved, err);
        if (rc == 0 && moved >= 0) {
            r->workers_reaped++;
            r->reclaimed += moved;
        }
    }
    for (size_t i = 0; i < nqueues && rc == 0; i++) {
        rc = sp__maint_each(q, sp_reply_elem(scan, 2 + 2 * i), queues[i], SP_LUA_PROMOTE, ret,
                            &r->promoted, err);
        if (rc == 0)
            rc = sp__maint_each(q, sp_reply_elem(scan, 3 + 2 * i), queues[i], SP_LUA_EXPIRE, ret,
                                &r->expired, err);
    }
    sp_redis_reply_free(scan);
    return rc;
}

int64_t sp_retry_delay_ms(int64_t attempt, int64_t base_ms, int64_t cap_ms)
{
    if (attempt < 1)
        attempt = 1;
    if (base_ms < 1)
        base_ms = 1;
    if (cap_ms < base_ms)
        cap_ms = base_ms;
    int64_t ceiling = base_ms;
    for (int64_t i = 1; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return (int64_t)sp_random_below((uint64_t)ceiling + 1);
}

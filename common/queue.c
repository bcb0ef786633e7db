/* queue.c - the queue handle, what the other queue files share, and the calls on one
 * job by id: read, cancel, requeue. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
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

bool sp__retry_read(const sp_queue *q, int rc)
{
    return sp_redis_retry_read(q->r, rc);
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

/* ---- one job by id --------------------------------------------------------- */

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

int sp__job_queue(sp_queue *q, const char *id, char queue[SP_QUEUE_MAX + 1], sp_err *err)
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
    sp_key k[11];
    const char *keys[9] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "ready"),
                           sp__key_q(&k[2], p, queue, "delayed"),
                           sp__key_q(&k[3], p, queue, "stats"), sp__key(&k[4], p, "events")};
    sp__webhook_keys(&k[5], p, &keys[5]);
    char ret[24];
    snprintf(ret, sizeof ret, "%lld", (long long)(retention_ms > 0 ? retention_ms : 604800000));
    const char *args[] = {id, ret, sp__chan_job(&k[9], p, id), sp__key_job_prefix(&k[10], p)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_CANCEL, 9, keys, 4, args, NULL, &rep, err);
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
    sp_key k[6];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "dead"),
                          sp__key_q(&k[2], p, queue, "ready"),
                          sp__key_q(&k[3], p, queue, "stats"), sp__key(&k[5], p, "events")};
    const char *args[] = {id, sp__chan_job(&k[4], p, id)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_REQUEUE, 5, keys, 2, args, NULL, &rep, err);
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

/* queue_dead.c - a queue's dead-letter set: reading it a page at a time, and retrying
 * or purging its jobs in bulk (the dashboard's dead-letter page). */
#include <stdio.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/config.h"
#include "spool/util.h"

static int sp__dead_list_once(sp_queue *q, const char *queue, size_t offset, size_t max,
                              sp_job *out, size_t *n, int64_t *total, sp_err *err)
{
    *n = 0;
    *total = 0;
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    sp_key dk;
    const char *dead = sp__key_q(&dk, q->prefix, queue, "dead");
    const char *card[] = {"ZCARD", dead};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 2, card, NULL);
    if (rc < 0)
        return rc;
    *total = sp_reply_int(rep, 0);
    sp_redis_reply_free(rep);
    if (max == 0)
        return 0;
    char a[24], b[24];
    snprintf(a, sizeof a, "%zu", offset);
    snprintf(b, sizeof b, "%zu", offset + max - 1);
    const char *range[] = {"ZREVRANGE", dead, a, b};
    redisReply *ids;
    rc = sp_redis_cmd(q->r, &ids, err, 4, range, NULL);
    if (rc < 0)
        return rc;
    size_t m = sp_reply_len(ids);
    rc = sp__append_records(q, ids, err);
    for (size_t i = 0; i < m && rc == 0; i++) {
        rc = sp_redis_read(q->r, &rep, err);
        if (rc < 0)
            break;
        sp_err e2;
        int r = sp__job_from_reply(rep, sp_reply_str(sp_reply_elem(ids, i), NULL), &out[*n], &e2);
        sp_redis_reply_free(rep);
        if (r == 0)
            (*n)++;
        else if (r != SP_ENOTFOUND) {
            rc = r;
            if (err)
                *err = e2;
        }
    }
    sp_redis_reply_free(ids);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            sp_job_clear(&out[i]);
        *n = 0;
    }
    return rc;
}

int sp_queue_dead_list(sp_queue *q, const char *queue, size_t offset, size_t max, sp_job *out,
                       size_t *n, int64_t *total, sp_err *err)
{
    int rc = sp__dead_list_once(q, queue, offset, max, out, n, total, err);
    return sp__retry_read(q, rc) ? sp__dead_list_once(q, queue, offset, max, out, n, total, err)
                                 : rc;
}

static int sp__dead_ids_once(sp_queue *q, const char *queue, size_t max,
                             char (*ids)[SP_ID_LEN + 1], size_t *n, sp_err *err)
{
    *n = 0;
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    if (max == 0)
        return 0;
    sp_key dk;
    char b[24];
    snprintf(b, sizeof b, "%zu", max - 1);
    const char *range[] = {"ZREVRANGE", sp__key_q(&dk, q->prefix, queue, "dead"), "0", b};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 4, range, NULL);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sp_reply_len(rep) && *n < max; i++) {
        const char *id = sp_reply_str(sp_reply_elem(rep, i), NULL);
        if (id && sp_id_valid(id))
            memcpy(ids[(*n)++], id, SP_ID_LEN + 1);
    }
    sp_redis_reply_free(rep);
    return 0;
}

int sp_queue_dead_ids(sp_queue *q, const char *queue, size_t max, char (*ids)[SP_ID_LEN + 1],
                      size_t *n, sp_err *err)
{
    int rc = sp__dead_ids_once(q, queue, max, ids, n, err);
    return sp__retry_read(q, rc) ? sp__dead_ids_once(q, queue, max, ids, n, err) : rc;
}

/* Whether id is in queue's dead set: 1, 0 or an error. */
static int sp__dead_has(sp_queue *q, const char *dead, const char *id, sp_err *err)
{
    const char *argv[] = {"ZSCORE", dead, id};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 3, argv, NULL);
    if (rc < 0)
        return rc;
    rc = sp_reply_str(rep, NULL) != NULL;
    sp_redis_reply_free(rep);
    return rc;
}

static int sp__purge(sp_queue *q, const char *queue, const char *id, sp_err *err)
{
    const char *p = q->prefix;
    sp_key k[3];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "dead"),
                          sp__key(&k[2], p, "jobs")};
    const char *args[] = {id};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_PURGE, 3, keys, 1, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    const redisReply *st = sp_reply_elem(rep, 0);
    if (sp_reply_is(st, "purged"))
        rc = 0;
    else if (sp_reply_is(st, "notfound"))
        rc = sp_err_set(err, SP_ENOTFOUND, "no such job in the dead-letter set");
    else if (sp_reply_is(st, "state"))
        rc = sp_err_set(err, SP_ESTATE, "only failed jobs can be purged (job is %s)",
                        sp_reply_str(sp_reply_elem(rep, 1), NULL) ?: "?");
    else
        rc = sp_err_set(err, SP_EPROTO, "purge: unexpected reply");
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_dead_apply(sp_queue *q, const char *queue, int action, const char *const *ids,
                        size_t n, int *results, sp_err *err)
{
    for (size_t i = 0; i < n; i++)
        results[i] = SP_EREDIS;
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    sp_key dk;
    const char *dead = sp__key_q(&dk, q->prefix, queue, "dead");
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == NULL || !sp_id_valid(ids[i])) {
            results[i] = SP_ENOTFOUND;
            continue;
        }
        sp_err e2;
        int rc;
        if (action == SP_DEAD_PURGE) {
            rc = sp__purge(q, queue, ids[i], &e2);
        } else {
            /* The job's queue is known only from its record: a retry of a job that is
             * not in this queue's dead set is refused here, whatever its state. */
            rc = sp__dead_has(q, dead, ids[i], &e2);
            if (rc == 1)
                rc = sp_queue_requeue(q, ids[i], &e2);
            else if (rc == 0)
                rc = SP_ENOTFOUND;
        }
        if (rc < 0 && rc != SP_ENOTFOUND && rc != SP_ESTATE) {
            if (err)
                *err = e2;
            return rc;
        }
        results[i] = rc;
    }
    return 0;
}

/* queue_list.c - reading many jobs and queues at once: recent jobs, per-queue depths
 * and counters, the live workers. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/util.h"

#define SP_LIST_SCAN_MAX 10000
#define SP_LIST_BATCH 256

/* The rank in the jobs index (newest first) where a page starts: 0, or just after the
 * cursor f->before. */
static int sp__list_start(sp_queue *q, const sp_list_filter *f, const char *index, size_t *start,
                          sp_err *err)
{
    *start = 0;
    if (f->before == NULL)
        return 0;
    if (!sp_id_valid(f->before))
        return sp_err_set(err, SP_ENOTFOUND, "the cursor names no job");
    const char *argv[] = {"ZREVRANK", index, f->before};
    redisReply *rep;
    int rc = sp_redis_cmd(q->r, &rep, err, 3, argv, NULL);
    if (rc < 0)
        return rc;
    if (rep == NULL || rep->type != REDIS_REPLY_INTEGER)
        rc = sp_err_set(err, SP_ENOTFOUND, "the cursor's job is no longer listed");
    else
        *start = (size_t)rep->integer + 1;
    sp_redis_reply_free(rep);
    return rc;
}

static bool sp__list_keep(const sp_list_filter *f, const sp_job *j)
{
    return (!f->has_state || j->state == f->state) &&
           (f->type == NULL || strcmp(f->type, j->type) == 0) &&
           (f->queue == NULL || strcmp(f->queue, j->queue) == 0);
}

static int sp__list_once(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n,
                         char next[SP_ID_LEN + 1], sp_err *err)
{
    *n = 0;
    next[0] = '\0';
    size_t limit = f->limit;
    if (limit == 0)
        return 0;
    sp_key k;
    const char *index = sp__key(&k, q->prefix, "jobs");
    size_t first;
    int rc = sp__list_start(q, f, index, &first, err);
    if (rc < 0)
        return rc;
    bool more = false; /* the index may hold older jobs than the last one looked at */
    char last[SP_ID_LEN + 1] = "";
    for (size_t start = first; start < first + SP_LIST_SCAN_MAX && *n < limit;
         start += SP_LIST_BATCH) {
        char a[24], b[24];
        snprintf(a, sizeof a, "%zu", start);
        snprintf(b, sizeof b, "%zu", start + SP_LIST_BATCH - 1);
        const char *argv[] = {"ZREVRANGE", index, a, b};
        redisReply *ids;
        rc = sp_redis_cmd(q->r, &ids, err, 4, argv, NULL);
        if (rc < 0)
            break;
        size_t m = sp_reply_len(ids);
        more = m == SP_LIST_BATCH;
        rc = sp__append_records(q, ids, err);
        for (size_t i = 0; i < m && rc == 0; i++) {
            redisReply *rep;
            rc = sp_redis_read(q->r, &rep, err);
            if (rc < 0)
                break;
            const char *id = sp_reply_str(sp_reply_elem(ids, i), NULL);
            if (*n == limit) {
                more = true; /* this one and those after it go on the next page */
                sp_redis_reply_free(rep);
                continue;
            }
            if (id && sp_id_valid(id))
                memcpy(last, id, SP_ID_LEN + 1);
            sp_job j;
            sp_err e2;
            int r = sp__job_from_reply(rep, id, &j, &e2);
            sp_redis_reply_free(rep);
            if (r == SP_ENOTFOUND)
                continue; /* expired between the index read and now */
            if (r < 0) {
                rc = r;
                if (err)
                    *err = e2;
                break;
            }
            if (sp__list_keep(f, &j))
                out[(*n)++] = j;
            else
                sp_job_clear(&j);
        }
        sp_redis_reply_free(ids);
        if (rc < 0 || m < SP_LIST_BATCH)
            break;
    }
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            sp_job_clear(&out[i]);
        *n = 0;
        sp_redis_disconnect(q->r); /* replies a pipeline left unread must not be read later */
        return rc;
    }
    if (more)
        memcpy(next, last, SP_ID_LEN + 1);
    return 0;
}

int sp_queue_list_page(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n,
                       char next[SP_ID_LEN + 1], sp_err *err)
{
    int rc = sp__list_once(q, f, out, n, next, err);
    return sp__retry_read(q, rc) ? sp__list_once(q, f, out, n, next, err) : rc;
}

int sp_queue_list(sp_queue *q, const sp_list_filter *f, sp_job *out, size_t *n, sp_err *err)
{
    char next[SP_ID_LEN + 1];
    return sp_queue_list_page(q, f, out, n, next, err);
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

int sp__append_records(sp_queue *q, const redisReply *ids, sp_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < sp_reply_len(ids) && rc == 0; i++) {
        const char *id = sp_reply_str(sp_reply_elem(ids, i), NULL);
        sp_key jk;
        const char *hv[] = {"HGETALL", sp__key_job(&jk, q->prefix, id ? id : "")};
        rc = sp_redis_append(q->r, err, 2, hv, NULL);
    }
    return rc;
}

static int sp__stat_one_once(sp_queue *q, const char *queue, sp_queue_stat *s, sp_err *err)
{
    memset(s, 0, sizeof *s);
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    snprintf(s->name, sizeof s->name, "%s", queue);
    const char *p = q->prefix;
    sp_key k[6];
    const char *c0[] = {"LLEN", sp__key_q(&k[0], p, queue, "ready")};
    const char *c1[] = {"ZCARD", sp__key_q(&k[1], p, queue, "leases")};
    const char *c2[] = {"ZCARD", sp__key_q(&k[2], p, queue, "delayed")};
    const char *c3[] = {"ZCARD", sp__key_q(&k[3], p, queue, "dead")};
    const char *c4[] = {"HGETALL", sp__key_q(&k[4], p, queue, "stats")};
    const char *c5[] = {"GET", sp__key_q(&k[5], p, queue, "paused")};
    const char *const *cmds[] = {c0, c1, c2, c3, c4, c5};
    int rc = 0;
    for (int i = 0; i < 6 && rc == 0; i++)
        rc = sp_redis_append(q->r, err, 2, (const char **)cmds[i], NULL);
    int64_t *depth[] = {&s->ready, &s->running, &s->delayed, &s->dead};
    for (int i = 0; i < 6 && rc == 0; i++) {
        redisReply *rep;
        rc = sp_redis_read(q->r, &rep, err);
        if (rc < 0)
            break;
        if (i < 4) {
            *depth[i] = sp_reply_int(rep, 0);
        } else if (i == 4) {
            sp__stat_counters(s, rep);
        } else {
            const char *v = sp_reply_str(rep, NULL);
            s->paused = v != NULL;
            s->paused_at = v ? strtoll(v, NULL, 10) : 0;
        }
        sp_redis_reply_free(rep);
    }
    if (rc < 0)
        sp_redis_disconnect(q->r); /* replies a pipeline left unread must not be read later */
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

int sp_queue_pause(sp_queue *q, const char *queue, bool paused, sp_err *err)
{
    if (!sp_queue_name_valid(queue))
        return sp_err_set(err, SP_EINVAL, "bad queue name");
    sp_key k[2];
    const char *p = q->prefix;
    const char *keys[] = {sp__key_q(&k[0], p, queue, "paused"), sp__key(&k[1], p, "queues")};
    const char *args[] = {queue, paused ? "1" : "0"};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_PAUSE, 2, keys, 2, args, NULL, &rep, err);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_queue_stats(sp_queue *q, sp_queue_stat *out, size_t max, size_t *n, sp_err *err)
{
    int rc = sp__stats_once(q, out, max, n, err);
    return sp__retry_read(q, rc) ? sp__stats_once(q, out, max, n, err) : rc;
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
    int64_t now;
    int rc = sp_redis_time_ms(q->r, &now, err);
    if (rc < 0)
        return rc;
    redisReply *rep;
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
    if (rc < 0)
        sp_redis_disconnect(q->r); /* replies a pipeline left unread must not be read later */
    return rc;
}

int sp_queue_workers(sp_queue *q, sp_worker_info *out, size_t max, size_t *n, sp_err *err)
{
    int rc = sp__workers_once(q, out, max, n, err);
    return sp__retry_read(q, rc) ? sp__workers_once(q, out, max, n, err) : rc;
}

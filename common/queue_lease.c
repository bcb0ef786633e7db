/* queue_lease.c - what keeps running jobs safe: the worker registry (heartbeats,
 * leaving, reaping), lease renewal, fenced annotations, and maintenance (due retries,
 * lapsed leases, dead workers). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/util.h"

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
    sp_key k[4];
    const char *keys[] = {sp__key(&k[0], p, "workers"), sp__key_worker(&k[1], p, w->id),
                          sp__key(&k[2], p, "watch"), sp__key(&k[3], p, "runs")};
    char ttl[24], pid[24], conc[24], started[24], processed[24], failed[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    snprintf(pid, sizeof pid, "%lld", (long long)w->pid);
    snprintf(conc, sizeof conc, "%lld", (long long)w->concurrency);
    snprintf(started, sizeof started, "%lld", (long long)w->started_at);
    snprintf(processed, sizeof processed, "%lld", (long long)w->processed);
    snprintf(failed, sizeof failed, "%lld", (long long)w->failed);
    const char *args[] = {w->id,         ttl,       w->run,       "id",      w->id,
                          "kind",        w->kind,   "host",       w->host,   "pid",
                          pid,           "queues",  w->queues,    "concurrency", conc,
                          "started_at",  started,   "current",    w->current, "processed",
                          processed,     "failed",  failed};
    redisReply *rep;
    int rc = sp_redis_eval(q->r, SP_LUA_WORKER_BEAT, 4, keys, (int)(sizeof args / sizeof *args),
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

    sp_key k[3 + 2 * MAXQ];
    const char *keys[3 + 2 * MAXQ];
    int nkeys = 0;
    keys[nkeys] = sp__key(&k[nkeys], p, "workers");
    nkeys++;
    keys[nkeys] = sp__key_worker(&k[nkeys], p, worker_id);
    nkeys++;
    keys[nkeys] = sp__key(&k[nkeys], p, "runs");
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
    sp_key k[4];
    const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "leases"),
                          sp__key(&k[3], p, "events")};
    char lease[24], prog[24];
    snprintf(lease, sizeof lease, "%lld", (long long)lease_ms);
    snprintf(prog, sizeof prog, "%d", progress < -1 ? -1 : progress > 100 ? 100 : progress);
    const char *args[] = {id, token, lease, prog, sp__chan_job(&k[2], p, id)};
    redisReply *rep;
    rc = sp_redis_eval(q->r, SP_LUA_RENEW, 3, keys, 5, args, NULL, &rep, err);
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
        sp_key k[15];
        if (script == SP_LUA_PROMOTE) {
            const char *keys[] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "delayed"),
                                  sp__key_q(&k[2], p, queue, "ready"), sp__key(&k[4], p, "events")};
            const char *args[] = {id, sp__chan_job(&k[3], p, id)};
            rc = sp_redis_append_eval(q->r, SP_LUA_PROMOTE, 4, keys, 2, args, NULL, err);
        } else {
            const char *keys[13] = {sp__key_job(&k[0], p, id), sp__key_q(&k[1], p, queue, "leases"),
                                    sp__key_q(&k[2], p, queue, "ready"),
                                    sp__key_q(&k[3], p, queue, "dead"),
                                    sp__key_q(&k[4], p, queue, "stats"),
                                    sp__key(&k[5], p, "workers"), sp__key(&k[6], p, "watch"),
                                    sp__key(&k[7], p, "runs"), sp__key(&k[8], p, "events")};
            sp__webhook_keys(&k[9], p, &keys[9]);
            const char *args[] = {id, retention, sp__chan_job(&k[13], p, id),
                                  sp__key_job_prefix(&k[14], p)};
            rc = sp_redis_append_eval(q->r, SP_LUA_EXPIRE, 13, keys, 4, args, NULL, err);
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

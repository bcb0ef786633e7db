/* schedule.c - schedules in Redis: records, the due index, runs (see spool/schedule.h;
 * the keys are keys.h's, the scripts common/lua/sched_*.lua). */
#include "spool/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"
#include "spool/sha256.h"
#include "spool/util.h"

extern const char sp_lua_sched_create[], sp_lua_sched_update[], sp_lua_sched_delete[],
    sp_lua_sched_advance[];

enum { SP__S_CREATE, SP__S_UPDATE, SP__S_DELETE, SP__S_ADVANCE, SP__S_COUNT };

static const sp_script sp__sched_table[SP__S_COUNT] = {
    [SP__S_CREATE] = {"sched_create", sp_lua_sched_create},
    [SP__S_UPDATE] = {"sched_update", sp_lua_sched_update},
    [SP__S_DELETE] = {"sched_delete", sp_lua_sched_delete},
    [SP__S_ADVANCE] = {"sched_advance", sp_lua_sched_advance},
};
static const sp_script *const sp__sched_scripts[SP__S_COUNT] = {
    &sp__sched_table[0], &sp__sched_table[1], &sp__sched_table[2], &sp__sched_table[3]};

struct sp_scheds {
    sp_redis *r;
    char prefix[SP_PREFIX_MAX + 1];
};

_Static_assert(SP_SCHED_NAME_MAX == SP_QUEUE_MAX, "a schedule name is a queue name's length");

bool sp_sched_name_valid(const char *s)
{
    /* A queue name's alphabet and length (SP_SCHED_NAME_MAX is SP_QUEUE_MAX), not
     * starting with '.' or '-'. */
    return s != NULL && s[0] != '.' && s[0] != '-' && sp_queue_name_valid(s);
}

int sp_sched_tick_id(const sp_sched *s, int64_t tick, char out[SP_ID_LEN + 1], sp_err *err)
{
    out[0] = '\0';
    char text[SP_SCHED_NAME_MAX + SP_ID_LEN + 32], hex[65];
    int n = snprintf(text, sizeof text, "%s:%s:%lld", s->name, s->generation, (long long)tick);
    if (n < 0 || (size_t)n >= sizeof text)
        return sp_err_set(err, SP_EINVAL, "schedule name or generation too long");
    int rc = sp_sha256_hex_of(text, (size_t)n, hex, err);
    if (rc < 0)
        return rc;
    unsigned char rest[16]; /* the digest's first 128 bits (its hex is lowercase) */
    for (int i = 0; i < 32; i++) {
        char c = hex[i];
        unsigned v = (unsigned)(c <= '9' ? c - '0' : c - 'a' + 10);
        rest[i / 2] = (unsigned char)(i % 2 ? rest[i / 2] | v : v << 4);
    }
    sp_id_make(tick, rest, out);
    return 0;
}

void sp_sched_clear(sp_sched *s)
{
    if (s == NULL)
        return;
    sp_free(s->job);
    memset(s, 0, sizeof *s);
}

sp_scheds *sp_scheds_open(const char *url, const char *prefix, sp_err *err)
{
    sp_scheds *h = sp_calloc(1, sizeof *h);
    if (h == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (sp__prefix_copy(h->prefix, prefix, err) < 0 ||
        (h->r = sp_redis_new(url, sp__sched_scripts, SP__S_COUNT, 5000, err)) == NULL) {
        sp_free(h);
        return NULL;
    }
    return h;
}

void sp_scheds_close(sp_scheds *h)
{
    if (h == NULL)
        return;
    sp_redis_free(h->r);
    sp_free(h);
}

/* A pipeline left with replies unread (an error part way) would hand them to the next
 * command on this handle: drop the connection instead (the next call reconnects). */
static int sp__pipeline_end(sp_scheds *h, int rc)
{
    if (rc < 0)
        sp_redis_disconnect(h->r);
    return rc;
}

/* Reads are made twice when the first finds the connection broken (Redis restarted
 * while it was idle), as the queue's are. */
int sp_scheds_time(sp_scheds *h, int64_t *now_ms, sp_err *err)
{
    int rc = sp_redis_time_ms(h->r, now_ms, err);
    return sp_redis_retry_read(h->r, rc) ? sp_redis_time_ms(h->r, now_ms, err) : rc;
}

/* ---- a record from and to Redis -------------------------------------------------------- */

/* Fill *s from an HGETALL reply. 0, SP_ENOTFOUND (empty), SP_ENOMEM. */
static int sp__sched_from_reply(const redisReply *rep, sp_sched *s, sp_err *err)
{
    memset(s, 0, sizeof *s);
    size_t n = sp_reply_len(rep);
    if (n == 0)
        return sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    for (size_t i = 0; i + 1 < n; i += 2) {
        const char *f = sp_reply_str(sp_reply_elem(rep, i), NULL);
        size_t len;
        const char *v = sp_reply_str(sp_reply_elem(rep, i + 1), &len);
        if (f == NULL || v == NULL)
            continue;
        int64_t num = strtoll(v, NULL, 10);
        if (strcmp(f, "name") == 0)
            sp__copy(s->name, sizeof s->name, v, len);
        else if (strcmp(f, "cron") == 0)
            sp__copy(s->cron, sizeof s->cron, v, len);
        else if (strcmp(f, "timezone") == 0)
            sp__copy(s->timezone, sizeof s->timezone, v, len);
        else if (strcmp(f, "missed") == 0)
            s->run_once = strcmp(v, "run_once") == 0;
        else if (strcmp(f, "paused") == 0)
            s->paused = strcmp(v, "1") == 0;
        else if (strcmp(f, "generation") == 0)
            sp__copy(s->generation, sizeof s->generation, v, len);
        else if (strcmp(f, "job") == 0) {
            sp_free(s->job);
            if ((s->job = sp_strndup(v, len)) == NULL) {
                sp_sched_clear(s);
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            }
        } else if (strcmp(f, "version") == 0)
            s->version = num;
        else if (strcmp(f, "created_at") == 0)
            s->created_at = num;
        else if (strcmp(f, "updated_at") == 0)
            s->updated_at = num;
        else if (strcmp(f, "last_tick") == 0)
            s->last_tick = num;
        else if (strcmp(f, "next_at") == 0)
            s->next_at = num;
        else if (strcmp(f, "last_fired") == 0)
            s->last_fired = num;
        else if (strcmp(f, "fired") == 0)
            s->fired = num;
        else if (strcmp(f, "passed") == 0)
            s->passed = num;
        else if (strcmp(f, "invalid") == 0)
            s->invalid = num;
    }
    if (!sp_sched_name_valid(s->name)) {
        sp_sched_clear(s);
        return sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    }
    return 0;
}

/* The fields a change writes, as ARGV pairs into args[0..) with their numbers' text in
 * nums; returns how many strings. */
typedef struct sp__fields {
    const char *v[20];
    char last[24], next[24];
    size_t n;
} sp__fields;

static void sp__fields_fill(sp__fields *f, const sp_sched *s, bool timing)
{
    f->n = 0;
    const char *kv[] = {"cron", s->cron, "timezone", s->timezone, "missed",
                        s->run_once ? "run_once" : "skip", "job", s->job ? s->job : "{}",
                        "paused", s->paused ? "1" : "0"};
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        f->v[f->n++] = kv[i];
    if (timing) {
        snprintf(f->last, sizeof f->last, "%lld", (long long)s->last_tick);
        snprintf(f->next, sizeof f->next, "%lld", (long long)s->next_at);
        f->v[f->n++] = "last_tick";
        f->v[f->n++] = f->last;
        f->v[f->n++] = "next_at";
        f->v[f->n++] = f->next;
    }
}

/* A zset score (ms) as Redis writes it ("1767225600000", or in exponent form). */
static int64_t sp__score(const redisReply *r)
{
    const char *s = sp_reply_str(r, NULL);
    return s ? (int64_t)strtod(s, NULL) : 0;
}

/* The first element of a script's array reply is its outcome. */
static const char *sp__outcome(const redisReply *rep)
{
    const char *s = sp_reply_str(sp_reply_elem(rep, 0), NULL);
    return s ? s : "";
}

int sp_sched_create(sp_scheds *h, sp_sched *s, int64_t max, sp_err *err)
{
    if (!sp_sched_name_valid(s->name))
        return sp_err_set(err, SP_EINVAL, "bad schedule name");
    char gen[SP_ID_LEN + 1];
    if (sp_id_new(gen) < 0)
        return sp_err_set(err, SP_EIO, "no randomness for a generation id");
    sp_key k[4];
    const char *p = h->prefix;
    const char *keys[] = {sp__key_sched(&k[0], p, s->name, NULL), sp__key(&k[1], p, "schedules"),
                          sp__key(&k[2], p, "schedules:due"),
                          sp__key_sched(&k[3], p, s->name, "runs")};
    sp__fields f;
    sp__fields_fill(&f, s, true);
    char maxs[24];
    snprintf(maxs, sizeof maxs, "%lld", (long long)(max > 0 ? max : 0));
    const char *args[30];
    size_t na = 0;
    args[na++] = s->name;
    args[na++] = maxs;
    args[na++] = s->paused ? "1" : "0";
    args[na++] = f.next;
    args[na++] = "name";
    args[na++] = s->name;
    args[na++] = "generation";
    args[na++] = gen;
    for (size_t i = 0; i < f.n; i++)
        args[na++] = f.v[i];
    redisReply *rep;
    int rc = sp_redis_eval(h->r, SP__S_CREATE, 4, keys, (int)na, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    const char *o = sp__outcome(rep);
    if (strcmp(o, "ok") == 0) {
        memcpy(s->generation, gen, sizeof gen);
        s->version = 1;
        s->created_at = s->updated_at = sp_reply_int(sp_reply_elem(rep, 1), 0);
        s->fired = s->passed = s->last_fired = 0;
    } else if (strcmp(o, "exists") == 0) {
        rc = sp_err_set(err, SP_ECONFLICT, "a schedule named %s exists", s->name);
    } else if (strcmp(o, "full") == 0) {
        rc = sp_err_set(err, SP_EFULL, "%lld schedules exist already (the limit)",
                        (long long)sp_reply_int(sp_reply_elem(rep, 1), 0));
    } else {
        rc = sp_err_set(err, SP_EPROTO, "sched_create: unexpected reply");
    }
    sp_redis_reply_free(rep);
    return rc;
}

static int sp__get_once(sp_scheds *h, const char *name, sp_sched *out, sp_err *err)
{
    memset(out, 0, sizeof *out);
    if (!sp_sched_name_valid(name))
        return sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    sp_key k;
    const char *argv[] = {"HGETALL", sp__key_sched(&k, h->prefix, name, NULL)};
    redisReply *rep;
    int rc = sp_redis_cmd(h->r, &rep, err, 2, argv, NULL);
    if (rc < 0)
        return rc;
    rc = sp__sched_from_reply(rep, out, err);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_sched_get(sp_scheds *h, const char *name, sp_sched *out, sp_err *err)
{
    int rc = sp__get_once(h, name, out, err);
    return sp_redis_retry_read(h->r, rc) ? sp__get_once(h, name, out, err) : rc;
}

static int sp__list_once(sp_scheds *h, const char *after, size_t max, sp_sched *out, size_t *n,
                         bool *more, sp_err *err)
{
    *n = 0;
    *more = false;
    sp_key k;
    char from[SP_SCHED_NAME_MAX + 2] = "-";
    if (after && after[0])
        snprintf(from, sizeof from, "(%s", after);
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max + 1);
    const char *argv[] = {"ZRANGEBYLEX", sp__key(&k, h->prefix, "schedules"), from, "+",
                          "LIMIT", "0", lim};
    redisReply *names;
    int rc = sp_redis_cmd(h->r, &names, err, 7, argv, NULL);
    if (rc < 0)
        return rc;
    size_t m = sp_reply_len(names);
    if (m > max) {
        m = max;
        *more = true;
    }
    for (size_t i = 0; i < m && rc == 0; i++) {
        const char *name = sp_reply_str(sp_reply_elem(names, i), NULL);
        sp_key hk;
        const char *hv[] = {"HGETALL", sp__key_sched(&hk, h->prefix, name ? name : "", NULL)};
        rc = sp_redis_append(h->r, err, 2, hv, NULL);
    }
    for (size_t i = 0; i < m && rc == 0; i++) {
        redisReply *rep;
        if ((rc = sp_redis_read(h->r, &rep, err)) < 0)
            break;
        int r2 = sp__sched_from_reply(rep, &out[*n], err);
        sp_redis_reply_free(rep);
        if (r2 == 0)
            (*n)++;
        else if (r2 != SP_ENOTFOUND) /* deleted meanwhile: left out */
            rc = r2;
    }
    sp_redis_reply_free(names);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            sp_sched_clear(&out[i]);
        *n = 0;
    }
    return sp__pipeline_end(h, rc);
}

int sp_sched_list(sp_scheds *h, const char *after, size_t max, sp_sched *out, size_t *n,
                  bool *more, sp_err *err)
{
    int rc = sp__list_once(h, after, max, out, n, more, err);
    return sp_redis_retry_read(h->r, rc) ? sp__list_once(h, after, max, out, n, more, err)
                                          : rc;
}

int sp_sched_update(sp_scheds *h, sp_sched *s, int timing, sp_err *err)
{
    sp_key k[2];
    const char *p = h->prefix;
    const char *keys[] = {sp__key_sched(&k[0], p, s->name, NULL),
                          sp__key(&k[1], p, "schedules:due")};
    sp__fields f;
    sp__fields_fill(&f, s, timing == SP_SCHED_RETIME);
    char ver[24];
    snprintf(ver, sizeof ver, "%lld", (long long)s->version);
    const char *args[30];
    size_t na = 0;
    args[na++] = s->name;
    args[na++] = ver;
    args[na++] = timing == SP_SCHED_RETIME ? "retime" : timing == SP_SCHED_PAUSE ? "pause"
                                                                                 : "keep";
    args[na++] = timing == SP_SCHED_RETIME ? f.next : "0";
    for (size_t i = 0; i < f.n; i++)
        args[na++] = f.v[i];
    redisReply *rep;
    int rc = sp_redis_eval(h->r, SP__S_UPDATE, 2, keys, (int)na, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    const char *o = sp__outcome(rep);
    if (strcmp(o, "ok") == 0) {
        s->version++;
        s->updated_at = sp_reply_int(sp_reply_elem(rep, 1), s->updated_at);
    } else if (strcmp(o, "missing") == 0) {
        rc = sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    } else if (strcmp(o, "conflict") == 0) {
        rc = sp_err_set(err, SP_ECONFLICT, "the schedule changed meanwhile");
    } else {
        rc = sp_err_set(err, SP_EPROTO, "sched_update: unexpected reply");
    }
    sp_redis_reply_free(rep);
    return rc;
}

int sp_sched_delete(sp_scheds *h, const char *name, const char *generation, sp_err *err)
{
    if (!sp_sched_name_valid(name))
        return sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    sp_key k[4];
    const char *p = h->prefix;
    const char *keys[] = {sp__key_sched(&k[0], p, name, NULL), sp__key(&k[1], p, "schedules"),
                          sp__key(&k[2], p, "schedules:due"), sp__key_sched(&k[3], p, name, "runs")};
    const char *args[] = {name, generation ? generation : ""};
    redisReply *rep;
    int rc = sp_redis_eval(h->r, SP__S_DELETE, 4, keys, 2, args, NULL, &rep, err);
    if (rc < 0)
        return rc;
    if (sp_reply_int(rep, 0) != 1)
        rc = sp_err_set(err, SP_ENOTFOUND, "no such schedule");
    sp_redis_reply_free(rep);
    return rc;
}

static int sp__due_once(sp_scheds *h, int64_t now_ms, size_t skip,
                        char (*names)[SP_SCHED_NAME_MAX + 1], size_t max, size_t *n,
                        int64_t *earliest, sp_err *err)
{
    *n = 0;
    *earliest = 0;
    sp_key k;
    const char *due = sp__key(&k, h->prefix, "schedules:due");
    char now[24], off[24], lim[24];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(off, sizeof off, "%zu", skip);
    snprintf(lim, sizeof lim, "%zu", max);
    const char *c0[] = {"ZRANGEBYSCORE", due, "-inf", now, "LIMIT", off, lim};
    char after[26];
    snprintf(after, sizeof after, "(%lld", (long long)now_ms);
    const char *c1[] = {"ZRANGEBYSCORE", due, after, "+inf", "WITHSCORES", "LIMIT", "0", "1"};
    int rc = sp_redis_append(h->r, err, 7, c0, NULL);
    if (rc == 0)
        rc = sp_redis_append(h->r, err, 8, c1, NULL);
    redisReply *a = NULL, *b = NULL;
    if (rc == 0)
        rc = sp_redis_read(h->r, &a, err);
    if (rc == 0)
        rc = sp_redis_read(h->r, &b, err);
    for (size_t i = 0; rc == 0 && i < sp_reply_len(a) && *n < max; i++) {
        size_t len;
        const char *s = sp_reply_str(sp_reply_elem(a, i), &len);
        if (s && len <= SP_SCHED_NAME_MAX)
            sp__copy(names[(*n)++], SP_SCHED_NAME_MAX + 1, s, len);
    }
    if (rc == 0 && sp_reply_len(b) >= 2)
        *earliest = sp__score(sp_reply_elem(b, 1));
    sp_redis_reply_free(a);
    sp_redis_reply_free(b);
    return sp__pipeline_end(h, rc);
}

int sp_sched_due(sp_scheds *h, int64_t now_ms, size_t skip,
                 char (*names)[SP_SCHED_NAME_MAX + 1], size_t max, size_t *n,
                 int64_t *earliest, sp_err *err)
{
    int rc = sp__due_once(h, now_ms, skip, names, max, n, earliest, err);
    return sp_redis_retry_read(h->r, rc)
               ? sp__due_once(h, now_ms, skip, names, max, n, earliest, err)
               : rc;
}

int sp_sched_advance(sp_scheds *h, const sp_sched_step *st, sp_err *err)
{
    const sp_sched *s = st->read;
    sp_key k[4];
    const char *p = h->prefix;
    const char *keys[] = {sp__key_sched(&k[0], p, s->name, NULL),
                          sp__key(&k[1], p, "schedules:due"),
                          sp__key_sched(&k[2], p, s->name, "runs"),
                          sp__key(&k[3], p, "schedules:stats")};
    size_t na = 11 + 2 * st->nruns;
    const char **args = sp_calloc(na, sizeof *args);
    char(*nums)[24] = sp_calloc(9 + st->nruns, sizeof *nums);
    if (args == NULL || nums == NULL) {
        sp_free(args);
        sp_free(nums);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    int64_t last_fired = 0;
    for (size_t i = 0; i < st->nruns; i++)
        if (st->run_ticks[i] > last_fired)
            last_fired = st->run_ticks[i];
    int64_t v[] = {s->version, s->last_tick, st->last_tick, st->next_at,
                   (int64_t)st->nruns, st->passed, SP_SCHED_RUNS_KEEP, last_fired,
                   st->invalid};
    for (size_t i = 0; i < 9; i++)
        snprintf(nums[i], sizeof nums[i], "%lld", (long long)v[i]);
    args[0] = s->name;
    args[1] = s->generation;
    for (size_t i = 0; i < 9; i++)
        args[2 + i] = nums[i];
    for (size_t i = 0; i < st->nruns; i++) {
        snprintf(nums[9 + i], sizeof nums[9 + i], "%lld", (long long)st->run_ticks[i]);
        args[11 + 2 * i] = nums[9 + i];
        args[12 + 2 * i] = st->run_ids[i];
    }
    redisReply *rep;
    int rc = sp_redis_eval(h->r, SP__S_ADVANCE, 4, keys, (int)na, args, NULL, &rep, err);
    sp_free(args);
    sp_free(nums);
    if (rc < 0)
        return rc;
    rc = sp_reply_int(rep, 0) == 1 ? 1 : 0;
    sp_redis_reply_free(rep);
    return rc;
}

static int sp__runs_once(sp_scheds *h, const char *name, const char *before, size_t max,
                         sp_sched_run *out, size_t *n, char next[SP_ID_LEN + 1], sp_err *err)
{
    *n = 0;
    next[0] = '\0';
    sp_key rk;
    const char *runs = sp__key_sched(&rk, h->prefix, name, "runs");
    char from[40] = "+inf";
    int rc = 0;
    if (before) {
        const char *argv[] = {"ZSCORE", runs, before};
        redisReply *rep;
        if ((rc = sp_redis_cmd(h->r, &rep, err, 3, argv, NULL)) < 0)
            return rc;
        const char *sc = sp_reply_str(rep, NULL);
        if (sc)
            snprintf(from, sizeof from, "(%s", sc);
        sp_redis_reply_free(rep);
        if (sc == NULL)
            return sp_err_set(err, SP_ENOTFOUND, "the cursor's run is no longer listed");
    }
    char lim[24];
    snprintf(lim, sizeof lim, "%zu", max + 1);
    const char *argv[] = {"ZREVRANGEBYSCORE", runs, from, "-inf", "WITHSCORES", "LIMIT", "0",
                          lim};
    redisReply *ids;
    if ((rc = sp_redis_cmd(h->r, &ids, err, 8, argv, NULL)) < 0)
        return rc;
    size_t m = sp_reply_len(ids) / 2;
    bool more = m > max;
    if (more)
        m = max;
    for (size_t i = 0; i < m && rc == 0; i++) {
        const char *id = sp_reply_str(sp_reply_elem(ids, 2 * i), NULL);
        sp_key jk;
        const char *hv[] = {"HGETALL", sp__key_job(&jk, h->prefix, id ? id : "")};
        rc = sp_redis_append(h->r, err, 2, hv, NULL);
    }
    for (size_t i = 0; i < m && rc == 0; i++) {
        redisReply *rep;
        if ((rc = sp_redis_read(h->r, &rep, err)) < 0)
            break;
        const char *id = sp_reply_str(sp_reply_elem(ids, 2 * i), NULL);
        sp_sched_run *r = &out[*n];
        memset(r, 0, sizeof *r);
        r->tick = sp__score(sp_reply_elem(ids, 2 * i + 1));
        sp_err e2;
        int r2 = sp__job_from_reply(rep, id, &r->job, &e2);
        sp_redis_reply_free(rep);
        if (r2 == 0) {
            r->found = true;
        } else if (r2 == SP_ENOTFOUND) {
            sp_job_init(&r->job);
            if (id && sp_id_valid(id))
                memcpy(r->job.id, id, SP_ID_LEN + 1);
        } else {
            rc = sp_err_set(err, r2, "%s", e2.msg);
            break;
        }
        (*n)++;
    }
    if (rc == 0 && more && *n > 0)
        memcpy(next, out[*n - 1].job.id, SP_ID_LEN + 1);
    sp_redis_reply_free(ids);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            sp_job_clear(&out[i].job);
        *n = 0;
        next[0] = '\0';
    }
    return sp__pipeline_end(h, rc);
}

int sp_sched_runs(sp_scheds *h, const char *name, const char *before, size_t max,
                  sp_sched_run *out, size_t *n, char next[SP_ID_LEN + 1], sp_err *err)
{
    int rc = sp__runs_once(h, name, before, max, out, n, next, err);
    return sp_redis_retry_read(h->r, rc)
               ? sp__runs_once(h, name, before, max, out, n, next, err)
               : rc;
}

static int sp__counts_once(sp_scheds *h, sp_sched_counts *out, sp_err *err)
{
    memset(out, 0, sizeof *out);
    sp_key k[3];
    const char *p = h->prefix;
    const char *c0[] = {"ZCARD", sp__key(&k[0], p, "schedules")};
    const char *c1[] = {"ZCARD", sp__key(&k[1], p, "schedules:due")};
    const char *c2[] = {"HMGET", sp__key(&k[2], p, "schedules:stats"), "fired", "passed",
                        "invalid"};
    int rc = sp_redis_append(h->r, err, 2, c0, NULL);
    if (rc == 0)
        rc = sp_redis_append(h->r, err, 2, c1, NULL);
    if (rc == 0)
        rc = sp_redis_append(h->r, err, 5, c2, NULL);
    redisReply *rep[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = sp_redis_read(h->r, &rep[i], err);
    if (rc == 0) {
        out->schedules = sp_reply_int(rep[0], 0);
        out->paused = out->schedules - sp_reply_int(rep[1], 0);
        if (out->paused < 0)
            out->paused = 0;
        out->fired = sp_reply_int(sp_reply_elem(rep[2], 0), 0);
        out->passed = sp_reply_int(sp_reply_elem(rep[2], 1), 0);
        out->invalid = sp_reply_int(sp_reply_elem(rep[2], 2), 0);
    }
    for (int i = 0; i < 3; i++)
        sp_redis_reply_free(rep[i]);
    return sp__pipeline_end(h, rc);
}

int sp_sched_counts_get(sp_scheds *h, sp_sched_counts *out, sp_err *err)
{
    int rc = sp__counts_once(h, out, err);
    return sp_redis_retry_read(h->r, rc) ? sp__counts_once(h, out, err) : rc;
}

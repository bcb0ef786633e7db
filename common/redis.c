/* redis.c - hiredis behind one interface (see redis.h). */
#include "redis.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "spool/alloc.h"
#include "spool/util.h"

#define SP_MAX_SCRIPTS 32

struct sp_redis {
    sp_redis_url url;
    redisContext *ctx;
    const sp_script *const *scripts;
    size_t nscripts;
    char sha[SP_MAX_SCRIPTS][41];
    int64_t timeout_ms;
    int64_t client_id;
    int64_t replies;   /* replies read on the current connection */
    int64_t pending;   /* commands appended whose replies are not read yet */
    uint64_t generation; /* connections made so far */
    bool stale_error;  /* the last connection error hit a connection that had worked */
    bool unanswered;   /* the last command failed after it was sent: it may have run */
    /* redis-sentinel:// URLs */
    sp_redis_hostport at;  /* where the connection goes: the master the sentinels named */
    redisContext *sctx[SP_REDIS_MAX_SENTINELS]; /* connections to them, kept open */
    size_t sorder[SP_REDIS_MAX_SENTINELS]; /* the order to ask them in */
    int64_t sfailed_ms[SP_REDIS_MAX_SENTINELS]; /* when each last failed to answer */
    char replid[48];       /* the master's replication id (INFO replication) */
    int64_t checked_ms;    /* when the sentinels last confirmed the master (sp_mono_ms) */
};

/* How often a connection to a master asks the sentinels whether it still is the master:
 * a master that a failover demoted may go on accepting writes (and keep blocked clients
 * waiting) for about ten seconds before the sentinels reconfigure it. */
#define SP_SENTINEL_RECHECK_MS 1000
/* How long one sentinel may take to answer before the next is asked. */
#define SP_SENTINEL_TIMEOUT_MS 500
/* A sentinel that did not answer is not asked again by those checks for this long. */
#define SP_SENTINEL_RETRY_MS 5000

sp_redis *sp_redis_new(const char *url, const sp_script *const *scripts, size_t nscripts,
                       int64_t timeout_ms, sp_err *err)
{
    if (nscripts > SP_MAX_SCRIPTS) {
        sp_err_set(err, SP_EINVAL, "too many scripts");
        return NULL;
    }
    sp_redis *r = sp_calloc(1, sizeof *r);
    if (r == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (sp_redis_url_parse(url, &r->url, err) < 0) {
        sp_free(r);
        return NULL;
    }
    r->scripts = scripts;
    r->nscripts = nscripts;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    for (size_t i = 0; i < r->url.nsentinels; i++)
        r->sorder[i] = i;
    return r;
}

void sp_redis_disconnect(sp_redis *r)
{
    if (r && r->ctx) {
        redisFree(r->ctx);
        r->ctx = NULL;
        r->client_id = 0;
        r->replies = 0;
        r->pending = 0;
    }
}

void sp_redis_free(sp_redis *r)
{
    if (r == NULL)
        return;
    sp_redis_disconnect(r);
    for (size_t i = 0; i < r->url.nsentinels; i++)
        if (r->sctx[i])
            redisFree(r->sctx[i]);
    sp_free(r);
}

static struct timeval sp__tv(int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    return tv;
}

static void sp__where(const sp_redis *r, char *out, size_t n)
{
    if (r->url.unix_path[0])
        snprintf(out, n, "unix:%s", r->url.unix_path);
    else if (r->url.master[0] && r->at.host[0])
        snprintf(out, n, "%s:%d (master '%s')", r->at.host, r->at.port, r->url.master);
    else if (r->url.master[0])
        snprintf(out, n, "master '%s'", r->url.master);
    else
        snprintf(out, n, "%s:%d", r->url.host, r->url.port);
}

/* Turn a connection-level failure into SP_EREDIS and drop the context. */
static int sp__conn_error(sp_redis *r, sp_err *err)
{
    r->stale_error = r->ctx != NULL && r->replies > 0;
    char where[512];
    sp__where(r, where, sizeof where);
    int rc = sp_err_set(err, SP_EREDIS, "Redis unavailable at %s: %s", where,
                        r->ctx && r->ctx->errstr[0] ? r->ctx->errstr : "connection lost");
    sp_redis_disconnect(r);
    return rc;
}

/* Error replies that say Redis cannot serve us now rather than that the command was
 * wrong: the command did not run, and the same command may work later (or once an
 * operator fixes the credentials). Word-prefixed as Redis sends them. */
static const struct {
    const char *prefix;
    const char *what;
} sp__unavailable[] = {
    {"LOADING ", "is loading its data set into memory"},
    {"BUSY ", "is busy running a script"},
    {"MASTERDOWN ", "is a replica that lost its master"},
    {"READONLY ", "is a read-only replica (a failover?)"},
    {"TRYAGAIN ", "asks to try again"},
    {"CLUSTERDOWN ", "reports its cluster down"},
    {"MISCONF ", "cannot persist its data and refuses writes"},
    {"OOM ", "is out of memory (maxmemory) and refuses writes"},
    {"NOREPLICAS ", "has too few replicas for writes"},
    {"NOAUTH ", "needs a password: authentication failed (set it in the Redis URL)"},
    {"WRONGPASS ", "refused the user and password: authentication failed (check the Redis URL)"},
    {"ERR invalid password", "refused the password: authentication failed (check the Redis URL)"},
    {"ERR AUTH ", "has no password set: authentication failed (remove it from the Redis URL)"},
    {"ERR Client sent AUTH, but no password is set",
     "has no password set: authentication failed (remove it from the Redis URL)"},
    {"NOPERM ", "does not let this user run spool's commands (check its ACL)"},
    {"ERR max number of clients reached", "has no room for another client (maxclients)"},
};

/* Turn an error reply into an error code: SP_EREDIS (and drop the connection, which a
 * pipeline may leave with replies unread) when Redis cannot serve us now, otherwise
 * SP_EPROTO. Frees rep. */
static int sp__reply_error(sp_redis *r, redisReply *rep, sp_err *err)
{
    const char *text = rep->str ? rep->str : "";
    for (size_t i = 0; i < sizeof sp__unavailable / sizeof *sp__unavailable; i++) {
        const char *p = sp__unavailable[i].prefix;
        if (strncmp(text, p, strlen(p)) == 0) {
            char where[512];
            sp__where(r, where, sizeof where);
            sp_err_set(err, SP_EREDIS, "Redis at %s %s: %s", where, sp__unavailable[i].what,
                       text);
            freeReplyObject(rep);
            r->stale_error = false;
            sp_redis_disconnect(r);
            return SP_EREDIS;
        }
    }
    sp_err_set(err, SP_EPROTO, "Redis: %s", text);
    freeReplyObject(rep);
    return SP_EPROTO;
}

static int sp__replaced_during(sp_redis *r, redisReply *rep, sp_err *err);

/* The AUTH command for u's credentials into a (3 slots): its length, 0 without a
 * password. */
static int sp__auth_argv(const sp_redis_url *u, const char *a[3])
{
    if (!u->password[0])
        return 0;
    a[0] = "AUTH";
    if (!u->user[0]) {
        a[1] = u->password;
        return 2;
    }
    a[1] = u->user;
    a[2] = u->password;
    return 3;
}

/* A connection for a quick question (a sentinel's, or a server a sentinel named):
 * made and answered within SP_SENTINEL_TIMEOUT_MS (or the handle's timeout if less).
 * NULL when out of memory; check ->err. */
static redisContext *sp__connect_quick(const sp_redis *r, const sp_redis_hostport *hp)
{
    int64_t ms = r->timeout_ms < SP_SENTINEL_TIMEOUT_MS ? r->timeout_ms : SP_SENTINEL_TIMEOUT_MS;
    redisContext *c = redisConnectWithTimeout(hp->host, hp->port, sp__tv(ms));
    if (c && !c->err)
        redisSetTimeout(c, sp__tv(ms));
    return c;
}

/* Is a look at the sentinels due before or after the next command? With Sentinel, at
 * most once a second, and never inside a pipeline. */
static bool sp__check_due(const sp_redis *r)
{
    return r->url.master[0] && r->pending == 0 &&
           sp_mono_ms() - r->checked_ms >= SP_SENTINEL_RECHECK_MS;
}

static int sp__raw(sp_redis *r, redisReply **out, sp_err *err, int argc, const char **argv,
                   const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
    if (rep == NULL) {
        r->unanswered = true;
        return sp__conn_error(r, err);
    }
    r->replies++;
    if (sp__replaced_during(r, rep, err) < 0) {
        r->unanswered = true;
        return SP_EREDIS;
    }
    if (rep->type == REDIS_REPLY_ERROR)
        return sp__reply_error(r, rep, err);
    *out = rep;
    return 0;
}

/* Ask sentinel i where the master is (its connection kept open for next time, made
 * within SP_SENTINEL_TIMEOUT_MS). 1 with *hp set; 0 when it knows no such master; -1
 * when it did not answer (why in last). */
static int sp__sentinel_ask(sp_redis *r, size_t i, sp_redis_hostport *hp, char *last,
                            size_t lastn)
{
    const sp_redis_url *u = &r->url;
    const sp_redis_hostport *s = &u->sentinels[i];
    redisContext *c = r->sctx[i];
    r->sctx[i] = NULL;
    if (c == NULL && (c = sp__connect_quick(r, s)) == NULL) {
        snprintf(last, lastn, "%s:%d: out of memory", s->host, s->port);
        return -1;
    }
    redisReply *rep = NULL;
    if (!c->err) {
        const char *a[] = {"SENTINEL", "get-master-addr-by-name", u->master};
        rep = redisCommandArgv(c, 3, a, NULL);
    }
    int rc = -1;
    if (rep == NULL) {
        snprintf(last, lastn, "%s:%d: %s", s->host, s->port,
                 c->errstr[0] ? c->errstr : "no answer");
    } else if (rep->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
               rep->element[0]->type == REDIS_REPLY_STRING &&
               rep->element[1]->type == REDIS_REPLY_STRING && rep->element[0]->len > 0 &&
               rep->element[0]->len < sizeof hp->host) {
        int64_t port;
        if (sp_parse_i64(rep->element[1]->str, 1, 65535, &port) == 0) {
            memset(hp, 0, sizeof *hp);
            memcpy(hp->host, rep->element[0]->str, rep->element[0]->len);
            hp->port = (int)port;
            rc = 1;
        } else {
            snprintf(last, lastn, "%s:%d: a bad port in its answer", s->host, s->port);
        }
    } else {
        snprintf(last, lastn, "%s:%d: %s", s->host, s->port,
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "an unexpected answer");
    }
    if (rep)
        freeReplyObject(rep);
    if (rc < 0 || c->err)
        redisFree(c);
    else
        r->sctx[i] = c;
    r->sfailed_ms[i] = rc < 0 ? sp_mono_ms() : 0;
    return rc;
}

/* Ask sentinel order[k] first from now on. */
static void sp__sentinel_first(sp_redis *r, size_t k)
{
    size_t i = r->sorder[k];
    memmove(&r->sorder[1], &r->sorder[0], k * sizeof *r->sorder);
    r->sorder[0] = i;
}

/* Ask the sentinels where the master is, the one that answered last first. 0 with *hp
 * set, or SP_EREDIS saying whether no sentinel answered or none knows the master. */
static int sp__sentinel_master(sp_redis *r, sp_redis_hostport *hp, sp_err *err)
{
    const sp_redis_url *u = &r->url;
    char last[300] = "";
    size_t unknown = 0;
    for (size_t k = 0; k < u->nsentinels; k++) {
        int rc = sp__sentinel_ask(r, r->sorder[k], hp, last, sizeof last);
        if (rc == 1) {
            sp__sentinel_first(r, k);
            return 0;
        }
        unknown += rc == 0;
    }
    if (unknown > 0)
        return sp_err_set(err, SP_EREDIS,
                          "Redis sentinels do not know a master named '%s' (%zu of %zu said so; "
                          "check the name after '#' in the Redis URL)",
                          u->master, unknown, u->nsentinels);
    return sp_err_set(err, SP_EREDIS,
                      "Redis unavailable: no sentinel answered where master '%s' is (%zu tried; "
                      "last: %s)",
                      u->master, u->nsentinels, last);
}

/* From an INFO replication text, the value of field ("role", "master_replid"...). */
static void sp__info_field(const char *info, const char *field, char *out, size_t n)
{
    out[0] = '\0';
    size_t fl = strlen(field);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            size_t vl = strcspn(p + fl + 1, "\r\n");
            snprintf(out, n, "%.*s", (int)(vl < n ? vl : n - 1), p + fl + 1);
            return;
        }
    }
}

/* The connection's server must be a master (INFO replication): the sentinels' answer
 * may be out of date while a failover goes on. Its replication id is kept to recognise
 * its successor. 0, SP_EREDIS with *replica set, or another error. */
static int sp__check_master(sp_redis *r, bool *replica, sp_err *err)
{
    redisReply *rep = NULL;
    const char *a[] = {"INFO", "replication"};
    int rc = sp__raw(r, &rep, err, 2, a, NULL);
    if (rc < 0)
        return rc;
    char role[32];
    const char *info = sp_reply_str(rep, NULL);
    sp__info_field(info, "role", role, sizeof role);
    sp__info_field(info, "master_replid", r->replid, sizeof r->replid);
    freeReplyObject(rep);
    if (strcmp(role, "master") == 0)
        return 0;
    *replica = true;
    char where[512];
    sp__where(r, where, sizeof where);
    return sp_err_set(err, SP_EREDIS,
                      "Redis at %s is a %s, not the master the sentinels named (a failover is "
                      "under way?)",
                      where, role[0] ? role : "server of unknown role");
}

/* Does hp hold a master promoted from a replica of ours (its previous replication id,
 * master_replid2, is our master's id)? Then a failover replaced ours, even while ours,
 * frozen or cut off during it, still takes writes that the sentinels will throw away
 * when they turn it into a replica. */
static bool sp__succeeds_ours(sp_redis *r, const sp_redis_hostport *hp)
{
    redisContext *c = sp__connect_quick(r, hp);
    if (c == NULL)
        return false;
    bool ok = !c->err;
    const char *auth[3];
    int nauth = sp__auth_argv(&r->url, auth);
    if (ok && nauth > 0) {
        redisReply *rep = redisCommandArgv(c, nauth, auth, NULL);
        ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
        if (rep)
            freeReplyObject(rep);
    }
    bool yes = false;
    if (ok) {
        const char *a[] = {"INFO", "replication"};
        redisReply *rep = redisCommandArgv(c, 2, a, NULL);
        const char *info = sp_reply_str(rep, NULL);
        if (info) {
            char role[32], replid2[48];
            sp__info_field(info, "role", role, sizeof role);
            sp__info_field(info, "master_replid2", replid2, sizeof replid2);
            yes = strcmp(role, "master") == 0 && r->replid[0] && strcmp(replid2, r->replid) == 0;
        }
        if (rep)
            freeReplyObject(rep);
    }
    redisFree(c);
    return yes;
}

/* Has a failover replaced our master? Every sentinel is asked (one that has heard may
 * be any of them); a master another one names counts only when it succeeds ours, so a
 * sentinel that is behind never moves us back. 1 (and that sentinel is asked first
 * from now on), or 0. */
static int sp__master_replaced(sp_redis *r)
{
    char last[300];
    int64_t now = sp_mono_ms();
    for (size_t k = 0; k < r->url.nsentinels; k++) {
        /* one that did not answer is left alone for a while: a sentinel host that is
         * down must not slow every command by a connect timeout */
        size_t i = r->sorder[k];
        if (r->sfailed_ms[i] != 0 && now - r->sfailed_ms[i] < SP_SENTINEL_RETRY_MS)
            continue;
        sp_redis_hostport hp;
        if (sp__sentinel_ask(r, i, &hp, last, sizeof last) == 1 &&
            !(strcmp(hp.host, r->at.host) == 0 && hp.port == r->at.port) &&
            sp__succeeds_ours(r, &hp)) {
            sp__sentinel_first(r, k);
            return 1;
        }
    }
    return 0;
}

/* A reply that comes long after the last check (the server was frozen or cut off, and
 * the command waited) may come from a master that a failover has replaced meanwhile:
 * what the command did there will be thrown away. Then rep is freed, the connection
 * dropped, and SP_EREDIS returned as for a lost connection (the caller does not know
 * whether the command took effect, and asks or sends it again on the new master). */
static int sp__replaced_during(sp_redis *r, redisReply *rep, sp_err *err)
{
    if (!sp__check_due(r) || sp_redis_master_moved(r) == 0)
        return 0;
    freeReplyObject(rep);
    return sp_err_set(err, SP_EREDIS,
                      "Redis master '%s' was replaced by a failover while a command ran on it: "
                      "its effect may be lost",
                      r->url.master);
}

int sp_redis_master_moved(sp_redis *r)
{
    if (!r->url.master[0] || r->ctx == NULL || r->pending > 0)
        return 0;
    r->checked_ms = sp_mono_ms();
    if (sp__master_replaced(r) == 0)
        return 0;
    sp_redis_disconnect(r);
    return 1;
}

static int sp__connect_once(sp_redis *r, bool *replica, sp_err *err);

/* True when the server has closed an idle connection (or sent what nobody asked for):
 * a command sent on it would be lost unrun, and could not be told apart from one that
 * ran on a server that died before answering. */
static bool sp__peer_closed(const sp_redis *r)
{
    struct pollfd pfd = {r->ctx->fd, POLLIN | POLLRDHUP, 0};
    return r->pending == 0 && poll(&pfd, 1, 0) > 0;
}

int sp_redis_connect(sp_redis *r, sp_err *err)
{
    r->unanswered = false;
    if (r->ctx && sp__peer_closed(r))
        sp_redis_disconnect(r); /* Redis restarted or dropped us while idle */
    /* Still the master? Asked at most once a second, between commands. */
    if (r->ctx && (!sp__check_due(r) || sp_redis_master_moved(r) == 0))
        return 0;
    if (!r->url.master[0]) {
        bool replica = false;
        return sp__connect_once(r, &replica, err);
    }
    /* Sentinels: during a failover they may name the old master for a moment, or the
     * new one before it has taken the role; ask again shortly (a few times at most). */
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (attempt > 0)
            sp_sleep_ms(100 * attempt, NULL);
        rc = sp__sentinel_master(r, &r->at, err);
        if (rc < 0)
            return rc;
        r->checked_ms = sp_mono_ms(); /* just asked */
        bool replica = false;
        rc = sp__connect_once(r, &replica, err);
        if (rc == 0)
            return 0;
        if (!replica && !(rc == SP_EREDIS && attempt == 0))
            return rc;
    }
    return rc;
}

static int sp__connect_once(sp_redis *r, bool *replica, sp_err *err)
{
    struct timeval tv = sp__tv(r->timeout_ms);
    if (r->url.unix_path[0])
        r->ctx = redisConnectUnixWithTimeout(r->url.unix_path, tv);
    else if (r->url.master[0])
        r->ctx = redisConnectWithTimeout(r->at.host, r->at.port, tv);
    else
        r->ctx = redisConnectWithTimeout(r->url.host, r->url.port, tv);
    if (r->ctx == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory connecting to Redis");
    if (r->ctx->err)
        return sp__conn_error(r, err);
    r->generation++;
    redisSetTimeout(r->ctx, tv);
    if (!r->url.unix_path[0])
        redisEnableKeepAlive(r->ctx);

    redisReply *rep = NULL;
    int rc = 0;
    const char *auth[3];
    int nauth = sp__auth_argv(&r->url, auth);
    if (nauth > 0) {
        rc = sp__raw(r, &rep, err, nauth, auth, NULL);
        freeReplyObject(rep);
        rep = NULL;
    }
    if (rc == 0 && r->url.master[0])
        rc = sp__check_master(r, replica, err);
    if (rc == 0 && r->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->url.db);
        const char *a[] = {"SELECT", db};
        rc = sp__raw(r, &rep, err, 2, a, NULL);
        freeReplyObject(rep);
        rep = NULL;
    }
    if (rc == 0) {
        const char *a[] = {"CLIENT", "ID"};
        rc = sp__raw(r, &rep, err, 2, a, NULL);
        if (rc == 0)
            r->client_id = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
        freeReplyObject(rep);
        rep = NULL;
    }
    for (size_t i = 0; rc == 0 && i < r->nscripts; i++) {
        const char *a[] = {"SCRIPT", "LOAD", r->scripts[i]->source};
        rc = sp__raw(r, &rep, err, 3, a, NULL);
        if (rc == 0 && rep->type == REDIS_REPLY_STRING && rep->len == 40)
            memcpy(r->sha[i], rep->str, 41);
        else if (rc == 0)
            rc = sp_err_set(err, SP_EPROTO, "SCRIPT LOAD %s: unexpected reply",
                            r->scripts[i]->name);
        else
            sp_err_prefix(err, "loading script %s", r->scripts[i]->name);
        freeReplyObject(rep);
        rep = NULL;
    }
    if (rc < 0)
        sp_redis_disconnect(r);
    return rc;
}

int sp_redis_cmd(sp_redis *r, redisReply **out, sp_err *err, int argc, const char **argv,
                 const size_t *lens)
{
    *out = NULL;
    int rc = sp_redis_connect(r, err);
    if (rc < 0)
        return rc;
    return sp__raw(r, out, err, argc, argv, lens);
}

int sp_redis_cmd_blocking(sp_redis *r, int64_t block_ms, redisReply **out, sp_err *err,
                          int argc, const char **argv, const size_t *lens)
{
    *out = NULL;
    int rc = sp_redis_connect(r, err);
    if (rc < 0)
        return rc;
    redisSetTimeout(r->ctx, sp__tv(block_ms + r->timeout_ms));
    rc = sp__raw(r, out, err, argc, argv, lens);
    if (r->ctx)
        redisSetTimeout(r->ctx, sp__tv(r->timeout_ms));
    return rc;
}

#define SP_EVAL_MAXARGS 1024

/* Build "EVALSHA sha nkeys keys... args..." into argv/lens. */
static int sp__eval_argv(sp_redis *r, size_t index, int nkeys, const char **keys, int nargs,
                         const char **args, const size_t *arglens, const char **argv,
                         size_t *lens, char *nkeybuf, sp_err *err)
{
    if (index >= r->nscripts || nkeys < 0 || nargs < 0 || 3 + nkeys + nargs > SP_EVAL_MAXARGS)
        return sp_err_set(err, SP_EINVAL, "bad script call");
    snprintf(nkeybuf, 16, "%d", nkeys);
    int n = 0;
    argv[n] = "EVALSHA";
    lens[n++] = 7;
    argv[n] = r->sha[index];
    lens[n++] = 40;
    argv[n] = nkeybuf;
    lens[n++] = strlen(nkeybuf);
    for (int i = 0; i < nkeys; i++) {
        argv[n] = keys[i];
        lens[n++] = strlen(keys[i]);
    }
    for (int i = 0; i < nargs; i++) {
        argv[n] = args[i];
        lens[n++] = arglens ? arglens[i] : strlen(args[i]);
    }
    return n;
}

int sp_redis_eval(sp_redis *r, size_t index, int nkeys, const char **keys, int nargs,
                  const char **args, const size_t *arglens, redisReply **out, sp_err *err)
{
    *out = NULL;
    const char *argv[SP_EVAL_MAXARGS];
    size_t lens[SP_EVAL_MAXARGS];
    char nkeybuf[16];
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = sp_redis_connect(r, err);
        if (rc < 0)
            return rc;
        int n = sp__eval_argv(r, index, nkeys, keys, nargs, args, arglens, argv, lens, nkeybuf,
                              err);
        if (n < 0)
            return n;
        rc = sp__raw(r, out, err, n, argv, lens);
        if (rc == SP_EPROTO && err && strstr(err->msg, "NOSCRIPT") != NULL) {
            /* Someone flushed the script cache: reconnecting loads the scripts again. */
            sp_redis_disconnect(r);
            continue;
        }
        if (rc == SP_EPROTO && err)
            sp_err_prefix(err, "script %s", r->scripts[index]->name);
        return rc;
    }
    return sp_err_set(err, SP_EPROTO, "script %s could not be loaded", r->scripts[index]->name);
}

int sp_redis_append_eval(sp_redis *r, size_t index, int nkeys, const char **keys, int nargs,
                         const char **args, const size_t *arglens, sp_err *err)
{
    const char *argv[SP_EVAL_MAXARGS];
    size_t lens[SP_EVAL_MAXARGS];
    char nkeybuf[16];
    int rc = sp_redis_connect(r, err);
    if (rc < 0)
        return rc;
    int n = sp__eval_argv(r, index, nkeys, keys, nargs, args, arglens, argv, lens, nkeybuf, err);
    if (n < 0)
        return n;
    if (redisAppendCommandArgv(r->ctx, n, argv, lens) != REDIS_OK)
        return sp__conn_error(r, err);
    r->pending++;
    return 0;
}

int sp_redis_append(sp_redis *r, sp_err *err, int argc, const char **argv, const size_t *lens)
{
    int rc = sp_redis_connect(r, err);
    if (rc < 0)
        return rc;
    if (redisAppendCommandArgv(r->ctx, argc, argv, lens) != REDIS_OK)
        return sp__conn_error(r, err);
    r->pending++;
    return 0;
}

int sp_redis_read(sp_redis *r, redisReply **out, sp_err *err)
{
    *out = NULL;
    if (r->ctx == NULL)
        return sp_err_set(err, SP_EREDIS, "Redis connection lost during a pipeline");
    void *rep = NULL;
    if (redisGetReply(r->ctx, &rep) != REDIS_OK || rep == NULL) {
        r->unanswered = true;
        return sp__conn_error(r, err);
    }
    r->replies++;
    if (r->pending > 0)
        r->pending--;
    redisReply *rr = rep;
    if (sp__replaced_during(r, rr, err) < 0) {
        r->unanswered = true;
        return SP_EREDIS;
    }
    if (rr->type == REDIS_REPLY_ERROR)
        return sp__reply_error(r, rr, err);
    *out = rr;
    return 0;
}

int sp_redis_send(sp_redis *r, sp_err *err, int argc, const char **argv, const size_t *lens)
{
    int rc = sp_redis_append(r, err, argc, argv, lens);
    if (rc < 0)
        return rc;
    int done = 0;
    while (!done) {
        if (redisBufferWrite(r->ctx, &done) != REDIS_OK)
            return sp__conn_error(r, err);
    }
    return 0;
}

int sp_redis_fd(const sp_redis *r)
{
    return r->ctx ? r->ctx->fd : -1;
}

int sp_redis_try_read(sp_redis *r, redisReply **out, sp_err *err)
{
    *out = NULL;
    if (r->ctx == NULL)
        return sp_err_set(err, SP_EREDIS, "Redis connection lost");
    void *rep = NULL;
    if (redisGetReplyFromReader(r->ctx, &rep) != REDIS_OK)
        return sp__conn_error(r, err);
    if (rep == NULL) {
        struct pollfd pfd = {r->ctx->fd, POLLIN, 0};
        if (poll(&pfd, 1, 0) <= 0)
            return 0;
        if (redisBufferRead(r->ctx) != REDIS_OK)
            return sp__conn_error(r, err);
        if (redisGetReplyFromReader(r->ctx, &rep) != REDIS_OK)
            return sp__conn_error(r, err);
        if (rep == NULL)
            return 0;
    }
    r->replies++;
    if (r->pending > 0)
        r->pending--;
    redisReply *rr = rep;
    if (rr->type == REDIS_REPLY_ERROR)
        return sp__reply_error(r, rr, err);
    *out = rr;
    return 1;
}

bool sp_redis_stale_error(const sp_redis *r)
{
    return r->stale_error;
}

bool sp_redis_retry_read(const sp_redis *r, int rc)
{
    return rc == SP_EREDIS && r->stale_error;
}

int sp_redis_time_ms(sp_redis *r, int64_t *now_ms, sp_err *err)
{
    const char *argv[] = {"TIME"};
    redisReply *rep;
    int rc = sp_redis_cmd(r, &rep, err, 1, argv, NULL);
    if (rc < 0)
        return rc;
    const char *s = sp_reply_str(sp_reply_elem(rep, 0), NULL);
    const char *us = sp_reply_str(sp_reply_elem(rep, 1), NULL);
    if (s == NULL || us == NULL)
        rc = sp_err_set(err, SP_EPROTO, "TIME: unexpected reply");
    else
        *now_ms = strtoll(s, NULL, 10) * 1000 + strtoll(us, NULL, 10) / 1000;
    sp_redis_reply_free(rep);
    return rc;
}

bool sp_redis_unanswered(const sp_redis *r)
{
    return r->unanswered;
}

uint64_t sp_redis_generation(const sp_redis *r)
{
    return r->generation;
}

int64_t sp_redis_client_id(const sp_redis *r)
{
    return r->client_id;
}

void sp_redis_reply_free(redisReply *reply)
{
    if (reply)
        freeReplyObject(reply);
}

const char *sp_reply_str(const redisReply *r, size_t *len)
{
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
        return NULL;
    if (len)
        *len = r->len;
    return r->str;
}

int64_t sp_reply_int(const redisReply *r, int64_t fallback)
{
    if (r == NULL)
        return fallback;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    if (r->type == REDIS_REPLY_STRING) {
        int64_t v;
        if (sp_parse_i64(r->str, INT64_MIN, INT64_MAX, &v) == 0)
            return v;
    }
    return fallback;
}

const redisReply *sp_reply_elem(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return NULL;
    return r->element[i];
}

size_t sp_reply_len(const redisReply *r)
{
    return (r && r->type == REDIS_REPLY_ARRAY) ? r->elements : 0;
}

int sp_reply_is(const redisReply *r, const char *s)
{
    size_t n;
    const char *v = sp_reply_str(r, &n);
    return v != NULL && n == strlen(s) && memcmp(v, s, n) == 0;
}

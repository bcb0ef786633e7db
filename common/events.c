/* events.c - job change notifications over Redis pub/sub, for long-polls. */
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/util.h"

struct sp_events {
    sp_redis *r;   /* the subscriber */
    sp_redis *cmd; /* marks watched jobs (a subscriber cannot run commands) */
    char prefix[SP_PREFIX_MAX + 1];
};

sp_events *sp_events_open(const char *url, const char *prefix, sp_err *err)
{
    sp_events *ev = sp_calloc(1, sizeof *ev);
    if (ev == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    if (sp__prefix_copy(ev->prefix, prefix, err) < 0 ||
        (ev->r = sp_redis_new(url, NULL, 0, 5000, err)) == NULL ||
        (ev->cmd = sp__redis_open(url, err)) == NULL) {
        sp_redis_free(ev->r);
        sp_free(ev);
        return NULL;
    }
    return ev;
}

void sp_events_close(sp_events *ev)
{
    if (ev == NULL)
        return;
    sp_redis_free(ev->r);
    sp_redis_free(ev->cmd);
    sp_free(ev);
}

static int sp__events_send(sp_events *ev, const char *verb, const char *id, sp_err *err)
{
    if (!sp_id_valid(id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    sp_key k;
    const char *argv[] = {verb, sp__chan_job(&k, ev->prefix, id)};
    return sp_redis_send(ev->r, err, 2, argv, NULL);
}

int sp_events_watch(sp_events *ev, const char *id, sp_err *err)
{
    int rc = sp__events_send(ev, "SUBSCRIBE", id, err);
    if (rc < 0)
        return rc;
    /* Workers announce a job's start and end only once it is marked (step.lua). */
    sp_key k;
    const char *keys[] = {sp__key_job(&k, ev->prefix, id)};
    redisReply *rep;
    rc = sp_redis_eval(ev->cmd, SP_LUA_WATCH, 1, keys, 0, NULL, NULL, &rep, err);
    if (rc < 0) {
        sp_err e2;
        sp__events_send(ev, "UNSUBSCRIBE", id, &e2);
        return rc;
    }
    sp_redis_reply_free(rep);
    return 0;
}

int sp_events_unwatch(sp_events *ev, const char *id, sp_err *err)
{
    return sp__events_send(ev, "UNSUBSCRIBE", id, err);
}

int sp_events_fd(const sp_events *ev)
{
    return sp_redis_fd(ev->r);
}

int sp_events_read(sp_events *ev, char id[SP_ID_LEN + 1], char event[32], sp_err *err)
{
    size_t plen = strlen(ev->prefix);
    for (;;) {
        redisReply *rep;
        int rc = sp_redis_try_read(ev->r, &rep, err);
        if (rc <= 0)
            return rc;
        size_t clen, elen;
        const char *kind = sp_reply_str(sp_reply_elem(rep, 0), NULL);
        const char *chan = sp_reply_str(sp_reply_elem(rep, 1), &clen);
        const char *what = sp_reply_str(sp_reply_elem(rep, 2), &elen);
        int got = 0;
        if (kind && strcmp(kind, "message") == 0 && chan && what &&
            clen == plen + 3 + SP_ID_LEN && memcmp(chan, ev->prefix, plen) == 0) {
            memcpy(id, chan + plen + 3, SP_ID_LEN);
            id[SP_ID_LEN] = '\0';
            if (elen > 31)
                elen = 31;
            memcpy(event, what, elen);
            event[elen] = '\0';
            got = sp_id_valid(id);
        }
        sp_redis_reply_free(rep);
        if (got)
            return 1;
        /* subscribe/unsubscribe confirmations: keep reading */
    }
}

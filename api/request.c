/* request.c - what every handler asks of its request: headers, query parameters, this
 * thread's queue handle, the blobs it wrote, suspending a long-poll (see request.h). */
#include "request.h"

#include "spool/alloc.h"
#include "spool/log.h"

/* ---- per-thread queue handles ----------------------------------------------------- */

sp_queue *api_queue(api_req *r, sp_err *err)
{
    api_server *s = r->srv;
    sp_queue *q = pthread_getspecific(s->qkey);
    if (q)
        return q;
    q = sp_queue_open(s->cfg->common.redis_url, s->cfg->common.prefix, err);
    if (q && pthread_setspecific(s->qkey, q) != 0) {
        sp_queue_close(q);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    return q;
}

sp_scheds *api_scheds(api_req *r, sp_err *err)
{
    api_server *s = r->srv;
    sp_scheds *h = pthread_getspecific(s->skey);
    if (h)
        return h;
    h = sp_scheds_open(s->cfg->common.redis_url, s->cfg->common.prefix, err);
    if (h && pthread_setspecific(s->skey, h) != 0) {
        sp_scheds_close(h);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    return h;
}

/* ---- request helpers ---------------------------------------------------------------- */

const char *api_header(api_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *api_query(api_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct api__each_ctx {
    int (*fn)(void *ud, const char *name, const char *value);
    void *ud;
    int rc;
} api__each_ctx;

static enum MHD_Result api__each(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    api__each_ctx *c = cls;
    c->rc = c->fn(c->ud, key, value ? value : "");
    return c->rc == 0 ? MHD_YES : MHD_NO;
}

int api_query_each(api_req *r, int (*fn)(void *ud, const char *name, const char *value),
                   void *ud)
{
    api__each_ctx c = {fn, ud, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, api__each, &c);
    return c.rc;
}

void api_req_drop_blobs(api_req *r)
{
    sp_blob_abort(r->blob);
    r->blob = NULL;
    if (!r->made_blobs || r->job_created)
        return;
    r->made_blobs = false;
    sp_err err;
    sp_logctx lc = {r->id, NULL, NULL};
    if (sp_blobs_remove_job(r->srv->blobs, r->id, &err) < 0)
        sp_warn(&lc, "cannot remove the files of a request that made no job: %s", err.msg);
}

void api_suspend(api_req *r)
{
    r->waiter.ud = r->conn;
    r->suspended = true;
    MHD_suspend_connection(r->conn);
    if (api_lp_wait(r->srv->lp, &r->waiter) < 0)
        MHD_resume_connection(r->conn); /* shutting down: the handler answers at once */
}

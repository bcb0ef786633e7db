/* history_route.c - GET /v1/queues/{name}/history: the queue's sampled history
 * (history.h) for the dashboard's chart. */
#include "handlers.h"
#include "reply.h"

/* GET /v1/queues/{name}/history */
enum MHD_Result api_queue_history(api_req *r)
{
    if (api_query_each(r, api_query_none, r) != 0)
        return api_replied(r);
    sp_buf b;
    sp_buf_init(&b, 16 * 1024 * 1024);
    int rc = api_history_render(r->srv->history, r->route.queue, &b);
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_code(r, rc, NULL);
    }
    return api_reply_json(r, 200, &b, NULL, 0);
}

/* handlers.h - the route handlers, one group per resource: videos.c (POST
 * /v1/videos), exports.c (POST /v1/exports), jobs.c (/v1/jobs...), system.c (health,
 * readiness, metrics, queues), workers.c (/v1/workers), dead.c (dead-letter sets),
 * history_route.c (queue charts), schedules.c (/v1/schedules...), ui.c (the dashboard's files) and apidoc.c (the API's
 * own description). server.c dispatches to them through its route table.
 * Each returns what a libmicrohttpd access handler returns. */
#ifndef SPOOL_API_HANDLERS_H
#define SPOOL_API_HANDLERS_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "request.h"
#include "ssehub.h"

/* videos.c */
enum MHD_Result api_videos_begin(api_req *r);
enum MHD_Result api_videos_data(api_req *r, const char *data, size_t n);
enum MHD_Result api_videos_end(api_req *r);

/* exports.c */
enum MHD_Result api_exports_begin(api_req *r);
enum MHD_Result api_exports_data(api_req *r, const char *data, size_t n);
enum MHD_Result api_exports_end(api_req *r);

/* jobs.c */
enum MHD_Result api_jobs_get(api_req *r);    /* GET /v1/jobs/{id}, with ?wait= */
enum MHD_Result api_jobs_cancel(api_req *r); /* DELETE /v1/jobs/{id} */
enum MHD_Result api_jobs_retry(api_req *r);  /* POST /v1/jobs/{id}/retry */
enum MHD_Result api_jobs_list(api_req *r);   /* GET /v1/jobs */
enum MHD_Result api_jobs_output(api_req *r); /* GET /v1/jobs/{id}/outputs/{name} */

/* events.c (Server-Sent Events through the hub, ssehub.h) */
enum MHD_Result api_events_all(api_req *r); /* GET /v1/events */
enum MHD_Result api_events_job(api_req *r); /* GET /v1/jobs/{id}/events */

/* system.c */
enum MHD_Result api_sys_healthz(api_req *r);
enum MHD_Result api_sys_readyz(api_req *r);
enum MHD_Result api_sys_metrics(api_req *r);
enum MHD_Result api_sys_queues(api_req *r);
enum MHD_Result api_sys_queue_pause(api_req *r);

/* workers.c */
enum MHD_Result api_workers_list(api_req *r); /* GET /v1/workers */
/* A live worker as /v1/queues and /v1/workers show it (a new reference; NULL when out
 * of memory). */
json_t *api_worker_json(const sp_worker_info *w);

/* dead.c: a queue's dead-letter set */
enum MHD_Result api_dead_list(api_req *r);   /* GET /v1/queues/{name}/dead */
enum MHD_Result api_dead_begin(api_req *r);  /* POST .../dead/retry and .../dead/purge */
enum MHD_Result api_dead_end(api_req *r);

/* history_route.c */
enum MHD_Result api_queue_history(api_req *r); /* GET /v1/queues/{name}/history */

/* schedules.c */
enum MHD_Result api_schedules_begin(api_req *r);  /* POST and PATCH: a JSON body */
enum MHD_Result api_schedules_create(api_req *r); /* POST /v1/schedules */
enum MHD_Result api_schedules_list(api_req *r);   /* GET /v1/schedules */
enum MHD_Result api_schedules_get(api_req *r);    /* GET /v1/schedules/{name} */
enum MHD_Result api_schedules_patch(api_req *r);  /* PATCH /v1/schedules/{name} */
enum MHD_Result api_schedules_delete(api_req *r); /* DELETE /v1/schedules/{name} */
enum MHD_Result api_schedules_runs(api_req *r);   /* GET /v1/schedules/{name}/runs */

/* ui.c: the dashboard's files */
enum MHD_Result api_ui_page(api_req *r);  /* GET /ui, /ui/... */
enum MHD_Result api_ui_asset(api_req *r); /* GET /ui/assets/{name} */

/* apidoc.c */
enum MHD_Result api_doc_openapi(api_req *r); /* GET /openapi.json */
enum MHD_Result api_doc_page(api_req *r);    /* GET /docs/api */

#endif

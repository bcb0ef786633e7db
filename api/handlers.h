/* handlers.h - the route handlers, one group per resource: videos.c (POST
 * /v1/videos), exports.c (POST /v1/exports), jobs.c (/v1/jobs...), system.c (health,
 * readiness, metrics, queues). server.c dispatches to them through its route table.
 * Each returns what a libmicrohttpd access handler returns. */
#ifndef SPOOL_API_HANDLERS_H
#define SPOOL_API_HANDLERS_H

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

#endif

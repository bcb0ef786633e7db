/* route.h - the API's URL space: turn a request path into a route and its parameters
 * (job id, output name), strictly, before anything touches Redis or the disk. Pure
 * code with no HTTP library in it, so the fuzzer can drive it. */
#ifndef SPOOL_API_ROUTE_H
#define SPOOL_API_ROUTE_H

#include <stdbool.h>

#include "spool/blob.h"
#include "spool/job.h"
#include "spool/schedule.h"
#include "spool/util.h"

typedef enum api_route_id {
    API_R_NONE = 0,   /* no such path */
    API_R_HEALTHZ,    /* /healthz */
    API_R_READYZ,     /* /readyz */
    API_R_METRICS,    /* /metrics */
    API_R_VIDEOS,     /* /v1/videos */
    API_R_EXPORTS,    /* /v1/exports */
    API_R_JOBS,       /* /v1/jobs */
    API_R_JOB,        /* /v1/jobs/{id} */
    API_R_JOB_RETRY,  /* /v1/jobs/{id}/retry */
    API_R_JOB_OUTPUT, /* /v1/jobs/{id}/outputs/{name} */
    API_R_QUEUES,     /* /v1/queues */
    API_R_EVENTS,     /* /v1/events */
    API_R_JOB_EVENTS, /* /v1/jobs/{id}/events */
    API_R_WORKERS,    /* /v1/workers */
    API_R_QUEUE_DEAD, /* /v1/queues/{name}/dead */
    API_R_QUEUE_DEAD_RETRY, /* /v1/queues/{name}/dead/retry */
    API_R_QUEUE_DEAD_PURGE, /* /v1/queues/{name}/dead/purge */
    API_R_QUEUE_HISTORY,    /* /v1/queues/{name}/history */
    API_R_UI,         /* /ui and its pages (/ui/jobs/{id}...): the dashboard's HTML */
    API_R_UI_ASSET,   /* /ui/assets/{name}: its scripts and styles */
    API_R_QUEUE_PAUSE,  /* /v1/queues/{name}/pause */
    API_R_QUEUE_RESUME, /* /v1/queues/{name}/resume */
    API_R_OPENAPI,    /* /openapi.json */
    API_R_DOCS_API,   /* /docs/api */
    API_R_SCHEDULES,  /* /v1/schedules */
    API_R_SCHEDULE,   /* /v1/schedules/{name} */
    API_R_SCHEDULE_RUNS, /* /v1/schedules/{name}/runs */
    API_R_COUNT
} api_route_id;

/* HTTP methods the API knows, as bits for api_route_methods. */
enum api_method {
    API_M_GET = 1,
    API_M_HEAD = 2,
    API_M_POST = 4,
    API_M_DELETE = 8,
    API_M_PATCH = 16,
    API_M_OTHER = 32
};

#define API_NAME_MAX 64

typedef struct api_route {
    api_route_id id;
    /* The path has the shape of a job route but its id (or output name) is not
     * well-formed: such a job cannot exist, so the answer is 404 without a lookup. */
    bool bad_param;
    char job[SP_ID_LEN + 1];     /* job routes: the id */
    char name[SP_BLOB_NAME_MAX + 1]; /* API_R_JOB_OUTPUT: the output name, a blob name
                                      * (may be a folder path: hls/720p/seg_00001.m4s);
                                      * API_R_UI_ASSET: the asset's */
    char queue[SP_QUEUE_MAX + 1]; /* queue routes: the queue's name */
    char schedule[SP_SCHED_NAME_MAX + 1]; /* schedule routes: the schedule's name */
} api_route;

/* Parse a decoded request path (no query string). Fills *out and returns out->id;
 * API_R_NONE for an unknown path. Never fails otherwise; out is always filled. A queue
 * route with a malformed queue name, a schedule route with a malformed schedule name
 * (spool/schedule.h), like a job route with a malformed id, set bad_param. Dashboard pages are /ui, /ui/ and /ui/{queues,jobs,workers,dead}[/...];
 * assets are /ui/assets/{name} with a name of letters, digits, '.', '-', '_'
 * (whether it exists is the handler's question). */
api_route_id api_route_parse(const char *path, api_route *out);

/* True when the request target as sent (raw_uri: path and query, before decoding)
 * encodes a NUL byte (%00): decoded, it would cut the path or a parameter short. */
bool api_uri_has_nul(const char *raw_uri);

/* A stable label for metrics and logs, e.g. "/v1/jobs/{id}"; "other" for API_R_NONE. */
const char *api_route_label(api_route_id id);

/* The methods a route accepts (API_M_* bits), for 405 and the Allow header. */
unsigned api_route_methods(api_route_id id);

/* The method bit for an HTTP method name. */
unsigned api_method_bit(const char *method);

/* True when path is /ui or under /ui/: every answer there carries the dashboard's
 * security headers (Content-Security-Policy...), errors included. */
bool api_path_is_ui(const char *path);

/* True for routes under /v1 (which need a bearer token when tokens are configured);
 * the health routes, metrics, the dashboard's files and the API's own description stay
 * open. */
bool api_route_needs_auth(api_route_id id);

#endif

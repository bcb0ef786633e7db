/* route.h - the API's URL space: turn a request path into a route and its parameters
 * (job id, output name), strictly, before anything touches Redis or the disk. Pure
 * code with no HTTP library in it, so the fuzzer can drive it. */
#ifndef SPOOL_API_ROUTE_H
#define SPOOL_API_ROUTE_H

#include <stdbool.h>

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
    API_R_COUNT
} api_route_id;

/* HTTP methods the API knows, as bits for api_route_methods. */
enum api_method {
    API_M_GET = 1,
    API_M_HEAD = 2,
    API_M_POST = 4,
    API_M_DELETE = 8,
    API_M_OTHER = 16
};

#define API_NAME_MAX 64

typedef struct api_route {
    api_route_id id;
    /* The path has the shape of a job route but its id (or output name) is not
     * well-formed: such a job cannot exist, so the answer is 404 without a lookup. */
    bool bad_param;
    char job[SP_ID_LEN + 1];     /* job routes: the id */
    char name[API_NAME_MAX + 1]; /* API_R_JOB_OUTPUT: the output name */
} api_route;

/* Parse a decoded request path (no query string). Fills *out and returns out->id;
 * API_R_NONE for an unknown path. Never fails otherwise; out is always filled. */
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

/* True for routes under /v1 (which need a bearer token when tokens are configured). */
bool api_route_needs_auth(api_route_id id);

#endif

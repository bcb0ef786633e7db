/* reply.h - every answer the API gives: one error table (status, snake_case code,
 * Retry-After) and one api_reply_error(req, error, fmt, ...) helper, plus JSON and file
 * answers. Bodies are {"error":{"code","message"[,"field"]}} for errors.
 *
 * Before and after the body a reply is queued through libmicrohttpd. During the body
 * (413 past the size limit, a malformed multipart, a refused field) libmicrohttpd
 * cannot queue one, so the reply is written to the socket at once with
 * "Connection: close"; the rest of the body is then read and discarded for a short
 * while (so the client sees the answer rather than a reset) and the connection
 * closed. */
#ifndef SPOOL_API_REPLY_H
#define SPOOL_API_REPLY_H

#include <jansson.h>
#include <microhttpd.h>
#include <stddef.h>

#include "request.h"
#include "spool/buf.h"
#include "validate.h"

enum api_error {
    API_E_BAD_REQUEST,     /* 400 bad_request */
    API_E_INVALID_JSON,    /* 400 invalid_json */
    API_E_BAD_MULTIPART,   /* 400 invalid_multipart */
    API_E_UNAUTHORIZED,    /* 401 unauthorized */
    API_E_NOT_FOUND,       /* 404 not_found */
    API_E_NO_ROUTE,        /* 404 no_such_route */
    API_E_METHOD,          /* 405 method_not_allowed */
    API_E_ENDED,           /* 409 job_ended */
    API_E_NOT_FAILED,      /* 409 job_not_failed */
    API_E_IDEMPOTENCY,     /* 409 idempotency_conflict */
    API_E_TOO_SLOW,        /* 408 request_timeout */
    API_E_TOO_LARGE,       /* 413 payload_too_large */
    API_E_MEDIA_TYPE,      /* 415 unsupported_media_type */
    API_E_RANGE,           /* 416 range_not_satisfiable */
    API_E_INVALID_FIELD,   /* 422 invalid_field */
    API_E_QUEUE_FULL,      /* 429 queue_full, Retry-After */
    API_E_INTERNAL,        /* 500 internal_error */
    API_E_REDIS,           /* 503 redis_unavailable, Retry-After */
    API_E_STORAGE,         /* 503 storage_unavailable, Retry-After */
    API_E_SHUTTING_DOWN,   /* 503 shutting_down, Retry-After */
    API_E_NOT_READY,       /* 503 not_ready, Retry-After */
    API_E_NO_MEMORY,       /* 503 out_of_memory, Retry-After */
    API_E_NOT_REPLICATED,  /* 503 not_replicated, Retry-After */
    API_E_TOO_MANY_STREAMS, /* 503 too_many_streams, Retry-After */
    API_E_SCHEDULE_EXISTS, /* 409 schedule_exists */
    API_E_TOO_MANY_SCHEDULES, /* 409 too_many_schedules */
    API_E_SCHEDULE_CHANGED, /* 409 schedule_changed */
    API_E_COUNT
};

/* How much of a body is read and thrown away after a mid-body reply. */
#define API_DISCARD_MAX (8 * 1024 * 1024)

typedef struct api_hdr_kv {
    const char *name;
    const char *value;
} api_hdr_kv;

/* Answer with error e and a message. Returns what the libmicrohttpd handler returns. */
enum MHD_Result api_reply_error(api_req *r, int e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same with extra headers (Allow for 405, Content-Range for 416). */
enum MHD_Result api_reply_errorh(api_req *r, int e, const api_hdr_kv *hdrs, size_t nhdrs,
                                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* 422 invalid_field naming inv->field. */
enum MHD_Result api_reply_invalid(api_req *r, const api_invalid *inv);

/* The answer for a failed call's code (SP_EREDIS -> 503, SP_ENOTFOUND -> 404,
 * SP_ENOMEM -> 503 out_of_memory...), with err's message (or the code's when err is
 * NULL). */
enum MHD_Result api_reply_code(api_req *r, int code, const sp_err *err);

/* Answer status with the JSON in body (taken: the buffer is emptied) and extra
 * headers. */
enum MHD_Result api_reply_json(api_req *r, int status, sp_buf *body, const api_hdr_kv *hdrs,
                               size_t nhdrs);

/* Answer status with body (taken, as above) of the given content type. */
enum MHD_Result api_reply_body(api_req *r, int status, const char *content_type, sp_buf *body,
                               const api_hdr_kv *hdrs, size_t nhdrs);

/* Answer status with the JSON value v (its reference is taken), a newline after it. */
enum MHD_Result api_reply_json_value(api_req *r, int status, json_t *v);

/* The same with extra headers. */
enum MHD_Result api_reply_json_value_h(api_req *r, int status, json_t *v, const api_hdr_kv *hdrs,
                                       size_t nhdrs);

/* For a route that takes a JSON body of at most max bytes (read into r->text) and no
 * query parameters: the begin step (415 unless the Content-Type is application/json,
 * 422 for a parameter) and the data step (413 past max). */
enum MHD_Result api_json_body_begin(api_req *r, size_t max);
enum MHD_Result api_json_body_data(api_req *r, const char *data, size_t n);

/* A query-parameter callback (api_query_each, with the request as ud) for routes that
 * take no parameters: answers 422 naming the first one and returns -1. */
int api_query_none(void *ud, const char *name, const char *value);

/* Queue a prepared response (destroyed here) with status. Under /ui (api_path_is_ui)
 * it gets the dashboard's security headers (Content-Security-Policy,
 * X-Content-Type-Options, X-Frame-Options, Referrer-Policy). */
enum MHD_Result api_reply_response(api_req *r, int status, struct MHD_Response *resp);

/* What the access handler returns after a helper answered (or tried to): MHD_YES when
 * an answer is on its way, MHD_NO (close the connection) when none could be made. */
enum MHD_Result api_replied(const api_req *r);

/* The status and code of error e (for tests and logs). */
int api_error_status(int e);
const char *api_error_code(int e);

#endif

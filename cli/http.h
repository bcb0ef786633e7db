/* http.h - spoolctl's HTTP client: libcurl, wrapped once here. One handle per process
 * keeps its connection to the API alive between requests. Bodies go out from memory
 * or are streamed from a file descriptor (never read whole into memory); answers come
 * back into a bounded buffer or, for downloads, are streamed to a sink. */
#ifndef SPOOLCTL_HTTP_H
#define SPOOLCTL_HTTP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"
#include "spool/err.h"

typedef struct ctl_http ctl_http;

/* Set from signal handlers: non-zero stops the transfer in progress (SP_ECANCELLED). */
extern volatile sig_atomic_t ctl_interrupted;

/* Call once at start-up, before any thread exists. 0 or SP_ENOMEM. */
int ctl_http_global_init(sp_err *err);
void ctl_http_global_cleanup(void);

/* A client for the API at server ("http://host:port", a path prefix allowed; trailing
 * slashes are dropped) sending token as a bearer token when not NULL. NULL with err set
 * when out of memory. Free with ctl_http_free. */
ctl_http *ctl_http_new(const char *server, const char *token, sp_err *err);
void ctl_http_free(ctl_http *h); /* accepts NULL */

/* The server's base URL as given (without trailing slashes). Owned by h. */
const char *ctl_http_server(const ctl_http *h);

typedef struct ctl_request {
    const char *method;          /* "GET", "POST", "PATCH", "DELETE" */
    const char *path;            /* "/v1/jobs/ID?wait=30": starts with '/', already escaped */
    const char *content_type;    /* of the body, or NULL */
    const char *data;            /* an in-memory body (may be NULL) ... */
    size_t data_len;
    int upload_fd;               /* ... or, when >= 0, a body streamed from this fd */
    int64_t upload_size;         /* bytes to send from upload_fd; -1: unknown (chunked) */
    const char *if_none_match;   /* ETag from an earlier answer, or NULL */
    const char *idempotency_key; /* or NULL */
    int64_t timeout_ms;          /* the whole exchange; 0: no limit */
    const char *accept;          /* Accept (default application/json) */
    const char *last_event_id;   /* Last-Event-ID, or NULL */
    int64_t stall_ms;            /* give up when no byte comes for this long; 0: never */
    /* When set, the body of a 2xx answer goes to sink instead of the response buffer.
     * sink returns 0 or a negative code with err set, which ends the transfer. */
    int (*sink)(void *ud, const void *data, size_t n, sp_err *err);
    void *sink_ud;
    /* When set, called as the body goes out or comes in (totals are 0 when unknown). */
    void (*progress)(void *ud, int64_t up_now, int64_t up_total, int64_t down_now,
                     int64_t down_total);
    void *progress_ud;
} ctl_request;

/* Initialise a request: method and path, no body, no timeout. */
void ctl_request_init(ctl_request *rq, const char *method, const char *path);

typedef struct ctl_response {
    long status;                 /* the final status (after any 100 Continue) */
    sp_buf body;                 /* the body, unless it went to a sink (bounded) */
    char etag[128];
    char location[512];
    char content_type[128];
    int64_t retry_after_s;       /* Retry-After in seconds, -1 when absent */
    int64_t content_length;      /* -1 when absent */
} ctl_response;

void ctl_response_init(ctl_response *r);
void ctl_response_free(ctl_response *r); /* frees the body; accepts NULL */

/* Make one request and fill resp (ctl_response_init'ed by the caller; reset here).
 * Returns 0 when an answer arrived, whatever its status. Otherwise:
 *   SP_EIO        the connection failed or broke (err names the server and the cause)
 *   SP_ETIMEDOUT  rq->timeout_ms ran out
 *   SP_ECANCELLED ctl_interrupted was set
 *   SP_ETOOBIG    an answer's body was larger than the buffer allows
 *   the sink's code when the sink failed (its err is kept). */
int ctl_http_do(ctl_http *h, const ctl_request *rq, ctl_response *resp, sp_err *err);

/* Append s percent-encoded for a query value (RFC 3986 unreserved kept) to b.
 * 0, SP_ENOMEM or SP_ETOOBIG (b unchanged on error). */
int ctl_url_escape(sp_buf *b, const char *s);

#endif

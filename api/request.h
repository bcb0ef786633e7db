/* request.h - one request as every handler sees it: the context libmicrohttpd keeps
 * for it, and what a handler asks of it (headers, query parameters, this thread's queue
 * handle, the blobs it wrote, suspending a long-poll).
 *
 * A request goes through its route's handler in up to three calls: begin (headers
 * read: guards, validation of the query and headers, set-up for the body), data (each
 * chunk of the body as it arrives), and end (the body is complete, or a suspended
 * long-poll was resumed). Each answers through reply.h. */
#ifndef SPOOL_API_REQUEST_H
#define SPOOL_API_REQUEST_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "conns.h"
#include "hdr.h"
#include "longpoll.h"
#include "route.h"
#include "server.h"
#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/queue.h"
#include "spool/schedule.h"
#include "spool/util.h"

enum api_phase {
    API_PHASE_HEADERS = 0, /* in begin: a reply is queued through libmicrohttpd */
    API_PHASE_BODY,        /* in data: a reply is written out at once (see reply.h) */
    API_PHASE_END          /* in end */
};

#define API_IDEM_KEY_MAX 255

/* A body must keep up SPOOL_MIN_UPLOAD_RATE over windows of this length. */
#define API_RATE_WINDOW_MS 10000

/* One request. Allocated when its headers arrive, freed when libmicrohttpd reports it
 * complete; whatever the outcome, blobs of a job that was not created are removed
 * then. */
typedef struct api_req {
    api_server *srv;
    struct MHD_Connection *conn;
    api_route route;
    unsigned method;       /* API_M_* */
    int phase;
    int64_t start_ns;
    bool started;          /* the headers came and the handler has seen the request */
    bool nul_in_url;       /* the target as sent encodes a NUL byte */
    int status;            /* the status replied; 0 until then */
    bool early;            /* replied mid-body: the rest of the body is discarded */
    uint64_t discarded;
    uint64_t body_bytes;
    api_rate rate;         /* the body's pace (SPOOL_MIN_UPLOAD_RATE) */
    const char *path;      /* the decoded path (owned by libmicrohttpd) */

    /* POST bodies */
    api_media media;
    sp_buf text;            /* a JSON body, or a form field value */
    char id[SP_ID_LEN + 1]; /* the new job's id once its files are being written */
    bool made_blobs;        /* the job's blob directory may exist */
    bool job_created;       /* the job exists: keep its blobs */
    sp_blob_writer *blob;   /* the blob being written */
    bool idem;              /* an Idempotency-Key was given */
    char idem_key[API_IDEM_KEY_MAX + 1];
    sp_sha256 fp;           /* the request's fingerprint, while it streams */
    void *state;            /* the route's own state, freed with state_free */
    void (*state_free)(void *state);

    /* long-poll */
    api_waiter waiter;
    bool suspended;
    int64_t base_version;  /* the version the client has seen */
} api_req;

/* This thread's queue handle (opened on first use; closed when the thread ends).
 * NULL with err set when it cannot be opened. */
sp_queue *api_queue(api_req *r, sp_err *err);

/* This thread's handle on the schedules (opened on first use; closed when the thread
 * ends). NULL with err set when it cannot be opened. */
sp_scheds *api_scheds(api_req *r, sp_err *err);

/* A request header's value, or NULL. */
const char *api_header(api_req *r, const char *name);

/* A query string parameter's value, or NULL. */
const char *api_query(api_req *r, const char *name);

/* Call fn(ud, name, value) for every query string parameter, in order; stops at the
 * first non-zero return and returns it. value is "" for a bare name. */
int api_query_each(api_req *r, int (*fn)(void *ud, const char *name, const char *value),
                   void *ud);

/* Remove whatever the request wrote to the blob store (an open blob and the job's
 * directory) unless its job was created. Idempotent. */
void api_req_drop_blobs(api_req *r);

/* Suspend the request until the long-poll thread wakes it (the end handler runs
 * again then). */
void api_suspend(api_req *r);

#endif

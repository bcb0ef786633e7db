/* server.h - spool-api's HTTP server: its configuration, the libmicrohttpd daemon (an
 * internal thread pool on epoll), request dispatch through a route table, and what
 * every handler shares: the request context and a per-thread queue handle.
 *
 * A request goes through its route's handler in up to three calls: begin (headers
 * read: guards, validation of the query and headers, set-up for the body), data (each
 * chunk of the body as it arrives), and end (the body is complete, or a suspended
 * long-poll was resumed). Each replies through reply.h. */
#ifndef SPOOL_API_SERVER_H
#define SPOOL_API_SERVER_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "gc.h"
#include "hdr.h"
#include "longpoll.h"
#include "route.h"
#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/config.h"
#include "spool/queue.h"
#include "spool/sha256.h"
#include "spool/util.h"

/* Everything spool-api can be told (see main.c for the options and defaults). */
typedef struct api_config {
    sp_common_config common;
    char *listen;            /* host:port */
    char *tokens;            /* comma-separated bearer tokens; empty: no auth */
    char *routes;            /* job type -> queue */
    char *retry;             /* job type -> max_attempts:base:cap */
    int64_t max_upload;      /* bytes of an upload body */
    int64_t max_json;        /* bytes of a JSON body */
    int64_t inline_max;      /* inline export rows up to this many bytes stay in the job */
    int64_t queue_limit;     /* ready jobs per queue before 429; 0: none */
    int64_t max_connections;
    int64_t max_connections_per_ip;
    int64_t conn_timeout_ms; /* idle time before a connection is closed */
    int64_t threads;         /* HTTP threads; 0: four per core */
    int64_t max_wait_ms;     /* longest ?wait= */
    int64_t gc_interval_ms;  /* blob GC period; 0: off */
    int64_t gc_min_age_ms;   /* blob directories younger than this are left alone */
    int64_t gc_staging_age_ms; /* staging files unrefreshed this long are removed */
    int64_t idem_ttl_ms;     /* how long an Idempotency-Key is remembered */
    int64_t grace_ms;        /* shutdown: time for in-flight requests */
} api_config;

#define API_MAX_TOKENS 64

typedef struct api_server {
    const api_config *cfg;
    sp_routes routes;
    char *tokens[API_MAX_TOKENS];
    size_t ntokens;
    sp_blobs *blobs;
    struct MHD_Daemon *daemon;
    api_lp *lp;
    api_gc *gc;
    pthread_key_t qkey; /* this thread's sp_queue */
    atomic_bool stopping;
    int port;
} api_server;

enum api_phase {
    API_PHASE_HEADERS = 0, /* in begin: a reply is queued through libmicrohttpd */
    API_PHASE_BODY,        /* in data: a reply is written out at once (see reply.h) */
    API_PHASE_END          /* in end */
};

#define API_IDEM_KEY_MAX 255

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
    int status;            /* the status replied; 0 until then */
    bool early;            /* replied mid-body: the rest of the body is discarded */
    uint64_t discarded;
    uint64_t body_bytes;
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

/* Start the server: open the blob store, parse routes and tokens, start the HTTP
 * threads, the long-poll thread and the blob GC. cfg must outlive the server. NULL
 * with err set on failure. */
api_server *api_server_start(const api_config *cfg, sp_err *err);

/* The port the server listens on (useful with port 0). */
int api_server_port(const api_server *s);

/* Stop: accept no more connections, answer the waiting long-polls, give in-flight
 * requests up to cfg->grace_ms, then stop every thread and free. Accepts NULL. */
void api_server_stop(api_server *s);

/* This thread's queue handle (opened on first use; closed when the thread ends).
 * NULL with err set when it cannot be opened. */
sp_queue *api_queue(api_req *r, sp_err *err);

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

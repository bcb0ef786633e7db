/* server.h - spool-api's HTTP server: its configuration, the libmicrohttpd daemon (an
 * internal thread pool on epoll) and request dispatch through a route table (server.c).
 * What a handler sees of its request is request.h's; how it answers, reply.h's. */
#ifndef SPOOL_API_SERVER_H
#define SPOOL_API_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "conns.h"
#include "gc.h"
#include "history.h"
#include "schedloop.h"
#include "longpoll.h"
#include "webhook.h"
#include "ssehub.h"
#include "spool/blob.h"
#include "spool/config.h"
#include "spool/queue.h"
#include "spool/sha256.h"

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
    char *trusted_proxies;   /* CIDRs exempt from the per-address limit */
    int64_t conn_timeout_ms; /* idle time before a connection is closed */
    int64_t header_timeout_ms; /* a request's headers must be in within this */
    int64_t min_upload_rate; /* bytes a second a body must keep up over 10 s; 0: any */
    int64_t threads;         /* HTTP threads; 0: four per core */
    int64_t max_wait_ms;     /* longest ?wait= */
    int64_t gc_interval_ms;  /* blob GC period; 0: off */
    int64_t gc_min_age_ms;   /* blob directories younger than this are left alone */
    int64_t gc_staging_age_ms; /* staging files unrefreshed this long are removed */
    int64_t idem_ttl_ms;     /* how long an Idempotency-Key is remembered */
    int64_t wait_replicas;   /* Redis replicas that must have a job before 202; 0: none */
    int64_t wait_timeout_ms; /* how long to wait for them */
    int64_t grace_ms;        /* shutdown: time for in-flight requests */
    char *downloads;         /* "stream" or "redirect" (to a presigned URL) */
    int64_t download_ttl_ms; /* how long a presigned download URL works */
    char *public_endpoint;   /* the object store's address for clients; empty: its own */
    /* webhooks (webhook.h) */
    char *webhook_url;       /* default callback_url of every job; empty: none */
    char *webhook_secret;    /* signs deliveries (Spool-Signature); empty: unsigned */
    int64_t webhook_max_attempts; /* a delivery's attempts */
    int64_t webhook_concurrency;  /* delivery threads; 0: no deliverer in this process */
    int64_t webhook_timeout_ms;   /* one delivery attempt, connect to answer */
    int64_t webhook_retry_base_ms; /* backoff: rand(0, min(cap, base * 2^(attempt-1))) */
    int64_t webhook_retry_cap_ms;
    const struct sp_outbound *outbound; /* SPOOL_OUTBOUND_ALLOW, built by main */
    int64_t sse_max_streams; /* event streams open at once; 0: 3/4 of the connections */
    int64_t sse_heartbeat_ms; /* a comment on every idle event stream this often */
    int64_t history_interval_ms; /* how often queue counters are sampled for the charts */
    /* schedules (sched.h) */
    char *scheduler;         /* "on": this process fires due schedules; "off": it does not */
    int64_t sched_grace_ms;  /* a tick this late still fires; older ones were missed */
    int64_t max_schedules;   /* schedules that may exist (POST answers 409 past it) */
} api_config;

#define API_MAX_TOKENS 64

typedef struct api_server {
    const api_config *cfg;
    sp_routes routes;
    char *tokens[API_MAX_TOKENS];
    size_t ntokens;
    sp_blobs *blobs;
    bool redirect_downloads; /* SPOOL_DOWNLOADS=redirect */
    struct MHD_Daemon *daemon;
    api_lp *lp;
    api_sse *sse;       /* live event streams */
    api_gc *gc;
    api_webhooks *webhooks; /* the deliverer; NULL when off */
    api_history *history; /* queue counters sampled for /v1/queues/{name}/history */
    sp_cidrs *trusted;  /* SPOOL_TRUSTED_PROXIES */
    api_conns *conns;   /* per-address limit, header deadlines */
    pthread_key_t qkey; /* this thread's sp_queue */
    pthread_key_t skey; /* this thread's sp_scheds */
    api_sched_loop *sched; /* the schedules' firing loop; NULL when SPOOL_SCHEDULER=off */
    atomic_bool stopping;
    int port;
} api_server;

/* Start the server: open the blob store, parse routes and tokens, start the HTTP
 * threads, the long-poll thread, the blob GC and the webhook deliverer. cfg must outlive the server. NULL
 * with err set on failure. */
api_server *api_server_start(const api_config *cfg, sp_err *err);

/* The port the server listens on (useful with port 0). */
int api_server_port(const api_server *s);

/* Stop: accept no more connections, answer the waiting long-polls, give in-flight
 * requests up to cfg->grace_ms, then stop every thread and free. Accepts NULL. */
void api_server_stop(api_server *s);

#endif

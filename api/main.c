/* main.c - spool-api: parse the options, start the server, wait for SIGTERM or SIGINT,
 * stop gracefully. The work is in server.c and the route handlers. */
#include <jansson.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "server.h"
#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/outbound.h"
#include "validate.h"
#include "spool/queue.h"

#define API_OPTION_COUNT 39

int main(int argc, char **argv)
{
    api_config cfg;
    memset(&cfg, 0, sizeof cfg);
    sp_option opts[SP_COMMON_OPTION_COUNT + API_OPTION_COUNT];
    sp_common_options(&cfg.common, opts);
    const int64_t day = INT64_C(86400000);
    sp_option extra[API_OPTION_COUNT] = {
        {"listen", "SPOOL_LISTEN", SP_OPT_STR, &cfg.listen, "127.0.0.1:8080",
         "address to listen on, host:port (port 0 picks a free one)", 0, 0},
        {"api-tokens", "SPOOL_API_TOKENS", SP_OPT_STR, &cfg.tokens, "",
         "comma-separated bearer tokens; when set, every /v1 route needs one", 0, 0},
        {"max-upload-bytes", "SPOOL_MAX_UPLOAD_BYTES", SP_OPT_SIZE, &cfg.max_upload, "4G",
         "largest upload body (413 past it)", 1, INT64_C(1) << 50},
        {"max-json-bytes", "SPOOL_MAX_JSON_BYTES", SP_OPT_SIZE, &cfg.max_json, "16M",
         "largest JSON body (413 past it)", 64, INT64_C(1) << 30},
        {"inline-dataset-max", "SPOOL_INLINE_DATASET_MAX", SP_OPT_SIZE, &cfg.inline_max, "16K",
         "inline export rows up to this size are kept in the job record instead of a file "
         "(0: always a file)", 0, 1 << 20},
        {"queue-limit", "SPOOL_QUEUE_LIMIT", SP_OPT_INT, &cfg.queue_limit, "100000",
         "jobs waiting in a queue past which new jobs get 429 (0: no limit)", 0, INT64_MAX},
        {"routes", "SPOOL_ROUTES", SP_OPT_STR, &cfg.routes, "video.*=video,pdf.*=pdf",
         "job type pattern = queue, comma-separated", 0, 0},
        {"retry", "SPOOL_RETRY", SP_OPT_STR, &cfg.retry, "",
         "job type pattern = max_attempts:base:cap, comma-separated (default 3:1s:5m)", 0, 0},
        {"max-connections", "SPOOL_MAX_CONNECTIONS", SP_OPT_INT, &cfg.max_connections, "4096",
         "most connections open at once (lowered to what the open-file limit allows)", 1,
         1000000},
        {"max-connections-per-ip", "SPOOL_MAX_CONNECTIONS_PER_IP", SP_OPT_INT,
         &cfg.max_connections_per_ip, "128",
         "most connections open at once from one client address, an IPv6 client counting by "
         "its /64 (0: no limit); a reverse proxy's connections carry many clients: list it in "
         "SPOOL_TRUSTED_PROXIES", 0, 1000000},
        {"trusted-proxies", "SPOOL_TRUSTED_PROXIES", SP_OPT_STR, &cfg.trusted_proxies, "",
         "comma-separated addresses or CIDRs of reverse proxies (or other trusted peers) whose "
         "connections the per-address limit does not count; the proxy should limit its own "
         "clients", 0, 0},
        {"conn-timeout", "SPOOL_CONN_TIMEOUT", SP_OPT_DURATION, &cfg.conn_timeout_ms, "30s",
         "close a connection that sends nothing for this long", 1000, day},
        {"header-timeout", "SPOOL_HEADER_TIMEOUT", SP_OPT_DURATION, &cfg.header_timeout_ms, "10s",
         "close a connection whose request headers are not all in this long after it opened "
         "(or after a later request's first line), however slowly they trickle (0: no limit)",
         0, day},
        {"min-upload-rate", "SPOOL_MIN_UPLOAD_RATE", SP_OPT_SIZE, &cfg.min_upload_rate, "1K",
         "bytes a second a request body must keep up, judged over 10-second windows; a slower "
         "body is cut off with 408 (0: any pace)", 0, INT64_C(1) << 30},
        {"threads", "SPOOL_API_THREADS", SP_OPT_INT, &cfg.threads, "0",
         "HTTP threads (0: four per core; they wait on Redis and the disk)", 0, 1024},
        {"max-wait", "SPOOL_MAX_WAIT", SP_OPT_DURATION, &cfg.max_wait_ms, "60s",
         "longest long-poll a client may ask for with ?wait=", 0, day},
        {"gc-interval", "SPOOL_GC_INTERVAL", SP_OPT_DURATION, &cfg.gc_interval_ms, "10m",
         "how often files of expired jobs are removed (0: never)", 0, 30 * day},
        {"gc-min-age", "SPOOL_GC_MIN_AGE", SP_OPT_DURATION, &cfg.gc_min_age_ms, "1h",
         "job directories younger than this are never removed", 60000, 365 * day},
        {"gc-staging-age", "SPOOL_GC_STAGING_AGE", SP_OPT_DURATION, &cfg.gc_staging_age_ms, "2m",
         "a staging file its writer has not refreshed for this long is a dead writer's (a "
         "process killed mid-upload) and is removed; live writers refresh theirs every 2s",
         SP_BLOB_STALE_MIN_MS, day},
        {"idempotency-ttl", "SPOOL_IDEMPOTENCY_TTL", SP_OPT_DURATION, &cfg.idem_ttl_ms, "24h",
         "how long an Idempotency-Key is remembered", 1000, 365 * day},
        {"redis-wait-replicas", "SPOOL_REDIS_WAIT_REPLICAS", SP_OPT_INT, &cfg.wait_replicas,
         "0",
         "answer 202 only once this many Redis replicas have the job (Redis WAIT): a failover "
         "then loses no accepted job; else 503 not_replicated (0: answer when the master has "
         "it)", 0, 64},
        {"redis-wait-timeout", "SPOOL_REDIS_WAIT_TIMEOUT", SP_OPT_DURATION, &cfg.wait_timeout_ms,
         "2s", "how long a submit waits for SPOOL_REDIS_WAIT_REPLICAS replicas", 10, 60000},
        {"shutdown-grace", "SPOOL_SHUTDOWN_GRACE", SP_OPT_DURATION, &cfg.grace_ms, "30s",
         "on SIGTERM, how long in-flight requests may take", 0, day},
        {"downloads", "SPOOL_DOWNLOADS", SP_OPT_STR, &cfg.downloads, "stream",
         "how outputs are served: stream (through the API, from any store) or redirect (307 "
         "to a short-lived presigned URL of the object store, which clients must reach)",
         0, 0},
        {"download-url-ttl", "SPOOL_DOWNLOAD_URL_TTL", SP_OPT_DURATION, &cfg.download_ttl_ms,
         "5m", "how long a presigned download URL works (SPOOL_DOWNLOADS=redirect)", 1000,
         7 * day},
        {"s3-public-endpoint", "SPOOL_S3_PUBLIC_ENDPOINT", SP_OPT_STR, &cfg.public_endpoint, "",
         "the object store's address as clients reach it, for presigned download URLs "
         "(empty: SPOOL_S3_ENDPOINT)", 0, 0},
        {"webhook-url", "SPOOL_WEBHOOK_URL", SP_OPT_STR, &cfg.webhook_url, "",
         "callback_url of every job submitted without one: spool POSTs the job there when it "
         "ends (empty: none)", 0, 0},
        {"webhook-secret", "SPOOL_WEBHOOK_SECRET", SP_OPT_STR, &cfg.webhook_secret, "",
         "signs every delivery (Spool-Signature: t=..,v1=HMAC-SHA256); empty: unsigned", 0, 0},
        {"webhook-max-attempts", "SPOOL_WEBHOOK_MAX_ATTEMPTS", SP_OPT_INT,
         &cfg.webhook_max_attempts, "12", "attempts of one delivery before it is dead-lettered",
         1, 100},
        {"webhook-concurrency", "SPOOL_WEBHOOK_CONCURRENCY", SP_OPT_INT, &cfg.webhook_concurrency,
         "2", "threads of this process that deliver webhooks (0: none here)", 0, 64},
        {"webhook-timeout", "SPOOL_WEBHOOK_TIMEOUT", SP_OPT_DURATION, &cfg.webhook_timeout_ms,
         "10s", "one delivery attempt, from connecting to the receiver's answer", 100, 300000},
        {"webhook-retry-base", "SPOOL_WEBHOOK_RETRY_BASE", SP_OPT_DURATION,
         &cfg.webhook_retry_base_ms, "1m",
         "backoff after a failed delivery: a random wait up to base * 2^(attempt-1), at most "
         "the cap", 1, day},
        {"webhook-retry-cap", "SPOOL_WEBHOOK_RETRY_CAP", SP_OPT_DURATION,
         &cfg.webhook_retry_cap_ms, "1h", "the longest wait between two delivery attempts", 1,
         7 * day},
        {"sse-max-streams", "SPOOL_SSE_MAX_STREAMS", SP_OPT_INT, &cfg.sse_max_streams, "0",
         "live event streams (GET /v1/events...) open at once, past which 503 (0: three "
         "quarters of SPOOL_MAX_CONNECTIONS)", 0, 1000000},
        {"sse-heartbeat", "SPOOL_SSE_HEARTBEAT", SP_OPT_DURATION, &cfg.sse_heartbeat_ms, "15s",
         "how often an idle live event stream gets a comment line (keeps proxies from closing "
         "it and notices clients that went away)", 100, 3600000},
        {"history-interval", "SPOOL_HISTORY_INTERVAL", SP_OPT_DURATION, &cfg.history_interval_ms,
         "5s", "how often each queue's counters are sampled (one read of Redis) for the "
         "dashboard's throughput chart; the last 30 minutes are kept in memory", 1000, 60000},
        {"scheduler", "SPOOL_SCHEDULER", SP_OPT_STR, &cfg.scheduler, "on",
         "on: this process fires due schedules (every API process may: each tick makes one "
         "job however many fire it); off: it does not", 0, 0},
        {"schedule-grace", "SPOOL_SCHEDULE_GRACE", SP_OPT_DURATION, &cfg.sched_grace_ms, "1m",
         "a schedule's tick this late still fires; older ticks were missed (no process could "
         "fire them) and follow the schedule's missed policy (skip, run_once)", 1000, day},
        {"max-schedules", "SPOOL_MAX_SCHEDULES", SP_OPT_INT, &cfg.max_schedules, "1000",
         "schedules that may exist; POST /v1/schedules past it answers 409", 1, 1000000},
    };
    memcpy(opts + SP_COMMON_OPTION_COUNT, extra, sizeof extra);
    size_t nopts = sizeof opts / sizeof *opts;
    json_set_alloc_funcs(sp_malloc, sp_free);

    sp_err err;
    int rc = sp_options_parse("spool-api", "spool's HTTP API: accepts video and PDF export "
                                           "jobs, reports their state, serves their outputs.",
                              opts, nopts, argc, argv, &err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "spool-api: %s\n", err.msg);
        sp_options_free(opts, nopts);
        return rc < 0 ? 2 : 0;
    }
    sp_log_init("spool-api", cfg.common.log_level, cfg.common.log_format);
    /* Memory a large request took goes back to the system when it ends: blocks of
     * 128 KiB and more are mapped on their own (glibc would otherwise raise this
     * threshold after the first large free and keep such blocks in its heap), and free
     * heap past 1 MiB at its top is returned. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    sp_outbound *outbound = sp_outbound_new(cfg.common.outbound_allow, &err);
    if (outbound == NULL) {
        sp_error(NULL, "cannot start: %s", err.msg);
        sp_options_free(opts, nopts);
        return 2;
    }
    api_validate_set_outbound(outbound);
    cfg.outbound = outbound;

    /* Signals are taken by sigwait below; every thread started from here blocks them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    api_server *s = api_server_start(&cfg, &err);
    if (s == NULL) {
        sp_error(NULL, "cannot start: %s", err.msg);
        sp_outbound_free(outbound);
        sp_options_free(opts, nopts);
        return err.code == SP_EINVAL ? 2 : 1;
    }
    /* Say at once when Redis cannot be used (down, loading, a wrong password): the API
     * runs anyway and answers 503 until it can. */
    sp_queue *q = sp_queue_open(cfg.common.redis_url, cfg.common.prefix, &err);
    if (q == NULL || sp_queue_ping(q, &err) < 0)
        sp_error(NULL, "cannot use Redis: %s; requests that need it answer 503 and /readyz "
                       "is not ready until it works",
                 err.msg);
    sp_queue_close(q);
    int sig = 0;
    sigwait(&set, &sig);
    sp_info(NULL, "%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    api_server_stop(s);
    sp_info(NULL, "stopped");
    sp_outbound_free(outbound);
    sp_options_free(opts, nopts);
    return 0;
}

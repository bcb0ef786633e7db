/* server.c - the libmicrohttpd daemon and request dispatch (see server.h). */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "handlers.h"
#include "metrics.h"
#include "reply.h"
#include "request.h"
#include "spool/alloc.h"
#include "spool/log.h"

/* The most body bytes a route that reads no body ignores before it answers 413. */
#define API_IGNORED_BODY_MAX (64 * 1024)

typedef struct api_handler {
    api_route_id route;
    unsigned methods;
    enum MHD_Result (*begin)(api_req *r);                           /* headers read */
    enum MHD_Result (*data)(api_req *r, const char *p, size_t n);   /* a body chunk */
    enum MHD_Result (*end)(api_req *r);                             /* body done / resumed */
} api_handler;

/* Every route answers after the body (libmicrohttpd closes the connection after an
 * answer queued before it, so answering GETs early would cost keep-alive); begin only
 * sets up the routes that read a body. */
static const api_handler api__table[] = {
    {API_R_HEALTHZ, API_M_GET | API_M_HEAD, NULL, NULL, api_sys_healthz},
    {API_R_READYZ, API_M_GET | API_M_HEAD, NULL, NULL, api_sys_readyz},
    {API_R_METRICS, API_M_GET | API_M_HEAD, NULL, NULL, api_sys_metrics},
    {API_R_OPENAPI, API_M_GET | API_M_HEAD, NULL, NULL, api_doc_openapi},
    {API_R_DOCS_API, API_M_GET | API_M_HEAD, NULL, NULL, api_doc_page},
    {API_R_QUEUES, API_M_GET | API_M_HEAD, NULL, NULL, api_sys_queues},
    {API_R_QUEUE_PAUSE, API_M_POST, NULL, NULL, api_sys_queue_pause},
    {API_R_QUEUE_RESUME, API_M_POST, NULL, NULL, api_sys_queue_pause},
    {API_R_VIDEOS, API_M_POST, api_videos_begin, api_videos_data, api_videos_end},
    {API_R_EXPORTS, API_M_POST, api_exports_begin, api_exports_data, api_exports_end},
    {API_R_JOBS, API_M_GET | API_M_HEAD, NULL, NULL, api_jobs_list},
    {API_R_JOB, API_M_GET | API_M_HEAD, NULL, NULL, api_jobs_get},
    {API_R_JOB, API_M_DELETE, NULL, NULL, api_jobs_cancel},
    {API_R_JOB_RETRY, API_M_POST, NULL, NULL, api_jobs_retry},
    {API_R_JOB_OUTPUT, API_M_GET | API_M_HEAD, NULL, NULL, api_jobs_output},
    {API_R_EVENTS, API_M_GET, NULL, NULL, api_events_all},
    {API_R_JOB_EVENTS, API_M_GET, NULL, NULL, api_events_job},
    {API_R_WORKERS, API_M_GET | API_M_HEAD, NULL, NULL, api_workers_list},
    {API_R_QUEUE_DEAD, API_M_GET | API_M_HEAD, NULL, NULL, api_dead_list},
    {API_R_QUEUE_DEAD_RETRY, API_M_POST, api_dead_begin, api_json_body_data, api_dead_end},
    {API_R_QUEUE_DEAD_PURGE, API_M_POST, api_dead_begin, api_json_body_data, api_dead_end},
    {API_R_QUEUE_HISTORY, API_M_GET | API_M_HEAD, NULL, NULL, api_queue_history},
    {API_R_UI, API_M_GET | API_M_HEAD, NULL, NULL, api_ui_page},
    {API_R_UI_ASSET, API_M_GET | API_M_HEAD, NULL, NULL, api_ui_asset},
    {API_R_SCHEDULES, API_M_GET | API_M_HEAD, NULL, NULL, api_schedules_list},
    {API_R_SCHEDULES, API_M_POST, api_schedules_begin, api_json_body_data, api_schedules_create},
    {API_R_SCHEDULE, API_M_GET | API_M_HEAD, NULL, NULL, api_schedules_get},
    {API_R_SCHEDULE, API_M_PATCH, api_schedules_begin, api_json_body_data, api_schedules_patch},
    {API_R_SCHEDULE, API_M_DELETE, NULL, NULL, api_schedules_delete},
    {API_R_SCHEDULE_RUNS, API_M_GET | API_M_HEAD, NULL, NULL, api_schedules_runs},
};

static const api_handler *api__handler(const api_req *r)
{
    for (size_t i = 0; i < sizeof api__table / sizeof *api__table; i++) {
        if (api__table[i].route == r->route.id && (api__table[i].methods & r->method))
            return &api__table[i];
    }
    return NULL;
}

static int64_t api__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Close a thread's queue handle (api_queue) when the thread ends. */
static void api__queue_dtor(void *q)
{
    sp_queue_close(q);
}

/* Close a thread's schedules handle (api_scheds) when the thread ends. */
static void api__scheds_dtor(void *h)
{
    sp_scheds_close(h);
}

/* Resume a long-poll the long-poll thread woke. */
static void api__wake(api_waiter *w)
{
    MHD_resume_connection(w->ud);
}

/* ---- dispatch ------------------------------------------------------------------------ */

static bool api__authorized(api_req *r)
{
    api_server *s = r->srv;
    if (s->ntokens == 0 || !api_route_needs_auth(r->route.id))
        return true;
    const char *tok;
    size_t len;
    if (!api_hdr_bearer(api_header(r, MHD_HTTP_HEADER_AUTHORIZATION), &tok, &len))
        return false;
    bool ok = false;
    for (size_t i = 0; i < s->ntokens; i++)
        ok |= api_hdr_secure_eq(tok, len, s->tokens[i], strlen(s->tokens[i]));
    return ok;
}

static void api__allow(unsigned methods, char *out, size_t n)
{
    static const struct {
        unsigned bit;
        const char *name;
    } m[] = {{API_M_GET, "GET"}, {API_M_HEAD, "HEAD"}, {API_M_POST, "POST"},
             {API_M_PATCH, "PATCH"}, {API_M_DELETE, "DELETE"}};
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        if (!(methods & m[i].bit))
            continue;
        int k = snprintf(out + used, n - used, "%s%s", used ? ", " : "", m[i].name);
        if (k < 0 || (size_t)k >= n - used)
            break;
        used += (size_t)k;
    }
}

/* The guards every request passes before its handler, then the handler's begin. */
static enum MHD_Result api__begin(api_req *r, const api_handler *h)
{
    if (atomic_load(&r->srv->stopping))
        return api_reply_error(r, API_E_SHUTTING_DOWN, "the server is shutting down");
    if (r->nul_in_url)
        return api_reply_error(r, API_E_BAD_REQUEST, "the URL encodes a NUL byte (%%00)");
    if (r->route.id == API_R_NONE)
        return api_reply_error(r, API_E_NO_ROUTE, "no such route: %s", r->path);
    if (h == NULL) {
        char allow[64];
        api__allow(api_route_methods(r->route.id), allow, sizeof allow);
        api_hdr_kv hdr[] = {{"Allow", allow}};
        return api_reply_errorh(r, API_E_METHOD, hdr, 1, "%s is not allowed here (allowed: %s)",
                                r->method == API_M_OTHER ? "this method" : "the method", allow);
    }
    if (!api__authorized(r))
        return api_reply_error(r, API_E_UNAUTHORIZED,
                               "this route needs an Authorization: Bearer token");
    if (r->route.bad_param)
        return api_reply_error(r, API_E_NOT_FOUND, "%s",
                               strncmp(r->path, "/v1/queues/", 11) == 0
                                   ? "no such queue (a name is 1-64 of A-Z a-z 0-9 _ . -)"
                               : strncmp(r->path, "/v1/schedules/", 14) == 0
                                   ? "no such schedule (a name is 1-64 of A-Z a-z 0-9 _ . -, "
                                     "not starting with . or -)"
                                   : "no such job");
    return h->begin ? h->begin(r) : MHD_YES;
}

/* The request line has arrived: the request's context starts here, while the target
 * is still as sent (libmicrohttpd decodes it next, and a decoded %00 would cut it). */
static void *api__request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
    api_req *r = sp_calloc(1, sizeof *r);
    if (r == NULL)
        return NULL; /* the access handler refuses the request */
    r->srv = cls;
    r->conn = c;
    r->nul_in_url = api_uri_has_nul(uri);
    api_conns_request_line(c);
    return r;
}

static enum MHD_Result api__access(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)cls;
    (void)c;
    api_req *r = *con_cls;
    if (r == NULL)
        return MHD_NO; /* out of memory when the request line came */
    if (!r->started) {
        r->started = true;
        api_conns_headers_done(c);
        r->rate.start_ms = sp_mono_ms();
        r->path = url;
        r->method = api_method_bit(method);
        r->start_ns = api__now_ns();
        sp_buf_init(&r->text, 1);
        api_route_parse(url, &r->route);
        *con_cls = r;
        api_metrics_in_flight(1);
        r->phase = API_PHASE_HEADERS;
        return api__begin(r, api__handler(r));
    }
    const api_handler *h = api__handler(r);
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (r->early) {
            /* The answer went out mid-body: read a little more so the client sees it,
             * then close. */
            r->discarded += n;
            return r->discarded > API_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        r->body_bytes += n;
        r->phase = API_PHASE_BODY;
        if (r->status != 0)
            return MHD_YES;
        const api_config *cfg = r->srv->cfg;
        if (api_rate_slow(&r->rate, n, sp_mono_ms(), cfg->min_upload_rate, API_RATE_WINDOW_MS))
            return api_reply_error(r, API_E_TOO_SLOW,
                                   "the body arrives too slowly (under %lld bytes a second over "
                                   "%d seconds)",
                                   (long long)cfg->min_upload_rate, API_RATE_WINDOW_MS / 1000);
        if (h == NULL || h->data == NULL) {
            /* A route that reads no body ignores a small one and refuses a large one. */
            if (r->body_bytes <= API_IGNORED_BODY_MAX)
                return MHD_YES;
            return api_reply_error(r, API_E_TOO_LARGE, "this route takes no request body");
        }
        return h->data(r, upload, n);
    }
    if (r->early)
        return MHD_NO; /* the answer is out; close the connection */
    r->phase = API_PHASE_END;
    if (r->status != 0 || h == NULL || h->end == NULL)
        return r->status != 0 ? MHD_YES : MHD_NO;
    return h->end(r);
}

static void api__completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    api_req *r = *con_cls;
    if (r == NULL)
        return;
    *con_cls = NULL;
    api_conns_request_done(c);
    if (!r->started) { /* the headers never came */
        sp_free(r);
        return;
    }
    int status = r->status;
    if (status == 0 || (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !r->early && status < 300 &&
                        !r->job_created))
        status = 499; /* the client went away (or the server gave up) before an answer */
    int64_t ns = api__now_ns() - r->start_ns;
    api_metrics_observe(r->route.id, status, ns);
    api_metrics_in_flight(-1);
    sp_logctx lc = {r->id[0] ? r->id : NULL, NULL, NULL};
    if (sp_log_enabled(SP_LOG_DEBUG))
        sp_debug(&lc, "%s %s -> %d (%.3f ms)%s",
                 r->method == API_M_GET      ? "GET"
                 : r->method == API_M_POST   ? "POST"
                 : r->method == API_M_DELETE ? "DELETE"
                 : r->method == API_M_PATCH  ? "PATCH"
                 : r->method == API_M_HEAD   ? "HEAD"
                                             : "?",
                 r->path, status, (double)ns / 1e6,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection ended early)");
    /* An upload that did not become a job leaves nothing behind. */
    api_req_drop_blobs(r);
    if (r->state_free)
        r->state_free(r->state);
    sp_buf_free(&r->text);
    sp_sha256_free(&r->fp);
    sp_free(r);
}

/* ---- start and stop ------------------------------------------------------------------ */

static void api__mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void api__mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap); /* truncated if long: a log line */
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    sp_debug(NULL, "libmicrohttpd: %s", msg);
}

/* Split "host:port" or "[v6]:port" and resolve it. */
static int api__listen_addr(const char *listen, struct sockaddr_storage *out, socklen_t *len,
                            sp_err *err)
{
    char host[256];
    const char *port;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (rb == NULL || rb[1] != ':' || (size_t)(rb - listen - 1) >= sizeof host)
            return sp_err_set(err, SP_EINVAL, "bad listen address '%s' (host:port)", listen);
        memcpy(host, listen + 1, (size_t)(rb - listen - 1));
        host[rb - listen - 1] = '\0';
        port = rb + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL || (size_t)(colon - listen) >= sizeof host)
            return sp_err_set(err, SP_EINVAL, "bad listen address '%s' (host:port)", listen);
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        port = colon + 1;
    }
    int64_t p;
    if (sp_parse_i64(port, 0, 65535, &p) < 0)
        return sp_err_set(err, SP_EINVAL, "bad port in listen address '%s'", listen);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int g = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (g != 0 || res == NULL)
        return sp_err_set(err, SP_EINVAL, "cannot resolve listen address '%s': %s", listen,
                          gai_strerror(g));
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* How many connections the open-file limit allows: the soft limit is raised to the hard
 * one, and `want` lowered (with a warning) so that every connection, the files it
 * streams and the Redis connections fit. */
static int64_t api__connection_budget(int64_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return want;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    /* a connection may hold a socket and a file; 256 for Redis, the GC, logs... */
    int64_t fit = rl.rlim_cur == RLIM_INFINITY ? want : ((int64_t)rl.rlim_cur - 256) / 2;
    if (fit < 16)
        fit = 16;
    if (want > fit) {
        sp_warn(NULL, "the open-file limit (%llu) allows %lld connections, not %lld: raise it "
                "(LimitNOFILE= under systemd, ulimit -n) or lower SPOOL_MAX_CONNECTIONS",
                (unsigned long long)rl.rlim_cur, (long long)fit, (long long)want);
        return fit;
    }
    return want;
}

static void api__free(api_server *s)
{
    api_lp_stop(s->lp);
    api_sse_stop(s->sse);
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    api_lp_free(s->lp);
    api_sse_free(s->sse);
    api_conns_stop(s->conns);
    sp_cidrs_free(s->trusted);
    api_gc_stop(s->gc);
    api_webhooks_stop(s->webhooks, 0);
    api_history_stop(s->history);
    api_sched_stop(s->sched);
    sp_blobs_close(s->blobs);
    for (size_t i = 0; i < s->ntokens; i++)
        sp_free(s->tokens[i]);
    pthread_key_delete(s->qkey);
    pthread_key_delete(s->skey);
    sp_free(s);
}

static int api__tokens(api_server *s, const char *spec, sp_err *err)
{
    const char *p = spec ? spec : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m > 0) {
            if (s->ntokens == API_MAX_TOKENS)
                return sp_err_set(err, SP_EINVAL, "more than %d API tokens", API_MAX_TOKENS);
            if ((s->tokens[s->ntokens] = sp_strndup(p, m)) == NULL)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            s->ntokens++;
        }
        p += n + (comma ? 1 : 0);
        if (comma && *p == '\0')
            break;
    }
    return 0;
}

api_server *api_server_start(const api_config *cfg, sp_err *err)
{
    api_server *s = sp_calloc(1, sizeof *s);
    if (s == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = cfg;
    if (pthread_key_create(&s->qkey, api__queue_dtor) != 0) {
        sp_free(s);
        sp_err_set(err, SP_ENOMEM, "cannot create a thread key");
        return NULL;
    }
    if (pthread_key_create(&s->skey, api__scheds_dtor) != 0) {
        pthread_key_delete(s->qkey);
        sp_free(s);
        sp_err_set(err, SP_ENOMEM, "cannot create a thread key");
        return NULL;
    }
    struct sockaddr_storage addr;
    socklen_t alen = 0;
    static const char *const types[] = {"video.transcode", "pdf.export"};
    if (sp_routes_parse(&s->routes, cfg->routes, cfg->retry, err) < 0 ||
        api__tokens(s, cfg->tokens, err) < 0 || api_webhooks_check(cfg, err) < 0 ||
        api__listen_addr(cfg->listen, &addr, &alen, err) < 0)
        goto fail;
    for (size_t i = 0; i < 2; i++) {
        if (sp_routes_queue(&s->routes, types[i]) == NULL) {
            sp_err_set(err, SP_EINVAL, "SPOOL_ROUTES sends %s to no queue", types[i]);
            goto fail;
        }
    }
    if ((s->trusted = sp_cidrs_parse(cfg->trusted_proxies, "SPOOL_TRUSTED_PROXIES", err)) == NULL)
        goto fail;
    api_conns_opts co = {.per_ip = cfg->max_connections_per_ip,
                         .header_ms = cfg->header_timeout_ms,
                         .idle_ms = cfg->conn_timeout_ms,
                         .exempt = s->trusted};
    if ((s->conns = api_conns_start(&co, err)) == NULL)
        goto fail;
    sp_blob_config bc;
    sp_blob_config_from(&cfg->common, &bc);
    if ((s->blobs = sp_blobs_open(&bc, err)) == NULL)
        goto fail;
    sp_info(NULL, "blob store: %s", sp_blobs_describe(s->blobs));
    s->redirect_downloads = strcmp(cfg->downloads, "redirect") == 0;
    if (!s->redirect_downloads && strcmp(cfg->downloads, "stream") != 0) {
        sp_err_set(err, SP_EINVAL, "SPOOL_DOWNLOADS must be stream or redirect, not '%s'",
                   cfg->downloads);
        goto fail;
    }
    if (s->redirect_downloads && strcmp(sp_blobs_kind(s->blobs), "s3") != 0) {
        sp_err_set(err, SP_EINVAL, "SPOOL_DOWNLOADS=redirect needs an object store "
                                   "(SPOOL_BLOB_URL=s3://...): a directory has no URLs to give");
        goto fail;
    }
    if ((s->lp = api_lp_start(cfg->common.redis_url, cfg->common.prefix, api__wake, err)) == NULL)
        goto fail;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers wait on Redis and the disk; with a few threads per core those waits
     * overlap (measured: 4 per core serves 1.5-2x the requests of 1 per core). */
    unsigned threads = (unsigned)(cfg->threads > 0 ? cfg->threads : 4 * (cores > 0 ? cores : 1));
    unsigned timeout_s = (unsigned)((cfg->conn_timeout_ms + 999) / 1000);
    int64_t budget = api__connection_budget(cfg->max_connections);
    /* Streams stay open: leave a quarter of the connections to other requests. */
    int64_t max_streams = cfg->sse_max_streams > 0 ? cfg->sse_max_streams : budget * 3 / 4;
    if (max_streams > budget)
        max_streams = budget;
    if ((s->sse = api_sse_start(cfg->common.redis_url, cfg->common.prefix, (size_t)max_streams,
                                cfg->sse_heartbeat_ms, err)) == NULL)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)budget, NULL},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)api_conns_notify, s->conns},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)api__completed, s},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)api__request_line, s},
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)api__mhd_log, s},
        {threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, (intptr_t)threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, api__access, s, MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_END);
    if (s->daemon == NULL) {
        sp_err_set(err, SP_EIO, "cannot listen on %s (address in use or not allowed?)",
                   cfg->listen);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : 0;
    if (cfg->gc_interval_ms > 0 &&
        (s->gc = api_gc_start(cfg->common.redis_url, cfg->common.prefix, s->blobs,
                              cfg->gc_interval_ms, cfg->gc_min_age_ms,
                              cfg->gc_staging_age_ms, err)) == NULL)
        goto fail;
    if (cfg->webhook_concurrency > 0 && (s->webhooks = api_webhooks_start(cfg, err)) == NULL)
        goto fail;
    if ((s->history = api_history_start(cfg->common.redis_url, cfg->common.prefix,
                                        cfg->history_interval_ms, err)) == NULL)
        goto fail;
    bool sched_on = strcmp(cfg->scheduler, "on") == 0;
    if (!sched_on && strcmp(cfg->scheduler, "off") != 0) {
        sp_err_set(err, SP_EINVAL, "SPOOL_SCHEDULER must be on or off, not '%s'", cfg->scheduler);
        goto fail;
    }
    /* A tick is fired again while within the grace (a process that died after making its
     * job and before moving the schedule on): its idempotency key must outlive that. */
    if (sched_on && cfg->idem_ttl_ms < cfg->sched_grace_ms) {
        sp_err_set(err, SP_EINVAL, "SPOOL_IDEMPOTENCY_TTL (%lld ms) must be at least "
                   "SPOOL_SCHEDULE_GRACE (%lld ms) when SPOOL_SCHEDULER=on",
                   (long long)cfg->idem_ttl_ms, (long long)cfg->sched_grace_ms);
        goto fail;
    }
    if (sched_on && (s->sched = api_sched_start(cfg, &s->routes, err)) == NULL)
        goto fail;
    sp_info(NULL, "listening on %s (port %d, %u threads)", cfg->listen, s->port, threads);
    return s;
fail:
    api__free(s);
    return NULL;
}

int api_server_port(const api_server *s)
{
    return s->port;
}

void api_server_stop(api_server *s)
{
    if (s == NULL)
        return;
    atomic_store(&s->stopping, true);
    /* No tick fires once the stop began (the drain below may take the whole grace). */
    api_sched_halt(s->sched);
    if (s->daemon) {
        MHD_socket fd = MHD_quiesce_daemon(s->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    /* Waiting long-polls answer now with what they have; event streams end; the
     * deliverer takes no more. */
    api_lp_stop(s->lp);
    api_sse_stop(s->sse);
    api_webhooks_drain(s->webhooks);
    int64_t end = sp_mono_ms() + s->cfg->grace_ms;
    while (api_metrics_in_flight_now() > 0 && sp_mono_ms() < end)
        sp_sleep_ms(10, NULL);
    if (api_metrics_in_flight_now() > 0)
        sp_warn(NULL, "stopping with %lld requests still in flight",
                (long long)api_metrics_in_flight_now());
    /* Deliveries under way finish within what is left of the grace period. */
    api_webhooks_stop(s->webhooks, end - sp_mono_ms());
    s->webhooks = NULL;
    api__free(s);
}

/* metrics.c - request metrics in Prometheus text format (see metrics.h). */
#include "metrics.h"

#include <stdatomic.h>
#include <string.h>

static const int api__statuses[] = {200, 201, 202, 206, 304, 400, 401, 404, 405, 409,
                                    413, 415, 416, 422, 429, 499, 500, 503};
#define API_NSTATUS (sizeof api__statuses / sizeof *api__statuses + 1) /* + "other" */

/* Upper bounds of the latency buckets, in microseconds. */
static const int64_t api__bounds_us[] = {100,    250,    500,     1000,    2500,    5000,
                                         10000,  25000,  50000,   100000,  250000,  500000,
                                         1000000, 2500000, 5000000, 10000000, 30000000,
                                         60000000};
#define API_NBUCKETS (sizeof api__bounds_us / sizeof *api__bounds_us)

static struct {
    _Atomic uint64_t requests[API_R_COUNT][API_NSTATUS];
    _Atomic uint64_t buckets[API_R_COUNT][API_NBUCKETS];
    _Atomic uint64_t count[API_R_COUNT];
    _Atomic uint64_t sum_ns[API_R_COUNT];
    _Atomic int64_t in_flight;
    _Atomic uint64_t upload_bytes;
} api__m;

static size_t api__status_index(int status)
{
    for (size_t i = 0; i < API_NSTATUS - 1; i++) {
        if (api__statuses[i] == status)
            return i;
    }
    return API_NSTATUS - 1;
}

void api_metrics_observe(api_route_id route, int status, int64_t ns)
{
    if ((unsigned)route >= API_R_COUNT)
        route = API_R_NONE;
    if (ns < 0)
        ns = 0;
    atomic_fetch_add_explicit(&api__m.requests[route][api__status_index(status)], 1,
                              memory_order_relaxed);
    int64_t us = ns / 1000;
    for (size_t b = 0; b < API_NBUCKETS; b++) {
        if (us <= api__bounds_us[b]) {
            atomic_fetch_add_explicit(&api__m.buckets[route][b], 1, memory_order_relaxed);
            break;
        }
    }
    atomic_fetch_add_explicit(&api__m.count[route], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&api__m.sum_ns[route], (uint64_t)ns, memory_order_relaxed);
}

void api_metrics_in_flight(int delta)
{
    atomic_fetch_add_explicit(&api__m.in_flight, delta, memory_order_relaxed);
}

int64_t api_metrics_in_flight_now(void)
{
    return atomic_load_explicit(&api__m.in_flight, memory_order_relaxed);
}

void api_metrics_upload_bytes(uint64_t n)
{
    atomic_fetch_add_explicit(&api__m.upload_bytes, n, memory_order_relaxed);
}

static uint64_t api__get(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

int api_metrics_render(sp_buf *b)
{
    int rc = sp_buf_adds(b, "# HELP spool_api_requests_total HTTP requests by route and status.\n"
                            "# TYPE spool_api_requests_total counter\n");
    for (int r = 0; r < API_R_COUNT && rc == 0; r++) {
        for (size_t s = 0; s < API_NSTATUS && rc == 0; s++) {
            uint64_t v = api__get(&api__m.requests[r][s]);
            if (v == 0)
                continue;
            if (s < API_NSTATUS - 1)
                rc = sp_buf_addf(b, "spool_api_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                                 api_route_label((api_route_id)r), api__statuses[s],
                                 (unsigned long long)v);
            else
                rc = sp_buf_addf(b, "spool_api_requests_total{route=\"%s\",code=\"other\"} %llu\n",
                                 api_route_label((api_route_id)r), (unsigned long long)v);
        }
    }
    if (rc == 0)
        rc = sp_buf_adds(b, "# HELP spool_api_request_duration_seconds Time from the request's "
                            "headers to its end.\n"
                            "# TYPE spool_api_request_duration_seconds histogram\n");
    for (int r = 0; r < API_R_COUNT && rc == 0; r++) {
        uint64_t count = api__get(&api__m.count[r]);
        if (count == 0)
            continue;
        const char *label = api_route_label((api_route_id)r);
        uint64_t cum = 0;
        for (size_t k = 0; k < API_NBUCKETS && rc == 0; k++) {
            cum += api__get(&api__m.buckets[r][k]);
            rc = sp_buf_addf(b,
                             "spool_api_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                             "%llu\n",
                             label, (double)api__bounds_us[k] / 1e6, (unsigned long long)cum);
        }
        if (rc == 0)
            rc = sp_buf_addf(b,
                             "spool_api_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                             "%llu\n"
                             "spool_api_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                             "spool_api_request_duration_seconds_count{route=\"%s\"} %llu\n",
                             label, (unsigned long long)count, label,
                             (double)api__get(&api__m.sum_ns[r]) / 1e9, label,
                             (unsigned long long)count);
    }
    if (rc == 0)
        rc = sp_buf_addf(b,
                         "# HELP spool_api_requests_in_flight Requests being handled now.\n"
                         "# TYPE spool_api_requests_in_flight gauge\n"
                         "spool_api_requests_in_flight %lld\n"
                         "# HELP spool_api_upload_bytes_total Request body bytes stored.\n"
                         "# TYPE spool_api_upload_bytes_total counter\n"
                         "spool_api_upload_bytes_total %llu\n",
                         (long long)atomic_load_explicit(&api__m.in_flight, memory_order_relaxed),
                         (unsigned long long)api__get(&api__m.upload_bytes));
    return rc;
}

int api_metrics_render_queues(sp_buf *b, int redis_up, const sp_queue_stat *st, size_t n,
                              size_t workers, size_t waiting)
{
    int rc = sp_buf_addf(b,
                         "# HELP spool_api_longpoll_waiting Long-polls waiting for a change.\n"
                         "# TYPE spool_api_longpoll_waiting gauge\n"
                         "spool_api_longpoll_waiting %zu\n"
                         "# HELP spool_redis_up Whether Redis answered this scrape.\n"
                         "# TYPE spool_redis_up gauge\n"
                         "spool_redis_up %d\n",
                         waiting, redis_up ? 1 : 0);
    if (rc < 0 || !redis_up)
        return rc;
    rc = sp_buf_adds(b, "# HELP spool_queue_jobs Jobs in each queue by state (queued: waiting "
                        "to run, running, retrying: waiting for a retry, dead: failed, on the "
                        "dead-letter list).\n"
                        "# TYPE spool_queue_jobs gauge\n");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sp_buf_addf(b,
                         "spool_queue_jobs{queue=\"%s\",state=\"queued\"} %lld\n"
                         "spool_queue_jobs{queue=\"%s\",state=\"running\"} %lld\n"
                         "spool_queue_jobs{queue=\"%s\",state=\"retrying\"} %lld\n"
                         "spool_queue_jobs{queue=\"%s\",state=\"dead\"} %lld\n",
                         st[i].name, (long long)st[i].ready, st[i].name,
                         (long long)st[i].running, st[i].name, (long long)st[i].delayed,
                         st[i].name, (long long)st[i].dead);
    if (rc == 0)
        rc = sp_buf_adds(b, "# HELP spool_queue_paused Whether the queue is paused (its "
                            "workers start no job).\n"
                            "# TYPE spool_queue_paused gauge\n");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sp_buf_addf(b, "spool_queue_paused{queue=\"%s\"} %d\n", st[i].name,
                         st[i].paused ? 1 : 0);
    if (rc == 0)
        rc = sp_buf_adds(b, "# HELP spool_jobs_total Jobs by outcome since the queue was "
                            "created.\n"
                            "# TYPE spool_jobs_total counter\n");
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct {
            const char *name;
            int64_t v;
        } c[] = {{"enqueued", st[i].enqueued},   {"succeeded", st[i].succeeded},
                 {"failed", st[i].failed},       {"cancelled", st[i].cancelled},
                 {"retried", st[i].retried},     {"expired", st[i].expired},
                 {"requeued", st[i].requeued}};
        for (size_t k = 0; k < sizeof c / sizeof *c && rc == 0; k++)
            rc = sp_buf_addf(b, "spool_jobs_total{queue=\"%s\",outcome=\"%s\"} %lld\n",
                             st[i].name, c[k].name, (long long)c[k].v);
    }
    if (rc == 0)
        rc = sp_buf_addf(b,
                         "# HELP spool_workers Live workers.\n"
                         "# TYPE spool_workers gauge\n"
                         "spool_workers %zu\n",
                         workers);
    return rc;
}

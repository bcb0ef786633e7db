/* metrics.h - the API's own Prometheus metrics: requests by route and status, a
 * request latency histogram by route, requests in flight, upload bytes. Lock-free
 * (relaxed atomics), process-wide. Queue depths and jobs by state come from Redis at
 * scrape time (api_metrics_render_queues). */
#ifndef SPOOL_API_METRICS_H
#define SPOOL_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "route.h"
#include "spool/buf.h"
#include "spool/queue.h"

/* Count a finished request: its route, status (499: the client went away) and
 * duration in nanoseconds. */
void api_metrics_observe(api_route_id route, int status, int64_t ns);

/* Requests in flight: +1 when one starts, -1 when it ends. */
void api_metrics_in_flight(int delta);

/* Requests in flight now. */
int64_t api_metrics_in_flight_now(void);

/* Bytes of request bodies stored in the blob store. */
void api_metrics_upload_bytes(uint64_t n);

/* Append the request metrics in Prometheus text format. 0 or SP_ENOMEM/SP_ETOOBIG. */
int api_metrics_render(sp_buf *out);

/* Append queue gauges and job counters for stats[0..n-1] and the live workers;
 * redis_up says whether Redis answered (when 0 the other arguments are ignored). */
int api_metrics_render_queues(sp_buf *out, int redis_up, const sp_queue_stat *stats, size_t n,
                              size_t workers, size_t waiting);

#endif

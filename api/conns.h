/* conns.h - the API's guard on connections, beside libmicrohttpd's total limit, so that
 * one client cannot take the server from everyone else:
 *   - at most `per_ip` connections at once from one client address (an IPv6 client
 *     counts by its /64, which one host usually has whole); peers on the `exempt` list
 *     (reverse proxies, whose connections carry many clients) are not counted. A
 *     connection past the limit is closed at once, unanswered;
 *   - a deadline for a request's headers: `header_ms` from the connection's start
 *     (or from a later request's first line), so a client that trickles them is cut
 *     off whatever its pace; between keep-alive requests the idle timeout applies;
 *   - the minimum upload rate is the request's own business (api_conns_slow_body).
 * A thread checks the deadlines a few times a second and shuts the late connections'
 * sockets, which libmicrohttpd then closes as if the client had. */
#ifndef SPOOL_API_CONNS_H
#define SPOOL_API_CONNS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/cidr.h"

typedef struct api_conns_opts {
    int64_t per_ip;       /* 0: no per-address limit */
    int64_t header_ms;    /* 0: no header deadline */
    int64_t idle_ms;      /* the connection idle timeout (between keep-alive requests) */
    const sp_cidrs *exempt; /* addresses not counted per address (may be NULL) */
} api_conns_opts;

typedef struct api_conns api_conns;

/* Start the guard (and its thread). NULL with err set on failure. o->exempt must
 * outlive it. */
api_conns *api_conns_start(const api_conns_opts *o, sp_err *err);

/* Stop the thread and free. Call after libmicrohttpd has stopped (every connection
 * closed). Accepts NULL. */
void api_conns_stop(api_conns *g);

/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback; cls is the guard. */
void api_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code);

/* A request's line has arrived: its headers are due within header_ms from now (or
 * earlier, when the connection's own deadline is earlier). */
void api_conns_request_line(struct MHD_Connection *c);

/* The request's headers are complete: no deadline until it ends. */
void api_conns_headers_done(struct MHD_Connection *c);

/* The request has ended: the next one on the connection has the idle timeout plus
 * header_ms to bring its headers. */
void api_conns_request_done(struct MHD_Connection *c);

/* Connections closed so far because they were over the per-address limit, and
 * because their headers came too late. */
void api_conns_counts(const api_conns *g, uint64_t *over_limit, uint64_t *header_late);

/* The minimum upload rate, as a sliding window over a request body: a body that
 * brings fewer than `min_rate` bytes a second over a `window_ms` window is too slow. */
typedef struct api_rate {
    int64_t start_ms; /* the window's start; 0: not started */
    uint64_t bytes;   /* bytes in the window */
} api_rate;

/* Count n more body bytes at now_ms. True when the window that just closed brought
 * fewer than min_rate * window_ms / 1000 bytes (min_rate 0: never). */
bool api_rate_slow(api_rate *r, uint64_t n, int64_t now_ms, int64_t min_rate, int64_t window_ms);

#endif

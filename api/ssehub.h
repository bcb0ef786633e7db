/* ssehub.h - the Server-Sent Events hub of one spool-api process: ONE reader thread
 * reads the job event stream (spool/evstream.h, blocking XREAD on its own connection)
 * and fans each event out to the open streams that want it. A stream is a
 * libmicrohttpd response whose content callback hands out what the stream's buffer
 * holds and suspends the connection when it is empty; the reader appends to the buffer
 * and resumes it. So an idle stream costs a suspended connection and a small struct,
 * not a thread.
 *
 * A stream that resumes (Last-Event-ID) first catches up with XRANGE, a batch at a
 * time as the client reads, on the HTTP thread serving it; once it reaches what the
 * reader has fanned out it joins the live streams. Buffers are bounded: a live stream
 * whose client falls API_SSE_BUF_MAX behind leaves the live streams and catches up the
 * same way, at its client's pace, so a burst costs no memory and loses nothing; a
 * client that reads nothing is closed by the connection idle timeout
 * (SPOOL_CONN_TIMEOUT). A heartbeat comment goes to every live stream each heartbeat
 * period (so idle proxies keep the connection and a client that went away is
 * noticed). */
#ifndef SPOOL_API_SSEHUB_H
#define SPOOL_API_SSEHUB_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"
#include "spool/err.h"
#include "spool/evstream.h"
#include "spool/job.h"

/* Bytes a live stream may have waiting for its client before it is dropped. */
#define API_SSE_BUF_MAX (64 * 1024)
/* The reconnection delay suggested to clients (retry:), ms. */
#define API_SSE_RETRY_MS 3000

typedef struct api_sse api_sse;
typedef struct api_sse_stream api_sse_stream;

/* What a stream wants: every event, or one job's, or one queue's and/or type's. */
typedef struct api_sse_filter {
    char job[SP_ID_LEN + 1];      /* "" for any */
    char queue[SP_QUEUE_MAX + 1]; /* "" for any */
    char type[SP_TYPE_MAX + 1];   /* "" for any */
} api_sse_filter;

/* Start the hub and its reader thread for the Redis at url with key prefix; at most
 * max_streams streams at once, a heartbeat every heartbeat_ms. NULL with err set. */
api_sse *api_sse_start(const char *url, const char *prefix, size_t max_streams,
                       int64_t heartbeat_ms, sp_err *err);

/* End every stream (each ends once its buffer is sent) and stop the reader thread;
 * later opens fail with SP_ESHUTDOWN. Idempotent; accepts NULL. */
void api_sse_stop(api_sse *h);

/* Stop (if needed) and free. Call after libmicrohttpd has stopped. Accepts NULL. */
void api_sse_free(api_sse *h);

/* Streams open now, and how often a live stream fell API_SSE_BUF_MAX behind (and went
 * back to catching up from Redis at its client's pace). */
void api_sse_counts(api_sse *h, size_t *open, uint64_t *behind);

/* Open a stream for connection conn with filter f. resume: the id the client saw last
 * (it catches up from there), or NULL to start with what the reader fans out next.
 * *pos gets the reader's position when the stream joined (an id that, given back as
 * Last-Event-ID, resumes after everything this stream will not show). Returns NULL
 * with err set: SP_EFULL (max_streams open), SP_EREDIS (the reader has not reached
 * Redis yet), SP_ESHUTDOWN, SP_ENOMEM. The stream belongs to the caller until
 * api_sse_response (or api_sse_cancel). */
api_sse_stream *api_sse_open(api_sse *h, struct MHD_Connection *conn, const api_sse_filter *f,
                             const sp_evid *resume, sp_evid *pos, sp_err *err);

/* Before api_sse_response: add text to send before any event the reader brings (a gap
 * notice, the job's current state), after the retry: hint and earlier prepends. 0 or
 * SP_ENOMEM. */
int api_sse_prepend(api_sse_stream *s, const char *text, size_t n);

/* Before api_sse_response: the client was told (a gap notice, api_sse_gap_text) that
 * events before oldest are gone; the catch-up says so again only if trimming passes it
 * by once more. */
void api_sse_gap_told(api_sse_stream *s, const sp_evid *oldest);

/* The gap notice ("event: gap" with {"message","oldest"}) appended to b. 0 or an
 * error. */
int api_sse_gap_text(const sp_evid *oldest, sp_buf *b);

/* End the stream once what it holds is sent (a per-job stream whose job has ended). */
void api_sse_end_after(api_sse_stream *s);

/* Append the SSE text of event ev (id: line and a JSON data: line) to b. 0 or an
 * error. */
int api_sse_format(const sp_event *ev, sp_buf *b);

/* The response that streams s (text/event-stream); the response owns s from here and
 * closes it when libmicrohttpd is done with it. NULL when out of memory (s closed). */
struct MHD_Response *api_sse_response(api_sse_stream *s);

/* Close a stream that got no response. Accepts NULL. */
void api_sse_cancel(api_sse_stream *s);

/* This thread's handle on the event stream (for a gap check), or NULL with err set. */
sp_evstream *api_sse_thread_stream(api_sse *h, sp_err *err);

#endif

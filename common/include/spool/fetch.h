/* fetch.h - download a source_url into the blob store (libcurl, wrapped once here).
 * Every fetch goes through the outbound guard (outbound.h): http and https only (also
 * after redirects), no proxy, and only addresses the guard allows, checked on every
 * connection. Also a size limit enforced while the body arrives, connect and total
 * timeouts, a redirect cap, and a stop flag for cancel and shutdown. The blob appears
 * only when the whole body arrived (staging + rename). */
#ifndef SPOOL_FETCH_H
#define SPOOL_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "spool/blob.h"
#include "spool/err.h"
#include "spool/outbound.h"
#include "spool/util.h"

typedef struct sp_fetch_opts {
    int64_t max_bytes;          /* 0: no limit */
    int64_t connect_timeout_ms; /* 0: 10 s */
    int64_t total_timeout_ms;   /* 0: 10 min */
    int max_redirects;          /* < 0: 5 */
    const sp_flag *stop;   /* non-zero aborts with SP_ECANCELLED; may be NULL */
    /* Called as bytes arrive (total is -1 when unknown); may be NULL. */
    void (*progress)(void *ud, int64_t done, int64_t total);
    void *ud;
    /* The guard's allow-list; NULL allows public addresses only. */
    const sp_outbound *outbound;
    /* Filled on SP_EUNREACHABLE with the real cause (the address the guard refused,
     * curl's error): for the operator's log, never for the job. May be NULL. */
    sp_err *detail;
} sp_fetch_opts;

/* True when url is an absolute http:// or https:// URL with a host, at most 2048
 * bytes, without spaces or control characters. For request validation. */
bool sp_fetch_url_valid(const char *url);

/* Download url into blob name of job_id. On 0, *bytes (may be NULL) is the size and
 * content_type (may be NULL; 128 bytes) the server's Content-Type ("" if none).
 * Errors, with err naming the URL and the cause:
 *   SP_EUNREACHABLE the guard refused the host's address, or it could not be reached
 *                   before any server answered (DNS, connect, TLS, timeout): one
 *                   message for all, without the URL (retryable; see outbound.h)
 *   SP_EINVAL       bad URL or a redirect to another scheme (permanent)
 *   SP_ETOOBIG      larger than max_bytes (permanent)
 *   SP_ENOTFOUND    HTTP 404 or 410 (permanent)
 *   SP_EUNSUPPORTED another 4xx answer (permanent)
 *   SP_EFETCH       5xx, 408, 429, or a network error after the server answered
 *                   (retryable)
 *   SP_ETIMEDOUT    a timeout ran out after the server answered (retryable)
 *   SP_ECANCELLED   *stop became non-zero
 *   SP_EIO          the blob store failed (retryable) */
int sp_fetch_to_blob(sp_blobs *b, const char *job_id, const char *name, const char *url,
                     const sp_fetch_opts *o, int64_t *bytes, char *content_type, sp_err *err);

#endif

/* fetch.h - download a source_url into the blob store, and POST a webhook to a
 * callback_url (libcurl, wrapped once here). Every request goes through the outbound
 * guard (outbound.h): http and https only (also after redirects), no proxy, and only
 * addresses the guard allows, checked on every connection. Also a size limit enforced
 * while the body arrives, connect and total timeouts, a redirect cap, and a stop flag
 * for cancel and shutdown. A downloaded blob appears only when the whole body arrived
 * (staging + rename). */
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

/* The most bytes of an answer sp_fetch_post keeps. */
#define SP_FETCH_REPLY_MAX 512

/* What came back from sp_fetch_post. */
typedef struct sp_fetch_reply {
    long status;       /* the final HTTP status; 0 when no server answered */
    bool refused;      /* SP_EUNREACHABLE because the guard refused the destination (its
                        * host as written, or every address it resolved to): asking
                        * again will not help while SPOOL_OUTBOUND_ALLOW stays as it is */
    size_t body_len;   /* bytes in body */
    char body[SP_FETCH_REPLY_MAX]; /* the answer's first bytes, raw (not NUL-terminated) */
} sp_fetch_reply;

/* POST the n bytes at body to url with headers (nheaders "Name: value" lines, e.g.
 * "Content-Type: application/json"; they replace curl's own of the same name) through
 * the outbound guard. Redirects are not followed: a 3xx is an answer like any other.
 * Uses o's connect_timeout_ms, total_timeout_ms (the whole exchange), stop, outbound
 * and detail (NULL o: defaults). Reads at most SP_FETCH_REPLY_MAX bytes of the answer
 * and then closes the connection. Returns 0 once a server answered, whatever the status
 * (reply->status; an answer cut short after its status line still counts), or:
 *   SP_EINVAL       not an http or https URL
 *   SP_EUNREACHABLE refused by the guard (reply->refused) or not reached before any
 *                   answer (DNS, connect, TLS, timeout): the one uniform message
 *   SP_ECANCELLED   *stop became non-zero
 *   SP_ENOMEM
 * reply is filled on every return. */
int sp_fetch_post(const char *url, const char *const *headers, size_t nheaders,
                  const void *body, size_t n, const sp_fetch_opts *o, sp_fetch_reply *reply,
                  sp_err *err);

#endif

/* submit.h - what the two job-creating routes share: the Idempotency-Key and the
 * request fingerprint, the blob a body streams to, a cheap early check that Redis is
 * up and the queue has room (before a large upload is read), and the final enqueue
 * that creates the job and answers 202, or answers an error and removes the job's
 * blobs so a refused request leaves nothing behind. */
#ifndef SPOOL_API_SUBMIT_H
#define SPOOL_API_SUBMIT_H

#include <stdbool.h>

#include "request.h"
#include "validate.h"

/* Blobs at least this large are fsynced before the job is created; smaller ones
 * (inline export rows, small bodies) are not, see README ("Durability"). */
#define API_DURABLE_MIN_BYTES (1024 * 1024)

/* Refuse at once (413) a body whose Content-Length is over limit. Returns 0, or -1
 * when the answer has been queued. */
int api_submit_check_length(api_req *r, int64_t limit);

/* Read the Idempotency-Key header and start the fingerprint over the method, path,
 * media type and query string. Replies 422 (and returns MHD_NO... see below) for a bad
 * key. Returns 0, or -1 when it replied. */
int api_submit_begin(api_req *r);

/* Add body bytes (or a canonical form of them) to the fingerprint. */
void api_submit_hash(api_req *r, const void *data, size_t n);

/* Answer 503 or 429 now, before a body is read, if Redis is down or the queue for
 * type is full. Returns 0, or -1 when it replied. */
int api_submit_precheck(api_req *r, const char *type);

/* Give the request a job id and open blob name for writing (limit: the upload
 * limit). Returns 0, or -1 when it replied (503). */
int api_submit_blob_open(api_req *r, const char *name);

/* Write to the open blob (and the fingerprint). Returns 0, or -1 when it replied
 * (413 past the limit, 503 on a write error). */
int api_submit_blob_write(api_req *r, const char *data, size_t n);

/* Commit the open blob (fsynced when large). *bytes gets its size. 0 or -1 (replied). */
int api_submit_blob_commit(api_req *r, int64_t *bytes);

/* What every producer (these routes, the schedules' firing loop) sets on a new job of
 * type: its queue and retry policy (SPOOL_ROUTES, SPOOL_RETRY), the queue limit, how
 * long an idempotency key is remembered, and its callback (callback_url, or
 * SPOOL_WEBHOOK_URL when that is NULL or "") with SPOOL_WEBHOOK_MAX_ATTEMPTS. The other
 * fields of e (id, params, input, idempotency, when) are the caller's. */
void api_enqueue_defaults(const api_config *cfg, const sp_routes *routes, const char *type,
                          const char *callback_url, sp_enqueue *e);

/* Create the job of type with params and input (JSON texts) and answer: 202 with
 * Location and the job; for a repeated Idempotency-Key with the same request, 202 with
 * the job the first request created; 409 for the same key with another request; 429
 * when the queue is full; 503 when Redis is down. Whatever goes wrong, the job's blobs
 * are removed. callback_url (checked already; NULL or "": SPOOL_WEBHOOK_URL, if set)
 * goes on the record with SPOOL_WEBHOOK_MAX_ATTEMPTS as its callback_attempts. */
enum MHD_Result api_submit(api_req *r, const char *type, const char *params,
                           const char *input, bool high_priority, const char *callback_url,
                           const api_when *when);

#endif

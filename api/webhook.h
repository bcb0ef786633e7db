/* webhook.h - spool-api's webhook deliverer. SPOOL_WEBHOOK_CONCURRENCY threads take
 * delivery jobs (type webhook.deliver, queue "webhooks": created when a job with a
 * callback_url ends, see docs/webhooks.md) with common's consumer, one at a time, and
 * POST the ended job's JSON, as GET /v1/jobs/{id} shows it, to the delivery's URL:
 * signed with SPOOL_WEBHOOK_SECRET, through the outbound guard, within
 * SPOOL_WEBHOOK_TIMEOUT, following no redirect. A 2xx answer ends the delivery as
 * succeeded; any other answer or a network error is retried with exponential backoff
 * and full jitter until the delivery's attempts run out (then failed and
 * dead-lettered, like any job); a URL the guard refuses fails at once. The last
 * answer's status and a safe excerpt of its body are the delivery job's metadata.
 *
 * A keeper thread registers the deliverer in the worker registry (kind "webhook"),
 * beats, and runs the webhooks queue's maintenance (due retries, lapsed leases, dead
 * workers' claims). Deliveries have their own queue and threads: a slow or dead
 * receiver holds up nothing but other deliveries. */
#ifndef SPOOL_API_WEBHOOK_H
#define SPOOL_API_WEBHOOK_H

#include <stdint.h>

#include "spool/err.h"

struct api_config;
typedef struct api_webhooks api_webhooks;

/* Check the webhook settings of cfg: SPOOL_WEBHOOK_URL (when set) is a callback URL
 * the outbound guard accepts, and the retry cap is not below its base. 0 or SP_EINVAL
 * with err naming the setting. */
int api_webhooks_check(const struct api_config *cfg, sp_err *err);

/* Start the deliverer with cfg's settings (cfg->webhook_concurrency > 0 threads; cfg
 * must outlive it). NULL with err set on failure. */
api_webhooks *api_webhooks_start(const struct api_config *cfg, sp_err *err);

/* Take no more deliveries (those under way go on). Accepts NULL. */
void api_webhooks_drain(api_webhooks *w);

/* Drain, let the deliveries under way finish for up to grace_ms, then abort those
 * left (each goes back to its queue at once, its attempt not counted; the receiver
 * may have seen it: at least once), deregister and free. Accepts NULL. */
void api_webhooks_stop(api_webhooks *w, int64_t grace_ms);

#endif

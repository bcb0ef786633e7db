/* webhook.h - what webhooks need beside the queue: the check a callback URL passes
 * before it is stored on a job (at submit, and for SPOOL_WEBHOOK_URL at start), the
 * Spool-Signature header (HMAC-SHA256 from libcrypto, see sha256.h), and a safe excerpt
 * of a receiver's answer. A delivery is a job of type SP_WEBHOOK_TYPE on queue
 * SP_WEBHOOK_QUEUE (docs/webhooks.md); spool-api delivers it (api/webhook.c), through
 * fetch.h's sp_fetch_post and the outbound guard like every user-supplied URL. */
#ifndef SPOOL_WEBHOOK_H
#define SPOOL_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/outbound.h"

#define SP_WEBHOOK_TYPE "webhook.deliver"
#define SP_WEBHOOK_QUEUE "webhooks"
#define SP_WEBHOOK_URL_MAX 2048          /* bytes of a callback URL */
#define SP_WEBHOOK_ATTEMPTS_DEFAULT 12   /* a delivery's attempts when none are set */
/* "t=" + up to 20 digits + ",v1=" + 64 hex digits + NUL */
#define SP_WEBHOOK_SIG_MAX 96

/* Judge a callback URL of len bytes as far as can be done without DNS: 1 to
 * SP_WEBHOOK_URL_MAX bytes of printable ASCII (no NUL, space or control character); an
 * absolute http:// or https:// URL with a host and without user name or password; and a
 * host the outbound guard g (may be NULL: public addresses only) does not refuse
 * (sp_outbound_check_url: loopback, private, link-local and metadata addresses in any
 * notation, "localhost"). Returns 0, SP_EINVAL (not such a URL), SP_EUNREACHABLE (the
 * guard refuses its host) or SP_ENOMEM, with err saying why in words for the person
 * who gave the URL (it does not repeat the URL). */
int sp_webhook_url_check(const sp_outbound *g, const char *url, size_t len, sp_err *err);

/* The Spool-Signature header's value for a body of n bytes sent at t (Unix seconds):
 * "t=<t>,v1=<hex>" where hex is HMAC-SHA256(secret, "<t>." + body) in lowercase, into
 * out. Returns 0, or SP_ENOMEM or SP_ECRYPTO with err set and out "". */
int sp_webhook_sign(const void *secret, size_t secret_len, int64_t t, const void *body,
                    size_t n, char out[SP_WEBHOOK_SIG_MAX], sp_err *err);

/* A receiver's answer as safe text, for the delivery job and logs: the first bytes of
 * in (n bytes) that fit in cap - 1, with valid UTF-8 and tab, newline and carriage
 * return kept and every other control character or invalid byte written as '?'; never
 * cuts a character in two. out (cap >= 1 bytes) is NUL-terminated. Returns its length. */
size_t sp_webhook_excerpt(const void *in, size_t n, char *out, size_t cap);

#endif

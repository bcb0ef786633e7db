/* sha256.h - SHA-256 digests and HMAC-SHA256 through libcrypto (OpenSSL's EVP
 * interface), for Idempotency-Key digests, request fingerprints and webhook
 * signatures. The project computes no hash of its own. */
#ifndef SPOOL_SHA256_H
#define SPOOL_SHA256_H

#include <stddef.h>

#include "spool/err.h"

/* A digest in progress. Streamed input may fail part way (libcrypto can run out of
 * memory): the first error is kept and reported by sp_sha256_hex, so callers that
 * feed it chunk by chunk check once, at the end. */
typedef struct sp_sha256 {
    struct evp_md_ctx_st *ctx; /* libcrypto's context; NULL before init and after */
    int rc;                    /* the first error (SP_E*), or 0 */
    unsigned long ossl;        /* libcrypto's error code for it, when it gave one */
} sp_sha256;

/* Start a digest. Returns 0, or SP_ENOMEM or SP_ECRYPTO with err set; on error s is
 * still safe to update (ignored), finish (reports the error) and free. */
int sp_sha256_init(sp_sha256 *s, sp_err *err);

/* Add n bytes. Does nothing after an error, which sp_sha256_hex then reports. */
void sp_sha256_update(sp_sha256 *s, const void *data, size_t n);

/* Finish: write 64 lowercase hex characters and a NUL into out. Returns 0, or the
 * first error of the whole digest (out is then ""), with err set. Frees the context
 * either way, so s needs no sp_sha256_free after it. */
int sp_sha256_hex(sp_sha256 *s, char out[65], sp_err *err);

/* Free a digest that was not finished. Accepts a zeroed, failed or finished one. */
void sp_sha256_free(sp_sha256 *s);

/* The digest of n bytes at data, as sp_sha256_hex writes it. Returns 0 or an error
 * as sp_sha256_hex does. */
int sp_sha256_hex_of(const void *data, size_t n, char out[65], sp_err *err);

/* HMAC-SHA256 under key (klen bytes, any length) of the a_n bytes at a followed by the
 * b_n bytes at b (either may be empty), as 64 lowercase hex characters and a NUL in
 * out. Returns 0, or SP_ENOMEM or SP_ECRYPTO with err set and out "". */
int sp_hmac_sha256_hex(const void *key, size_t klen, const void *a, size_t a_n, const void *b,
                       size_t b_n, char out[65], sp_err *err);

#endif

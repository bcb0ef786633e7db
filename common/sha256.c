/* sha256.c - SHA-256 and HMAC-SHA256 through libcrypto's EVP interface (see spool/sha256.h). */
#include "spool/sha256.h"

#include <openssl/err.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

/* SHA-256 from libcrypto's default provider, fetched once and kept for the process
 * (EVP_sha256() would look it up in the provider store again on every init). A fetch
 * that fails is tried again on the next digest. */
static _Atomic(EVP_MD *) sp__md;

static const EVP_MD *sp__sha256_md(void)
{
    EVP_MD *md = atomic_load(&sp__md);
    if (md != NULL)
        return md;
    md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    if (md == NULL)
        return NULL;
    EVP_MD *none = NULL;
    if (!atomic_compare_exchange_strong(&sp__md, &none, md)) {
        EVP_MD_free(md); /* another thread's fetch won */
        return none;
    }
    return md;
}

/* Record the first failure, from libcrypto's queued errors (all taken off this
 * thread's queue, so none surfaces in an unrelated call later; the first is the root
 * cause): SP_ENOMEM when any of them says so or nomem is set, SP_ECRYPTO otherwise. */
static void sp__fail(sp_sha256 *s, int nomem)
{
    unsigned long first = 0, e;
    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            nomem = 1;
    }
    if (s->rc != 0)
        return;
    s->ossl = first;
    s->rc = nomem ? SP_ENOMEM : SP_ECRYPTO;
    EVP_MD_CTX_free(s->ctx);
    s->ctx = NULL;
}

/* Fill err from s's recorded failure; returns its code. */
static int sp__report(const sp_sha256 *s, sp_err *err)
{
    if (s->ossl == 0)
        return sp_err_set(err, s->rc, "SHA-256: %s", sp_strerror(s->rc));
    char why[256];
    ERR_error_string_n(s->ossl, why, sizeof why);
    return sp_err_set(err, s->rc, "SHA-256: %s (libcrypto: %s)", sp_strerror(s->rc), why);
}

int sp_sha256_init(sp_sha256 *s, sp_err *err)
{
    *s = (sp_sha256){0};
    const EVP_MD *md = sp__sha256_md();
    if (md == NULL) {
        sp__fail(s, 0);
        return sp__report(s, err);
    }
    s->ctx = EVP_MD_CTX_new();
    if (s->ctx == NULL) {
        sp__fail(s, 1);
        return sp__report(s, err);
    }
    if (EVP_DigestInit_ex(s->ctx, md, NULL) != 1) {
        sp__fail(s, 0);
        return sp__report(s, err);
    }
    return 0;
}

void sp_sha256_update(sp_sha256 *s, const void *data, size_t n)
{
    if (s->rc != 0 || s->ctx == NULL || n == 0)
        return;
    if (EVP_DigestUpdate(s->ctx, data, n) != 1)
        sp__fail(s, 0);
}

int sp_sha256_hex(sp_sha256 *s, char out[65], sp_err *err)
{
    out[0] = '\0';
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (s->rc == 0 && s->ctx == NULL)
        s->rc = SP_EINVAL; /* never started, or finished already */
    else if (s->rc == 0 && (EVP_DigestFinal_ex(s->ctx, md, &len) != 1 || len != 32))
        sp__fail(s, 0);
    sp_sha256_free(s);
    if (s->rc != 0)
        return sp__report(s, err);
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
    return 0;
}

void sp_sha256_free(sp_sha256 *s)
{
    EVP_MD_CTX_free(s->ctx); /* accepts NULL */
    s->ctx = NULL;
}

int sp_sha256_hex_of(const void *data, size_t n, char out[65], sp_err *err)
{
    sp_sha256 s;
    sp_sha256_init(&s, NULL); /* an error is kept in s and reported by sp_sha256_hex */
    sp_sha256_update(&s, data, n);
    return sp_sha256_hex(&s, out, err);
}

/* ---- HMAC-SHA256 --------------------------------------------------------------------- */

/* HMAC from libcrypto's default provider, fetched once like the digest above. */
static _Atomic(EVP_MAC *) sp__mac;

static EVP_MAC *sp__hmac(void)
{
    EVP_MAC *mac = atomic_load(&sp__mac);
    if (mac != NULL)
        return mac;
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (mac == NULL)
        return NULL;
    EVP_MAC *none = NULL;
    if (!atomic_compare_exchange_strong(&sp__mac, &none, mac)) {
        EVP_MAC_free(mac);
        return none;
    }
    return mac;
}

int sp_hmac_sha256_hex(const void *key, size_t klen, const void *a, size_t a_n, const void *b,
                       size_t b_n, char out[65], sp_err *err)
{
    out[0] = '\0';
    static const unsigned char empty[1];
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = sp__hmac();
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    unsigned char md[32];
    size_t n = 0;
    /* An empty key is a valid HMAC key; libcrypto wants a pointer all the same. */
    bool ok = ctx != NULL && EVP_MAC_init(ctx, klen ? key : empty, klen, params) == 1 &&
              (a_n == 0 || EVP_MAC_update(ctx, a, a_n) == 1) &&
              (b_n == 0 || EVP_MAC_update(ctx, b, b_n) == 1) &&
              EVP_MAC_final(ctx, md, &n, sizeof md) == 1 && n == sizeof md;
    EVP_MAC_CTX_free(ctx);
    if (!ok) {
        sp_sha256 s = {0};
        sp__fail(&s, mac != NULL && ctx == NULL);
        char why[256] = "";
        if (s.ossl != 0)
            ERR_error_string_n(s.ossl, why, sizeof why);
        return sp_err_set(err, s.rc, "HMAC-SHA256: %s%s%s%s", sp_strerror(s.rc),
                          why[0] ? " (libcrypto: " : "", why, why[0] ? ")" : "");
    }
    static const char digits[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[64] = '\0';
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}

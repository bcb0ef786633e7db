/* sha256.c - SHA-256 through libcrypto's EVP interface (see spool/sha256.h). */
#include "spool/sha256.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <stdatomic.h>
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

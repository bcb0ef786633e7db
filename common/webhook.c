/* webhook.c - callback URL checks, the Spool-Signature header and answer excerpts (see
 * webhook.h). */
#include "spool/webhook.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "spool/fetch.h"
#include "spool/sha256.h"
#include "spool/utf8.h"

/* Whether curl parses a user name or password out of url (1), none (0), or cannot
 * parse it (SP_EINVAL) or ran out of memory (SP_ENOMEM). */
static int sp__has_userinfo(const char *url)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return SP_ENOMEM;
    int rc = 0;
    char *part = NULL;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc == CURLUE_OUT_OF_MEMORY)
        rc = SP_ENOMEM;
    else if (uc != CURLUE_OK)
        rc = SP_EINVAL;
    else if (curl_url_get(u, CURLUPART_USER, &part, 0) != CURLUE_NO_USER)
        rc = 1;
    curl_free(part);
    part = NULL;
    if (rc == 0 && curl_url_get(u, CURLUPART_PASSWORD, &part, 0) != CURLUE_NO_PASSWORD)
        rc = 1;
    curl_free(part);
    curl_url_cleanup(u);
    return rc;
}

int sp_webhook_url_check(const sp_outbound *g, const char *url, size_t len, sp_err *err)
{
    if (url == NULL || len == 0)
        return sp_err_set(err, SP_EINVAL, "must not be empty");
    if (len > SP_WEBHOOK_URL_MAX)
        return sp_err_set(err, SP_EINVAL, "must be at most %d bytes (it has %zu)",
                          SP_WEBHOOK_URL_MAX, len);
    if (memchr(url, '\0', len) != NULL)
        return sp_err_set(err, SP_EINVAL, "must not contain NUL bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= ' ' || c >= 0x7f)
            return sp_err_set(err, SP_EINVAL,
                              "must be printable ASCII without spaces (percent-encode other "
                              "characters); byte %zu is 0x%02x",
                              i, c);
    }
    if (!sp_fetch_url_valid(url))
        return sp_err_set(err, SP_EINVAL, "must be an absolute http:// or https:// URL with a "
                                          "host");
    int rc = sp__has_userinfo(url);
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "out of memory");
    if (rc == SP_EINVAL)
        return sp_err_set(err, rc, "is not a URL that can be parsed");
    if (rc == 1)
        return sp_err_set(err, SP_EINVAL, "must not contain a user name or password (put a "
                                          "token in the path or query, or verify "
                                          "Spool-Signature instead)");
    return sp_outbound_check_url(g, url, err);
}

int sp_webhook_sign(const void *secret, size_t secret_len, int64_t t, const void *body,
                    size_t n, char out[SP_WEBHOOK_SIG_MAX], sp_err *err)
{
    out[0] = '\0';
    char prefix[32], hex[65];
    int pn = snprintf(prefix, sizeof prefix, "%" PRId64 ".", t);
    int rc = sp_hmac_sha256_hex(secret, secret_len, prefix, (size_t)pn, body, n, hex, err);
    if (rc < 0)
        return rc;
    snprintf(out, SP_WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=%s", t, hex);
    return 0;
}

size_t sp_webhook_excerpt(const void *in, size_t n, char *out, size_t cap)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len = 1;
        if (c >= 0x80) {
            uint32_t cp;
            len = sp_utf8_decode(p + i, n - i, &cp);
            if (cp == SP_UTF8_REPLACEMENT && !sp_utf8_valid(p + i, len))
                len = 0; /* an invalid byte: one '?' for it */
        }
        if (len == 0 || (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
            if (o + 1 >= cap)
                break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + len >= cap)
            break;
        memcpy(out + o, p + i, len);
        o += len;
        i += len;
    }
    if (cap > 0)
        out[o] = '\0';
    return o;
}

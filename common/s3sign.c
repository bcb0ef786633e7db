/* s3sign.c - presigned S3 URLs, AWS Signature Version 4 in the query string (see
 * s3sign.h). The steps and their names follow AWS's "Authenticating Requests: Using
 * Query Parameters": canonical request, string to sign, signing key, signature. */
#include "s3sign.h"
#include "sha256_internal.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool/buf.h"
#include "spool/sha256.h"
#include "spool/utf8.h"

#define SP__MAX_EXPIRES 604800            /* S3's limit: 7 days */
#define SP__MAX_TEXT (64 * 1024)          /* the canonical request, the URL */
#define SP__MAX_KEY 1024                  /* S3's limit on a key, in bytes */
#define SP__MAX_OVERRIDE 1024
#define SP__MAX_ACCESS_KEY 128
#define SP__MAX_SECRET 256
#define SP__MAX_REGION 63
#define SP__MAX_HOST 253

/* ---- RFC 3986 encoding ------------------------------------------------------------- */

static bool sp__unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_' || c == '.' || c == '~';
}

/* Write byte c encoded at dst (1 or 3 bytes); returns how many. */
static size_t sp__encode_byte(unsigned char c, bool keep_slash, char *dst)
{
    static const char hex[] = "0123456789ABCDEF";
    if (sp__unreserved(c) || (keep_slash && c == '/')) {
        dst[0] = (char)c;
        return 1;
    }
    dst[0] = '%';
    dst[1] = hex[c >> 4];
    dst[2] = hex[c & 15];
    return 3;
}

int sp_s3_uri_encode(const char *in, bool keep_slash, char *out, size_t cap, sp_err *err)
{
    if (out != NULL && cap > 0)
        out[0] = '\0';
    if (in == NULL || out == NULL)
        return sp_err_set(err, SP_EINVAL, "URI encoding: no %s", in == NULL ? "input" : "output");
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)in; *c; c++)
        n += sp__unreserved(*c) || (keep_slash && *c == '/') ? 1 : 3;
    if (n >= cap)
        return sp_err_set(err, SP_ETOOBIG, "URI encoding: %zu bytes encoded do not fit in %zu",
                          n + 1, cap);
    n = 0;
    for (const unsigned char *c = (const unsigned char *)in; *c; c++)
        n += sp__encode_byte(*c, keep_slash, out + n);
    out[n] = '\0';
    return 0;
}

/* Append s encoded to b. 0, SP_ENOMEM or SP_ETOOBIG (b may then hold part of it). */
static int sp__buf_add_encoded(sp_buf *b, const char *s, bool keep_slash)
{
    char piece[256];
    size_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        n += sp__encode_byte(*c, keep_slash, piece + n);
        if (n > sizeof piece - 3) {
            int rc = sp_buf_add(b, piece, n);
            if (rc < 0)
                return rc;
            n = 0;
        }
    }
    return sp_buf_add(b, piece, n);
}

/* ---- checking the request ---------------------------------------------------------- */

/* The endpoint, taken apart and normalised. */
typedef struct sp__endpoint {
    bool https;
    bool is_ip;                  /* an IPv4 or IPv6 literal */
    char host[SP__MAX_HOST + 1]; /* lower case; an IPv6 literal with its brackets */
    char port[8];                /* ":9000", or "" for none or the scheme's default */
} sp__endpoint;

static int sp__parse_endpoint(const char *ep, sp__endpoint *out, sp_err *err)
{
    *out = (sp__endpoint){0};
    if (ep == NULL || *ep == '\0')
        return sp_err_set(err, SP_EINVAL, "presign: endpoint is missing");
    const char *s;
    if (strncasecmp(ep, "https://", 8) == 0) {
        out->https = true;
        s = ep + 8;
    } else if (strncasecmp(ep, "http://", 7) == 0) {
        s = ep + 7;
    } else {
        return sp_err_set(err, SP_EINVAL, "presign: endpoint \"%.64s\" is not http:// or "
                                          "https://", ep);
    }
    size_t alen = strcspn(s, "/?#");
    if (s[alen] != '\0' && strcmp(s + alen, "/") != 0)
        return sp_err_set(err, SP_EINVAL,
                          "presign: endpoint \"%.64s\" has a path, query or fragment (only a "
                          "trailing '/' may follow the host and port)", ep);
    if (memchr(s, '@', alen) != NULL)
        return sp_err_set(err, SP_EINVAL, "presign: endpoint has user:password@ (credentials go "
                                          "in access_key)");
    const char *hend; /* one past the host */
    if (*s == '[') {
        const char *close = memchr(s, ']', alen);
        size_t hlen = close ? (size_t)(close - s - 1) : 0;
        char v6[64];
        if (close == NULL || hlen == 0 || hlen >= sizeof v6)
            return sp_err_set(err, SP_EINVAL, "presign: endpoint has a malformed IPv6 literal");
        memcpy(v6, s + 1, hlen);
        v6[hlen] = '\0';
        struct in6_addr a;
        if (inet_pton(AF_INET6, v6, &a) != 1)
            return sp_err_set(err, SP_EINVAL, "presign: endpoint has a malformed IPv6 literal "
                                              "(zone ids are not supported)");
        for (size_t i = 0; i <= hlen + 1; i++)
            out->host[i] = (char)((s[i] >= 'A' && s[i] <= 'F') ? s[i] - 'A' + 'a' : s[i]);
        out->host[hlen + 2] = '\0';
        out->is_ip = true;
        hend = close + 1;
    } else {
        hend = s;
        while (hend < s + alen && *hend != ':')
            hend++;
        size_t hlen = (size_t)(hend - s);
        if (hlen == 0 || hlen > SP__MAX_HOST)
            return sp_err_set(err, SP_EINVAL, "presign: endpoint has no host, or one longer "
                                              "than 253");
        for (size_t i = 0; i < hlen; i++) {
            char c = s[i];
            bool dot = c == '.';
            if (!(sp__unreserved((unsigned char)c) && c != '_' && c != '~'))
                return sp_err_set(err, SP_EINVAL, "presign: endpoint's host has a character "
                                                  "other than A-Z a-z 0-9 . -");
            if (dot && (i == 0 || i == hlen - 1 || s[i - 1] == '.'))
                return sp_err_set(err, SP_EINVAL, "presign: endpoint's host has an empty label");
            out->host[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        out->host[hlen] = '\0';
        struct in_addr a;
        out->is_ip = inet_pton(AF_INET, out->host, &a) == 1;
    }
    if (hend < s + alen) {
        if (*hend != ':')
            return sp_err_set(err, SP_EINVAL, "presign: endpoint has something after the host "
                                              "that is not a port");
        const char *d = hend + 1;
        size_t dlen = (size_t)(s + alen - d);
        long port = 0;
        if (dlen == 0 || dlen > 5)
            return sp_err_set(err, SP_EINVAL, "presign: endpoint's port is not 1-65535");
        for (size_t i = 0; i < dlen; i++) {
            if (d[i] < '0' || d[i] > '9')
                return sp_err_set(err, SP_EINVAL, "presign: endpoint's port is not 1-65535");
            port = port * 10 + (d[i] - '0');
        }
        if (port < 1 || port > 65535)
            return sp_err_set(err, SP_EINVAL, "presign: endpoint's port is not 1-65535");
        if (port != (out->https ? 443 : 80))
            snprintf(out->port, sizeof out->port, ":%ld", port);
    }
    return 0;
}

/* A bucket name as a DNS name (virtual-host style): 3-63 of a-z 0-9 . -, starting
 * and ending with a letter or digit, no empty label. Path style also takes the legacy
 * names (up to 255, A-Z and _ too). */
static int sp__check_bucket(const char *b, bool path_style, sp_err *err)
{
    if (b == NULL || *b == '\0')
        return sp_err_set(err, SP_EINVAL, "presign: bucket is missing");
    size_t n = strlen(b);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        bool dns = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
        bool legacy = (c >= 'A' && c <= 'Z') || c == '_';
        if (!dns && !(path_style && legacy))
            return sp_err_set(err, SP_EINVAL, "presign: bucket has a character other than a-z "
                                              "0-9 . - (A-Z and _ only with path_style)");
    }
    if (path_style)
        return n <= 255 ? 0 : sp_err_set(err, SP_EINVAL, "presign: bucket is longer than 255");
    if (n < 3 || n > 63)
        return sp_err_set(err, SP_EINVAL, "presign: bucket must be 3-63 characters for "
                                          "virtual-host style");
    if (b[0] == '-' || b[0] == '.' || b[n - 1] == '-' || b[n - 1] == '.' || strstr(b, ".."))
        return sp_err_set(err, SP_EINVAL, "presign: bucket is not a DNS name (a label is empty "
                                          "or a name starts or ends with '-' or '.')");
    return 0;
}

static int sp__check_key(const char *k, sp_err *err)
{
    if (k == NULL || *k == '\0')
        return sp_err_set(err, SP_EINVAL, "presign: key is missing");
    size_t n = strlen(k);
    if (n > SP__MAX_KEY)
        return sp_err_set(err, SP_EINVAL, "presign: key is longer than 1024 bytes");
    if (!sp_utf8_valid(k, n))
        return sp_err_set(err, SP_EINVAL, "presign: key is not UTF-8");
    for (const char *seg = k;;) {
        size_t len = strcspn(seg, "/");
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return sp_err_set(err, SP_EINVAL, "presign: key has a \".\" or \"..\" segment, "
                                              "which HTTP clients would resolve away");
        if (seg[len] == '\0')
            return 0;
        seg += len + 1;
    }
}

/* Text of min..max bytes in which every byte passes ok (NULL: any byte). */
static int sp__check_text(const char *s, const char *what, size_t min, size_t max,
                          bool (*ok)(unsigned char), const char *chars, sp_err *err)
{
    if (s == NULL || strlen(s) < min)
        return sp_err_set(err, SP_EINVAL, "presign: %s is missing", what);
    size_t n = strlen(s);
    if (n > max)
        return sp_err_set(err, SP_EINVAL, "presign: %s is longer than %zu", what, max);
    for (size_t i = 0; ok != NULL && i < n; i++)
        if (!ok((unsigned char)s[i]))
            return sp_err_set(err, SP_EINVAL, "presign: %s may only have %s", what, chars);
    return 0;
}

static bool sp__method_char(unsigned char c)
{
    return c >= 'A' && c <= 'Z';
}
static bool sp__region_char(unsigned char c)
{
    return sp__unreserved(c) && c != '~';
}
static bool sp__access_key_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '/';
}
static bool sp__token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static bool sp__given(const char *s)
{
    return s != NULL && *s != '\0';
}

static int sp__check_override(const char *s, const char *what, const char *method, sp_err *err)
{
    if (!sp__given(s))
        return 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return sp_err_set(err, SP_EINVAL, "presign: %s is only for GET and HEAD, not %s", what,
                          method);
    size_t n = strlen(s);
    if (n > SP__MAX_OVERRIDE)
        return sp_err_set(err, SP_EINVAL, "presign: %s is longer than %d bytes", what,
                          SP__MAX_OVERRIDE);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return sp_err_set(err, SP_EINVAL, "presign: %s has a control character", what);
    if (!sp_utf8_valid(s, n))
        return sp_err_set(err, SP_EINVAL, "presign: %s is not UTF-8", what);
    return 0;
}

/* Check every field; fill ep and the dates ("20130524T000000Z", "20130524"). */
static int sp__check(const sp_s3_presign *p, sp__endpoint *ep, char amz_date[17],
                     char date[9], sp_err *err)
{
    int rc;
    if ((rc = sp__check_text(p->method, "method", 1, 16, sp__method_char, "A-Z", err)) < 0 ||
        (rc = sp__parse_endpoint(p->endpoint, ep, err)) < 0 ||
        (rc = sp__check_bucket(p->bucket, p->path_style, err)) < 0 ||
        (rc = sp__check_key(p->key, err)) < 0 ||
        (rc = sp__check_text(p->region, "region", 1, SP__MAX_REGION, sp__region_char,
                             "A-Z a-z 0-9 . - _", err)) < 0 ||
        (rc = sp__check_text(p->access_key, "access_key", 1, SP__MAX_ACCESS_KEY,
                             sp__access_key_char, "printable ASCII but '/'", err)) < 0 ||
        (rc = sp__check_text(p->secret_key, "secret_key", 1, SP__MAX_SECRET, NULL, "",
                             err)) < 0 ||
        (sp__given(p->session_token) &&
         (rc = sp__check_text(p->session_token, "session_token", 1, SP__MAX_TEXT, sp__token_char,
                              "printable ASCII", err)) < 0) ||
        (rc = sp__check_override(p->content_disposition, "content_disposition", p->method,
                                 err)) < 0 ||
        (rc = sp__check_override(p->content_type, "content_type", p->method, err)) < 0)
        return rc;
    if (!p->path_style && ep->is_ip)
        return sp_err_set(err, SP_EINVAL, "presign: virtual-host style needs a host name in "
                                          "endpoint, not an IP address (use path_style)");
    if (p->expires_s < 1 || p->expires_s > SP__MAX_EXPIRES)
        return sp_err_set(err, SP_EINVAL, "presign: expires_s is %" PRId64 ", not 1..%d (7 days)",
                          p->expires_s, SP__MAX_EXPIRES);
    struct tm tm;
    if (p->now < 0 || gmtime_r(&p->now, &tm) == NULL || tm.tm_year + 1900 > 9999)
        return sp_err_set(err, SP_EINVAL, "presign: now (%lld) is not in the years 1970-9999",
                          (long long)p->now);
    strftime(amz_date, 17, "%Y%m%dT%H%M%SZ", &tm);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    return 0;
}

/* ---- HMAC-SHA256 (libcrypto; the HMAC fetched by sha256.c) ------------------------ */

/* Report libcrypto's failure: every queued error is taken off this thread's queue (the
 * first is the root cause); SP_ENOMEM when one of them says so, SP_ECRYPTO otherwise. */
static int sp__crypto_failed(const char *what, sp_err *err)
{
    unsigned long first = 0, e;
    bool nomem = false;
    while ((e = ERR_get_error()) != 0) {
        if (first == 0)
            first = e;
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            nomem = true;
    }
    int code = nomem ? SP_ENOMEM : SP_ECRYPTO;
    if (first == 0)
        return sp_err_set(err, code, "presign: %s: %s", what, sp_strerror(code));
    char why[256];
    ERR_error_string_n(first, why, sizeof why);
    return sp_err_set(err, code, "presign: %s: %s (libcrypto: %s)", what, sp_strerror(code), why);
}

/* out = HMAC-SHA256(key, data), with ctx (an HMAC context) re-keyed for it. */
static int sp__hmac_sha256(EVP_MAC_CTX *ctx, const unsigned char *key, size_t klen,
                           const char *data, unsigned char out[32], sp_err *err)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t n = 0;
    if (EVP_MAC_init(ctx, key, klen, params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)data, strlen(data)) != 1 ||
        EVP_MAC_final(ctx, out, &n, 32) != 1 || n != 32)
        return sp__crypto_failed("HMAC-SHA256", err);
    return 0;
}

/* The signature: hex HMAC of the string to sign under the signing key, which is
 * HMAC("AWS4" + secret, date) -> region -> "s3" -> "aws4_request". */
static int sp__signature(const char *secret, const char *date, const char *region,
                         const char *to_sign, char hex[65], sp_err *err)
{
    EVP_MAC *mac = sp__hmac();
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    if (ctx == NULL)
        return sp__crypto_failed(mac ? "HMAC context" : "fetching HMAC", err);
    unsigned char k0[4 + SP__MAX_SECRET], k[32], sig[32];
    size_t slen = strlen(secret);
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen);
    int rc = sp__hmac_sha256(ctx, k0, 4 + slen, date, k, err);
    if (rc == 0)
        rc = sp__hmac_sha256(ctx, k, 32, region, k, err);
    if (rc == 0)
        rc = sp__hmac_sha256(ctx, k, 32, "s3", k, err);
    if (rc == 0)
        rc = sp__hmac_sha256(ctx, k, 32, "aws4_request", k, err);
    if (rc == 0)
        rc = sp__hmac_sha256(ctx, k, 32, to_sign, sig, err);
    EVP_MAC_CTX_free(ctx);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(k, sizeof k);
    if (rc < 0)
        return rc;
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[sig[i] >> 4];
        hex[2 * i + 1] = digits[sig[i] & 15];
    }
    hex[64] = '\0';
    return 0;
}

/* ---- the URL ----------------------------------------------------------------------- */

typedef struct sp__param {
    const char *name; /* unreserved characters only: encoded, it is itself */
    const char *value;
} sp__param;

static int sp__param_cmp(const void *a, const void *b)
{
    return strcmp(((const sp__param *)a)->name, ((const sp__param *)b)->name);
}

/* The canonical query string into q: name=value pairs, values encoded, sorted by
 * name (which is the order of the encoded names: they need no encoding). */
static int sp__canonical_query(const sp_s3_presign *p, const char *credential,
                               const char *amz_date, const char *expires, sp_buf *q)
{
    sp__param ps[8];
    size_t n = 0;
    ps[n++] = (sp__param){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    ps[n++] = (sp__param){"X-Amz-Credential", credential};
    ps[n++] = (sp__param){"X-Amz-Date", amz_date};
    ps[n++] = (sp__param){"X-Amz-Expires", expires};
    ps[n++] = (sp__param){"X-Amz-SignedHeaders", "host"};
    if (sp__given(p->session_token))
        ps[n++] = (sp__param){"X-Amz-Security-Token", p->session_token};
    if (sp__given(p->content_disposition))
        ps[n++] = (sp__param){"response-content-disposition", p->content_disposition};
    if (sp__given(p->content_type))
        ps[n++] = (sp__param){"response-content-type", p->content_type};
    qsort(ps, n, sizeof ps[0], sp__param_cmp);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if ((i > 0 && (rc = sp_buf_addc(q, '&')) < 0) || (rc = sp_buf_adds(q, ps[i].name)) < 0 ||
            (rc = sp_buf_addc(q, '=')) < 0)
            break;
        rc = sp__buf_add_encoded(q, ps[i].value, false);
    }
    return rc;
}

static int sp__too_big(int rc, const char *what, sp_err *err)
{
    if (rc == SP_ENOMEM)
        return sp_err_set(err, rc, "presign: out of memory building the %s", what);
    return sp_err_set(err, rc, "presign: the %s is longer than %d bytes", what, SP__MAX_TEXT);
}

int sp_s3_presign_url(const sp_s3_presign *p, char *out, size_t cap, sp_err *err)
{
    if (out != NULL && cap > 0)
        out[0] = '\0';
    if (p == NULL || out == NULL)
        return sp_err_set(err, SP_EINVAL, "presign: no %s", p == NULL ? "request" : "output");
    sp__endpoint ep;
    char amz_date[17], date[9];
    int rc = sp__check(p, &ep, amz_date, date, err);
    if (rc < 0)
        return rc;

    /* Host, path, credential scope. */
    char host[SP__MAX_HOST + 256 + 16];
    snprintf(host, sizeof host, "%s%s%s%s", p->path_style ? "" : p->bucket,
             p->path_style ? "" : ".", ep.host, ep.port);
    char scope[64 + SP__MAX_REGION], credential[SP__MAX_ACCESS_KEY + sizeof scope + 1];
    snprintf(scope, sizeof scope, "%s/%s/s3/aws4_request", date, p->region);
    snprintf(credential, sizeof credential, "%s/%s", p->access_key, scope);
    char expires[24];
    snprintf(expires, sizeof expires, "%" PRId64, p->expires_s);

    sp_buf path, query, creq, url;
    sp_buf_init(&path, SP__MAX_TEXT);
    sp_buf_init(&query, SP__MAX_TEXT);
    sp_buf_init(&creq, SP__MAX_TEXT);
    sp_buf_init(&url, cap == 0 ? 0 : cap - 1 < SP__MAX_TEXT ? cap - 1 : SP__MAX_TEXT);
    if ((rc = sp_buf_addc(&path, '/')) < 0 ||
        (p->path_style && ((rc = sp__buf_add_encoded(&path, p->bucket, false)) < 0 ||
                           (rc = sp_buf_addc(&path, '/')) < 0)) ||
        (rc = sp__buf_add_encoded(&path, p->key, true)) < 0 ||
        (rc = sp__canonical_query(p, credential, amz_date, expires, &query)) < 0) {
        sp__too_big(rc, "URL", err);
        goto done;
    }

    /* The canonical request: the host is the only signed header, the payload unsigned. */
    rc = sp_buf_addf(&creq, "%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", p->method,
                     sp_buf_cstr(&path), sp_buf_cstr(&query), host);
    if (rc < 0) {
        sp__too_big(rc, "canonical request", err);
        goto done;
    }
    char creq_hash[65], to_sign[128 + sizeof scope], sig[65];
    if ((rc = sp_sha256_hex_of(creq.data, creq.len, creq_hash, err)) < 0) {
        sp_err_prefix(err, "presign");
        goto done;
    }
    snprintf(to_sign, sizeof to_sign, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, scope, creq_hash);
    if ((rc = sp__signature(p->secret_key, date, p->region, to_sign, sig, err)) < 0)
        goto done;

    rc = sp_buf_addf(&url, "%s://%s%s?%s&X-Amz-Signature=%s", ep.https ? "https" : "http", host,
                     sp_buf_cstr(&path), sp_buf_cstr(&query), sig);
    if (rc == SP_ETOOBIG && url.max < SP__MAX_TEXT) {
        sp_err_set(err, rc, "presign: the URL does not fit in %zu bytes", cap);
        goto done;
    } else if (rc < 0) {
        sp__too_big(rc, "URL", err);
        goto done;
    }
    memcpy(out, url.data, url.len + 1);
done:
    sp_buf_free(&path);
    sp_buf_free(&query);
    sp_buf_free(&creq);
    sp_buf_free(&url);
    return rc;
}

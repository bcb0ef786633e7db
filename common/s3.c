/* s3.c - a client for S3-compatible object stores (see s3.h).
 *
 * libcurl 7.88 signs with CURLOPT_AWS_SIGV4 but needs help to sign as S3 checks:
 * it never sends x-amz-content-sha256 (so every request sets it: the body's SHA-256
 * for bodies in memory, UNSIGNED-PAYLOAD for streamed ones), it signs the query string
 * as given (so callers pass it canonical: sorted, every parameter with '=', encoded
 * with uppercase %XX), and it signs every header set with CURLOPT_HTTPHEADER (so none
 * is a removal entry like "Expect:"; the 100-continue wait is shortened instead). */
#include "s3.h"
#include "s3_call.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "s3sign.h"
#include "s3xml.h"
#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/sha256.h"
#include "spool/util.h"

/* Idle easy handles kept for reuse (each keeps its connection open). */
#define SP__S3_POOL 16
#define SP__S3_BACKOFF_CAP_MS 3000
/* A transfer that moves less than 1 byte a second for this long has stalled. */
#define SP__S3_STALL_S 60L

struct sp_s3 {
    char scheme[8];        /* "http" or "https" */
    char host[512];        /* host[:port] of the endpoint (brackets kept for IPv6) */
    char base[1024];       /* the URL every key is appended to, ending in '/' */
    char bucket[64];
    char sigv4[96];        /* "aws:amz:REGION:s3" */
    char access_key[128];
    char secret_key[256];
    char token_header[4096]; /* "x-amz-security-token: ..." or "" */
    char name[1200];
    char endpoint[600];    /* as configured (or AWS's), for presigned URLs */
    char region[64];
    bool path_style;
    int attempts;
    int64_t backoff_ms;
    pthread_mutex_t mu;
    CURL *pool[SP__S3_POOL];
    int npool;
};

static pthread_once_t sp__curl_once = PTHREAD_ONCE_INIT;

static void sp__curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

int sp__s3_encode(sp_buf *b, const char *s, bool keep_slash)
{
    size_t cap = 3 * strlen(s) + 1;
    char *e = sp_malloc(cap);
    int rc = e ? sp_s3_uri_encode(s, keep_slash, e, cap, NULL) : SP_ENOMEM;
    if (rc == 0)
        rc = sp_buf_adds(b, e);
    sp_free(e);
    return rc;
}

sp_s3 *sp_s3_new(const sp_s3_config *c, sp_err *err)
{
    pthread_once(&sp__curl_once, sp__curl_init);
    const char *region = c->region && c->region[0] ? c->region : "us-east-1";
    if (c->bucket == NULL || c->bucket[0] == '\0' || strlen(c->bucket) > 63) {
        sp_err_set(err, SP_EINVAL, "bad bucket name");
        return NULL;
    }
    if (c->access_key == NULL || c->access_key[0] == '\0' || c->secret_key == NULL ||
        c->secret_key[0] == '\0') {
        sp_err_set(err, SP_EINVAL, "no credentials for the object store: set "
                                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
        return NULL;
    }
    sp_s3 *s = sp_calloc(1, sizeof *s);
    if (s == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    char endpoint[600];
    if (c->endpoint && c->endpoint[0])
        snprintf(endpoint, sizeof endpoint, "%s", c->endpoint);
    else
        snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", region);
    const char *rest = NULL;
    if (strncmp(endpoint, "http://", 7) == 0) {
        strcpy(s->scheme, "http");
        rest = endpoint + 7;
    } else if (strncmp(endpoint, "https://", 8) == 0) {
        strcpy(s->scheme, "https");
        rest = endpoint + 8;
    }
    size_t hl = rest ? strcspn(rest, "/?#") : 0;
    bool bad = rest == NULL || hl == 0 || hl >= sizeof s->host || strchr(rest, '@') ||
               (rest[hl] == '/' && rest[hl + 1] != '\0') || rest[hl] == '?' || rest[hl] == '#';
    if (bad) {
        sp_err_set(err, SP_EINVAL, "bad object store endpoint '%s': want http(s)://host[:port]",
                   endpoint);
        sp_free(s);
        return NULL;
    }
    memcpy(s->host, rest, hl);
    s->host[hl] = '\0';
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    snprintf(s->region, sizeof s->region, "%s", region);
    s->path_style = c->path_style;
    snprintf(s->bucket, sizeof s->bucket, "%s", c->bucket);
    int n;
    if (c->path_style)
        n = snprintf(s->base, sizeof s->base, "%s://%s/%s/", s->scheme, s->host, s->bucket);
    else
        n = snprintf(s->base, sizeof s->base, "%s://%s.%s/", s->scheme, s->bucket, s->host);
    int m = snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", region);
    int k1 = snprintf(s->access_key, sizeof s->access_key, "%s", c->access_key);
    int k2 = snprintf(s->secret_key, sizeof s->secret_key, "%s", c->secret_key);
    int k3 = c->session_token && c->session_token[0]
                 ? snprintf(s->token_header, sizeof s->token_header,
                            "x-amz-security-token: %s", c->session_token)
                 : 0;
    if (n < 0 || (size_t)n >= sizeof s->base || m < 0 || (size_t)m >= sizeof s->sigv4 ||
        k1 < 0 || (size_t)k1 >= sizeof s->access_key || k2 < 0 ||
        (size_t)k2 >= sizeof s->secret_key || k3 < 0 || (size_t)k3 >= sizeof s->token_header) {
        sp_err_set(err, SP_EINVAL, "object store settings too long");
        sp_free(s);
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "s3://%s at %s://%s", s->bucket, s->scheme, s->host);
    s->attempts = c->attempts > 0 ? c->attempts : 5;
    s->backoff_ms = c->backoff_ms > 0 ? c->backoff_ms : 100;
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

void sp_s3_free(sp_s3 *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->mu);
    sp_free(s);
}

const char *sp_s3_name(const sp_s3 *s)
{
    return s->name;
}

static CURL *sp__handle_get(sp_s3 *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->npool > 0)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->mu);
    return h ? h : curl_easy_init();
}

static void sp__handle_put(sp_s3 *s, CURL *h)
{
    curl_easy_reset(h); /* keeps the connection and the DNS cache */
    pthread_mutex_lock(&s->mu);
    if (s->npool < SP__S3_POOL) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one request --------------------------------------------------------------- */


static size_t sp__read_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
    sp__call *c = ud;
    size_t want = size * nmemb;
    int64_t left = c->len - c->sent;
    if ((int64_t)want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (c->fd < 0) {
        memcpy(buf, (const char *)c->data + c->sent, want);
    } else {
        ssize_t k;
        do
            k = pread(c->fd, buf, want, c->off + c->sent);
        while (k < 0 && errno == EINTR);
        if (k <= 0)
            return CURL_READFUNC_ABORT;
        want = (size_t)k;
    }
    c->sent += (int64_t)want;
    return want;
}

static size_t sp__write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    sp__call *c = ud;
    size_t n = size * nmemb;
    if (c->status == 0 || c->status >= 300) /* an error reply (or a redirect): keep some */
        return sp_buf_add(&c->errbody, data, n) == 0 ? n : 0;
    if (c->out)
        return sp_buf_add(c->out, data, n) == 0 ? n : 0;
    if (c->dst) {
        if (n > c->dst_cap - c->got) {
            if (c->clip) { /* a range from 0 answered whole: its start is what was asked */
                memcpy((char *)c->dst + c->got, data, c->dst_cap - c->got);
                c->got = c->dst_cap;
                c->clipped = true;
                return 0;
            }
            c->sink_rc = SP_EIO;
            return 0; /* the store sent more than the range asked for */
        }
        memcpy((char *)c->dst + c->got, data, n);
        c->got += n;
        return n;
    }
    if (c->dst_fd >= 0) {
        if (c->max_bytes > 0 && (int64_t)(c->got + n) > c->max_bytes) {
            c->sink_rc = SP_ETOOBIG;
            return 0;
        }
        const char *p = data;
        size_t left = n;
        while (left > 0) {
            ssize_t k = write(c->dst_fd, p, left);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0) {
                c->sink_rc = SP_EIO;
                return 0;
            }
            p += k;
            left -= (size_t)k;
        }
        c->got += n;
        return n;
    }
    return n;
}

static void sp__hdr_value(const char *line, size_t n, size_t name_len, char *out, size_t cap)
{
    const char *v = line + name_len;
    const char *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t k = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, k);
    out[k] = '\0';
}

static size_t sp__header_cb(char *line, size_t size, size_t nmemb, void *ud)
{
    sp__call *c = ud;
    size_t n = size * nmemb;
    char v[256];
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue, say): what came before is not it */
        const char *sp = memchr(line, ' ', n);
        c->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        c->etag[0] = '\0';
        c->length = -1;
    } else if (n > 5 && strncasecmp(line, "ETag:", 5) == 0) {
        sp__hdr_value(line, n, 5, c->etag, sizeof c->etag);
    } else if (n > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
        sp__hdr_value(line, n, 15, v, sizeof v);
        c->length = strtoll(v, NULL, 10);
    } else if (n > 5 && strncasecmp(line, "Date:", 5) == 0) {
        sp__hdr_value(line, n, 5, v, sizeof v);
        time_t t = curl_getdate(v, NULL);
        c->date_ms = t > 0 ? (int64_t)t * 1000 : -1;
    } else if (n > 20 && strncasecmp(line, "x-amz-bucket-region:", 20) == 0) {
        sp__hdr_value(line, n, 20, c->region, sizeof c->region);
    }
    return n;
}

static bool sp__curl_transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* The S3 error code of an error reply ("" when it had none). */
static void sp__error_of(sp__call *c, sp_s3xml_error *e)
{
    memset(e, 0, sizeof *e);
    if (c->errbody.len > 0)
        (void)sp_s3xml_error_parse(c->errbody.data, c->errbody.len, e, NULL);
}

static bool sp__status_transient(long status, const char *code)
{
    return status == 500 || status == 502 || status == 503 || status == 504 || status == 429 ||
           strcmp(code, "SlowDown") == 0 || strcmp(code, "RequestTimeout") == 0 ||
           strcmp(code, "InternalError") == 0;
}

/* The message for a reply that failed for good: the fix, where there is one. */
static int sp__refused(sp_s3 *s, sp__call *c, const sp_s3xml_error *e, sp_err *err)
{
    const char *code = e->code;
    const char *what = c->key ? c->key : "the bucket";
    if (strcmp(code, "NoSuchKey") == 0 || (c->status == 404 && c->key && code[0] == '\0'))
        return sp_err_set(err, SP_ENOTFOUND, "no object %s in %s", what, s->name);
    if (strcmp(code, "NoSuchUpload") == 0)
        return sp_err_set(err, SP_ENOTFOUND, "the multipart upload of %s is gone", what);
    if (strcmp(code, "NoSuchBucket") == 0 || (c->status == 404 && c->key == NULL))
        return sp_err_set(err, SP_EIO, "bucket %s does not exist (%s)", s->bucket, s->name);
    if (strcmp(code, "InvalidAccessKeyId") == 0)
        return sp_err_set(err, SP_EIO, "%s does not know access key %.32s (AWS_ACCESS_KEY_ID)",
                          s->name, s->access_key);
    if (strcmp(code, "SignatureDoesNotMatch") == 0)
        return sp_err_set(err, SP_EIO, "%s refused the request's signature: check "
                                       "AWS_SECRET_ACCESS_KEY (and SPOOL_S3_REGION)",
                          s->name);
    if (strcmp(code, "RequestTimeTooSkewed") == 0)
        return sp_err_set(err, SP_EIO, "this host's clock and %s's differ by more than 15 "
                                       "minutes (RequestTimeTooSkewed): set the clock (NTP)",
                          s->name);
    if (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "InvalidToken") == 0)
        return sp_err_set(err, SP_EIO, "%s refused AWS_SESSION_TOKEN (%s): renew it", s->name,
                          code);
    const char *region = e->region[0] ? e->region : c->region;
    if (c->status == 301 || strcmp(code, "PermanentRedirect") == 0 ||
        strcmp(code, "AuthorizationHeaderMalformed") == 0) {
        if (region[0])
            return sp_err_set(err, SP_EIO, "bucket %s is in region %s: set SPOOL_S3_REGION=%s",
                              s->bucket, region, region);
        return sp_err_set(err, SP_EIO, "bucket %s is in another region than %s (HTTP %ld %s)",
                          s->bucket, s->sigv4 + 8, c->status, code);
    }
    if (strcmp(code, "AccessDenied") == 0 || c->status == 403)
        return sp_err_set(err, SP_EIO, "%s denied %s %s (%s): check the credentials and the "
                                       "bucket policy",
                          s->name, c->method, what, code[0] ? code : "HTTP 403");
    if (strcmp(code, "InvalidRange") == 0 || c->status == 416)
        return sp_err_set(err, SP_EINVAL, "range outside %s", what);
    if (strcmp(code, "PreconditionFailed") == 0 || c->status == 412)
        return sp_err_set(err, SP_ECONFLICT, "%s changed while it was read", what);
    if (strcmp(code, "EntityTooLarge") == 0)
        return sp_err_set(err, SP_ETOOBIG, "%s refused %s: too large", s->name, what);
    return sp_err_set(err, SP_EIO, "%s answered %s %s with HTTP %ld%s%s%s%.120s", s->name,
                      c->method, what, c->status, code[0] ? " " : "", code,
                      e->message[0] ? ": " : "", e->message);
}

static void sp__backoff(sp_s3 *s, int attempt)
{
    int64_t cap = s->backoff_ms << (attempt < 10 ? attempt : 10);
    if (cap > SP__S3_BACKOFF_CAP_MS)
        cap = SP__S3_BACKOFF_CAP_MS;
    sp_sleep_ms(cap / 2 + (int64_t)sp_random_below((uint64_t)cap / 2 + 1), NULL);
}

/* Send one call, with the retries. 0 for a 2xx reply. */
int sp__s3_do(sp_s3 *s, sp__call *c, sp_err *err)
{
    sp_buf url;
    sp_buf_init(&url, 8192);
    int rc = sp_buf_adds(&url, s->base);
    if (rc == 0 && c->key)
        rc = sp__s3_encode(&url, c->key, true);
    if (rc == 0 && c->query && c->query[0])
        rc = sp_buf_addf(&url, "?%s", c->query);
    char hash[65] = "UNSIGNED-PAYLOAD";
    if (rc == 0 && c->has_body && c->fd < 0)
        rc = sp_sha256_hex_of(c->data ? c->data : "", (size_t)c->len, hash, err);
    else if (rc == 0 && !c->has_body)
        rc = sp_sha256_hex_of("", 0, hash, err);
    if (rc < 0) {
        sp_buf_free(&url);
        return rc == SP_ENOMEM ? sp_err_set(err, rc, "out of memory") : rc;
    }
    char h_hash[96], h_type[160], h_md5[64], h_range[96], h_match[SP_S3_ETAG_MAX + 16];
    struct curl_slist *hdrs = NULL, *t;
    snprintf(h_hash, sizeof h_hash, "x-amz-content-sha256: %s", hash);
    bool ok = (t = curl_slist_append(hdrs, h_hash)) != NULL;
    hdrs = ok ? t : hdrs;
#define SP__ADD(cond, buf, ...)                                                              \
    if (ok && (cond)) {                                                                      \
        snprintf(buf, sizeof buf, __VA_ARGS__);                                              \
        ok = (t = curl_slist_append(hdrs, buf)) != NULL;                                     \
        hdrs = ok ? t : hdrs;                                                                \
    }
    SP__ADD(c->ctype, h_type, "Content-Type: %s", c->ctype)
    SP__ADD(c->md5, h_md5, "Content-MD5: %s", c->md5)
    SP__ADD(c->range, h_range, "Range: %s", c->range)
    SP__ADD(c->if_match, h_match, "If-Match: %s", c->if_match)
#undef SP__ADD
    if (ok && s->token_header[0])
        ok = (t = curl_slist_append(hdrs, s->token_header)) != NULL, hdrs = ok ? t : hdrs;
    if (!ok) {
        curl_slist_free_all(hdrs);
        sp_buf_free(&url);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp_buf_init(&c->errbody, 64 * 1024);
    rc = SP_EIO;
    CURLcode cc = CURLE_OK;
    sp_s3xml_error e;
    memset(&e, 0, sizeof e);
    int attempt = 0;
    for (; attempt < s->attempts; attempt++) {
        if (attempt > 0)
            sp__backoff(s, attempt - 1);
        CURL *h = sp__handle_get(s);
        if (h == NULL) {
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            break;
        }
        c->status = 0;
        c->got = 0;
        c->sent = 0;
        c->length = -1;
        c->date_ms = -1;
        c->etag[0] = c->region[0] = '\0';
        c->sink_rc = 0;
        c->clipped = false;
        sp_buf_reset(&c->errbody);
        if (c->out)
            sp_buf_reset(c->out);
        if (c->dst_fd >= 0 && attempt > 0 &&
            (ftruncate(c->dst_fd, 0) < 0 || lseek(c->dst_fd, 0, SEEK_SET) < 0)) {
            sp__handle_put(s, h);
            rc = sp_err_set(err, SP_EIO, "cannot restart the download: %s", strerror(errno));
            break;
        }
        curl_easy_setopt(h, CURLOPT_URL, sp_buf_cstr(&url));
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, s->access_key);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret_key);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, SP__S3_STALL_S);
        curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 200L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sp__write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, sp__header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
        if (strcmp(c->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(c->method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->len);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, sp__read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, c);
        } else if (strcmp(c->method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, sp__read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, c);
        } else if (strcmp(c->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
        }
        cc = curl_easy_perform(h);
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status > 0)
            c->status = status;
        sp__handle_put(s, h);
        if (c->sink_rc == SP_ETOOBIG) {
            rc = sp_err_set(err, SP_ETOOBIG, "%s is larger than the limit of %lld bytes",
                            c->key, (long long)c->max_bytes);
            break;
        }
        if (c->sink_rc == SP_EIO) {
            rc = c->dst_fd >= 0 ? sp_err_set(err, SP_EIO, "cannot write the download of %s: %s",
                                              c->key, strerror(errno))
                                : sp_err_set(err, SP_EIO, "%s sent more of %s than was asked",
                                             s->name, c->key);
            break;
        }
        if (cc != CURLE_OK && cc != CURLE_WRITE_ERROR) {
            rc = sp_err_set(err, SP_EIO, "%s unreachable: %s", s->name, curl_easy_strerror(cc));
            if (sp__curl_transient(cc))
                continue;
            break;
        }
        if (c->status >= 200 && c->status < 300 && (cc == CURLE_OK || c->clipped)) {
            rc = 0;
            break;
        }
        sp__error_of(c, &e);
        if (sp__status_transient(c->status, e.code) || cc == CURLE_WRITE_ERROR) {
            rc = sp_err_set(err, SP_EIO, "%s is failing: HTTP %ld %s", s->name, c->status,
                            e.code[0] ? e.code : "");
            continue;
        }
        rc = sp__refused(s, c, &e, err);
        break;
    }
    if (rc == SP_EIO && attempt >= s->attempts && err)
        sp_err_prefix(err, "after %d tries", s->attempts);
    sp_buf_free(&c->errbody);
    curl_slist_free_all(hdrs);
    sp_buf_free(&url);
    return rc;
}

void sp__s3_call_init(sp__call *c, const char *method, const char *key)
{
    memset(c, 0, sizeof *c);
    c->method = method;
    c->key = key;
    c->fd = -1;
    c->dst_fd = -1;
}

/* ---- the operations ------------------------------------------------------------ */

int sp_s3_check(sp_s3 *s, sp_err *err)
{
    /* A list of one key rather than HEAD: a refusal then comes with its reason (a HEAD
     * answer has no body), and listing is what garbage collection needs anyway. */
    sp_buf out;
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    sp__call c;
    sp__s3_call_init(&c, "GET", NULL);
    c.query = "list-type=2&max-keys=1";
    c.out = &out;
    int rc = sp__s3_do(s, &c, err);
    sp_buf_free(&out);
    return rc;
}

int sp_s3_head(sp_s3 *s, const char *key, int64_t *size, char *etag, sp_err *err)
{
    sp__call c;
    sp__s3_call_init(&c, "HEAD", key);
    int rc = sp__s3_do(s, &c, err);
    if (rc == 0) {
        *size = c.length;
        if (etag)
            snprintf(etag, SP_S3_ETAG_MAX, "%s", c.etag);
    }
    return rc;
}

int sp_s3_put(sp_s3 *s, const char *key, const char *ctype, const void *data, size_t n,
              sp_err *err)
{
    sp__call c;
    sp__s3_call_init(&c, "PUT", key);
    c.ctype = ctype;
    c.data = data;
    c.len = (int64_t)n;
    c.has_body = true;
    return sp__s3_do(s, &c, err);
}

int sp_s3_put_file(sp_s3 *s, const char *key, const char *ctype, int fd, int64_t off,
                   int64_t len, sp_err *err)
{
    sp__call c;
    sp__s3_call_init(&c, "PUT", key);
    c.ctype = ctype;
    c.fd = fd;
    c.off = off;
    c.len = len;
    c.has_body = true;
    return sp__s3_do(s, &c, err);
}

int sp_s3_get_range(sp_s3 *s, const char *key, const char *if_match, int64_t off, size_t n,
                    void *buf, size_t *got, sp_err *err)
{
    *got = 0;
    if (n == 0)
        return 0;
    char range[80];
    snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)off,
             (long long)(off + (int64_t)n - 1));
    sp__call c;
    sp__s3_call_init(&c, "GET", key);
    c.range = range;
    c.if_match = if_match && if_match[0] ? if_match : NULL;
    c.dst = buf;
    c.dst_cap = n;
    c.clip = off == 0; /* some stores answer bytes=0-0 with the whole object */
    int rc = sp__s3_do(s, &c, err);
    if (rc == 0 && c.status != 206 && off > 0)
        return sp_err_set(err, SP_EIO, "%s ignored the range asked of %s", sp_s3_name(s), key);
    if (rc == 0)
        *got = c.got;
    return rc;
}

int sp_s3_get_file(sp_s3 *s, const char *key, int fd, int64_t max_bytes, int64_t *size,
                   sp_err *err)
{
    sp__call c;
    sp__s3_call_init(&c, "GET", key);
    c.dst_fd = fd;
    c.max_bytes = max_bytes;
    int rc = sp__s3_do(s, &c, err);
    if (rc == 0)
        *size = (int64_t)c.got;
    return rc;
}

int sp_s3_delete(sp_s3 *s, const char *key, sp_err *err)
{
    sp__call c;
    sp__s3_call_init(&c, "DELETE", key);
    int rc = sp__s3_do(s, &c, err);
    return rc == SP_ENOTFOUND ? 0 : rc;
}

int sp_s3_presign_get(sp_s3 *s, const char *key, const char *endpoint, int64_t ttl_s,
                      const char *ctype, const char *disposition, char *out, size_t cap,
                      sp_err *err)
{
    sp_s3_presign p = {.method = "GET",
                       .endpoint = endpoint && endpoint[0] ? endpoint : s->endpoint,
                       .path_style = s->path_style,
                       .bucket = s->bucket,
                       .key = key,
                       .region = s->region,
                       .access_key = s->access_key,
                       .secret_key = s->secret_key,
                       .session_token = s->token_header[0] ? s->token_header + 22 : NULL,
                       .expires_s = ttl_s,
                       .now = time(NULL),
                       .content_disposition = disposition,
                       .content_type = ctype};
    return sp_s3_presign_url(&p, out, cap, err);
}

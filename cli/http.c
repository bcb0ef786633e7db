/* http.c - spoolctl's HTTP client over libcurl (see http.h). */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/util.h"

#ifndef SPOOL_VERSION
#define SPOOL_VERSION "0.0.0"
#endif

#define CTL_BODY_MAX ((size_t)64 * 1024 * 1024)
#define CTL_CONNECT_TIMEOUT_MS 10000L

volatile sig_atomic_t ctl_interrupted;

struct ctl_http {
    CURL *curl;
    char *server;
    char *auth; /* "Authorization: Bearer ..." or NULL */
};

/* What the callbacks of one exchange share. */
typedef struct ctl__xfer {
    const ctl_request *rq;
    ctl_response *resp;
    long status;          /* from the last status line seen */
    bool too_big;
    int sink_rc;
    sp_err sink_err;
    int read_errno;
} ctl__xfer;

int ctl_http_global_init(sp_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return sp_err_set(err, SP_ENOMEM, "cannot initialise libcurl");
    return 0;
}

void ctl_http_global_cleanup(void)
{
    curl_global_cleanup();
}

ctl_http *ctl_http_new(const char *server, const char *token, sp_err *err)
{
    ctl_http *h = sp_calloc(1, sizeof *h);
    if (h == NULL)
        goto oom;
    size_t n = strlen(server);
    while (n > 0 && server[n - 1] == '/')
        n--;
    h->server = sp_strndup(server, n);
    h->curl = curl_easy_init();
    if (h->server == NULL || h->curl == NULL)
        goto oom;
    if (token) {
        sp_buf b;
        sp_buf_init(&b, 8192);
        if (sp_buf_addf(&b, "Authorization: Bearer %s", token) < 0) {
            sp_buf_free(&b);
            goto oom;
        }
        h->auth = sp_buf_take(&b);
    }
    return h;
oom:
    ctl_http_free(h);
    sp_err_set(err, SP_ENOMEM, "out of memory");
    return NULL;
}

void ctl_http_free(ctl_http *h)
{
    if (h == NULL)
        return;
    if (h->curl)
        curl_easy_cleanup(h->curl);
    sp_free(h->server);
    sp_free(h->auth);
    sp_free(h);
}

const char *ctl_http_server(const ctl_http *h)
{
    return h->server;
}

void ctl_request_init(ctl_request *rq, const char *method, const char *path)
{
    memset(rq, 0, sizeof *rq);
    rq->method = method;
    rq->path = path;
    rq->upload_fd = -1;
    rq->upload_size = -1;
}

void ctl_response_init(ctl_response *r)
{
    memset(r, 0, sizeof *r);
    sp_buf_init(&r->body, CTL_BODY_MAX);
    r->retry_after_s = -1;
    r->content_length = -1;
}

void ctl_response_free(ctl_response *r)
{
    if (r == NULL)
        return;
    sp_buf_free(&r->body);
}

static void ctl__response_reset(ctl_response *r)
{
    sp_buf_reset(&r->body);
    r->status = 0;
    r->etag[0] = r->location[0] = r->content_type[0] = '\0';
    r->retry_after_s = -1;
    r->content_length = -1;
}

int ctl_url_escape(sp_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = b->len;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rc = sp_buf_addc(b, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = sp_buf_add(b, enc, 3);
        }
        if (rc < 0) {
            b->len = start;
            if (b->data)
                b->data[start] = '\0';
            return rc;
        }
    }
    return 0;
}

/* Copy a header's value (without surrounding blanks) into out. */
static void ctl__header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static bool ctl__header_is(const char *line, size_t n, const char *name, const char **val,
                           size_t *vlen)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return false;
    *val = line + k + 1;
    *vlen = n - k - 1;
    return true;
}

static size_t ctl__on_header(char *line, size_t size, size_t nitems, void *ud)
{
    ctl__xfer *x = ud;
    size_t n = size * nitems;
    ctl_response *r = x->resp;
    const char *v;
    size_t vn;
    char tmp[64];
    if (n > 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* A new answer (e.g. after 100 Continue): forget the previous one's headers. */
        ctl__response_reset(r);
        const char *sp = memchr(line, ' ', n);
        x->status = 0;
        if (sp && (size_t)(sp - line) + 4 <= n) {
            long st = 0;
            for (int i = 1; i <= 3; i++)
                st = st * 10 + (sp[i] >= '0' && sp[i] <= '9' ? sp[i] - '0' : 0);
            x->status = st;
        }
    } else if (ctl__header_is(line, n, "ETag", &v, &vn)) {
        ctl__header_value(v, vn, r->etag, sizeof r->etag);
    } else if (ctl__header_is(line, n, "Location", &v, &vn)) {
        ctl__header_value(v, vn, r->location, sizeof r->location);
    } else if (ctl__header_is(line, n, "Content-Type", &v, &vn)) {
        ctl__header_value(v, vn, r->content_type, sizeof r->content_type);
    } else if (ctl__header_is(line, n, "Retry-After", &v, &vn)) {
        ctl__header_value(v, vn, tmp, sizeof tmp);
        int64_t s;
        if (sp_parse_i64(tmp, 0, 86400, &s) == 0)
            r->retry_after_s = s;
    } else if (ctl__header_is(line, n, "Content-Length", &v, &vn)) {
        ctl__header_value(v, vn, tmp, sizeof tmp);
        int64_t len;
        if (sp_parse_i64(tmp, 0, INT64_MAX, &len) == 0)
            r->content_length = len;
    }
    return n;
}

static size_t ctl__on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    ctl__xfer *x = ud;
    size_t n = size * nmemb;
    if (x->rq->sink && x->status >= 200 && x->status < 300) {
        int rc = x->rq->sink(x->rq->sink_ud, data, n, &x->sink_err);
        if (rc < 0) {
            x->sink_rc = rc;
            return 0;
        }
        return n;
    }
    if (sp_buf_add(&x->resp->body, data, n) < 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

static size_t ctl__on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    ctl__xfer *x = ud;
    for (;;) {
        ssize_t k = read(x->rq->upload_fd, buf, size * nitems);
        if (k >= 0)
            return (size_t)k;
        if (errno == EINTR && !ctl_interrupted)
            continue;
        x->read_errno = errno;
        return CURL_READFUNC_ABORT;
    }
}

static int ctl__on_seek(void *ud, curl_off_t offset, int origin)
{
    ctl__xfer *x = ud;
    if (lseek(x->rq->upload_fd, (off_t)offset, origin) < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    return CURL_SEEKFUNC_OK;
}

static int ctl__on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    ctl__xfer *x = ud;
    if (ctl_interrupted)
        return 1;
    if (x->rq->progress)
        x->rq->progress(x->rq->progress_ud, (int64_t)ulnow, (int64_t)ultotal, (int64_t)dlnow,
                        (int64_t)dltotal);
    return 0;
}

static int ctl__add_header(struct curl_slist **list, sp_buf *tmp, const char *name,
                           const char *value)
{
    sp_buf_reset(tmp);
    if (sp_buf_addf(tmp, "%s: %s", name, value) < 0)
        return SP_ENOMEM;
    struct curl_slist *l = curl_slist_append(*list, sp_buf_cstr(tmp));
    if (l == NULL)
        return SP_ENOMEM;
    *list = l;
    return 0;
}

int ctl_http_do(ctl_http *h, const ctl_request *rq, ctl_response *resp, sp_err *err)
{
    CURL *c = h->curl;
    ctl__xfer x;
    memset(&x, 0, sizeof x);
    x.rq = rq;
    x.resp = resp;
    ctl__response_reset(resp);
    if (ctl_interrupted)
        return sp_err_set(err, SP_ECANCELLED, "interrupted");

    sp_buf url, tmp;
    sp_buf_init(&url, 8192);
    sp_buf_init(&tmp, 8192);
    struct curl_slist *headers = NULL;
    int rc = 0;
    if (sp_buf_adds(&url, h->server) < 0 || sp_buf_adds(&url, rq->path) < 0) {
        rc = sp_err_set(err, SP_EINVAL, "the request URL is too long");
        goto out;
    }
    curl_easy_reset(c); /* keeps the connection cache */
    /* PATCH sends its body as POST does */
    bool post = strcmp(rq->method, "POST") == 0 || strcmp(rq->method, "PATCH") == 0;
    bool ok = true;
    if (h->auth)
        ok = (headers = curl_slist_append(headers, h->auth)) != NULL;
    ok = ok && ctl__add_header(&headers, &tmp, "Accept",
                               rq->accept ? rq->accept : "application/json") == 0;
    if (ok && rq->last_event_id && rq->last_event_id[0])
        ok = ctl__add_header(&headers, &tmp, "Last-Event-ID", rq->last_event_id) == 0;
    if (ok && rq->content_type)
        ok = ctl__add_header(&headers, &tmp, "Content-Type", rq->content_type) == 0;
    if (ok && rq->if_none_match && rq->if_none_match[0])
        ok = ctl__add_header(&headers, &tmp, "If-None-Match", rq->if_none_match) == 0;
    if (ok && rq->idempotency_key)
        ok = ctl__add_header(&headers, &tmp, "Idempotency-Key", rq->idempotency_key) == 0;
    if (ok && post && rq->upload_fd >= 0 && rq->upload_size < 0)
        ok = ctl__add_header(&headers, &tmp, "Transfer-Encoding", "chunked") == 0;
    if (!ok) {
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
        goto out;
    }

    char errbuf[CURL_ERROR_SIZE];
    errbuf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, sp_buf_cstr(&url));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "spoolctl/" SPOOL_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CTL_CONNECT_TIMEOUT_MS);
    if (rq->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
    if (rq->stall_ms > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)((rq->stall_ms + 999) / 1000));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, ctl__on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ctl__on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, ctl__on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (strcmp(rq->method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        if (rq->upload_fd >= 0) {
            curl_easy_setopt(c, CURLOPT_READFUNCTION, ctl__on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &x);
            curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, ctl__on_seek);
            curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->upload_size);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->data ? rq->data : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                             (curl_off_t)(rq->data ? rq->data_len : 0));
        }
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    }

    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK) {
        long st = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
        resp->status = st;
    } else if (x.sink_rc < 0) {
        rc = x.sink_rc;
        if (err)
            *err = x.sink_err;
    } else if (x.too_big) {
        rc = sp_err_set(err, SP_ETOOBIG, "the answer from %s is larger than %zu bytes",
                        h->server, CTL_BODY_MAX);
    } else if (x.read_errno != 0 || cc == CURLE_READ_ERROR) {
        rc = sp_err_set(err, SP_EIO, "reading the upload failed: %s",
                        x.read_errno ? strerror(x.read_errno) : curl_easy_strerror(cc));
    } else if (cc == CURLE_ABORTED_BY_CALLBACK || ctl_interrupted) {
        rc = sp_err_set(err, SP_ECANCELLED, "interrupted");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc = sp_err_set(err, SP_ETIMEDOUT, "%s: %s", h->server,
                        errbuf[0] ? errbuf : curl_easy_strerror(cc));
    } else {
        rc = sp_err_set(err, SP_EIO, "cannot reach the server at %s: %s", h->server,
                        errbuf[0] ? errbuf : curl_easy_strerror(cc));
    }
out:
    curl_slist_free_all(headers);
    sp_buf_free(&url);
    sp_buf_free(&tmp);
    return rc;
}

/* fetch.c - source_url downloads into the blob store and webhook POSTs with libcurl,
 * through the outbound guard (see fetch.h and outbound.h). */
#include "spool/fetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "spool/outbound.h"
#include "spool/util.h"

static pthread_once_t sp__curl_once = PTHREAD_ONCE_INIT;

static void sp__curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

bool sp_fetch_url_valid(const char *url)
{
    if (url == NULL)
        return false;
    size_t n = strlen(url);
    if (n > 2048)
        return false;
    const char *host;
    if (strncasecmp(url, "http://", 7) == 0)
        host = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        host = url + 8;
    else
        return false;
    if (*host == '\0' || *host == '/' || *host == ':' || *host == '?' || *host == '#')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

typedef struct sp__fetch {
    sp_blob_writer *w;      /* downloads */
    sp_fetch_reply *reply;  /* POSTs */
    bool full;              /* POSTs: reply->body is full, the transfer was stopped */
    const sp_fetch_opts *o;
    int rc;             /* first error seen in a callback */
    sp_err *err;
    sp_outbound_xfer x; /* what the outbound guard saw */
    unsigned answered;  /* x.sockets when the last HTTP status line arrived (0: none) */
} sp__fetch;

static size_t sp__on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sp__fetch *f = ud;
    size_t n = size * nmemb;
    if (sp_blob_write(f->w, ptr, n, f->err) < 0) {
        f->rc = f->err->code;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Notes when a server answered: a status line came over the connection curl opened
 * last (or reused from a hop that had answered). */
static size_t sp__on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sp__fetch *f = ud;
    size_t n = size * nmemb;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0)
        f->answered = f->x.sockets ? f->x.sockets : 1;
    return n;
}

static int sp__on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    sp__fetch *f = ud;
    if (f->o->stop && *f->o->stop) {
        f->rc = SP_ECANCELLED;
        return 1;
    }
    if (f->o->max_bytes > 0 && dltotal > f->o->max_bytes) {
        /* Content-Length says it is too big: stop before downloading it. */
        f->rc = sp_err_set(f->err, SP_ETOOBIG, "larger than the limit of %lld bytes (%lld)",
                           (long long)f->o->max_bytes, (long long)dltotal);
        return 1;
    }
    if (f->o->progress)
        f->o->progress(f->o->ud, (int64_t)dlnow, dltotal > 0 ? (int64_t)dltotal : -1);
    return 0;
}

/* What every transfer sets: no signals, errors read from the answer (not curl's), the
 * user agent, the error text into errbuf, the body to on_body, headers and progress (the
 * cancel check and limits) to f's callbacks. */
static void sp__curl_common(CURL *c, char *errbuf, curl_write_callback on_body, sp__fetch *f)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 0L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "spool/" SPOOL_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sp__on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, f);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, sp__on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, f);
}

/* The uniform error for a destination refused or not reached, with the real cause in
 * the caller's detail (for its log only). */
static int sp__unreachable(const sp__fetch *f, CURLcode cc, const char *errbuf, sp_err *err)
{
    sp_err *d = f->o->detail;
    if (f->x.refused > 0 && cc == CURLE_COULDNT_CONNECT)
        sp_err_set(d, SP_EUNREACHABLE, "refused by the outbound guard: %s (SPOOL_OUTBOUND_ALLOW "
                   "can allow it)", f->x.why);
    else
        sp_err_set(d, SP_EUNREACHABLE, "%s%s%s%s%s", curl_easy_strerror(cc),
                   errbuf[0] ? ": " : "", errbuf, f->x.refused ? "; the guard refused " : "",
                   f->x.refused ? f->x.why : "");
    return sp_outbound_unreachable(err);
}

/* Classify a finished transfer into one of fetch.h's codes. Before a server answered,
 * every network failure is the one uniform SP_EUNREACHABLE, so a job cannot tell an
 * address the guard refused from a closed, filtered or non-HTTP port; once it answered,
 * errors say what happened. */
static int sp__classify(CURLcode cc, long status, const char *url, const char *errbuf,
                        sp__fetch *f, sp_err *err)
{
    if (f->rc == SP_ECANCELLED)
        return sp_err_set(err, SP_ECANCELLED, "fetch of %s cancelled", url);
    if (f->rc == SP_ETOOBIG) {
        char why[sizeof err->msg];
        memcpy(why, err->msg, sizeof why);
        return sp_err_set(err, SP_ETOOBIG, "%s is %s", url, why);
    }
    if (f->rc < 0)
        return f->rc; /* blob store error, already described */
    bool answered = f->answered != 0 && f->answered >= f->x.sockets;
    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return sp_err_set(err, SP_EINVAL, "%s: only http and https URLs can be fetched", url);
    case CURLE_URL_MALFORMAT:
        return sp_err_set(err, SP_EINVAL, "%s is not a valid URL", url);
    case CURLE_TOO_MANY_REDIRECTS:
        return sp_err_set(err, SP_EINVAL, "%s: too many redirects", url);
    case CURLE_FILESIZE_EXCEEDED:
        return sp_err_set(err, SP_ETOOBIG, "%s is larger than the limit of %lld bytes", url,
                          (long long)f->o->max_bytes);
    case CURLE_OPERATION_TIMEDOUT:
        if (!answered)
            return sp__unreachable(f, cc, errbuf, err);
        return sp_err_set(err, SP_ETIMEDOUT, "fetching %s timed out", url);
    default:
        if (!answered)
            return sp__unreachable(f, cc, errbuf, err);
        return sp_err_set(err, SP_EFETCH, "fetching %s failed: %s", url, curl_easy_strerror(cc));
    }
    if (status >= 200 && status < 300)
        return 0;
    if (status == 404 || status == 410)
        return sp_err_set(err, SP_ENOTFOUND, "%s answered HTTP %ld (not found)", url, status);
    /* Retryable, but whether another attempt comes is the job's business (its attempts
     * may be used up), so the message promises none. */
    if (status == 408 || status == 429 || status >= 500)
        return sp_err_set(err, SP_EFETCH, "%s answered HTTP %ld (a temporary error)", url,
                          status);
    return sp_err_set(err, SP_EUNSUPPORTED, "%s answered HTTP %ld", url, status);
}

int sp_fetch_to_blob(sp_blobs *b, const char *job_id, const char *name, const char *url,
                     const sp_fetch_opts *o, int64_t *bytes, char *content_type, sp_err *err)
{
    static const sp_fetch_opts defaults = {.max_redirects = -1};
    if (o == NULL)
        o = &defaults;
    if (!sp_fetch_url_valid(url))
        return sp_err_set(err, SP_EINVAL, "'%.200s' is not an http or https URL", url ? url : "");
    sp_err_clear(o->detail);
    sp_err chk;
    int rc = sp_outbound_check_url(o->outbound, url, &chk);
    if (rc == SP_EUNREACHABLE) {
        sp_err_set(o->detail, rc, "refused before connecting: %s", chk.msg);
        return sp_outbound_unreachable(err);
    }
    if (rc < 0)
        return sp_err_set(err, rc, "'%.200s': %s", url, chk.msg);
    pthread_once(&sp__curl_once, sp__curl_init);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory starting a fetch");
    sp__fetch f = {.o = o, .err = err};
    rc = sp_outbound_curl_setup(&f.x, o->outbound, c, err);
    if (rc == 0)
        rc = sp_blob_create(b, job_id, name, o->max_bytes, &f.w, err);
    if (rc < 0) {
        curl_easy_cleanup(c);
        return rc;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)(o->max_redirects < 0 ? 5 : o->max_redirects));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
                     (long)(o->total_timeout_ms > 0 ? o->total_timeout_ms : 600000));
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, ""); /* gzip/deflate, decoded */
    sp__curl_common(c, errbuf, sp__on_data, &f);
    if (o->max_bytes > 0)
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);

    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    rc = sp__classify(cc, status, url, errbuf, &f, err);
    if (rc == 0 && content_type) {
        char *ct = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(content_type, 128, "%s", ct ? ct : "");
    }
    curl_easy_cleanup(c);
    if (rc < 0) {
        sp_blob_abort(f.w);
        return rc;
    }
    return sp_blob_commit(f.w, true, bytes, err);
}

/* ---- POST (webhooks) ----------------------------------------------------------------- */

static size_t sp__on_reply(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sp__fetch *f = ud;
    size_t n = size * nmemb;
    sp_fetch_reply *r = f->reply;
    size_t room = sizeof r->body - r->body_len;
    size_t take = n < room ? n : room;
    memcpy(r->body + r->body_len, ptr, take);
    r->body_len += take;
    if (take < n || r->body_len == sizeof r->body) {
        f->full = true;
        return take == n ? n : 0; /* stop: the rest is not wanted */
    }
    return n;
}

int sp_fetch_post(const char *url, const char *const *headers, size_t nheaders,
                  const void *body, size_t n, const sp_fetch_opts *o, sp_fetch_reply *reply,
                  sp_err *err)
{
    static const sp_fetch_opts defaults = {.max_redirects = -1};
    if (o == NULL)
        o = &defaults;
    memset(reply, 0, sizeof *reply);
    if (!sp_fetch_url_valid(url))
        return sp_err_set(err, SP_EINVAL, "'%.200s' is not an http or https URL", url ? url : "");
    sp_err_clear(o->detail);
    sp_err chk;
    int rc = sp_outbound_check_url(o->outbound, url, &chk);
    if (rc == SP_EUNREACHABLE) {
        sp_err_set(o->detail, rc, "refused before connecting: %s", chk.msg);
        reply->refused = true;
        return sp_outbound_unreachable(err);
    }
    if (rc < 0)
        return sp_err_set(err, rc, "'%.200s': %s", url, chk.msg);
    pthread_once(&sp__curl_once, sp__curl_init);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    /* No "Expect: 100-continue" wait before a large body: the answer comes after it. */
    for (size_t i = 0; c && i <= nheaders; i++) {
        struct curl_slist *next = curl_slist_append(hl, i < nheaders ? headers[i] : "Expect:");
        if (next == NULL) {
            curl_slist_free_all(hl);
            curl_easy_cleanup(c);
            c = NULL;
            break;
        }
        hl = next;
    }
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory starting a POST");
    sp__fetch f = {.o = o, .err = err, .reply = reply};
    rc = sp_outbound_curl_setup(&f.x, o->outbound, c, err);
    if (rc < 0) {
        curl_slist_free_all(hl);
        curl_easy_cleanup(c);
        return rc;
    }
    int64_t total = o->total_timeout_ms > 0 ? o->total_timeout_ms : 10000;
    int64_t connect = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)n);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect < total ? connect : total));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)total);
    sp__curl_common(c, errbuf, sp__on_reply, &f);

    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (f.rc == SP_ECANCELLED)
        rc = sp_err_set(err, SP_ECANCELLED, "POST to %.200s cancelled", url);
    else if (status > 0 && f.answered != 0)
        rc = 0; /* answered: the status says how it went, whatever happened after it */
    else if (cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT)
        rc = sp_err_set(err, SP_EINVAL, "'%.200s' is not an http or https URL", url);
    else {
        reply->refused = f.x.refused > 0 && f.x.refused == f.x.sockets &&
                         cc == CURLE_COULDNT_CONNECT;
        rc = sp__unreachable(&f, cc == CURLE_OK ? CURLE_RECV_ERROR : cc, errbuf, err);
    }
    if (rc == 0)
        reply->status = status;
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return rc;
}

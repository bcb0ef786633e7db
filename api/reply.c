/* reply.c - answers and the error table (see reply.h). */
#include "reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/util.h"

static const struct {
    int status;
    const char *code;
    int retry_after; /* seconds; 0: no header */
} api__errors[API_E_COUNT] = {
    [API_E_BAD_REQUEST] = {400, "bad_request", 0},
    [API_E_INVALID_JSON] = {400, "invalid_json", 0},
    [API_E_BAD_MULTIPART] = {400, "invalid_multipart", 0},
    [API_E_UNAUTHORIZED] = {401, "unauthorized", 0},
    [API_E_NOT_FOUND] = {404, "not_found", 0},
    [API_E_NO_ROUTE] = {404, "no_such_route", 0},
    [API_E_METHOD] = {405, "method_not_allowed", 0},
    [API_E_ENDED] = {409, "job_ended", 0},
    [API_E_NOT_FAILED] = {409, "job_not_failed", 0},
    [API_E_IDEMPOTENCY] = {409, "idempotency_conflict", 0},
    [API_E_TOO_SLOW] = {408, "request_timeout", 0},
    [API_E_TOO_LARGE] = {413, "payload_too_large", 0},
    [API_E_MEDIA_TYPE] = {415, "unsupported_media_type", 0},
    [API_E_RANGE] = {416, "range_not_satisfiable", 0},
    [API_E_INVALID_FIELD] = {422, "invalid_field", 0},
    [API_E_QUEUE_FULL] = {429, "queue_full", 5},
    [API_E_INTERNAL] = {500, "internal_error", 0},
    [API_E_REDIS] = {503, "redis_unavailable", 2},
    [API_E_STORAGE] = {503, "storage_unavailable", 5},
    [API_E_SHUTTING_DOWN] = {503, "shutting_down", 1},
    [API_E_NOT_READY] = {503, "not_ready", 2},
    [API_E_NO_MEMORY] = {503, "out_of_memory", 5},
    [API_E_NOT_REPLICATED] = {503, "not_replicated", 1},
    [API_E_TOO_MANY_STREAMS] = {503, "too_many_streams", 5},
    [API_E_SCHEDULE_EXISTS] = {409, "schedule_exists", 0},
    [API_E_TOO_MANY_SCHEDULES] = {409, "too_many_schedules", 0},
    [API_E_SCHEDULE_CHANGED] = {409, "schedule_changed", 0},
};

enum MHD_Result api_replied(const api_req *r)
{
    return r->status != 0 ? MHD_YES : MHD_NO;
}

int api_error_status(int e)
{
    return e >= 0 && e < API_E_COUNT ? api__errors[e].status : 500;
}

const char *api_error_code(int e)
{
    return e >= 0 && e < API_E_COUNT ? api__errors[e].code : "internal_error";
}

static const char *api__reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 202: return "Accepted";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Mid-body: write the whole answer to the socket now and mark the request so the
 * rest of its body is discarded and the connection closed. */
static enum MHD_Result api__reply_raw(api_req *r, int status, const char *ctype, const sp_buf *body,
                                      const api_hdr_kv *hdrs, size_t nhdrs)
{
    sp_buf out;
    sp_buf_init(&out, 64 * 1024);
    int rc = sp_buf_addf(&out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                               "Connection: close\r\n",
                         status, api__reason(status), ctype, body->len);
    for (size_t i = 0; i < nhdrs && rc == 0; i++)
        rc = sp_buf_addf(&out, "%s: %s\r\n", hdrs[i].name, hdrs[i].value);
    if (rc == 0)
        rc = sp_buf_adds(&out, "\r\n");
    if (rc == 0)
        rc = sp_buf_add(&out, body->data ? body->data : "", body->len);
    r->status = status;
    r->early = true;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (rc < 0 || ci == NULL) {
        sp_buf_free(&out);
        return MHD_NO;
    }
    /* libmicrohttpd writes nothing while it reads a body, so the socket's send buffer
     * is empty and this small answer goes out in one call. */
    size_t off = 0;
    while (off < out.len) {
        ssize_t k = send(ci->connect_fd, out.data + off, out.len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        off += (size_t)k;
    }
    /* Half-close: the client reads the answer and the end of the stream, while the
     * rest of its body is still read (and dropped) for a while. */
    shutdown(ci->connect_fd, SHUT_WR);
    sp_buf_free(&out);
    return off == out.len ? MHD_YES : MHD_NO;
}

/* The dashboard's page and files: scripts and styles from /ui/assets only (no inline
 * code, no eval), data from this origin only, media and images also from blob: URLs
 * (outputs fetched with the token), never inside a frame. */
#define API_UI_CSP                                                                          \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "       \
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; "        \
    "form-action 'self'; frame-ancestors 'none'"

static bool api__ui_headers(const api_req *r, struct MHD_Response *resp)
{
    static const api_hdr_kv h[] = {{"Content-Security-Policy", API_UI_CSP},
                                   {"X-Content-Type-Options", "nosniff"},
                                   {"X-Frame-Options", "DENY"},
                                   {"Referrer-Policy", "no-referrer"},
                                   {"Cross-Origin-Opener-Policy", "same-origin"}};
    if (!api_path_is_ui(r->path))
        return true;
    for (size_t i = 0; i < sizeof h / sizeof *h; i++) {
        if (MHD_add_response_header(resp, h[i].name, h[i].value) != MHD_YES)
            return false;
    }
    return true;
}

enum MHD_Result api_reply_response(api_req *r, int status, struct MHD_Response *resp)
{
    if (resp == NULL)
        return MHD_NO;
    if (!api__ui_headers(r, resp)) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    if (ret == MHD_YES)
        r->status = status;
    return ret;
}

enum MHD_Result api_reply_body(api_req *r, int status, const char *content_type, sp_buf *body,
                               const api_hdr_kv *hdrs, size_t nhdrs)
{
    if (r->status != 0) {
        /* One answer per request: a second one is a bug, not something to send. */
        sp_error(NULL, "internal: second reply (%d after %d) to %s", status, r->status,
                 r->path ? r->path : "?");
        sp_buf_free(body);
        return MHD_NO;
    }
    if (r->phase == API_PHASE_BODY) {
        enum MHD_Result ret = api__reply_raw(r, status, content_type, body, hdrs, nhdrs);
        sp_buf_free(body);
        return ret;
    }
    size_t len = body->len;
    char *data = sp_buf_take(body);
    struct MHD_Response *resp =
        data ? MHD_create_response_from_buffer_with_free_callback(len, data, sp_free)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        sp_free(data);
        return MHD_NO;
    }
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
    for (size_t i = 0; i < nhdrs && ok; i++)
        ok = MHD_add_response_header(resp, hdrs[i].name, hdrs[i].value) == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    return api_reply_response(r, status, resp);
}

enum MHD_Result api_reply_json(api_req *r, int status, sp_buf *body, const api_hdr_kv *hdrs,
                               size_t nhdrs)
{
    return api_reply_body(r, status, "application/json", body, hdrs, nhdrs);
}

enum MHD_Result api_reply_json_value(api_req *r, int status, json_t *v)
{
    return api_reply_json_value_h(r, status, v, NULL, 0);
}

enum MHD_Result api_reply_json_value_h(api_req *r, int status, json_t *v, const api_hdr_kv *hdrs,
                                       size_t nhdrs)
{
    sp_buf b;
    sp_buf_init(&b, 64 * 1024 * 1024);
    int rc = v ? api_json_append(&b, v) : SP_ENOMEM;
    json_decref(v);
    if (rc == 0)
        rc = sp_buf_addc(&b, '\n');
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_code(r, rc, NULL);
    }
    return api_reply_json(r, status, &b, hdrs, nhdrs);
}

enum MHD_Result api_json_body_begin(api_req *r, size_t max)
{
    if (api_query_each(r, api_query_none, r) != 0)
        return api_replied(r);
    const char *ct = api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || api_hdr_media_type(ct, &r->media) < 0 ||
        strcmp(r->media.type, "application/json") != 0)
        return api_reply_error(r, API_E_MEDIA_TYPE, "Content-Type must be application/json");
    sp_buf_free(&r->text);
    sp_buf_init(&r->text, max);
    return MHD_YES;
}

enum MHD_Result api_json_body_data(api_req *r, const char *data, size_t n)
{
    if (sp_buf_add(&r->text, data, n) < 0)
        return api_reply_error(r, API_E_TOO_LARGE, "the body is larger than %zu bytes",
                               r->text.max);
    return MHD_YES;
}

int api_query_none(void *ud, const char *name, const char *value)
{
    (void)value;
    api_invalid inv;
    api_invalid_set(&inv, name, "unknown parameter '%s' (this route takes none)", name);
    api_reply_invalid(ud, &inv);
    return -1;
}

/* 503s come in floods while Redis or the disk is away (or refuses our password): the
 * first of each code is logged, then one line per API_OUTAGE_LOG_MS with how many were
 * not. Any other 5xx is a bug and each is logged. */
#define API_OUTAGE_LOG_MS 30000
static atomic_llong api__logged_at[API_E_COUNT]; /* sp_mono_ms of the last line, 0 none */
static atomic_llong api__unlogged[API_E_COUNT];

static void api__log_5xx(const api_req *r, int e, const char *msg)
{
    const char *what = r->method == API_M_POST ? "POST" : "request";
    const char *path = r->path ? r->path : "?";
    if (api__errors[e].status != 503) {
        sp_warn(NULL, "%s %s: %d %s: %s", what, path, api__errors[e].status,
                api__errors[e].code, msg);
        return;
    }
    long long now = sp_mono_ms(), last = atomic_load(&api__logged_at[e]);
    if ((last != 0 && now - last < API_OUTAGE_LOG_MS) ||
        !atomic_compare_exchange_strong(&api__logged_at[e], &last, now)) {
        atomic_fetch_add(&api__unlogged[e], 1);
        return;
    }
    long long more = atomic_exchange(&api__unlogged[e], 0);
    if (more > 0)
        sp_warn(NULL, "%s %s: 503 %s: %s (and %lld more 503 %s in the last %d s)", what, path,
                api__errors[e].code, msg, more, api__errors[e].code, API_OUTAGE_LOG_MS / 1000);
    else
        sp_warn(NULL, "%s %s: 503 %s: %s", what, path, api__errors[e].code, msg);
}

/* The error answer for e with message msg, (optionally) the field at fault, and
 * extra headers. */
static enum MHD_Result api__error(api_req *r, int e, const char *field, const char *msg,
                                  const api_hdr_kv *extra, size_t nextra)
{
    if (e < 0 || e >= API_E_COUNT)
        e = API_E_INTERNAL;
    /* A refused request leaves no files behind, and they are gone before the client
     * reads the answer. */
    api_req_drop_blobs(r);
    sp_buf b;
    /* a message of at most 512 bytes and a field of 128, each escaped (6 bytes at most
     * for a byte), and the frame around them */
    sp_buf_init(&b, 6 * (512 + 128) + 256);
    int rc = sp_buf_addf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", api__errors[e].code);
    if (rc == 0)
        rc = sp_buf_add_json_escaped(&b, msg, strlen(msg));
    if (rc == 0 && field) {
        rc = sp_buf_adds(&b, "\",\"field\":\"");
        if (rc == 0)
            rc = sp_buf_add_json_escaped(&b, field, strlen(field));
    }
    if (rc == 0)
        rc = sp_buf_adds(&b, "\"}}\n");
    if (rc < 0) {
        sp_buf_free(&b);
        return MHD_NO;
    }
    api_hdr_kv h[8];
    size_t nh = 0;
    for (size_t i = 0; i < nextra && nh < 6; i++)
        h[nh++] = extra[i];
    char ra[16];
    if (api__errors[e].retry_after > 0) {
        snprintf(ra, sizeof ra, "%d", api__errors[e].retry_after);
        h[nh++] = (api_hdr_kv){"Retry-After", ra};
    }
    if (e == API_E_UNAUTHORIZED)
        h[nh++] = (api_hdr_kv){"WWW-Authenticate", "Bearer realm=\"spool\""};
    if (api__errors[e].status >= 500)
        api__log_5xx(r, e, msg);
    return api_reply_json(r, api__errors[e].status, &b, h, nh);
}

enum MHD_Result api_reply_error(api_req *r, int e, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* a message for people: truncation is fine */
    va_end(ap);
    return api__error(r, e, NULL, msg, NULL, 0);
}

enum MHD_Result api_reply_errorh(api_req *r, int e, const api_hdr_kv *hdrs, size_t nhdrs,
                                 const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return api__error(r, e, NULL, msg, hdrs, nhdrs);
}

enum MHD_Result api_reply_invalid(api_req *r, const api_invalid *inv)
{
    return api__error(r, API_E_INVALID_FIELD, inv->field, inv->message, NULL, 0);
}

enum MHD_Result api_reply_code(api_req *r, int code, const sp_err *err)
{
    const char *msg = err && err->msg[0] ? err->msg : sp_strerror(code);
    switch (code) {
    case SP_EREDIS:
        return api__error(r, API_E_REDIS, NULL, msg, NULL, 0);
    case SP_ENOTFOUND:
        return api__error(r, API_E_NOT_FOUND, NULL, msg, NULL, 0);
    case SP_EFULL:
        return api__error(r, API_E_QUEUE_FULL, NULL, msg, NULL, 0);
    case SP_ECONFLICT:
        return api__error(r, API_E_IDEMPOTENCY, NULL, msg, NULL, 0);
    case SP_ETOOBIG:
        return api__error(r, API_E_TOO_LARGE, NULL, msg, NULL, 0);
    case SP_EIO:
        return api__error(r, API_E_STORAGE, NULL, msg, NULL, 0);
    case SP_ESHUTDOWN:
        return api__error(r, API_E_SHUTTING_DOWN, NULL, msg, NULL, 0);
    case SP_ENOMEM:
        return api__error(r, API_E_NO_MEMORY, NULL, msg, NULL, 0);
    default:
        return api__error(r, API_E_INTERNAL, NULL, msg, NULL, 0);
    }
}

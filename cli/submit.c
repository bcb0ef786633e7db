/* submit.c - submit-video and export: a file streamed as the request body (never read
 * whole into memory), standard input sent chunked, or a URL the worker fetches. Each
 * submission carries an Idempotency-Key, so retrying after 429/503 never creates a
 * second job. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "output.h"
#include "spool/alloc.h"
#include "spool/util.h"

#define CTL_SUBMIT_TIMEOUT_MS 0 /* uploads may be large: no overall limit */
#define CTL_RETRY_CAP_S 30

static bool ctl__is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* The upload: where the body comes from. */
typedef struct ctl__body {
    int fd;             /* -1: in-memory data */
    bool own_fd;
    int64_t size;       /* -1: unknown (chunked) */
    bool seekable;
    const char *data;
    size_t len;
    const char *content_type;
    const char *label;  /* for progress: the file's name */
} ctl__body;

typedef struct ctl__upload_ui {
    ctl_client *c;
    const char *label;
    int64_t drawn_ms;
    bool drawn;
} ctl__upload_ui;

static void ctl__upload_progress(void *ud, int64_t un, int64_t ut, int64_t dn, int64_t dt)
{
    (void)dn, (void)dt;
    ctl__upload_ui *u = ud;
    int64_t now = sp_mono_ms();
    if (now - u->drawn_ms < 100 || un == 0)
        return;
    u->drawn_ms = now;
    u->drawn = true;
    char done[32], total[32];
    ctl_fmt_bytes(un, done);
    sp_buf b;
    sp_buf_init(&b, 1024);
    int rc = sp_buf_adds(&b, "\ruploading ");
    if (rc == 0)
        rc = ctl_out_clean(&b, u->label);
    if (rc == 0 && ut > 0) {
        ctl_fmt_bytes(ut, total);
        rc = sp_buf_addc(&b, ' ');
        if (rc == 0)
            rc = ctl_out_bar(&b, (int)(un * 100 / ut), 30);
        if (rc == 0)
            rc = sp_buf_addf(&b, "  %s of %s\033[K", done, total);
    } else if (rc == 0) {
        rc = sp_buf_addf(&b, "  %s\033[K", done);
    }
    if (rc == 0)
        fputs(sp_buf_cstr(&b), u->c->err);
    fflush(u->c->err);
    sp_buf_free(&b);
}

/* POST body to path with the idempotency key, retrying after 429/503 while the body
 * can be sent again. 0 with *job, or the reported exit code. */
static int ctl__post(ctl_client *c, const char *path, ctl__body *body, json_t **job)
{
    const ctl_opts *o = c->o;
    char random_key[48];
    const char *key = o->idem_key;
    if (key == NULL) {
        unsigned char rnd[16];
        if (sp_random_bytes(rnd, sizeof rnd) < 0)
            return ctl_client_fail(c, CTL_EXIT_SERVER, "no_randomness",
                                   "cannot read random bytes for the idempotency key");
        static const char hex[] = "0123456789abcdef";
        memcpy(random_key, "spoolctl-", 9);
        for (size_t i = 0; i < sizeof rnd; i++) {
            random_key[9 + 2 * i] = hex[rnd[i] >> 4];
            random_key[10 + 2 * i] = hex[rnd[i] & 15];
        }
        random_key[9 + 2 * sizeof rnd] = '\0';
        key = random_key;
    }
    ctl__upload_ui ui = {c, body->label, 0, false};
    bool show = c->err_tty && !o->quiet && body->fd >= 0;
    ctl_response resp;
    ctl_response_init(&resp);
    int rc = 0;
    *job = NULL;
    for (int64_t attempt = 0;; attempt++) {
        if (attempt > 0 && body->fd >= 0 && lseek(body->fd, 0, SEEK_SET) != 0) {
            rc = ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_read", "cannot rewind %s to send it "
                                 "again: %s", body->label, strerror(errno));
            break;
        }
        ctl_request rq;
        ctl_request_init(&rq, "POST", path);
        rq.content_type = body->content_type;
        rq.idempotency_key = key;
        rq.timeout_ms = CTL_SUBMIT_TIMEOUT_MS;
        if (body->fd >= 0) {
            rq.upload_fd = body->fd;
            rq.upload_size = body->size;
        } else {
            rq.data = body->data;
            rq.data_len = body->len;
        }
        if (show) {
            rq.progress = ctl__upload_progress;
            rq.progress_ud = &ui;
        }
        sp_err err;
        sp_err_clear(&err);
        int hr = ctl_http_do(c->http, &rq, &resp, &err);
        if (ui.drawn) {
            fputs("\r\033[K", c->err);
            fflush(c->err);
            ui.drawn = false;
        }
        if (hr < 0) {
            rc = ctl_client_fail_exchange(c, hr, &err);
            break;
        }
        bool busy = resp.status == 429 || resp.status == 503;
        bool again = busy && attempt < o->retries && (body->fd < 0 || body->seekable);
        if (again) {
            int64_t delay = resp.retry_after_s >= 0 ? resp.retry_after_s : (int64_t)1 << attempt;
            if (delay > CTL_RETRY_CAP_S)
                delay = CTL_RETRY_CAP_S;
            if (!o->quiet)
                fprintf(c->err, "spoolctl: the server is busy (HTTP %ld); trying again in %lld s\n",
                        resp.status, (long long)delay);
            ctl_client_sleep(delay * 1000);
            if (ctl_interrupted) {
                rc = CTL_EXIT_INTERRUPTED;
                break;
            }
            continue;
        }
        if (resp.status < 200 || resp.status >= 300) {
            rc = ctl_client_fail_answer(c, &resp, "submit");
            break;
        }
        *job = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        const char *id = json_string_value(json_object_get(*job, "id"));
        if (id == NULL || !sp_id_valid(id)) {
            json_decref(*job);
            *job = NULL;
            rc = ctl_client_fail(c, CTL_EXIT_SERVER, "bad_answer",
                                 "submit: the server's answer has no job id (HTTP %ld)",
                                 resp.status);
        }
        break;
    }
    ctl_response_free(&resp);
    return rc;
}

/* Print the new job (its id, or its JSON) and wait for it when asked. */
static int ctl__submitted(ctl_client *c, json_t *job)
{
    const ctl_opts *o = c->o;
    const char *id = json_string_value(json_object_get(job, "id"));
    int rc = 0;
    if (o->json) {
        rc = ctl_client_print_json(c, job);
    } else {
        fprintf(c->out, "%s\n", id);
        fflush(c->out);
        if (c->err_tty && !o->quiet) {
            const char *type = json_string_value(json_object_get(job, "type"));
            fprintf(c->err, "submitted %s job (%s)", type ? type : "a", ctl_job_state(job));
            if (!o->wait)
                fprintf(c->err, "; follow it with: spoolctl wait %s", id);
            fputc('\n', c->err);
            fflush(c->err);
        }
    }
    if (rc == 0 && o->wait)
        rc = ctl_wait_job(c, id);
    return rc;
}

/* Open FILE or "-" as a body. 0, or the reported exit code. */
static int ctl__open_body(ctl_client *c, const char *target, ctl__body *b)
{
    memset(b, 0, sizeof *b);
    b->fd = -1;
    b->size = -1;
    b->label = target;
    if (strcmp(target, "-") == 0) {
        b->fd = STDIN_FILENO;
        b->label = "standard input";
    } else {
        b->fd = open(target, O_RDONLY | O_CLOEXEC);
        if (b->fd < 0)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_read", "cannot read %s: %s", target,
                                   strerror(errno));
        b->own_fd = true;
    }
    struct stat st;
    if (fstat(b->fd, &st) != 0) {
        int e = errno;
        if (b->own_fd)
            close(b->fd);
        b->fd = -1;
        return ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_read", "cannot read %s: %s", target,
                               strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        if (b->own_fd)
            close(b->fd);
        b->fd = -1;
        return ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_read", "%s is a directory", target);
    }
    if (S_ISREG(st.st_mode)) {
        b->size = st.st_size;
        b->seekable = lseek(b->fd, 0, SEEK_CUR) == 0;
    }
    return 0;
}

static void ctl__close_body(ctl__body *b)
{
    if (b->own_fd && b->fd >= 0)
        close(b->fd);
    b->fd = -1;
}

/* Append "?name=value" or "&name=value" (escaped) when value is not NULL. */
static int ctl__query(sp_buf *q, const char *name, const char *value)
{
    if (value == NULL)
        return 0;
    int rc = sp_buf_addc(q, strchr(sp_buf_cstr(q), '?') ? '&' : '?');
    if (rc == 0)
        rc = sp_buf_adds(q, name);
    if (rc == 0)
        rc = sp_buf_addc(q, '=');
    if (rc == 0)
        rc = ctl_url_escape(q, value);
    return rc;
}

/* A query parameter for ctl__post_file: left out when value is NULL. */
typedef struct ctl__param {
    const char *name, *value;
} ctl__param;

/* POST the file body b to route with params in the query string (at most max_path
 * bytes in all), then close b. */
static int ctl__post_file(ctl_client *c, const char *route, const ctl__param *params,
                          size_t n, size_t max_path, ctl__body *b, json_t **job)
{
    sp_buf path;
    sp_buf_init(&path, max_path);
    int qr = sp_buf_adds(&path, route);
    for (size_t i = 0; i < n && qr == 0; i++)
        qr = ctl__query(&path, params[i].name, params[i].value);
    int rc = qr < 0 ? ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                      "the parameters are too long")
                    : ctl__post(c, sp_buf_cstr(&path), b, job);
    sp_buf_free(&path);
    ctl__close_body(b);
    return rc;
}

static const char *ctl__base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The content type of a video file from its extension. */
static const char *ctl__video_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } map[] = {{".mp4", "video/mp4"},       {".m4v", "video/mp4"},      {".mov", "video/quicktime"},
               {".mkv", "video/x-matroska"}, {".webm", "video/webm"},    {".avi", "video/x-msvideo"},
               {".ts", "video/mp2t"},        {".mpg", "video/mpeg"},     {".mpeg", "video/mpeg"},
               {".flv", "video/x-flv"},      {".3gp", "video/3gpp"},     {".ogv", "video/ogg"},
               {".wmv", "video/x-ms-wmv"}};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t k = strlen(map[i].ext);
        if (n > k && strcasecmp(path + n - k, map[i].ext) == 0)
            return map[i].type;
    }
    return "application/octet-stream";
}

int ctl_cmd_submit_video(ctl_client *c)
{
    const ctl_opts *o = c->o;
    json_t *job = NULL;
    int rc;
    if (ctl__is_url(o->target)) {
        json_t *req = json_pack("{s:s}", "source_url", o->target);
        if (req && o->preset)
            json_object_set_new(req, "preset", json_string(o->preset));
        if (req && o->thumbnail)
            json_object_set_new(req, "thumbnail", json_boolean(strcmp(o->thumbnail, "true") == 0));
        if (req && o->priority)
            json_object_set_new(req, "priority", json_string(o->priority));
        if (req && o->callback_url)
            json_object_set_new(req, "callback_url", json_string(o->callback_url));
        char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (text == NULL)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                   "the URL or --preset is not valid UTF-8");
        ctl__body b = {-1, false, -1, true, text, strlen(text), "application/json", o->target};
        rc = ctl__post(c, "/v1/videos", &b, &job);
        sp_free(text);
    } else {
        ctl__body b;
        rc = ctl__open_body(c, o->target, &b);
        if (rc != 0)
            return rc;
        b.content_type = o->content_type ? o->content_type : ctl__video_type(o->target);
        const char *filename = o->filename;
        if (filename == NULL && strcmp(o->target, "-") != 0)
            filename = ctl__base(o->target);
        const ctl__param q[] = {{"preset", o->preset},
                                {"thumbnail", o->thumbnail},
                                {"priority", o->priority},
                                {"callback_url", o->callback_url},
                                {"filename", filename && filename[0] ? filename : NULL}};
        rc = ctl__post_file(c, "/v1/videos", q, sizeof q / sizeof *q, 16 * 1024, &b, &job);
    }
    if (rc == 0)
        rc = ctl__submitted(c, job);
    json_decref(job);
    return rc;
}

/* The default title: the base name of a file or URL path without its extension. */
static void ctl__title(const char *target, char *out, size_t n)
{
    const char *s = target;
    if (ctl__is_url(target)) {
        const char *q = strpbrk(target + 8, "?#");
        size_t len = q ? (size_t)(q - target) : strlen(target);
        const char *slash = NULL;
        for (size_t i = 8; i < len; i++) {
            if (target[i] == '/')
                slash = target + i;
        }
        if (slash == NULL || slash + 1 >= target + len) {
            snprintf(out, n, "export");
            return;
        }
        snprintf(out, n, "%.*s", (int)(target + len - slash - 1), slash + 1);
    } else if (strcmp(target, "-") == 0) {
        snprintf(out, n, "export");
        return;
    } else {
        snprintf(out, n, "%s", ctl__base(s));
    }
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = '\0';
    if (out[0] == '\0')
        snprintf(out, n, "export");
}

/* Set the export parameters the options give on req. 0 or the reported exit code. */
static int ctl__export_fields(ctl_client *c, json_t *req, const char *title)
{
    const ctl_opts *o = c->o;
    struct {
        const char *key, *value;
    } f[] = {{"author", o->author},           {"page_size", o->page_size},
             {"orientation", o->orientation}, {"font", o->font},
             {"priority", o->priority},           {"callback_url", o->callback_url}};
    if (o->title || json_object_get(req, "title") == NULL) {
        if (json_object_set_new(req, "title", json_string(o->title ? o->title : title)) < 0)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                   "--title must be valid UTF-8");
    }
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (f[i].value && json_object_set_new(req, f[i].key, json_string(f[i].value)) < 0)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                   "--%s must be valid UTF-8", f[i].key);
    }
    if (o->columns) {
        json_error_t jerr;
        json_t *cols = json_loads(o->columns, 0, &jerr);
        if (!json_is_array(cols)) {
            json_decref(cols);
            return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                   "--columns must be a JSON array of column objects%s%s",
                                   cols ? "" : ": ", cols ? "" : jerr.text);
        }
        json_object_set_new(req, "columns", cols);
    }
    return 0;
}

/* A JSON request body from a JSON file: an array of rows, or an object (a whole
 * request, whose fields the options override). */
static int ctl__export_json_file(ctl_client *c, const char *title, char **text)
{
    const ctl_opts *o = c->o;
    json_error_t jerr;
    json_t *doc = strcmp(o->target, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                              : json_load_file(o->target, JSON_REJECT_DUPLICATES,
                                                               &jerr);
    if (doc == NULL)
        return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_json", "cannot read %s: %s (line %d)",
                               o->target, jerr.text, jerr.line);
    json_t *req;
    if (json_is_array(doc)) {
        req = json_pack("{s:o}", "rows", doc);
    } else if (json_is_object(doc)) {
        req = doc;
    } else {
        json_decref(doc);
        return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_json",
                               "%s must hold an array of rows or an export request object",
                               o->target);
    }
    int rc = req ? ctl__export_fields(c, req, title)
                 : ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    if (rc == 0) {
        *text = json_dumps(req, JSON_COMPACT);
        if (*text == NULL)
            rc = ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    }
    json_decref(req);
    return rc;
}

int ctl_cmd_export(ctl_client *c)
{
    const ctl_opts *o = c->o;
    char title[256];
    ctl__title(o->target, title, sizeof title);
    json_t *job = NULL;
    int rc;
    if (ctl__is_url(o->target) || (o->format && strcmp(o->format, "json") == 0)) {
        char *text = NULL;
        if (ctl__is_url(o->target)) {
            json_t *req = json_pack("{s:s}", "source_url", o->target);
            if (req == NULL)
                return ctl_client_fail(c, CTL_EXIT_USAGE, "invalid_argument",
                                       "the URL is not valid UTF-8");
            rc = ctl__export_fields(c, req, title);
            if (rc == 0 && o->format)
                json_object_set_new(req, "format", json_string(o->format));
            if (rc == 0 && (text = json_dumps(req, JSON_COMPACT)) == NULL)
                rc = ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
            json_decref(req);
        } else {
            rc = ctl__export_json_file(c, title, &text);
        }
        if (rc == 0) {
            ctl__body b = {-1, false, -1, true, text, strlen(text), "application/json", o->target};
            rc = ctl__post(c, "/v1/exports", &b, &job);
        }
        sp_free(text);
    } else {
        ctl__body b;
        rc = ctl__open_body(c, o->target, &b);
        if (rc != 0)
            return rc;
        b.content_type = strcmp(o->format, "csv") == 0 ? "text/csv; charset=utf-8"
                                                       : "application/x-ndjson";
        const ctl__param q[] = {{"title", o->title ? o->title : title},
                                {"author", o->author},
                                {"columns", o->columns},
                                {"page_size", o->page_size},
                                {"orientation", o->orientation},
                                {"font", o->font},
                                {"priority", o->priority},
                                {"callback_url", o->callback_url}};
        rc = ctl__post_file(c, "/v1/exports", q, sizeof q / sizeof *q, 64 * 1024, &b, &job);
    }
    if (rc == 0)
        rc = ctl__submitted(c, job);
    json_decref(job);
    return rc;
}

/* validate.c - validation of video and export requests (see validate.h). */
#include "validate.h"

#include <glib.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hdr.h"
#include "spool/fetch.h"
#include "spool/limits.h"
#include "spool/outbound.h"
#include "spool/presets.h"
#include "spool/utf8.h"
#include "spool/webhook.h"

#define API_TEXT_MAX 1000 /* title, author, label */
#define API_KEY_MAX 256   /* a column key */

int api_invalid_set(api_invalid *inv, const char *field, const char *fmt, ...)
{
    if (inv == NULL)
        return SP_EINVAL;
    /* Field names and messages are truncated if they do not fit: they are for people. */
    snprintf(inv->field, sizeof inv->field, "%s", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(inv->message, sizeof inv->message, fmt, ap);
    va_end(ap);
    return SP_EINVAL;
}

typedef struct api__dump {
    sp_buf *out;
    int rc; /* why the dump stopped */
} api__dump;

static int api__dump_cb(const char *buffer, size_t size, void *data)
{
    api__dump *d = data;
    d->rc = sp_buf_add(d->out, buffer, size);
    return d->rc < 0 ? -1 : 0;
}

int api_json_append(sp_buf *out, const json_t *v)
{
    size_t before = out->len;
    api__dump d = {out, 0};
    if (json_dump_callback(v, api__dump_cb, &d, JSON_COMPACT | JSON_ENCODE_ANY) != 0) {
        out->len = before;
        if (out->data)
            out->data[before] = '\0';
        return d.rc < 0 ? d.rc : SP_ENOMEM; /* jansson's own failures are allocations */
    }
    return 0;
}

/* One of the words in list (NULL-terminated), compared without case; the canonical
 * spelling from list, or NULL. */
static const char *api__one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strcasecmp(s, list[i]) == 0)
            return list[i];
    }
    return NULL;
}

static int api__priority(const char *s, bool *high, api_invalid *inv)
{
    if (strcmp(s, "high") == 0)
        *high = true;
    else if (strcmp(s, "normal") == 0)
        *high = false;
    else
        return api_invalid_set(inv, "priority", "priority must be high or normal");
    return 0;
}

static const sp_outbound *api__outbound; /* SPOOL_OUTBOUND_ALLOW; NULL: public only */

void api_validate_set_outbound(const sp_outbound *g)
{
    api__outbound = g;
}

static int api__url(const char *s, char out[API_URL_MAX + 1], api_invalid *inv)
{
    size_t n = strlen(s);
    sp_err err;
    int rc = n > API_URL_MAX || !sp_fetch_url_valid(s)
                 ? SP_EINVAL
                 : sp_outbound_check_url(api__outbound, s, &err);
    if (rc == SP_ENOMEM) {
        api_invalid_set(inv, "source_url", "out of memory checking source_url");
        return rc;
    }
    if (rc == SP_EUNREACHABLE) /* the worker's guard would refuse it: say so now */
        return api_invalid_set(inv, "source_url", "source_url is refused: %s", err.msg);
    if (rc < 0)
        return api_invalid_set(inv, "source_url",
                               "source_url must be an absolute http:// or https:// URL of at "
                               "most %d bytes, without spaces",
                               API_URL_MAX);
    memcpy(out, s, n + 1);
    return 0;
}

int api_callback_url(const char *s, size_t n, char out[API_CALLBACK_MAX + 1], api_invalid *inv)
{
    _Static_assert(API_CALLBACK_MAX == SP_WEBHOOK_URL_MAX, "one limit");
    sp_err err;
    int rc = sp_webhook_url_check(api__outbound, s, n, &err);
    if (rc == SP_ENOMEM) {
        api_invalid_set(inv, "callback_url", "out of memory checking callback_url");
        return rc;
    }
    if (rc == SP_EUNREACHABLE) /* the deliverer's guard would refuse it: say so now */
        return api_invalid_set(inv, "callback_url", "callback_url is refused: %s", err.msg);
    if (rc < 0)
        return api_invalid_set(inv, "callback_url", "callback_url %s", err.msg);
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

/* A callback_url given as a JSON value. */
static int api__callback_json(const json_t *v, char out[API_CALLBACK_MAX + 1], api_invalid *inv)
{
    if (!json_is_string(v))
        return api_invalid_set(inv, "callback_url", "callback_url must be a string");
    return api_callback_url(json_string_value(v), json_string_length(v), out, inv);
}

/* ---- run_at / delay ------------------------------------------------------------- */

static int api__when_ms(api_when *w, const char *name, int64_t run_at, int64_t delay,
                        api_invalid *inv)
{
    if (w->given)
        return api_invalid_set(inv, name, "give run_at or delay once, not both");
    int64_t ahead = run_at > 0 ? run_at - sp_now_ms() : delay;
    if (ahead > API_WHEN_MAX_MS)
        return api_invalid_set(inv, name, "%s is more than 366 days ahead", name);
    w->run_at_ms = run_at;
    w->delay_ms = delay;
    w->given = true;
    return 1;
}

static int api__run_at(api_when *w, const char *s, api_invalid *inv)
{
    /* GLib's ISO 8601 parser; NULL default zone: the text must carry its own. */
    GDateTime *t = strlen(s) <= 64 ? g_date_time_new_from_iso8601(s, NULL) : NULL;
    if (t == NULL)
        return api_invalid_set(inv, "run_at", "run_at must be an RFC 3339 time with a zone, "
                                              "such as 2026-12-24T06:00:00Z or "
                                              "2026-12-24T07:00:00+01:00");
    int64_t ms = (int64_t)g_date_time_to_unix(t) * 1000 + g_date_time_get_microsecond(t) / 1000;
    g_date_time_unref(t);
    if (ms <= 0)
        return api_invalid_set(inv, "run_at", "run_at must be after 1970");
    return api__when_ms(w, "run_at", ms, 0, inv);
}

static int api__delay(api_when *w, const char *s, api_invalid *inv)
{
    int64_t ms;
    if (s[0] == '-' || sp_parse_duration_ms(s, &ms) < 0)
        return api_invalid_set(inv, "delay", "delay must be seconds or a duration such as 90s, "
                                             "5m or 2h");
    return api__when_ms(w, "delay", 0, ms, inv);
}

int api_when_json(api_when *w, const char *name, const json_t *v, api_invalid *inv)
{
    if (strcmp(name, "run_at") == 0) {
        if (!json_is_string(v))
            return api_invalid_set(inv, name, "run_at must be a string (RFC 3339)");
        return api__run_at(w, json_string_value(v), inv);
    }
    if (strcmp(name, "delay") != 0)
        return 0;
    if (json_is_string(v))
        return api__delay(w, json_string_value(v), inv);
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (!(d >= 0 && d <= (double)API_WHEN_MAX_MS / 1000 + 1))
        return api_invalid_set(inv, name, d > 0 ? "delay is more than 366 days ahead"
                                                : "delay must be a number of seconds (0 or "
                                                  "more) or a duration such as 90s");
    return api__when_ms(w, name, 0, (int64_t)(d * 1000), inv);
}

int api_when_text(api_when *w, const char *name, const char *v, api_invalid *inv)
{
    if (strcmp(name, "run_at") == 0)
        return api__run_at(w, v, inv);
    if (strcmp(name, "delay") == 0)
        return api__delay(w, v, inv);
    return 0;
}

/* ---- video.transcode ------------------------------------------------------------ */

enum {
    API_V_PRESET = 1,
    API_V_THUMB = 2,
    API_V_PRIO = 4,
    API_V_URL = 8,
    API_V_FILENAME = 16,
    API_V_CALLBACK = 32,
    API_V_SPRITE = 64
};

void api_video_init(api_video_req *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->preset, sizeof v->preset, "%s", SP_PRESET_DEFAULT);
    v->thumbnail = true;
}

static int api__preset(api_video_req *v, const char *s, api_invalid *inv)
{
    if (sp_preset_find(s) == NULL || strlen(s) >= sizeof v->preset) {
        char names[256] = "";
        size_t used = 0;
        for (const sp_preset *p = sp_presets(); p->name; p++) {
            int k = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "",
                             p->name);
            if (k < 0 || (size_t)k >= sizeof names - used)
                break;
            used += (size_t)k;
        }
        return api_invalid_set(inv, "preset", "preset must be one of %s", names);
    }
    memcpy(v->preset, s, strlen(s) + 1);
    return 0;
}

/* Mark field bit as given; refuse a repeat. */
static int api__once(unsigned *seen, unsigned bit, const char *name, api_invalid *inv)
{
    if (*seen & bit)
        return api_invalid_set(inv, name, "%s is given more than once", name);
    *seen |= bit;
    return 0;
}

int api_video_from_json(api_video_req *v, const json_t *req, api_invalid *inv)
{
    if (!json_is_object(req))
        return api_invalid_set(inv, "body", "the request body must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)req, key, val) {
        int rc = 0;
        if (strcmp(key, "source_url") == 0) {
            if (!json_is_string(val))
                return api_invalid_set(inv, key, "source_url must be a string");
            rc = api__url(json_string_value(val), v->source_url, inv);
            v->seen |= API_V_URL;
        } else if (strcmp(key, "preset") == 0) {
            if (!json_is_string(val))
                return api_invalid_set(inv, key, "preset must be a string");
            rc = api__preset(v, json_string_value(val), inv);
        } else if (strcmp(key, "thumbnail") == 0) {
            if (!json_is_boolean(val))
                return api_invalid_set(inv, key, "thumbnail must be true or false");
            v->thumbnail = json_is_true(val);
        } else if (strcmp(key, "sprite") == 0) {
            if (!json_is_boolean(val))
                return api_invalid_set(inv, key, "sprite must be true or false");
            v->sprite = json_is_true(val);
            v->seen |= API_V_SPRITE;
        } else if (strcmp(key, "priority") == 0) {
            if (!json_is_string(val))
                return api_invalid_set(inv, key, "priority must be high or normal");
            rc = api__priority(json_string_value(val), &v->high_priority, inv);
        } else if (strcmp(key, "callback_url") == 0) {
            rc = api__callback_json(val, v->callback_url, inv);
        } else if ((rc = api_when_json(&v->when, key, val, inv)) != 0) {
            rc = rc < 0 ? rc : 0;
        } else {
            return api_invalid_set(inv, key,
                                   "unknown field '%s' (expected source_url, preset, thumbnail, "
                                   "sprite, priority, callback_url, run_at, delay)",
                                   key);
        }
        if (rc < 0)
            return rc;
    }
    if (!(v->seen & API_V_URL))
        return api_invalid_set(inv, "source_url",
                               "source_url is required in a JSON request (to upload a file, send "
                               "multipart/form-data or a video/* body)");
    return api_video_check(v, inv);
}

int api_video_check(const api_video_req *v, api_invalid *inv)
{
    const sp_preset *p = sp_preset_find(v->preset);
    if ((v->seen & API_V_SPRITE) && v->sprite && (p == NULL || p->ladder == NULL))
        return api_invalid_set(inv, "sprite",
                               "sprite needs an HLS preset (hls, hls-720p), not %s", v->preset);
    return 0;
}

int api_video_field(api_video_req *v, const char *name, const char *value, bool allow_filename,
                    api_invalid *inv)
{
    int rc;
    if (strcmp(name, "preset") == 0) {
        if ((rc = api__once(&v->seen, API_V_PRESET, name, inv)) < 0)
            return rc;
        return api__preset(v, value, inv);
    }
    if (strcmp(name, "thumbnail") == 0) {
        if ((rc = api__once(&v->seen, API_V_THUMB, name, inv)) < 0)
            return rc;
        if (api_hdr_bool(value, &v->thumbnail) < 0)
            return api_invalid_set(inv, name, "thumbnail must be true or false");
        return 0;
    }
    if (strcmp(name, "sprite") == 0) {
        if ((rc = api__once(&v->seen, API_V_SPRITE, name, inv)) < 0)
            return rc;
        if (api_hdr_bool(value, &v->sprite) < 0)
            return api_invalid_set(inv, name, "sprite must be true or false");
        return 0;
    }
    if (strcmp(name, "priority") == 0) {
        if ((rc = api__once(&v->seen, API_V_PRIO, name, inv)) < 0)
            return rc;
        return api__priority(value, &v->high_priority, inv);
    }
    if (strcmp(name, "callback_url") == 0) {
        if ((rc = api__once(&v->seen, API_V_CALLBACK, name, inv)) < 0)
            return rc;
        return api_callback_url(value, strlen(value), v->callback_url, inv);
    }
    if ((rc = api_when_text(&v->when, name, value, inv)) != 0)
        return rc < 0 ? rc : 0;
    if (allow_filename && strcmp(name, "filename") == 0) {
        if ((rc = api__once(&v->seen, API_V_FILENAME, name, inv)) < 0)
            return rc;
        size_t n = strlen(value);
        if (n == 0 || n > API_FILENAME_MAX || strpbrk(value, "/\\") != NULL)
            return api_invalid_set(inv, name,
                                   "filename must be 1 to %d bytes without / or \\",
                                   API_FILENAME_MAX);
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
                return api_invalid_set(inv, name, "filename has a control character");
        }
        if (!sp_utf8_valid(value, n))
            return api_invalid_set(inv, name, "filename must be UTF-8");
        memcpy(v->filename, value, n + 1);
        return 0;
    }
    return api_invalid_set(inv, name,
                           "unknown parameter '%s' (expected preset, thumbnail, sprite, priority, "
                           "callback_url, run_at, delay%s)",
                           name, allow_filename ? ", filename" : "");
}

int api_video_params(const api_video_req *v, sp_buf *out)
{
    const sp_preset *p = sp_preset_find(v->preset);
    if (p == NULL || p->ladder == NULL)
        return sp_buf_addf(out, "{\"preset\":\"%s\",\"thumbnail\":%s}", v->preset,
                           v->thumbnail ? "true" : "false");
    bool sprite = (v->seen & API_V_SPRITE) ? v->sprite : true;
    return sp_buf_addf(out, "{\"preset\":\"%s\",\"thumbnail\":%s,\"sprite\":%s}", v->preset,
                       v->thumbnail ? "true" : "false", sprite ? "true" : "false");
}

/* ---- pdf.export ------------------------------------------------------------------- */

void api_export_init(api_export_req *x)
{
    memset(x, 0, sizeof *x);
}

void api_export_free(api_export_req *x)
{
    if (x == NULL)
        return;
    json_decref(x->params);
    json_decref(x->fields);
    memset(x, 0, sizeof *x);
}

/* A string field of at most max bytes (min 1 when required_nonempty). */
static int api__text(const json_t *v, const char *field, size_t max, bool nonempty,
                     api_invalid *inv)
{
    if (!json_is_string(v))
        return api_invalid_set(inv, field, "%s must be a string", field);
    size_t n = json_string_length(v);
    if (nonempty && n == 0)
        return api_invalid_set(inv, field, "%s must not be empty", field);
    if (n > max)
        return api_invalid_set(inv, field, "%s must be at most %zu bytes", field, max);
    if (strlen(json_string_value(v)) != n)
        return api_invalid_set(inv, field, "%s must not contain NUL characters", field);
    return 0;
}

static int api__column(const json_t *c, size_t i, json_t *out, api_invalid *inv)
{
    char f[128];
    snprintf(f, sizeof f, "columns[%zu]", i);
    if (!json_is_object(c))
        return api_invalid_set(inv, f, "%s must be an object with a key", f);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)c, k, v) {
        if (strcmp(k, "key") && strcmp(k, "label") && strcmp(k, "width") && strcmp(k, "align") &&
            strcmp(k, "format") && strcmp(k, "decimals") && strcmp(k, "thousands")) {
            snprintf(f, sizeof f, "columns[%zu].%s", i, k);
            return api_invalid_set(inv, f,
                                   "unknown field in columns[%zu] (expected key, label, width, "
                                   "align, format, decimals, thousands)",
                                   i);
        }
    }
    int rc;
    const json_t *key = json_object_get(c, "key");
    snprintf(f, sizeof f, "columns[%zu].key", i);
    if (key == NULL)
        return api_invalid_set(inv, f, "%s is required", f);
    if ((rc = api__text(key, f, API_KEY_MAX, true, inv)) < 0)
        return rc;
    if (json_object_set(out, "key", (json_t *)key) < 0)
        return SP_ENOMEM;
    const json_t *label = json_object_get(c, "label");
    if (label) {
        snprintf(f, sizeof f, "columns[%zu].label", i);
        if ((rc = api__text(label, f, API_TEXT_MAX, false, inv)) < 0)
            return rc;
        if (json_object_set(out, "label", (json_t *)label) < 0)
            return SP_ENOMEM;
    }
    const json_t *width = json_object_get(c, "width");
    if (width) {
        snprintf(f, sizeof f, "columns[%zu].width", i);
        double w = json_number_value(width);
        if (!json_is_number(width) || !(w > 0 && w <= 2000))
            return api_invalid_set(inv, f, "%s must be a number of points above 0 and at most 2000",
                                   f);
        if (json_object_set(out, "width", (json_t *)width) < 0)
            return SP_ENOMEM;
    }
    static const char *const aligns[] = {"left", "right", "center", NULL};
    static const char *const formats[] = {"text", "number", "date", NULL};
    const json_t *align = json_object_get(c, "align");
    if (align) {
        snprintf(f, sizeof f, "columns[%zu].align", i);
        const char *a = json_is_string(align) ? api__one_of(json_string_value(align), aligns) : NULL;
        if (a == NULL)
            return api_invalid_set(inv, f, "%s must be left, right or center", f);
        if (json_object_set_new(out, "align", json_string(a)) < 0)
            return SP_ENOMEM;
    }
    const json_t *format = json_object_get(c, "format");
    const char *fmt = "text";
    if (format) {
        snprintf(f, sizeof f, "columns[%zu].format", i);
        fmt = json_is_string(format) ? api__one_of(json_string_value(format), formats) : NULL;
        if (fmt == NULL)
            return api_invalid_set(inv, f, "%s must be text, number or date", f);
        if (json_object_set_new(out, "format", json_string(fmt)) < 0)
            return SP_ENOMEM;
    }
    const json_t *dec = json_object_get(c, "decimals");
    if (dec) {
        snprintf(f, sizeof f, "columns[%zu].decimals", i);
        if (!json_is_integer(dec) || json_integer_value(dec) < 0 || json_integer_value(dec) > 10)
            return api_invalid_set(inv, f, "%s must be an integer from 0 to 10", f);
        if (strcmp(fmt, "number") != 0)
            return api_invalid_set(inv, f, "%s only applies to format number", f);
        if (json_object_set(out, "decimals", (json_t *)dec) < 0)
            return SP_ENOMEM;
    }
    const json_t *th = json_object_get(c, "thousands");
    if (th) {
        snprintf(f, sizeof f, "columns[%zu].thousands", i);
        if (!json_is_boolean(th))
            return api_invalid_set(inv, f, "%s must be true or false", f);
        if (strcmp(fmt, "number") != 0)
            return api_invalid_set(inv, f, "%s only applies to format number", f);
        if (json_object_set(out, "thousands", (json_t *)th) < 0)
            return SP_ENOMEM;
    }
    return 0;
}

/* Validate columns into a normalized copy (*out, a new reference). */
static int api__columns(const json_t *arr, json_t **out, api_invalid *inv)
{
    *out = NULL;
    if (!json_is_array(arr))
        return api_invalid_set(inv, "columns", "columns must be an array of objects");
    size_t n = json_array_size(arr);
    if (n == 0)
        return api_invalid_set(inv, "columns", "columns must not be empty (leave it out to take "
                                               "the columns from the data)");
    if (n > SP_EXPORT_MAX_COLUMNS)
        return api_invalid_set(inv, "columns", "at most %d columns", SP_EXPORT_MAX_COLUMNS);
    json_t *cols = json_array();
    if (cols == NULL)
        return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object();
        int rc = c ? api__column(json_array_get(arr, i), i, c, inv) : SP_ENOMEM;
        if (rc == 0 && json_array_append_new(cols, c) < 0)
            rc = SP_ENOMEM;
        else if (rc < 0)
            json_decref(c);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            const char *a = json_string_value(json_object_get(json_array_get(cols, j), "key"));
            const char *b = json_string_value(json_object_get(c, "key"));
            if (a && b && strcmp(a, b) == 0) {
                char f[128];
                snprintf(f, sizeof f, "columns[%zu].key", i);
                rc = api_invalid_set(inv, f, "%s repeats the key of columns[%zu]", f, j);
            }
        }
        if (rc < 0) {
            json_decref(cols);
            return rc;
        }
    }
    *out = cols;
    return 0;
}

/* The format of a source_url's data from its path's extension, or NULL. */
static const char *api__format_from_url(const char *url)
{
    size_t n = strcspn(url, "?#");
    static const struct {
        const char *ext;
        const char *format;
    } map[] = {{".csv", "csv"}, {".ndjson", "ndjson"}, {".jsonl", "ndjson"}, {".json", "json"}};
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        size_t e = strlen(map[i].ext);
        if (n > e && strncasecmp(url + n - e, map[i].ext, e) == 0)
            return map[i].format;
    }
    return NULL;
}

/* Validate an export request object. inline_ok: rows/source_url/format may be given
 * (JSON bodies; the rows themselves are not in req, rows_given says whether there were
 * any); otherwise the data is the body and those names are unknown. */
static int api__export(api_export_req *x, const json_t *req, bool inline_ok, bool rows_given,
                       api_invalid *inv)
{
    static const char *const sizes[] = {"A4", "Letter", NULL};
    static const char *const orients[] = {"portrait", "landscape", NULL};
    static const char *const fonts[] = {"sans", "serif", "mono", NULL};
    static const char *const formats[] = {"csv", "ndjson", "json", NULL};
    static const char *const levels[] = {"default", "fast", NULL};
    if (!json_is_object(req))
        return api_invalid_set(inv, "body", "the request body must be a JSON object");
    json_t *params = json_object();
    if (params == NULL)
        return SP_ENOMEM;
    int rc = 0;
    const char *page_size = "A4", *orientation = "portrait", *font = "sans";
    const char *compression = NULL; /* the worker's default (SPOOL_PDF_COMPRESSION) */
    const json_t *title = NULL, *author = NULL, *columns = NULL, *url = NULL, *format = NULL;
    const json_t *callback = NULL;
    bool rows = inline_ok && rows_given;
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)req, key, val) {
        if (strcmp(key, "title") == 0) {
            title = val;
        } else if (strcmp(key, "author") == 0) {
            author = val;
        } else if (strcmp(key, "columns") == 0) {
            columns = val;
        } else if (strcmp(key, "page_size") == 0 || strcmp(key, "orientation") == 0 ||
                   strcmp(key, "font") == 0) {
            const char *const *list = key[0] == 'p' ? sizes : key[0] == 'o' ? orients : fonts;
            const char *v = json_is_string(val) ? api__one_of(json_string_value(val), list) : NULL;
            if (v == NULL) {
                rc = api_invalid_set(inv, key, "%s must be %s", key,
                                     key[0] == 'p'   ? "A4 or Letter"
                                     : key[0] == 'o' ? "portrait or landscape"
                                                     : "sans, serif or mono");
                break;
            }
            *(key[0] == 'p' ? &page_size : key[0] == 'o' ? &orientation : &font) = v;
        } else if (strcmp(key, "compression") == 0) {
            compression = json_is_string(val) ? api__one_of(json_string_value(val), levels)
                                              : NULL;
            if (compression == NULL) {
                rc = api_invalid_set(inv, key, "compression must be default or fast");
                break;
            }
        } else if (strcmp(key, "priority") == 0) {
            if (!json_is_string(val))
                rc = api_invalid_set(inv, key, "priority must be high or normal");
            else
                rc = api__priority(json_string_value(val), &x->high_priority, inv);
            if (rc < 0)
                break;
        } else if (strcmp(key, "callback_url") == 0) {
            callback = val;
        } else if ((rc = api_when_json(&x->when, key, val, inv)) != 0) {
            if (rc < 0)
                break;
            rc = 0;
        } else if (inline_ok && strcmp(key, "source_url") == 0) {
            url = val;
        } else if (inline_ok && strcmp(key, "format") == 0) {
            format = val;
        } else {
            rc = api_invalid_set(inv, key,
                                 "unknown field '%s' (expected title, author, columns, page_size, "
                                 "orientation, font, compression, priority, callback_url, run_at, "
                                 "delay%s)",
                                 key, inline_ok ? ", rows, source_url, format" : "");
            break;
        }
    }
    if (rc == 0 && title == NULL)
        rc = api_invalid_set(inv, "title", "title is required");
    if (rc == 0)
        rc = api__text(title, "title", API_TEXT_MAX, true, inv);
    if (rc == 0 && author)
        rc = api__text(author, "author", API_TEXT_MAX, false, inv);
    if (rc == 0 && callback)
        rc = api__callback_json(callback, x->callback_url, inv);
    json_t *cols = NULL;
    if (rc == 0 && columns)
        rc = api__columns(columns, &cols, inv);
    x->letter = strcmp(page_size, "Letter") == 0;
    x->landscape = strcmp(orientation, "landscape") == 0;
    if (rc == 0 && cols) {
        char what[64];
        snprintf(what, sizeof what, "%zu columns are given", json_array_size(cols));
        rc = api_export_columns_fit(x, json_array_size(cols), "columns", what, inv);
    }
    if (rc == 0 && inline_ok) {
        if (rows && url)
            rc = api_invalid_set(inv, "source_url", "give either rows or source_url, not both");
        else if (!rows && !url)
            rc = api_invalid_set(inv, "rows", "rows (the data inline) or source_url is required");
        else if (rows)
            rc = 0; /* judged as they stream (rows.h) */
        else if (!json_is_string(url))
            rc = api_invalid_set(inv, "source_url", "source_url must be a string");
        else
            rc = api__url(json_string_value(url), x->source_url, inv);
        if (rc == 0 && format && !url)
            rc = api_invalid_set(inv, "format", "format only applies to source_url");
        if (rc == 0 && url) {
            const char *f = format ? (json_is_string(format)
                                          ? api__one_of(json_string_value(format), formats)
                                          : NULL)
                                   : api__format_from_url(x->source_url);
            if (f == NULL && format)
                rc = api_invalid_set(inv, "format", "format must be csv, ndjson or json");
            else if (f == NULL)
                rc = api_invalid_set(inv, "format", "format (csv, ndjson or json) is required: "
                                                    "the URL does not tell");
            else
                snprintf(x->format, sizeof x->format, "%s", f);
        }
    }
    if (rc == 0 &&
        (json_object_set(params, "title", (json_t *)title) < 0 ||
         json_object_set_new(params, "author", author ? json_incref((json_t *)author)
                                                      : json_string("spool")) < 0 ||
         (cols && json_object_set(params, "columns", cols) < 0) ||
         json_object_set_new(params, "page_size", json_string(page_size)) < 0 ||
         json_object_set_new(params, "orientation", json_string(orientation)) < 0 ||
         json_object_set_new(params, "font", json_string(font)) < 0 ||
         (compression && json_object_set_new(params, "compression",
                                             json_string(compression)) < 0)))
        rc = SP_ENOMEM;
    json_decref(cols);
    if (rc < 0) {
        json_decref(params);
        x->source_url[0] = '\0';
        x->format[0] = '\0';
        x->callback_url[0] = '\0';
        return rc;
    }
    json_decref(x->params);
    x->params = params;
    x->columns = json_object_get(params, "columns");
    return 0;
}

int api_export_from_json(api_export_req *x, const json_t *fields, bool rows_given,
                         api_invalid *inv)
{
    return api__export(x, fields, true, rows_given, inv);
}

int api_export_field(api_export_req *x, const char *name, const char *value, api_invalid *inv)
{
    static const char *const names[] = {"title",    "author",      "columns",
                                        "page_size", "orientation", "font",
                                        "compression", "priority", "callback_url",
                                        "run_at", "delay", NULL};
    bool known = false;
    for (size_t i = 0; names[i]; i++)
        known = known || strcmp(name, names[i]) == 0;
    if (!known)
        return api_invalid_set(inv, name,
                               "unknown parameter '%s' (expected title, author, columns, "
                               "page_size, orientation, font, compression, priority, "
                               "callback_url, run_at, delay)",
                               name);
    if (x->fields == NULL && (x->fields = json_object()) == NULL)
        return SP_ENOMEM;
    if (json_object_get(x->fields, name))
        return api_invalid_set(inv, name, "%s is given more than once", name);
    json_t *v;
    if (strcmp(name, "columns") == 0) {
        json_error_t jerr;
        v = json_loads(value, JSON_REJECT_DUPLICATES, &jerr);
        if (v == NULL)
            return api_invalid_set(inv, name, "columns must be a JSON array: %s", jerr.text);
    } else {
        v = json_string(value);
        if (v == NULL)
            return api_invalid_set(inv, name, "%s must be valid UTF-8", name);
    }
    if (json_object_set_new(x->fields, name, v) < 0)
        return SP_ENOMEM;
    return 0;
}

int api_export_fields_done(api_export_req *x, api_invalid *inv)
{
    if (x->fields == NULL && (x->fields = json_object()) == NULL)
        return SP_ENOMEM;
    return api__export(x, x->fields, false, false, inv);
}

int api_export_columns_fit(const api_export_req *x, size_t n, const char *field,
                           const char *what, api_invalid *inv)
{
    size_t fit = sp_export_columns_fit(x->letter, x->landscape);
    if (n <= fit)
        return 0;
    return api_invalid_set(inv, field,
                           "%s, and at most %zu columns fit across %s %s page (%zu in %s); "
                           "give fewer columns or turn the page",
                           what, fit, x->letter ? "a Letter" : "an A4",
                           x->landscape ? "landscape" : "portrait",
                           sp_export_columns_fit(x->letter, !x->landscape),
                           x->landscape ? "portrait" : "landscape");
}

size_t api_export_ncolumns(const api_export_req *x)
{
    return json_array_size(x->columns);
}

const char *api_export_column_key(const api_export_req *x, size_t i)
{
    return json_string_value(json_object_get(json_array_get(x->columns, i), "key"));
}

int api_export_params(const api_export_req *x, sp_buf *out)
{
    return api_json_append(out, x->params);
}

int api_export_input_inline(const sp_buf *rows, sp_buf *out)
{
    json_t *in = json_pack("{s:s%, s:s, s:I}", "inline", sp_buf_cstr(rows), rows->len, "format",
                           "ndjson", "bytes", (json_int_t)rows->len);
    int rc = in ? api_json_append(out, in) : SP_ENOMEM;
    json_decref(in);
    return rc;
}

int api_export_input(const char *format, int64_t bytes, const char *url, sp_buf *out)
{
    json_t *in = url ? json_pack("{s:s, s:s}", "url", url, "format", format)
                     : json_pack("{s:s, s:s, s:I}", "blob", "dataset", "format", format, "bytes",
                                 (json_int_t)bytes);
    int rc = in ? api_json_append(out, in) : SP_ENOMEM;
    json_decref(in);
    return rc;
}

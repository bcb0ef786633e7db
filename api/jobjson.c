/* jobjson.c - JSON rendering of a job (see jobjson.h). */
#include "jobjson.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/utf8.h"
#include "spool/util.h"
#include "validate.h"

/* Append text from the record as a JSON string: escaped, and with bytes that are not
 * UTF-8 turned into '?', so the answer is valid JSON whatever a worker stored. */
static int api__str(sp_buf *b, const char *s)
{
    int rc = sp_buf_addc(b, '"');
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (rc == 0 && *p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        if (p > run)
            rc = sp_buf_add(b, run, (size_t)(p - run));
        if (rc < 0 || *p == '\0')
            break;
        if (*p < 0x80) {
            rc = sp_buf_add_json_escaped(b, (const char *)p, 1);
            p++;
            continue;
        }
        /* A UTF-8 sequence: copied when well formed. */
        size_t len = 0;
        size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
        if (n > 0 && n <= strnlen((const char *)p, n) &&
            sp_utf8_valid(p, n))
            len = n;
        rc = len ? sp_buf_add(b, p, len) : sp_buf_addc(b, '?');
        p += len ? len : 1;
    }
    return rc == 0 ? sp_buf_addc(b, '"') : rc;
}

json_t *api_json_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char t[SP_TIME_LEN];
    sp_format_time(ms, t);
    return json_string(t);
}

/* "name":"<time>" or "name":null. */
static int api__time(sp_buf *b, const char *name, int64_t ms)
{
    if (ms <= 0)
        return sp_buf_addf(b, ",\"%s\":null", name);
    char t[SP_TIME_LEN];
    sp_format_time(ms, t);
    return sp_buf_addf(b, ",\"%s\":\"%s\"", name, t);
}

/* ,"name":<stored JSON> when it is valid JSON, else null. */
static int api__stored(sp_buf *b, const char *name, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || !api_json_valid(text, n))
        return sp_buf_addf(b, ",\"%s\":null", name);
    int rc = sp_buf_addf(b, ",\"%s\":", name);
    return rc == 0 ? sp_buf_add(b, text, n) : rc;
}

/* ,"outputs":[...] with each output's url added (jansson: only jobs with outputs). */
static int api__outputs(sp_buf *b, const sp_job *j)
{
    int rc = sp_buf_adds(b, ",\"outputs\":[");
    json_t *stored = j->outputs && j->outputs[0] ? json_loads(j->outputs, 0, NULL) : NULL;
    size_t i, k = 0;
    json_t *o;
    json_array_foreach(stored, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (rc < 0 || !json_is_object(o) || name == NULL || !sp_blob_name_valid(name))
            continue;
        rc = sp_buf_addf(b, "%s{\"name\":\"%s\",\"url\":\"/v1/jobs/%s/outputs/%s\"",
                         k++ ? "," : "", name, j->id, name);
        const char *key;
        json_t *v;
        json_object_foreach(o, key, v) {
            if (rc < 0 || strcmp(key, "name") == 0 || strcmp(key, "url") == 0)
                continue;
            rc = sp_buf_addc(b, ',');
            if (rc == 0)
                rc = api__str(b, key);
            if (rc == 0)
                rc = sp_buf_addc(b, ':');
            if (rc == 0)
                rc = api_json_append(b, v);
        }
        if (rc == 0)
            rc = sp_buf_addc(b, '}');
    }
    json_decref(stored);
    return rc == 0 ? sp_buf_addc(b, ']') : rc;
}

/* ,"attempt_log":[...]: the stored log with its times in RFC 3339 ([] without one). */
static int api__attempt_log(sp_buf *b, const char *text)
{
    int rc = sp_buf_adds(b, ",\"attempt_log\":[");
    json_t *stored = text && text[0] ? json_loads(text, 0, NULL) : NULL;
    if (stored == NULL && text && text[0] && !sp_utf8_valid(text, strlen(text))) {
        /* cjson stores an error message's bytes as they are: repair them (U+FFFD) rather
         * than lose the whole log to jansson's strict UTF-8. */
        sp_buf fixed;
        sp_buf_init(&fixed, strlen(text) * 3 + 1);
        if (sp_utf8_add_repaired(&fixed, text, strlen(text)) == 0)
            stored = json_loads(sp_buf_cstr(&fixed), 0, NULL);
        sp_buf_free(&fixed);
    }
    size_t i, k = 0;
    json_t *e;
    json_array_foreach(stored, i, e) {
        if (rc < 0 || !json_is_object(e))
            continue;
        const char *outcome = json_string_value(json_object_get(e, "outcome"));
        rc = sp_buf_addf(b, "%s{\"attempt\":%lld", k++ ? "," : "",
                         (long long)json_integer_value(json_object_get(e, "attempt")));
        if (rc == 0)
            rc = api__time(b, "started_at", json_integer_value(json_object_get(e, "started_at")));
        if (rc == 0)
            rc = api__time(b, "ended_at", json_integer_value(json_object_get(e, "ended_at")));
        if (rc == 0)
            rc = sp_buf_adds(b, ",\"outcome\":");
        if (rc == 0)
            rc = api__str(b, outcome ? outcome : "");
        const json_t *err = json_object_get(e, "error");
        if (rc == 0 && !json_is_object(err))
            rc = sp_buf_adds(b, ",\"error\":null");
        if (rc == 0 && json_is_object(err)) {
            rc = sp_buf_adds(b, ",\"error\":{\"code\":");
            if (rc == 0)
                rc = api__str(b, json_string_value(json_object_get(err, "code")));
            if (rc == 0)
                rc = sp_buf_adds(b, ",\"message\":");
            if (rc == 0)
                rc = api__str(b, json_string_value(json_object_get(err, "message")));
            if (rc == 0)
                rc = sp_buf_addc(b, '}');
        }
        if (rc == 0)
            rc = sp_buf_addc(b, '}');
    }
    json_decref(stored);
    return rc == 0 ? sp_buf_addc(b, ']') : rc;
}

int api_job_render(const sp_job *j, sp_buf *out)
{
    size_t start = out->len;
    int rc = sp_buf_adds(out, "{\"id\":");
    if (rc == 0)
        rc = api__str(out, j->id);
    if (rc == 0)
        rc = sp_buf_adds(out, ",\"type\":");
    if (rc == 0)
        rc = api__str(out, j->type);
    if (rc == 0)
        rc = sp_buf_adds(out, ",\"queue\":");
    if (rc == 0)
        rc = api__str(out, j->queue);
    if (rc == 0)
        rc = sp_buf_addf(out,
                         ",\"state\":\"%s\",\"progress\":%d,\"attempts\":%lld,"
                         "\"max_attempts\":%lld,\"priority\":\"%s\"",
                         sp_state_name(j->state), j->progress, (long long)j->attempts,
                         (long long)j->max_attempts, j->high_priority ? "high" : "normal");
    if (rc == 0)
        rc = api__time(out, "created_at", j->created_at);
    if (rc == 0)
        rc = api__time(out, "started_at", j->started_at);
    if (rc == 0)
        rc = api__time(out, "finished_at", j->finished_at);
    if (rc == 0)
        rc = api__time(out, "updated_at", j->updated_at);
    if (rc == 0)
        rc = api__time(out, "next_attempt_at",
                       j->state == SP_STATE_RETRYING ? j->next_attempt_at : 0);
    if (rc == 0)
        rc = api__time(out, "run_at", j->run_at);
    if (rc == 0)
        rc = sp_buf_addf(out, ",\"cancel_requested\":%s",
                         j->cancel_requested ? "true" : "false");
    if (rc == 0 && j->callback_url == NULL)
        rc = sp_buf_adds(out, ",\"callback_url\":null");
    if (rc == 0 && j->callback_url != NULL) {
        rc = sp_buf_adds(out, ",\"callback_url\":");
        if (rc == 0)
            rc = api__str(out, j->callback_url);
    }
    if (rc == 0 && !j->has_error)
        rc = sp_buf_adds(out, ",\"error\":null");
    if (rc == 0 && j->has_error) {
        rc = sp_buf_adds(out, ",\"error\":{\"code\":");
        if (rc == 0)
            rc = api__str(out, j->error_code);
        if (rc == 0)
            rc = sp_buf_adds(out, ",\"message\":");
        if (rc == 0)
            rc = api__str(out, j->error_message);
        if (rc == 0)
            rc = sp_buf_addf(out, ",\"retryable\":%s}", j->error_retryable ? "true" : "false");
    }
    if (rc == 0)
        rc = api__attempt_log(out, j->attempt_log);
    if (rc == 0)
        rc = api__outputs(out, j);
    if (rc == 0)
        rc = api__stored(out, "metadata", j->metadata);
    if (rc == 0)
        rc = api__stored(out, "params", j->params);
    if (rc == 0)
        rc = api__stored(out, "input", j->input);
    if (rc == 0)
        rc = sp_buf_addc(out, '}');
    if (rc < 0) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

int api_job_render_list(const sp_job *jobs, size_t n, sp_buf *out)
{
    int rc = sp_buf_addc(out, '[');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = sp_buf_addc(out, ',');
        if (rc == 0)
            rc = api_job_render(&jobs[i], out);
    }
    return rc == 0 ? sp_buf_addc(out, ']') : rc;
}

void api_job_etag(const sp_job *j, char out[32])
{
    snprintf(out, 32, "\"%lld\"", (long long)j->version);
}

/* Whether output `listed` lists the folder that name is in: "hls/master.m3u8" lists
 * every file under "hls/". */
static bool api__in_folder(const char *listed, const char *name)
{
    const char *slash = strrchr(listed, '/');
    if (slash == NULL)
        return false;
    size_t n = (size_t)(slash - listed) + 1;
    return strncmp(listed, name, n) == 0 && name[n] != '\0';
}

int api_job_output(const sp_job *j, const char *name, char *ctype, size_t cap)
{
    json_t *stored = j->outputs ? json_loads(j->outputs, 0, NULL) : NULL;
    size_t i;
    json_t *o;
    int rc = SP_ENOTFOUND;
    json_array_foreach(stored, i, o) {
        const char *n = json_string_value(json_object_get(o, "name"));
        if (n && strcmp(n, name) == 0) {
            const char *t = json_string_value(json_object_get(o, "content_type"));
            if (t == NULL || t[0] == '\0' || strpbrk(t, "\r\n") != NULL)
                t = "application/octet-stream";
            snprintf(ctype, cap, "%s", t);
            rc = 0;
            break;
        }
        if (n && api__in_folder(n, name)) { /* a file of a listed set: typed by its name */
            snprintf(ctype, cap, "%s", sp_blob_content_type(name));
            rc = 0;
        }
    }
    json_decref(stored);
    return rc;
}

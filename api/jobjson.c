/* jobjson.c - JSON rendering of a job (see jobjson.h). */
#include "jobjson.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/util.h"
#include "validate.h"

/* A JSON string for text from the record; bytes that are not UTF-8 become '?'. */
static json_t *api__str(const char *s)
{
    json_t *v = json_string(s ? s : "");
    if (v != NULL || s == NULL)
        return v;
    size_t n = strlen(s);
    char *copy = sp_malloc(n + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    v = json_string(copy);
    sp_free(copy);
    return v;
}

static json_t *api__time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char t[SP_TIME_LEN];
    sp_format_time(ms, t);
    return json_string(t);
}

/* A stored JSON text as a value (null when absent or unparsable). */
static json_t *api__stored(const char *text)
{
    if (text == NULL || text[0] == '\0')
        return json_null();
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

static json_t *api__outputs(const sp_job *j)
{
    json_t *out = json_array();
    json_t *stored = api__stored(j->outputs);
    size_t i;
    json_t *o;
    if (out == NULL) {
        json_decref(stored);
        return NULL;
    }
    json_array_foreach(stored, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!json_is_object(o) || name == NULL || !sp_blob_name_valid(name))
            continue;
        json_t *e = json_object();
        char url[160];
        snprintf(url, sizeof url, "/v1/jobs/%s/outputs/%s", j->id, name);
        if (e == NULL || json_object_set_new(e, "name", json_string(name)) < 0 ||
            json_object_set_new(e, "url", json_string(url)) < 0) {
            json_decref(e);
            json_decref(out);
            json_decref(stored);
            return NULL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
            if (strcmp(k, "name") != 0 && strcmp(k, "url") != 0)
                json_object_set(e, k, v);
        }
        if (json_array_append_new(out, e) < 0) {
            json_decref(out);
            json_decref(stored);
            return NULL;
        }
    }
    json_decref(stored);
    return out;
}

static json_t *api__error(const sp_job *j)
{
    if (!j->has_error)
        return json_null();
    return json_pack("{s:o, s:o, s:b}", "code", api__str(j->error_code), "message",
                     api__str(j->error_message), "retryable", j->error_retryable ? 1 : 0);
}

int api_job_render(const sp_job *j, sp_buf *out)
{
    json_t *o = json_object();
    if (o == NULL)
        return SP_ENOMEM;
    /* json_object_set_new takes ownership even on failure; a NULL value fails. */
    int bad = 0;
    bad |= json_object_set_new(o, "id", api__str(j->id));
    bad |= json_object_set_new(o, "type", api__str(j->type));
    bad |= json_object_set_new(o, "queue", api__str(j->queue));
    bad |= json_object_set_new(o, "state", json_string(sp_state_name(j->state)));
    bad |= json_object_set_new(o, "progress", json_integer(j->progress));
    bad |= json_object_set_new(o, "attempts", json_integer(j->attempts));
    bad |= json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    bad |= json_object_set_new(o, "priority", json_string(j->high_priority ? "high" : "normal"));
    bad |= json_object_set_new(o, "created_at", api__time(j->created_at));
    bad |= json_object_set_new(o, "started_at", api__time(j->started_at));
    bad |= json_object_set_new(o, "finished_at", api__time(j->finished_at));
    bad |= json_object_set_new(o, "updated_at", api__time(j->updated_at));
    bad |= json_object_set_new(
        o, "next_attempt_at",
        api__time(j->state == SP_STATE_RETRYING ? j->next_attempt_at : 0));
    bad |= json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    bad |= json_object_set_new(o, "error", api__error(j));
    bad |= json_object_set_new(o, "outputs", api__outputs(j));
    bad |= json_object_set_new(o, "metadata", api__stored(j->metadata));
    bad |= json_object_set_new(o, "params", api__stored(j->params));
    bad |= json_object_set_new(o, "input", api__stored(j->input));
    int rc = bad ? SP_ENOMEM : api_json_append(out, o);
    json_decref(o);
    return rc;
}

void api_job_etag(const sp_job *j, char out[32])
{
    snprintf(out, 32, "\"%lld\"", (long long)j->version);
}

int api_job_output(const sp_job *j, const char *name, char *ctype, size_t cap)
{
    json_t *stored = api__stored(j->outputs);
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
    }
    json_decref(stored);
    return rc;
}

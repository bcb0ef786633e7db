/* fuzz_job.c - a job record as Redis holds it, read field by field (sp_job_set_field,
 * values of any bytes, as a worker or an older version may have stored them), then
 * shown as the API shows it (api_job_render): the answer must be one valid JSON object
 * with the record's id and a known state, whose every output can be served
 * (api_job_output) with a content type fit for a header.
 *
 * Input: records of [field index][length, 2 bytes little-endian][value]. The id is the
 * one the API validated in the path, so it is set last from a fixed valid id. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobjson.h"
#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/job.h"

#define ID "01hzk2v5q0000000000000000000000000aa"

static const char *const fields[] = {
    "type", "queue", "state", "progress", "attempts", "max_attempts", "retry_base_ms",
    "retry_cap_ms", "priority", "cancel_requested", "version", "created_at", "started_at",
    "finished_at", "updated_at", "next_attempt_at", "lease_until", "worker", "token",
    "error_code", "error_message", "error_retryable", "params", "input", "outputs",
    "metadata", "unknown", "",
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* jansson refuses a few things that are valid JSON (and that the API's syntax check
 * passes on): numbers past a double, and "\u0000" inside an object key. */
static bool jansson_limit(const json_error_t *e)
{
    return strstr(e->text, "overflow") || strstr(e->text, "too big") ||
           strstr(e->text, "NUL byte in object key");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sp_job j;
    sp_job_init(&j);
    size_t i = 0;
    while (i + 3 <= size) {
        const char *name = fields[data[i] % NFIELDS];
        size_t len = (size_t)data[i + 1] | (size_t)data[i + 2] << 8;
        i += 3;
        if (len > size - i)
            len = size - i;
        if (sp_job_set_field(&j, name, (const char *)data + i, len) < 0)
            abort();
        i += len;
    }
    if (!sp_id_valid(ID) || sp_job_set_field(&j, "id", ID, strlen(ID)) < 0)
        abort();

    sp_buf out;
    sp_buf_init(&out, (size_t)1 << 26);
    if (api_job_render(&j, &out) < 0)
        abort();
    json_error_t jerr;
    json_t *v = json_loadb(out.data, out.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (v == NULL) {
        if (!jansson_limit(&jerr))
            abort();
        goto done;
    }
    const char *id = json_string_value(json_object_get(v, "id"));
    const char *state = json_string_value(json_object_get(v, "state"));
    sp_state st;
    if (!json_is_object(v) || id == NULL || strcmp(id, ID) != 0 || state == NULL ||
        sp_state_parse(state, &st) < 0)
        abort();
    json_t *outputs = json_object_get(v, "outputs");
    if (!json_is_array(outputs))
        abort();
    size_t k;
    json_t *o;
    json_array_foreach(outputs, k, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        char ctype[128];
        if (name == NULL || !sp_blob_name_valid(name) ||
            api_job_output(&j, name, ctype, sizeof ctype) != 0 || ctype[0] == '\0' ||
            strpbrk(ctype, "\r\n"))
            abort();
    }
    json_decref(v);
done:
    {
        char etag[32];
        api_job_etag(&j, etag);
        if (etag[0] != '"' || etag[strlen(etag) - 1] != '"')
            abort();
    }
    sp_buf_free(&out);
    sp_job_clear(&j);
    return 0;
}

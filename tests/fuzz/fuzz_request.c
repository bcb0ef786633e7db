/* fuzz_request.c - JSON request validation for POST /v1/videos and /v1/exports (as
 * the handlers do it: parse with jansson, validate, build params, write inline rows),
 * and the text-parameter path (query strings and form fields). */
#include <jansson.h>
#include <stdint.h>
#include <string.h>

#include <stdlib.h>

#include "jsonv.h"
#include "spool/buf.h"
#include "validate.h"

static int sink(void *ud, const char *d, size_t n, sp_err *err)
{
    (void)err;
    return sp_buf_add(ud, d, n) < 0 ? SP_ENOMEM : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_invalid inv;
    sp_buf out;
    sp_buf_init(&out, 1 << 26);
    json_error_t jerr;
    /* The allocation-free syntax check agrees with jansson (which also refuses numbers
     * that overflow a double, nests up to 2048 deep, and stops at a raw NUL byte). */
    json_t *any = json_loadb((const char *)data, size,
                             JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
    bool mine = api_jsonv_valid((const char *)data, size);
    /* (Nesting past API_JSONV_MAX_DEPTH takes more than 2 * that many bytes.) */
    if (any && !mine && memchr(data, 0, size) == NULL && size <= 2 * API_JSONV_MAX_DEPTH)
        abort();
    if (!any && mine && !strstr(jerr.text, "overflow") && !strstr(jerr.text, "too big"))
        abort();
    json_decref(any);
    json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (req) {
        api_video_req v;
        api_video_init(&v);
        if (api_video_from_json(&v, req, &inv) == 0)
            api_video_params(&v, &out);
        api_export_req x;
        api_export_init(&x);
        if (api_export_from_json(&x, req, &inv) == 0) {
            sp_err err;
            api_export_params(&x, &out);
            if (x.rows)
                api_export_write_rows(&x, sink, &out, &err);
            for (size_t i = 0; i < api_export_ncolumns(&x); i++)
                (void)api_export_column_key(&x, i);
        }
        api_export_free(&x);
        json_decref(req);
    }
    /* name=value lines, as a query string or form fields would give them */
    char line[4096];
    api_video_req v;
    api_video_init(&v);
    api_export_req x;
    api_export_init(&x);
    size_t i = 0;
    while (i < size) {
        size_t n = 0;
        while (i < size && data[i] != '\n' && n < sizeof line - 1)
            line[n++] = (char)data[i++];
        i++;
        line[n] = '\0';
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        api_video_field(&v, line, eq + 1, line[0] & 1, &inv);
        api_export_field(&x, line, eq + 1, &inv);
    }
    if (api_export_fields_done(&x, &inv) == 0)
        api_export_params(&x, &out);
    api_export_free(&x);
    sp_buf_free(&out);
    return 0;
}

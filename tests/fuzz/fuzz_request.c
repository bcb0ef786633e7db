/* fuzz_request.c - JSON request validation for POST /v1/videos and /v1/exports (as
 * the handlers do it: a video body through jansson; an export body through the
 * streaming reader, whole and in small chunks, which must agree), the JSON validity
 * check of stored texts against jansson, and the text-parameter path (query strings
 * and form fields). */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "exportbody.h"
#include "json.h"
#include "spool/buf.h"
#include "validate.h"

static int sink(void *ud, const char *d, size_t n)
{
    return sp_buf_add(ud, d, n) < 0 ? SP_ENOMEM : 0;
}

/* The export body fed in chunks of `chunk` bytes: its code, rows into out. */
static int export_body(const uint8_t *data, size_t size, size_t chunk, sp_buf *out)
{
    api_export_req x;
    api_invalid inv;
    api_export_init(&x);
    api_xbody *b = api_xbody_new(sink, out);
    if (b == NULL)
        abort();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < size; i += chunk)
        rc = api_xbody_feed(b, (const char *)data + i, size - i < chunk ? size - i : chunk, &inv);
    if (rc == 0)
        rc = api_xbody_finish(b, &x, &inv);
    if (rc == 0) {
        sp_buf params;
        sp_buf_init(&params, 1 << 26);
        api_export_params(&x, &params);
        for (size_t i = 0; i < api_export_ncolumns(&x); i++)
            (void)api_export_column_key(&x, i);
        sp_buf_free(&params);
    }
    api_xbody_free(b);
    api_export_free(&x);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_invalid inv;
    sp_buf out;
    sp_buf_init(&out, 1 << 26);
    json_error_t jerr;
    /* Every text jansson takes (raw NUL bytes aside) passes the validity check. */
    json_t *any = json_loadb((const char *)data, size,
                             JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
    if (any && memchr(data, 0, size) == NULL && !api_json_valid((const char *)data, size))
        abort();
    json_decref(any);
    json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (req) {
        api_video_req v;
        api_video_init(&v);
        if (api_video_from_json(&v, req, &inv) == 0)
            api_video_params(&v, &out);
        json_decref(req);
    }
    /* The streaming export reader: the same answer and rows however the body is cut,
     * and its rows are NDJSON that jansson (spool-pdf's reader) takes line by line. */
    sp_buf rows1, rows2;
    sp_buf_init(&rows1, 1 << 26);
    sp_buf_init(&rows2, 1 << 26);
    int rc1 = export_body(data, size, size ? size : 1, &rows1);
    int rc2 = export_body(data, size, 1 + size % 7, &rows2);
    if (rc1 != rc2 || (rc1 == 0 && (rows1.len != rows2.len ||
                                    memcmp(sp_buf_cstr(&rows1), sp_buf_cstr(&rows2), rows1.len))))
        abort();
    if (rc1 == 0) {
        const char *p = sp_buf_cstr(&rows1), *end = p + rows1.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            json_t *row = json_loadb(p, (size_t)(nl - p), 0, &jerr);
            if (row == NULL || (!json_is_object(row) && !json_is_array(row)))
                abort();
            json_decref(row);
            p = nl + 1;
        }
    }
    sp_buf_free(&rows1);
    sp_buf_free(&rows2);
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

/* exports.c - POST /v1/exports: a PDF export, as JSON with the rows inline (written to
 * the blob `dataset` as NDJSON so the worker always streams) or a source_url to fetch,
 * or as a CSV or NDJSON body (parameters in the query string) streamed to the blob
 * `dataset` while it is checked line by line. */
#include <jansson.h>
#include <string.h>

#include "dataset.h"
#include "handlers.h"
#include "reply.h"
#include "spool/alloc.h"
#include "submit.h"
#include "validate.h"

enum { API_EXPORT_JSON, API_EXPORT_CSV, API_EXPORT_NDJSON };

typedef struct api_export_state {
    int kind;
    api_export_req x;
    api_csv csv;
    api_ndjson nd;
} api_export_state;

static void api__export_free(void *p)
{
    api_export_state *st = p;
    if (st == NULL)
        return;
    api_export_free(&st->x);
    if (st->kind == API_EXPORT_CSV)
        api_csv_free(&st->csv);
    if (st->kind == API_EXPORT_NDJSON)
        api_ndjson_free(&st->nd);
    sp_free(st);
}

static const char api__export_types[] =
    "application/json, text/csv or application/x-ndjson";

static bool api__is_ndjson(const char *t)
{
    return strcmp(t, "application/x-ndjson") == 0 || strcmp(t, "application/ndjson") == 0 ||
           strcmp(t, "application/jsonl") == 0 || strcmp(t, "application/x-jsonlines") == 0;
}

static int api__query_field(void *ud, const char *name, const char *value)
{
    api_req *r = ud;
    api_export_state *st = r->state;
    api_invalid inv;
    if (st->kind == API_EXPORT_JSON)
        api_invalid_set(&inv, name, "parameters of a JSON request go in its body, not the query "
                                    "string");
    else if (api_export_field(&st->x, name, value, &inv) == 0)
        return 0;
    api_reply_invalid(r, &inv);
    return -1;
}

enum MHD_Result api_exports_begin(api_req *r)
{
    const api_config *cfg = r->srv->cfg;
    const char *ct = api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || api_hdr_media_type(ct, &r->media) < 0)
        return api_reply_error(r, API_E_MEDIA_TYPE, "Content-Type must be %s", api__export_types);
    int kind;
    if (strcmp(r->media.type, "application/json") == 0)
        kind = API_EXPORT_JSON;
    else if (strcmp(r->media.type, "text/csv") == 0)
        kind = API_EXPORT_CSV;
    else if (api__is_ndjson(r->media.type))
        kind = API_EXPORT_NDJSON;
    else
        return api_reply_error(r, API_E_MEDIA_TYPE, "Content-Type must be %s, not %s",
                               api__export_types, r->media.type);
    if (r->media.charset[0] && strcmp(r->media.charset, "utf-8") != 0 &&
        strcmp(r->media.charset, "us-ascii") != 0)
        return api_reply_error(r, API_E_MEDIA_TYPE, "the body must be UTF-8, not %s",
                               r->media.charset);
    int64_t limit = kind == API_EXPORT_JSON ? cfg->max_json : cfg->max_upload;
    if (api_submit_check_length(r, limit) < 0)
        return api_replied(r);
    api_export_state *st = sp_calloc(1, sizeof *st);
    if (st == NULL)
        return api_reply_error(r, API_E_INTERNAL, "out of memory");
    r->state = st;
    r->state_free = api__export_free;
    st->kind = kind;
    api_export_init(&st->x);
    if (kind == API_EXPORT_CSV)
        api_csv_init(&st->csv);
    if (api_submit_begin(r) < 0 || api_query_each(r, api__query_field, r) != 0)
        return api_replied(r);
    if (kind == API_EXPORT_JSON) {
        sp_buf_init(&r->text, (size_t)cfg->max_json);
        return MHD_YES;
    }
    api_invalid inv;
    int rc = api_export_fields_done(&st->x, &inv);
    if (rc == SP_EINVAL)
        return api_reply_invalid(r, &inv);
    if (rc < 0)
        return api_reply_error(r, API_E_INTERNAL, "out of memory");
    if (kind == API_EXPORT_NDJSON)
        api_ndjson_init(&st->nd, api_export_ncolumns(&st->x) == 0);
    if (api_submit_precheck(r, "pdf.export") < 0 || api_submit_blob_open(r, "dataset") < 0)
        return api_replied(r);
    return MHD_YES;
}

enum MHD_Result api_exports_data(api_req *r, const char *data, size_t n)
{
    api_export_state *st = r->state;
    if (st->kind == API_EXPORT_JSON) {
        if (sp_buf_add(&r->text, data, n) < 0)
            return api_reply_error(r, API_E_TOO_LARGE, "the JSON body is larger than %lld bytes",
                                   (long long)r->srv->cfg->max_json);
        api_submit_hash(r, data, n);
        return MHD_YES;
    }
    api_invalid inv;
    int rc = st->kind == API_EXPORT_CSV ? api_csv_feed(&st->csv, data, n, &inv)
                                        : api_ndjson_feed(&st->nd, data, n, &inv);
    if (rc == SP_EINVAL)
        return api_reply_invalid(r, &inv);
    if (rc < 0)
        return api_reply_error(r, API_E_INTERNAL, "out of memory");
    if (api_submit_blob_write(r, data, n) < 0)
        return api_replied(r);
    return MHD_YES;
}

static int api__write_rows(void *ud, const char *data, size_t n, sp_err *err)
{
    api_req *r = ud;
    if (api_submit_blob_write(r, data, n) < 0)
        return sp_err_set(err, SP_ECANCELLED, "answered");
    return 0;
}

static int api__append_rows(void *ud, const char *data, size_t n, sp_err *err)
{
    int rc = sp_buf_add(ud, data, n);
    return rc < 0 ? sp_err_set(err, rc, "the rows do not fit inline") : 0;
}

/* {"inline":"...","format":"ndjson","bytes":N}: rows small enough to travel in the job
 * record, so a small export costs no file. */
static int api__input_inline(const sp_buf *rows, sp_buf *out)
{
    json_t *in = json_pack("{s:s%, s:s, s:I}", "inline", sp_buf_cstr(rows), rows->len, "format",
                           "ndjson", "bytes", (json_int_t)rows->len);
    int rc = in ? api_json_append(out, in) : SP_ENOMEM;
    json_decref(in);
    return rc;
}

/* {"blob":"dataset","format":...,"bytes":N} or {"url":...,"format":...} into out. */
static int api__input(const char *format, int64_t bytes, const char *url, sp_buf *out)
{
    json_t *in = url ? json_pack("{s:s, s:s}", "url", url, "format", format)
                     : json_pack("{s:s, s:s, s:I}", "blob", "dataset", "format", format, "bytes",
                                 (json_int_t)bytes);
    int rc = in ? api_json_append(out, in) : SP_ENOMEM;
    json_decref(in);
    return rc;
}

/* A JSON request: validate it, write inline rows to the dataset blob. */
static enum MHD_Result api__end_json(api_req *r, api_export_state *st, sp_buf *input)
{
    json_error_t jerr;
    json_t *req = json_loadb(r->text.data ? r->text.data : "", r->text.len,
                             JSON_REJECT_DUPLICATES, &jerr);
    if (req == NULL)
        return api_reply_error(r, API_E_INVALID_JSON, "the body is not valid JSON: %s (line %d, "
                                                      "column %d)",
                               jerr.text, jerr.line, jerr.column);
    api_invalid inv;
    int rc = api_export_from_json(&st->x, req, &inv);
    enum MHD_Result ret = MHD_YES;
    if (rc == SP_EINVAL) {
        ret = api_reply_invalid(r, &inv);
    } else if (rc < 0) {
        ret = api_reply_error(r, API_E_INTERNAL, "out of memory");
    } else if (st->x.rows == NULL) {
        if (api__input(st->x.format, 0, st->x.source_url, input) < 0)
            ret = api_reply_error(r, API_E_INTERNAL, "out of memory");
    } else {
        sp_err err;
        int64_t bytes = 0;
        sp_buf rows;
        sp_buf_init(&rows, (size_t)r->srv->cfg->inline_max);
        int irc = r->srv->cfg->inline_max > 0
                      ? api_export_write_rows(&st->x, api__append_rows, &rows, &err)
                      : SP_ETOOBIG;
        if (irc == 0) {
            if (api__input_inline(&rows, input) < 0)
                ret = api_reply_error(r, API_E_INTERNAL, "out of memory");
        } else if (irc != SP_ETOOBIG) {
            ret = api_reply_error(r, API_E_INTERNAL, "%s", err.msg);
        } else if (api_submit_blob_open(r, "dataset") < 0 ||
            api_export_write_rows(&st->x, api__write_rows, r, &err) < 0 ||
            api_submit_blob_commit(r, &bytes) < 0)
            ret = r->status ? api_replied(r) : api_reply_error(r, API_E_INTERNAL, "%s", err.msg);
        else if (api__input("ndjson", bytes, NULL, input) < 0)
            ret = api_reply_error(r, API_E_INTERNAL, "out of memory");
        sp_buf_free(&rows);
    }
    st->x.rows = NULL; /* borrowed from req */
    json_decref(req);
    return ret;
}

/* A CSV or NDJSON body: finish its checks and commit it. */
static enum MHD_Result api__end_body(api_req *r, api_export_state *st, sp_buf *input)
{
    api_invalid inv;
    int rc = st->kind == API_EXPORT_CSV ? api_csv_finish(&st->csv, &inv)
                                        : api_ndjson_finish(&st->nd, &inv);
    if (rc < 0)
        return api_reply_invalid(r, &inv);
    if (st->kind == API_EXPORT_CSV) {
        for (size_t i = 0; i < api_export_ncolumns(&st->x); i++) {
            const char *key = api_export_column_key(&st->x, i);
            if (key && !api_csv_has_column(&st->csv, key)) {
                char f[64];
                snprintf(f, sizeof f, "columns[%zu].key", i);
                api_invalid_set(&inv, f, "the CSV header has no column '%s'", key);
                return api_reply_invalid(r, &inv);
            }
        }
    }
    int64_t bytes;
    if (api_submit_blob_commit(r, &bytes) < 0)
        return api_replied(r);
    if (api__input(st->kind == API_EXPORT_CSV ? "csv" : "ndjson", bytes, NULL, input) < 0)
        return api_reply_error(r, API_E_INTERNAL, "out of memory");
    return MHD_YES;
}

enum MHD_Result api_exports_end(api_req *r)
{
    api_export_state *st = r->state;
    sp_buf params, input;
    sp_buf_init(&params, 1024 * 1024);
    sp_buf_init(&input, 8192);
    enum MHD_Result ret = st->kind == API_EXPORT_JSON ? api__end_json(r, st, &input)
                                                      : api__end_body(r, st, &input);
    if (r->status == 0 && ret == MHD_YES) {
        if (api_export_params(&st->x, &params) < 0)
            ret = api_reply_error(r, API_E_INTERNAL, "out of memory");
        else
            ret = api_submit(r, "pdf.export", sp_buf_cstr(&params), sp_buf_cstr(&input),
                             st->x.high_priority);
    }
    sp_buf_free(&params);
    sp_buf_free(&input);
    return ret;
}

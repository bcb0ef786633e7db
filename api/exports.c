/* exports.c - POST /v1/exports: a PDF export, as JSON with the rows inline or a
 * source_url to fetch, or as a CSV or NDJSON body (parameters in the query string).
 * Bodies are read as they stream: a JSON body's rows and an NDJSON body are checked
 * row by row and written as canonical NDJSON (rows.h), kept in the job record while
 * they fit SPOOL_INLINE_DATASET_MAX and in the blob `dataset` past it; a CSV body is
 * checked line by line (dataset.h) as it streams to the blob. */
#include <jansson.h>
#include <string.h>

#include "dataset.h"
#include "exportbody.h"
#include "handlers.h"
#include "reply.h"
#include "spool/alloc.h"
#include "submit.h"
#include "validate.h"

enum { API_EXPORT_JSON, API_EXPORT_CSV, API_EXPORT_NDJSON };

/* NDJSON bound for the dataset blob is written in blocks of about this size. */
#define API_EXPORT_BLOCK (64 * 1024)

typedef struct api_export_state {
    int kind;
    api_export_req x;
    api_csv csv;          /* CSV bodies */
    api_rows *nd;         /* NDJSON bodies */
    api_xbody *xb;        /* JSON bodies */
    sp_buf inline_rows;   /* a JSON body's rows, while they fit inline */
    sp_buf block;         /* rows not yet written to the dataset blob */
    bool to_blob;         /* the rows go to the dataset blob */
} api_export_state;

static void api__export_free(void *p)
{
    api_export_state *st = p;
    if (st == NULL)
        return;
    api_export_free(&st->x);
    api_csv_free(&st->csv);
    api_rows_free(st->nd);
    api_xbody_free(st->xb);
    sp_buf_free(&st->inline_rows);
    sp_buf_free(&st->block);
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

/* Write the block of rows to the dataset blob. 0, or -1 when it answered. */
static int api__flush(api_req *r, api_export_state *st)
{
    int rc = st->block.len ? api_submit_blob_write(r, st->block.data, st->block.len) : 0;
    sp_buf_reset(&st->block);
    return rc;
}

/* Rows as canonical NDJSON (rows.h): kept inline while they fit, then to the blob. */
static int api__rows_out(void *ud, const char *data, size_t n)
{
    api_req *r = ud;
    api_export_state *st = r->state;
    if (!st->to_blob) {
        int rc = sp_buf_add(&st->inline_rows, data, n);
        if (rc != SP_ETOOBIG)
            return rc;
        /* Too large to travel in the job record: from now on a file. */
        if (api_submit_precheck(r, "pdf.export") < 0 || api_submit_blob_open(r, "dataset") < 0)
            return SP_ECANCELLED;
        st->to_blob = true;
        if (api_submit_blob_write(r, st->inline_rows.data, st->inline_rows.len) < 0)
            return SP_ECANCELLED;
        sp_buf_free(&st->inline_rows);
    }
    int rc = sp_buf_add(&st->block, data, n);
    if (rc == 0 && st->block.len >= API_EXPORT_BLOCK && api__flush(r, st) < 0)
        return SP_ECANCELLED;
    return rc;
}

/* The answer for a failed check of the body: 400 for JSON that is not JSON, 422 for
 * a field, or what went wrong otherwise (nothing when the sink already answered). */
static enum MHD_Result api__refuse(api_req *r, int rc, const api_invalid *inv)
{
    if (r->status != 0)
        return api_replied(r);
    if (rc == SP_EPROTO)
        return api_reply_error(r, API_E_INVALID_JSON, "the body is not valid JSON: %s",
                               inv->message);
    if (rc == SP_EINVAL)
        return api_reply_invalid(r, inv);
    return api_reply_code(r, rc, NULL);
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
        return api_reply_code(r, SP_ENOMEM, NULL);
    r->state = st;
    r->state_free = api__export_free;
    st->kind = kind;
    api_export_init(&st->x);
    api_csv_init(&st->csv);
    sp_buf_init(&st->inline_rows, (size_t)cfg->inline_max);
    sp_buf_init(&st->block, API_EXPORT_BLOCK + SP_EXPORT_MAX_ROW_BYTES + 1);
    if (api_submit_begin(r) < 0 || api_query_each(r, api__query_field, r) != 0)
        return api_replied(r);
    if (kind == API_EXPORT_JSON) {
        if ((st->xb = api_xbody_new(api__rows_out, r)) == NULL)
            return api_reply_code(r, SP_ENOMEM, NULL);
        return MHD_YES;
    }
    api_invalid inv;
    int rc = api_export_fields_done(&st->x, &inv);
    if (rc < 0)
        return api__refuse(r, rc, &inv);
    if (kind == API_EXPORT_NDJSON) {
        api_rows_opts ro = {.ndjson = true,
                            .ncolumns = (long)api_export_ncolumns(&st->x),
                            .sink = api__rows_out,
                            .ud = r};
        if ((st->nd = api_rows_new(&ro)) == NULL)
            return api_reply_code(r, SP_ENOMEM, NULL);
    }
    st->to_blob = true;
    if (api_submit_precheck(r, "pdf.export") < 0 || api_submit_blob_open(r, "dataset") < 0)
        return api_replied(r);
    return MHD_YES;
}

enum MHD_Result api_exports_data(api_req *r, const char *data, size_t n)
{
    api_export_state *st = r->state;
    api_invalid inv;
    int rc;
    switch (st->kind) {
    case API_EXPORT_JSON:
        if (r->body_bytes > (uint64_t)r->srv->cfg->max_json)
            return api_reply_error(r, API_E_TOO_LARGE, "the JSON body is larger than %lld bytes",
                                   (long long)r->srv->cfg->max_json);
        api_submit_hash(r, data, n);
        rc = api_xbody_feed(st->xb, data, n, &inv);
        break;
    case API_EXPORT_NDJSON:
        api_submit_hash(r, data, n);
        rc = api_rows_feed(st->nd, data, n, &inv);
        break;
    default:
        rc = api_csv_feed(&st->csv, data, n, &inv);
        if (rc == 0)
            return api_submit_blob_write(r, data, n) < 0 ? api_replied(r) : MHD_YES;
    }
    return rc < 0 ? api__refuse(r, rc, &inv) : MHD_YES;
}

/* The body has ended: its last checks, its rows committed, and its input object. 0, or
 * -1 when it answered. */
static int api__finish(api_req *r, api_export_state *st, sp_buf *input)
{
    api_invalid inv;
    int rc;
    switch (st->kind) {
    case API_EXPORT_JSON:
        rc = api_xbody_finish(st->xb, &st->x, &inv);
        break;
    case API_EXPORT_NDJSON:
        rc = api_rows_finish(st->nd, api_export_ncolumns(&st->x), &inv);
        if (rc == 0 && api_export_ncolumns(&st->x) == 0) {
            char what[80];
            snprintf(what, sizeof what, "the first row's %zu keys name the columns",
                     api_rows_first_keys(st->nd));
            rc = api_export_columns_fit(&st->x, api_rows_first_keys(st->nd), "body", what, &inv);
        }
        break;
    default:
        rc = api_csv_finish(&st->csv, &inv);
        if (rc == 0 && api_export_ncolumns(&st->x) == 0) {
            char what[80];
            snprintf(what, sizeof what, "the CSV header names %zu columns", st->csv.nheader);
            rc = api_export_columns_fit(&st->x, st->csv.nheader, "body", what, &inv);
        }
        for (size_t i = 0; rc == 0 && i < api_export_ncolumns(&st->x); i++) {
            const char *key = api_export_column_key(&st->x, i);
            if (key && !api_csv_has_column(&st->csv, key)) {
                char f[64];
                snprintf(f, sizeof f, "columns[%zu].key", i);
                rc = api_invalid_set(&inv, f, "the CSV header has no column '%s'", key);
            }
        }
    }
    if (rc < 0) {
        api__refuse(r, rc, &inv);
        return -1;
    }
    if (st->kind == API_EXPORT_JSON && !api_xbody_has_rows(st->xb))
        rc = api_export_input(st->x.format, 0, st->x.source_url, input);
    else if (!st->to_blob)
        rc = api_export_input_inline(&st->inline_rows, input);
    else {
        int64_t bytes;
        if (api__flush(r, st) < 0 || api_submit_blob_commit(r, &bytes) < 0)
            return -1;
        rc = api_export_input(st->kind == API_EXPORT_CSV ? "csv" : "ndjson", bytes, NULL, input);
    }
    if (rc < 0) {
        api_reply_code(r, rc, NULL);
        return -1;
    }
    return 0;
}

enum MHD_Result api_exports_end(api_req *r)
{
    api_export_state *st = r->state;
    const api_config *cfg = r->srv->cfg;
    sp_buf params, input;
    /* params come from a body member budget or a query string; escaped, a byte takes at
     * most 6 ("\u0001"), and so do the inline rows */
    sp_buf_init(&params, 6 * API_XBODY_FIELDS_MAX + 4096);
    sp_buf_init(&input, 6 * (size_t)cfg->inline_max + API_URL_MAX * 6 + 4096);
    enum MHD_Result ret;
    if (api__finish(r, st, &input) < 0) {
        ret = api_replied(r);
    } else {
        int rc = api_export_params(&st->x, &params);
        ret = rc < 0 ? api_reply_code(r, rc, NULL)
                     : api_submit(r, "pdf.export", sp_buf_cstr(&params), sp_buf_cstr(&input),
                                  st->x.high_priority, st->x.callback_url, &st->x.when);
    }
    sp_buf_free(&params);
    sp_buf_free(&input);
    return ret;
}

/* dataset.h - the streaming check of a CSV export dataset sent as the request body (RFC
 * 4180 with a header line; NDJSON bodies are rows.h's). It is fed the body in chunks as
 * it streams to the blob store and keeps only the header, so a bad dataset is refused
 * with its line number before a job exists, and memory stays bounded. Its limits are
 * the ones spool-pdf applies (spool/limits.h), so a dataset it accepts is not failed by
 * the worker for them. */
#ifndef SPOOL_API_DATASET_H
#define SPOOL_API_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"
#include "spool/limits.h"
#include "spool/utf8.h"
#include "validate.h"

#define API_CSV_MAX_FIELDS SP_EXPORT_MAX_COLUMNS
#define API_CSV_HEADER_MAX (64 * 1024)
#define API_CSV_RECORD_MAX SP_EXPORT_MAX_ROW_BYTES

/* ---- CSV ---------------------------------------------------------------------- */

typedef struct api_csv {
    int state;
    uint64_t line;         /* current physical line (1-based) */
    uint64_t records;      /* data records (the header not counted) */
    uint64_t quote_line;   /* line where the open quoted field started */
    size_t field;          /* index of the current field in the record */
    size_t rec_bytes;      /* bytes of the current record so far (its line ends not
                            * counted, nor a blank line's) */
    bool rec_blank;        /* the current record has only spaces and tabs so far */
    size_t nheader;        /* fields in the header; 0 until it is complete */
    sp_buf header;         /* header names, each followed by a NUL */
    sp_utf8_stream utf8;
    sp_bom bom;            /* a leading UTF-8 byte order mark */
} api_csv;

void api_csv_init(api_csv *c);
void api_csv_free(api_csv *c); /* accepts NULL */

/* Check the next n bytes. A UTF-8 byte order mark at the start of the body is skipped,
 * as spool-pdf's reader skips it (spreadsheets write one). 0 or SP_EINVAL with inv ("body", "line N: ..."); SP_ENOMEM. */
int api_csv_feed(api_csv *c, const char *data, size_t n, api_invalid *inv);

/* The body has ended. 0 or SP_EINVAL (unterminated quote, no header line...). */
int api_csv_finish(api_csv *c, api_invalid *inv);

/* True when the (complete) header names key. */
bool api_csv_has_column(const api_csv *c, const char *key);

#endif

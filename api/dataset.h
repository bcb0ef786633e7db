/* dataset.h - streaming checks of export datasets sent as the request body: CSV (RFC
 * 4180 with a header line) and NDJSON (one JSON object or array per line). They are
 * fed the body in chunks as it streams to the blob store and keep only the header
 * (CSV) or the current line (NDJSON), so a bad dataset is refused with its line number
 * before a job exists, and memory stays bounded. */
#ifndef SPOOL_API_DATASET_H
#define SPOOL_API_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"
#include "validate.h"

#define API_CSV_MAX_FIELDS 1000
#define API_CSV_HEADER_MAX (64 * 1024)
#define API_NDJSON_LINE_MAX (1024 * 1024)

/* ---- CSV ---------------------------------------------------------------------- */

typedef struct api_csv {
    int state;
    uint64_t line;         /* current physical line (1-based) */
    uint64_t records;      /* data records (the header not counted) */
    uint64_t quote_line;   /* line where the open quoted field started */
    size_t field;          /* index of the current field in the record */
    size_t rec_bytes;      /* bytes of the current record so far */
    size_t nheader;        /* fields in the header; 0 until it is complete */
    sp_buf header;         /* header names, each followed by a NUL */
    int utf8_need;         /* UTF-8 continuation bytes still expected */
    unsigned char utf8_lo, utf8_hi; /* allowed range of the next continuation byte */
} api_csv;

void api_csv_init(api_csv *c);
void api_csv_free(api_csv *c); /* accepts NULL */

/* Check the next n bytes. 0 or SP_EINVAL with inv ("body", "line N: ..."); SP_ENOMEM. */
int api_csv_feed(api_csv *c, const char *data, size_t n, api_invalid *inv);

/* The body has ended. 0 or SP_EINVAL (unterminated quote, no header line...). */
int api_csv_finish(api_csv *c, api_invalid *inv);

/* True when the (complete) header names key. */
bool api_csv_has_column(const api_csv *c, const char *key);

/* ---- NDJSON ------------------------------------------------------------------- */

typedef struct api_ndjson {
    sp_buf line;       /* the line in progress */
    uint64_t lineno;   /* lines completed so far */
    uint64_t rows;     /* non-blank lines */
    bool need_object;  /* no columns given: the first row must be an object */
} api_ndjson;

/* need_object: no columns were given, so the first row must be an object (its keys
 * name the columns) and at least one row must come. */
void api_ndjson_init(api_ndjson *d, bool need_object);
void api_ndjson_free(api_ndjson *d); /* accepts NULL */

int api_ndjson_feed(api_ndjson *d, const char *data, size_t n, api_invalid *inv);
int api_ndjson_finish(api_ndjson *d, api_invalid *inv);

#endif

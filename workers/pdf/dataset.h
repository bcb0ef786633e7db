/* dataset.h - the PDF worker's dataset reader. Reads CSV (RFC 4180 through libcsv's
 * strict mode, a header line naming the columns), NDJSON (one JSON object or array per
 * line, through jansson) or a top-level JSON array of rows (a streaming splitter hands
 * each element to jansson) from a file, as a stream: memory stays bounded by the
 * longest row whatever the file's size. Rows come out one at a time as UTF-8 cells in
 * the order of the selected columns. Errors name the line of the input.
 *
 * A handle is used by one thread at a time. */
#ifndef SPOOL_PDF_DATASET_H
#define SPOOL_PDF_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

typedef enum sp_dataset_format {
    SP_DATASET_CSV = 0,
    SP_DATASET_NDJSON,
    SP_DATASET_JSON_ARRAY
} sp_dataset_format;

/* Parse a format name: "csv", "ndjson" or "json" (a top-level array; also
 * "json-array"). 0 or SP_EINVAL. */
int sp_dataset_format_parse(const char *name, sp_dataset_format *out);

/* "csv", "ndjson" or "json". */
const char *sp_dataset_format_name(sp_dataset_format f);

typedef struct sp_dataset_opts {
    sp_dataset_format format;
    size_t max_row_bytes; /* longest row (CSV record, NDJSON line, array element); 0: 1 MiB */
    size_t max_columns;   /* most columns in a CSV header or a first object; 0: 256 */
} sp_dataset_opts;

typedef struct sp_dataset sp_dataset;

/* One row: ncells UTF-8 strings (NUL-terminated, lengths in len) in the order of the
 * selected columns. Valid until the next call on the dataset. */
typedef struct sp_dataset_row {
    size_t ncells;
    const char *const *cell;
    const size_t *len;
    int64_t line;  /* the input line the row starts on (1-based) */
    int64_t index; /* 0 for the first data row */
} sp_dataset_row;

/* Open the file at path. On 0, *out is the dataset (close with sp_dataset_close).
 * SP_ENOTFOUND, SP_EIO, SP_ENOMEM with err set. */
int sp_dataset_open(const char *path, const sp_dataset_opts *o, sp_dataset **out, sp_err *err);

/* The same on an open file, read from its start; the dataset owns fd from now on and
 * closes it, also when this fails. */
int sp_dataset_open_fd(int fd, const sp_dataset_opts *o, sp_dataset **out, sp_err *err);

void sp_dataset_close(sp_dataset *ds); /* accepts NULL */

/* The column keys the data itself names: the CSV header, or the keys of the first row
 * when it is a JSON object (in their order). *n is 0 when the first JSON row is an
 * array or there are no rows. Reads ahead (the row is kept for sp_dataset_next). The
 * keys stay valid until the dataset is closed. 0 or an error as for sp_dataset_next. */
int sp_dataset_keys(sp_dataset *ds, const char *const **keys, size_t *n, sp_err *err);

/* Choose the columns rows are given in, by key (copied). For CSV every key must be in
 * the header (SP_EINVAL naming the missing one); a JSON object row gives "" for a key
 * it lacks; a JSON array row must have exactly n values. Without a call, rows come in
 * the columns sp_dataset_keys gives. */
int sp_dataset_select(sp_dataset *ds, const char *const *keys, size_t n, sp_err *err);

/* Read the next row. Returns 1 with *row filled, 0 at the end of the data, or:
 *   SP_EINVAL  malformed data: err says "line N: ..." (bad CSV quoting, a row with the
 *              wrong number of fields, invalid JSON, a row that is not an object or
 *              array, a row longer than max_row_bytes); permanent
 *   SP_EIO     the file could not be read
 *   SP_ENOMEM
 * After an error every further call returns the same error until a rewind. */
int sp_dataset_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err);

/* Start again from the first row (the selection is kept), also after an error.
 * 0 or SP_EIO. */
int sp_dataset_rewind(sp_dataset *ds, sp_err *err);

/* Bytes of the file consumed so far, and its size (-1 when unknown): for progress. */
int64_t sp_dataset_offset(const sp_dataset *ds);
int64_t sp_dataset_size(const sp_dataset *ds);

#endif

/* rows.h - the rows of a pdf.export as they stream in (the inline `rows` of a JSON body,
 * or an NDJSON body), checked one JSON event at a time and written out as canonical
 * NDJSON (one compact row per line), so the worker reads only what the API checked.
 * yajl parses (json.h); this module judges and writes. It keeps only the row in
 * progress, so memory is bounded by the longest row whatever the body's size.
 *
 * A row is an object (its keys name columns) or an array (its values in column order)
 * of strings, numbers, booleans and nulls (an NDJSON row's values may also be objects
 * or arrays, shown as JSON text), with no key twice, no NUL character, numbers that
 * fit a 64-bit integer or a double, and at most SP_EXPORT_MAX_ROW_BYTES as a line.
 * Whether arrays have one value per column, and whether the first row can name the
 * columns, depends on the columns; a JSON body may give them after its rows, so
 * api_rows_finish judges that (or each row as it ends, when they are known before).
 * These are the rules spool-pdf applies to the same NDJSON, so a row the API accepts
 * never fails the job. */
#ifndef SPOOL_API_ROWS_H
#define SPOOL_API_ROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json.h"
#include "validate.h"

/* Receives the canonical NDJSON: each row's line, then "\n". Returns 0, or a negative
 * code that stops the rows (the caller has answered the request). */
typedef int (*api_rows_sink)(void *ud, const char *data, size_t n);

typedef struct api_rows_opts {
    bool ndjson;       /* an NDJSON body fed with api_rows_feed: errors name its lines, and
                        * values may nest */
    long ncolumns;     /* the columns given, when known before the rows; -1: not yet */
    api_rows_sink sink; /* may be NULL: check only */
    void *ud;
} api_rows_opts;

typedef struct api_rows api_rows;

/* NULL when out of memory. */
api_rows *api_rows_new(const api_rows_opts *o);
void api_rows_free(api_rows *r); /* accepts NULL */

/* One event from inside the `rows` array of a JSON body (the array's own brackets
 * excluded). 0, or SP_EINVAL (the reason in api_rows_invalid), SP_ENOMEM, or the sink's
 * code. Usable as an api_jev_fn. */
int api_rows_event(void *r, api_jev ev, const char *text, size_t n);

/* The next n bytes of an NDJSON body (blank lines allowed, CR LF too; a UTF-8 byte
 * order mark at its start skipped, as spool-pdf skips it). 0, SP_EINVAL
 * with inv (field "body", "NDJSON line N: ..."), SP_ENOMEM, or the sink's code. */
int api_rows_feed(api_rows *r, const char *data, size_t n, api_invalid *inv);

/* All rows are in and the request gives ncolumns columns: judge what depends on them.
 * 0, SP_EINVAL with inv, SP_ENOMEM, or the sink's code. */
int api_rows_finish(api_rows *r, size_t ncolumns, api_invalid *inv);

/* Why the last call failed with SP_EINVAL. */
const api_invalid *api_rows_invalid(const api_rows *r);

/* The keys of the first row when it is an object (they name the columns when none are
 * given), else 0. */
size_t api_rows_first_keys(const api_rows *r);

/* Rows seen so far. */
uint64_t api_rows_count(const api_rows *r);

#endif

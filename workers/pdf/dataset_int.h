/* dataset_int.h - what the dataset reader's modules share (not for users of dataset.h):
 * the reader's state and each module's internal functions.
 *
 *   dataset.c        the public face, the read buffer, building rows
 *   dataset_csv.c    CSV through libcsv (CSV_STRICT), the header row, line numbers
 *   dataset_json.c   NDJSON (jansson per line) and JSON arrays (a splitter hands each
 *                    element to jansson), keys from the first object
 */
#ifndef SPOOL_PDF_DATASET_INT_H
#define SPOOL_PDF_DATASET_INT_H

#include <csv.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "spool/buf.h"
#include "spool/err.h"

#define SP_DATASET__READ_SIZE (64 * 1024)
#define SP_DATASET__CSV_BLOCK 4096 /* libcsv's field buffer grows by at least this much */

/* States of the JSON array splitter. */
enum { SP_DATASET__JA_START, SP_DATASET__JA_FIRST, SP_DATASET__JA_NEXT, SP_DATASET__JA_END, SP_DATASET__JA_DONE };

struct sp_dataset {
    int fd;
    sp_dataset_format fmt;
    size_t max_row;
    size_t max_cols;
    int64_t size;

    /* the read buffer: rbuf[rpos..rlen-1] not consumed yet; base is rbuf[0]'s offset */
    unsigned char *rbuf;
    size_t rlen, rpos;
    int64_t base;
    bool eof;
    bool bom_checked;
    int64_t line; /* line of rbuf[rpos], 1-based */

    /* keys the data names (CSV header, first object's keys) */
    char **keys;
    size_t nkeys;
    bool keys_done;

    /* the selected columns */
    char **sel;
    size_t nsel;
    bool selected;
    size_t *csvmap; /* CSV: header index of each selected column */

    /* the row being built: fields as offsets into text, then cells as pointers */
    sp_buf text;
    size_t *foff, *flen;
    size_t nf;      /* fields stored */
    size_t nseen;   /* fields seen (may exceed what is stored) */
    size_t fcap;
    const char **cell;
    size_t *clen;
    int64_t rows;
    sp_err failed; /* the first error: repeated until a rewind (code 0: none) */

    /* CSV */
    struct csv_parser csv;
    bool csv_live;
    bool header_done;
    bool row_ready, row_started, pending_cr, fini_done;
    int64_t row_line;
    size_t row_bytes;
    int cb_err;

    /* JSON */
    sp_buf acc;
    json_t *peek;
    int64_t peek_line;
    int ja_state;
};

/* dataset.c */
char **sp_dataset__dup_keys(const char *const *keys, size_t n);
int sp_dataset__field_end(sp_dataset *ds, size_t start);
int sp_dataset__fill(sp_dataset *ds, sp_err *err);
void sp_dataset__row_out(sp_dataset *ds, sp_dataset_row *row, int64_t line);
void sp_dataset__row_reset(sp_dataset *ds);
int sp_dataset__too_long(sp_dataset *ds, int64_t line, sp_err *err);

/* dataset_csv.c */
int sp_dataset__csv_header(sp_dataset *ds, sp_err *err);
int sp_dataset__csv_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err);
int sp_dataset__csv_start(sp_dataset *ds);

/* dataset_json.c */
int sp_dataset__json_keys_from(sp_dataset *ds, json_t *v, int64_t line, sp_err *err);
int sp_dataset__json_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err);
int sp_dataset__json_read(sp_dataset *ds, json_t **v, int64_t *line, sp_err *err);

#endif

/* dataset_csv.c - the dataset reader's CSV (dataset_int.h): libcsv in CSV_STRICT mode,
 * the header row naming the columns, errors naming the line. */
#include <csv.h>
#include <string.h>

#include "dataset_int.h"
#include "spool/alloc.h"
#include "spool/limits.h"
#include "spool/utf8.h"
#include "text.h"

/* ---- CSV ------------------------------------------------------------------------- */

static void sp__csv_field(void *data, size_t n, void *ud)
{
    sp_dataset *ds = ud;
    if (ds->cb_err)
        return;
    ds->nseen++;
    if (ds->nf >= ds->fcap)
        return; /* counted only: the row has too many fields */
    size_t start = ds->text.len;
    int rc = sp_utf8_add_repaired(&ds->text, data ? data : "", n);
    if (rc == 0)
        rc = sp_dataset__field_end(ds, start);
    if (rc < 0)
        ds->cb_err = rc;
}

static void sp__csv_row(int c, void *ud)
{
    (void)c;
    sp_dataset *ds = ud;
    ds->row_ready = true;
}

/* The error a field callback stopped on (cb_err), as the reader's error. */
static int sp__csv_cb_error(sp_dataset *ds, sp_err *err)
{
    return ds->cb_err == SP_ENOMEM ? sp_err_set(err, SP_ENOMEM, "out of memory")
                                   : sp_dataset__too_long(ds, ds->row_line, err);
}

/* A line ended with c: LF counts the line now; CR waits to see whether an LF follows
 * (CRLF) or the next line starts (a bare CR). */
static void sp__csv_line_end(sp_dataset *ds, unsigned char c)
{
    if (c == '\n')
        ds->line++;
    else
        ds->pending_cr = true;
}

/* Every byte blank (space or tab)? */
static bool sp__blank_line(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t')
            return false;
    return true;
}

static int sp__csv_space(unsigned char c)
{
    (void)c;
    return 0;
}

int sp_dataset__csv_start(sp_dataset *ds)
{
    if (ds->csv_live)
        csv_free(&ds->csv);
    ds->csv_live = false;
    if (csv_init(&ds->csv, CSV_STRICT | CSV_STRICT_FINI) != 0)
        return SP_ENOMEM;
    ds->csv_live = true;
    /* RFC 4180: spaces are part of a field (libcsv trims them by default) */
    csv_set_space_func(&ds->csv, sp__csv_space);
    ds->row_ready = ds->row_started = ds->pending_cr = ds->fini_done = false;
    ds->row_bytes = 0;
    ds->cb_err = 0;
    return 0;
}

/* Read the next CSV record into the fields. 1, 0 at the end, or an error. Feeds
 * libcsv at most one line at a time, so a record ends at the end of a feed and the
 * line number is known exactly. */
static int sp__csv_record(sp_dataset *ds, sp_err *err)
{
    sp_dataset__row_reset(ds);
    ds->row_ready = false;
    for (;;) {
        int rc = sp_dataset__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (ds->fini_done)
                return 0;
            ds->fini_done = true;
            if (csv_fini(&ds->csv, sp__csv_field, sp__csv_row, ds) != 0) {
                return sp_err_set(err, SP_EINVAL,
                                  "line %lld: a quoted field is not closed before the end "
                                  "of the file",
                                  (long long)ds->row_line);
            }
            if (ds->cb_err)
                return sp__csv_cb_error(ds, err);
            if (ds->row_ready) {
                ds->row_started = false;
                return 1;
            }
            return 0;
        }
        const unsigned char *p = ds->rbuf + ds->rpos;
        size_t avail = ds->rlen - ds->rpos;
        if (ds->pending_cr) {
            ds->pending_cr = false;
            if (p[0] != '\n')
                ds->line++; /* a bare CR ended the last line */
        }
        size_t k = 0;
        while (k < avail && p[k] != '\n' && p[k] != '\r')
            k++;
        bool term = k < avail;
        size_t chunk = term ? k + 1 : k;
        if (!ds->row_started) {
            if (term && sp__blank_line(p, k)) {
                ds->rpos += chunk; /* blank line between records */
                sp__csv_line_end(ds, p[k]);
                continue;
            }
            ds->row_started = true;
            ds->row_line = ds->line;
            ds->row_bytes = 0;
        }
        /* A record's bytes are counted as the API counts them: everything up to its
         * end, line ends inside quoted fields included, its own line end not. Whether
         * this chunk's line end is the record's own is known only after the parse. */
        ds->row_bytes += chunk;
        if (ds->row_bytes > ds->max_row + (term ? 1 : 0))
            return sp_dataset__too_long(ds, ds->row_line, err);
        /* libcsv grows a field's buffer by a fixed block, 128 bytes unless told: a field
         * of 1 MiB took 8,000 reallocs, each copying it. Growing by what it holds
         * doubles the buffer instead. */
        size_t held = csv_get_buffer_size(&ds->csv);
        csv_set_blk_size(&ds->csv, held > SP_DATASET__CSV_BLOCK ? held : SP_DATASET__CSV_BLOCK);
        size_t done = csv_parse(&ds->csv, p, chunk, sp__csv_field, sp__csv_row, ds);
        if (done != chunk) {
            if (csv_error(&ds->csv) == CSV_ENOMEM)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            return sp_err_set(err, SP_EINVAL,
                              "line %lld: malformed CSV: a quote inside an unquoted field, "
                              "or text after a closing quote (RFC 4180)",
                              (long long)ds->line);
        }
        if (ds->cb_err)
            return sp__csv_cb_error(ds, err);
        if (!(ds->row_ready && term) && ds->row_bytes > ds->max_row)
            return sp_dataset__too_long(ds, ds->row_line, err); /* the line end was a field's */
        ds->rpos += chunk;
        if (term)
            sp__csv_line_end(ds, p[k]);
        if (ds->row_ready) {
            ds->row_started = false;
            return 1;
        }
    }
}

/* Read the header if it has not been read yet. */
int sp_dataset__csv_header(sp_dataset *ds, sp_err *err)
{
    if (ds->header_done)
        return 0;
    int rc = sp__csv_record(ds, err);
    if (rc < 0)
        return rc;
    ds->header_done = true;
    if (rc == 0)
        return 0; /* an empty file: no columns */
    if (ds->keys_done)
        return 0; /* read again after a rewind */
    ds->keys_done = true;
    if (ds->nseen > ds->max_cols)
        return sp_err_set(err, SP_EINVAL, "line %lld: the header has %zu columns; at most %zu",
                          (long long)ds->row_line, ds->nseen, ds->max_cols);
    const char **names = sp_calloc(ds->nf ? ds->nf : 1, sizeof *names);
    if (names == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    for (size_t i = 0; i < ds->nf; i++)
        names[i] = ds->text.data + ds->foff[i];
    ds->keys = sp_dataset__dup_keys(names, ds->nf);
    sp_free(names);
    if (ds->keys == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    ds->nkeys = ds->nf;
    return 0;
}

int sp_dataset__csv_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err)
{
    int rc = sp_dataset__csv_header(ds, err);
    if (rc < 0)
        return rc;
    if (!ds->selected) {
        rc = sp_dataset_select(ds, (const char *const *)ds->keys, ds->nkeys, err);
        if (rc < 0)
            return rc;
    }
    rc = sp__csv_record(ds, err);
    if (rc <= 0)
        return rc;
    if (ds->nseen != ds->nkeys)
        return sp_err_set(err, SP_EINVAL,
                          "line %lld: the row has %zu fields, expected %zu as in the header",
                          (long long)ds->row_line, ds->nseen, ds->nkeys);
    sp_dataset__row_out(ds, row, ds->row_line);
    return 1;
}

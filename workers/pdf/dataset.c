/* dataset.c - streaming CSV / NDJSON / JSON-array reader (see dataset.h). */
#include "dataset.h"

#include <csv.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/limits.h"
#include "spool/utf8.h"
#include "text.h"

#define SP__READ_SIZE (64 * 1024)
#define SP__CSV_BLOCK 4096 /* libcsv's field buffer grows by at least this much */

/* States of the JSON array splitter. */
enum { SP__JA_START, SP__JA_FIRST, SP__JA_NEXT, SP__JA_END, SP__JA_DONE };

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

int sp_dataset_format_parse(const char *name, sp_dataset_format *out)
{
    if (name == NULL)
        return SP_EINVAL;
    if (!strcasecmp(name, "csv"))
        *out = SP_DATASET_CSV;
    else if (!strcasecmp(name, "ndjson") || !strcasecmp(name, "jsonl"))
        *out = SP_DATASET_NDJSON;
    else if (!strcasecmp(name, "json") || !strcasecmp(name, "json-array"))
        *out = SP_DATASET_JSON_ARRAY;
    else
        return SP_EINVAL;
    return 0;
}

const char *sp_dataset_format_name(sp_dataset_format f)
{
    switch (f) {
    case SP_DATASET_CSV:
        return "csv";
    case SP_DATASET_NDJSON:
        return "ndjson";
    case SP_DATASET_JSON_ARRAY:
        return "json";
    }
    return "unknown";
}

/* ---- reading ------------------------------------------------------------------- */

/* Make sure unread bytes are buffered. 1 when there are some, 0 at the end, SP_EIO. */
static int sp__fill(sp_dataset *ds, sp_err *err)
{
    if (ds->rpos < ds->rlen)
        return 1;
    if (ds->eof)
        return 0;
    ds->base += (int64_t)ds->rlen;
    ds->rlen = ds->rpos = 0;
    ssize_t n;
    do
        n = read(ds->fd, ds->rbuf, SP__READ_SIZE);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return sp_err_set(err, SP_EIO, "cannot read the dataset: %s", strerror(errno));
    if (n == 0) {
        ds->eof = true;
        return 0;
    }
    ds->rlen = (size_t)n;
    if (!ds->bom_checked) {
        ds->bom_checked = true;
        if (ds->rlen >= 3 && memcmp(ds->rbuf, "\xEF\xBB\xBF", 3) == 0)
            ds->rpos = 3;
        if (ds->rpos == ds->rlen)
            return sp__fill(ds, err);
    }
    return 1;
}

/* ---- rows ------------------------------------------------------------------------ */

static void sp__row_reset(sp_dataset *ds)
{
    sp_buf_reset(&ds->text);
    ds->nf = 0;
    ds->nseen = 0;
}

/* Store one field of the row being built (text already appended from start). */
static int sp__field_end(sp_dataset *ds, size_t start)
{
    int rc = sp_buf_addc(&ds->text, '\0');
    if (rc < 0)
        return rc;
    ds->foff[ds->nf] = start;
    ds->flen[ds->nf] = ds->text.len - start - 1;
    ds->nf++;
    return 0;
}

static int sp__too_long(sp_dataset *ds, int64_t line, sp_err *err)
{
    return sp_err_set(err, SP_EINVAL, "line %lld: the row is longer than %zu bytes",
                      (long long)line, ds->max_row);
}

static char **sp__dup_keys(const char *const *keys, size_t n)
{
    char **k = sp_calloc(n ? n : 1, sizeof *k);
    if (k == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        k[i] = sp_strdup(keys[i]);
        if (k[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                sp_free(k[j]);
            sp_free(k);
            return NULL;
        }
    }
    return k;
}

static void sp__free_keys(char **k, size_t n)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        sp_free(k[i]);
    sp_free(k);
}

/* Fill *row from the stored fields: through csvmap for CSV, in order for JSON. */
static void sp__row_out(sp_dataset *ds, sp_dataset_row *row, int64_t line)
{
    for (size_t i = 0; i < ds->nsel; i++) {
        size_t f = ds->fmt == SP_DATASET_CSV ? ds->csvmap[i] : i;
        ds->cell[i] = ds->text.data + ds->foff[f];
        ds->clen[i] = ds->flen[f];
    }
    row->ncells = ds->nsel;
    row->cell = ds->cell;
    row->len = ds->clen;
    row->line = line;
    row->index = ds->rows++;
}

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
        rc = sp__field_end(ds, start);
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
                                   : sp__too_long(ds, ds->row_line, err);
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

static int sp__csv_start(sp_dataset *ds)
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
    sp__row_reset(ds);
    ds->row_ready = false;
    for (;;) {
        int rc = sp__fill(ds, err);
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
            return sp__too_long(ds, ds->row_line, err);
        /* libcsv grows a field's buffer by a fixed block, 128 bytes unless told: a field
         * of 1 MiB took 8,000 reallocs, each copying it. Growing by what it holds
         * doubles the buffer instead. */
        size_t held = csv_get_buffer_size(&ds->csv);
        csv_set_blk_size(&ds->csv, held > SP__CSV_BLOCK ? held : SP__CSV_BLOCK);
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
            return sp__too_long(ds, ds->row_line, err); /* the line end was a field's */
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
static int sp__csv_header(sp_dataset *ds, sp_err *err)
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
    ds->keys = sp__dup_keys(names, ds->nf);
    sp_free(names);
    if (ds->keys == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    ds->nkeys = ds->nf;
    return 0;
}

static int sp__csv_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err)
{
    int rc = sp__csv_header(ds, err);
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
    sp__row_out(ds, row, ds->row_line);
    return 1;
}

/* ---- JSON ------------------------------------------------------------------------ */

/* The next NDJSON line (without its "\n" or "\r\n") into *p,*n; *line its number. The
 * bytes point into the read buffer when the line lies in it, else into acc. A line may
 * take max_row bytes, its line end not counted. 1, 0 at the end, or an error. */
static int sp__ndjson_line(sp_dataset *ds, const char **p, size_t *n, int64_t *line,
                           sp_err *err)
{
    sp_buf_reset(&ds->acc);
    for (;;) {
        int rc = sp__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (ds->acc.len == 0)
                return 0;
            if (ds->acc.len > ds->max_row)
                return sp__too_long(ds, ds->line, err);
            *p = ds->acc.data;
            *n = ds->acc.len;
            *line = ds->line++;
            return 1;
        }
        const unsigned char *start = ds->rbuf + ds->rpos;
        size_t avail = ds->rlen - ds->rpos;
        const unsigned char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        if (ds->acc.len + take > ds->max_row + 1) /* + 1: a CR that may end the line */
            return sp__too_long(ds, ds->line, err);
        if (nl && ds->acc.len == 0) {
            *p = (const char *)start;
            *n = take;
        } else {
            if (sp_buf_add(&ds->acc, start, take) < 0)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            *p = ds->acc.data;
            *n = ds->acc.len;
        }
        ds->rpos += take + (nl ? 1 : 0);
        if (nl) {
            if (*n > 0 && (*p)[*n - 1] == '\r')
                (*n)--;
            if (*n > ds->max_row)
                return sp__too_long(ds, ds->line, err);
            *line = ds->line++;
            return 1;
        }
    }
}

static bool sp__json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next element of a top-level JSON array into acc; *line where it starts.
 * 1, 0 after the closing ']', or an error. */
static int sp__array_elem(sp_dataset *ds, int64_t *line, sp_err *err)
{
    sp_buf_reset(&ds->acc);
    for (;;) {
        int rc = sp__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (ds->ja_state == SP__JA_END || ds->ja_state == SP__JA_DONE) {
                ds->ja_state = SP__JA_DONE;
                return 0;
            }
            if (ds->ja_state == SP__JA_START)
                return sp_err_set(err, SP_EINVAL, "line %lld: expected a JSON array of rows, "
                                  "found the end of the file", (long long)ds->line);
            return sp_err_set(err, SP_EINVAL, "line %lld: the JSON array is not closed "
                              "(unexpected end of file)", (long long)ds->line);
        }
        unsigned char c = ds->rbuf[ds->rpos];
        if (ds->ja_state != SP__JA_FIRST && ds->ja_state != SP__JA_NEXT &&
            ds->ja_state != SP__JA_START) {
            /* after the closing ']': only blanks */
            if (!sp__json_ws(c))
                return sp_err_set(err, SP_EINVAL, "line %lld: text after the end of the JSON "
                                  "array", (long long)ds->line);
            if (c == '\n')
                ds->line++;
            ds->rpos++;
            continue;
        }
        if (sp__json_ws(c)) {
            if (c == '\n')
                ds->line++;
            ds->rpos++;
            continue;
        }
        if (ds->ja_state == SP__JA_START) {
            if (c != '[')
                return sp_err_set(err, SP_EINVAL, "line %lld: expected a JSON array of rows "
                                  "('[')", (long long)ds->line);
            ds->rpos++;
            ds->ja_state = SP__JA_FIRST;
            continue;
        }
        if (c == ']') {
            if (ds->ja_state == SP__JA_NEXT)
                return sp_err_set(err, SP_EINVAL, "line %lld: a ',' before the closing ']'",
                                  (long long)ds->line);
            ds->rpos++;
            ds->ja_state = SP__JA_END;
            continue;
        }
        break;
    }

    /* An element: copy bytes until a ',' or ']' outside strings and brackets. Its size
     * leaves out the blanks before that ',' or ']' (run: the blanks seen last). */
    *line = ds->line;
    int depth = 0;
    bool in_str = false, esc = false;
    size_t seen = 0, run = 0;
    for (;;) {
        int rc = sp__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return sp_err_set(err, SP_EINVAL, "line %lld: the JSON array is not closed "
                              "(unexpected end of file)", (long long)ds->line);
        const unsigned char *p = ds->rbuf + ds->rpos;
        size_t avail = ds->rlen - ds->rpos;
        size_t k = 0;
        int end = 0; /* 1: ',' ends the element, 2: ']' ends it and the array */
        for (; k < avail; k++) {
            unsigned char c = p[k];
            if (c == '\n')
                ds->line++;
            if (!in_str && sp__json_ws(c)) {
                run++;
                continue;
            }
            if (in_str) {
                run = 0;
                if (esc)
                    esc = false;
                else if (c == '\\')
                    esc = true;
                else if (c == '"')
                    in_str = false;
                continue;
            }
            if (c == '"') {
                in_str = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0 && c == ']') {
                    end = 2;
                    break;
                }
                if (depth > 0)
                    depth--;
            } else if (c == ',' && depth == 0) {
                end = 1;
                break;
            }
            run = 0;
        }
        seen += k;
        if (seen - run > ds->max_row)
            return sp__too_long(ds, *line, err);
        /* Bytes past max_row can only be trailing blanks, which the parse does without. */
        size_t keep = ds->max_row - ds->acc.len;
        if (sp_buf_add(&ds->acc, p, k < keep ? k : keep) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        ds->rpos += k;
        if (end) {
            ds->rpos++; /* the ',' or ']' */
            ds->ja_state = end == 1 ? SP__JA_NEXT : SP__JA_END;
            return 1;
        }
    }
}

/* Parse the next JSON row (NDJSON line or array element) into *v. 1, 0, error. */
static int sp__json_read(sp_dataset *ds, json_t **v, int64_t *line, sp_err *err)
{
    if (ds->peek) {
        *v = ds->peek;
        *line = ds->peek_line;
        ds->peek = NULL;
        return 1;
    }
    const char *p = NULL;
    size_t n = 0;
    for (;;) {
        int rc;
        if (ds->fmt == SP_DATASET_NDJSON) {
            rc = sp__ndjson_line(ds, &p, &n, line, err);
        } else {
            rc = sp__array_elem(ds, line, err);
            p = ds->acc.data;
            n = ds->acc.len;
        }
        if (rc <= 0)
            return rc;
        size_t i = 0;
        while (i < n && sp__json_ws((unsigned char)p[i]))
            i++;
        if (i == n) {
            if (ds->fmt == SP_DATASET_NDJSON)
                continue; /* a blank line */
            return sp_err_set(err, SP_EINVAL, "line %lld: an empty element in the JSON array",
                              (long long)*line);
        }
        json_error_t je;
        json_t *j = json_loadb(p, n, JSON_DECODE_ANY, &je);
        if (j == NULL) {
            int64_t at = *line + (je.line > 1 ? je.line - 1 : 0);
            return sp_err_set(err, SP_EINVAL, "line %lld: invalid JSON: %s (column %d)",
                              (long long)at, je.text, je.column);
        }
        if (!json_is_object(j) && !json_is_array(j)) {
            json_decref(j);
            return sp_err_set(err, SP_EINVAL, "line %lld: a row must be a JSON object or "
                              "array", (long long)*line);
        }
        *v = j;
        return 1;
    }
}

/* Append the text of a JSON value as a field. */
static int sp__json_field(sp_dataset *ds, json_t *v)
{
    size_t start = ds->text.len;
    char tmp[64];
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        rc = sp_buf_add(&ds->text, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        rc = sp_buf_addf(&ds->text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        /* the shortest text that reads back as the same double */
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
        rc = sp_buf_adds(&ds->text, tmp);
        break;
    }
    case JSON_TRUE:
        rc = sp_buf_adds(&ds->text, "true");
        break;
    case JSON_FALSE:
        rc = sp_buf_adds(&ds->text, "false");
        break;
    case JSON_NULL:
        break;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        char *s = json_dumps(v, JSON_COMPACT);
        if (s == NULL)
            return SP_ENOMEM;
        rc = sp_buf_adds(&ds->text, s);
        free(s);
        break;
    }
    }
    if (rc == 0)
        rc = sp__field_end(ds, start);
    return rc;
}

static int sp__json_keys_from(sp_dataset *ds, json_t *v, int64_t line, sp_err *err)
{
    ds->keys_done = true;
    if (!json_is_object(v))
        return 0;
    size_t n = json_object_size(v);
    if (n > ds->max_cols)
        return sp_err_set(err, SP_EINVAL, "line %lld: the first row has %zu keys; at most %zu "
                          "columns", (long long)line, n, ds->max_cols);
    ds->keys = sp_calloc(n ? n : 1, sizeof *ds->keys);
    if (ds->keys == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        (void)val;
        ds->keys[ds->nkeys] = sp_strdup(key);
        if (ds->keys[ds->nkeys] == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        ds->nkeys++;
    }
    return 0;
}

static int sp__json_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err)
{
    json_t *v;
    int64_t line;
    int rc = sp__json_read(ds, &v, &line, err);
    if (rc <= 0)
        return rc;
    rc = 0;
    if (!ds->keys_done)
        rc = sp__json_keys_from(ds, v, line, err);
    if (rc == 0 && !ds->selected) {
        if (ds->nkeys == 0)
            rc = sp_err_set(err, SP_EINVAL, "line %lld: the rows are arrays, so the columns "
                            "must be given (params.columns)", (long long)line);
        else
            rc = sp_dataset_select(ds, (const char *const *)ds->keys, ds->nkeys, err);
    }
    if (rc < 0)
        goto out;
    sp__row_reset(ds);
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n != ds->nsel) {
            rc = sp_err_set(err, SP_EINVAL, "line %lld: the row has %zu values, expected %zu "
                            "(one per column)", (long long)line, n, ds->nsel);
            goto out;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = sp__json_field(ds, json_array_get(v, i));
    } else {
        for (size_t i = 0; i < ds->nsel && rc == 0; i++) {
            json_t *f = json_object_get(v, ds->sel[i]);
            if (f == NULL) {
                size_t start = ds->text.len;
                rc = sp__field_end(ds, start);
            } else {
                rc = sp__json_field(ds, f);
            }
        }
    }
    if (rc == SP_ETOOBIG)
        rc = sp__too_long(ds, line, err);
    else if (rc < 0)
        rc = sp_err_set(err, rc, "out of memory");
    else {
        sp__row_out(ds, row, line);
        rc = 1;
    }
out:
    json_decref(v);
    return rc;
}

/* ---- the public face -------------------------------------------------------------- */

int sp_dataset_open(const char *path, const sp_dataset_opts *o, sp_dataset **out, sp_err *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int code = errno == ENOENT ? SP_ENOTFOUND : SP_EIO;
        return sp_err_set(err, code, "cannot open %s: %s", path, strerror(errno));
    }
    return sp_dataset_open_fd(fd, o, out, err);
}

int sp_dataset_open_fd(int fd, const sp_dataset_opts *o, sp_dataset **out, sp_err *err)
{
    *out = NULL;
    sp_dataset *ds = sp_calloc(1, sizeof *ds);
    if (ds == NULL) {
        close(fd);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    ds->fd = fd;
    ds->fmt = o->format;
    ds->max_row = o->max_row_bytes ? o->max_row_bytes : SP_EXPORT_MAX_ROW_BYTES;
    ds->max_cols = o->max_columns ? o->max_columns : SP_EXPORT_MAX_COLUMNS;
    ds->line = 1;
    ds->ja_state = SP__JA_START;
    struct stat st;
    ds->size = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    /* Cell text may grow past the row's bytes, and a row within max_row must never fail
     * for it. The most it grows: a JSON object or array inside a cell is written out by
     * jansson, whose reals take 17 digits, so "0.1," (4 bytes) becomes
     * "0.10000000000000001," (20): five times. U+FFFD for a bad byte in CSV is three
     * times; a NUL ends each of at most SP_EXPORT_MAX_COLUMNS + 1 fields. */
    size_t textmax = ds->max_row > SIZE_MAX / 8 ? SIZE_MAX / 2 : ds->max_row * 5 + 4096;
    sp_buf_init(&ds->text, textmax);
    sp_buf_init(&ds->acc, ds->max_row + 2);
    ds->fcap = ds->max_cols + 1;
    ds->rbuf = sp_malloc(SP__READ_SIZE);
    ds->foff = sp_calloc(ds->fcap, sizeof *ds->foff);
    ds->flen = sp_calloc(ds->fcap, sizeof *ds->flen);
    if (ds->rbuf == NULL || ds->foff == NULL || ds->flen == NULL ||
        (ds->fmt == SP_DATASET_CSV && sp__csv_start(ds) < 0)) {
        sp_dataset_close(ds);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    *out = ds;
    return 0;
}

void sp_dataset_close(sp_dataset *ds)
{
    if (ds == NULL)
        return;
    if (ds->fd >= 0)
        close(ds->fd);
    if (ds->csv_live)
        csv_free(&ds->csv);
    if (ds->peek)
        json_decref(ds->peek);
    sp__free_keys(ds->keys, ds->nkeys);
    sp__free_keys(ds->sel, ds->nsel);
    sp_free(ds->csvmap);
    sp_buf_free(&ds->text);
    sp_buf_free(&ds->acc);
    sp_free(ds->foff);
    sp_free(ds->flen);
    sp_free(ds->cell);
    sp_free(ds->clen);
    sp_free(ds->rbuf);
    sp_free(ds);
}

/* Remember the first error so later calls repeat it instead of reading on from a
 * position that no longer means anything. */
static int sp__fail(sp_dataset *ds, int rc, sp_err *err)
{
    if (ds->failed.code == 0) {
        ds->failed.code = rc;
        if (err)
            memcpy(ds->failed.msg, err->msg, sizeof ds->failed.msg);
    }
    return rc;
}

static int sp__failed(const sp_dataset *ds, sp_err *err)
{
    if (err)
        *err = ds->failed;
    return ds->failed.code;
}

int sp_dataset_keys(sp_dataset *ds, const char *const **keys, size_t *n, sp_err *err)
{
    if (ds->failed.code)
        return sp__failed(ds, err);
    int rc = 0;
    if (ds->fmt == SP_DATASET_CSV) {
        rc = sp__csv_header(ds, err);
    } else if (!ds->keys_done) {
        json_t *v = NULL;
        int64_t line = 0;
        rc = sp__json_read(ds, &v, &line, err);
        if (rc == 1) {
            ds->peek = v;
            ds->peek_line = line;
            rc = sp__json_keys_from(ds, v, line, err);
        } else if (rc == 0) {
            ds->keys_done = true;
        }
    }
    if (rc < 0)
        return sp__fail(ds, rc, err);
    *keys = (const char *const *)ds->keys;
    *n = ds->keys ? ds->nkeys : 0;
    return 0;
}

int sp_dataset_select(sp_dataset *ds, const char *const *keys, size_t n, sp_err *err)
{
    if (n == 0)
        return sp_err_set(err, SP_EINVAL, "no columns selected");
    if (n > ds->max_cols)
        return sp_err_set(err, SP_EINVAL, "%zu columns; at most %zu", n, ds->max_cols);
    size_t *map = NULL;
    if (ds->fmt == SP_DATASET_CSV) {
        if (ds->failed.code)
            return sp__failed(ds, err);
        int rc = sp__csv_header(ds, err);
        if (rc < 0)
            return sp__fail(ds, rc, err);
        map = sp_calloc(n, sizeof *map);
        if (map == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (j < ds->nkeys && strcmp(ds->keys[j], keys[i]) != 0)
                j++;
            if (j == ds->nkeys) {
                sp_free(map);
                return sp_err_set(err, SP_EINVAL, "column '%s' is not in the CSV header",
                                  keys[i]);
            }
            map[i] = j;
        }
    }
    char **sel = sp__dup_keys(keys, n);
    const char **cell = sp_calloc(n, sizeof *cell);
    size_t *clen = sp_calloc(n, sizeof *clen);
    if (sel == NULL || cell == NULL || clen == NULL) {
        sp__free_keys(sel, n);
        sp_free(cell);
        sp_free(clen);
        sp_free(map);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp__free_keys(ds->sel, ds->nsel);
    sp_free(ds->csvmap);
    sp_free(ds->cell);
    sp_free(ds->clen);
    ds->sel = sel;
    ds->nsel = n;
    ds->csvmap = map;
    ds->cell = cell;
    ds->clen = clen;
    ds->selected = true;
    return 0;
}

int sp_dataset_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err)
{
    if (ds->failed.code)
        return sp__failed(ds, err);
    int rc = ds->fmt == SP_DATASET_CSV ? sp__csv_next(ds, row, err) : sp__json_next(ds, row, err);
    return rc < 0 ? sp__fail(ds, rc, err) : rc;
}

int sp_dataset_rewind(sp_dataset *ds, sp_err *err)
{
    if (lseek(ds->fd, 0, SEEK_SET) < 0)
        return sp_err_set(err, SP_EIO, "cannot rewind the dataset: %s", strerror(errno));
    ds->rlen = ds->rpos = 0;
    ds->base = 0;
    ds->eof = false;
    ds->bom_checked = false;
    ds->line = 1;
    ds->rows = 0;
    sp_err_clear(&ds->failed);
    sp__row_reset(ds);
    sp_buf_reset(&ds->acc);
    if (ds->peek) {
        json_decref(ds->peek);
        ds->peek = NULL;
    }
    ds->ja_state = SP__JA_START;
    if (ds->fmt == SP_DATASET_CSV) {
        if (sp__csv_start(ds) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        ds->header_done = false;
    }
    return 0;
}

int64_t sp_dataset_offset(const sp_dataset *ds)
{
    return ds->base + (int64_t)ds->rpos;
}

int64_t sp_dataset_size(const sp_dataset *ds)
{
    return ds->size;
}

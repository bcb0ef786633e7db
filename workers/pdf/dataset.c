/* dataset.c - streaming CSV / NDJSON / JSON-array reader (see dataset.h): the public
 * face, the read buffer and rows; the formats are in dataset_csv.c and dataset_json.c. */
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
#include "dataset_int.h"
#include "text.h"

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
int sp_dataset__fill(sp_dataset *ds, sp_err *err)
{
    if (ds->rpos < ds->rlen)
        return 1;
    if (ds->eof)
        return 0;
    ds->base += (int64_t)ds->rlen;
    ds->rlen = ds->rpos = 0;
    ssize_t n;
    do
        n = read(ds->fd, ds->rbuf, SP_DATASET__READ_SIZE);
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
            return sp_dataset__fill(ds, err);
    }
    return 1;
}

/* ---- rows ------------------------------------------------------------------------ */

void sp_dataset__row_reset(sp_dataset *ds)
{
    sp_buf_reset(&ds->text);
    ds->nf = 0;
    ds->nseen = 0;
}

/* Store one field of the row being built (text already appended from start). */
int sp_dataset__field_end(sp_dataset *ds, size_t start)
{
    int rc = sp_buf_addc(&ds->text, '\0');
    if (rc < 0)
        return rc;
    ds->foff[ds->nf] = start;
    ds->flen[ds->nf] = ds->text.len - start - 1;
    ds->nf++;
    return 0;
}

int sp_dataset__too_long(sp_dataset *ds, int64_t line, sp_err *err)
{
    return sp_err_set(err, SP_EINVAL, "line %lld: the row is longer than %zu bytes",
                      (long long)line, ds->max_row);
}

char **sp_dataset__dup_keys(const char *const *keys, size_t n)
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
void sp_dataset__row_out(sp_dataset *ds, sp_dataset_row *row, int64_t line)
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
    ds->ja_state = SP_DATASET__JA_START;
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
    ds->rbuf = sp_malloc(SP_DATASET__READ_SIZE);
    ds->foff = sp_calloc(ds->fcap, sizeof *ds->foff);
    ds->flen = sp_calloc(ds->fcap, sizeof *ds->flen);
    if (ds->rbuf == NULL || ds->foff == NULL || ds->flen == NULL ||
        (ds->fmt == SP_DATASET_CSV && sp_dataset__csv_start(ds) < 0)) {
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
        rc = sp_dataset__csv_header(ds, err);
    } else if (!ds->keys_done) {
        json_t *v = NULL;
        int64_t line = 0;
        rc = sp_dataset__json_read(ds, &v, &line, err);
        if (rc == 1) {
            ds->peek = v;
            ds->peek_line = line;
            rc = sp_dataset__json_keys_from(ds, v, line, err);
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
        int rc = sp_dataset__csv_header(ds, err);
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
    char **sel = sp_dataset__dup_keys(keys, n);
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
    int rc = ds->fmt == SP_DATASET_CSV ? sp_dataset__csv_next(ds, row, err) : sp_dataset__json_next(ds, row, err);
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
    sp_dataset__row_reset(ds);
    sp_buf_reset(&ds->acc);
    if (ds->peek) {
        json_decref(ds->peek);
        ds->peek = NULL;
    }
    ds->ja_state = SP_DATASET__JA_START;
    if (ds->fmt == SP_DATASET_CSV) {
        if (sp_dataset__csv_start(ds) < 0)
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

/* export.c - params validation and the sample / layout / render passes (see export.h). */
#include "export.h"

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/util.h"
#include "text.h"

#define SP__SAMPLE_ROWS 200
#define SP__TEXT_MAX 1000 /* characters of a title, author, key or label */
#define SP__DEFAULT_FONT_DIR "/usr/share/fonts/truetype/dejavu"

/* ---- params ------------------------------------------------------------------------- */

/* A string member: *out is a copy, or NULL when absent or null. */
static int sp__str(json_t *obj, const char *key, const char *where, char **out, sp_err *err)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return sp_err_set(err, SP_EINVAL, "%s%s must be a string", where, key);
    if (json_string_length(v) > SP__TEXT_MAX * 4 ||
        strlen(json_string_value(v)) != json_string_length(v))
        return sp_err_set(err, SP_EINVAL, "%s%s is too long or holds a NUL", where, key);
    *out = sp_strdup(json_string_value(v));
    return *out ? 0 : sp_err_set(err, SP_ENOMEM, "out of memory");
}

/* An enumerated string member: *out is the index of its value in names (case does not
 * matter), unchanged when absent. */
static int sp__enum(json_t *obj, const char *key, const char *where, const char *const *names,
                    size_t n, int *out, sp_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (json_is_string(v)) {
        for (size_t i = 0; i < n; i++) {
            if (!strcasecmp(json_string_value(v), names[i])) {
                *out = (int)i;
                return 0;
            }
        }
    }
    sp_buf b;
    sp_buf_init(&b, 256);
    for (size_t i = 0; i < n; i++)
        sp_buf_addf(&b, "%s'%s'", i == 0 ? "" : i + 1 == n ? " or " : ", ", names[i]);
    int rc = sp_err_set(err, SP_EINVAL, "%s%s must be %s", where, key, sp_buf_cstr(&b));
    sp_buf_free(&b);
    return rc;
}

static int sp__column(json_t *c, size_t i, sp_export_column *col, sp_err *err)
{
    char where[64];
    snprintf(where, sizeof where, "params.columns[%zu].", i);
    if (!json_is_object(c))
        return sp_err_set(err, SP_EINVAL, "params.columns[%zu] must be an object", i);
    col->decimals = -1;
    col->thousands = true;
    int rc = sp__str(c, "key", where, &col->key, err);
    if (rc == 0 && (col->key == NULL || col->key[0] == '\0'))
        rc = sp_err_set(err, SP_EINVAL, "%skey is required", where);
    if (rc == 0)
        rc = sp__str(c, "label", where, &col->label, err);
    if (rc == 0 && col->label == NULL) {
        col->label = sp_strdup(col->key);
        if (col->label == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (rc < 0)
        return rc;
    json_t *w = json_object_get(c, "width");
    if (w != NULL && !json_is_null(w)) {
        if (!json_is_number(w) || json_number_value(w) < 1 || json_number_value(w) > 10000)
            return sp_err_set(err, SP_EINVAL, "%swidth must be a number of points from 1 "
                              "to 10000", where);
        col->width = json_number_value(w);
    }
    static const char *const formats[] = {"text", "number", "date"};
    int format = SP_EXPORT_TEXT;
    rc = sp__enum(c, "format", where, formats, 3, &format, err);
    if (rc < 0)
        return rc;
    col->format = (sp_export_format)format;
    static const char *const aligns[] = {"left", "right", "center"};
    int align = col->format == SP_EXPORT_NUMBER ? SP_PDF_RIGHT : SP_PDF_LEFT;
    rc = sp__enum(c, "align", where, aligns, 3, &align, err);
    if (rc < 0)
        return rc;
    col->align = (sp_pdf_align)align;
    json_t *dec = json_object_get(c, "decimals");
    if (dec != NULL && !json_is_null(dec)) {
        if (!json_is_integer(dec) || json_integer_value(dec) < 0 || json_integer_value(dec) > 10)
            return sp_err_set(err, SP_EINVAL, "%sdecimals must be an integer from 0 to 10",
                              where);
        col->decimals = (int)json_integer_value(dec);
    }
    json_t *th = json_object_get(c, "thousands");
    if (th != NULL && !json_is_null(th)) {
        if (!json_is_boolean(th))
            return sp_err_set(err, SP_EINVAL, "%sthousands must be true or false", where);
        col->thousands = json_is_true(th);
    }
    return 0;
}

int sp_export_params_parse(const char *json, sp_export_params *out, sp_err *err)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_loads(json ? json : "", 0, &je);
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return sp_err_set(err, SP_EINVAL, "params must be a JSON object");
    }
    int rc = sp__str(root, "title", "params.", &out->title, err);
    if (rc == 0 && (out->title == NULL || out->title[0] == '\0'))
        rc = sp_err_set(err, SP_EINVAL, "params.title is required");
    if (rc == 0)
        rc = sp__str(root, "author", "params.", &out->author, err);
    if (rc == 0 && out->author == NULL) {
        out->author = sp_strdup("spool");
        if (out->author == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    static const char *const sizes[] = {"A4", "Letter"};
    static const char *const orients[] = {"portrait", "landscape"};
    static const char *const fonts[] = {"sans", "serif", "mono"};
    static const char *const levels[] = {"default", "fast"};
    int size = 0, orient = 0, font = 0, level = -1;
    if (rc == 0)
        rc = sp__enum(root, "page_size", "params.", sizes, 2, &size, err);
    if (rc == 0)
        rc = sp__enum(root, "orientation", "params.", orients, 2, &orient, err);
    if (rc == 0)
        rc = sp__enum(root, "font", "params.", fonts, 3, &font, err);
    if (rc == 0)
        rc = sp__enum(root, "compression", "params.", levels, 2, &level, err);
    out->compression = level < 0 ? 0 : level == 0 ? SP_EXPORT_LEVEL_DEFAULT : SP_EXPORT_LEVEL_FAST;
    out->letter = size == 1;
    out->landscape = orient == 1;
    out->font = (sp_export_font)font;
    json_t *cols = json_object_get(root, "columns");
    if (rc == 0 && cols != NULL && !json_is_null(cols)) {
        size_t n = json_is_array(cols) ? json_array_size(cols) : 0;
        if (n == 0 || n > SP_EXPORT_MAX_COLUMNS) {
            rc = sp_err_set(err, SP_EINVAL, "params.columns must be an array of 1 to %d "
                            "columns", SP_EXPORT_MAX_COLUMNS);
        } else {
            out->columns = sp_calloc(n, sizeof *out->columns);
            if (out->columns == NULL)
                rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            for (size_t i = 0; rc == 0 && i < n; i++) {
                out->ncolumns = i + 1;
                rc = sp__column(json_array_get(cols, i), i, &out->columns[i], err);
            }
        }
    }
    json_decref(root);
    if (rc < 0)
        sp_export_params_free(out);
    return rc;
}

void sp_export_params_free(sp_export_params *p)
{
    if (p == NULL)
        return;
    sp_free(p->title);
    sp_free(p->author);
    for (size_t i = 0; p->columns && i < p->ncolumns; i++) {
        sp_free(p->columns[i].key);
        sp_free(p->columns[i].label);
    }
    sp_free(p->columns);
    memset(p, 0, sizeof *p);
}

int sp_export_font_paths(const char *dir, sp_export_font font, char *reg, char *bold,
                         size_t n)
{
    static const char *const names[][2] = {
        {"DejaVuSans.ttf", "DejaVuSans-Bold.ttf"},
        {"DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf"},
        {"DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf"},
    };
    if (dir == NULL)
        dir = SP__DEFAULT_FONT_DIR;
    int a = snprintf(reg, n, "%s/%s", dir, names[font][0]);
    int b = snprintf(bold, n, "%s/%s", dir, names[font][1]);
    if (a < 0 || (size_t)a >= n || b < 0 || (size_t)b >= n)
        return SP_ETOOBIG;
    return 0;
}

/* ---- the passes ---------------------------------------------------------------------- */

int sp_export_compression_parse(const char *s, int *level)
{
    if (s == NULL)
        return SP_EINVAL;
    if (strcasecmp(s, "default") == 0) {
        *level = SP_EXPORT_LEVEL_DEFAULT;
        return 0;
    }
    if (strcasecmp(s, "fast") == 0) {
        *level = SP_EXPORT_LEVEL_FAST;
        return 0;
    }
    if (s[0] >= '1' && s[0] <= '9' && s[1] == '\0') {
        *level = s[0] - '0';
        return 0;
    }
    return SP_EINVAL;
}

typedef struct sp__run {
    const sp_export_params *p;
    const sp_export_column *cols; /* p->columns, or built from the data's keys */
    size_t ncol;
    sp_export_column *owned;      /* built from the data */
    const sp_export_opts *o;
    sp_export_result *res;
    const char *out_path;
    sp_dataset *ds;
    sp_pdf_doc *doc;
    sp_buf cellbuf;               /* formatted cells of the current row */
    size_t *off;
    const char **cell;
    size_t *len;
    int last_percent;
} sp__run;

static int sp__fail(sp__run *r, const char *code, bool retryable, int rc)
{
    r->res->error_code = code;
    r->res->retryable = retryable;
    return rc;
}

/* Classify an error from the dataset or the renderer. */
static int sp__classify(sp__run *r, int rc, sp_err *err)
{
    switch (rc) {
    case SP_EINVAL:
        sp_err_prefix(err, "invalid dataset");
        return sp__fail(r, "invalid_input", false, rc);
    case SP_ETOOBIG:
        sp_err_prefix(err, "export too large");
        return sp__fail(r, "too_large", false, rc);
    case SP_EIO:
        return sp__fail(r, "io_error", true, rc);
    case SP_ENOMEM:
        return sp__fail(r, "out_of_memory", true, rc);
    case SP_ECANCELLED:
        return rc;
    default:
        return sp__fail(r, "render_failed", false, rc);
    }
}

static void sp__progress(sp__run *r, int percent)
{
    if (r->o->progress && percent != r->last_percent) {
        r->last_percent = percent;
        r->o->progress(r->o->ud, percent);
    }
}

static bool sp__stopping(const sp__run *r)
{
    return r->o->stop != NULL && *r->o->stop != 0;
}

/* Format the row's cells for their columns into r->cell / r->len. */
static int sp__format_row(sp__run *r, const sp_dataset_row *row)
{
    sp_buf_reset(&r->cellbuf);
    for (size_t i = 0; i < r->ncol; i++) {
        const sp_export_column *c = &r->cols[i];
        r->off[i] = r->cellbuf.len;
        int rc = SP_EINVAL;
        if (c->format == SP_EXPORT_NUMBER)
            rc = sp_text_format_number(row->cell[i], row->len[i], c->decimals, c->thousands,
                                       &r->cellbuf);
        else if (c->format == SP_EXPORT_DATE)
            rc = sp_text_format_date(row->cell[i], row->len[i], &r->cellbuf);
        if (rc == SP_EINVAL) /* text, or a value that is not a number or a date */
            rc = sp_buf_add(&r->cellbuf, row->cell[i], row->len[i]);
        if (rc == 0)
            rc = sp_buf_addc(&r->cellbuf, '\0');
        if (rc < 0)
            return SP_ENOMEM;
        r->len[i] = r->cellbuf.len - r->off[i] - 1;
    }
    for (size_t i = 0; i < r->ncol; i++)
        r->cell[i] = r->cellbuf.data + r->off[i];
    return 0;
}

/* Refuse n columns when they cannot all be drawn readable across the page (the API
 * refuses the same at submit when it knows the columns). */
static int sp__columns_fit(const sp_export_params *p, size_t n, sp_err *err)
{
    size_t fit = sp_export_columns_fit(p->letter, p->landscape);
    if (n <= fit)
        return 0;
    return sp_err_set(err, SP_EINVAL,
                      "%zu columns do not fit across %s %s page: at most %zu do (%zu in %s)",
                      n, p->letter ? "a Letter" : "an A4", p->landscape ? "landscape" : "portrait",
                      fit, sp_export_columns_fit(p->letter, !p->landscape),
                      p->landscape ? "portrait" : "landscape");
}

/* Choose the columns: the params', or the data's own keys. */
static int sp__columns(sp__run *r, sp_err *err)
{
    const sp_export_params *p = r->p;
    if (p->ncolumns > 0 && sp__columns_fit(p, p->ncolumns, err) < 0)
        return SP_EINVAL;
    if (p->ncolumns > 0) {
        const char **keys = sp_calloc(p->ncolumns, sizeof *keys);
        if (keys == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        for (size_t i = 0; i < p->ncolumns; i++)
            keys[i] = p->columns[i].key;
        int rc = sp_dataset_select(r->ds, keys, p->ncolumns, err);
        sp_free(keys);
        if (rc < 0)
            return rc;
        r->cols = p->columns;
        r->ncol = p->ncolumns;
        return 0;
    }
    const char *const *keys;
    size_t n;
    int rc = sp_dataset_keys(r->ds, &keys, &n, err);
    if (rc < 0)
        return rc;
    if (n == 0)
        return sp_err_set(err, SP_EINVAL, "the data names no columns (an empty file, or "
                          "rows that are arrays) and params.columns is not set");
    if (sp__columns_fit(p, n, err) < 0)
        return SP_EINVAL;
    r->owned = sp_calloc(n, sizeof *r->owned);
    if (r->owned == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    r->ncol = n;
    for (size_t i = 0; i < n; i++) {
        r->owned[i].key = sp_strdup(keys[i]);
        r->owned[i].label = sp_strdup(keys[i]);
        r->owned[i].decimals = -1;
        r->owned[i].thousands = true;
        if (r->owned[i].key == NULL || r->owned[i].label == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    r->cols = r->owned;
    return sp_dataset_select(r->ds, keys, n, err);
}

static int sp__too_many_rows(sp__run *r, sp_err *err)
{
    return sp_err_set(err, SP_ETOOBIG, "the dataset has more than %lld rows, the limit of "
                      "this worker", (long long)r->o->limits.max_rows);
}

static int sp__too_many_pages(sp__run *r, int64_t pages, sp_err *err)
{
    return sp_err_set(err, SP_ETOOBIG, "the table needs more than %lld pages (%lld so far), "
                      "the limit of this worker", (long long)r->o->limits.max_pages,
                      (long long)pages);
}

/* Pass 1: the first rows, for the widths of the columns without one. */
static int sp__pass_sample(sp__run *r, sp_err *err)
{
    sp_dataset_row row;
    int rc;
    for (int i = 0; i < SP__SAMPLE_ROWS; i++) {
        rc = sp_dataset_next(r->ds, &row, err);
        if (rc <= 0)
            return rc;
        if (sp__format_row(r, &row) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        sp_pdf_sample(r->doc, r->cell, r->len);
    }
    return 0;
}

/* Pass 2: count rows and pages, check the limits. Progress 0-10% by bytes read. */
static int sp__pass_layout(sp__run *r, sp_err *err)
{
    const sp_export_limits *l = &r->o->limits;
    int rc = sp_pdf_layout_begin(r->doc, err);
    if (rc < 0)
        return rc;
    sp_dataset_row row;
    int64_t size = sp_dataset_size(r->ds);
    while ((rc = sp_dataset_next(r->ds, &row, err)) == 1) {
        if (l->max_rows > 0 && row.index >= l->max_rows)
            return sp__too_many_rows(r, err);
        if (sp__format_row(r, &row) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        rc = sp_pdf_layout_row(r->doc, r->cell, r->len, err);
        if (rc < 0)
            return rc;
        r->res->rows = row.index + 1;
        if ((row.index & 1023) == 1023) {
            int64_t pages = sp_pdf_layout_pages(r->doc);
            if (l->max_pages > 0 && pages > l->max_pages)
                return sp__too_many_pages(r, pages, err);
            if (sp__stopping(r))
                return SP_ECANCELLED;
            if (size > 0)
                sp__progress(r, (int)(10 * sp_dataset_offset(r->ds) / size));
        }
    }
    if (rc < 0)
        return rc;
    int64_t pages = sp_pdf_layout_pages(r->doc);
    if (l->max_pages > 0 && pages > l->max_pages)
        return sp__too_many_pages(r, pages, err);
    r->res->pages = pages;
    return 0;
}

/* Pass 3: draw. Progress 10-99% by rows rendered; stop checked between pages. */
static int sp__pass_render(sp__run *r, sp_err *err)
{
    int rc = sp_pdf_render_begin(r->doc, r->out_path, err);
    if (rc < 0)
        return rc;
    sp_dataset_row row;
    int64_t total = r->res->rows;
    while ((rc = sp_dataset_next(r->ds, &row, err)) == 1) {
        if (row.index >= total)
            return sp_err_set(err, SP_EPROTO, "the dataset changed between two readings");
        if (sp__format_row(r, &row) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        rc = sp_pdf_render_row(r->doc, r->cell, r->len, err);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (sp__stopping(r))
                return SP_ECANCELLED;
            sp__progress(r, 10 + (int)(89 * row.index / (total > 0 ? total : 1)));
        }
    }
    if (rc < 0)
        return rc;
    return sp_pdf_render_end(r->doc, err);
}

int sp_export_run(const sp_export_params *p, int fd, sp_dataset_format fmt,
                  const char *out_path, const sp_export_opts *o, sp_export_result *res,
                  sp_err *err)
{
    memset(res, 0, sizeof *res);
    sp__run r = {.p = p, .o = o, .res = res, .out_path = out_path, .last_percent = -1};
    sp_buf_init(&r.cellbuf, SIZE_MAX / 2);
    char reg[PATH_MAX], bold[PATH_MAX];

    sp_dataset_opts dso = {.format = fmt,
                           .max_row_bytes = o->limits.max_row_bytes,
                           .max_columns = SP_EXPORT_MAX_COLUMNS};
    int rc = sp_dataset_open_fd(fd, &dso, &r.ds, err);
    if (rc == 0)
        rc = sp__columns(&r, err);
    if (rc == 0) {
        r.off = sp_calloc(r.ncol, sizeof *r.off);
        r.cell = sp_calloc(r.ncol, sizeof *r.cell);
        r.len = sp_calloc(r.ncol, sizeof *r.len);
        if (r.off == NULL || r.cell == NULL || r.len == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        rc = sp__classify(&r, rc, err);
        goto out;
    }

    if (sp_export_font_paths(o->font_dir, p->font, reg, bold, sizeof reg) < 0) {
        rc = sp__fail(&r, "render_failed", false,
                      sp_err_set(err, SP_ETOOBIG, "the font directory path is too long"));
        goto out;
    }
    sp_pdf_column *pc = sp_calloc(r.ncol, sizeof *pc);
    if (pc == NULL) {
        rc = sp__fail(&r, "out_of_memory", true, sp_err_set(err, SP_ENOMEM, "out of memory"));
        goto out;
    }
    for (size_t i = 0; i < r.ncol; i++) {
        pc[i].label = r.cols[i].label;
        pc[i].width = r.cols[i].width;
        pc[i].align = r.cols[i].align;
        pc[i].wrap = r.cols[i].format == SP_EXPORT_TEXT;
    }
    sp_pdf_setup setup = {
        .title = p->title,
        .author = p->author,
        .creator = o->creator,
        .created_ms = o->now_ms ? o->now_ms : sp_now_ms(),
        .letter = p->letter,
        .landscape = p->landscape,
        .font_path = reg,
        .bold_path = bold,
        .fallbacks = o->fallbacks,
        .nfallbacks = o->nfallbacks,
        .columns = pc,
        .ncolumns = r.ncol,
        .max_lines = o->limits.max_lines,
        .max_memory = o->limits.max_memory,
        .compression = p->compression ? p->compression : o->compression,
    };
    int64_t tf = sp_mono_ms();
    r.doc = sp_pdf_new(&setup, err);
    res->font_ms = sp_mono_ms() - tf;
    sp_free(pc);
    if (r.doc == NULL) {
        rc = err ? err->code : SP_ENOMEM;
        if (rc == SP_EIO)
            sp_err_prefix(err, "cannot start the PDF");
        rc = sp__classify(&r, rc, err);
        goto out;
    }

    int64_t ts = sp_mono_ms();
    rc = sp__pass_sample(&r, err);
    int64_t t1 = sp_mono_ms();
    res->sample_ms = t1 - ts;
    if (rc == 0)
        rc = sp_dataset_rewind(r.ds, err);
    if (rc == 0)
        rc = sp__pass_layout(&r, err);
    int64_t t2 = sp_mono_ms();
    res->layout_ms = t2 - t1;
    if (rc == 0)
        rc = sp_dataset_rewind(r.ds, err);
    if (rc == 0)
        rc = sp__pass_render(&r, err);
    int64_t t3 = sp_mono_ms();
    res->render_ms = t3 - t2;
    if (rc == 0)
        rc = sp_pdf_save(r.doc, err);
    res->save_ms = sp_mono_ms() - t3;
    if (rc == 0) {
        struct stat st;
        if (stat(out_path, &st) < 0)
            rc = sp_err_set(err, SP_EIO, "the PDF was not written to %s", out_path);
        else
            res->bytes = (int64_t)st.st_size;
    }
    res->memory_peak = sp_pdf_memory_peak(r.doc);
    res->missing_glyphs = sp_pdf_missing_glyphs(r.doc);
    if (rc < 0)
        rc = sp__classify(&r, rc, err);

out:
    sp_pdf_free(r.doc);
    sp_dataset_close(r.ds);
    sp_buf_free(&r.cellbuf);
    sp_free(r.off);
    sp_free(r.cell);
    sp_free(r.len);
    for (size_t i = 0; r.owned && i < r.ncol; i++) {
        sp_free(r.owned[i].key);
        sp_free(r.owned[i].label);
    }
    sp_free(r.owned);
    return rc;
}

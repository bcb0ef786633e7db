/* render.c - the paginated table on libharu: the public face (render.h); the work is
 * in the modules render_int.h lists. */
#include "render.h"

#include <hpdf.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "render_int.h"
#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/utf8.h"

void HPDF_STDCALL sp_pdf__on_error(HPDF_STATUS e, HPDF_STATUS detail, void *ud)
{
    sp_pdf_doc *d = ud;
    if (d->herr == 0) {
        d->herr = e;
        d->hdetail = detail;
    }
}

/* Turn libharu's recorded error (if any) into an sp_err. */
int sp_pdf__check(sp_pdf_doc *d, const char *what, sp_err *err)
{
    if (d->heap.hit) {
        int64_t max = d->heap.max;
        if (max % (1 << 20) == 0)
            return sp_err_set(err, SP_ETOOBIG, "the document needs more than %lld MiB of "
                              "memory", (long long)(max >> 20));
        return sp_err_set(err, SP_ETOOBIG, "the document needs more than %lld bytes of memory",
                          (long long)max);
    }
    if (d->out.err_no != 0)
        return sp_err_set(err, SP_EIO, "%s: cannot write the PDF: %s", what,
                          strerror(d->out.err_no));
    if (d->herr == 0)
        return 0;
    if (d->herr == HPDF_PAGE_OUT_OF_RANGE)
        return sp_err_set(err, SP_EPROTO, "%s: more pages than the layout counted (%lld)",
                          what, (long long)d->layout_pages);
    if (d->herr == HPDF_FILE_IO_ERROR || d->herr == HPDF_FILE_OPEN_ERROR)
        return sp_err_set(err, SP_EIO, "%s: cannot write the file (libharu error 0x%04X, "
                          "errno %u)", what, (unsigned)d->herr, (unsigned)d->hdetail);
    if (d->herr == HPDF_FAILD_TO_ALLOC_MEM)
        return sp_err_set(err, SP_ENOMEM, "%s: out of memory", what);
    return sp_err_set(err, SP_EPROTO, "%s: libharu error 0x%04X (detail %u)", what,
                      (unsigned)d->herr, (unsigned)d->hdetail);
}

/* Copy s as valid UTF-8 without control characters or characters outside the BMP. */
static char *sp__clean_text(const char *s)
{
    sp_buf b;
    sp_buf_init(&b, (size_t)1 << 20);
    const unsigned char *u = (const unsigned char *)(s ? s : "");
    size_t n = strlen((const char *)u);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        uint32_t c;
        i += sp_utf8_decode(u + i, n - i, &c);
        if (c < 0x20 || (c >= 0x7F && c < 0xA0))
            c = ' ';
        else if (c > 0xFFFF)
            c = SP_UTF8_REPLACEMENT;
        rc = sp_utf8_add(&b, c);
    }
    char *out = rc == 0 ? sp_buf_take(&b) : NULL;
    sp_buf_free(&b);
    if (rc == 0 && out == NULL)
        out = sp_strdup("");
    return out;
}

sp_pdf_doc *sp_pdf_new(const sp_pdf_setup *s, sp_err *err)
{
    if (s->ncolumns == 0) {
        sp_err_set(err, SP_EINVAL, "a table needs at least one column");
        return NULL;
    }
    sp_pdf_doc *d = sp_calloc(1, sizeof *d);
    if (d == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    sp_pdf__heap_use(&d->heap);
    d->heap.max = s->max_memory;
    d->out.fd = -1;
    d->zlevel = s->compression >= 1 && s->compression <= 9 ? s->compression : 6;
    d->letter = s->letter;
    d->landscape = s->landscape;
    double w = s->letter ? SP_EXPORT_LETTER_W : SP_EXPORT_A4_W;
    double h = s->letter ? SP_EXPORT_LETTER_H : SP_EXPORT_A4_H;
    d->page_w = s->landscape ? h : w;
    d->page_h = s->landscape ? w : h;
    d->max_lines = s->max_lines > 0 ? s->max_lines : 3;
    if (d->max_lines > 100)
        d->max_lines = 100;
    d->lead = SP_PDF__BODY_SIZE * SP_PDF__LEAD;
    d->ncol = s->ncolumns;
    d->seg_per_col = d->max_lines > SP_PDF__HEAD_LINES ? d->max_lines : SP_PDF__HEAD_LINES;
    sp_buf_init(&d->line, (size_t)1 << 30);
    d->col = sp_calloc(d->ncol, sizeof *d->col);
    d->labels = sp_calloc(d->ncol, sizeof *d->labels);
    d->label_len = sp_calloc(d->ncol, sizeof *d->label_len);
    d->nlines = sp_calloc(d->ncol, sizeof *d->nlines);
    d->seg = sp_calloc(d->ncol * (size_t)d->seg_per_col, sizeof *d->seg);
    d->title = sp__clean_text(s->title);
    bool ok = d->col && d->labels && d->label_len && d->nlines && d->seg && d->title;
    for (size_t i = 0; ok && i < s->nfallbacks && d->nfb < SP_PDF__MAX_FALLBACK; i++) {
        if (s->fallbacks[i] == NULL || s->fallbacks[i][0] == '\0')
            continue;
        d->fb[d->nfb].path = sp_strdup(s->fallbacks[i]);
        ok = d->fb[d->nfb++].path != NULL;
    }
    for (size_t i = 0; ok && i < d->ncol; i++) {
        const sp_pdf_column *c = &s->columns[i];
        d->col[i].label = sp__clean_text(c->label);
        ok = d->col[i].label != NULL;
        d->col[i].req = c->width > 0 ? c->width : 0;
        d->col[i].align = c->align;
        d->col[i].wrap = c->wrap;
        if (ok) {
            d->labels[i] = d->col[i].label;
            d->label_len[i] = strlen(d->col[i].label);
        }
    }
    char *author = s->author ? sp__clean_text(s->author) : NULL;
    char *creator = s->creator ? sp__clean_text(s->creator) : NULL;
    if (!ok || (s->author && !author) || (s->creator && !creator)) {
        sp_free(author);
        sp_free(creator);
        sp_pdf_free(d);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }

    d->pdf = HPDF_NewEx(sp_pdf__on_error, sp_pdf__heap_alloc, sp_pdf__heap_free, 0, d);
    int rc = 0;
    if (d->pdf == NULL) {
        rc = d->heap.hit ? sp_err_set(err, SP_ETOOBIG, "the memory limit is too small for "
                                        "a PDF document")
                           : sp_err_set(err, SP_ENOMEM, "out of memory");
    } else {
        /* libharu compresses what it writes itself (the fonts); the pages' content
         * streams are deflated by draw.c at the level asked for */
        HPDF_SetCompressionMode(d->pdf, HPDF_COMP_ALL);
        HPDF_UseUTFEncodings(d->pdf);
        HPDF_SetCurrentEncoder(d->pdf, "UTF-8");
        rc = sp_pdf__check(d, "starting the document", err);
    }
    if (rc == 0)
        rc = sp_pdf__font_load(d, s->font_path, &d->reg, err);
    if (rc == 0)
        rc = sp_pdf__font_load(d, s->bold_path, &d->bold, err);
    if (rc == 0) {
        HPDF_SetInfoAttr(d->pdf, HPDF_INFO_TITLE, d->title);
        if (author)
            HPDF_SetInfoAttr(d->pdf, HPDF_INFO_AUTHOR, author);
        if (creator)
            HPDF_SetInfoAttr(d->pdf, HPDF_INFO_CREATOR, creator);
        time_t t = (time_t)(s->created_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        HPDF_Date date = {tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec, 'Z', 0, 0};
        HPDF_SetInfoDateAttr(d->pdf, HPDF_INFO_CREATION_DATE, date);
        rc = sp_pdf__check(d, "setting the metadata", err);
    }
    sp_free(author);
    sp_free(creator);
    if (rc < 0) {
        sp_pdf_free(d);
        return NULL;
    }
    return d;
}

void sp_pdf_free(sp_pdf_doc *d)
{
    if (d == NULL)
        return;
    sp_pdf__heap_use(&d->heap);
    if (d->pdf)
        HPDF_Free(d->pdf);
    sp_pdf__heap_release(&d->heap);
    sp_pdf__heap_use(NULL);
    if (d->z_live)
        deflateEnd(&d->z);
    sp_free(d->zbuf);
    sp_pdf__out_close(&d->out);
    sp_pdf__font_free(&d->reg);
    sp_pdf__font_free(&d->bold);
    for (size_t i = 0; d->col && i < d->ncol; i++)
        sp_free(d->col[i].label);
    sp_free(d->col);
    sp_free(d->labels);
    sp_free(d->label_len);
    sp_free(d->nlines);
    sp_free(d->seg);
    sp_free(d->title);
    sp_free(d->cp);
    for (size_t i = 0; i < d->nfb; i++)
        sp_free(d->fb[i].path);
    sp_bidi_free(d->bidi);
    sp_free(d->lv);
    sp_free(d->bt);
    sp_free(d->vis);
    sp_buf_free(&d->line);
    sp_free(d);
}

void sp_pdf_sample(sp_pdf_doc *d, const char *const *cells, const size_t *lens)
{
    sp_pdf__heap_use(&d->heap);
    double avail = (d->page_w - 2 * SP_PDF__MARGIN) * 1000.0 / SP_PDF__BODY_SIZE;
    for (size_t i = 0; i < d->ncol; i++) {
        sp_pdf__col *c = &d->col[i];
        if (c->req > 0)
            continue;
        d->cp_len = 0;
        size_t start, count;
        bool more;
        size_t n = lens[i];
        if (n > SP_PDF__SAMPLE_CHARS * 4)
            n = SP_PDF__SAMPLE_CHARS * 4;
        if (sp_pdf__decode(d, &d->reg, cells[i], n, false, avail, &start, &count, &more) < 0)
            continue;
        double w = sp_pdf__width(&d->reg, d->cp + start, count) * SP_PDF__BODY_SIZE / 1000.0;
        if (w > c->nat)
            c->nat = w;
    }
}

int sp_pdf_layout_begin(sp_pdf_doc *d, sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    sp_pdf__fit_columns(d);
    d->top = d->page_h - SP_PDF__MARGIN;
    d->bottom = SP_PDF__MARGIN + SP_PDF__FOOT_SIZE + SP_PDF__FOOT_GAP;
    sp_pdf__seg segs[SP_PDF__TITLE_LINES];
    int nl = 0;
    if (sp_pdf__layout_title(d, segs, &nl) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    d->title_h = nl > 0 ? nl * SP_PDF__TITLE_SIZE * SP_PDF__LEAD + SP_PDF__TITLE_GAP : 0;
    if (sp_pdf__layout_row(d, d->labels, d->label_len, true, &d->head_h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    /* a row must fit on the first page, below the title and the header */
    double room = d->top - d->title_h - d->head_h - d->bottom - 2 * SP_PDF__PAD_Y;
    int fit = (int)floor(room / d->lead);
    if (fit < 1)
        fit = 1;
    if (d->max_lines > fit)
        d->max_lines = fit;
    d->pages = 0;
    d->rendering = false;
    sp_pdf__page_start(d);
    return 0;
}

int sp_pdf_layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    double h;
    if (sp_pdf__layout_row(d, cells, lens, false, &h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (d->row_on_page > 0 && d->y - h < d->bottom)
        sp_pdf__page_start(d);
    d->y -= h;
    d->row_on_page++;
    return 0;
}

int64_t sp_pdf_layout_pages(const sp_pdf_doc *d)
{
    return d->rendering ? d->layout_pages : d->pages;
}

int sp_pdf_render_begin(sp_pdf_doc *d, const char *path, sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    if (d->rendering)
        return sp_err_set(err, SP_EPROTO, "the render has already started");
    d->layout_pages = d->pages;
    d->pages = 0;
    d->rendering = true;
    if (sp_pdf__page_open(d) < 0) {
        int rc = sp_pdf__check(d, "starting the page", err);
        return rc < 0 ? rc : sp_err_set(err, SP_EPROTO, "libharu made no page");
    }
    int rc = sp_pdf__out_open(d, path, err);
    if (rc < 0)
        return rc;
    sp_pdf__page_start(d);
    return sp_pdf__check(d, "starting the first page", err);
}

int sp_pdf_render_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    double h;
    int turned = 0;
    if (sp_pdf__layout_row(d, cells, lens, false, &h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (d->row_on_page > 0 && d->y - h < d->bottom) {
        sp_pdf__page_start(d);
        turned = 1;
        int rc = sp_pdf__check(d, "starting a page", err);
        if (rc < 0)
            return rc;
        if (sp_pdf__layout_row(d, cells, lens, false, &h) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp_pdf__draw_row(d, false, d->y, h);
    d->y -= h;
    d->row_on_page++;
    int rc = sp_pdf__check(d, "drawing a row", err);
    return rc < 0 ? rc : turned;
}

int sp_pdf_render_end(sp_pdf_doc *d, sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    sp_pdf__page_finish(d);
    int rc = sp_pdf__check(d, "finishing the last page", err);
    if (rc == 0 && d->pages != d->layout_pages)
        rc = sp_err_set(err, SP_EPROTO, "drew %lld pages where the layout counted %lld",
                        (long long)d->pages, (long long)d->layout_pages);
    return rc;
}

int sp_pdf_save(sp_pdf_doc *d, sp_err *err)
{
    sp_pdf__heap_use(&d->heap);
    int rc = sp_pdf__check(d, "saving the PDF", err);
    if (rc == 0 && (d->page_open || d->pages != d->layout_pages || !d->rendering))
        rc = sp_err_set(err, SP_EPROTO, "the PDF is saved before its last page is drawn");
    return rc < 0 ? rc : sp_pdf__out_finish(d, err);
}

int64_t sp_pdf_pages(const sp_pdf_doc *d)
{
    return d->pages;
}

double sp_pdf_column_width(const sp_pdf_doc *d, size_t i)
{
    return i < d->ncol ? d->col[i].w : 0;
}

int64_t sp_pdf_memory_peak(const sp_pdf_doc *d)
{
    return d->heap.peak;
}

int64_t sp_pdf_missing_glyphs(const sp_pdf_doc *d)
{
    return d->missing;
}

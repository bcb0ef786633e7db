/* draw.c - drawing the table's pages through libharu (render_int.h). Every page is
 * drawn on the same libharu page: once finished (footer drawn), its content stream is
 * deflated, handed to the file writer (pdfout.c) and emptied for the next page, so
 * libharu never holds more than one page, whatever the page count. */
#include <hpdf_objects.h>
#include <hpdf_pages.h>
#include <hpdf_streams.h>
#include <stdio.h>
#include <string.h>

#include "render_int.h"
#include "spool/alloc.h"
#include "spool/utf8.h"

/* Put the shaped line s (and its "…") in visual order in d->vis. */
static int sp__visual(sp_pdf_doc *d, const sp_pdf__seg *s)
{
    size_t n = s->end - s->start + 1;
    if (n > d->vis_cap) {
        uint16_t *v = sp_realloc(d->vis, n * 2 * sizeof *v);
        if (v == NULL)
            return SP_ENOMEM;
        d->vis = v;
        d->vis_cap = n * 2;
    }
    return sp_bidi_line(d->bidi, d->cp + s->start, s->end - s->start, d->lv + s->start,
                        d->bt + s->start, s->bidi == 2, s->ellipsis ? SP_PDF__ELLIPSIS : 0,
                        d->vis);
}

/* Draw nl laid-out lines of chain f between x..x+w, the first baseline at y0. The
 * page's font is f->f at size on entry and on return. A line is drawn as runs of the
 * characters one font draws (one run unless a fallback font is needed); a character no
 * font has is drawn as U+FFFD and counted when count is set. */
static void sp__draw_lines(sp_pdf_doc *d, HPDF_Page pg, sp_pdf__font *f, double size,
                           const sp_pdf__seg *segs, int nl, double x, double w,
                           sp_pdf_align align, double y0, double lead, bool count)
{
    HPDF_Font cur = f->f;
    for (int k = 0; k < nl; k++) {
        const sp_pdf__seg *s = &segs[k];
        if (s->end == s->start && !s->ellipsis)
            continue;
        double tw = s->w * size / 1000.0;
        double tx = x + SP_PDF__PAD_X;
        if (align == SP_PDF_RIGHT)
            tx = x + w - SP_PDF__PAD_X - tw;
        else if (align == SP_PDF_CENTER)
            tx = x + (w - tw) / 2;
        /* the line's characters, left to right: txt[0..n), then "…" when ell */
        const uint16_t *txt = d->cp + s->start;
        uint32_t n = s->end - s->start;
        bool ell = s->ellipsis;
        if (s->bidi) {
            if (sp__visual(d, s) < 0) {
                sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
                return;
            }
            txt = d->vis;
            n += ell;
            ell = false;
        }
        uint32_t end = n + ell;
        uint32_t j = 0;
        while (j < end) {
            sp_buf_reset(&d->line);
            HPDF_Font run = NULL;
            double rw = 0; /* the run's width, 1/1000 em */
            int rc = 0;
            for (; j < end && rc == 0; j++) {
                uint16_t c = j < n ? txt[j] : SP_PDF__ELLIPSIS, orig = c;
                if (sp_bidi_control(c))
                    continue;
                double cw = sp_pdf__cw(f, c);
                HPDF_Font face = sp_pdf__face_of(f, &c);
                if (run != NULL && face != run)
                    break;
                run = face;
                if (count && c == SP_UTF8_REPLACEMENT && orig != SP_UTF8_REPLACEMENT)
                    d->missing++;
                rw += cw;
                rc = c < 0x80 ? sp_buf_addc(&d->line, (char)c) : sp_utf8_add(&d->line, c);
            }
            if (run == NULL)
                break; /* only bidi controls were left */
            if (rc < 0) {
                sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
                return;
            }
            if (run != cur) {
                HPDF_Page_SetFontAndSize(pg, run, (HPDF_REAL)size);
                cur = run;
            }
            HPDF_Page_TextOut(pg, (HPDF_REAL)tx, (HPDF_REAL)(y0 - k * lead),
                              sp_buf_cstr(&d->line));
            tx += rw * size / 1000.0;
        }
    }
    if (cur != f->f)
        HPDF_Page_SetFontAndSize(pg, f->f, (HPDF_REAL)size);
}

/* The first baseline of a row whose top is top: the text centred in each line box. */
static double sp__baseline(const sp_pdf__font *f, double size, double lead, double top)
{
    double asc = f->asc * size / 1000.0, desc = -f->desc * size / 1000.0;
    return top - SP_PDF__PAD_Y - (lead - (asc + desc)) / 2 - asc;
}

/* Draw the row laid out in d->nlines/d->seg with its top at top, h high. */
void sp_pdf__draw_row(sp_pdf_doc *d, bool head, double top, double h)
{
    HPDF_Page pg = d->page;
    double table_w = d->col[d->ncol - 1].x + d->col[d->ncol - 1].w - d->col[0].x;
    if (head || d->row_on_page % 2 == 1) {
        HPDF_Page_GSave(pg);
        HPDF_Page_SetGrayFill(pg, (HPDF_REAL)(head ? SP_PDF__HEAD_FILL : SP_PDF__ZEBRA));
        HPDF_Page_Rectangle(pg, (HPDF_REAL)d->col[0].x, (HPDF_REAL)(top - h),
                            (HPDF_REAL)table_w, (HPDF_REAL)h);
        HPDF_Page_Fill(pg);
        HPDF_Page_GRestore(pg);
    }
    sp_pdf__font *f = head ? &d->bold : &d->reg;
    HPDF_Page_BeginText(pg);
    HPDF_Page_SetFontAndSize(pg, f->f, (HPDF_REAL)SP_PDF__BODY_SIZE);
    double y0 = sp__baseline(f, SP_PDF__BODY_SIZE, d->lead, top);
    for (size_t i = 0; i < d->ncol; i++)
        sp__draw_lines(d, pg, f, SP_PDF__BODY_SIZE, d->seg + i * (size_t)d->seg_per_col,
                       d->nlines[i], d->col[i].x, d->col[i].w, d->col[i].align, y0, d->lead,
                       !head || d->pages == 1); /* the header counts once */
    HPDF_Page_EndText(pg);
}

void sp_pdf__draw_title(sp_pdf_doc *d)
{
    sp_pdf__seg segs[SP_PDF__TITLE_LINES];
    int nl = 0;
    if (sp_pdf__layout_title(d, segs, &nl) < 0) {
        sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
        return;
    }
    double lead = SP_PDF__TITLE_SIZE * SP_PDF__LEAD;
    HPDF_Page_BeginText(d->page);
    HPDF_Page_SetFontAndSize(d->page, d->bold.f, (HPDF_REAL)SP_PDF__TITLE_SIZE);
    sp__draw_lines(d, d->page, &d->bold, SP_PDF__TITLE_SIZE, segs, nl,
                   SP_PDF__MARGIN - SP_PDF__PAD_X,
                   d->page_w - 2 * SP_PDF__MARGIN + 2 * SP_PDF__PAD_X, SP_PDF_LEFT,
                   sp__baseline(&d->bold, SP_PDF__TITLE_SIZE, lead, d->top + SP_PDF__PAD_Y), lead,
                   true);
    HPDF_Page_EndText(d->page);
}

static void sp__draw_footer(sp_pdf_doc *d)
{
    char text[96];
    snprintf(text, sizeof text, "Page %lld of %lld", (long long)d->pages,
             (long long)d->layout_pages);
    double w = 0;
    for (const char *p = text; *p; p++)
        w += sp_pdf__cw(&d->reg, (uint16_t)*p);
    w = w * SP_PDF__FOOT_SIZE / 1000.0;
    HPDF_Page pg = d->page;
    /* the gray stays inside the page's q/Q, so libharu's idea of the graphics state
     * matches a fresh page's when the next page is drawn on the same libharu page */
    HPDF_Page_GSave(pg);
    HPDF_Page_BeginText(pg);
    HPDF_Page_SetGrayFill(pg, (HPDF_REAL)SP_PDF__FOOT_GRAY);
    HPDF_Page_SetFontAndSize(pg, d->reg.f, (HPDF_REAL)SP_PDF__FOOT_SIZE);
    HPDF_Page_TextOut(pg, (HPDF_REAL)((d->page_w - w) / 2), (HPDF_REAL)SP_PDF__MARGIN, text);
    HPDF_Page_EndText(pg);
    HPDF_Page_GRestore(pg);
}

/* libharu gives every page a /ProcSet array of five names (obsolete since PDF 1.4 and
 * ignored by readers) that costs about 1 KB a page until the save: drop it. */
static void sp__drop_procset(HPDF_Page pg)
{
    HPDF_Dict res = NULL;
    HPDF_Dict dict = (HPDF_Dict)pg;
    for (HPDF_UINT i = 0; i < dict->list->count && res == NULL; i++) {
        HPDF_DictElement e = HPDF_List_ItemAt(dict->list, i);
        if (e != NULL && strcmp(e->key, "Resources") == 0 && e->value != NULL &&
            (((HPDF_Obj_Header *)e->value)->obj_class & HPDF_OCLASS_ANY) == HPDF_OCLASS_DICT)
            res = e->value;
    }
    if (res != NULL)
        HPDF_Dict_RemoveElement(res, "ProcSet");
}

/* Deflate the finished page's content stream into d->zbuf and hand it to the writer,
 * then empty the stream for the next page. Errors are recorded as libharu's (memory)
 * or the writer's (I/O), for sp_pdf__check. */
static void sp__hand_out_page(sp_pdf_doc *d)
{
    HPDF_PageAttr attr = (HPDF_PageAttr)d->page->attr;
    HPDF_Stream src = attr ? attr->stream : NULL;
    if (src == NULL || src->type != HPDF_STREAM_MEMORY) {
        sp_pdf__on_error(HPDF_INVALID_STREAM, 0, d); /* not libharu 2.3.0's page */
        return;
    }
    HPDF_UINT32 size = HPDF_Stream_Size(src);
    if (!d->z_live) {
        if (deflateInit(&d->z, d->zlevel) != Z_OK) {
            sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
            return;
        }
        d->z_live = true;
    } else if (deflateReset(&d->z) != Z_OK) {
        sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
        return;
    }
    size_t bound = deflateBound(&d->z, size);
    if (bound > d->zcap) {
        unsigned char *p = sp_realloc(d->zbuf, bound);
        if (p == NULL) {
            sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
            return;
        }
        d->zbuf = p;
        d->zcap = bound;
    }
    d->z.next_out = d->zbuf;
    d->z.avail_out = (uInt)bound;
    HPDF_UINT nbuf = HPDF_MemStream_GetBufCount(src);
    HPDF_UINT32 left = size;
    int zrc = Z_OK;
    for (HPDF_UINT i = 0; i < nbuf && left > 0 && zrc == Z_OK; i++) {
        HPDF_UINT len = 0;
        HPDF_BYTE *p = HPDF_MemStream_GetBufPtr(src, i, &len);
        if (p == NULL)
            break;
        if (len > left)
            len = left;
        left -= len;
        d->z.next_in = p;
        d->z.avail_in = len;
        zrc = deflate(&d->z, Z_NO_FLUSH);
    }
    if (left != 0 || zrc != Z_OK || deflate(&d->z, Z_FINISH) != Z_STREAM_END) {
        sp_pdf__on_error(HPDF_INVALID_STREAM, 1, d);
        return;
    }
    sp_pdf__out_page(d, d->zbuf, bound - d->z.avail_out);
    HPDF_MemStream_FreeData(src);
}

/* Create the libharu page every page is drawn on. 0, or an error for sp_pdf__check. */
int sp_pdf__page_open(sp_pdf_doc *d)
{
    d->page = HPDF_AddPage(d->pdf);
    if (d->page == NULL)
        return -1;
    HPDF_Page_SetSize(d->page, d->letter ? HPDF_PAGE_SIZE_LETTER : HPDF_PAGE_SIZE_A4,
                      d->landscape ? HPDF_PAGE_LANDSCAPE : HPDF_PAGE_PORTRAIT);
    sp__drop_procset(d->page);
    return 0;
}

/* Finish the page being drawn: its footer, then out to the file. */
void sp_pdf__page_finish(sp_pdf_doc *d)
{
    if (!d->page_open)
        return;
    d->page_open = false;
    sp__draw_footer(d);
    if (d->herr == 0 && !d->heap.hit)
        sp__hand_out_page(d);
}

/* Start a page: counted in both passes; drawn (title, header) when rendering. The
 * header is laid out into the shared row buffers, so a row laid out before must be
 * laid out again. Rendering more pages than the layout counted is an error (the file's
 * objects were numbered for that many). */
void sp_pdf__page_start(sp_pdf_doc *d)
{
    if (d->rendering)
        sp_pdf__page_finish(d);
    d->pages++;
    d->row_on_page = 0;
    d->y = d->top - (d->pages == 1 ? d->title_h : 0);
    if (d->rendering) {
        if (d->page == NULL || d->pages > d->out.npages) {
            sp_pdf__on_error(HPDF_PAGE_OUT_OF_RANGE, (HPDF_STATUS)(d->pages & 0xFFFF), d);
            return;
        }
        d->page_open = true;
        if (d->pages == 1)
            sp_pdf__draw_title(d);
        double h;
        if (sp_pdf__layout_row(d, d->labels, d->label_len, true, &h) < 0) {
            sp_pdf__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
            return;
        }
        sp_pdf__draw_row(d, true, d->y, d->head_h);
    }
    d->y -= d->head_h;
}

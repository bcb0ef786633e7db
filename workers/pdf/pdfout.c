/* pdfout.c - the renderer's file writer (render_int.h): the PDF is written as it is
 * drawn, so memory stays flat whatever the page count.
 *
 * libharu writes a whole document at HPDF_SaveToFile and holds every page until then
 * (about 6.6 KB a page with the content already deflated). Here libharu keeps one page,
 * on which every page is drawn (draw.c); each finished page goes to the file at once as
 * two objects, the page and its deflated content stream, numbered from the plan made
 * when the render starts (render_int.h: the layout pass knows the page count, so the
 * page tree's numbers are known before the first page). At the end come the page tree,
 * the shared resources, and libharu's own objects written by libharu's own object
 * writer (catalog, info, and the fonts, whose embedded subsets are only known then),
 * then the cross-reference table and the trailer. Nothing is parsed: every object is
 * either written here from what the renderer knows, or by libharu.
 *
 * libharu 2.3.0 internals used (hpdf_doc.h, hpdf_objects.h): the document's xref list,
 * catalog, info and root page tree node; HPDF_Obj_WriteValue; a callback stream. Each
 * is checked and a surprise fails the render (SP_EPROTO) rather than the file. */
#include <errno.h>
#include <fcntl.h>
#include <hpdf_doc.h>
#include <hpdf_objects.h>
#include <hpdf_pages.h>
#include <hpdf_streams.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "render_int.h"
#include "spool/alloc.h"

#define SP__BUF (256 * 1024)
/* Object numbers left for what libharu adds while its objects are written (a
 * descriptor, a font file and its length per font: 6 for our two fonts). */
#define SP__RESERVE 32 /* objects libharu adds at the end (font descriptors, font files) */
#define SP__RESERVE_FALLBACK 8 /* more per fallback font, in case one is first needed
                                * after the plan (all are normally loaded by the layout) */
#define SP__MAX_OBJECTS 8388607 /* the PDF implementation limit on object numbers */
#define SP__KIDS_PER_LINE 16

static void sp__flush(sp_pdf__out *o)
{
    size_t done = 0;
    while (o->err_no == 0 && done < o->len) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            o->err_no = n < 0 ? errno : EIO;
        else
            done += (size_t)n;
    }
    o->off += (int64_t)o->len;
    o->len = 0;
}

static void sp__put(sp_pdf__out *o, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n > 0 && o->err_no == 0) {
        if (o->len == SP__BUF)
            sp__flush(o);
        size_t k = SP__BUF - o->len < n ? SP__BUF - o->len : n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

__attribute__((format(printf, 2, 3))) static void sp__putf(sp_pdf__out *o, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        o->err_no = o->err_no ? o->err_no : EOVERFLOW; /* never: the formats are short */
        return;
    }
    sp__put(o, line, (size_t)n);
}

/* Start object id here: its offset goes into the cross-reference table. */
static void sp__obj(sp_pdf__out *o, uint32_t id)
{
    o->xref[id] = o->off + (int64_t)o->len;
    sp__putf(o, "%u 0 obj\012", id);
}

static uint32_t sp__id(const void *obj)
{
    return ((const HPDF_Obj_Header *)obj)->obj_id & 0x00FFFFFF;
}

/* libharu writes its objects through this stream into the buffer. */
static HPDF_STATUS sp__hpdf_write(HPDF_Stream s, const HPDF_BYTE *p, HPDF_UINT n)
{
    sp_pdf__out *o = s->attr;
    sp__put(o, p, n);
    return o->err_no ? HPDF_FILE_IO_ERROR : HPDF_OK;
}

int sp_pdf__out_open(sp_pdf_doc *d, const char *path, sp_err *err)
{
    sp_pdf__out *o = &d->out;
    HPDF_Doc pdf = d->pdf;
    HPDF_PageAttr attr = d->page ? (HPDF_PageAttr)d->page->attr : NULL;
    if (attr == NULL || attr->contents == NULL || pdf->xref == NULL ||
        pdf->xref->start_offset != 0 || pdf->xref->prev != NULL || pdf->root_pages == NULL ||
        pdf->catalog == NULL || pdf->info == NULL || pdf->pdf_version > HPDF_VER_17)
        return sp_err_set(err, SP_EPROTO, "libharu's document is not laid out as expected "
                          "(spool-pdf is built for libharu 2.3.0)");
    int64_t npages = d->layout_pages > 0 ? d->layout_pages : 1;
    uint32_t count = (uint32_t)pdf->xref->entries->count;
    int64_t nodes = npages > SP_PDF__PAGES_PER_NODE
                        ? (npages + SP_PDF__PAGES_PER_NODE - 1) / SP_PDF__PAGES_PER_NODE
                        : 0;
    uint32_t reserve = SP__RESERVE + SP__RESERVE_FALLBACK * (uint32_t)d->nfb;
    int64_t nobj = (int64_t)count + reserve + nodes + 1 + 2 * npages;
    if (nobj > SP__MAX_OBJECTS)
        return sp_err_set(err, SP_ETOOBIG, "%lld pages are more than one PDF file can number",
                          (long long)npages);
    o->npages = npages;
    o->base = count + reserve;
    o->nodes = (uint32_t)nodes;
    o->res_id = o->base + o->nodes;
    o->first_page = o->res_id + 1;
    o->nobj = (uint32_t)nobj;
    o->skip[0] = d->page;
    o->skip[1] = attr->contents;
    o->skip[2] = HPDF_Dict_GetItem(attr->contents, "Length", HPDF_OCLASS_NUMBER);
    snprintf(o->media, sizeof o->media, "[ 0 0 %g %g ]", (double)HPDF_Page_GetWidth(d->page),
             (double)HPDF_Page_GetHeight(d->page));
    o->xref = sp_calloc((size_t)nobj, sizeof *o->xref);
    o->buf = sp_malloc(SP__BUF);
    if (o->xref == NULL || o->buf == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    o->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (o->fd < 0)
        return sp_err_set(err, SP_EIO, "cannot open %s: %s", path, strerror(errno));
    sp__putf(o, "%%PDF-1.%d\012%%\267\276\255\252\012", 2 + (int)pdf->pdf_version);
    return 0;
}

int sp_pdf__out_page(sp_pdf_doc *d, const unsigned char *content, size_t len)
{
    sp_pdf__out *o = &d->out;
    int64_t i = d->pages - 1;
    uint32_t root = sp__id(d->pdf->root_pages);
    uint32_t parent = o->nodes ? o->base + (uint32_t)(i / SP_PDF__PAGES_PER_NODE) : root;
    uint32_t id = o->first_page + 2 * (uint32_t)i;
    sp__obj(o, id);
    sp__putf(o, "<<\012/Type /Page\012/Parent %u 0 R\012/MediaBox %s\012/Resources %u 0 R\012"
             "/Contents %u 0 R\012>>\012endobj\012", parent, o->media, o->res_id, id + 1);
    sp__obj(o, id + 1);
    sp__putf(o, "<<\012/Length %zu\012/Filter /FlateDecode\012>>\012stream\012", len);
    sp__put(o, content, len);
    sp__putf(o, "\012endstream\012endobj\012");
    return o->err_no ? SP_EIO : 0;
}

/* A /Pages node's body: kids first..first+n-1 (pages: every other number) or nodes. */
static void sp__pages_node(sp_pdf__out *o, int64_t parent, uint32_t first, uint32_t step,
                           int64_t n, int64_t count)
{
    sp__putf(o, "<<\012/Type /Pages\012");
    if (parent > 0)
        sp__putf(o, "/Parent %lld 0 R\012", (long long)parent);
    sp__putf(o, "/Kids [");
    for (int64_t k = 0; k < n; k++)
        sp__putf(o, "%s%u 0 R", k % SP__KIDS_PER_LINE == 0 ? "\012" : " ",
                 first + step * (uint32_t)k);
    sp__putf(o, "\012]\012/Count %lld\012>>\012endobj\012", (long long)count);
}

/* After libharu's object writer returned st: its internal functions record errors in
 * the document without calling the error handler, so report them here. */
static int sp__written(sp_pdf_doc *d, HPDF_STATUS st, uint32_t id, sp_err *err)
{
    int rc = sp_pdf__check(d, "writing libharu's objects", err);
    if (rc < 0)
        return rc;
    if (st == HPDF_OK)
        return 0;
    if (st == HPDF_FAILD_TO_ALLOC_MEM)
        return sp_err_set(err, SP_ENOMEM, "writing object %u: out of memory", id);
    return sp_err_set(err, SP_EPROTO, "writing object %u: libharu error 0x%04X", id,
                      (unsigned)st);
}

static bool sp__skipped(const sp_pdf__out *o, const void *obj)
{
    for (size_t i = 0; i < sizeof o->skip / sizeof o->skip[0]; i++)
        if (o->skip[i] != NULL && o->skip[i] == obj)
            return true;
    return false;
}

/* libharu's objects, by their own numbers; its root page node becomes ours. */
static int sp__hpdf_objects(sp_pdf_doc *d, HPDF_Stream s, sp_err *err)
{
    sp_pdf__out *o = &d->out;
    HPDF_Xref xref = d->pdf->xref;
    uint32_t root = sp__id(d->pdf->root_pages);
    for (uint32_t i = 1; i < xref->entries->count; i++) {
        if (i >= o->base)
            return sp_err_set(err, SP_EPROTO, "libharu added more objects than planned (%u)",
                              (unsigned)xref->entries->count);
        HPDF_XrefEntry e = HPDF_Xref_GetEntry(xref, i);
        sp__obj(o, i);
        if (e == NULL || e->obj == NULL || sp__skipped(o, e->obj)) {
            sp__putf(o, "null\012endobj\012");
        } else if (i == root) {
            if (o->nodes)
                sp__pages_node(o, 0, o->base, 1, o->nodes, o->npages);
            else
                sp__pages_node(o, 0, o->first_page, 2, o->npages, o->npages);
        } else {
            int rc = sp__written(d, HPDF_Obj_WriteValue(e->obj, s, NULL), i, err);
            if (rc < 0)
                return rc;
            sp__putf(o, "\012endobj\012");
        }
    }
    for (uint32_t i = xref->entries->count; i < o->base; i++) {
        sp__obj(o, i);
        sp__putf(o, "null\012endobj\012");
    }
    return 0;
}

int sp_pdf__out_finish(sp_pdf_doc *d, sp_err *err)
{
    sp_pdf__out *o = &d->out;
    if (o->fd < 0 || o->buf == NULL)
        return sp_err_set(err, SP_EPROTO, "the render has not started");
    uint32_t root = sp__id(d->pdf->root_pages);
    for (uint32_t j = 0; j < o->nodes; j++) {
        int64_t first = (int64_t)j * SP_PDF__PAGES_PER_NODE;
        int64_t n = o->npages - first < SP_PDF__PAGES_PER_NODE ? o->npages - first
                                                                : SP_PDF__PAGES_PER_NODE;
        sp__obj(o, o->base + j);
        sp__pages_node(o, root, o->first_page + 2 * (uint32_t)first, 2, n, n);
    }
    /* the resources of libharu's page: every page uses the same two fonts */
    HPDF_Dict res = HPDF_Dict_GetItem((HPDF_Dict)d->page, "Resources", HPDF_OCLASS_DICT);
    HPDF_Stream s = HPDF_CallbackWriter_New(d->pdf->mmgr, sp__hpdf_write, o);
    if (res == NULL || s == NULL) {
        if (s)
            HPDF_Stream_Free(s);
        int rc = sp_pdf__check(d, "writing the resources", err);
        return rc < 0 ? rc : sp_err_set(err, SP_EPROTO, "libharu's page has no resources");
    }
    sp__obj(o, o->res_id);
    int rc = sp__written(d, HPDF_Obj_WriteValue(res, s, NULL), o->res_id, err);
    sp__putf(o, "\012endobj\012");
    if (rc == 0)
        rc = sp__hpdf_objects(d, s, err);
    HPDF_Stream_Free(s);
    if (rc < 0)
        return rc;
    for (uint32_t i = 1; i < o->nobj; i++)
        if (o->xref[i] == 0)
            return sp_err_set(err, SP_EPROTO, "object %u of %u was not written", i, o->nobj);
    int64_t start = o->off + (int64_t)o->len;
    sp__putf(o, "xref\0120 %u\0120000000000 65535 f\015\012", o->nobj);
    for (uint32_t i = 1; i < o->nobj; i++)
        sp__putf(o, "%010lld 00000 n\015\012", (long long)o->xref[i]);
    sp__putf(o, "trailer\012<<\012/Root %u 0 R\012/Info %u 0 R\012/Size %u\012>>\012startxref\012"
             "%lld\012%%%%EOF\012", sp__id(d->pdf->catalog), sp__id(d->pdf->info), o->nobj,
             (long long)start);
    sp__flush(o);
    if (o->err_no == 0 && close(o->fd) < 0)
        o->err_no = errno;
    o->fd = -1;
    return sp_pdf__check(d, "writing the PDF", err);
}

void sp_pdf__out_close(sp_pdf__out *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    sp_free(o->buf);
    sp_free(o->xref);
    o->buf = NULL;
    o->xref = NULL;
}

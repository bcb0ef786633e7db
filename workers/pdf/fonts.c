/* fonts.c - the renderer's TrueType fonts (render_int.h): loading and embedding one
 * through libharu, the advance widths it is measured with, and libharu's /ToUnicode
 * rewritten. One sp_pdf__font per face; a fallback chain (a face for the characters
 * another lacks) would be a list of them, each loaded by sp_pdf__font_load. */
#include <hpdf_objects.h>
#include <stdio.h>
#include <string.h>

#include "render_int.h"
#include "spool/alloc.h"

/* libharu 2.3.0 points a UTF-8 font's /ToUnicode at its encoding CMap, which is not a
 * ToUnicode CMap (viewers warn, and text extraction is left to their fallbacks).
 * Rewrite that stream as the map it should be: with libharu's UTF-8 encoder a CID is
 * the character's BMP code point, so CID n maps to U+n. */
static void sp__fix_tounicode(HPDF_Font font)
{
    HPDF_Dict fd = (HPDF_Dict)font;
    HPDF_Dict tu = NULL;
    for (HPDF_UINT i = 0; i < fd->list->count && tu == NULL; i++) {
        HPDF_DictElement e = HPDF_List_ItemAt(fd->list, i);
        if (e == NULL || strcmp(e->key, "ToUnicode") != 0)
            continue;
        HPDF_Obj_Header *h = e->value;
        if (h->obj_class == HPDF_OCLASS_PROXY)
            h = ((HPDF_Proxy)e->value)->obj;
        if ((h->obj_class & HPDF_OCLASS_ANY) == HPDF_OCLASS_DICT)
            tu = (HPDF_Dict)h;
    }
    if (tu == NULL || tu->stream == NULL || tu->before_write_fn != NULL)
        return;
    HPDF_Stream s = HPDF_MemStream_New(tu->mmgr, 8192);
    if (s == NULL)
        return;
    static const char head[] =
        "/CIDInit /ProcSet findresource begin\012"
        "12 dict begin\012"
        "begincmap\012"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\012"
        "/CMapName /Adobe-Identity-UCS def\012"
        "/CMapType 2 def\012"
        "1 begincodespacerange\012<0000> <FFFF>\012endcodespacerange\012";
    static const char tail[] = "endcmap\012"
                               "CMapName currentdict /CMap defineresource pop\012"
                               "end\012end\012";
    HPDF_STATUS st = HPDF_Stream_WriteStr(s, head);
    /* 256 ranges of 256 (a bfrange may not cross its last byte); 100 per block */
    for (int blk = 0; blk < 256 && st == HPDF_OK; blk += 100) {
        int n = 256 - blk < 100 ? 256 - blk : 100;
        char line[64];
        snprintf(line, sizeof line, "%d beginbfrange\012", n);
        st = HPDF_Stream_WriteStr(s, line);
        for (int k = blk; k < blk + n && st == HPDF_OK; k++) {
            snprintf(line, sizeof line, "<%02X00> <%02XFF> <%02X00>\012", k, k, k);
            st = HPDF_Stream_WriteStr(s, line);
        }
        if (st == HPDF_OK)
            st = HPDF_Stream_WriteStr(s, "endbfrange\012");
    }
    if (st == HPDF_OK)
        st = HPDF_Stream_WriteStr(s, tail);
    if (st != HPDF_OK) {
        HPDF_Stream_Free(s);
        return;
    }
    HPDF_Stream_Free(tu->stream);
    tu->stream = s;
    /* the encoding CMap's entries do not belong in a ToUnicode stream */
    HPDF_Dict_RemoveElement(tu, "Type");
    HPDF_Dict_RemoveElement(tu, "CMapName");
    HPDF_Dict_RemoveElement(tu, "CIDSystemInfo");
}

/* Load the TrueType font at path into d (embedded, UTF-8) and start its width cache.
 * 0, SP_EIO (cannot be read), SP_ETOOBIG (memory cap), SP_ENOMEM. */
int sp_pdf__font_load(sp_pdf_doc *d, const char *path, sp_pdf__font *f, sp_err *err)
{
    f->w = sp_malloc(65536 * sizeof *f->w);
    if (f->w == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    memset(f->w, 0xFF, 65536 * sizeof *f->w);
    const char *name = HPDF_LoadTTFontFromFile(d->pdf, path, HPDF_TRUE);
    if (name != NULL)
        f->f = HPDF_GetFont(d->pdf, name, "UTF-8");
    if (f->f == NULL) {
        int rc = sp_pdf__check(d, "loading a font", err);
        if (rc == SP_ETOOBIG || rc == SP_ENOMEM)
            return rc;
        return sp_err_set(err, SP_EIO, "cannot load the TrueType font %s (libharu error "
                          "0x%04X)", path, (unsigned)d->herr);
    }
    f->asc = HPDF_Font_GetAscent(f->f);
    f->desc = HPDF_Font_GetDescent(f->f);
    sp__fix_tounicode(f->f);
    return 0;
}

void sp_pdf__font_free(sp_pdf__font *f)
{
    sp_free(f->w);
    f->w = NULL;
}

/* Advance width of c in 1/1000 em, looked up in libharu once (which also marks the
 * glyph for the embedded subset). */
double sp_pdf__cw(sp_pdf__font *f, uint16_t c)
{
    int16_t v = f->w[c];
    if (v < 0) {
        HPDF_INT x = HPDF_Font_GetUnicodeWidth(f->f, c);
        v = (int16_t)(x < 0 ? 0 : x > 32767 ? 32767 : x);
        f->w[c] = v;
    }
    return v;
}

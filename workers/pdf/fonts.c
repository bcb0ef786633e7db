/* fonts.c - the renderer's TrueType fonts (render_int.h): loading and embedding them
 * through libharu, the fallback chain (the first font with a glyph draws a character;
 * a fallback is loaded when a character first needs it), the advance widths text is
 * measured with, and libharu's /ToUnicode rewritten. */
#include <hpdf_font.h>
#include <hpdf_fontdef.h>
#include <hpdf_objects.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "render_int.h"
#include "spool/alloc.h"
#include "spool/utf8.h"

#define SP__UNKNOWN 0xFE /* sp_pdf__font.face: not looked up yet */
#define SP__MISSING 0xFF /* sp_pdf__font.face: no font has the character */

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

/* Load a TrueType font file (a .ttc: its first font) into pdf, embedded; its name. */
static const char *sp__load_ttf(HPDF_Doc pdf, const char *path)
{
    size_t n = strlen(path);
    if (n > 4 && strcasecmp(path + n - 4, ".ttc") == 0)
        return HPDF_LoadTTFontFromFile2(pdf, path, 0, HPDF_TRUE);
    return HPDF_LoadTTFontFromFile(pdf, path, HPDF_TRUE);
}

static HPDF_FontDef sp__truetype_def(HPDF_Font f)
{
    HPDF_FontDef def = f && f->attr ? ((HPDF_FontAttr)f->attr)->fontdef : NULL;
    return def && def->type == HPDF_FONTDEF_TYPE_TRUETYPE ? def : NULL;
}

/* Load the TrueType font at path into d (embedded, UTF-8) and start its width cache.
 * 0, SP_EIO (cannot be read), SP_ETOOBIG (memory cap), SP_ENOMEM. */
int sp_pdf__font_load(sp_pdf_doc *d, const char *path, sp_pdf__font *f, sp_err *err)
{
    f->doc = d;
    f->w = sp_malloc(65536 * sizeof *f->w);
    f->face = sp_malloc(65536);
    if (f->w == NULL || f->face == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    memset(f->w, 0xFF, 65536 * sizeof *f->w);
    memset(f->face, SP__UNKNOWN, 65536);
    const char *name = sp__load_ttf(d->pdf, path);
    if (name != NULL)
        f->f = HPDF_GetFont(d->pdf, name, "UTF-8");
    if (f->f == NULL) {
        int rc = sp_pdf__check(d, "loading a font", err);
        if (rc == SP_ETOOBIG || rc == SP_ENOMEM)
            return rc;
        return sp_err_set(err, SP_EIO, "cannot load the TrueType font %s (libharu error "
                          "0x%04X)", path, (unsigned)d->herr);
    }
    f->def = sp__truetype_def(f->f);
    if (f->def == NULL)
        return sp_err_set(err, SP_EIO, "%s is not a TrueType font", path);
    f->asc = HPDF_Font_GetAscent(f->f);
    f->desc = HPDF_Font_GetDescent(f->f);
    sp__fix_tounicode(f->f);
    return 0;
}

void sp_pdf__font_free(sp_pdf__font *f)
{
    sp_free(f->w);
    sp_free(f->face);
    f->w = NULL;
    f->face = NULL;
}

/* Fallback i of d, loaded on first use; NULL when it cannot be loaded (its characters
 * then fall through to the next fallback, or to U+FFFD). */
static sp_pdf__fallback *sp__fallback_font(sp_pdf_doc *d, size_t i)
{
    sp_pdf__fallback *fb = &d->fb[i];
    if (fb->state == 0) {
        HPDF_STATUS before = d->herr;
        const char *name = sp__load_ttf(d->pdf, fb->path);
        HPDF_Font f = name ? HPDF_GetFont(d->pdf, name, "UTF-8") : NULL;
        HPDF_FontDef def = sp__truetype_def(f);
        if (def != NULL) {
            fb->f = f;
            fb->def = def;
            fb->state = 1;
            sp__fix_tounicode(f);
        } else {
            /* the document goes on without it; a memory cap hit still fails it */
            fb->state = -1;
            if (before == 0 && !d->heap.hit) {
                d->herr = 0;
                HPDF_ResetError(d->pdf);
            }
        }
    }
    return fb->state == 1 ? fb : NULL;
}

static int16_t sp__width_of(HPDF_Font f, uint16_t c)
{
    HPDF_INT x = HPDF_Font_GetUnicodeWidth(f, c);
    return (int16_t)(x < 0 ? 0 : x > 32767 ? 32767 : x);
}

/* Which font of the chain draws c, and its width (looking a glyph up in libharu also
 * marks it for the embedded subset). */
static int16_t sp__look_up(sp_pdf__font *f, uint16_t c)
{
    sp_pdf_doc *d = f->doc;
    uint8_t face = SP__MISSING;
    HPDF_Font font = f->f;
    if (sp_bidi_control(c)) { /* steers the order, not drawn */
        f->face[c] = 0;
        f->w[c] = 0;
        return 0;
    }
    if (c == SP_PDF__NO_GLYPH) {
        /* outside the BMP: no font of the chain can draw it */
    } else if (c == ' ' || HPDF_TTFontDef_GetGlyphid(f->def, c) != 0) {
        face = 0;
    } else {
        for (size_t i = 0; i < d->nfb && face == SP__MISSING; i++) {
            sp_pdf__fallback *fb = sp__fallback_font(d, i);
            if (fb != NULL && HPDF_TTFontDef_GetGlyphid(fb->def, c) != 0) {
                face = (uint8_t)(1 + i);
                font = fb->f;
            }
        }
    }
    int16_t v = sp__width_of(font, face == SP__MISSING ? SP_UTF8_REPLACEMENT : c);
    f->face[c] = face;
    f->w[c] = v;
    return v;
}

/* Advance width of c in 1/1000 em, in the font of the chain that draws it. */
double sp_pdf__cw(sp_pdf__font *f, uint16_t c)
{
    int16_t v = f->w[c];
    if (v < 0)
        v = sp__look_up(f, c);
    return v;
}

HPDF_Font sp_pdf__face_of(sp_pdf__font *f, uint16_t *c)
{
    uint8_t face = f->face[*c];
    if (face == SP__UNKNOWN) {
        sp__look_up(f, *c);
        face = f->face[*c];
    }
    if (face == SP__MISSING) {
        *c = SP_UTF8_REPLACEMENT;
        return f->f;
    }
    return face == 0 ? f->f : f->doc->fb[face - 1].f;
}

static void HPDF_STDCALL sp__on_check_error(HPDF_STATUS e, HPDF_STATUS detail, void *ud)
{
    HPDF_STATUS *first = ud;
    (void)detail;
    if (*first == 0)
        *first = e;
}

int sp_pdf_check_font(const char *path, sp_err *err)
{
    HPDF_STATUS e = 0;
    HPDF_Doc pdf = HPDF_New(sp__on_check_error, &e);
    if (pdf == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    HPDF_UseUTFEncodings(pdf);
    const char *name = sp__load_ttf(pdf, path);
    bool tt = sp__truetype_def(name ? HPDF_GetFont(pdf, name, "UTF-8") : NULL) != NULL;
    HPDF_Free(pdf);
    if (!tt)
        return sp_err_set(err, SP_EIO, "%s is not a TrueType font libharu can embed (libharu "
                          "error 0x%04X; OpenType fonts with CFF outlines are not supported)",
                          path, (unsigned)e);
    return 0;
}

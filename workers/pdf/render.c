/* render.c - the paginated table on libharu (see render.h). */
#include "render.h"

#include <hpdf.h>
#include <hpdf_font.h>
#include <hpdf_fontdef.h>
#include <hpdf_objects.h>
#include <hpdf_pages.h>
#include <hpdf_streams.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/limits.h"
#include "spool/utf8.h"
#include "bidi.h"
#include "text.h"

/* Layout, in points. */
#define SP__MARGIN SP_EXPORT_MARGIN
#define SP__BODY_SIZE 9.0
#define SP__TITLE_SIZE 16.0
#define SP__FOOT_SIZE 8.0
#define SP__LEAD 1.2 /* line height / font size */
#define SP__PAD_X 4.0
#define SP__PAD_Y 3.0
#define SP__TITLE_GAP 10.0
#define SP__TITLE_LINES 3
#define SP__HEAD_LINES 3
#define SP__FOOT_GAP 10.0
#define SP__MIN_COL SP_EXPORT_MIN_COLUMN
#define SP__NAT_MAX 0.4     /* a measured column asks for at most this share of the width */
#define SP__SAMPLE_CHARS 200 /* code points measured per sampled cell */
#define SP__ZEBRA 0.94
#define SP__HEAD_FILL 0.84
#define SP__FOOT_GRAY 0.35
#define SP__ELLIPSIS 0x2026u
#define SP__NO_GLYPH 0xFFFFu  /* stands for a character outside the BMP (no font has it) */
#define SP__MAX_FALLBACK 4    /* fallback fonts after the column's own */
#define SP__UNKNOWN 0xFE      /* sp__font.face: not looked up yet */
#define SP__MISSING 0xFF      /* sp__font.face: no font has the character */
#define SP__PAGES_PER_NODE 256 /* page tree: root -> nodes of 256 pages -> pages */

/* ---- libharu's memory: a heap per document, counted and capped ------------------ */

/* Every allocation libharu makes for a document comes from that document's heap: small
 * blocks from size classes carved out of 256 KB chunks (free blocks kept on a list per
 * class), larger ones from malloc on a list. Freeing the document releases the chunks
 * and whatever large blocks remain, so memory libharu loses on its own error paths (it
 * leaks an object or two when an allocation fails mid-page) cannot outlive the job.
 * The cap counts what the heap holds (chunks and large blocks). */

#define SP__CHUNK (256 * 1024)
#define SP__SMALL_MAX 2048 /* block size, header included */
#define SP__BIG_TAG UINT64_C(0x5350424947424C4B) /* marks a large block's header */

static const uint32_t sp__class_size[] = {16,  32,  48,  64,  80,  96,   112,  128,
                                          144, 160, 176, 192, 224, 256,  320,  384,
                                          448, 512, 640, 768, 1024, 1280, 1536, 2048};
#define SP__NCLASS (sizeof sp__class_size / sizeof sp__class_size[0])

typedef struct sp__chunk {
    struct sp__chunk *next;
    uint64_t pad;
} sp__chunk;

/* A large block: its links and size, then the tag just before the user's bytes. */
typedef struct sp__big {
    struct sp__big *prev, *next;
    uint64_t size;
    uint64_t tag;
} sp__big;
_Static_assert(sizeof(sp__big) == 32, "large blocks stay 16-byte aligned");

typedef struct sp__heap {
    int64_t cur, peak, max; /* bytes held; max 0: no cap */
    bool hit;               /* an allocation was refused by the cap */
    void *free[SP__NCLASS]; /* free small blocks (header word holds the link) */
    sp__chunk *chunks;
    char *bump, *end;       /* the unused tail of the newest chunk */
    sp__big *big;
} sp__heap;

/* The heap of the document whose function is running on this thread: libharu's
 * allocator callbacks have no user data. Every public function sets it. */
static _Thread_local sp__heap *sp__tls_heap;

static bool sp__heap_grow(sp__heap *h, int64_t n)
{
    if (h->max > 0 && h->cur + n > h->max) {
        h->hit = true;
        return false;
    }
    h->cur += n;
    if (h->cur > h->peak)
        h->peak = h->cur;
    return true;
}

static void *HPDF_STDCALL sp__hpdf_alloc(HPDF_UINT size)
{
    sp__heap *h = sp__tls_heap;
    if (h == NULL)
        return NULL; /* not within a document's call: never happens */
    size_t need = (size_t)size + 8;
    if (need <= SP__SMALL_MAX) {
        size_t k = 0;
        while (sp__class_size[k] < need)
            k++;
        char *b = h->free[k];
        if (b != NULL) {
            h->free[k] = *(void **)b;
        } else {
            size_t sz = sp__class_size[k];
            if ((size_t)(h->end - h->bump) < sz) {
                if (!sp__heap_grow(h, SP__CHUNK))
                    return NULL;
                sp__chunk *c = sp_malloc(SP__CHUNK);
                if (c == NULL) {
                    h->cur -= SP__CHUNK;
                    return NULL;
                }
                c->next = h->chunks;
                h->chunks = c;
                h->bump = (char *)(c + 1);
                h->end = (char *)c + SP__CHUNK;
            }
            b = h->bump;
            h->bump += sz;
        }
        *(uint64_t *)b = k;
        return b + 8;
    }
    if (!sp__heap_grow(h, (int64_t)(sizeof(sp__big) + size)))
        return NULL;
    sp__big *g = sp_malloc(sizeof *g + size);
    if (g == NULL) {
        h->cur -= (int64_t)(sizeof(sp__big) + size);
        return NULL;
    }
    g->prev = NULL;
    g->next = h->big;
    if (h->big)
        h->big->prev = g;
    h->big = g;
    g->size = size;
    g->tag = SP__BIG_TAG;
    return g + 1;
}

static void sp__big_free(sp__heap *h, sp__big *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        h->big = g->next;
    if (g->next)
        g->next->prev = g->prev;
    h->cur -= (int64_t)(sizeof *g + g->size);
    sp_free(g);
}

static void HPDF_STDCALL sp__hpdf_free(void *p)
{
    if (p == NULL)
        return;
    sp__heap *h = sp__tls_heap;
    if (h == NULL)
        return;
    uint64_t tag = ((uint64_t *)p)[-1];
    if (tag == SP__BIG_TAG) {
        sp__big_free(h, (sp__big *)p - 1);
        return;
    }
    char *b = (char *)p - 8;
    *(void **)b = h->free[tag];
    h->free[tag] = b;
}

/* Release everything the heap holds (after HPDF_Free). */
static void sp__heap_release(sp__heap *h)
{
    while (h->big)
        sp__big_free(h, h->big);
    for (sp__chunk *c = h->chunks, *next; c; c = next) {
        next = c->next;
        sp_free(c);
    }
    h->chunks = NULL;
    h->bump = h->end = NULL;
    memset(h->free, 0, sizeof h->free);
    h->cur = 0;
}

/* ---- the document ---------------------------------------------------------------- */

/* A fallback font: loaded the first time a character needs it, shared by the regular
 * and the bold chain. */
typedef struct sp__fallback {
    char *path;
    HPDF_Font f;
    HPDF_FontDef def;
    int state; /* 0 not loaded yet, 1 loaded, -1 failed to load (then skipped) */
} sp__fallback;

/* A font chain: the column font first, then the document's fallbacks. Each BMP code
 * point is looked up once: the first font that has a glyph draws it; when none has one,
 * the first font's U+FFFD does (and it is counted as missing). */
typedef struct sp__font {
    HPDF_Font f;
    HPDF_FontDef def;
    int16_t *w;     /* advance widths of the BMP in 1/1000 em, -1 until looked up */
    uint8_t *face;  /* per code point: 0 this font, 1 + i fallback i, SP__MISSING */
    double asc;     /* ascent, 1/1000 em (positive) */
    double desc;    /* descent, 1/1000 em (negative) */
    sp_pdf_doc *doc;
} sp__font;

typedef struct sp__col {
    char *label;
    double req;   /* requested width, 0: measured */
    double nat;   /* measured natural width (text only) */
    double w;     /* final width */
    double x;     /* left edge */
    sp_pdf_align align;
    bool wrap;
} sp__col;

/* One laid-out line of a cell: code points cp[start..end) then maybe "…". */
typedef struct sp__seg {
    uint32_t start, end;
    float w; /* width in 1/1000 em, ellipsis included */
    bool ellipsis;
    uint8_t bidi; /* 0 left to right only; 1 and 2: shaped, reorder when drawn (2: the
                   * paragraph runs right to left) */
} sp__seg;

struct sp_pdf_doc {
    HPDF_Doc pdf;
    sp__heap heap;
    HPDF_STATUS herr, hdetail;
    sp__font reg, bold;
    sp__fallback fb[SP__MAX_FALLBACK];
    size_t nfb;
    int64_t missing; /* characters drawn as U+FFFD because no font has them */
    double page_w, page_h;
    bool letter, landscape;

    sp__col *col;
    size_t ncol;
    const char **labels; /* the columns' labels, as a row */
    size_t *label_len;
    int max_lines;
    double lead;     /* body line height */
    char *title;
    double title_h;  /* title block height, gap included */
    double head_h;   /* header row height */
    double top, bottom;

    /* pagination (layout and render passes alike) */
    int64_t pages;
    int64_t layout_pages;
    int64_t row_on_page;
    double y; /* top of the next row */
    bool rendering;
    HPDF_Page page;

    /* the row being laid out: code points, lines per cell, lines */
    uint16_t *cp;
    size_t cp_len, cp_cap;
    int *nlines;
    sp__seg *seg; /* ncol * seg_per_col */
    int seg_per_col;

    /* right-to-left cells: levels and bidi types beside cp, a line in visual order */
    sp_bidi *bidi;
    int8_t *lv;
    uint32_t *bt;
    size_t bidi_cap;
    uint16_t *vis;
    size_t vis_cap;

    sp_buf line;     /* UTF-8 of one line to draw */
    z_stream z;
    bool z_live;
    unsigned char *zbuf;
    size_t zcap;
};

static void HPDF_STDCALL sp__on_error(HPDF_STATUS e, HPDF_STATUS detail, void *ud)
{
    sp_pdf_doc *d = ud;
    if (d->herr == 0) {
        d->herr = e;
        d->hdetail = detail;
    }
}

/* Turn libharu's recorded error (if any) into an sp_err. */
static int sp__check(sp_pdf_doc *d, const char *what, sp_err *err)
{
    if (d->heap.hit) {
        int64_t max = d->heap.max;
        if (max % (1 << 20) == 0)
            return sp_err_set(err, SP_ETOOBIG, "the document needs more than %lld MiB of "
                              "memory", (long long)(max >> 20));
        return sp_err_set(err, SP_ETOOBIG, "the document needs more than %lld bytes of memory",
                          (long long)max);
    }
    if (d->herr == 0)
        return 0;
    if (d->herr == HPDF_FILE_IO_ERROR || d->herr == HPDF_FILE_OPEN_ERROR)
        return sp_err_set(err, SP_EIO, "%s: cannot write the file (libharu error 0x%04X, "
                          "errno %u)", what, (unsigned)d->herr, (unsigned)d->hdetail);
    if (d->herr == HPDF_FAILD_TO_ALLOC_MEM)
        return sp_err_set(err, SP_ENOMEM, "%s: out of memory", what);
    return sp_err_set(err, SP_EPROTO, "%s: libharu error 0x%04X (detail %u)", what,
                      (unsigned)d->herr, (unsigned)d->hdetail);
}

static void sp__fix_tounicode(HPDF_Font font);

/* Load a TrueType font file (a .ttc: its first font) into pdf, embedded; its name. */
static const char *sp__load_ttf(HPDF_Doc pdf, const char *path)
{
    size_t n = strlen(path);
    if (n > 4 && strcasecmp(path + n - 4, ".ttc") == 0)
        return HPDF_LoadTTFontFromFile2(pdf, path, 0, HPDF_TRUE);
    return HPDF_LoadTTFontFromFile(pdf, path, HPDF_TRUE);
}

/* Fallback i of d, loaded on first use; NULL when it cannot be loaded (its characters
 * then fall through to the next fallback, or to U+FFFD). */
static sp__fallback *sp__fallback_font(sp_pdf_doc *d, size_t i)
{
    sp__fallback *fb = &d->fb[i];
    if (fb->state == 0) {
        HPDF_STATUS before = d->herr;
        const char *name = sp__load_ttf(d->pdf, fb->path);
        HPDF_Font f = name ? HPDF_GetFont(d->pdf, name, "UTF-8") : NULL;
        if (f != NULL && f->attr != NULL) {
            fb->f = f;
            fb->def = ((HPDF_FontAttr)f->attr)->fontdef;
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

/* Which font of the chain draws c, and its width. */
static int16_t sp__look_up(sp__font *f, uint16_t c)
{
    sp_pdf_doc *d = f->doc;
    uint8_t face = SP__MISSING;
    HPDF_Font font = f->f;
    if (sp_bidi_control(c)) { /* steers the order, not drawn */
        f->face[c] = 0;
        f->w[c] = 0;
        return 0;
    }
    if (c != SP__NO_GLYPH && (c == ' ' || HPDF_TTFontDef_GetGlyphid(f->def, c) != 0)) {
        face = 0;
    } else if (c != SP__NO_GLYPH) {
        for (size_t i = 0; i < d->nfb && face == SP__MISSING; i++) {
            sp__fallback *fb = sp__fallback_font(d, i);
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

static double sp__cw(sp__font *f, uint16_t c)
{
    int16_t v = f->w[c];
    if (v < 0)
        v = sp__look_up(f, c);
    return v;
}

/* The font that draws c (looked up by sp__cw before) and the code point it draws. */
static HPDF_Font sp__face_of(sp__font *f, uint16_t *c)
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

/* ---- text: decoding and line breaking ----------------------------------------------- */

/* Room for extra more code points in d->cp. On success d->cp is never NULL, even for
 * extra == 0: callers form d->cp + start for empty text too. */
static int sp__cp_reserve(sp_pdf_doc *d, size_t extra)
{
    if (d->cp != NULL && d->cp_len + extra <= d->cp_cap)
        return 0;
    size_t cap = d->cp_cap ? d->cp_cap : 1024;
    while (cap < d->cp_len + extra)
        cap *= 2;
    uint16_t *p = sp_realloc(d->cp, cap * sizeof *p);
    if (p == NULL)
        return SP_ENOMEM;
    d->cp = p;
    d->cp_cap = cap;
    return 0;
}

/* Decode s into d->cp for drawing with f: invalid UTF-8 and characters outside the
 * BMP (libharu's UTF-8 fonts are 16-bit) become SP__NO_GLYPH, tabs become spaces, other
 * control characters are dropped, and a newline is kept only when hard_breaks. Stops
 * once the text is wider than limit (1/1000 em); *more says text was left. */
static int sp__decode(sp_pdf_doc *d, sp__font *f, const char *s, size_t n, bool hard_breaks,
                      double limit, size_t *start, size_t *count, bool *more)
{
    *start = d->cp_len;
    *more = false;
    if (sp__cp_reserve(d, n) < 0)
        return SP_ENOMEM;
    const unsigned char *u = (const unsigned char *)s;
    double w = 0;
    int breaks = 0;
    size_t i = 0;
    while (i < n) {
        uint32_t c;
        if (u[i] < 0x80)
            c = u[i++];
        else
            i += sp_utf8_decode(u + i, n - i, &c);
        if (c == '\n') {
            if (!hard_breaks) {
                c = ' ';
            } else if (++breaks > d->max_lines) {
                *more = true;
                break;
            }
        } else if (c == '\t') {
            c = ' ';
        } else if (c < 0x20 || (c >= 0x7F && c < 0xA0)) {
            continue;
        } else if (c > 0xFFFF) {
            c = SP__NO_GLYPH; /* drawn as U+FFFD and counted: libharu's fonts are 16-bit */
        }
        d->cp[d->cp_len++] = (uint16_t)c;
        if (c != '\n') {
            w += sp__cw(f, (uint16_t)c);
            if (w > limit) {
                *more = i < n;
                break;
            }
        }
    }
    *count = d->cp_len - *start;
    return 0;
}

static double sp__width(sp__font *f, const uint16_t *cp, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w += sp__cw(f, cp[i]);
    return w;
}

/* Ideographs, kana and hangul: a line may break before and after each of them (UAX #14
 * class ID), except before closing punctuation, which stays on the line it ends. */
static bool sp__ideograph(uint16_t c)
{
    return (c >= 0x2E80 && c <= 0x9FFF) || (c >= 0xAC00 && c <= 0xD7AF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFF00 && c <= 0xFFEF);
}

static bool sp__no_break_before(uint16_t c)
{
    switch (c) {
    case 0x3001: case 0x3002: case 0x3009: case 0x300B: case 0x300D: case 0x300F:
    case 0x3011: case 0x3015: case 0x3017: case 0x3019: case 0x301B: case 0x30FC:
    case 0xFF01: case 0xFF09: case 0xFF0C: case 0xFF0E: case 0xFF1A: case 0xFF1B:
    case 0xFF1F: case 0xFF3D: case 0xFF5D: case 0x3063: case 0x30C3: case 0x3083:
    case 0x3085: case 0x3087: case 0x30E3: case 0x30E5: case 0x30E7:
        return true;
    default:
        return c == ',' || c == '.' || c == ')' || c == ']' || c == '}' || c == '!' ||
               c == '?' || c == ':' || c == ';';
    }
}

/* A line may break before cp[i] (i > 0 on the line) inside a run of text: at a space
 * (the spaces are dropped), or beside an ideograph. */
static bool sp__break_before(const uint16_t *cp, size_t i)
{
    if (cp[i] == ' ')
        return true;
    return (sp__ideograph(cp[i]) || sp__ideograph(cp[i - 1])) && cp[i - 1] != ' ' &&
           !sp__no_break_before(cp[i]);
}

/* Break cp[start..start+n) into at most maxl lines of width <= width (1/1000 em):
 * at spaces and beside ideographs when wrap, else anywhere; newlines (present only when wrapping) force a
 * break. When text is left over (more, or lines ran out) the last line ends in "…".
 * Returns the number of lines in seg[]. */
static int sp__break(sp_pdf_doc *d, sp__font *f, size_t start, size_t n, bool more,
                     bool wrap, int maxl, double width, sp__seg *seg)
{
    const uint16_t *cp = d->cp;
    size_t pos = start, end = start + n;
    int nl = 0;
    while (nl < maxl && pos < end) {
        size_t i = pos, brk = SIZE_MAX;
        double w = 0, wbrk = 0;
        while (i < end && cp[i] != '\n') {
            double cw = sp__cw(f, cp[i]);
            if (w + cw > width + 0.001)
                break;
            if (wrap && i > pos && sp__break_before(cp, i)) {
                brk = i;
                wbrk = w;
            }
            w += cw;
            i++;
        }
        sp__seg *s = &seg[nl++];
        s->start = (uint32_t)pos;
        s->ellipsis = false;
        bool at_space = false;
        if (i == end || cp[i] == '\n') {
            s->end = (uint32_t)i;
            pos = i < end ? i + 1 : i;
        } else if (brk != SIZE_MAX) {
            s->end = (uint32_t)brk;
            w = wbrk;
            pos = brk;
            at_space = true;
        } else if (i > pos) {
            s->end = (uint32_t)i; /* a word longer than the line: cut inside it */
            pos = i;
        } else {
            s->end = (uint32_t)pos; /* not even one character fits */
            s->w = 0;
            more = true;
            break;
        }
        /* no trailing blanks: they would shift right-aligned and centred lines */
        while (s->end > s->start && cp[s->end - 1] == ' ') {
            s->end--;
            w -= sp__cw(f, ' ');
        }
        s->w = (float)(w > 0 ? w : 0);
        if (!wrap && pos < end) {
            more = true;
            break;
        }
        /* the next line starts after the spaces this one broke at */
        if (at_space)
            while (pos < end && cp[pos] == ' ')
                pos++;
    }
    /* Only blanks left over do not count as more text. */
    while (pos < end && (cp[pos] == ' ' || cp[pos] == '\n'))
        pos++;
    if (nl == 0)
        return 0;
    if (!(more || pos < end))
        return nl;
    /* Cut the last line until it and "…" fit; drop trailing spaces before "…". */
    sp__seg *s = &seg[nl - 1];
    double ell = sp__cw(f, SP__ELLIPSIS);
    double w = s->w;
    while (s->end > s->start && (w + ell > width + 0.001 || cp[s->end - 1] == ' ')) {
        s->end--;
        w -= sp__cw(f, cp[s->end]);
    }
    if (w < 0)
        w = 0;
    s->ellipsis = ell <= width + 0.001;
    s->w = (float)(w + (s->ellipsis ? ell : 0));
    return nl;
}

/* Shape the right-to-left text cp[start..start+*count) in place (it may shrink, and
 * d->cp_len with it) and keep its levels and types in d->lv / d->bt. */
static int sp__shape(sp_pdf_doc *d, size_t start, size_t *count, uint8_t *bidi)
{
    if (d->bidi == NULL && (d->bidi = sp_bidi_new()) == NULL)
        return SP_ENOMEM;
    if (d->bidi_cap < d->cp_cap) {
        int8_t *lv = sp_realloc(d->lv, d->cp_cap * sizeof *lv);
        if (lv != NULL)
            d->lv = lv;
        uint32_t *bt = sp_realloc(d->bt, d->cp_cap * sizeof *bt);
        if (bt != NULL)
            d->bt = bt;
        if (lv == NULL || bt == NULL)
            return SP_ENOMEM;
        d->bidi_cap = d->cp_cap;
    }
    bool rtl;
    size_t n = *count;
    if (sp_bidi_shape(d->bidi, d->cp + start, &n, d->lv + start, d->bt + start, &rtl) < 0)
        return SP_ENOMEM;
    d->cp_len -= *count - n;
    *count = n;
    *bidi = rtl ? 2 : 1;
    return 0;
}

/* Lay out one cell of width width_pt with font f at size; its lines go to seg[]. */
static int sp__layout_cell(sp_pdf_doc *d, sp__font *f, double size, const char *s, size_t n,
                           bool wrap, int maxl, double width_pt, sp__seg *seg, int *nlines)
{
    double width = width_pt * 1000.0 / size;
    if (width < 0)
        width = 0;
    size_t start, count;
    bool more;
    double limit = wrap ? 2.0 * (maxl + 1) * width + 2000.0 : width + 2000.0;
    if (sp__decode(d, f, s, n, wrap, limit, &start, &count, &more) < 0)
        return SP_ENOMEM;
    uint8_t bidi = 0;
    if (sp_bidi_needed(d->cp + start, count) && sp__shape(d, start, &count, &bidi) < 0)
        return SP_ENOMEM;
    *nlines = sp__break(d, f, start, count, more, wrap, wrap ? maxl : 1, width, seg);
    for (int k = 0; k < *nlines; k++)
        seg[k].bidi = bidi;
    return 0;
}

/* Lay out a row (header when head): fills d->nlines and d->seg, returns its height. */
static int sp__layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                          bool head, double *height)
{
    d->cp_len = 0;
    int maxn = 1;
    int maxl = head ? SP__HEAD_LINES : d->max_lines;
    sp__font *f = head ? &d->bold : &d->reg;
    for (size_t i = 0; i < d->ncol; i++) {
        sp__col *c = &d->col[i];
        int rc = sp__layout_cell(d, f, SP__BODY_SIZE, cells[i], lens[i], head || c->wrap, maxl,
                                 c->w - 2 * SP__PAD_X, d->seg + i * (size_t)d->seg_per_col,
                                 &d->nlines[i]);
        if (rc < 0)
            return rc;
        if (d->nlines[i] > maxn)
            maxn = d->nlines[i];
    }
    *height = 2 * SP__PAD_Y + maxn * d->lead;
    return 0;
}

/* ---- drawing ------------------------------------------------------------------------ */

/* Put the shaped line s (and its "…") in visual order in d->vis. */
static int sp__visual(sp_pdf_doc *d, const sp__seg *s)
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
                        d->bt + s->start, s->bidi == 2, s->ellipsis ? SP__ELLIPSIS : 0,
                        d->vis);
}

/* Draw nl laid-out lines of chain f between x..x+w, the first baseline at y0. The
 * page's font is f->f at size on entry and on return. A line is drawn as runs of the
 * characters one font draws (one run unless a fallback font is needed); a character no
 * font has is drawn as U+FFFD and counted when count is set. */
static void sp__draw_lines(sp_pdf_doc *d, HPDF_Page pg, sp__font *f, double size,
                           const sp__seg *segs, int nl, double x, double w, sp_pdf_align align,
                           double y0, double lead, bool count)
{
    HPDF_Font cur = f->f;
    for (int k = 0; k < nl; k++) {
        const sp__seg *s = &segs[k];
        if (s->end == s->start && !s->ellipsis)
            continue;
        double tw = s->w * size / 1000.0;
        double tx = x + SP__PAD_X;
        if (align == SP_PDF_RIGHT)
            tx = x + w - SP__PAD_X - tw;
        else if (align == SP_PDF_CENTER)
            tx = x + (w - tw) / 2;
        /* the line's characters, left to right: txt[0..n), then "…" when ell */
        const uint16_t *txt = d->cp + s->start;
        uint32_t n = s->end - s->start;
        bool ell = s->ellipsis;
        if (s->bidi) {
            if (sp__visual(d, s) < 0) {
                sp__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
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
                uint16_t c = j < n ? txt[j] : SP__ELLIPSIS, orig = c;
                if (sp_bidi_control(c))
                    continue;
                double cw = sp__cw(f, c);
                HPDF_Font face = sp__face_of(f, &c);
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
                sp__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
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
static double sp__baseline(const sp__font *f, double size, double lead, double top)
{
    double asc = f->asc * size / 1000.0, desc = -f->desc * size / 1000.0;
    return top - SP__PAD_Y - (lead - (asc + desc)) / 2 - asc;
}

/* Draw the row laid out in d->nlines/d->seg with its top at top, h high. */
static void sp__draw_row(sp_pdf_doc *d, bool head, double top, double h)
{
    HPDF_Page pg = d->page;
    double table_w = d->col[d->ncol - 1].x + d->col[d->ncol - 1].w - d->col[0].x;
    if (head || d->row_on_page % 2 == 1) {
        HPDF_Page_GSave(pg);
        HPDF_Page_SetGrayFill(pg, (HPDF_REAL)(head ? SP__HEAD_FILL : SP__ZEBRA));
        HPDF_Page_Rectangle(pg, (HPDF_REAL)d->col[0].x, (HPDF_REAL)(top - h),
                            (HPDF_REAL)table_w, (HPDF_REAL)h);
        HPDF_Page_Fill(pg);
        HPDF_Page_GRestore(pg);
    }
    sp__font *f = head ? &d->bold : &d->reg;
    HPDF_Page_BeginText(pg);
    HPDF_Page_SetFontAndSize(pg, f->f, (HPDF_REAL)SP__BODY_SIZE);
    double y0 = sp__baseline(f, SP__BODY_SIZE, d->lead, top);
    for (size_t i = 0; i < d->ncol; i++)
        sp__draw_lines(d, pg, f, SP__BODY_SIZE, d->seg + i * (size_t)d->seg_per_col,
                       d->nlines[i], d->col[i].x, d->col[i].w, d->col[i].align, y0, d->lead,
                       !head || d->pages == 1); /* the header counts once */
    HPDF_Page_EndText(pg);
}

/* Lay out the title (bold, wrapped to at most SP__TITLE_LINES lines) into segs. */
static int sp__layout_title(sp_pdf_doc *d, sp__seg *segs, int *nl)
{
    d->cp_len = 0;
    double avail = d->page_w - 2 * SP__MARGIN;
    return sp__layout_cell(d, &d->bold, SP__TITLE_SIZE, d->title, strlen(d->title), true,
                           SP__TITLE_LINES, avail, segs, nl);
}

static void sp__draw_title(sp_pdf_doc *d)
{
    sp__seg segs[SP__TITLE_LINES];
    int nl = 0;
    if (sp__layout_title(d, segs, &nl) < 0) {
        sp__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
        return;
    }
    double lead = SP__TITLE_SIZE * SP__LEAD;
    HPDF_Page_BeginText(d->page);
    HPDF_Page_SetFontAndSize(d->page, d->bold.f, (HPDF_REAL)SP__TITLE_SIZE);
    sp__draw_lines(d, d->page, &d->bold, SP__TITLE_SIZE, segs, nl, SP__MARGIN - SP__PAD_X,
                   d->page_w - 2 * SP__MARGIN + 2 * SP__PAD_X, SP_PDF_LEFT,
                   sp__baseline(&d->bold, SP__TITLE_SIZE, lead, d->top + SP__PAD_Y), lead,
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
        w += sp__cw(&d->reg, (uint16_t)*p);
    w = w * SP__FOOT_SIZE / 1000.0;
    HPDF_Page pg = d->page;
    HPDF_Page_BeginText(pg);
    HPDF_Page_SetGrayFill(pg, (HPDF_REAL)SP__FOOT_GRAY);
    HPDF_Page_SetFontAndSize(pg, d->reg.f, (HPDF_REAL)SP__FOOT_SIZE);
    HPDF_Page_TextOut(pg, (HPDF_REAL)((d->page_w - w) / 2), (HPDF_REAL)SP__MARGIN, text);
    HPDF_Page_EndText(pg);
}

/* Writes the /Filter entry of a content stream compressed by sp__compress_page. */
static HPDF_STATUS sp__write_flate_filter(HPDF_Dict dict, HPDF_Stream stream)
{
    (void)dict;
    return HPDF_Stream_WriteStr(stream, "/Filter /FlateDecode\012");
}

/* Compress a finished page's content stream now rather than at the save, so a page
 * holds a few KB instead of tens until the document is written. libharu has no API for
 * this: the page's contents dictionary gets a new memory stream holding the deflated
 * bytes, its filter is cleared (so the save does not compress again) and its write hook
 * adds /Filter /FlateDecode. Pages that do not look as expected stay as they are and
 * are compressed by the save. */
static void sp__compress_page(sp_pdf_doc *d, HPDF_Page pg)
{
    HPDF_PageAttr attr = (HPDF_PageAttr)pg->attr;
    HPDF_Dict contents = attr ? attr->contents : NULL;
    if (contents == NULL || contents->stream == NULL || contents->write_fn != NULL ||
        attr->stream != contents->stream || contents->stream->type != HPDF_STREAM_MEMORY)
        return;
    HPDF_Stream src = contents->stream;
    HPDF_UINT32 size = HPDF_Stream_Size(src);
    if (!d->z_live) {
        if (deflateInit(&d->z, Z_DEFAULT_COMPRESSION) != Z_OK)
            return;
        d->z_live = true;
    } else if (deflateReset(&d->z) != Z_OK) {
        return;
    }
    size_t bound = deflateBound(&d->z, size);
    if (bound > d->zcap) {
        unsigned char *p = sp_realloc(d->zbuf, bound);
        if (p == NULL)
            return;
        d->zbuf = p;
        d->zcap = bound;
    }
    d->z.next_out = d->zbuf;
    d->z.avail_out = (uInt)bound;
    HPDF_UINT nbuf = HPDF_MemStream_GetBufCount(src);
    HPDF_UINT32 left = size;
    for (HPDF_UINT i = 0; i < nbuf && left > 0; i++) {
        HPDF_UINT len = 0;
        HPDF_BYTE *p = HPDF_MemStream_GetBufPtr(src, i, &len);
        if (p == NULL)
            return;
        if (len > left)
            len = left;
        left -= len;
        d->z.next_in = p;
        d->z.avail_in = len;
        if (deflate(&d->z, Z_NO_FLUSH) != Z_OK)
            return;
    }
    if (left != 0 || deflate(&d->z, Z_FINISH) != Z_STREAM_END)
        return;
    size_t out = bound - d->z.avail_out;
    HPDF_Stream dst = HPDF_MemStream_New(contents->mmgr, (HPDF_UINT)(out ? out : 1));
    if (dst == NULL)
        return;
    if (HPDF_Stream_Write(dst, d->zbuf, (HPDF_UINT)out) != HPDF_OK) {
        HPDF_Stream_Free(dst);
        return;
    }
    contents->stream = dst;
    attr->stream = dst;
    contents->filter = HPDF_STREAM_FILTER_NONE;
    contents->write_fn = sp__write_flate_filter;
    HPDF_Stream_Free(src);
}

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

/* Finish the page being drawn: its footer, then compress it. */
static void sp__page_finish(sp_pdf_doc *d)
{
    if (d->page == NULL)
        return;
    sp__draw_footer(d);
    sp__compress_page(d, d->page);
    d->page = NULL;
}

/* Start a page: counted in both passes; drawn (title, header) when rendering. The
 * header is laid out into the shared row buffers, so a row laid out before must be
 * laid out again. */
static void sp__page_start(sp_pdf_doc *d)
{
    if (d->rendering)
        sp__page_finish(d);
    d->pages++;
    d->row_on_page = 0;
    d->y = d->top - (d->pages == 1 ? d->title_h : 0);
    if (d->rendering) {
        d->page = HPDF_AddPage(d->pdf);
        if (d->page == NULL)
            return;
        HPDF_Page_SetSize(d->page, d->letter ? HPDF_PAGE_SIZE_LETTER : HPDF_PAGE_SIZE_A4,
                          d->landscape ? HPDF_PAGE_LANDSCAPE : HPDF_PAGE_PORTRAIT);
        sp__drop_procset(d->page);
        if (d->pages == 1)
            sp__draw_title(d);
        double h;
        if (sp__layout_row(d, d->labels, d->label_len, true, &h) < 0) {
            sp__on_error(HPDF_FAILD_TO_ALLOC_MEM, 0, d);
            return;
        }
        sp__draw_row(d, true, d->y, d->head_h);
    }
    d->y -= d->head_h;
}

/* ---- the public face --------------------------------------------------------------- */

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

static int sp__load_font(sp_pdf_doc *d, const char *path, sp__font *f, sp_err *err)
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
        int rc = sp__check(d, "loading a font", err);
        if (rc == SP_ETOOBIG || rc == SP_ENOMEM)
            return rc;
        return sp_err_set(err, SP_EIO, "cannot load the TrueType font %s (libharu error "
                          "0x%04X)", path, (unsigned)d->herr);
    }
    f->def = f->f->attr ? ((HPDF_FontAttr)f->f->attr)->fontdef : NULL;
    if (f->def == NULL || f->def->type != HPDF_FONTDEF_TYPE_TRUETYPE)
        return sp_err_set(err, SP_EIO, "%s is not a TrueType font", path);
    f->asc = HPDF_Font_GetAscent(f->f);
    f->desc = HPDF_Font_GetDescent(f->f);
    sp__fix_tounicode(f->f);
    return 0;
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
    sp__tls_heap = &d->heap;
    d->heap.max = s->max_memory;
    d->letter = s->letter;
    d->landscape = s->landscape;
    double w = s->letter ? SP_EXPORT_LETTER_W : SP_EXPORT_A4_W;
    double h = s->letter ? SP_EXPORT_LETTER_H : SP_EXPORT_A4_H;
    d->page_w = s->landscape ? h : w;
    d->page_h = s->landscape ? w : h;
    d->max_lines = s->max_lines > 0 ? s->max_lines : 3;
    if (d->max_lines > 100)
        d->max_lines = 100;
    d->lead = SP__BODY_SIZE * SP__LEAD;
    d->ncol = s->ncolumns;
    d->seg_per_col = d->max_lines > SP__HEAD_LINES ? d->max_lines : SP__HEAD_LINES;
    sp_buf_init(&d->line, (size_t)1 << 30);
    d->col = sp_calloc(d->ncol, sizeof *d->col);
    d->labels = sp_calloc(d->ncol, sizeof *d->labels);
    d->label_len = sp_calloc(d->ncol, sizeof *d->label_len);
    d->nlines = sp_calloc(d->ncol, sizeof *d->nlines);
    d->seg = sp_calloc(d->ncol * (size_t)d->seg_per_col, sizeof *d->seg);
    d->title = sp__clean_text(s->title);
    bool ok = d->col && d->labels && d->label_len && d->nlines && d->seg && d->title;
    for (size_t i = 0; ok && i < s->nfallbacks && d->nfb < SP__MAX_FALLBACK; i++) {
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

    d->pdf = HPDF_NewEx(sp__on_error, sp__hpdf_alloc, sp__hpdf_free, 0, d);
    int rc = 0;
    if (d->pdf == NULL) {
        rc = d->heap.hit ? sp_err_set(err, SP_ETOOBIG, "the memory limit is too small for "
                                        "a PDF document")
                           : sp_err_set(err, SP_ENOMEM, "out of memory");
    } else {
        /* compression and the page tree must be set before the first page */
        HPDF_SetCompressionMode(d->pdf, HPDF_COMP_ALL);
        HPDF_SetPagesConfiguration(d->pdf, SP__PAGES_PER_NODE);
        HPDF_UseUTFEncodings(d->pdf);
        HPDF_SetCurrentEncoder(d->pdf, "UTF-8");
        rc = sp__check(d, "starting the document", err);
    }
    if (rc == 0)
        rc = sp__load_font(d, s->font_path, &d->reg, err);
    if (rc == 0)
        rc = sp__load_font(d, s->bold_path, &d->bold, err);
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
        rc = sp__check(d, "setting the metadata", err);
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
    sp__tls_heap = &d->heap;
    if (d->pdf)
        HPDF_Free(d->pdf);
    sp__heap_release(&d->heap);
    sp__tls_heap = NULL;
    if (d->z_live)
        deflateEnd(&d->z);
    sp_free(d->zbuf);
    sp_free(d->reg.w);
    sp_free(d->bold.w);
    sp_free(d->reg.face);
    sp_free(d->bold.face);
    for (size_t i = 0; i < d->nfb; i++)
        sp_free(d->fb[i].path);
    for (size_t i = 0; d->col && i < d->ncol; i++)
        sp_free(d->col[i].label);
    sp_free(d->col);
    sp_free(d->labels);
    sp_free(d->label_len);
    sp_free(d->nlines);
    sp_free(d->seg);
    sp_free(d->title);
    sp_free(d->cp);
    sp_bidi_free(d->bidi);
    sp_free(d->lv);
    sp_free(d->bt);
    sp_free(d->vis);
    sp_buf_free(&d->line);
    sp_free(d);
}

void sp_pdf_sample(sp_pdf_doc *d, const char *const *cells, const size_t *lens)
{
    sp__tls_heap = &d->heap;
    double avail = (d->page_w - 2 * SP__MARGIN) * 1000.0 / SP__BODY_SIZE;
    for (size_t i = 0; i < d->ncol; i++) {
        sp__col *c = &d->col[i];
        if (c->req > 0)
            continue;
        d->cp_len = 0;
        size_t start, count;
        bool more;
        size_t n = lens[i];
        if (n > SP__SAMPLE_CHARS * 4)
            n = SP__SAMPLE_CHARS * 4;
        if (sp__decode(d, &d->reg, cells[i], n, false, avail, &start, &count, &more) < 0)
            continue;
        double w = sp__width(&d->reg, d->cp + start, count) * SP__BODY_SIZE / 1000.0;
        if (w > c->nat)
            c->nat = w;
    }
}

/* Widest word of a label in the header font, in points. */
static double sp__label_word(sp_pdf_doc *d, const char *label)
{
    d->cp_len = 0;
    size_t start, count;
    bool more;
    if (sp__decode(d, &d->bold, label, strlen(label), false, 1e12, &start, &count, &more) < 0)
        return 0;
    double best = 0, w = 0;
    for (size_t i = start; i < start + count; i++) {
        if (d->cp[i] == ' ') {
            w = 0;
            continue;
        }
        w += sp__cw(&d->bold, d->cp[i]);
        if (w > best)
            best = w;
    }
    return best * SP__BODY_SIZE / 1000.0;
}

/* Final column widths: requested widths as asked; measured columns share the rest
 * (spreading spare room in proportion, or, when short, keeping the narrow ones whole
 * and splitting what is left evenly among the wide); everything scaled down when even
 * that does not fit the page. */
static void sp__fit_columns(sp_pdf_doc *d)
{
    double avail = d->page_w - 2 * SP__MARGIN;
    double fixed = 0, natsum = 0;
    size_t nauto = 0;
    for (size_t i = 0; i < d->ncol; i++) {
        sp__col *c = &d->col[i];
        if (c->req > 0) {
            fixed += c->req;
            c->w = c->req;
            continue;
        }
        double nat = c->nat;
        double word = sp__label_word(d, c->label);
        if (word > nat)
            nat = word;
        nat += 2 * SP__PAD_X + 1.0; /* 1 pt of slack against rounding */
        double cap = SP__NAT_MAX * avail;
        if (nat > cap)
            nat = cap;
        if (nat < SP__MIN_COL)
            nat = SP__MIN_COL;
        c->nat = nat;
        natsum += nat;
        nauto++;
    }
    double room = avail - fixed;
    if (nauto == 0) {
        double scale = fixed > avail ? avail / fixed : 1.0;
        for (size_t i = 0; i < d->ncol; i++)
            d->col[i].w = d->col[i].req * scale;
    } else if (room < nauto * SP__MIN_COL) {
        double scale = avail / (fixed + nauto * SP__MIN_COL);
        for (size_t i = 0; i < d->ncol; i++)
            d->col[i].w = (d->col[i].req > 0 ? d->col[i].req : SP__MIN_COL) * scale;
    } else if (natsum <= room) {
        for (size_t i = 0; i < d->ncol; i++)
            if (d->col[i].req <= 0)
                d->col[i].w = d->col[i].nat + (room - natsum) * d->col[i].nat / natsum;
    } else {
        /* w < 0 marks a column still waiting for its share */
        for (size_t i = 0; i < d->ncol; i++)
            if (d->col[i].req <= 0)
                d->col[i].w = -1;
        double left = room;
        size_t pending = nauto;
        bool changed = true;
        while (changed && pending > 0) {
            changed = false;
            double share = left / (double)pending;
            for (size_t i = 0; i < d->ncol; i++) {
                sp__col *c = &d->col[i];
                if (c->w < 0 && c->nat <= share) {
                    c->w = c->nat;
                    left -= c->nat;
                    pending--;
                    changed = true;
                }
            }
        }
        for (size_t i = 0; i < d->ncol; i++)
            if (d->col[i].w < 0)
                d->col[i].w = left / (double)pending;
    }
    double x = SP__MARGIN;
    for (size_t i = 0; i < d->ncol; i++) {
        d->col[i].x = x;
        x += d->col[i].w;
    }
}

int sp_pdf_layout_begin(sp_pdf_doc *d, sp_err *err)
{
    sp__tls_heap = &d->heap;
    sp__fit_columns(d);
    d->top = d->page_h - SP__MARGIN;
    d->bottom = SP__MARGIN + SP__FOOT_SIZE + SP__FOOT_GAP;
    sp__seg segs[SP__TITLE_LINES];
    int nl = 0;
    if (sp__layout_title(d, segs, &nl) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    d->title_h = nl > 0 ? nl * SP__TITLE_SIZE * SP__LEAD + SP__TITLE_GAP : 0;
    if (sp__layout_row(d, d->labels, d->label_len, true, &d->head_h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    /* a row must fit on the first page, below the title and the header */
    double room = d->top - d->title_h - d->head_h - d->bottom - 2 * SP__PAD_Y;
    int fit = (int)floor(room / d->lead);
    if (fit < 1)
        fit = 1;
    if (d->max_lines > fit)
        d->max_lines = fit;
    d->pages = 0;
    d->rendering = false;
    sp__page_start(d);
    return 0;
}

int sp_pdf_layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err)
{
    sp__tls_heap = &d->heap;
    double h;
    if (sp__layout_row(d, cells, lens, false, &h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (d->row_on_page > 0 && d->y - h < d->bottom)
        sp__page_start(d);
    d->y -= h;
    d->row_on_page++;
    return 0;
}

int64_t sp_pdf_layout_pages(const sp_pdf_doc *d)
{
    return d->rendering ? d->layout_pages : d->pages;
}

int sp_pdf_render_begin(sp_pdf_doc *d, sp_err *err)
{
    sp__tls_heap = &d->heap;
    d->layout_pages = d->pages;
    d->pages = 0;
    d->rendering = true;
    sp__page_start(d);
    return sp__check(d, "starting the first page", err);
}

int sp_pdf_render_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err)
{
    sp__tls_heap = &d->heap;
    double h;
    int turned = 0;
    if (sp__layout_row(d, cells, lens, false, &h) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (d->row_on_page > 0 && d->y - h < d->bottom) {
        sp__page_start(d);
        turned = 1;
        int rc = sp__check(d, "starting a page", err);
        if (rc < 0)
            return rc;
        if (sp__layout_row(d, cells, lens, false, &h) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp__draw_row(d, false, d->y, h);
    d->y -= h;
    d->row_on_page++;
    int rc = sp__check(d, "drawing a row", err);
    return rc < 0 ? rc : turned;
}

int sp_pdf_render_end(sp_pdf_doc *d, sp_err *err)
{
    sp__tls_heap = &d->heap;
    sp__page_finish(d);
    int rc = sp__check(d, "finishing the last page", err);
    if (rc == 0 && d->pages != d->layout_pages)
        rc = sp_err_set(err, SP_EPROTO, "drew %lld pages where the layout counted %lld",
                        (long long)d->pages, (long long)d->layout_pages);
    return rc;
}

int sp_pdf_save(sp_pdf_doc *d, const char *path, sp_err *err)
{
    sp__tls_heap = &d->heap;
    HPDF_SaveToFile(d->pdf, path);
    return sp__check(d, "saving the PDF", err);
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
    HPDF_Font f = name ? HPDF_GetFont(pdf, name, "UTF-8") : NULL;
    bool tt = f != NULL && f->attr != NULL && ((HPDF_FontAttr)f->attr)->fontdef != NULL &&
              ((HPDF_FontAttr)f->attr)->fontdef->type == HPDF_FONTDEF_TYPE_TRUETYPE;
    HPDF_Free(pdf);
    if (!tt)
        return sp_err_set(err, SP_EIO, "%s is not a TrueType font libharu can embed (libharu "
                          "error 0x%04X; OpenType fonts with CFF outlines are not supported)",
                          path, (unsigned)e);
    return 0;
}

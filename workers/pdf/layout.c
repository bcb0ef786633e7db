/* layout.c - the renderer's text layout (render_int.h): UTF-8 decoded for drawing,
 * right-to-left text shaped (bidi.h), lines broken at spaces and beside ideographs or
 * cut with "…", rows and the title measured, column widths
 * fitted to the page. Nothing here draws. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "render_int.h"
#include "spool/alloc.h"
#include "spool/utf8.h"

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

/* Decode s into d->cp for drawing with f: invalid UTF-8 becomes U+FFFD, characters
 * outside the BMP (libharu's UTF-8 fonts are 16-bit) SP_PDF__NO_GLYPH, tabs spaces, other
 * control characters are dropped, and a newline is kept only when hard_breaks. Stops
 * once the text is wider than limit (1/1000 em); *more says text was left. */
int sp_pdf__decode(sp_pdf_doc *d, sp_pdf__font *f, const char *s, size_t n, bool hard_breaks,
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
            c = SP_PDF__NO_GLYPH; /* drawn as U+FFFD and counted */
        }
        d->cp[d->cp_len++] = (uint16_t)c;
        if (c != '\n') {
            w += sp_pdf__cw(f, (uint16_t)c);
            if (w > limit) {
                *more = i < n;
                break;
            }
        }
    }
    *count = d->cp_len - *start;
    return 0;
}

double sp_pdf__width(sp_pdf__font *f, const uint16_t *cp, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w += sp_pdf__cw(f, cp[i]);
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
static int sp__break(sp_pdf_doc *d, sp_pdf__font *f, size_t start, size_t n, bool more,
                     bool wrap, int maxl, double width, sp_pdf__seg *seg)
{
    const uint16_t *cp = d->cp;
    size_t pos = start, end = start + n;
    int nl = 0;
    while (nl < maxl && pos < end) {
        size_t i = pos, brk = SIZE_MAX;
        double w = 0, wbrk = 0;
        while (i < end && cp[i] != '\n') {
            double cw = sp_pdf__cw(f, cp[i]);
            if (w + cw > width + 0.001)
                break;
            if (wrap && i > pos && sp__break_before(cp, i)) {
                brk = i;
                wbrk = w;
            }
            w += cw;
            i++;
        }
        sp_pdf__seg *s = &seg[nl++];
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
            w -= sp_pdf__cw(f, ' ');
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
    sp_pdf__seg *s = &seg[nl - 1];
    double ell = sp_pdf__cw(f, SP_PDF__ELLIPSIS);
    double w = s->w;
    while (s->end > s->start && (w + ell > width + 0.001 || cp[s->end - 1] == ' ')) {
        s->end--;
        w -= sp_pdf__cw(f, cp[s->end]);
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
static int sp__layout_cell(sp_pdf_doc *d, sp_pdf__font *f, double size, const char *s, size_t n,
                           bool wrap, int maxl, double width_pt, sp_pdf__seg *seg, int *nlines)
{
    double width = width_pt * 1000.0 / size;
    if (width < 0)
        width = 0;
    size_t start, count;
    bool more;
    double limit = wrap ? 2.0 * (maxl + 1) * width + 2000.0 : width + 2000.0;
    if (sp_pdf__decode(d, f, s, n, wrap, limit, &start, &count, &more) < 0)
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
int sp_pdf__layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                          bool head, double *height)
{
    d->cp_len = 0;
    int maxn = 1;
    int maxl = head ? SP_PDF__HEAD_LINES : d->max_lines;
    sp_pdf__font *f = head ? &d->bold : &d->reg;
    for (size_t i = 0; i < d->ncol; i++) {
        sp_pdf__col *c = &d->col[i];
        int rc = sp__layout_cell(d, f, SP_PDF__BODY_SIZE, cells[i], lens[i], head || c->wrap, maxl,
                                 c->w - 2 * SP_PDF__PAD_X, d->seg + i * (size_t)d->seg_per_col,
                                 &d->nlines[i]);
        if (rc < 0)
            return rc;
        if (d->nlines[i] > maxn)
            maxn = d->nlines[i];
    }
    *height = 2 * SP_PDF__PAD_Y + maxn * d->lead;
    return 0;
}

/* Lay out the title (bold, wrapped to at most SP_PDF__TITLE_LINES lines) into segs. */
int sp_pdf__layout_title(sp_pdf_doc *d, sp_pdf__seg *segs, int *nl)
{
    d->cp_len = 0;
    double avail = d->page_w - 2 * SP_PDF__MARGIN;
    return sp__layout_cell(d, &d->bold, SP_PDF__TITLE_SIZE, d->title, strlen(d->title), true,
                           SP_PDF__TITLE_LINES, avail, segs, nl);
}

/* ---- column widths ------------------------------------------------------------------- */

/* Widest word of a label in the header font, in points. */
static double sp__label_word(sp_pdf_doc *d, const char *label)
{
    d->cp_len = 0;
    size_t start, count;
    bool more;
    if (sp_pdf__decode(d, &d->bold, label, strlen(label), false, 1e12, &start, &count, &more) < 0)
        return 0;
    double best = 0, w = 0;
    for (size_t i = start; i < start + count; i++) {
        if (d->cp[i] == ' ') {
            w = 0;
            continue;
        }
        w += sp_pdf__cw(&d->bold, d->cp[i]);
        if (w > best)
            best = w;
    }
    return best * SP_PDF__BODY_SIZE / 1000.0;
}

/* Final column widths: requested widths as asked; measured columns share the rest
 * (spreading spare room in proportion, or, when short, keeping the narrow ones whole
 * and splitting what is left evenly among the wide); everything scaled down when even
 * that does not fit the page. */
void sp_pdf__fit_columns(sp_pdf_doc *d)
{
    double avail = d->page_w - 2 * SP_PDF__MARGIN;
    double fixed = 0, natsum = 0;
    size_t nauto = 0;
    for (size_t i = 0; i < d->ncol; i++) {
        sp_pdf__col *c = &d->col[i];
        if (c->req > 0) {
            fixed += c->req;
            c->w = c->req;
            continue;
        }
        double nat = c->nat;
        double word = sp__label_word(d, c->label);
        if (word > nat)
            nat = word;
        nat += 2 * SP_PDF__PAD_X + 1.0; /* 1 pt of slack against rounding */
        double cap = SP_PDF__NAT_MAX * avail;
        if (nat > cap)
            nat = cap;
        if (nat < SP_PDF__MIN_COL)
            nat = SP_PDF__MIN_COL;
        c->nat = nat;
        natsum += nat;
        nauto++;
    }
    double room = avail - fixed;
    if (nauto == 0) {
        double scale = fixed > avail ? avail / fixed : 1.0;
        for (size_t i = 0; i < d->ncol; i++)
            d->col[i].w = d->col[i].req * scale;
    } else if (room < nauto * SP_PDF__MIN_COL) {
        double scale = avail / (fixed + nauto * SP_PDF__MIN_COL);
        for (size_t i = 0; i < d->ncol; i++)
            d->col[i].w = (d->col[i].req > 0 ? d->col[i].req : SP_PDF__MIN_COL) * scale;
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
                sp_pdf__col *c = &d->col[i];
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
    double x = SP_PDF__MARGIN;
    for (size_t i = 0; i < d->ncol; i++) {
        d->col[i].x = x;
        x += d->col[i].w;
    }
}

/* render_int.h - what the renderer's modules share (not for users of render.h): the
 * document, the layout constants and each module's internal functions.
 *
 *   pdfheap.c   libharu's memory: a heap per document, counted and capped
 *   fonts.c     loading the TrueType fonts, the fallback chain, their widths, the
 *               /ToUnicode fix
 *   layout.c    text decoding, line breaking, rows, titles and column widths
 *   draw.c      drawing a page (title, header, rows, footer) and handing it out
 *   pdfout.c    the streaming file writer: pages as they are finished, the rest at the end
 *   render.c    the public face (render.h)
 */
#ifndef SPOOL_PDF_RENDER_INT_H
#define SPOOL_PDF_RENDER_INT_H

#include <hpdf.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>

#include "bidi.h"
#include "render.h"
#include "spool/buf.h"
#include "spool/limits.h"

/* Layout, in points. */
#define SP_PDF__MARGIN SP_EXPORT_MARGIN
#define SP_PDF__BODY_SIZE 9.0
#define SP_PDF__TITLE_SIZE 16.0
#define SP_PDF__FOOT_SIZE 8.0
#define SP_PDF__LEAD 1.2 /* line height / font size */
#define SP_PDF__PAD_X 4.0
#define SP_PDF__PAD_Y 3.0
#define SP_PDF__TITLE_GAP 10.0
#define SP_PDF__TITLE_LINES 3
#define SP_PDF__HEAD_LINES 3
#define SP_PDF__FOOT_GAP 10.0
#define SP_PDF__MIN_COL SP_EXPORT_MIN_COLUMN
#define SP_PDF__NAT_MAX 0.4      /* a measured column asks for at most this share of the width */
#define SP_PDF__SAMPLE_CHARS 200 /* code points measured per sampled cell */
#define SP_PDF__ZEBRA 0.94
#define SP_PDF__HEAD_FILL 0.84
#define SP_PDF__FOOT_GRAY 0.35
#define SP_PDF__ELLIPSIS 0x2026u
#define SP_PDF__NO_GLYPH 0xFFFFu /* stands for a character outside the BMP (no font has it) */
#define SP_PDF__MAX_FALLBACK 4   /* fallback fonts after the column's own */
#define SP_PDF__PAGES_PER_NODE 256 /* page tree: root -> nodes of 256 pages -> pages */

/* ---- pdfheap.c ------------------------------------------------------------------- */

#define SP_PDF__NCLASS 24

typedef struct sp_pdf__chunk sp_pdf__chunk;
typedef struct sp_pdf__big sp_pdf__big;

typedef struct sp_pdf__heap {
    int64_t cur, peak, max; /* bytes held; max 0: no cap */
    bool hit;               /* an allocation was refused by the cap */
    void *free[SP_PDF__NCLASS]; /* free small blocks (header word holds the link) */
    sp_pdf__chunk *chunks;
    char *bump, *end;       /* the unused tail of the newest chunk */
    sp_pdf__big *big;
} sp_pdf__heap;

/* Make h the heap libharu allocates from on this thread (its allocator callbacks have
 * no user data): every public function calls it first. NULL: none. */
void sp_pdf__heap_use(sp_pdf__heap *h);
/* libharu's allocator callbacks, for HPDF_NewEx. */
void *HPDF_STDCALL sp_pdf__heap_alloc(HPDF_UINT size);
void HPDF_STDCALL sp_pdf__heap_free(void *p);
/* Release everything the heap holds (after HPDF_Free). */
void sp_pdf__heap_release(sp_pdf__heap *h);

/* ---- fonts.c ------------------------------------------------------------------------ */

/* A fallback font: loaded the first time a character needs it, shared by the regular
 * and the bold chain. */
typedef struct sp_pdf__fallback {
    char *path;
    HPDF_Font f;
    HPDF_FontDef def;
    int state; /* 0 not loaded yet, 1 loaded, -1 failed to load (then skipped) */
} sp_pdf__fallback;

/* A font chain: the column font first, then the document's fallbacks. Each BMP code
 * point is looked up once: the first font that has a glyph draws it; when none has one,
 * the first font's U+FFFD does (and it is counted as missing). */
typedef struct sp_pdf__font {
    HPDF_Font f;
    HPDF_FontDef def;
    int16_t *w;     /* advance widths of the BMP in 1/1000 em, -1 until looked up */
    uint8_t *face;  /* per code point: 0 this font, 1 + i fallback i, or unknown/missing */
    double asc;     /* ascent, 1/1000 em (positive) */
    double desc;    /* descent, 1/1000 em (negative) */
    sp_pdf_doc *doc;
} sp_pdf__font;

/* ---- the document ------------------------------------------------------------------- */

typedef struct sp_pdf__col {
    char *label;
    double req;   /* requested width, 0: measured */
    double nat;   /* measured natural width (text only) */
    double w;     /* final width */
    double x;     /* left edge */
    sp_pdf_align align;
    bool wrap;
} sp_pdf__col;

/* One laid-out line of a cell: code points cp[start..end) then maybe "…". */
typedef struct sp_pdf__seg {
    uint32_t start, end;
    float w; /* width in 1/1000 em, ellipsis included */
    bool ellipsis;
    uint8_t bidi; /* 0 left to right only; 1 and 2: shaped, reorder when drawn (2: the
                   * paragraph runs right to left) */
} sp_pdf__seg;

/* The output file (pdfout.c): written as the pages are finished. Object numbers are
 * planned when the render starts, from the page count of the layout pass:
 *   1 .. base-1             libharu's objects (catalog, info, fonts; the fonts'
 *                           descriptors and font files are added when written), then
 *                           null objects up to base
 *   base .. base+nodes-1    the page tree's intermediate nodes (none for <= 256 pages)
 *   base+nodes              the resources every page shares (the two fonts)
 *   then per page           the page, then its content stream
 * The page tree's root keeps libharu's object number (the catalog points to it). */
typedef struct sp_pdf__out {
    int fd;
    unsigned char *buf;
    size_t len;
    int64_t off;          /* file offset of buf[0] */
    int err_no;           /* a write failed: errno */
    int64_t *xref;        /* file offset of each object, by number */
    uint32_t nobj;        /* objects planned, 0 included */
    uint32_t base, nodes, res_id, first_page;
    int64_t npages;       /* pages planned (the layout's count) */
    void *skip[3];        /* libharu's objects left out: the scratch page, its stream, its length */
    char media[64];       /* "[ 0 0 W H ]" */
} sp_pdf__out;

struct sp_pdf_doc {
    HPDF_Doc pdf;
    sp_pdf__heap heap;
    HPDF_STATUS herr, hdetail;
    sp_pdf__font reg, bold;
    sp_pdf__fallback fb[SP_PDF__MAX_FALLBACK];
    size_t nfb;
    int64_t missing; /* characters drawn as U+FFFD because no font has them */
    double page_w, page_h;
    bool letter, landscape;
    int zlevel; /* deflate level of the content streams */

    sp_pdf__col *col;
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
    HPDF_Page page;    /* the one libharu page every page is drawn on, then handed out */
    bool page_open;    /* a page is being drawn on it */

    /* the row being laid out: code points, lines per cell, lines */
    uint16_t *cp;
    size_t cp_len, cp_cap;
    int *nlines;
    sp_pdf__seg *seg; /* ncol * seg_per_col */
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

    sp_pdf__out out;
};

/* render.c */
void HPDF_STDCALL sp_pdf__on_error(HPDF_STATUS e, HPDF_STATUS detail, void *ud);
int sp_pdf__check(sp_pdf_doc *d, const char *what, sp_err *err);

/* fonts.c */
int sp_pdf__font_load(sp_pdf_doc *d, const char *path, sp_pdf__font *f, sp_err *err);
void sp_pdf__font_free(sp_pdf__font *f);
double sp_pdf__cw(sp_pdf__font *f, uint16_t c);
/* The font that draws c (after sp_pdf__cw looked it up) and, in *c, the code point it
 * draws: U+FFFD when no font of the chain has c. */
HPDF_Font sp_pdf__face_of(sp_pdf__font *f, uint16_t *c);

/* layout.c */
int sp_pdf__decode(sp_pdf_doc *d, sp_pdf__font *f, const char *s, size_t n, bool hard_breaks,
                   double limit, size_t *start, size_t *count, bool *more);
double sp_pdf__width(sp_pdf__font *f, const uint16_t *cp, size_t n);
int sp_pdf__layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens, bool head,
                       double *height);
int sp_pdf__layout_title(sp_pdf_doc *d, sp_pdf__seg *segs, int *nl);
void sp_pdf__fit_columns(sp_pdf_doc *d);
void sp_pdf__page_start(sp_pdf_doc *d);

/* draw.c */
void sp_pdf__draw_row(sp_pdf_doc *d, bool head, double top, double h);
void sp_pdf__draw_title(sp_pdf_doc *d);
int sp_pdf__page_open(sp_pdf_doc *d);
void sp_pdf__page_finish(sp_pdf_doc *d);

/* pdfout.c */
int sp_pdf__out_open(sp_pdf_doc *d, const char *path, sp_err *err);
int sp_pdf__out_page(sp_pdf_doc *d, const unsigned char *content, size_t len);
int sp_pdf__out_finish(sp_pdf_doc *d, sp_err *err);
void sp_pdf__out_close(sp_pdf__out *o);

#endif

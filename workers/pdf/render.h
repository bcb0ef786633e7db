/* render.h - the PDF table renderer of spool-pdf. Every libharu call lives here.
 *
 * A document is a paginated table: a title on the first page, the header row repeated
 * on every page, zebra rows, text that does not fit its column wrapped (up to
 * max_lines lines) or cut with "…" (never drawn over the next cell), a footer
 * "Page N of M", metadata (title, author, creator, creation date), UTF-8 text through
 * embedded DejaVu TrueType fonts, compression on, and a two-level page tree so
 * documents of any page count work.
 *
 * It is driven in three steps over the same rows, because "of M" must be known before
 * the first footer is drawn and the layout is deterministic (row heights come from the
 * font metrics, so pagination is computed without drawing):
 *   1. sp_pdf_sample() the first rows, to measure the columns without a width;
 *   2. sp_pdf_layout_begin() fixes the column widths, then sp_pdf_layout_row() for
 *      every row counts the pages;
 *   3. sp_pdf_render_begin() with the output file, sp_pdf_render_row() for the same rows
 *      in the same order, sp_pdf_render_end(), then sp_pdf_save() to finish the file.
 *
 * Memory is flat: libharu draws every page on one page object, and each page goes to
 * the file as soon as it is finished (its content stream deflated); what is left for
 * the end (the fonts' subsets, the page tree, the cross-reference table) is written by
 * sp_pdf_save. A document holds a few MB whatever its page count. All of libharu's
 * memory comes from a heap per document, capped at max_memory: past it the document
 * fails with SP_ETOOBIG instead of the process dying, and freeing the document releases
 * the whole heap, including what libharu loses on its own error paths.
 *
 * A document is used by one thread at a time (any thread). */
#ifndef SPOOL_PDF_RENDER_H
#define SPOOL_PDF_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

typedef enum sp_pdf_align { SP_PDF_LEFT = 0, SP_PDF_RIGHT, SP_PDF_CENTER } sp_pdf_align;

typedef struct sp_pdf_column {
    const char *label;  /* header text (UTF-8) */
    double width;       /* points; 0: measured from the sampled rows and the label */
    sp_pdf_align align;
    bool wrap;          /* wrap onto up to max_lines lines; false: one line, cut with "…" */
} sp_pdf_column;

typedef struct sp_pdf_setup {
    const char *title;      /* drawn on the first page and stored as metadata (UTF-8) */
    const char *author;     /* metadata; NULL for none */
    const char *creator;    /* metadata, e.g. "spool-pdf 0.1.0"; NULL for none */
    int64_t created_ms;     /* creation date (ms since the epoch, UTC) */
    bool letter;            /* US Letter instead of A4 */
    bool landscape;
    const char *font_path;  /* TrueType for the body, e.g. .../DejaVuSans.ttf */
    const char *bold_path;  /* TrueType for the title and the header */
    /* TrueType fonts (.ttf, or the first font of a .ttc) for the characters the two
     * above lack, in order, loaded when first needed; at most 4 */
    const char *const *fallbacks;
    size_t nfallbacks;
    const sp_pdf_column *columns; /* copied */
    size_t ncolumns;        /* 1 or more */
    int max_lines;          /* lines a wrapped cell may take before "…"; 0: 3 */
    int64_t max_memory;     /* cap on libharu's memory in bytes; 0: no cap */
    int compression;        /* zlib level of the pages' content streams, 1 (fastest) to 9
                             * (smallest); 0: 6, zlib's default */
} sp_pdf_setup;

typedef struct sp_pdf_doc sp_pdf_doc;

/* Start a document: load and embed the fonts, set the metadata. NULL with err set:
 * SP_EINVAL (no columns), SP_EIO (a font cannot be read), SP_ETOOBIG (max_memory is
 * too small even for the fonts), SP_ENOMEM. Free with sp_pdf_free. */
sp_pdf_doc *sp_pdf_new(const sp_pdf_setup *s, sp_err *err);

/* Free the document and everything libharu holds for it. Accepts NULL. */
void sp_pdf_free(sp_pdf_doc *d);

/* Measure one row (cells[i] is column i's text, UTF-8, lens[i] bytes) for the columns
 * without a width. Call for the first rows before sp_pdf_layout_begin. */
void sp_pdf_sample(sp_pdf_doc *d, const char *const *cells, const size_t *lens);

/* Fix the column widths (requested ones, measured ones filling the rest, all scaled
 * down to fit the page when they do not) and start counting pages. 0 or SP_ENOMEM. */
int sp_pdf_layout_begin(sp_pdf_doc *d, sp_err *err);

/* Count one row into the pagination. 0 or SP_ENOMEM. */
int sp_pdf_layout_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err);

/* Pages the rows laid out so far take (at least 1). */
int64_t sp_pdf_layout_pages(const sp_pdf_doc *d);

/* Start drawing into the file at path (created or truncated; written from now on, so
 * give a temporary name and rename it once sp_pdf_save succeeds): the first page with
 * the title and the header. Call once, after the layout pass: the file's objects are
 * numbered for the pages it counted. 0, SP_EIO (cannot open path), SP_ETOOBIG (memory
 * cap, or more pages than a PDF can number), SP_ENOMEM, SP_EPROTO (a libharu error). */
int sp_pdf_render_begin(sp_pdf_doc *d, const char *path, sp_err *err);

/* Draw one row, starting a new page first when it does not fit (the finished page is
 * written to the file). Returns 1 when a page was finished (a good place to check for
 * cancellation), 0, or an error as for sp_pdf_render_begin; SP_EPROTO also when the
 * rows make more pages than the layout counted. */
int sp_pdf_render_row(sp_pdf_doc *d, const char *const *cells, const size_t *lens,
                      sp_err *err);

/* Finish the last page. SP_EPROTO if the pages drawn differ from the layout's count
 * (the rows were not the same), else as for sp_pdf_render_begin. */
int sp_pdf_render_end(sp_pdf_doc *d, sp_err *err);

/* Finish the file after sp_pdf_render_end: the fonts (their embedded subsets), the
 * page tree, the metadata, the cross-reference table; then close it. 0, SP_EIO,
 * SP_ETOOBIG, SP_EPROTO. On error the file is left partly written. */
int sp_pdf_save(sp_pdf_doc *d, sp_err *err);

/* Pages drawn so far. */
int64_t sp_pdf_pages(const sp_pdf_doc *d);

/* The final width of column i in points (after sp_pdf_layout_begin). */
double sp_pdf_column_width(const sp_pdf_doc *d, size_t i);

/* Characters drawn so far as U+FFFD because no font of the chain has them (characters
 * outside the BMP among them); the header row counts once. */
int64_t sp_pdf_missing_glyphs(const sp_pdf_doc *d);

/* Check that path is a TrueType font libharu can load (as sp_pdf_new would load a
 * fallback). 0, or SP_EIO naming the problem. */
int sp_pdf_check_font(const char *path, sp_err *err);

/* Most memory libharu held at once for this document, in bytes. */
int64_t sp_pdf_memory_peak(const sp_pdf_doc *d);

#endif

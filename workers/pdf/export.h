/* export.h - the work of one pdf.export job, without the queue: validate the params,
 * read the dataset three times as a stream (a sample of the first rows to measure the
 * columns, a layout pass that counts rows and pages and checks the limits, a render
 * pass that draws) and write the PDF. The worker's handler (job.c) and the benchmark
 * driver both call it. */
#ifndef SPOOL_PDF_EXPORT_H
#define SPOOL_PDF_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dataset.h"
#include "render.h"
#include "spool/err.h"
#include "spool/limits.h"
#include "spool/util.h"

typedef enum sp_export_format {
    SP_EXPORT_TEXT = 0,
    SP_EXPORT_NUMBER,
    SP_EXPORT_DATE
} sp_export_format;

typedef enum sp_export_font { SP_EXPORT_SANS = 0, SP_EXPORT_SERIF, SP_EXPORT_MONO } sp_export_font;

typedef struct sp_export_column {
    char *key;
    char *label;      /* the key when not given */
    double width;     /* points; 0: measured */
    sp_pdf_align align;
    sp_export_format format;
    int decimals;     /* number: 0-10, or -1 for the digits as written */
    bool thousands;   /* number: group thousands with ',' (default true) */
} sp_export_column;

/* A job's validated params (docs/jobs.md). Heap strings, freed by sp_export_params_free. */
typedef struct sp_export_params {
    char *title;
    char *author;
    sp_export_column *columns; /* NULL when the data names the columns */
    size_t ncolumns;
    bool letter;
    bool landscape;
    sp_export_font font;
    int compression; /* zlib level of the pages: "default" 6, "fast" 1; 0: not given */
} sp_export_params;

#define SP_EXPORT_LEVEL_DEFAULT 6 /* zlib's default */
#define SP_EXPORT_LEVEL_FAST 1    /* about 1.4x faster to render, about 1.5x larger */

/* A compression setting as an operator writes it (SPOOL_PDF_COMPRESSION): "default",
 * "fast" (any case) or a zlib level "1" to "9", into *level. 0, or SP_EINVAL leaving
 * *level unchanged. */
int sp_export_compression_parse(const char *s, int *level);

/* Parse and check a params JSON object into *out (zeroed first). 0, or SP_EINVAL with
 * err naming the field and what it must be (nothing to free then), or SP_ENOMEM. */
int sp_export_params_parse(const char *json, sp_export_params *out, sp_err *err);
void sp_export_params_free(sp_export_params *p); /* accepts NULL */

typedef struct sp_export_limits {
    int64_t max_rows;      /* 0: no limit */
    int64_t max_pages;     /* 0: no limit */
    int64_t max_memory;    /* cap on the PDF library's memory, bytes; 0: none */
    size_t max_row_bytes;  /* longest input row; 0: 1 MiB */
    int max_lines;         /* lines of a wrapped cell; 0: 3 */
} sp_export_limits;

typedef struct sp_export_opts {
    const char *font_dir;      /* holds DejaVuSans.ttf etc.; NULL: the Debian location */
    const char *const *fallbacks; /* fonts for what DejaVu lacks (CJK...), in order */
    size_t nfallbacks;
    const char *creator;       /* PDF metadata, e.g. "spool-pdf 0.1.0" */
    int64_t now_ms;            /* creation date; 0: now */
    sp_export_limits limits;
    int compression;           /* zlib level when the params do not say; 0: the default */
    const sp_flag *stop;  /* non-zero: stop (checked between pages); may be NULL */
    void (*progress)(void *ud, int percent); /* may be NULL */
    void *ud;
} sp_export_opts;

typedef struct sp_export_result {
    int64_t rows;
    int64_t pages;
    int64_t bytes;        /* size of the PDF */
    int64_t memory_peak;  /* most memory the PDF library held */
    int64_t missing_glyphs; /* characters drawn as U+FFFD: no font has them */
    int64_t font_ms;      /* starting the document: loading the two TrueType fonts */
    int64_t sample_ms, layout_ms, render_ms;
    int64_t save_ms;      /* the end of the file: fonts, page tree, cross-reference table */
    /* on failure: a snake_case code for the job's error and whether to retry */
    const char *error_code;
    bool retryable;
} sp_export_result;

/* The font files for font in dir (NULL: /usr/share/fonts/truetype/dejavu): regular
 * and bold, written to reg and bold (each PATH_MAX). 0 or SP_ETOOBIG. */
int sp_export_font_paths(const char *dir, sp_export_font font, char *reg, char *bold,
                         size_t n);

/* Render the dataset read from fd (owned from now on, closed whatever happens) in
 * format fmt as a PDF written to out_path. On 0, *res has the counts. On failure err
 * says why and res->error_code / res->retryable classify it:
 *   invalid_input  SP_EINVAL: malformed data ("dataset line 12: ..."), or columns the
 *                  data does not have; permanent
 *   too_large      SP_ETOOBIG: past max_rows, max_pages or max_memory; permanent
 *   io_error       SP_EIO: reading the dataset or writing the PDF failed; retryable
 *   out_of_memory  SP_ENOMEM; retryable
 *   render_failed  SP_EPROTO: the PDF library failed; permanent
 * SP_ECANCELLED when *stop became non-zero (no error_code). out_path is written as the
 * pages are drawn and may be left partly written on failure: give a temporary name. */
int sp_export_run(const sp_export_params *p, int fd, sp_dataset_format fmt,
                  const char *out_path, const sp_export_opts *o, sp_export_result *res,
                  sp_err *err);

#endif

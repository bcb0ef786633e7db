/* job.h - spool-pdf's job handler: a started pdf.export job to export.pdf in the blob
 * store. Validates the params and input, reads the dataset from the blob store (or
 * fetches source_url into it once, reused by later attempts), runs the export
 * (export.h) into a staging file with the job's stop flag and progress, commits the PDF
 * by rename, and records the output (size) and metadata (pages, rows). Errors carry a
 * code and whether a retry can help. */
#ifndef SPOOL_PDF_JOB_H
#define SPOOL_PDF_JOB_H

#include <stdint.h>

#include "spool/config.h"
#include "spool/err.h"
#include "spool/worker.h"

#define SP_PDFJOB_MAX_FALLBACKS 4

/* spool-pdf's own settings (environment variables and flags, see sp_pdfjob_options). */
typedef struct sp_pdfjob_config {
    int64_t max_rows;        /* SPOOL_PDF_MAX_ROWS */
    int64_t max_pages;       /* SPOOL_PDF_MAX_PAGES */
    int64_t max_memory;      /* SPOOL_PDF_MAX_MEMORY: cap on libharu's memory per job */
    int64_t max_input;       /* SPOOL_PDF_MAX_INPUT: largest dataset accepted or fetched */
    int64_t max_row_bytes;   /* SPOOL_PDF_MAX_ROW_BYTES */
    int64_t cell_lines;      /* SPOOL_PDF_CELL_LINES */
    int64_t time_limit_ms;   /* SPOOL_PDF_TIME_LIMIT */
    int64_t fetch_timeout_ms;/* SPOOL_PDF_FETCH_TIMEOUT */
    char *font_dir;          /* SPOOL_PDF_FONT_DIR */
    char *compression;       /* SPOOL_PDF_COMPRESSION: default, fast or a zlib level 1-9 */
    char *fallback_fonts;    /* SPOOL_PDF_FALLBACK_FONTS: paths separated by ':' */
    /* set by sp_pdfjob_setup from fallback_fonts */
    char *fallbacks[SP_PDFJOB_MAX_FALLBACKS];
    size_t nfallbacks;
} sp_pdfjob_config;

#define SP_PDFJOB_OPTION_COUNT 11

/* Write spool-pdf's options, bound to c, into out[0..SP_PDFJOB_OPTION_COUNT-1]. */
void sp_pdfjob_options(sp_pdfjob_config *c, sp_option *out);

/* sp_worker_def.setup: check SPOOL_PDF_COMPRESSION, that the fonts of every `font`
 * choice can be read and that every fallback font loads (filling c->fallbacks).
 * userdata is the sp_pdfjob_config. 0, SP_EINVAL naming the bad setting (or too many
 * fallbacks), or SP_EIO naming the file. */
int sp_pdfjob_setup(void *userdata, sp_err *err);

/* sp_worker_def.handler for pdf.export jobs; userdata is the sp_pdfjob_config. */
int sp_pdfjob_handle(sp_job_ctx *ctx, void *userdata, int slot);

#endif

/* limits.h - limits on a job's input that the API checks at submit and the workers
 * enforce, kept in one place so that a job the API accepts is never failed by its
 * worker for the same reason. */
#ifndef SPOOL_LIMITS_H
#define SPOOL_LIMITS_H

/* Columns of a pdf.export: given in params.columns, named by a CSV header, or by the
 * keys of the first JSON row. */
#define SP_EXPORT_MAX_COLUMNS 256

/* The longest dataset row (a CSV record, an NDJSON line, an element of a JSON array),
 * in bytes: the API's limit, and spool-pdf's default (SPOOL_PDF_MAX_ROW_BYTES; a
 * worker set lower fails longer rows itself). */
#define SP_EXPORT_MAX_ROW_BYTES (1024 * 1024)

#endif

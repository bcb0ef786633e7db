/* limits.h - limits on a job's input that the API checks at submit and the workers
 * enforce, kept in one place so that a job the API accepts is never failed by its
 * worker for the same reason. */
#ifndef SPOOL_LIMITS_H
#define SPOOL_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

/* Columns of a pdf.export: given in params.columns, named by a CSV header, or by the
 * keys of the first JSON row. */
#define SP_EXPORT_MAX_COLUMNS 256

/* The longest dataset row (a CSV record, an NDJSON line, an element of a JSON array),
 * in bytes: the API's limit, and spool-pdf's default (SPOOL_PDF_MAX_ROW_BYTES; a
 * worker set lower fails longer rows itself). */
#define SP_EXPORT_MAX_ROW_BYTES (1024 * 1024)

/* A pdf.export's page, in points: A4 or Letter, portrait or landscape, with this margin
 * on every side (spool-pdf draws the table between the margins). */
#define SP_EXPORT_A4_W 595.276
#define SP_EXPORT_A4_H 841.89
#define SP_EXPORT_LETTER_W 612.0
#define SP_EXPORT_LETTER_H 792.0
#define SP_EXPORT_MARGIN 36.0

/* The narrowest a column is drawn, its padding included: room for one character and
 * an ellipsis at the table's 9 pt. Narrower, a cell whose text does not fit shows
 * nothing at all, so a table whose columns cannot all be this wide across the page is
 * refused (by the API at submit, by spool-pdf otherwise): in landscape, on the other
 * page size, or with fewer columns it fits. */
#define SP_EXPORT_MIN_COLUMN 24.0

/* How many columns fit across the page at SP_EXPORT_MIN_COLUMN: 21 on A4 portrait, 32 in
 * landscape; 22 and 30 on Letter. */
static inline size_t sp_export_columns_fit(bool letter, bool landscape)
{
    double w = letter ? (landscape ? SP_EXPORT_LETTER_H : SP_EXPORT_LETTER_W)
                      : (landscape ? SP_EXPORT_A4_H : SP_EXPORT_A4_W);
    return (size_t)((w - 2 * SP_EXPORT_MARGIN) / SP_EXPORT_MIN_COLUMN);
}

#endif

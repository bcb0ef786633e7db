/* text.h - cell text for the PDF worker: the `number` and `date` column formats of
 * pdf.export (UTF-8 decoding and repair are common's, spool/utf8.h). Pure functions on
 * bytes, no libraries. */
#ifndef SPOOL_PDF_TEXT_H
#define SPOOL_PDF_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"

/* Format the decimal number written in s[0..n-1] (surrounding blanks ignored; a sign,
 * digits with optional ',' group separators, an optional fraction and exponent, as in
 * "-1234.5", "1,234.50", "1.5e3") and append it to b: rounded half away from zero to
 * decimals places (0-10; -1 keeps the digits as written), with ',' between thousands
 * when thousands is true. The arithmetic is done on the decimal digits, so "2.675" with
 * 2 decimals is "2.68" and long integers keep every digit.
 * Returns 0, SP_EINVAL when s is not such a number (b unchanged), SP_ENOMEM/ETOOBIG. */
int sp_text_format_number(const char *s, size_t n, int decimals, bool thousands, sp_buf *b);

/* Append the date of an ISO 8601 date or date-time in s[0..n-1] ("2024-03-05",
 * "2024-03-05T10:20:30+02:00", "20240305") to b as "YYYY-MM-DD": the calendar date as
 * written, without converting time zones. Returns 0, SP_EINVAL when s does not start
 * with a valid calendar date (b unchanged), SP_ENOMEM/ETOOBIG. */
int sp_text_format_date(const char *s, size_t n, sp_buf *b);

#endif

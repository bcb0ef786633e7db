/* jsonv.h - a strict JSON syntax check (RFC 8259) that allocates nothing, so JSON
 * stored on a job (params, input, metadata) can be embedded in an answer verbatim
 * after a check instead of being parsed into a tree and printed again. */
#ifndef SPOOL_API_JSONV_H
#define SPOOL_API_JSONV_H

#include <stdbool.h>
#include <stddef.h>

/* Nesting deeper than this is refused. */
#define API_JSONV_MAX_DEPTH 512

/* True when s[0..n) is exactly one JSON value (surrounding whitespace allowed) in
 * valid UTF-8, nested at most API_JSONV_MAX_DEPTH deep. */
bool api_jsonv_valid(const char *s, size_t n);

/* True when s[0..n) is exactly one well-formed UTF-8 sequence (no overlongs,
 * surrogates or code points past U+10FFFF). */
bool api_jsonv_valid_utf8(const char *s, size_t n);

#endif

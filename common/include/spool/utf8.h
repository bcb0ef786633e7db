/* utf8.h - strict UTF-8 (RFC 3629): decoding, encoding, checking and repair, for every
 * part that takes text from outside (request bodies, datasets, cell text). Overlong
 * forms, surrogates (U+D800-U+DFFF) and values past U+10FFFF are invalid. NUL is a
 * valid code point here; callers that refuse it say so. */
#ifndef SPOOL_UTF8_H
#define SPOOL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"

#define SP_UTF8_REPLACEMENT 0xFFFDu

/* Decode the code point at s[0..n-1] (n > 0) into *cp and return the bytes it took
 * (1-4). An invalid, truncated or overlong sequence, a surrogate or a value past
 * U+10FFFF gives U+FFFD and takes one byte, so decoding always moves forward. */
size_t sp_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Append cp (<= U+10FFFF, not a surrogate) to b as UTF-8. 0, SP_ENOMEM or SP_ETOOBIG;
 * b is unchanged on error. */
int sp_utf8_add(sp_buf *b, uint32_t cp);

/* Append s[0..n-1] to b with every invalid sequence replaced by U+FFFD, so b holds
 * valid UTF-8. 0, SP_ENOMEM or SP_ETOOBIG (b may then hold part of s). */
int sp_utf8_add_repaired(sp_buf *b, const char *s, size_t n);

/* True when s[0..n-1] is valid UTF-8. */
bool sp_utf8_valid(const void *s, size_t n);

/* A check of UTF-8 that arrives in pieces: a sequence may be split anywhere. */
typedef struct sp_utf8_stream {
    unsigned char need;   /* continuation bytes still expected */
    unsigned char lo, hi; /* the range the next continuation byte must be in */
} sp_utf8_stream;

/* Start a stream check (all zero is a valid start too). */
void sp_utf8_stream_init(sp_utf8_stream *u);

/* Check one more byte. False when it cannot continue valid UTF-8. */
bool sp_utf8_stream_byte(sp_utf8_stream *u, unsigned char b);

/* True when the stream ended on a whole sequence. */
bool sp_utf8_stream_done(const sp_utf8_stream *u);

/* A UTF-8 byte order mark (EF BB BF) at the start of a stream that arrives in pieces,
 * to skip as spool-pdf's dataset reader skips it. All zero is a valid start. */
typedef struct sp_bom {
    unsigned char matched; /* its bytes seen so far */
    bool done;             /* past where one can be */
} sp_bom;

extern const char sp_bom_bytes[3];

/* The next n bytes of the stream: returns how many at the start of data are a leading
 * BOM's (skip them). When the stream turns out not to start with a whole one, *held is
 * the number of its bytes held back by earlier calls (sp_bom_bytes[0..*held-1]), which
 * are data after all: the caller takes them before the rest; else *held is 0. */
size_t sp_bom_skip(sp_bom *b, const char *data, size_t n, size_t *held);

/* The stream has ended: the bytes held back (as *held above). */
size_t sp_bom_end(sp_bom *b);

#endif

/* multipart.h - a streaming multipart/form-data parser (RFC 7578): a small state
 * machine that is fed the body in chunks of any size and hands part data to callbacks
 * as it arrives, without ever holding a whole part. A delimiter split across chunks is
 * found with a KMP matcher; only the bytes that may start a delimiter are held back
 * (at most 74), so memory is constant whatever the file size. */
#ifndef SPOOL_API_MULTIPART_H
#define SPOOL_API_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hdr.h"
#include "spool/err.h"

#define API_MP_NAME_MAX 127
#define API_MP_FILENAME_MAX 255
#define API_MP_HEADER_MAX 8192 /* all header lines of one part */
#define API_MP_MAX_PARTS 64

/* What a part's headers said. */
typedef struct api_mp_part {
    char name[API_MP_NAME_MAX + 1];         /* the form field name */
    bool has_filename;                      /* a file field (filename given) */
    char filename[API_MP_FILENAME_MAX + 1]; /* base name, path components removed */
    char content_type[API_MEDIA_MAX + 1];   /* "" when the part had none */
} api_mp_part;

/* Callbacks return 0 to go on or a negative code (with err set) to stop the parse;
 * the code is returned by api_mp_feed. */
typedef struct api_mp_callbacks {
    int (*begin)(void *ud, const api_mp_part *part, sp_err *err);
    int (*data)(void *ud, const char *data, size_t n, sp_err *err);
    int (*end)(void *ud, sp_err *err);
} api_mp_callbacks;

#define API_MP_DELIM_MAX (4 + API_BOUNDARY_MAX)

/* The parser's state; embed it or allocate it, no other memory is used. */
typedef struct api_mp {
    api_mp_callbacks cb;
    void *ud;
    int state;
    char delim[API_MP_DELIM_MAX + 1]; /* "\r\n--" boundary */
    size_t dlen;
    unsigned char fail[API_MP_DELIM_MAX + 1]; /* KMP failure function */
    size_t match;                             /* delimiter bytes matched so far */
    char hdr[API_MP_HEADER_MAX];
    size_t hlen;
    unsigned nparts;
    api_mp_part part;
    uint64_t offset; /* bytes consumed, for error messages */
} api_mp;

/* Start a parse for boundary (from the Content-Type; 1-70 characters). Returns 0 or
 * SP_EINVAL for a bad boundary. */
int api_mp_init(api_mp *mp, const char *boundary, const api_mp_callbacks *cb, void *ud,
                sp_err *err);

/* Feed the next n bytes. Returns 0, SP_EINVAL when the body is malformed (err says
 * where), or the negative code a callback returned. After an error every later call
 * fails the same way. */
int api_mp_feed(api_mp *mp, const char *data, size_t n, sp_err *err);

/* The body has ended: 0 when the closing boundary was seen, else SP_EINVAL. */
int api_mp_finish(api_mp *mp, sp_err *err);

#endif

/* hdr.h - HTTP header values the API reads: media types with parameters, Range,
 * If-None-Match, bearer credentials, and boolean words. Pure code (no HTTP library),
 * so the fuzzer can drive every parser. */
#ifndef SPOOL_API_HDR_H
#define SPOOL_API_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define API_MEDIA_MAX 127
#define API_BOUNDARY_MAX 70

typedef struct api_media {
    char type[API_MEDIA_MAX + 1];          /* "type/subtype", lowercased */
    char boundary[API_BOUNDARY_MAX + 1];   /* the boundary parameter, "" if none */
    char charset[32];                      /* the charset parameter, lowercased, "" if none */
} api_media;

/* Parse a Content-Type value ("multipart/form-data; boundary=xyz"). Returns 0, or
 * SP_EINVAL for a malformed value (then *out is zeroed). A boundary longer than 70
 * characters or with characters RFC 2046 does not allow is malformed. */
int api_hdr_media_type(const char *value, api_media *out);

/* True when media type m is "video/<something>". */
bool api_hdr_is_video(const char *type);

enum api_range_result {
    API_RANGE_NONE = 0,   /* no usable Range: send the whole file (200) */
    API_RANGE_PARTIAL,    /* one satisfiable range: *start and *len (206) */
    API_RANGE_UNSATISFIABLE /* 416 with Content-Range: bytes * /size */
};

/* Interpret a Range header value for a file of size bytes. Only one "bytes=" range
 * is honoured (first-last, first-, -suffix); several ranges or another unit are
 * ignored (RFC 9110 allows serving the whole file), a malformed value is ignored. */
int api_hdr_range(const char *value, int64_t size, int64_t *start, int64_t *len);

/* True when an If-None-Match value matches etag (a quoted entity tag such as "\"7\"";
 * weak comparison, so W/"7" also matches; "*" matches any). */
bool api_hdr_etag_match(const char *if_none_match, const char *etag);

/* The token of an "Authorization: Bearer <token>" value: *tok points into value and
 * *len is its length. Returns false when the value is not a bearer credential. */
bool api_hdr_bearer(const char *value, const char **tok, size_t *len);

/* Constant-time comparison of two byte strings (for credentials). */
bool api_hdr_secure_eq(const char *a, size_t alen, const char *b, size_t blen);

/* Parse true/false, 1/0, yes/no, on/off (any case). 0 or SP_EINVAL. */
int api_hdr_bool(const char *s, bool *out);

#endif

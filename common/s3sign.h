/* s3sign.h - presigned S3 URLs (AWS Signature Version 4, query-string form),
 * computed with libcrypto's HMAC and SHA-256 (internal to common/). Requests spool
 * sends itself are signed by libcurl (CURLOPT_AWS_SIGV4); only a URL handed to someone
 * else to use later needs this. */
#ifndef SPOOL_S3SIGN_H
#define SPOOL_S3SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "spool/err.h"

/* What to presign. Every string is borrowed for the call only. The URL signs the host
 * header alone (X-Amz-SignedHeaders=host) and no payload (UNSIGNED-PAYLOAD), so
 * whoever holds it may send any body and any other header (a presigned PUT does not
 * fix the uploaded object's Content-Type or size). */
typedef struct sp_s3_presign {
    const char *method;        /* "GET", "HEAD", "PUT", ...: 1-16 letters A-Z */
    const char *endpoint;      /* "https://s3.eu-west-1.amazonaws.com" or
                                * "http://127.0.0.1:9000" or "http://[::1]:9000":
                                * http or https, a host, an optional port, no path (a
                                * trailing '/' is allowed), no user:password@. The URL
                                * and the signed host are lower case and drop a default
                                * port (80, 443), as HTTP clients send the Host header */
    bool path_style;           /* true: ENDPOINT/BUCKET/KEY; false: BUCKET.HOST/KEY
                                * (virtual-host style: the bucket must be a DNS name,
                                * 3-63 of a-z 0-9 . -, and the endpoint's host a name,
                                * not an IP address). Path style also takes the legacy
                                * names: up to 255 of A-Z a-z 0-9 . - _ */
    const char *bucket;
    const char *key;           /* the object key, raw (encoded here, '/' kept): 1-1024
                                * bytes of UTF-8, no "." or ".." segment (HTTP clients
                                * resolve those, so the URL would reach another key) */
    const char *region;        /* "us-east-1": 1-63 of A-Z a-z 0-9 . - _ */
    const char *access_key;    /* 1-128 printable ASCII characters, no '/' */
    const char *secret_key;    /* 1-256 bytes */
    const char *session_token; /* NULL or "" when none, else printable ASCII, sent and
                                * signed as X-Amz-Security-Token */
    int64_t expires_s;         /* 1..604800 (S3's limit, 7 days); SP_EINVAL otherwise */
    time_t now;                /* the signing time (tests pass a fixed one): 1970-9999 */
    /* Optional response overrides, signed as query parameters (NULL or "": not sent):
     * response-content-disposition, response-content-type. S3 takes them on GET and
     * HEAD only (SP_EINVAL with another method); up to 1024 bytes of UTF-8 without
     * control characters (they become response headers). */
    const char *content_disposition;
    const char *content_type;
} sp_s3_presign;

/* The presigned URL into out (cap bytes with the NUL): the scheme, host (the bucket
 * first when virtual-host style), encoded path, then the canonical query string
 * (parameters sorted by name) and X-Amz-Signature last. Returns 0; SP_EINVAL for a bad
 * field (err names which; also out NULL or p NULL), SP_ETOOBIG when it does not fit
 * in cap (or passes 64 KiB), SP_ENOMEM, SP_ECRYPTO when libcrypto fails. On error
 * out is "" (when cap > 0). Thread-safe. */
int sp_s3_presign_url(const sp_s3_presign *p, char *out, size_t cap, sp_err *err);

/* RFC 3986 encoding as SigV4 wants it: only A-Za-z0-9-_.~ stay, every other byte
 * becomes %XX with uppercase hex; '/' stays when keep_slash (an object key as a path),
 * else it is %2F (a query parameter's name or value). Bytes are encoded as they are:
 * the input is not checked for UTF-8. Returns 0; SP_ETOOBIG when out (cap bytes with
 * the NUL) is too small, SP_EINVAL when in or out is NULL; out is "" on error (when
 * cap > 0). Shared with the request code in s3.c. */
int sp_s3_uri_encode(const char *in, bool keep_slash, char *out, size_t cap, sp_err *err);

#endif

/* s3.h - a client for S3-compatible object stores (internal to common/): AWS S3,
 * MinIO, Ceph RGW, Cloudflare R2, GCS in S3 mode. Requests go through libcurl, signed
 * by libcurl's own AWS Signature V4 (CURLOPT_AWS_SIGV4); replies are read with libxml2
 * (s3xml.h). Thread-safe: each call takes an easy handle from a small pool, so
 * connections are reused across calls and threads.
 *
 * Every call retries what may pass (connection errors, 500/502/503/504, SlowDown,
 * RequestTimeout) with exponential backoff and jitter, and turns what will not into a
 * message that names the fix (wrong key, missing bucket, another region, a clock off by
 * more than S3's 15 minutes). Codes: SP_ENOTFOUND (no such object or upload), SP_EIO
 * (the store failed or refused, after the retries), SP_ENOMEM, SP_EINVAL (a bad
 * argument, or a range outside the object). */
#ifndef SPOOL_S3_INTERNAL_H
#define SPOOL_S3_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

typedef struct sp_s3 sp_s3;

typedef struct sp_s3_config {
    const char *endpoint;      /* "http://127.0.0.1:9000"; NULL or "": AWS for region */
    const char *region;        /* NULL or "": us-east-1 */
    const char *bucket;
    bool path_style;           /* ENDPOINT/BUCKET/KEY; otherwise BUCKET.HOST/KEY */
    const char *access_key;    /* AWS_ACCESS_KEY_ID */
    const char *secret_key;    /* AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* AWS_SESSION_TOKEN, NULL or "" when none */
    int attempts;              /* tries per call for transient failures; 0: 5 */
    int64_t backoff_ms;        /* first backoff; doubles, with jitter; 0: 100 */
} sp_s3_config;

/* Longest ETag kept (S3's are 34 characters with their quotes; multipart ones a few
 * more). */
#define SP_S3_ETAG_MAX 128
/* Longest upload id kept (AWS's are about 150 characters). */
#define SP_S3_UPLOAD_ID_MAX 1024

sp_s3 *sp_s3_new(const sp_s3_config *c, sp_err *err);
void sp_s3_free(sp_s3 *s); /* accepts NULL */

/* "s3://BUCKET at ENDPOINT", for messages. */
const char *sp_s3_name(const sp_s3 *s);

/* The bucket exists and the credentials may list it (a ListObjectsV2 of one key). */
int sp_s3_check(sp_s3 *s, sp_err *err);

/* An object's size and ETag (etag may be NULL). SP_ENOTFOUND when it does not exist. */
int sp_s3_head(sp_s3 *s, const char *key, int64_t *size, char *etag, sp_err *err);

/* Put n bytes at data as key (one request; S3 allows up to 5 GiB), with their SHA-256
 * signed, so the store refuses a body damaged on the way. */
int sp_s3_put(sp_s3 *s, const char *key, const char *ctype, const void *data, size_t n,
              sp_err *err);

/* Put len bytes of fd from off as key, streamed from the file. */
int sp_s3_put_file(sp_s3 *s, const char *key, const char *ctype, int fd, int64_t off,
                   int64_t len, sp_err *err);

/* Bytes [off, off + n) of key into buf; *got gets how many came (fewer only at the end
 * of the object). if_match (NULL: none) is the ETag the object must still have:
 * SP_ECONFLICT when it was replaced meanwhile. SP_EINVAL when off is past the end. */
int sp_s3_get_range(sp_s3 *s, const char *key, const char *if_match, int64_t off, size_t n,
                    void *buf, size_t *got, sp_err *err);

/* The whole object into fd (from its current offset, which must be 0 for a fresh
 * file: a retry truncates and starts over); *size gets the bytes written. max_bytes
 * (0: none) stops with SP_ETOOBIG once more than that came. */
int sp_s3_get_file(sp_s3 *s, const char *key, int fd, int64_t max_bytes, int64_t *size,
                   sp_err *err);

/* Delete key (0 also when it did not exist). */
int sp_s3_delete(sp_s3 *s, const char *key, sp_err *err);

/* Delete up to 1000 keys in one request. */
int sp_s3_delete_many(sp_s3 *s, const char *const *keys, size_t n, sp_err *err);

/* Multipart upload: create (the upload id into id), upload part number `part`
 * (1-based) from memory or, with fd >= 0, from len bytes of fd at off (its ETag into
 * etag), complete with the parts' ETags in order, or abort (0 also when it is gone). */
int sp_s3_mpu_create(sp_s3 *s, const char *key, const char *ctype, char *id, size_t cap,
                     sp_err *err);
int sp_s3_mpu_part(sp_s3 *s, const char *key, const char *id, int part, const void *data,
                   int fd, int64_t off, int64_t len, char etag[SP_S3_ETAG_MAX], sp_err *err);
int sp_s3_mpu_complete(sp_s3 *s, const char *key, const char *id, const char *const *etags,
                       size_t n, sp_err *err);
int sp_s3_mpu_abort(sp_s3 *s, const char *key, const char *id, sp_err *err);

/* Every object under prefix, in key order, page by page (1000 keys a request): fn for
 * each (a nonzero return stops and is returned). */
typedef struct sp_s3_object {
    const char *key;
    int64_t size;
    int64_t mtime_ms; /* LastModified, by the store's clock; -1 if unknown */
} sp_s3_object;
int sp_s3_list(sp_s3 *s, const char *prefix, int (*fn)(const sp_s3_object *o, void *ud),
               void *ud, sp_err *err);

/* Every multipart upload in progress under prefix: fn with its key, id, and the time
 * it was last written to (its newest part, or its start when it has none), judged
 * against now_ms, the store's clock (from the reply's Date). */
typedef struct sp_s3_upload {
    const char *key;
    const char *id;
    int64_t initiated_ms;
} sp_s3_upload;
int sp_s3_list_uploads(sp_s3 *s, const char *prefix,
                       int (*fn)(const sp_s3_upload *u, int64_t now_ms, void *ud), void *ud,
                       sp_err *err);

/* The newest LastModified of the parts of an upload (-1 when it has none). */
int sp_s3_upload_touched(sp_s3 *s, const char *key, const char *id, int64_t *last_ms,
                         sp_err *err);

/* A URL that lets its holder GET key for ttl_s seconds without credentials (a
 * presigned URL, SigV4 in the query string), at endpoint (NULL or "": the store's own;
 * another one for clients that reach the store at another address), answered with
 * ctype and disposition as Content-Type and Content-Disposition (NULL: the object's). */
int sp_s3_presign_get(sp_s3 *s, const char *key, const char *endpoint, int64_t ttl_s,
                      const char *ctype, const char *disposition, char *out, size_t cap,
                      sp_err *err);

#endif

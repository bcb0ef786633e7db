/* s3xml.h - reading the XML replies of an S3-compatible object store (internal to
 * common/), with libxml2. Every function takes the reply body as bytes (not
 * NUL-terminated), matches elements by local name (servers differ in namespaces:
 * AWS uses http://s3.amazonaws.com/doc/2006-03-01/, s3rver other URIs or none), never
 * loads external entities or DTDs (a body with a DOCTYPE is refused before its DTD is
 * read, so entity-expansion bombs cost nothing), and refuses an empty body or one
 * larger than SP_S3XML_MAX_BYTES. Returns 0, or SP_EPROTO with err naming what is
 * wrong ("not XML: line 1: ...", "no UploadId in the reply", "S3 error AccessDenied:
 * Access Denied" when a parser other than sp_s3xml_error_parse is handed an <Error>
 * document, ...), SP_ENOMEM. On error the outputs are left unchanged. Safe to call
 * from several threads at once. */
#ifndef SPOOL_S3XML_H
#define SPOOL_S3XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

#define SP_S3XML_MAX_BYTES (8 * 1024 * 1024)
#define SP_S3XML_DELETE_MAX 1000  /* keys in one batch delete (S3's limit) */
#define SP_S3XML_PARTS_MAX 10000  /* parts of one multipart upload (S3's limit) */

/* <Error><Code>..</Code><Message>..</Message>[<Region>..</Region>]</Error>
 * (Region: AWS's AuthorizationHeaderMalformed, and some stores' PermanentRedirect, name
 * the bucket's region; empty when absent). Strings have their surrounding white space
 * removed and are truncated to fit at a UTF-8 character boundary, always
 * NUL-terminated. */
typedef struct sp_s3xml_error {
    char code[64];
    char message[256];
    char region[64];
} sp_s3xml_error;

/* 1 and *out filled when the body is an <Error> document, 0 when it is well-formed
 * XML of another root (CompleteMultipartUpload answers 200 with either; *out is then
 * untouched), SP_EPROTO when it is not XML (or is empty, too large, has a DOCTYPE). */
int sp_s3xml_error_parse(const char *body, size_t n, sp_s3xml_error *out, sp_err *err);

/* InitiateMultipartUploadResult: the UploadId into out (cap bytes with the NUL).
 * SP_EPROTO when missing, empty or longer than cap-1. */
int sp_s3xml_upload_id(const char *body, size_t n, char *out, size_t cap, sp_err *err);

/* One object of a ListObjectsV2 page. key is NUL-terminated and valid only during
 * the call; mtime_ms is LastModified (RFC 3339 / ISO 8601 "2026-12-07T06:40:37.000Z",
 * UTC, the fraction optional) in ms since the epoch, -1 when absent or unparseable. */
typedef struct sp_s3xml_object {
    const char *key;
    int64_t size;
    int64_t mtime_ms;
} sp_s3xml_object;

/* A ListObjectsV2 page (root ListBucketResult): fn (NULL: none) for each <Contents>
 * in document order (a nonzero return stops the walk and is returned; *truncated and
 * next are then not set). *truncated from IsTruncated (true/false/1/0; absent is
 * false); next (cap bytes) gets NextContinuationToken ("" when absent). SP_EPROTO,
 * before fn is called at all, when IsTruncated is true and there is no token, the
 * token does not fit, or a <Contents> has no Key or no Size (a decimal integer). */
int sp_s3xml_list(const char *body, size_t n, int (*fn)(const sp_s3xml_object *o, void *ud),
                  void *ud, bool *truncated, char *next, size_t cap, sp_err *err);

/* One multipart upload in progress (ListMultipartUploadsResult <Upload>). key and
 * upload_id are NUL-terminated and valid only during the call. */
typedef struct sp_s3xml_upload {
    const char *key;
    const char *upload_id;
    int64_t initiated_ms; /* -1 when absent or unparseable */
} sp_s3xml_upload;

/* A ListMultipartUploads page: fn (NULL: none) for each <Upload> (stops as in
 * sp_s3xml_list); *truncated from IsTruncated; next_key / next_id (cap bytes each)
 * from NextKeyMarker / NextUploadIdMarker ("" when absent). SP_EPROTO, before fn is
 * called, when an <Upload> has no Key or UploadId, IsTruncated is true and there is
 * no NextKeyMarker, or a marker does not fit. */
int sp_s3xml_uploads(const char *body, size_t n,
                     int (*fn)(const sp_s3xml_upload *u, void *ud), void *ud, bool *truncated,
                     char *next_key, char *next_id, size_t cap, sp_err *err);

/* A ListParts page: *last_ms gets the newest LastModified of its <Part>s (-1 if none
 * has one that parses), *parts the number of parts on the page; *truncated from
 * IsTruncated and next (cap) from NextPartNumberMarker ("" when absent). SP_EPROTO
 * when IsTruncated is true and there is no marker, or the marker is not a decimal
 * integer or does not fit. */
int sp_s3xml_parts(const char *body, size_t n, int64_t *last_ms, int *parts, bool *truncated,
                   char *next, size_t cap, sp_err *err);

/* A DeleteResult (the reply of a batch delete): fn (NULL: none) for each <Error>
 * (key, code, message: "" when absent, valid only during the call; a nonzero return
 * stops the walk and is returned, *deleted is then not set); *deleted gets the number
 * of <Deleted> (none in Quiet mode from S3 itself; s3rver lists them anyway). */
int sp_s3xml_delete_result(const char *body, size_t n,
                           int (*fn)(const char *key, const char *code, const char *message,
                                     void *ud),
                           void *ud, int *deleted, sp_err *err);

/* Write the body of a batch delete (<Delete xmlns=S3><Quiet>true</Quiet><Object><Key>..
 * </Key></Object>...</Delete>, with the XML declaration) for keys[0..n) into a buffer
 * the caller frees with sp_free (*len bytes, NUL-terminated), keys escaped as XML text
 * by libxml2 (a key may hold '&', '<', '\r', and any UTF-8). SP_EINVAL when n is 0 or
 * above SP_S3XML_DELETE_MAX, or a key is NULL, empty, not UTF-8, or holds a character
 * XML 1.0 cannot carry (control characters other than tab, LF, CR; U+FFFE, U+FFFF);
 * SP_ENOMEM. S3 also wants a Content-MD5 (or x-amz-checksum-*) header with it. */
int sp_s3xml_delete_body(const char *const *keys, size_t n, char **out, size_t *len,
                         sp_err *err);

/* Write the body of CompleteMultipartUpload (<CompleteMultipartUpload xmlns=S3><Part>
 * <PartNumber>i+1</PartNumber><ETag>etags[i]</ETag></Part>...) into a buffer the caller
 * frees with sp_free (*len bytes, NUL-terminated). etags as the server returned them
 * (with their quotes). SP_EINVAL when n is 0 or above SP_S3XML_PARTS_MAX, or an ETag is
 * as a key may not be above; SP_ENOMEM. */
int sp_s3xml_complete_body(const char *const *etags, size_t n, char **out, size_t *len,
                           sp_err *err);

#endif

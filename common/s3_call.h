/* s3_call.h - one request to the object store, as the operations in s3.c and s3_bulk.c
 * describe it to sp__s3_do (internal to common/s3*.c). */
#ifndef SPOOL_S3_CALL_H
#define SPOOL_S3_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3.h"
#include "spool/buf.h"
#include "spool/err.h"

/* The most of an error reply or an XML answer read into memory. */
#define SP__S3_REPLY_MAX (4 * 1024 * 1024)

typedef struct sp__call {
    const char *method; /* GET, HEAD, PUT, POST, DELETE */
    const char *key;    /* NULL: the bucket */
    const char *query;  /* canonical query string, "" or NULL for none */
    const char *ctype;  /* Content-Type to send, or NULL */
    const char *md5;    /* Content-MD5 (base64), or NULL */
    const char *range;  /* "bytes=A-B", or NULL */
    const char *if_match;
    /* the request body: len bytes at data, or (fd >= 0) len bytes of fd at off */
    const void *data;
    int fd;
    int64_t off, len;
    bool has_body;
    /* the reply body: into out (XML), into dst (cap bytes), or into dst_fd */
    sp_buf *out;
    void *dst;
    size_t dst_cap;
    int dst_fd;
    int64_t max_bytes; /* dst_fd: refuse more (0: no cap) */
    /* what came back */
    long status;
    size_t got;       /* bytes into dst or dst_fd */
    int64_t length;   /* Content-Length, -1 if none */
    int64_t date_ms;  /* Date, -1 if none */
    char etag[SP_S3_ETAG_MAX];
    char region[64];  /* x-amz-bucket-region */
    sp_buf errbody;   /* an error reply's body */
    int sink_rc;      /* why the body sink stopped (SP_EIO writing dst_fd, SP_ETOOBIG) */
    bool clip;        /* dst: keep the first dst_cap bytes of a longer answer, and stop */
    bool clipped;     /* ...which happened */
    int64_t sent;     /* request body bytes read so far */
} sp__call;

/* c for method on key (NULL: the bucket), every other field empty. */
void sp__s3_call_init(sp__call *c, const char *method, const char *key);

/* Send c, retrying what may pass, and read its answer as c asks (see s3.h for the
 * codes). */
int sp__s3_do(sp_s3 *s, sp__call *c, sp_err *err);

/* Append s to b encoded as SigV4 signs it (sp_s3_uri_encode), '/' kept when asked. */
int sp__s3_encode(sp_buf *b, const char *s, bool keep_slash);

#endif

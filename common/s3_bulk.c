/* s3_bulk.c - the S3 requests about many things at once: batch delete, multipart
 * uploads, and listings of objects, uploads and parts (see s3.h). */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "s3.h"
#include "s3_call.h"
#include "s3xml.h"
#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/util.h"

/* Content-MD5 of n bytes: base64 of the MD5 digest, from libcrypto (DeleteObjects
 * requires it). */
static int sp__md5_b64(const void *data, size_t n, char out[32], sp_err *err)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    if (EVP_Digest(data, n, d, &dn, EVP_md5(), NULL) != 1 || dn != 16)
        return sp_err_set(err, SP_ECRYPTO, "libcrypto cannot compute MD5");
    EVP_EncodeBlock((unsigned char *)out, d, 16);
    return 0;
}

typedef struct sp__delete_fail {
    char first[200];
    int n;
} sp__delete_fail;

static int sp__delete_error(const char *key, const char *code, const char *message, void *ud)
{
    sp__delete_fail *f = ud;
    if (strcmp(code, "NoSuchKey") == 0)
        return 0;
    if (f->n++ == 0)
        snprintf(f->first, sizeof f->first, "%.80s: %.40s %.60s", key, code, message);
    return 0;
}

int sp_s3_delete_many(sp_s3 *s, const char *const *keys, size_t n, sp_err *err)
{
    if (n == 0)
        return 0;
    char *body = NULL;
    size_t len = 0;
    int rc = sp_s3xml_delete_body(keys, n, &body, &len, err);
    char md5[32];
    if (rc == 0)
        rc = sp__md5_b64(body, len, md5, err);
    sp_buf out;
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    if (rc == 0) {
        sp__call c;
        sp__s3_call_init(&c, "POST", NULL);
        c.query = "delete=";
        c.ctype = "application/xml";
        c.md5 = md5;
        c.data = body;
        c.len = (int64_t)len;
        c.has_body = true;
        c.out = &out;
        rc = sp__s3_do(s, &c, err);
    }
    sp__delete_fail f = {.n = 0};
    int deleted = 0;
    if (rc == 0)
        rc = sp_s3xml_delete_result(out.data ? out.data : "", out.len, sp__delete_error, &f,
                                    &deleted, err);
    if (rc == 0 && f.n > 0)
        rc = sp_err_set(err, SP_EIO, "%s did not delete %d of %zu objects (%s)", sp_s3_name(s), f.n,
                        n, f.first);
    sp_buf_free(&out);
    sp_free(body);
    return rc;
}

int sp_s3_mpu_create(sp_s3 *s, const char *key, const char *ctype, char *id, size_t cap,
                     sp_err *err)
{
    sp_buf out;
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    sp__call c;
    sp__s3_call_init(&c, "POST", key);
    c.query = "uploads=";
    c.ctype = ctype;
    c.has_body = true;
    c.data = "";
    c.out = &out;
    int rc = sp__s3_do(s, &c, err);
    if (rc == 0)
        rc = sp_s3xml_upload_id(out.data ? out.data : "", out.len, id, cap, err);
    sp_buf_free(&out);
    return rc;
}

/* "partNumber=N&uploadId=ID" (the canonical order), the id encoded. */
static int sp__upload_query(sp_buf *q, int part, const char *id)
{
    int rc = part > 0 ? sp_buf_addf(q, "partNumber=%d&", part) : 0;
    if (rc == 0)
        rc = sp_buf_adds(q, "uploadId=");
    if (rc == 0)
        rc = sp__s3_encode(q, id, false);
    return rc;
}

/* Append "name=VALUE" (VALUE encoded) to the query q, after a '&' unless q is empty;
 * nothing when value is NULL or empty. Callers add parameters in name order (SigV4
 * signs the query as given). 0 or SP_ENOMEM. */
static int sp__param(sp_buf *q, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0')
        return 0;
    int rc = q->len > 0 ? sp_buf_addc(q, '&') : 0;
    if (rc == 0)
        rc = sp_buf_addf(q, "%s=", name);
    if (rc == 0)
        rc = sp__s3_encode(q, value, false);
    return rc;
}

/* GET the bucket (key NULL) or key with query into out, after an out-of-memory check
 * of building the query (build_rc). */
static int sp__get_page(sp_s3 *s, const char *key, int build_rc, sp_buf *q, sp_buf *out,
                        int64_t *date_ms, sp_err *err)
{
    if (build_rc < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sp__call c;
    sp__s3_call_init(&c, "GET", key);
    c.query = sp_buf_cstr(q);
    c.out = out;
    int rc = sp__s3_do(s, &c, err);
    if (date_ms)
        *date_ms = c.date_ms;
    return rc;
}

int sp_s3_mpu_part(sp_s3 *s, const char *key, const char *id, int part, const void *data,
                   int fd, int64_t off, int64_t len, char etag[SP_S3_ETAG_MAX], sp_err *err)
{
    sp_buf q;
    sp_buf_init(&q, 4096);
    if (sp__upload_query(&q, part, id) < 0) {
        sp_buf_free(&q);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sp__call c;
    sp__s3_call_init(&c, "PUT", key);
    c.query = sp_buf_cstr(&q);
    c.data = data;
    c.fd = fd;
    c.off = off;
    c.len = len;
    c.has_body = true;
    int rc = sp__s3_do(s, &c, err);
    if (rc == 0 && c.etag[0] == '\0')
        rc = sp_err_set(err, SP_EIO, "%s gave no ETag for part %d of %s", sp_s3_name(s), part, key);
    if (rc == 0)
        snprintf(etag, SP_S3_ETAG_MAX, "%s", c.etag);
    sp_buf_free(&q);
    return rc;
}

int sp_s3_mpu_complete(sp_s3 *s, const char *key, const char *id, const char *const *etags,
                       size_t n, sp_err *err)
{
    char *body = NULL;
    size_t len = 0;
    sp_buf q, out;
    sp_buf_init(&q, 4096);
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    int rc = sp_s3xml_complete_body(etags, n, &body, &len, err);
    if (rc == 0 && sp__upload_query(&q, 0, id) < 0)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == 0) {
        sp__call c;
        sp__s3_call_init(&c, "POST", key);
        c.query = sp_buf_cstr(&q);
        c.ctype = "application/xml";
        c.data = body;
        c.len = (int64_t)len;
        c.has_body = true;
        c.out = &out;
        rc = sp__s3_do(s, &c, err);
    }
    /* A 200 may still carry an <Error> (the store failed after sending its headers). */
    sp_s3xml_error e;
    if (rc == 0 && sp_s3xml_error_parse(out.data ? out.data : "", out.len, &e, err) == 1)
        rc = sp_err_set(err, SP_EIO, "%s could not complete the upload of %s: %s %.100s",
                        sp_s3_name(s), key, e.code, e.message);
    sp_free(body);
    sp_buf_free(&q);
    sp_buf_free(&out);
    return rc;
}

int sp_s3_mpu_abort(sp_s3 *s, const char *key, const char *id, sp_err *err)
{
    sp_buf q;
    sp_buf_init(&q, 4096);
    int rc = sp__upload_query(&q, 0, id) < 0 ? sp_err_set(err, SP_ENOMEM, "out of memory") : 0;
    if (rc == 0) {
        sp__call c;
        sp__s3_call_init(&c, "DELETE", key);
        c.query = sp_buf_cstr(&q);
        rc = sp__s3_do(s, &c, err);
    }
    sp_buf_free(&q);
    return rc == SP_ENOTFOUND ? 0 : rc;
}

/* ---- listings ------------------------------------------------------------------ */

typedef struct sp__list_walk {
    int (*fn)(const sp_s3_object *o, void *ud);
    void *ud;
} sp__list_walk;

static int sp__list_one(const sp_s3xml_object *o, void *ud)
{
    sp__list_walk *w = ud;
    sp_s3_object obj = {o->key, o->size, o->mtime_ms};
    return w->fn(&obj, w->ud);
}

int sp_s3_list(sp_s3 *s, const char *prefix, int (*fn)(const sp_s3_object *o, void *ud),
               void *ud, sp_err *err)
{
    char token[2048] = "";
    sp_buf q, out;
    sp_buf_init(&q, 8192);
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    sp__list_walk w = {fn, ud};
    int rc = 0;
    bool more = true;
    while (rc == 0 && more) {
        /* sorted: continuation-token, list-type, max-keys, prefix */
        sp_buf_reset(&q);
        int b = sp__param(&q, "continuation-token", token);
        if (b == 0)
            b = sp__param(&q, "list-type", "2");
        if (b == 0)
            b = sp__param(&q, "max-keys", "1000");
        if (b == 0)
            b = sp_buf_adds(&q, "&prefix=");
        if (b == 0)
            b = sp__s3_encode(&q, prefix, false);
        rc = sp__get_page(s, NULL, b, &q, &out, NULL, err);
        if (rc == 0)
            rc = sp_s3xml_list(out.data ? out.data : "", out.len, sp__list_one, &w, &more,
                               token, sizeof token, err);
    }
    sp_buf_free(&q);
    sp_buf_free(&out);
    return rc;
}

typedef struct sp__uploads_walk {
    int (*fn)(const sp_s3_upload *u, int64_t now_ms, void *ud);
    void *ud;
    int64_t now_ms;
} sp__uploads_walk;

static int sp__upload_one(const sp_s3xml_upload *u, void *ud)
{
    sp__uploads_walk *w = ud;
    sp_s3_upload up = {u->key, u->upload_id, u->initiated_ms};
    return w->fn(&up, w->now_ms, w->ud);
}

int sp_s3_list_uploads(sp_s3 *s, const char *prefix,
                       int (*fn)(const sp_s3_upload *u, int64_t now_ms, void *ud), void *ud,
                       sp_err *err)
{
    /* the markers of the next page, each at most SP_S3_UPLOAD_ID_MAX bytes with the NUL */
    char next_key[SP_S3_UPLOAD_ID_MAX] = "", next_id[SP_S3_UPLOAD_ID_MAX] = "";
    sp_buf q, out;
    sp_buf_init(&q, 8192);
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    sp__uploads_walk w = {fn, ud, -1};
    int rc = 0;
    bool more = true;
    while (rc == 0 && more) {
        /* sorted: key-marker, max-uploads, prefix, upload-id-marker, uploads */
        sp_buf_reset(&q);
        int b = sp__param(&q, "key-marker", next_key);
        if (b == 0)
            b = sp__param(&q, "max-uploads", "1000");
        if (b == 0)
            b = sp_buf_adds(&q, "&prefix=");
        if (b == 0)
            b = sp__s3_encode(&q, prefix, false);
        if (b == 0)
            b = sp__param(&q, "upload-id-marker", next_id);
        if (b == 0)
            b = sp_buf_adds(&q, "&uploads=");
        int64_t date_ms = -1;
        rc = sp__get_page(s, NULL, b, &q, &out, &date_ms, err);
        w.now_ms = date_ms > 0 ? date_ms : sp_now_ms();
        if (rc == 0)
            rc = sp_s3xml_uploads(out.data ? out.data : "", out.len, sp__upload_one, &w, &more,
                                  next_key, next_id, sizeof next_key, err);
    }
    sp_buf_free(&q);
    sp_buf_free(&out);
    return rc;
}

int sp_s3_upload_touched(sp_s3 *s, const char *key, const char *id, int64_t *last_ms,
                         sp_err *err)
{
    *last_ms = -1;
    char marker[32] = "";
    sp_buf q, out;
    sp_buf_init(&q, 4096);
    sp_buf_init(&out, SP__S3_REPLY_MAX);
    int rc = 0;
    bool more = true;
    while (rc == 0 && more) {
        /* sorted: max-parts, part-number-marker, uploadId */
        sp_buf_reset(&q);
        int b = sp__param(&q, "max-parts", "1000");
        if (b == 0)
            b = sp__param(&q, "part-number-marker", marker);
        if (b == 0)
            b = sp_buf_addc(&q, '&');
        if (b == 0)
            b = sp__upload_query(&q, 0, id);
        rc = sp__get_page(s, key, b, &q, &out, NULL, err);
        int64_t page_last = -1;
        int parts = 0;
        if (rc == 0)
            rc = sp_s3xml_parts(out.data ? out.data : "", out.len, &page_last, &parts, &more,
                                marker, sizeof marker, err);
        if (rc == 0 && page_last > *last_ms)
            *last_ms = page_last;
    }
    sp_buf_free(&q);
    sp_buf_free(&out);
    return rc;
}

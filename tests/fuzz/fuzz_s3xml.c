/* fuzz_s3xml.c - the XML replies of an S3 store (common/s3xml.c): the first byte picks
 * the parser, the rest is the body. Whatever the body, a parser returns 0 (or 1 for an
 * <Error>) or an error, never leaves a string unterminated or longer than its cap, and
 * never calls back after refusing a page. With selector 6 the body is split at NULs into
 * keys for the batch-delete and complete bodies, which must come out well-formed: their
 * own parser reads them back. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"
#include "spool/alloc.h"

#define CAP 64

static int calls;

static int on_object(const sp_s3xml_object *o, void *ud)
{
    (void)ud;
    if (o->key == NULL || o->key[0] == '\0' || o->size < 0)
        abort();
    calls++;
    return 0;
}

static int on_upload(const sp_s3xml_upload *u, void *ud)
{
    (void)ud;
    if (u->key[0] == '\0' || u->upload_id[0] == '\0')
        abort();
    calls++;
    return 0;
}

static int on_delete_error(const char *key, const char *code, const char *msg, void *ud)
{
    (void)ud;
    if (key == NULL || code == NULL || msg == NULL)
        abort();
    return 0;
}

static void terminated(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        abort();
}

/* Split body[0..n) at NULs into at most 16 keys and write both request bodies. */
static void write_bodies(const char *body, size_t n)
{
    char *copy = malloc(n + 1);
    if (copy == NULL)
        abort();
    memcpy(copy, body, n);
    copy[n] = '\0';
    const char *keys[16];
    size_t k = 0;
    for (char *p = copy; p <= copy + n && k < 16; p += strlen(p) + 1)
        keys[k++] = p;
    char *out = NULL;
    size_t len = 0;
    sp_err err = {0};
    if (sp_s3xml_delete_body(keys, k, &out, &len, &err) == 0) {
        if (strlen(out) != len)
            abort();
        sp_s3xml_error e;
        if (sp_s3xml_error_parse(out, len, &e, &err) != 0) /* well-formed, not an Error */
            abort();
        sp_free(out);
    }
    out = NULL;
    if (sp_s3xml_complete_body(keys, k, &out, &len, &err) == 0) {
        sp_s3xml_error e;
        if (strlen(out) != len || sp_s3xml_error_parse(out, len, &e, &err) != 0)
            abort();
        sp_free(out);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t n = size - 1;
    sp_err err = {0};
    char a[CAP], b[CAP];
    memset(a, 'x', sizeof a);
    memset(b, 'x', sizeof b);
    bool truncated;
    int rc = 0;
    calls = 0;
    switch (data[0] % 7) {
    case 0: {
        sp_s3xml_error e;
        rc = sp_s3xml_error_parse(body, n, &e, &err);
        if (rc == 1) {
            terminated(e.code, sizeof e.code);
            terminated(e.message, sizeof e.message);
            terminated(e.region, sizeof e.region);
        }
        break;
    }
    case 1:
        rc = sp_s3xml_upload_id(body, n, a, sizeof a, &err);
        if (rc == 0 && (a[0] == '\0' || memchr(a, '\0', sizeof a) == NULL))
            abort();
        break;
    case 2:
        rc = sp_s3xml_list(body, n, on_object, NULL, &truncated, a, sizeof a, &err);
        if (rc == 0)
            terminated(a, sizeof a);
        break;
    case 3:
        rc = sp_s3xml_uploads(body, n, on_upload, NULL, &truncated, a, b, sizeof a, &err);
        if (rc == 0) {
            terminated(a, sizeof a);
            terminated(b, sizeof b);
        }
        break;
    case 4: {
        int64_t last;
        int parts;
        rc = sp_s3xml_parts(body, n, &last, &parts, &truncated, a, sizeof a, &err);
        if (rc == 0 && (parts < 0 || last < -1))
            abort();
        break;
    }
    case 5: {
        int deleted;
        rc = sp_s3xml_delete_result(body, n, on_delete_error, NULL, &deleted, &err);
        if (rc == 0 && deleted < 0)
            abort();
        break;
    }
    default:
        write_bodies(body, n);
        return 0;
    }
    if (rc < 0 && (calls != 0 || err.msg[0] == '\0'))
        abort();
    return 0;
}

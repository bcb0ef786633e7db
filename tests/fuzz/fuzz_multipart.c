/* fuzz_multipart.c - the streaming multipart parser. The input is split into a
 * Content-Type boundary (first line) and a body; the body is parsed whole and again in
 * chunks of a size taken from the input, and both parses must report exactly the same
 * parts and bytes (a delimiter split across chunks must not change anything). A body
 * is accepted or refused as malformed: the callbacks here never fail, and neither
 * does the fuzzer's allocator. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdr.h"
#include "multipart.h"
#include "spool/buf.h"

typedef struct rec {
    sp_buf log;
} rec;

static int on_begin(void *ud, const api_mp_part *p, sp_err *err)
{
    (void)err;
    rec *r = ud;
    return sp_buf_addf(&r->log, "<%s|%d|%s|%s>", p->name, p->has_filename, p->filename,
                       p->content_type) < 0 ? SP_ENOMEM : 0;
}

static int on_data(void *ud, const char *d, size_t n, sp_err *err)
{
    (void)err;
    return sp_buf_add(&((rec *)ud)->log, d, n) < 0 ? SP_ENOMEM : 0;
}

static int on_end(void *ud, sp_err *err)
{
    (void)err;
    return sp_buf_adds(&((rec *)ud)->log, "</>") < 0 ? SP_ENOMEM : 0;
}

static const api_mp_callbacks cb = {on_begin, on_data, on_end};

static int parse(const char *boundary, const uint8_t *body, size_t n, size_t chunk, rec *r)
{
    api_mp mp;
    sp_err err;
    sp_buf_init(&r->log, 1 << 24);
    int rc = api_mp_init(&mp, boundary, &cb, r, &err);
    for (size_t i = 0; rc == 0 && i < n; i += chunk)
        rc = api_mp_feed(&mp, (const char *)body + i, n - i < chunk ? n - i : chunk, &err);
    if (rc == 0)
        rc = api_mp_finish(&mp, &err);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size < 200 ? size : 200);
    if (nl == NULL || size < 2)
        return 0;
    char ctype[256];
    size_t hl = (size_t)(nl - data);
    memcpy(ctype, data, hl);
    ctype[hl] = '\0';
    api_media m;
    const char *boundary = "b";
    if (api_hdr_media_type(ctype, &m) == 0 && m.boundary[0])
        boundary = m.boundary;
    const uint8_t *body = nl + 1;
    size_t n = size - hl - 1;
    size_t chunk = 1 + (size % 17);
    rec whole, pieces;
    int a = parse(boundary, body, n, n ? n : 1, &whole);
    int b = parse(boundary, body, n, chunk, &pieces);
    if (a != b || (a != 0 && a != SP_EINVAL))
        abort();
    /* On success the parts and bytes must be identical; on failure the log may stop
     * at different points (the failure is found after more or fewer bytes). */
    if (a == 0 && (whole.log.len != pieces.log.len ||
                   memcmp(sp_buf_cstr(&whole.log), sp_buf_cstr(&pieces.log), whole.log.len)))
        abort();
    sp_buf_free(&whole.log);
    sp_buf_free(&pieces.log);
    return 0;
}

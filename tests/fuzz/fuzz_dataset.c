/* fuzz_dataset.c - the streaming CSV and NDJSON body checks. The first byte picks the
 * format, the columns and the chunk size; the result (and an NDJSON body's canonical
 * rows) must not depend on how the body is split, and a body is either accepted or
 * refused as invalid (the fuzzer's allocator never fails, so "out of memory" would be
 * a buffer cap reported as memory). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "rows.h"

static int csv(const uint8_t *d, size_t n, size_t chunk)
{
    api_csv c;
    api_invalid inv;
    api_csv_init(&c);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += chunk)
        rc = api_csv_feed(&c, (const char *)d + i, n - i < chunk ? n - i : chunk, &inv);
    if (rc == 0)
        rc = api_csv_finish(&c, &inv);
    if (rc == 0)
        (void)api_csv_has_column(&c, "a");
    api_csv_free(&c);
    if (rc != 0 && rc != SP_EINVAL)
        abort();
    return rc;
}

static int collect(void *ud, const char *d, size_t n)
{
    return sp_buf_add(ud, d, n);
}

static int ndjson(const uint8_t *d, size_t n, size_t chunk, long ncols, sp_buf *out)
{
    api_rows_opts o = {.ndjson = true, .ncolumns = ncols, .sink = collect, .ud = out};
    api_rows *r = api_rows_new(&o);
    api_invalid inv;
    if (r == NULL)
        abort();
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += chunk)
        rc = api_rows_feed(r, (const char *)d + i, n - i < chunk ? n - i : chunk, &inv);
    if (rc == 0)
        rc = api_rows_finish(r, (size_t)ncols, &inv);
    api_rows_free(r);
    if (rc != 0 && rc != SP_EINVAL)
        abort();
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    size_t chunk = 1 + (mode >> 2) % 13;
    if (mode & 1) {
        if (csv(d, n, n ? n : 1) != csv(d, n, chunk))
            abort();
    } else {
        long ncols = (mode & 2) ? 0 : 2;
        sp_buf a, b;
        sp_buf_init(&a, 1 << 26);
        sp_buf_init(&b, 1 << 26);
        int rc = ndjson(d, n, n ? n : 1, ncols, &a);
        if (rc != ndjson(d, n, chunk, ncols, &b) ||
            (rc == 0 && (a.len != b.len || memcmp(sp_buf_cstr(&a), sp_buf_cstr(&b), a.len))))
            abort();
        sp_buf_free(&a);
        sp_buf_free(&b);
    }
    return 0;
}

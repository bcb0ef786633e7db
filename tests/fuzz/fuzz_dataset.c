/* fuzz_dataset.c - the streaming CSV and NDJSON body checks. The first byte picks the
 * format and the chunk size; the result must not depend on how the body is split. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

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
    return rc;
}

static int ndjson(const uint8_t *d, size_t n, size_t chunk, bool need_object)
{
    api_ndjson nd;
    api_invalid inv;
    api_ndjson_init(&nd, need_object);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i += chunk)
        rc = api_ndjson_feed(&nd, (const char *)d + i, n - i < chunk ? n - i : chunk, &inv);
    if (rc == 0)
        rc = api_ndjson_finish(&nd, &inv);
    api_ndjson_free(&nd);
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
        bool need = (mode & 2) != 0;
        if (ndjson(d, n, n ? n : 1, need) != ndjson(d, n, chunk, need))
            abort();
    }
    return 0;
}

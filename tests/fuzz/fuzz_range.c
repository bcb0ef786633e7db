/* fuzz_range.c - header values: Range (a partial answer must lie inside the file),
 * If-None-Match, Content-Type with parameters, bearer credentials, booleans. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char v[4096];
    if (size < 8 || size - 8 >= sizeof v)
        return 0;
    int64_t fsize = 0;
    memcpy(&fsize, data, 8);
    if (fsize < 0)
        fsize = -(fsize + 1);
    fsize %= INT64_C(1) << 50;
    memcpy(v, data + 8, size - 8);
    v[size - 8] = '\0';
    int64_t start = -1, len = -1;
    int r = api_hdr_range(v, fsize, &start, &len);
    if (r == API_RANGE_PARTIAL && (start < 0 || len < 1 || start + len > fsize))
        abort();
    (void)api_hdr_etag_match(v, "\"42\"");
    api_media m;
    if (api_hdr_media_type(v, &m) == 0 &&
        (strlen(m.boundary) > API_BOUNDARY_MAX || strchr(m.type, '/') == NULL))
        abort();
    const char *tok;
    size_t n;
    if (api_hdr_bearer(v, &tok, &n) && (n == 0 || tok < v || tok + n > v + strlen(v)))
        abort();
    bool b;
    (void)api_hdr_bool(v, &b);
    return 0;
}

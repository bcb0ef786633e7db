/* fuzz_export.c - libFuzzer target for a whole pdf.export job as the worker runs it:
 * the params JSON (sp_export_params_parse) and the dataset through the three passes
 * (sample, layout, render) to a saved PDF. The first byte picks the dataset format and
 * the limits; the params are the first line (when they do not parse, the error must
 * say why and the export runs with a title only); the rest is the dataset. The PDF goes
 * to /dev/null. An export ends in success with at least one page, or in an error with
 * a message and a job error code; never in "out of memory" (the fuzzer's allocator
 * never fails: a buffer cap reported as memory would be a bug).
 *
 *   make fuzz && build/release/fuzz/fuzz_pdf_export tests/fuzz/corpus/pdf_export */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export.h"

#define FONTS "/usr/share/fonts/truetype/dejavu"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t knob = data[0];
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    const char *nl = memchr(p, '\n', n);
    size_t plen = nl ? (size_t)(nl - p) : n;
    char *json = strndup(p, plen);
    if (json == NULL)
        abort();
    const char *rows = nl ? nl + 1 : p + n;
    size_t nrows = (size_t)(p + n - rows);

    sp_export_params params;
    sp_err err = {0};
    int rc = sp_export_params_parse(json, &params, &err);
    free(json);
    if (rc < 0) {
        if (rc != SP_EINVAL || err.msg[0] == '\0')
            abort();
        if (sp_export_params_parse("{\"title\":\"Fuzz\"}", &params, &err) < 0)
            abort();
    }

    int fd = memfd_create("dataset", MFD_CLOEXEC);
    if (fd < 0 || (nrows > 0 && write(fd, rows, nrows) != (ssize_t)nrows) ||
        lseek(fd, 0, SEEK_SET) != 0)
        abort();
    sp_export_opts o = {.font_dir = FONTS,
                        .creator = "fuzz",
                        .now_ms = INT64_C(1714979289000),
                        .limits = {.max_rows = 400,
                                   .max_pages = 8,
                                   .max_memory = 48 << 20,
                                   .max_row_bytes = knob & 0x10 ? 256 : 8192,
                                   .max_lines = 1 + (knob >> 5) % 5}};
    sp_export_result res;
    memset(&err, 0, sizeof err);
    rc = sp_export_run(&params, fd, (sp_dataset_format)(knob % 3), "/dev/null", &o, &res, &err);
    sp_export_params_free(&params);
    if (rc == 0 && (res.pages < 1 || res.rows < 0 || res.error_code != NULL))
        abort();
    if (rc < 0 && (rc == SP_ENOMEM || res.error_code == NULL || err.msg[0] == '\0'))
        abort();
    return 0;
}

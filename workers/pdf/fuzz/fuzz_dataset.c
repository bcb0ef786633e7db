/* fuzz_dataset.c - libFuzzer target for spool-pdf's untrusted-input parsers: the
 * dataset reader (CSV, NDJSON, JSON array) and the number/date cell formats. The first
 * byte picks the format and whether columns are selected; the rest is the file. Every
 * row is read twice (with a rewind between) and every cell is formatted; rows must be
 * valid UTF-8 and an error must come with a message.
 *
 *   make fuzz && build/release/fuzz/fuzz_pdf_dataset -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dataset.h"
#include "spool/buf.h"
#include "spool/utf8.h"
#include "text.h"

static int64_t read_all(sp_dataset *ds)
{
    sp_dataset_row row;
    sp_err err;
    int rc;
    int64_t n = 0;
    sp_buf out;
    sp_buf_init(&out, 1 << 20);
    while ((rc = sp_dataset_next(ds, &row, &err)) == 1) {
        for (size_t i = 0; i < row.ncells; i++) {
            if (!sp_utf8_valid(row.cell[i], row.len[i]))
                abort();
            sp_buf_reset(&out);
            sp_text_format_number(row.cell[i], row.len[i], (int)(i % 12) - 1, i % 2, &out);
            sp_text_format_date(row.cell[i], row.len[i], &out);
        }
        n++;
    }
    sp_buf_free(&out);
    if (rc < 0 && (err.msg[0] == '\0' || rc == SP_ENOMEM))
        abort(); /* errors must say what is wrong (never memory: the allocator here
                    does not fail) */
    return rc < 0 ? -1 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fd = memfd_create("dataset", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1)) {
        close(fd);
        return 0;
    }
    lseek(fd, 0, SEEK_SET);
    sp_dataset_opts o = {.format = (sp_dataset_format)(data[0] % 3),
                         .max_row_bytes = 512 + (data[0] & 0x40 ? 0 : 4096),
                         .max_columns = 16};
    sp_dataset *ds = NULL;
    sp_err err;
    if (sp_dataset_open_fd(fd, &o, &ds, &err) != 0)
        return 0;
    if (data[0] & 0x80) {
        const char *cols[] = {"a", "b", "c"};
        sp_dataset_select(ds, cols, 1 + (data[0] >> 3) % 3, &err);
    } else {
        const char *const *keys;
        size_t n;
        sp_dataset_keys(ds, &keys, &n, &err);
    }
    int64_t first = read_all(ds);
    if (sp_dataset_rewind(ds, &err) == 0) {
        int64_t second = read_all(ds);
        if (first >= 0 && second != first)
            abort(); /* the same file reads the same twice */
    }
    sp_dataset_close(ds);
    return 0;
}

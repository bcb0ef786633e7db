/* fuzz_dataset_agree.c - a pdf.export dataset spool-api accepts, spool-pdf reads: the
 * promise of api/dataset.h and api/rows.h ("a dataset it accepts is not failed by the
 * worker"), checked on the two halves together. A CSV body that api_csv passes, as the
 * blob store keeps it, or the canonical NDJSON that api_rows writes from an NDJSON body,
 * is read by the worker's dataset reader with its default limits and the columns the
 * data names (no params.columns): no error, at least one column, and as many rows as
 * the API counted. Bodies the API refuses are not looked at further. The first byte
 * picks the format; the rest is the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dataset.h"
#include "rows.h"
#include "spool/buf.h"
#include "spool/limits.h"
#include "workers/pdf/dataset.h"

static int collect(void *ud, const char *d, size_t n)
{
    return sp_buf_add(ud, d, n);
}

/* What the worker makes of data: the row count, or abort() with its error. */
static uint64_t worker_rows(const char *data, size_t n, sp_dataset_format fmt)
{
    int fd = memfd_create("dataset", MFD_CLOEXEC);
    if (fd < 0 || (n > 0 && write(fd, data, n) != (ssize_t)n) || lseek(fd, 0, SEEK_SET) != 0)
        abort();
    sp_dataset_opts o = {.format = fmt,
                         .max_row_bytes = SP_EXPORT_MAX_ROW_BYTES,
                         .max_columns = SP_EXPORT_MAX_COLUMNS};
    sp_dataset *ds = NULL;
    sp_err err = {0};
    if (sp_dataset_open_fd(fd, &o, &ds, &err) != 0)
        abort();
    const char *const *keys;
    size_t nkeys = 0;
    int rc = sp_dataset_keys(ds, &keys, &nkeys, &err);
    if (rc < 0 || nkeys == 0) {
        fprintf(stderr, "the API accepted what the worker refuses: %s\n",
                rc < 0 ? err.msg : "the data names no columns");
        abort();
    }
    uint64_t rows = 0;
    sp_dataset_row row;
    while ((rc = sp_dataset_next(ds, &row, &err)) == 1)
        rows++;
    if (rc < 0) {
        fprintf(stderr, "the API accepted what the worker refuses: %s\n", err.msg);
        abort();
    }
    sp_dataset_close(ds);
    return rows;
}

static void csv(const char *d, size_t n)
{
    api_csv c;
    api_invalid inv;
    api_csv_init(&c);
    int rc = api_csv_feed(&c, d, n, &inv);
    if (rc == 0)
        rc = api_csv_finish(&c, &inv);
    uint64_t records = c.records;
    api_csv_free(&c);
    if (rc == 0 && worker_rows(d, n, SP_DATASET_CSV) != records) {
        fprintf(stderr, "the API counted %llu rows\n", (unsigned long long)records);
        abort();
    }
}

static void ndjson(const char *d, size_t n)
{
    sp_buf out;
    sp_buf_init(&out, (size_t)1 << 26);
    api_rows_opts o = {.ndjson = true, .ncolumns = 0, .sink = collect, .ud = &out};
    api_rows *r = api_rows_new(&o);
    api_invalid inv;
    if (r == NULL)
        abort();
    int rc = api_rows_feed(r, d, n, &inv);
    if (rc == 0)
        rc = api_rows_finish(r, 0, &inv);
    uint64_t rows = api_rows_count(r);
    api_rows_free(r);
    if (rc == 0 && worker_rows(sp_buf_cstr(&out), out.len, SP_DATASET_NDJSON) != rows) {
        fprintf(stderr, "the API counted %llu rows\n", (unsigned long long)rows);
        abort();
    }
    sp_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        ndjson((const char *)data + 1, size - 1);
    else
        csv((const char *)data + 1, size - 1);
    return 0;
}

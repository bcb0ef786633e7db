/* test_pdf_dataset.c - the streaming dataset reader: CSV (RFC 4180), NDJSON and JSON
 * arrays, their error messages (with line numbers), rewinding and bounded memory. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataset.h"
#include "spool/alloc.h"
#include "spool/buf.h"

static char sp__dir[] = "/tmp/spool-test-dataset-XXXXXX";

/* Write data to a fresh file and open it as fmt. */
static sp_dataset *open_data(const char *data, size_t n, sp_dataset_format fmt, size_t max_row)
{
    static int seq;
    char path[256];
    snprintf(path, sizeof path, "%s/d%d", sp__dir, seq++);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    sp_dataset_opts o = {.format = fmt, .max_row_bytes = max_row};
    sp_dataset *ds = NULL;
    sp_err err = {0};
    int rc = sp_dataset_open(path, &o, &ds, &err);
    if (rc != 0)
        fail_msg("open: %d %s", rc, err.msg);
    unlink(path); /* the dataset keeps its descriptor */
    return ds;
}

static sp_dataset *open_str(const char *data, sp_dataset_format fmt)
{
    return open_data(data, strlen(data), fmt, 0);
}

/* All rows as "a|b|c" lines joined by "\n"; on error "ERR <code> <msg>". */
static char *read_all(sp_dataset *ds)
{
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    sp_dataset_row row;
    sp_err err = {0};
    int rc;
    while ((rc = sp_dataset_next(ds, &row, &err)) == 1) {
        if (b.len)
            sp_buf_addc(&b, '\n');
        for (size_t i = 0; i < row.ncells; i++) {
            if (i)
                sp_buf_addc(&b, '|');
            assert_int_equal(strlen(row.cell[i]), row.len[i]);
            sp_buf_add(&b, row.cell[i], row.len[i]);
        }
    }
    if (rc < 0) {
        if (b.len)
            sp_buf_addc(&b, '\n');
        sp_buf_addf(&b, "ERR %d %s", rc, err.msg);
    }
    char *s = sp_buf_take(&b);
    return s ? s : sp_strdup("");
}

static void expect_rows(sp_dataset *ds, const char *want)
{
    char *got = read_all(ds);
    if (strcmp(got, want) != 0)
        fail_msg("rows:\n%s\n--- expected:\n%s", got, want);
    sp_free(got);
}

static void expect_csv(const char *data, const char *want)
{
    sp_dataset *ds = open_str(data, SP_DATASET_CSV);
    expect_rows(ds, want);
    sp_dataset_close(ds);
}

static void test_csv_reads_rfc4180_quoting(void **state)
{
    (void)state;
    expect_csv("name,note,n\n"
               "plain,\"a, b\",1\n"
               "\"quo\"\"ted\",\"two\nlines\",2\n"
               "\"\",,3\n",
               "plain|a, b|1\nquo\"ted|two\nlines|2\n||3");
}

static void test_csv_handles_crlf_bom_blank_lines_and_no_final_newline(void **state)
{
    (void)state;
    expect_csv("\xEF\xBB\xBF" "a,b\r\n1,2\r\n\r\n  \r\n3,4", "1|2\n3|4");
}

static void test_csv_keeps_spaces_inside_fields(void **state)
{
    (void)state;
    expect_csv("a,b\n x , y \n", " x | y ");
}

static void test_csv_repairs_invalid_utf8(void **state)
{
    (void)state;
    expect_csv("a\nbad\xFFhere\n", "bad\xEF\xBF\xBDhere");
}

static void test_csv_header_gives_the_keys_and_select_reorders(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("id,name,amount\n1,Ann,3.5\n2,Bob,4\n", SP_DATASET_CSV);
    const char *const *keys;
    size_t n;
    sp_err err = {0};
    assert_int_equal(sp_dataset_keys(ds, &keys, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(keys[0], "id");
    assert_string_equal(keys[2], "amount");
    const char *sel[] = {"amount", "id"};
    assert_int_equal(sp_dataset_select(ds, sel, 2, &err), 0);
    expect_rows(ds, "3.5|1\n4|2");
    sp_dataset_close(ds);
}

static void test_csv_select_names_a_missing_column(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("id,name\n1,Ann\n", SP_DATASET_CSV);
    const char *sel[] = {"id", "email"};
    sp_err err = {0};
    assert_int_equal(sp_dataset_select(ds, sel, 2, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "'email'"));
    sp_dataset_close(ds);
}

static void test_csv_bad_quoting_fails_naming_the_line(void **state)
{
    (void)state;
    expect_csv("a,b\n1,2\n3,x\"y\n5,6\n",
               "1|2\nERR -2 line 3: malformed CSV: a quote inside an unquoted field, or text "
               "after a closing quote (RFC 4180)");
    expect_csv("a,b\n\"1\"x,2\n", "ERR -2 line 2: malformed CSV: a quote inside an unquoted "
                                  "field, or text after a closing quote (RFC 4180)");
}

static void test_csv_wrong_field_count_fails_naming_the_row_line(void **state)
{
    (void)state;
    expect_csv("a,b,c\n1,2,3\n\"multi\nline\",5\n",
               "1|2|3\nERR -2 line 3: the row has 2 fields, expected 3 as in the header");
    expect_csv("a,b\n1,2,3\n", "ERR -2 line 2: the row has 3 fields, expected 2 as in the header");
}

static void test_csv_unclosed_quote_fails_at_the_end(void **state)
{
    (void)state;
    expect_csv("a,b\n1,2\n3,\"open\nstill open\n",
               "1|2\nERR -2 line 3: a quoted field is not closed before the end of the file");
}

static void test_csv_counts_lines_inside_quoted_fields(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("a,b\n\"x\ny\nz\",1\n2,3\n", SP_DATASET_CSV);
    sp_dataset_row row;
    sp_err err = {0};
    assert_int_equal(sp_dataset_next(ds, &row, &err), 1);
    assert_int_equal(row.line, 2);
    assert_int_equal(row.index, 0);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 1);
    assert_int_equal(row.line, 5);
    assert_int_equal(row.index, 1);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 0);
    sp_dataset_close(ds);
}

static void test_csv_row_longer_than_the_limit_fails(void **state)
{
    (void)state;
    char data[4096];
    int n = snprintf(data, sizeof data, "a,b\n1,2\n3,\"");
    memset(data + n, 'x', 3000);
    n += 3000;
    n += snprintf(data + n, sizeof data - (size_t)n, "\"\n");
    sp_dataset *ds = open_data(data, (size_t)n, SP_DATASET_CSV, 1000);
    expect_rows(ds, "1|2\nERR -2 line 3: the row is longer than 1000 bytes");
    sp_dataset_close(ds);
}

/* The outcome of a dataset of head + body + tail whose body is n bytes of 'x' (with the
 * tail's "\n" inside a quoted field when quoted): "ok" or the error. */
static char *one_row(sp_dataset_format fmt, const char *head, size_t n, const char *tail,
                     size_t max_row)
{
    size_t hl = strlen(head), tl = strlen(tail);
    char *data = malloc(hl + n + tl);
    assert_non_null(data);
    memcpy(data, head, hl);
    memset(data + hl, 'x', n);
    memcpy(data + hl + n, tail, tl);
    sp_dataset *ds = open_data(data, hl + n + tl, fmt, max_row);
    free(data);
    sp_dataset_row row;
    sp_err err = {0};
    int rc;
    while ((rc = sp_dataset_next(ds, &row, &err)) == 1)
        ;
    sp_dataset_close(ds);
    char *s = sp_strdup(rc == 0 ? "ok" : err.msg);
    assert_non_null(s);
    return s;
}

static void expect_one_row(sp_dataset_format fmt, const char *head, size_t n, const char *tail,
                           size_t max_row, const char *want)
{
    char *got = one_row(fmt, head, n, tail, max_row);
    if (strcmp(got, want) != 0)
        fail_msg("%s%zu x%s (limit %zu): got \"%s\", expected \"%s\"", head, n, tail, max_row,
                 got, want);
    sp_free(got);
}

/* A CSV record may take max_row bytes, counted as spool-api counts them: its own line
 * end (LF, CRLF, CR or none at the end of the file) not counted, a line end inside a
 * quoted field counted. One byte more fails. */
static void test_csv_record_at_the_limit_passes_one_byte_more_fails(void **state)
{
    (void)state;
    const size_t max = 1000;
    const char *too_long = "line 2: the row is longer than 1000 bytes";
    const char *ends[] = {"\n", "\r\n", "\r", "", "\n1\n", "\r\n1\r\n"};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        expect_one_row(SP_DATASET_CSV, "a\n", max - 1, ends[i], max, "ok");
        expect_one_row(SP_DATASET_CSV, "a\n", max, ends[i], max, "ok");
        expect_one_row(SP_DATASET_CSV, "a\n", max + 1, ends[i], max, too_long);
    }
    /* two fields: the comma counts */
    expect_one_row(SP_DATASET_CSV, "a,b\n1,", max - 2, "\n", max, "ok");
    expect_one_row(SP_DATASET_CSV, "a,b\n1,", max - 1, "\n", max, too_long);
    /* quoted, across lines: quotes and the inner CRLF count, the record's LF does not */
    expect_one_row(SP_DATASET_CSV, "a\n\"\r\n", max - 4, "\"\n", max, "ok");
    expect_one_row(SP_DATASET_CSV, "a\n\"\r\n", max - 3, "\"\n", max, too_long);
    expect_one_row(SP_DATASET_CSV, "a\n\"", max - 4, "\r\n\"", max, "ok");
    expect_one_row(SP_DATASET_CSV, "a\n\"", max - 3, "\r\n\"", max, too_long);
}

static void test_csv_empty_file_has_no_keys_and_no_rows(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("", SP_DATASET_CSV);
    const char *const *keys;
    size_t n = 99;
    sp_err err = {0};
    assert_int_equal(sp_dataset_keys(ds, &keys, &n, &err), 0);
    assert_int_equal(n, 0);
    sp_dataset_close(ds);
}

static void test_ndjson_reads_objects_and_arrays(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("{\"a\":1,\"b\":\"x\"}\n"
                              "\n"
                              "{\"b\":\"y\",\"a\":2.5,\"extra\":true}\r\n"
                              "{\"a\":null}\n"
                              "[3,\"z\"]\n"
                              "{\"a\":[1,{\"k\":\"v\"}],\"b\":false}",
                              SP_DATASET_NDJSON);
    const char *const *keys;
    size_t n;
    sp_err err = {0};
    assert_int_equal(sp_dataset_keys(ds, &keys, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(keys[0], "a");
    assert_string_equal(keys[1], "b");
    expect_rows(ds, "1|x\n2.5|y\n|\n3|z\n[1,{\"k\":\"v\"}]|false");
    sp_dataset_close(ds);
}

static void test_ndjson_numbers_keep_their_text(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("{\"a\":0.1,\"b\":-12345678901234,\"c\":1e300,\"d\":\"\xC3\xA9\"}\n",
                              SP_DATASET_NDJSON);
    expect_rows(ds, "0.1|-12345678901234|1e+300|\xC3\xA9");
    sp_dataset_close(ds);
}

static void test_ndjson_invalid_line_fails_naming_it(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("{\"a\":1}\n{\"a\":2}\n{\"a\":\n{\"a\":4}\n", SP_DATASET_NDJSON);
    char *got = read_all(ds);
    assert_non_null(strstr(got, "1\n2\nERR -2 line 3: invalid JSON: "));
    sp_free(got);
    sp_dataset_close(ds);
}

static void test_ndjson_scalar_row_fails(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("{\"a\":1}\n42\n", SP_DATASET_NDJSON);
    expect_rows(ds, "1\nERR -2 line 2: a row must be a JSON object or array");
    sp_dataset_close(ds);
}

static void test_ndjson_arrays_need_columns_and_the_right_length(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("[1,2]\n", SP_DATASET_NDJSON);
    expect_rows(ds, "ERR -2 line 1: the rows are arrays, so the columns must be given "
                    "(params.columns)");
    sp_dataset_close(ds);

    ds = open_str("[1,2]\n[1,2,3]\n", SP_DATASET_NDJSON);
    const char *sel[] = {"x", "y"};
    sp_err err = {0};
    assert_int_equal(sp_dataset_select(ds, sel, 2, &err), 0);
    expect_rows(ds, "1|2\nERR -2 line 2: the row has 3 values, expected 2 (one per column)");
    sp_dataset_close(ds);
}

static void test_ndjson_line_longer_than_the_limit_fails(void **state)
{
    (void)state;
    char data[8192];
    int n = snprintf(data, sizeof data, "{\"a\":\"x\"}\n{\"a\":\"");
    memset(data + n, 'y', 5000);
    n += 5000;
    n += snprintf(data + n, sizeof data - (size_t)n, "\"}\n");
    sp_dataset *ds = open_data(data, (size_t)n, SP_DATASET_NDJSON, 2000);
    expect_rows(ds, "x\nERR -2 line 2: the row is longer than 2000 bytes");
    sp_dataset_close(ds);
}

/* An NDJSON line may take max_row bytes, its line end (LF, CRLF or none at the end of
 * the file) not counted; an element of a JSON array max_row bytes. One byte more fails. */
static void test_ndjson_line_and_array_element_at_the_limit_pass_one_byte_more_fails(void **state)
{
    (void)state;
    const size_t max = 2000;
    const char *ends[] = {"\"}\n", "\"}\r\n", "\"}", "\"}\n{\"a\":1}\n"};
    for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++) {
        /* {"a":" is 6 bytes, "} 2 */
        expect_one_row(SP_DATASET_NDJSON, "{\"a\":\"", max - 9, ends[i], max, "ok");
        expect_one_row(SP_DATASET_NDJSON, "{\"a\":\"", max - 8, ends[i], max, "ok");
        expect_one_row(SP_DATASET_NDJSON, "{\"a\":\"", max - 7, ends[i], max,
                       "line 1: the row is longer than 2000 bytes");
    }
    expect_one_row(SP_DATASET_JSON_ARRAY, "[{\"a\":\"", max - 8, "\"}]", max, "ok");
    expect_one_row(SP_DATASET_JSON_ARRAY, "[{\"a\":\"", max - 7, "\"}]", max,
                   "line 1: the row is longer than 2000 bytes");
    expect_one_row(SP_DATASET_JSON_ARRAY, "[{\"a\":\"", max - 8, "\"},\n{\"a\":1}]", max, "ok");
    /* blanks before the ',' or ']' are not the element's, however many */
    expect_one_row(SP_DATASET_JSON_ARRAY, "[\n  {\"a\":\"", max - 8, "\"}\n]\n", max, "ok");
    expect_one_row(SP_DATASET_JSON_ARRAY, "[\n  {\"a\":\"", max - 7, "\"}\n]\n", max,
                   "line 2: the row is longer than 2000 bytes");
    /* "} then 3 * max blanks before the ',': the element is still max bytes */
    char *tail = malloc(3 * max + 16);
    assert_non_null(tail);
    memcpy(tail, "\"}", 2);
    memset(tail + 2, ' ', 3 * max);
    strcpy(tail + 2 + 3 * max, ",\t{}]");
    expect_one_row(SP_DATASET_JSON_ARRAY, "[{\"a\":\"", max - 8, tail, max, "ok");
    /* blanks inside an element are its own: "x" then 3 * max blanks, then } */
    tail[1] = ' ';
    strcpy(tail + 2 + 3 * max, "}]");
    expect_one_row(SP_DATASET_JSON_ARRAY, "[{\"a\":\"", 1, tail, max,
                   "line 1: the row is longer than 2000 bytes");
    free(tail);
}

/* A row within the limit whose cell text grows the most (reals inside a JSON value are
 * written with 17 digits: "0.1," becomes "0.10000000000000001,") is read, not refused
 * as too long. */
static void test_a_row_at_the_limit_whose_text_grows_fivefold_is_read(void **state)
{
    (void)state;
    const size_t max = 64 * 1024; /* large enough that 4 times it is not enough */
    sp_buf line;
    sp_buf_init(&line, 2 * max);
    assert_int_equal(sp_buf_adds(&line, "{\"a\":[0.1"), 0);
    while (line.len + 4 + 2 <= max)
        assert_int_equal(sp_buf_adds(&line, ",0.1"), 0);
    while (line.len + 2 < max)
        assert_int_equal(sp_buf_adds(&line, " "), 0);
    assert_int_equal(sp_buf_adds(&line, "]}"), 0);
    assert_int_equal(line.len, max);
    sp_buf_addc(&line, '\n');
    for (int fmt = 0; fmt < 2; fmt++) {
        sp_dataset *ds;
        if (fmt == 0) {
            ds = open_data(line.data, line.len, SP_DATASET_NDJSON, max);
        } else {
            line.data[line.len - 1] = ']';
            char *arr = malloc(line.len + 1);
            assert_non_null(arr);
            arr[0] = '[';
            memcpy(arr + 1, line.data, line.len);
            ds = open_data(arr, line.len + 1, SP_DATASET_JSON_ARRAY, max);
            free(arr);
        }
        sp_dataset_row row;
        sp_err err = {0};
        int rc = sp_dataset_next(ds, &row, &err);
        if (rc != 1)
            fail_msg("format %d: %d %s", fmt, rc, err.msg);
        assert_true(row.len[0] > 4 * max + 4096);
        assert_int_equal(sp_dataset_next(ds, &row, &err), 0);
        sp_dataset_close(ds);
    }
    sp_buf_free(&line);
}

static void test_json_array_splits_elements_across_lines(void **state)
{
    (void)state;
    sp_dataset *ds = open_str("  [\n"
                              "  {\"a\": \"x,]}\\\"[\", \"b\": [1, 2]},\n"
                              "  {\"a\": \"two\",\n"
                              "   \"b\": {\"c\": \"]\"}},\n"
                              "  [\"arr\", 3]\n"
                              "]\n  \n",
                              SP_DATASET_JSON_ARRAY);
    const char *sel[] = {"a", "b"};
    sp_err err = {0};
    assert_int_equal(sp_dataset_select(ds, sel, 2, &err), 0);
    sp_dataset_row row;
    assert_int_equal(sp_dataset_next(ds, &row, &err), 1);
    assert_string_equal(row.cell[0], "x,]}\"[");
    assert_string_equal(row.cell[1], "[1,2]");
    assert_int_equal(row.line, 2);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 1);
    assert_string_equal(row.cell[1], "{\"c\":\"]\"}");
    assert_int_equal(row.line, 3);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 1);
    assert_string_equal(row.cell[0], "arr");
    assert_int_equal(row.line, 5);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 0);
    assert_int_equal(sp_dataset_next(ds, &row, &err), 0);
    sp_dataset_close(ds);
}

static void test_json_array_errors_name_the_line(void **state)
{
    (void)state;
    struct {
        const char *data, *want;
    } cases[] = {
        {"[]", ""},
        {" [ ] ", ""},
        {"{\"a\":1}", "ERR -2 line 1: expected a JSON array of rows ('[')"},
        {"", "ERR -2 line 1: expected a JSON array of rows, found the end of the file"},
        {"[{\"a\":1},\n{\"a\":2},\n]", "1\n2\nERR -2 line 3: a ',' before the closing ']'"},
        {"[{\"a\":1}\n] x", "1\nERR -2 line 2: text after the end of the JSON array"},
        {"[{\"a\":1},\n{\"a\":2}", "1\nERR -2 line 2: the JSON array is not closed "
                                   "(unexpected end of file)"},
        {"[{\"a\":1},\n\n{\"a\":\n tru}]", "1\nERR -2 line 4: invalid JSON: "},
        {"[{\"a\":1},,{\"a\":2}]", "1\nERR -2 line 1: an empty element in the JSON array"},
        {"[{\"a\":1}, 7]", "1\nERR -2 line 1: a row must be a JSON object or array"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_dataset *ds = open_str(cases[i].data, SP_DATASET_JSON_ARRAY);
        char *got = read_all(ds);
        if (strncmp(got, cases[i].want, strlen(cases[i].want)) != 0 ||
            (strstr(cases[i].want, "invalid JSON") == NULL && strcmp(got, cases[i].want) != 0))
            fail_msg("case %zu: got '%s', expected '%s'", i, got, cases[i].want);
        sp_free(got);
        sp_dataset_close(ds);
    }
}

static void test_rewind_reads_the_same_rows_again(void **state)
{
    (void)state;
    const char *data[] = {"a,b\n1,2\n3,4\n", "{\"a\":1,\"b\":2}\n{\"a\":3,\"b\":4}\n",
                          "[{\"a\":1,\"b\":2},{\"a\":3,\"b\":4}]"};
    sp_dataset_format fmts[] = {SP_DATASET_CSV, SP_DATASET_NDJSON, SP_DATASET_JSON_ARRAY};
    for (int i = 0; i < 3; i++) {
        sp_dataset *ds = open_str(data[i], fmts[i]);
        const char *const *keys;
        size_t n;
        sp_err err = {0};
        assert_int_equal(sp_dataset_keys(ds, &keys, &n, &err), 0);
        assert_int_equal(n, 2);
        expect_rows(ds, "1|2\n3|4");
        assert_int_equal(sp_dataset_rewind(ds, &err), 0);
        expect_rows(ds, "1|2\n3|4");
        assert_int_equal(sp_dataset_offset(ds), sp_dataset_size(ds));
        sp_dataset_close(ds);
    }
}

/* Allocation accounting through sp_alloc's hooks (the reader's own buffers). */
static size_t sp__cur, sp__peak;
static void *count_malloc(size_t n)
{
    void *p = malloc(n);
    if (p) {
        sp__cur += malloc_usable_size(p);
        if (sp__cur > sp__peak)
            sp__peak = sp__cur;
    }
    return p;
}
static void *count_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q) {
        sp__cur += malloc_usable_size(q) - old;
        if (sp__cur > sp__peak)
            sp__peak = sp__cur;
    }
    return q;
}
static void count_free(void *p)
{
    if (p)
        sp__cur -= malloc_usable_size(p);
    free(p);
}

static void test_memory_stays_bounded_on_a_large_file(void **state)
{
    (void)state;
    /* 200,000 rows (about 12 MB) of CSV and NDJSON; the reader must not hold them. */
    for (int f = 0; f < 2; f++) {
        char path[256];
        snprintf(path, sizeof path, "%s/big%d", sp__dir, f);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        if (f == 0)
            fprintf(fp, "id,name,amount,note\n");
        for (int i = 0; i < 200000; i++) {
            if (f == 0)
                fprintf(fp, "%d,\"Name, %d\",%d.%02d,some text for row %d\n", i, i, i, i % 100, i);
            else
                fprintf(fp, "{\"id\":%d,\"name\":\"Name %d\",\"amount\":%d.5,\"note\":\"row %d\"}\n",
                        i, i, i, i);
        }
        fclose(fp);
        sp_alloc_hooks h = {count_malloc, count_realloc, count_free};
        sp__cur = sp__peak = 0;
        sp_alloc_set_hooks(&h);
        sp_dataset_opts o = {.format = f == 0 ? SP_DATASET_CSV : SP_DATASET_NDJSON};
        sp_dataset *ds = NULL;
        sp_err err = {0};
        assert_int_equal(sp_dataset_open(path, &o, &ds, &err), 0);
        sp_dataset_row row;
        int rc;
        int64_t rows = 0;
        while ((rc = sp_dataset_next(ds, &row, &err)) == 1)
            rows++;
        assert_int_equal(rc, 0);
        assert_int_equal(rows, 200000);
        assert_int_equal(row.index, 199999);
        sp_dataset_close(ds);
        sp_alloc_set_hooks(NULL);
        unlink(path);
        if (sp__peak > 256 * 1024)
            fail_msg("the reader held %zu bytes at its peak", sp__peak);
        assert_int_equal(sp__cur, 0);
    }
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(sp__dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(sp__dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_reads_rfc4180_quoting),
        cmocka_unit_test(test_csv_handles_crlf_bom_blank_lines_and_no_final_newline),
        cmocka_unit_test(test_csv_keeps_spaces_inside_fields),
        cmocka_unit_test(test_csv_repairs_invalid_utf8),
        cmocka_unit_test(test_csv_header_gives_the_keys_and_select_reorders),
        cmocka_unit_test(test_csv_select_names_a_missing_column),
        cmocka_unit_test(test_csv_bad_quoting_fails_naming_the_line),
        cmocka_unit_test(test_csv_wrong_field_count_fails_naming_the_row_line),
        cmocka_unit_test(test_csv_unclosed_quote_fails_at_the_end),
        cmocka_unit_test(test_csv_counts_lines_inside_quoted_fields),
        cmocka_unit_test(test_csv_row_longer_than_the_limit_fails),
        cmocka_unit_test(test_csv_record_at_the_limit_passes_one_byte_more_fails),
        cmocka_unit_test(test_csv_empty_file_has_no_keys_and_no_rows),
        cmocka_unit_test(test_ndjson_reads_objects_and_arrays),
        cmocka_unit_test(test_ndjson_numbers_keep_their_text),
        cmocka_unit_test(test_ndjson_invalid_line_fails_naming_it),
        cmocka_unit_test(test_ndjson_scalar_row_fails),
        cmocka_unit_test(test_ndjson_arrays_need_columns_and_the_right_length),
        cmocka_unit_test(test_ndjson_line_longer_than_the_limit_fails),
        cmocka_unit_test(test_ndjson_line_and_array_element_at_the_limit_pass_one_byte_more_fails),
        cmocka_unit_test(test_a_row_at_the_limit_whose_text_grows_fivefold_is_read),
        cmocka_unit_test(test_json_array_splits_elements_across_lines),
        cmocka_unit_test(test_json_array_errors_name_the_line),
        cmocka_unit_test(test_rewind_reads_the_same_rows_again),
        cmocka_unit_test(test_memory_stays_bounded_on_a_large_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

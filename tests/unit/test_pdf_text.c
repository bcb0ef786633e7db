/* test_pdf_text.c - UTF-8 repair and the number/date cell formats of pdf.export. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "spool/err.h"
#include "spool/utf8.h"
#include "text.h"

/* Format s as a number and return the text ("<EINVAL>" when it is not a number). */
static const char *num(const char *s, int decimals, bool thousands)
{
    static char out[512];
    sp_buf b;
    sp_buf_init(&b, 4096);
    int rc = sp_text_format_number(s, strlen(s), decimals, thousands, &b);
    if (rc == SP_EINVAL) {
        assert_int_equal(b.len, 0);
        snprintf(out, sizeof out, "<EINVAL>");
    } else {
        assert_int_equal(rc, 0);
        snprintf(out, sizeof out, "%s", sp_buf_cstr(&b));
    }
    sp_buf_free(&b);
    return out;
}

static const char *date(const char *s)
{
    static char out[64];
    sp_buf b;
    sp_buf_init(&b, 64);
    int rc = sp_text_format_date(s, strlen(s), &b);
    snprintf(out, sizeof out, "%s", rc == 0 ? sp_buf_cstr(&b) : "<EINVAL>");
    sp_buf_free(&b);
    return out;
}

static void test_number_rounds_half_away_from_zero_on_decimal_digits(void **state)
{
    (void)state;
    assert_string_equal(num("2.675", 2, true), "2.68"); /* 2.67 with binary doubles */
    assert_string_equal(num("-2.675", 2, true), "-2.68");
    assert_string_equal(num("0.5", 0, true), "1");
    assert_string_equal(num("-0.5", 0, true), "-1");
    assert_string_equal(num("0.05", 1, true), "0.1");
    assert_string_equal(num("9.995", 2, true), "10.00");
    assert_string_equal(num("999999.5", 0, true), "1,000,000");
    assert_string_equal(num("0.999", 2, false), "1.00");
    assert_string_equal(num("1.2345", 10, false), "1.2345000000");
}

static void test_number_groups_thousands(void **state)
{
    (void)state;
    assert_string_equal(num("1234567.891", 2, true), "1,234,567.89");
    assert_string_equal(num("1234567.891", 2, false), "1234567.89");
    assert_string_equal(num("123", 0, true), "123");
    assert_string_equal(num("1234", 0, true), "1,234");
    assert_string_equal(num("-1234", 0, true), "-1,234");
    assert_string_equal(num("100000", -1, true), "100,000");
    assert_string_equal(num("12345678901234567890123", 0, true),
                        "12,345,678,901,234,567,890,123");
}

static void test_number_keeps_written_digits_without_decimals(void **state)
{
    (void)state;
    assert_string_equal(num("1.50", -1, true), "1.50");
    assert_string_equal(num("0001.5", -1, true), "1.5");
    assert_string_equal(num("+42", -1, true), "42");
    assert_string_equal(num(".5", -1, true), "0.5");
    assert_string_equal(num("5.", -1, true), "5");
    assert_string_equal(num("1.5e3", -1, true), "1,500");
    assert_string_equal(num("1.5E-3", -1, true), "0.0015");
    assert_string_equal(num("1e+20", 0, true), "100,000,000,000,000,000,000");
    assert_string_equal(num("  7  ", 1, true), "7.0");
}

static void test_number_negative_zero_loses_its_sign(void **state)
{
    (void)state;
    assert_string_equal(num("-0.001", 2, true), "0.00");
    assert_string_equal(num("-0", -1, true), "0");
    assert_string_equal(num("0", 2, true), "0.00");
}

static void test_number_accepts_grouped_input_only_when_well_grouped(void **state)
{
    (void)state;
    assert_string_equal(num("1,234.5", 1, true), "1,234.5");
    assert_string_equal(num("1,234,567", -1, false), "1234567");
    assert_string_equal(num("12,34", -1, true), "<EINVAL>");
    assert_string_equal(num("1234,567", -1, true), "<EINVAL>");
    assert_string_equal(num(",123", -1, true), "<EINVAL>");
    assert_string_equal(num("1,,234", -1, true), "<EINVAL>");
}

static void test_number_rejects_what_is_not_a_number(void **state)
{
    (void)state;
    const char *bad[] = {"", "-", "+", ".", "abc", "1.2.3", "1e", "1e+", "12abc", "0x10",
                         "1e999", "NaN", "inf", "1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *got = num(bad[i], 2, true);
        if (strcmp(got, "<EINVAL>") != 0)
            fail_msg("'%s' formatted as '%s', expected EINVAL", bad[i], got);
    }
}

static void test_date_takes_the_calendar_date_of_iso_8601(void **state)
{
    (void)state;
    assert_string_equal(date("2024-03-05"), "2024-03-05");
    assert_string_equal(date("2024-03-05T10:20:30Z"), "2024-03-05");
    assert_string_equal(date("2024-03-05T23:59:59+14:00"), "2024-03-05");
    assert_string_equal(date("2024-03-05 10:20"), "2024-03-05");
    assert_string_equal(date("20240305"), "2024-03-05");
    assert_string_equal(date("20240305T1020"), "2024-03-05");
    assert_string_equal(date("2024-02-29"), "2024-02-29");
    assert_string_equal(date("2000-02-29"), "2000-02-29");
}

static void test_date_rejects_impossible_dates(void **state)
{
    (void)state;
    const char *bad[] = {"2023-02-29", "1900-02-29", "2024-13-01", "2024-00-10", "2024-04-31",
                         "2024-3-5", "05/03/2024", "2024-03-05x", "", "tomorrow", "2024030"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (strcmp(date(bad[i]), "<EINVAL>") != 0)
            fail_msg("'%s' accepted as a date: %s", bad[i], date(bad[i]));
}

static void test_utf8_repair_replaces_each_bad_byte(void **state)
{
    (void)state;
    sp_buf b;
    sp_buf_init(&b, 1024);
    const char in[] = "ok \xC3\xA9 \xFF\xFE \xE2\x82 \xED\xA0\x80 \xF0\x9F\x98\x80 \xC0\xAF";
    assert_false(sp_utf8_valid(in, sizeof in - 1));
    assert_int_equal(sp_utf8_add_repaired(&b, in, sizeof in - 1), 0);
    assert_true(sp_utf8_valid(b.data, b.len));
    assert_string_equal(sp_buf_cstr(&b), "ok \xC3\xA9 \xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD"
                                         "\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                                         "\xF0\x9F\x98\x80 \xEF\xBF\xBD\xEF\xBF\xBD");
    sp_buf_free(&b);
}

/* What a stream of the pieces `parts` (split at '|') gives with its BOM skipped. */
static void bom_case(const char *parts, const char *want)
{
    sp_bom b = {0};
    sp_buf out;
    sp_buf_init(&out, 1 << 20);
    char copy[64];
    snprintf(copy, sizeof copy, "%s", parts);
    for (char *save = NULL, *p = strtok_r(copy, "|", &save); p; p = strtok_r(NULL, "|", &save)) {
        size_t held, skip = sp_bom_skip(&b, p, strlen(p), &held);
        assert_true(skip <= strlen(p));
        assert_int_equal(sp_buf_add(&out, sp_bom_bytes, held), 0);
        assert_int_equal(sp_buf_add(&out, p + skip, strlen(p) - skip), 0);
    }
    assert_int_equal(sp_buf_add(&out, sp_bom_bytes, sp_bom_end(&b)), 0);
    assert_string_equal(sp_buf_cstr(&out), want);
    sp_buf_free(&out);
}

static void test_bom_is_skipped_once_in_any_split(void **state)
{
    (void)state;
    bom_case("\xEF\xBB\xBF" "a,b", "a,b");
    bom_case("\xEF|\xBB|\xBF|a,b", "a,b");
    bom_case("\xEF\xBB|\xBF" "a|,b", "a,b");
    bom_case("\xEF\xBB\xBF|\xEF\xBB\xBF" "a", "\xEF\xBB\xBF" "a"); /* once only */
    bom_case("\xEF\xBB\xBF", "");
    bom_case("\xEF|\xBB", "\xEF\xBB");        /* the start of one, then the end */
    bom_case("\xEF|\xBB" "x", "\xEF\xBB" "x"); /* ...then something else */
    bom_case("\xEF" "x|\xBB", "\xEF" "x\xBB");
    bom_case("\xEF\xBB" "x", "\xEF\xBB" "x");
    bom_case("a\xEF\xBB\xBF", "a\xEF\xBB\xBF");
    bom_case("", "");
}

static void test_utf8_decode_and_encode_round_trip(void **state)
{
    (void)state;
    uint32_t cps[] = {0x41, 0xE9, 0x416, 0x3A9, 0x65E5, 0x4DC0, 0xFFFD, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        sp_buf b;
        sp_buf_init(&b, 16);
        assert_int_equal(sp_utf8_add(&b, cps[i]), 0);
        uint32_t cp = 0;
        size_t n = sp_utf8_decode((const unsigned char *)b.data, b.len, &cp);
        assert_int_equal(n, b.len);
        assert_int_equal(cp, cps[i]);
        sp_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number_rounds_half_away_from_zero_on_decimal_digits),
        cmocka_unit_test(test_number_groups_thousands),
        cmocka_unit_test(test_number_keeps_written_digits_without_decimals),
        cmocka_unit_test(test_number_negative_zero_loses_its_sign),
        cmocka_unit_test(test_number_accepts_grouped_input_only_when_well_grouped),
        cmocka_unit_test(test_number_rejects_what_is_not_a_number),
        cmocka_unit_test(test_date_takes_the_calendar_date_of_iso_8601),
        cmocka_unit_test(test_date_rejects_impossible_dates),
        cmocka_unit_test(test_utf8_repair_replaces_each_bad_byte),
        cmocka_unit_test(test_utf8_decode_and_encode_round_trip),
        cmocka_unit_test(test_bom_is_skipped_once_in_any_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

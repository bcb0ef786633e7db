/* test_api_cron.c - cron expressions and their next times (api/cron.c) against the
 * system's tz database: daylight-saving changes in two hemispheres, leap days, month
 * ends, and every kind of bad expression. The clock is the argument: no waiting. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"

/* ms since the epoch of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return (int64_t)timegm(&tm) * 1000;
}

static api_tz *zone(const char *name)
{
    sp_err err;
    api_tz *tz = api_tz_open(name, &err);
    if (tz == NULL)
        fail_msg("api_tz_open(%s): %s", name, err.msg);
    return tz;
}

/* The n fire times of expr in zone after `after`, each as "YYYY-MM-DDTHH:MMZ" (UTC). */
static void fires(const char *expr, const char *zname, int64_t after, int n, char out[][24])
{
    api_cron c;
    sp_err err;
    if (api_cron_parse(expr, &c, &err) != 0)
        fail_msg("parse '%s': %s", expr, err.msg);
    api_tz *tz = zone(zname);
    for (int i = 0; i < n; i++) {
        int64_t next;
        if (api_cron_next(&c, tz, after, &next, &err) != 0)
            fail_msg("next '%s': %s", expr, err.msg);
        assert_true(next > after);
        time_t s = (time_t)(next / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(out[i], 24, "%Y-%m-%dT%H:%MZ", &tm);
        after = next;
    }
    api_tz_free(tz);
}

#define EXPECT(expr, zname, after, ...)                                             \
    do {                                                                            \
        const char *want[] = {__VA_ARGS__};                                         \
        enum { N = sizeof want / sizeof *want };                                    \
        char got[N][24];                                                            \
        fires(expr, zname, after, N, got);                                          \
        for (int i_ = 0; i_ < N; i_++)                                              \
            assert_string_equal(got[i_], want[i_]);                                 \
    } while (0)

static void test_berlin_spring_forward_runs_a_skipped_time_once_after_the_gap(void **state)
{
    (void)state;
    /* 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC). 02:30 does not exist: it runs
     * once, at 03:00 CEST; the 03:00 wall time that day is then that same instant. */
    EXPECT("30 2 * * *", "Europe/Berlin", utc(2026, 3, 27, 12, 0), "2026-03-28T01:30Z",
           "2026-03-29T01:00Z", "2026-03-30T00:30Z");
    /* Every 15 minutes: 01:45 CET, then the whole skipped hour is one run at 03:00 CEST. */
    EXPECT("*/15 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0, 40), "2026-03-29T00:45Z",
           "2026-03-29T01:00Z", "2026-03-29T01:15Z");
    /* 03:00 every day: one hour fewer in UTC after the change. */
    EXPECT("0 3 * * *", "Europe/Berlin", utc(2026, 3, 28, 0, 0), "2026-03-28T02:00Z",
           "2026-03-29T01:00Z", "2026-03-30T01:00Z");
}

static void test_berlin_fall_back_runs_a_repeated_time_once(void **state)
{
    (void)state;
    /* 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC). 02:30 happens twice; it runs at
     * the first (CEST, 00:30 UTC) only. */
    EXPECT("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24, 12, 0), "2026-10-25T00:30Z",
           "2026-10-26T01:30Z");
    /* Every 30 minutes through the repeated hour: 02:00 and 02:30 once each. */
    EXPECT("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23, 10), "2026-10-24T23:30Z",
           "2026-10-25T00:00Z", "2026-10-25T00:30Z", "2026-10-25T02:00Z");
    /* Asked from inside the second 02:xx (02:10 CET = 01:10 UTC): the next is 03:00 CET. */
    EXPECT("*/30 * * * *", "Europe/Berlin", utc(2026, 10, 25, 1, 10), "2026-10-25T02:00Z");
}

static void test_new_york_both_changes(void **state)
{
    (void)state;
    /* 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC); 2026-11-01 02:00 EDT -> 01:00 EST. */
    /* 02:30 on the 8th does not exist: 03:00 EDT; then 02:30 EDT. */
    EXPECT("30 2 * * *", "America/New_York", utc(2026, 3, 7, 12, 0), "2026-03-08T07:00Z",
           "2026-03-09T06:30Z");
    EXPECT("30 1 * * *", "America/New_York", utc(2026, 10, 31, 12, 0), "2026-11-01T05:30Z",
           "2026-11-02T06:30Z");
}

static void test_southern_hemisphere_changes_the_other_way(void **state)
{
    (void)state;
    /* Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST; 2026-10-04 02:00 AEST -> 03:00 AEDT. */
    EXPECT("30 2 * * *", "Australia/Sydney", utc(2026, 4, 4, 0, 0), "2026-04-04T15:30Z",
           "2026-04-05T16:30Z");
    EXPECT("30 2 * * *", "Australia/Sydney", utc(2026, 10, 3, 0, 0), "2026-10-03T16:00Z",
           "2026-10-04T15:30Z");
}

static void test_leap_days_and_month_ends(void **state)
{
    (void)state;
    EXPECT("0 12 29 2 *", "UTC", utc(2026, 1, 1, 0, 0), "2028-02-29T12:00Z", "2032-02-29T12:00Z");
    EXPECT("0 0 31 * *", "UTC", utc(2026, 1, 31, 0, 0), "2026-03-31T00:00Z", "2026-05-31T00:00Z",
           "2026-07-31T00:00Z", "2026-08-31T00:00Z");
    EXPECT("0 0 30 * *", "UTC", utc(2027, 1, 30, 0, 0), "2027-03-30T00:00Z");
    EXPECT("@monthly", "Europe/Berlin", utc(2026, 12, 15, 0, 0), "2026-12-31T23:00Z",
           "2027-01-31T23:00Z");
    EXPECT("59 23 31 12 *", "UTC", utc(2026, 12, 31, 23, 59), "2027-12-31T23:59Z");
}

static void test_fields_names_steps_and_day_rules(void **state)
{
    (void)state;
    /* 2026-12-07 is a Monday. */
    EXPECT("0 9 * * MON-FRI", "UTC", utc(2026, 12, 11, 10, 0), "2026-12-14T09:00Z");
    EXPECT("0 9 * * 7", "UTC", utc(2026, 12, 7, 0, 0), "2026-12-13T09:00Z");
    EXPECT("0 9 * * sun", "UTC", utc(2026, 12, 7, 0, 0), "2026-12-13T09:00Z");
    /* Both day fields restricted: either matches (the 15th, or a Friday). */
    EXPECT("0 0 15 * 5", "UTC", utc(2026, 12, 7, 0, 0), "2026-12-11T00:00Z", "2026-12-15T00:00Z",
           "2026-12-18T00:00Z");
    EXPECT("10-20/5 1,3 * jan,Mar *", "UTC", utc(2026, 12, 7, 0, 0), "2027-01-01T01:10Z",
           "2027-01-01T01:15Z", "2027-01-01T01:20Z", "2027-01-01T03:10Z");
    EXPECT("5/20 * * * *", "UTC", utc(2026, 12, 7, 0, 0), "2026-12-07T00:05Z", "2026-12-07T00:25Z",
           "2026-12-07T00:45Z", "2026-12-07T01:05Z");
    EXPECT("@hourly", "Asia/Kolkata", utc(2026, 12, 7, 0, 10), "2026-12-07T00:30Z");
    EXPECT("@weekly", "UTC", utc(2026, 12, 7, 0, 0), "2026-12-13T00:00Z");
    EXPECT("@yearly", "UTC", utc(2026, 12, 7, 0, 0), "2027-01-01T00:00Z");
}

static void test_intervals_tick_on_multiples_since_the_epoch(void **state)
{
    (void)state;
    api_cron c;
    sp_err err;
    assert_int_equal(api_cron_parse("@every 30s", &c, &err), 0);
    assert_int_equal(c.every_ms, 30000);
    api_tz *tz = zone("Europe/Berlin");
    int64_t next;
    assert_int_equal(api_cron_next(&c, tz, 1765112345678, &next, &err), 0);
    assert_int_equal(next, 1765112370000);
    assert_int_equal(api_cron_next(&c, tz, 1765112370000, &next, &err), 0);
    assert_int_equal(next, 1765112400000);
    assert_int_equal(api_cron_parse("@every 1h30m", &c, &err), 0);
    assert_int_equal(c.every_ms, 5400000);
    assert_int_equal(api_cron_parse("@every 366d", &c, &err), 0);
    assert_int_equal(api_cron_parse("@every 1s", &c, &err), 0);
    api_tz_free(tz);
}

static void test_bad_expressions_and_zones_are_refused_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *expr, *says;
    } bad[] = {
        {"", "empty"},
        {"* * * *", "5 fields"},
        {"* * * * * *", "5 fields"},
        {"60 * * * *", "minute"},
        {"* 24 * * *", "hour"},
        {"* * 0 * *", "day of month"},
        {"* * 32 * *", "day of month"},
        {"* * * 13 *", "month"},
        {"* * * * 8", "day of week"},
        {"5-1 * * * *", "backwards"},
        {"*/0 * * * *", "step"},
        {"*/61 * * * *", "step"},
        {"1,,2 * * * *", "minute"},
        {"1, * * * *", "minute"},
        {"- * * * *", "minute"},
        {"1- * * * *", "range"},
        {"* * * foo *", "month"},
        {"* * * * mondays", "day of week"},
        {"0 0 30 2 *", "never"},
        {"0 0 31 4,6,9,11 *", "never"},
        {"@every", "unknown"},
        {"@every ", "duration"},
        {"@every 0s", "shorter"},
        {"@every 10", "unit"},
        {"@every 367d", "366 days"},
        {"@every 99999999999999999999s", "366 days"},
        {"@every 1x", "unit"},
        {"@sometimes", "unknown"},
        {"99999999999 * * * *", "minute"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        api_cron c;
        sp_err err;
        memset(&c, 0x5a, sizeof c);
        api_cron before = c;
        int rc = api_cron_parse(bad[i].expr, &c, &err);
        if (rc != SP_EINVAL)
            fail_msg("'%s' parsed (rc %d)", bad[i].expr, rc);
        if (strstr(err.msg, bad[i].says) == NULL)
            fail_msg("'%s': '%s' does not say '%s'", bad[i].expr, err.msg, bad[i].says);
        assert_memory_equal(&c, &before, sizeof c);
    }
    char longest[API_CRON_MAX + 2];
    memset(longest, ' ', sizeof longest);
    memcpy(longest, "* * * * *", 9);
    longest[API_CRON_MAX] = '\0';
    api_cron c;
    sp_err err;
    assert_int_equal(api_cron_parse(longest, &c, &err), 0); /* at the limit */
    longest[API_CRON_MAX] = ' ';
    longest[API_CRON_MAX + 1] = '\0';
    assert_int_equal(api_cron_parse(longest, &c, &err), SP_EINVAL);
    /* 29 February alone fires (leap years); the 31st of 30-day months with a weekday
     * too (the weekday counts). */
    assert_int_equal(api_cron_parse("0 0 29 2 *", &c, &err), 0);
    assert_int_equal(api_cron_parse("0 0 31 4 1", &c, &err), 0);
    /* Only IANA names: not this host's localtime, files of the zoneinfo directory that
     * are not zones, the Factory zone, POSIX TZ rules or offsets (glib takes those). */
    const char *zones[] = {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "Europe/",
                           "UTC\n", "Europe/Berlin/../Paris", "localtime", "posixrules",
                           "right/UTC", "posix/Europe/Berlin", "Factory", "XYZ-3", "+01",
                           "-0530", "CET-1CEST,M3.5.0,M10.5.0/3", "utc", "europe/berlin"};
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
        assert_null(api_tz_open(zones[i], &err));
        assert_int_equal(err.code, SP_EINVAL);
    }
    const char *iana[] = {"UTC", "Etc/UTC", "GMT", "Etc/GMT-14", "Europe/Berlin", "US/Eastern",
                          "America/Argentina/Buenos_Aires", "EST5EDT", "Asia/Kolkata"};
    for (size_t i = 0; i < sizeof iana / sizeof *iana; i++)
        api_tz_free(zone(iana[i]));
    api_tz_free(NULL);
    api_tz *tz = zone("UTC");
    assert_int_equal(api_cron_parse("* * * * *", &c, &err), 0);
    int64_t next;
    assert_int_equal(api_cron_next(&c, tz, -1, &next, &err), SP_EINVAL);
    assert_int_equal(api_cron_next(&c, tz, 300000000000000, &next, &err), SP_EINVAL);
    api_tz_free(tz);
}

static void test_due_ticks_fire_recent_ones_and_pass_over_or_run_once_the_missed(void **state)
{
    (void)state;
    api_cron c;
    sp_err err;
    api_tz *tz = zone("UTC");
    int64_t ticks[8], next;
    size_t n;
    /* Every second: last tick 10:00:00, now 10:00:03.5: three ticks due, next 10:00:04. */
    assert_int_equal(api_cron_parse("@every 1s", &c, &err), 0);
    int64_t t0 = utc(2026, 12, 7, 10, 0);
    assert_int_equal(api_cron_due(&c, tz, t0, t0 + 3500, 60000, false, ticks, 8, &n, &next, NULL, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(ticks[0], t0 + 1000);
    assert_int_equal(ticks[2], t0 + 3000);
    assert_int_equal(next, t0 + 4000);
    /* Nothing due yet. */
    assert_int_equal(api_cron_due(&c, tz, t0, t0 + 999, 60000, false, ticks, 8, &n, &next, NULL, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(next, t0 + 1000);
    /* More due than max: the rest wait. */
    assert_int_equal(api_cron_due(&c, tz, t0, t0 + 20000, 60000, false, ticks, 8, &n, &next, NULL, &err), 0);
    assert_int_equal(n, 8);
    assert_int_equal(next, t0 + 9000);
    /* Down for a day: with skip only the ticks within the grace (10 s) fire; with run_once
     * the latest missed one fires first. */
    int64_t now = t0 + 86400000 + 500, passed = -1;
    assert_int_equal(api_cron_due(&c, tz, t0, now, 3000, false, ticks, 8, &n, &next, &passed, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(passed, 86397); /* 10:00:01 to the edge, 3 s before now */
    assert_int_equal(ticks[0], now - 500 - 2000);
    assert_int_equal(next, now + 500);
    assert_int_equal(api_cron_due(&c, tz, t0, now, 3000, true, ticks, 8, &n, &next, &passed, &err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(passed, 86396); /* the one run_once fires is not passed over */
    assert_int_equal(ticks[0], now - 500 - 3000);
    assert_int_equal(ticks[1], now - 500 - 2000);
    /* A daily export at 03:00 Berlin, down from Monday to Thursday noon: skip fires nothing
     * and waits for Friday 03:00; run_once fires Thursday's 03:00 once. */
    api_tz *berlin = zone("Europe/Berlin");
    assert_int_equal(api_cron_parse("0 3 * * *", &c, &err), 0);
    int64_t mon = utc(2026, 12, 7, 2, 0), thu = utc(2026, 12, 10, 11, 0);
    assert_int_equal(api_cron_due(&c, berlin, mon, thu, 60000, false, ticks, 8, &n, &next, &passed, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(passed, 3); /* Tuesday, Wednesday, Thursday */
    assert_int_equal(next, utc(2026, 12, 11, 2, 0));
    assert_int_equal(api_cron_due(&c, berlin, mon, thu, 60000, true, ticks, 8, &n, &next, &passed, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(passed, 2);
    assert_int_equal(ticks[0], utc(2026, 12, 10, 2, 0));
    /* Within the grace the 03:00 tick fires normally. */
    assert_int_equal(api_cron_due(&c, berlin, utc(2026, 12, 9, 2, 0), utc(2026, 12, 10, 2, 0) + 30000,
                                  60000, false, ticks, 8, &n, &next, &passed, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(passed, 0);
    assert_int_equal(ticks[0], utc(2026, 12, 10, 2, 0));
    api_tz_free(berlin);
    api_tz_free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_berlin_spring_forward_runs_a_skipped_time_once_after_the_gap),
        cmocka_unit_test(test_berlin_fall_back_runs_a_repeated_time_once),
        cmocka_unit_test(test_new_york_both_changes),
        cmocka_unit_test(test_southern_hemisphere_changes_the_other_way),
        cmocka_unit_test(test_leap_days_and_month_ends),
        cmocka_unit_test(test_fields_names_steps_and_day_rules),
        cmocka_unit_test(test_intervals_tick_on_multiples_since_the_epoch),
        cmocka_unit_test(test_bad_expressions_and_zones_are_refused_with_a_reason),
        cmocka_unit_test(test_due_ticks_fire_recent_ones_and_pass_over_or_run_once_the_missed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

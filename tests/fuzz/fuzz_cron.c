/* fuzz_cron.c - schedules: any text is parsed or refused with a reason, and for what
 * parses, the next time in a few zones (daylight-saving ones included) is later than the
 * start, on a whole minute (or a multiple of the interval), and its wall-clock time
 * matches the expression unless it is the end of a skipped hour. */
#include <glib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

static api_tz *zones[3];

static void check(const api_cron *c, const api_tz *tz, GTimeZone *z, int64_t after)
{
    int64_t next;
    sp_err err;
    if (api_cron_next(c, tz, after, &next, &err) != 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    if (next <= after)
        abort();
    if (c->every_ms > 0) {
        if (next % c->every_ms != 0 || next - after > c->every_ms)
            abort();
        return;
    }
    if (next % 60000 != 0)
        abort();
    GDateTime *u = g_date_time_new_from_unix_utc(next / 1000);
    GDateTime *l = g_date_time_to_timezone(u, z);
    int mi = g_date_time_get_minute(l), h = g_date_time_get_hour(l);
    int mo = g_date_time_get_month(l);
    bool matches = (c->minute >> mi & 1) && (c->hour >> h & 1) && (c->month >> mo & 1);
    g_date_time_unref(l);
    g_date_time_unref(u);
    /* A time in a skipped hour fires at the hour's end, whose wall clock differs: then the
     * instant one hour earlier must have had a different offset (a change happened). */
    if (!matches) {
        GDateTime *a = g_date_time_new_from_unix_utc(next / 1000 - 7200);
        GDateTime *b = g_date_time_new_from_unix_utc(next / 1000);
        GDateTime *la = g_date_time_to_timezone(a, z), *lb = g_date_time_to_timezone(b, z);
        bool changed = g_date_time_get_utc_offset(la) != g_date_time_get_utc_offset(lb);
        g_date_time_unref(la);
        g_date_time_unref(lb);
        g_date_time_unref(a);
        g_date_time_unref(b);
        if (!changed)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GTimeZone *gz[3];
    static const char *names[3] = {"UTC", "Europe/Berlin", "Australia/Lord_Howe"};
    if (zones[0] == NULL) {
        for (int i = 0; i < 3; i++) {
            sp_err err;
            zones[i] = api_tz_open(names[i], &err);
            gz[i] = g_time_zone_new_identifier(names[i]);
            if (zones[i] == NULL || gz[i] == NULL)
                abort();
        }
    }
    if (size < 4 || size > API_CRON_MAX + 64)
        return 0;
    /* The first 4 bytes pick the start time (2020-2060), the rest is the expression. */
    uint32_t r;
    memcpy(&r, data, 4);
    int64_t after = 1577836800000 + (int64_t)(r % 1262304000u) * 1000 + r % 1000;
    char expr[API_CRON_MAX + 64];
    memcpy(expr, data + 4, size - 4);
    expr[size - 4] = '\0';
    api_cron c;
    sp_err err;
    if (api_cron_parse(expr, &c, &err) != 0) {
        if (err.code != SP_EINVAL || err.msg[0] == '\0')
            abort();
        return 0;
    }
    for (int i = 0; i < 3; i++)
        check(&c, zones[i], gz[i], after);
    return 0;
}

/* cron.h - when a schedule fires: cron expressions and intervals, and their next time
 * in an IANA time zone read from the system's tz database (/usr/share/zoneinfo, through
 * GLib's GTimeZone: no process-wide TZ, safe from any thread).
 *
 * Expressions: five fields "MINUTE HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK", each '*', a
 * number, a range "a-b", a step "*" "/n", "a-b/n" or "a/n" (from a to the field's end),
 * or a comma list of those; months also JAN-DEC, days of the week SUN-SAT (0 or 7 is
 * Sunday), case-insensitive. As in Vixie cron, when both day fields are restricted a
 * day matches either; when one is '*' only the other counts. Macros: @yearly
 * (@annually), @monthly, @weekly, @daily (@midnight), @hourly. Intervals: "@every D"
 * with D from 1s to 366d written as a sum of whole units: "30s", "5m", "1h30m", "2d".
 *
 * Wall-clock times that do not exist (the hour skipped when clocks go forward) fire once,
 * at the first instant after the gap; times that happen twice (the hour repeated when
 * clocks go back) fire once, the first time (the daylight-saving one). Intervals ignore
 * the zone: "@every 30s" fires at every whole half minute since the Unix epoch, so every
 * process computes the same ticks. */
#ifndef SPOOL_API_CRON_H
#define SPOOL_API_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

#define API_CRON_MAX 256 /* longest expression accepted, in bytes */

typedef struct api_cron {
    uint64_t minute;         /* bit m: minute m (0-59) */
    uint32_t hour;           /* bits 0-23 */
    uint32_t dom;            /* bits 1-31 */
    uint16_t month;          /* bits 1-12 */
    uint8_t dow;             /* bits 0-6, Sunday is 0 */
    bool dom_star, dow_star; /* the field started with '*' */
    int64_t every_ms;        /* > 0: "@every", the fields are unused */
} api_cron;

/* Parse expr into *out. 0, or SP_EINVAL with err naming what is wrong (the field and
 * the value); an expression that can never fire (30 2 *: February 30th) is refused. out
 * is unchanged on error. */
int api_cron_parse(const char *expr, api_cron *out, sp_err *err);

typedef struct api_tz api_tz;

/* A time zone by IANA name ("Europe/Berlin", "UTC"). NULL with SP_EINVAL when the
 * system's tz database does not know it (or the name is malformed), SP_ENOMEM. Free
 * with api_tz_free (accepts NULL). Usable from several threads at once. */
api_tz *api_tz_open(const char *name, sp_err *err);
void api_tz_free(api_tz *tz);

/* The first time the schedule fires strictly after after_ms (ms since the epoch), into
 * *next_ms, on a whole minute (intervals: a multiple of the interval). 0, or SP_EINVAL
 * when after_ms is before 1970 or after 9000, or no time within 10 years matches (not
 * for an expression api_cron_parse took), or SP_ENOMEM. */
int api_cron_next(const api_cron *c, const api_tz *tz, int64_t after_ms, int64_t *next_ms,
                  sp_err *err);

/* Which ticks a schedule fires now. Ticks are the times api_cron_next gives after
 * last_ms (the last tick fired or passed over). A tick no more than grace_ms before now_ms
 * fires; older ones were missed (the service was down): they are passed over, except
 * that with run_missed the latest of them fires once. Into ticks[0..*n) (oldest first, at
 * most max; past max the rest wait for the next call) and *next_ms the first tick not
 * returned; *passed (when not NULL) how many missed ticks were passed over (not the one
 * run_missed fires; an expression behind by more than 600,000 ticks counts that many).
 * 0, or an error of api_cron_next. */
int api_cron_due(const api_cron *c, const api_tz *tz, int64_t last_ms, int64_t now_ms,
                 int64_t grace_ms, bool run_missed, int64_t *ticks, size_t max, size_t *n,
                 int64_t *next_ms, int64_t *passed, sp_err *err);

#endif

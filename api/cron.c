/* cron.c - cron expressions, intervals and their next time in a time zone (see cron.h).
 * Debian packages no C cron parser, so the grammar is parsed here (and fuzzed:
 * tests/fuzz/fuzz_cron.c); every time-zone rule comes from the system's tz database
 * through GLib. */
#include "cron.h"

#include <ctype.h>
#include <glib.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool/alloc.h"

struct api_tz {
    GTimeZone *z;
};

/* ---- parsing ------------------------------------------------------------------------ */

typedef struct api__field {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[i] is the value lo + i, or NULL */
} api__field;

static const char *const api__months[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const api__days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const api__field api__fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, api__months},
    {"day of week", 0, 7, api__days},
};

/* A value of field f at *p (a number or a name); advances *p. -1 when there is none. */
static int api__value(const api__field *f, const char **p)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v <= 1000)
            v = v * 10 + (*s++ - '0');
        if (v > 1000)
            return -1;
        *p = s;
        return (int)v;
    }
    for (int i = 0; f->names && f->names[i]; i++) {
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *p = s + 3;
            return f->lo + i;
        }
    }
    return -1;
}

/* One field's text (NUL-terminated) into a bit set. */
static int api__field_parse(const api__field *f, const char *text, uint64_t *bits, bool *star,
                            sp_err *err)
{
    uint64_t set = 0;
    *star = text[0] == '*';
    const char *p = text;
    for (;;) {
        int lo, hi, step = 1;
        bool ranged = false;
        if (*p == '*') {
            lo = f->lo;
            hi = f->hi;
            ranged = true;
            p++;
        } else {
            lo = api__value(f, &p);
            if (lo < 0)
                return sp_err_set(err, SP_EINVAL, "%s: '%s' is not a number%s", f->what, text,
                                  f->names ? " or a name" : "");
            hi = lo;
            if (*p == '-') {
                p++;
                hi = api__value(f, &p);
                if (hi < 0)
                    return sp_err_set(err, SP_EINVAL, "%s: a range in '%s' has no end", f->what,
                                      text);
                ranged = true;
            }
        }
        if (*p == '/') {
            p++;
            const char *q = p;
            long s = 0;
            while (isdigit((unsigned char)*q) && s <= 1000)
                s = s * 10 + (*q++ - '0');
            if (q == p || s < 1 || s > f->hi)
                return sp_err_set(err, SP_EINVAL, "%s: the step in '%s' must be 1 to %d",
                                  f->what, text, f->hi);
            step = (int)s;
            p = q;
            if (!ranged)
                hi = f->hi; /* "a/n": from a to the end */
        }
        if (lo < f->lo || hi > f->hi || lo > f->hi)
            return sp_err_set(err, SP_EINVAL, "%s: '%s' is outside %d-%d", f->what, text, f->lo,
                              f->hi);
        if (lo > hi)
            return sp_err_set(err, SP_EINVAL, "%s: the range in '%s' runs backwards", f->what,
                              text);
        for (int v = lo; v <= hi; v += step)
            set |= (uint64_t)1 << v;
        if (*p == '\0')
            break;
        if (*p != ',' || p[1] == '\0')
            return sp_err_set(err, SP_EINVAL, "%s: unexpected '%c' in '%s'", f->what, *p, text);
        p++;
    }
    *bits = set;
    return 0;
}

/* "@every D": D as a sum of whole units (d, h, m, s), 1s to 366d. */
static int api__every(const char *d, int64_t *ms, sp_err *err)
{
    int64_t total = 0;
    const char *p = d;
    if (*p == '\0')
        return sp_err_set(err, SP_EINVAL, "@every needs a duration such as 30s, 5m or 1h30m");
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return sp_err_set(err, SP_EINVAL, "@every: '%s' is not a duration such as 30s, 5m "
                                              "or 1h30m", d);
        int64_t n = 0;
        for (; isdigit((unsigned char)*p); p++)
            if (n <= 366LL * 86400)
                n = n * 10 + (*p - '0');
        int64_t unit = *p == 'd' ? 86400 : *p == 'h' ? 3600 : *p == 'm' ? 60 : *p == 's' ? 1 : 0;
        if (unit == 0)
            return sp_err_set(err, SP_EINVAL, "@every: '%s' needs a unit (d, h, m or s) after "
                                              "each number", d);
        p++;
        if (n > 366LL * 86400 || (total += n * unit) > 366LL * 86400)
            return sp_err_set(err, SP_EINVAL, "@every: '%s' is longer than 366 days", d);
    }
    if (total < 1)
        return sp_err_set(err, SP_EINVAL, "@every: '%s' is shorter than a second", d);
    *ms = total * 1000;
    return 0;
}

static bool api__leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int api__mdays(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && api__leap(y) ? 29 : d[m - 1];
}

int api_cron_parse(const char *expr, api_cron *out, sp_err *err)
{
    if (expr == NULL || expr[0] == '\0')
        return sp_err_set(err, SP_EINVAL, "the schedule is empty");
    size_t len = strlen(expr);
    if (len > API_CRON_MAX)
        return sp_err_set(err, SP_EINVAL, "the schedule is longer than %d bytes", API_CRON_MAX);
    static const struct {
        const char *name, *expands;
    } macros[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
                  {"@weekly", "0 0 * * 0"},  {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
                  {"@hourly", "0 * * * *"}};
    api_cron c;
    memset(&c, 0, sizeof c);
    if (expr[0] == '@') {
        if (strncmp(expr, "@every ", 7) == 0) {
            int rc = api__every(expr + 7, &c.every_ms, err);
            if (rc < 0)
                return rc;
            *out = c;
            return 0;
        }
        for (size_t i = 0; i < sizeof macros / sizeof *macros; i++)
            if (strcmp(expr, macros[i].name) == 0)
                return api_cron_parse(macros[i].expands, out, err);
        return sp_err_set(err, SP_EINVAL, "unknown schedule '%.40s' (@yearly, @monthly, "
                                          "@weekly, @daily, @hourly or @every D)", expr);
    }
    char buf[API_CRON_MAX + 1];
    memcpy(buf, expr, len + 1);
    char *parts[6];
    int n = 0;
    for (char *save = NULL, *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save))
        if (n < 6)
            parts[n++] = t;
        else
            n = 7;
    if (n != 5)
        return sp_err_set(err, SP_EINVAL, "a cron expression has 5 fields (minute hour "
                                          "day-of-month month day-of-week), not %s",
                          n > 5 ? "more" : "fewer");
    uint64_t bits[5];
    bool star[5];
    for (int i = 0; i < 5; i++) {
        int rc = api__field_parse(&api__fields[i], parts[i], &bits[i], &star[i], err);
        if (rc < 0)
            return rc;
    }
    c.minute = bits[0];
    c.hour = (uint32_t)bits[1];
    c.dom = (uint32_t)bits[2];
    c.month = (uint16_t)bits[3];
    c.dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    c.dom_star = star[2];
    c.dow_star = star[4];
    /* Only the day of the month restricts the days: some month must have one of them. */
    if (!c.dom_star && c.dow_star) {
        bool some = false;
        for (int m = 1; m <= 12 && !some; m++)
            if (c.month >> m & 1)
                for (int d = 1; d <= api__mdays(2000, m) && !some; d++)
                    some = c.dom >> d & 1;
        if (!some)
            return sp_err_set(err, SP_EINVAL, "'%s' never fires: none of its months has one of "
                                              "its days", expr);
    }
    *out = c;
    return 0;
}

/* ---- time zones --------------------------------------------------------------------- */

/* The IANA names the system's tz database lists: its tzdata.zi's Zone ("Z NAME ...")
 * and Link ("L TARGET NAME") lines, read once, sorted. Names that are files in
 * /usr/share/zoneinfo but not zones (localtime, posixrules, right/..., posix/...) are
 * not among them; Factory (a zone meaning "not set") is left out. */
static struct {
    pthread_once_t once;
    char **names;
    size_t n;
} api__iana = {PTHREAD_ONCE_INIT, NULL, 0};

static int api__strp_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void api__iana_load(void)
{
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/tzdata.zi", dir && dir[0] ? dir : "/usr/share/zoneinfo");
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        char *save, *kind = strtok_r(line, " \t\n", &save);
        if (kind == NULL || (strcmp(kind, "Z") != 0 && strcmp(kind, "L") != 0))
            continue;
        char *name = strtok_r(NULL, " \t\n", &save);
        if (kind[0] == 'L')
            name = strtok_r(NULL, " \t\n", &save);
        if (name == NULL || strcmp(name, "Factory") == 0)
            continue;
        if (api__iana.n == cap) {
            size_t ncap = cap ? cap * 2 : 1024;
            char **m = sp_realloc(api__iana.names, ncap * sizeof *m);
            if (m == NULL)
                break;
            api__iana.names = m;
            cap = ncap;
        }
        if ((api__iana.names[api__iana.n] = sp_strdup(name)) == NULL)
            break;
        api__iana.n++;
    }
    fclose(f);
    if (api__iana.n > 0)
        qsort(api__iana.names, api__iana.n, sizeof *api__iana.names, api__strp_cmp);
}

/* True when name is an IANA zone the system's tz database lists, or UTC. */
static bool api__iana_known(const char *name)
{
    if (strcmp(name, "UTC") == 0)
        return true;
    pthread_once(&api__iana.once, api__iana_load);
    return api__iana.n > 0 && bsearch(&name, api__iana.names, api__iana.n,
                                      sizeof *api__iana.names, api__strp_cmp) != NULL;
}

api_tz *api_tz_open(const char *name, sp_err *err)
{
    /* IANA names: letters, digits and "/_-+"; no "..", no leading '/'. */
    size_t n = name ? strlen(name) : 0;
    bool ok = n > 0 && n <= 64 && name[0] != '/' && strstr(name, "..") == NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)name[i]) || strchr("/_-+", name[i]) != NULL;
    if (!ok)
        return sp_err_set(err, SP_EINVAL, "'%.64s' is not a time zone name such as "
                                          "Europe/Berlin", name ? name : ""),
               NULL;
    /* Only names every host reads alike: not this host's localtime, not a POSIX TZ rule
     * or an offset (which glib would take too). */
    if (!api__iana_known(name)) {
        sp_err_set(err, SP_EINVAL, "unknown time zone '%s': an IANA name the system's tz "
                                   "database lists (Europe/Berlin, UTC) is needed", name);
        return NULL;
    }
    GTimeZone *z = g_time_zone_new_identifier(name);
    if (z == NULL) {
        sp_err_set(err, SP_EINVAL, "unknown time zone '%s' (the system's tz database does not "
                                   "have it)", name);
        return NULL;
    }
    api_tz *tz = sp_malloc(sizeof *tz);
    if (tz == NULL) {
        g_time_zone_unref(z);
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    tz->z = z;
    return tz;
}

void api_tz_free(api_tz *tz)
{
    if (tz == NULL)
        return;
    g_time_zone_unref(tz->z);
    sp_free(tz);
}

/* ---- next time ---------------------------------------------------------------------- */

typedef struct api__wall {
    int y, mon, d, h, min;
} api__wall;

/* Day of the week of a date, Sunday 0 (Sakamoto's method). */
static int api__weekday(int y, int m, int d)
{
    static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
    if (m < 3)
        y -= 1;
    return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

static bool api__day_matches(const api_cron *c, const api__wall *w)
{
    bool dom = c->dom >> w->d & 1;
    bool dow = c->dow >> api__weekday(w->y, w->mon, w->d) & 1;
    if (c->dom_star && c->dow_star)
        return true;
    if (c->dom_star)
        return dow;
    if (c->dow_star)
        return dom;
    return dom || dow;
}

static void api__next_day(api__wall *w)
{
    w->h = w->min = 0;
    if (++w->d > api__mdays(w->y, w->mon)) {
        w->d = 1;
        if (++w->mon > 12) {
            w->mon = 1;
            w->y++;
        }
    }
}

static void api__next_month(api__wall *w)
{
    w->d = 1;
    w->h = w->min = 0;
    if (++w->mon > 12) {
        w->mon = 1;
        w->y++;
    }
}

/* The UTC offset (seconds) in zone z at instant t (seconds). */
static int32_t api__offset(GTimeZone *z, gint64 t)
{
    return g_time_zone_get_offset(z, g_time_zone_find_interval(z, G_TIME_TYPE_UNIVERSAL, t));
}

/* The instant a wall-clock time names in zone z. A time in a gap moves to the gap's end
 * (GLib's rule); a time that happens twice is its first occurrence. GLib picks the
 * standard-time one, the later when clocks went back: the earlier one, if any, has the
 * offset the zone had a day before (one change per day at most, as everywhere). */
static int api__resolve(GTimeZone *z, const api__wall *w, int64_t *ms)
{
    GDateTime *t = g_date_time_new(z, w->y, w->mon, w->d, w->h, w->min, 0.0);
    if (t == NULL)
        return SP_EINVAL;
    gint64 late = g_date_time_to_unix(t);
    g_date_time_unref(t);
    GDateTime *u = g_date_time_new_utc(w->y, w->mon, w->d, w->h, w->min, 0.0);
    if (u == NULL)
        return SP_EINVAL;
    gint64 wall = g_date_time_to_unix(u); /* the wall-clock fields read as UTC */
    g_date_time_unref(u);
    gint64 early = wall - api__offset(z, late - 86400);
    if (early < late && early + api__offset(z, early) == wall)
        late = early;
    *ms = (int64_t)late * 1000;
    return 0;
}

int api_cron_next(const api_cron *c, const api_tz *tz, int64_t after_ms, int64_t *next_ms,
                  sp_err *err)
{
    const int64_t max_ms = 221845392000000LL; /* 9000-01-01 */
    if (after_ms < 0 || after_ms >= max_ms)
        return sp_err_set(err, SP_EINVAL, "a time outside 1970-9000");
    if (c->every_ms > 0) {
        *next_ms = (after_ms / c->every_ms + 1) * c->every_ms;
        return 0;
    }
    GDateTime *u = g_date_time_new_from_unix_utc(after_ms / 1000);
    GDateTime *l = u ? g_date_time_to_timezone(u, tz->z) : NULL;
    if (l == NULL) {
        if (u)
            g_date_time_unref(u);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    api__wall w = {g_date_time_get_year(l), g_date_time_get_month(l),
                   g_date_time_get_day_of_month(l), g_date_time_get_hour(l),
                   g_date_time_get_minute(l)};
    g_date_time_unref(l);
    g_date_time_unref(u);
    /* From the minute after the wall-clock time of after_ms, the first matching time
     * whose instant is later than after_ms (in a repeated hour, the wall clock shows
     * times again whose first occurrence has passed). */
    int end_year = w.y + 10;
    w.min++;
    while (w.y <= end_year) {
        if (w.min > 59) {
            w.min = 0;
            w.h++;
        }
        if (w.h > 23) {
            api__next_day(&w);
            continue;
        }
        if (!(c->month >> w.mon & 1)) {
            api__next_month(&w);
            continue;
        }
        if (!api__day_matches(c, &w)) {
            api__next_day(&w);
            continue;
        }
        if (!(c->hour >> w.h & 1)) {
            w.min = 0;
            w.h++;
            continue;
        }
        if (!(c->minute >> w.min & 1)) {
            w.min++;
            continue;
        }
        int64_t t;
        if (api__resolve(tz->z, &w, &t) < 0)
            return sp_err_set(err, SP_EINVAL, "no instant for %04d-%02d-%02d %02d:%02d", w.y,
                              w.mon, w.d, w.h, w.min);
        if (t > after_ms) {
            *next_ms = t;
            return 0;
        }
        w.min++;
    }
    return sp_err_set(err, SP_EINVAL, "the schedule does not fire within 10 years");
}

int api_cron_due(const api_cron *c, const api_tz *tz, int64_t last_ms, int64_t now_ms,
                 int64_t grace_ms, bool run_missed, int64_t *ticks, size_t max, size_t *n,
                 int64_t *next_ms, int64_t *passed, sp_err *err)
{
    *n = 0;
    int64_t count = 0;
    int64_t t;
    int rc = api_cron_next(c, tz, last_ms, &t, err);
    if (rc < 0)
        return rc;
    /* Ticks older than the grace were missed: walk past them (intervals jump). */
    int64_t missed = 0, edge = now_ms - (grace_ms > 0 ? grace_ms : 0);
    if (t < edge) {
        if (c->every_ms > 0) {
            missed = (edge - 1) / c->every_ms * c->every_ms;
            if (missed < t)
                missed = t;
            count = (missed - t) / c->every_ms + 1;
            t = missed + c->every_ms;
        } else {
            for (int i = 0; t < edge && i < 600000; i++) {
                missed = t;
                count++;
                rc = api_cron_next(c, tz, t, &t, err);
                if (rc < 0)
                    return rc;
            }
            if (t < edge) { /* still behind after 600,000 ticks: start from the edge */
                rc = api_cron_next(c, tz, edge - 1, &t, err);
                if (rc < 0)
                    return rc;
            }
        }
    }
    if (missed > 0 && run_missed && *n < max) {
        ticks[(*n)++] = missed;
        count--;
    }
    if (passed)
        *passed = count;
    while (t <= now_ms && *n < max) {
        ticks[(*n)++] = t;
        rc = api_cron_next(c, tz, t, &t, err);
        if (rc < 0)
            return rc;
    }
    *next_ms = t;
    return 0;
}

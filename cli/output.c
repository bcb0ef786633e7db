/* output.c - spoolctl's text output (see output.h). */
#include "output.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spool/alloc.h"
#include "spool/err.h"
#include "spool/job.h"

#define CTL_TABLE_MAX_COLS 10

void ctl_fmt_bytes(int64_t n, char out[32])
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
    if (n < 0)
        n = 0;
    if (n < 1024) {
        snprintf(out, 32, "%lld B", (long long)n);
        return;
    }
    double v = (double)n / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, 32, v < 100.0 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void ctl_fmt_duration(int64_t ms, char out[32])
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(out, 32, "%lld ms", (long long)ms);
    else if (ms < 60000)
        snprintf(out, 32, "%.1f s", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(out, 32, "%lld m %02lld s", (long long)(ms / 60000),
                 (long long)(ms / 1000 % 60));
    else
        snprintf(out, 32, "%lld h %02lld m", (long long)(ms / 3600000),
                 (long long)(ms / 60000 % 60));
}

/* n decimal digits at s into *v; false when one is not a digit. */
static bool ctl__digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

int ctl_parse_time(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac = 0;
    if (s == NULL || strlen(s) < 20 || !ctl__digits(s, 4, &y) || s[4] != '-' ||
        !ctl__digits(s + 5, 2, &mo) || s[7] != '-' || !ctl__digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't') || !ctl__digits(s + 11, 2, &h) || s[13] != ':' ||
        !ctl__digits(s + 14, 2, &mi) || s[16] != ':' || !ctl__digits(s + 17, 2, &sec))
        return SP_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int scale = 100, n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3)
                frac += (*p - '0') * scale;
            scale /= 10;
            n++;
            p++;
        }
        if (n == 0)
            return SP_EINVAL;
    }
    if ((*p != 'Z' && *p != 'z') || p[1] != '\0')
        return SP_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return SP_EINVAL;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = (int64_t)t * 1000 + frac;
    return 0;
}

int ctl_out_clean(sp_buf *b, const char *s)
{
    if (s == NULL)
        return 0;
    size_t start = b->len;
    int rc = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && rc == 0; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            rc = sp_buf_addc(b, '?');
        } else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            /* A C1 control character (U+0080-U+009F): some terminals obey them. */
            rc = sp_buf_addc(b, '?');
            p++;
        } else {
            rc = sp_buf_addc(b, (char)*p);
        }
    }
    if (rc < 0) {
        b->len = start;
        if (b->data)
            b->data[start] = '\0';
    }
    return rc;
}

static const char *ctl__str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static long long ctl__int(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

const char *ctl_job_state(const json_t *job)
{
    return ctl__str(job, "state");
}

int ctl_state_terminal(const char *state)
{
    return strcmp(state, "succeeded") == 0 || strcmp(state, "failed") == 0 ||
           strcmp(state, "cancelled") == 0;
}

int ctl_out_bar(sp_buf *b, int percent, int width)
{
    if (percent < 0)
        percent = 0;
    if (percent > 100)
        percent = 100;
    if (width < 1)
        width = 1;
    int filled = percent * width / 100;
    int rc = sp_buf_addc(b, '[');
    for (int i = 0; i < width && rc == 0; i++)
        rc = sp_buf_addc(b, i < filled ? '#' : '-');
    if (rc == 0)
        rc = sp_buf_addf(b, "] %3d%%", percent);
    return rc;
}

/* "code: message" of the job's error, cleaned; nothing when there is none. */
static int ctl__error(sp_buf *b, const json_t *job)
{
    const json_t *e = json_object_get(job, "error");
    if (!json_is_object(e))
        return 0;
    int rc = ctl_out_clean(b, ctl__str(e, "code"));
    if (rc == 0)
        rc = sp_buf_adds(b, ": ");
    if (rc == 0)
        rc = ctl_out_clean(b, ctl__str(e, "message"));
    return rc;
}

int ctl_out_job_line(sp_buf *b, const json_t *job)
{
    const char *state = ctl_job_state(job);
    int rc = ctl_out_clean(b, ctl__str(job, "id"));
    if (rc == 0)
        rc = sp_buf_addc(b, ' ');
    if (rc == 0)
        rc = ctl_out_clean(b, state);
    if (rc == 0)
        rc = sp_buf_addf(b, " %lld%%", ctl__int(job, "progress"));
    long long att = ctl__int(job, "attempts"), max = ctl__int(job, "max_attempts");
    bool has_error = json_is_object(json_object_get(job, "error"));
    if (rc == 0 && strcmp(state, "retrying") == 0) {
        rc = sp_buf_addf(b, " (attempt %lld of %lld failed", att, max);
        if (rc == 0 && has_error)
            rc = sp_buf_adds(b, ": ");
        if (rc == 0)
            rc = ctl__error(b, job);
        const char *next = json_string_value(json_object_get(job, "next_attempt_at"));
        if (rc == 0 && next) {
            rc = sp_buf_adds(b, "; next attempt at ");
            if (rc == 0)
                rc = ctl_out_clean(b, next);
        }
        if (rc == 0)
            rc = sp_buf_addc(b, ')');
    } else if (rc == 0 && strcmp(state, "failed") == 0 && has_error) {
        rc = sp_buf_adds(b, " (");
        if (rc == 0)
            rc = ctl__error(b, job);
        if (rc == 0)
            rc = sp_buf_addc(b, ')');
    } else if (rc == 0 && strcmp(state, "running") == 0 && att > 1) {
        rc = sp_buf_addf(b, " (attempt %lld of %lld)", att, max);
    }
    return rc;
}

int ctl_out_progress(sp_buf *b, const json_t *job, int columns, int64_t elapsed_ms)
{
    int width = columns - 30;
    if (width > 40)
        width = 40;
    if (width < 10)
        width = 10;
    char st[16];
    snprintf(st, sizeof st, "%s", ctl_job_state(job));
    for (char *p = st; *p; p++) {
        if (*p < 'a' || *p > 'z')
            *p = '?';
    }
    int rc = sp_buf_addf(b, "%-9s ", st);
    if (rc == 0)
        rc = ctl_out_bar(b, (int)ctl__int(job, "progress"), width);
    if (rc == 0) {
        long long s = (long long)(elapsed_ms / 1000);
        rc = s >= 3600 ? sp_buf_addf(b, "  %lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60)
                       : sp_buf_addf(b, "  %lld:%02lld", s / 60, s % 60);
    }
    return rc;
}

/* "<server><url>" for an output's relative url. */
static int ctl__url(sp_buf *b, const char *server, const json_t *output)
{
    const char *url = ctl__str(output, "url");
    int rc = 0;
    if (url[0] == '/')
        rc = ctl_out_clean(b, server);
    if (rc == 0)
        rc = ctl_out_clean(b, url);
    return rc;
}

static int ctl__time_line(sp_buf *b, const char *label, const json_t *job, const char *key)
{
    const char *t = json_string_value(json_object_get(job, key));
    int rc = sp_buf_addf(b, "%-12s ", label);
    if (rc == 0)
        rc = t ? ctl_out_clean(b, t) : sp_buf_adds(b, "-");
    if (rc == 0)
        rc = sp_buf_addc(b, '\n');
    return rc;
}

/* The outputs, one per line: "<indent>name  type  size  url". */
static int ctl__outputs(sp_buf *b, const json_t *job, const char *server, const char *first,
                        const char *indent, bool with_type)
{
    const json_t *outs = json_object_get(job, "outputs");
    size_t i, wname = 0, wtype = 0;
    const json_t *o;
    json_array_foreach(outs, i, o) {
        size_t n = strlen(ctl__str(o, "name")), t = strlen(ctl__str(o, "content_type"));
        wname = n > wname ? n : wname;
        wtype = t > wtype ? t : wtype;
    }
    int rc = 0;
    json_array_foreach(outs, i, o) {
        char size[32];
        ctl_fmt_bytes(json_integer_value(json_object_get(o, "bytes")), size);
        size_t start = b->len;
        rc = sp_buf_adds(b, i == 0 ? first : indent);
        if (rc == 0)
            rc = ctl_out_clean(b, ctl__str(o, "name"));
        for (size_t k = b->len - start - strlen(i == 0 ? first : indent);
             rc == 0 && k < wname + 2; k++)
            rc = sp_buf_addc(b, ' ');
        if (rc == 0 && with_type) {
            size_t before = b->len;
            rc = ctl_out_clean(b, ctl__str(o, "content_type"));
            for (size_t k = b->len - before; rc == 0 && k < wtype + 2; k++)
                rc = sp_buf_addc(b, ' ');
        }
        if (rc == 0)
            rc = sp_buf_addf(b, "%9s  ", size);
        if (rc == 0)
            rc = ctl__url(b, server, o);
        if (rc == 0)
            rc = sp_buf_addc(b, '\n');
        if (rc < 0)
            break;
    }
    return rc;
}

int ctl_out_job(sp_buf *b, const json_t *job, const char *server)
{
    const char *state = ctl_job_state(job);
    int rc = sp_buf_addf(b, "%-12s ", "id");
    if (rc == 0)
        rc = ctl_out_clean(b, ctl__str(job, "id"));
    if (rc == 0)
        rc = sp_buf_addf(b, "\n%-12s ", "type");
    if (rc == 0)
        rc = ctl_out_clean(b, ctl__str(job, "type"));
    if (rc == 0)
        rc = sp_buf_adds(b, " (queue ");
    if (rc == 0)
        rc = ctl_out_clean(b, ctl__str(job, "queue"));
    if (rc == 0)
        rc = sp_buf_addf(b, ")\n%-12s ", "state");
    if (rc == 0)
        rc = ctl_out_clean(b, state);
    if (rc == 0)
        rc = sp_buf_addf(b, ", %lld%%\n%-12s %lld of %lld\n", ctl__int(job, "progress"),
                         "attempts", ctl__int(job, "attempts"), ctl__int(job, "max_attempts"));
    if (rc == 0)
        rc = ctl__time_line(b, "created", job, "created_at");
    if (rc == 0)
        rc = ctl__time_line(b, "started", job, "started_at");
    if (rc == 0)
        rc = ctl__time_line(b, "finished", job, "finished_at");
    if (rc == 0 && json_is_string(json_object_get(job, "next_attempt_at")))
        rc = ctl__time_line(b, "next attempt", job, "next_attempt_at");
    const json_t *e = json_object_get(job, "error");
    if (rc == 0 && json_is_object(e)) {
        rc = sp_buf_addf(b, "%-12s ", "error");
        if (rc == 0)
            rc = ctl__error(b, job);
        if (rc == 0)
            rc = sp_buf_adds(b, json_is_true(json_object_get(e, "retryable")) ? " (retryable)\n"
                                                                             : " (permanent)\n");
    }
    if (rc == 0 && json_array_size(json_object_get(job, "outputs")) > 0) {
        char first[32];
        snprintf(first, sizeof first, "%-12s ", "outputs");
        rc = ctl__outputs(b, job, server, first, "             ", true);
    }
    const json_t *md = json_object_get(job, "metadata");
    if (rc == 0 && md && !json_is_null(md) &&
        !(json_is_object(md) && json_object_size(md) == 0)) {
        /* Indented, each line under the value column. */
        char *text = json_dumps(md, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        rc = text ? sp_buf_addf(b, "%-12s ", "metadata") : SP_ENOMEM;
        for (char *line = text, *nl; rc == 0 && line; line = nl ? nl + 1 : NULL) {
            nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            if (line != text)
                rc = sp_buf_adds(b, "             ");
            if (rc == 0)
                rc = ctl_out_clean(b, line);
            if (rc == 0)
                rc = sp_buf_addc(b, '\n');
        }
        sp_free(text);
    }
    return rc;
}

/* finished_at - started_at (or created_at) in ms; -1 when unknown. */
static int64_t ctl__took(const json_t *job)
{
    int64_t end, start;
    if (ctl_parse_time(json_string_value(json_object_get(job, "finished_at")), &end) < 0)
        return -1;
    if (ctl_parse_time(json_string_value(json_object_get(job, "started_at")), &start) < 0 &&
        ctl_parse_time(json_string_value(json_object_get(job, "created_at")), &start) < 0)
        return -1;
    return end >= start ? end - start : -1;
}

int ctl_out_summary(sp_buf *b, const json_t *job, const char *server)
{
    const char *state = ctl_job_state(job);
    int rc = ctl_out_clean(b, ctl__str(job, "id"));
    if (rc == 0)
        rc = sp_buf_addc(b, ' ');
    if (rc == 0)
        rc = ctl_out_clean(b, state);
    if (rc < 0)
        return rc;
    if (strcmp(state, "succeeded") == 0) {
        int64_t took = ctl__took(job);
        char d[32];
        ctl_fmt_duration(took, d);
        rc = took >= 0 ? sp_buf_addf(b, " in %s\n", d) : sp_buf_addc(b, '\n');
        if (rc == 0)
            rc = ctl__outputs(b, job, server, "  ", "  ", false);
    } else if (strcmp(state, "failed") == 0) {
        long long att = ctl__int(job, "attempts");
        rc = sp_buf_addf(b, " after %lld attempt%s", att, att == 1 ? "" : "s");
        if (rc == 0 && json_is_object(json_object_get(job, "error"))) {
            rc = sp_buf_adds(b, ": ");
            if (rc == 0)
                rc = ctl__error(b, job);
        }
        if (rc == 0)
            rc = sp_buf_addc(b, '\n');
    } else if (strcmp(state, "cancelled") == 0) {
        rc = sp_buf_addc(b, '\n');
    } else {
        rc = sp_buf_addf(b, " %lld%%\n", ctl__int(job, "progress"));
    }
    return rc;
}

/* ---- tables ---------------------------------------------------------------------- */

typedef struct ctl__table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, each owned */
    size_t width[CTL_TABLE_MAX_COLS];
} ctl__table;

static void ctl__table_free(ctl__table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        sp_free(t->cells[i]);
    sp_free(t->cells);
}

/* Add a row of ncols cells (cleaned copies). */
static int ctl__table_row(ctl__table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **c = sp_realloc(t->cells, cap * t->ncols * sizeof *c);
        if (c == NULL)
            return SP_ENOMEM;
        t->cells = c;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncols; i++) {
        sp_buf b;
        sp_buf_init(&b, 4096);
        int rc = ctl_out_clean(&b, cells[i] ? cells[i] : "");
        char *s = rc == 0 ? sp_buf_take(&b) : NULL;
        if (rc == 0 && s == NULL)
            s = sp_strdup("");
        if (s == NULL) {
            sp_buf_free(&b);
            for (size_t k = 0; k < i; k++)
                sp_free(t->cells[t->nrows * t->ncols + k]);
            return SP_ENOMEM;
        }
        t->cells[t->nrows * t->ncols + i] = s;
        size_t w = strlen(s);
        if (w > t->width[i])
            t->width[i] = w;
    }
    t->nrows++;
    return 0;
}

static int ctl__table_render(sp_buf *b, const ctl__table *t)
{
    int rc = 0;
    for (size_t r = 0; r < t->nrows && rc == 0; r++) {
        for (size_t c = 0; c < t->ncols && rc == 0; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c + 1 == t->ncols)
                rc = sp_buf_addf(b, "%s\n", s);
            else
                rc = sp_buf_addf(b, "%-*s  ", (int)t->width[c], s);
        }
    }
    return rc;
}

int ctl_out_jobs(sp_buf *b, const json_t *list)
{
    const json_t *jobs = json_object_get(list, "jobs");
    if (json_array_size(jobs) == 0)
        return sp_buf_adds(b, "no jobs\n");
    ctl__table t;
    memset(&t, 0, sizeof t);
    t.ncols = 6;
    const char *head[] = {"ID", "TYPE", "STATE", "PROGRESS", "ATTEMPTS", "CREATED"};
    int rc = ctl__table_row(&t, head);
    size_t i;
    const json_t *j;
    json_array_foreach(jobs, i, j) {
        if (rc < 0)
            break;
        char prog[16], att[48];
        snprintf(prog, sizeof prog, "%lld%%", ctl__int(j, "progress"));
        snprintf(att, sizeof att, "%lld/%lld", ctl__int(j, "attempts"), ctl__int(j, "max_attempts"));
        const char *row[] = {ctl__str(j, "id"), ctl__str(j, "type"), ctl__str(j, "state"), prog,
                             att, ctl__str(j, "created_at")};
        rc = ctl__table_row(&t, row);
    }
    if (rc == 0)
        rc = ctl__table_render(b, &t);
    ctl__table_free(&t);
    return rc;
}

/* Join a JSON array of strings with commas into out. */
static void ctl__join(const json_t *a, char *out, size_t cap)
{
    size_t used = 0, i;
    const json_t *v;
    out[0] = '\0';
    json_array_foreach(a, i, v) {
        int k = snprintf(out + used, cap - used, "%s%s", i ? "," : "",
                         json_string_value(v) ? json_string_value(v) : "");
        if (k < 0 || (size_t)k >= cap - used)
            break;
        used += (size_t)k;
    }
}

int ctl_out_queues(sp_buf *b, const json_t *q)
{
    const json_t *queues = json_object_get(q, "queues");
    const json_t *workers = json_object_get(q, "workers");
    int rc = 0;
    size_t i;
    const json_t *e;
    if (json_array_size(queues) == 0) {
        rc = sp_buf_adds(b, "no queues yet (none has seen a job)\n");
    } else {
        ctl__table t;
        memset(&t, 0, sizeof t);
        t.ncols = 9;
        const char *head[] = {"QUEUE",   "WAITING",   "RUNNING", "RETRYING", "DEAD",
                              "WORKERS", "SUCCEEDED", "FAILED",  "CANCELLED"};
        rc = ctl__table_row(&t, head);
        json_array_foreach(queues, i, e) {
            if (rc < 0)
                break;
            const json_t *tot = json_object_get(e, "totals");
            char n[8][24];
            snprintf(n[0], sizeof n[0], "%lld", ctl__int(e, "depth"));
            snprintf(n[1], sizeof n[1], "%lld", ctl__int(e, "running"));
            snprintf(n[2], sizeof n[2], "%lld", ctl__int(e, "delayed"));
            snprintf(n[3], sizeof n[3], "%lld", ctl__int(e, "dead"));
            snprintf(n[4], sizeof n[4], "%lld", ctl__int(e, "workers"));
            snprintf(n[5], sizeof n[5], "%lld", ctl__int(tot, "succeeded"));
            snprintf(n[6], sizeof n[6], "%lld", ctl__int(tot, "failed"));
            snprintf(n[7], sizeof n[7], "%lld", ctl__int(tot, "cancelled"));
            char name[SP_QUEUE_MAX + 16];
            snprintf(name, sizeof name, "%s%s", ctl__str(e, "name"),
                     json_is_true(json_object_get(e, "paused")) ? " (paused)" : "");
            const char *row[] = {name, n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]};
            rc = ctl__table_row(&t, row);
        }
        if (rc == 0)
            rc = ctl__table_render(b, &t);
        ctl__table_free(&t);
    }
    if (rc == 0)
        rc = sp_buf_addc(b, '\n');
    if (rc < 0)
        return rc;
    if (json_array_size(workers) == 0)
        return sp_buf_adds(b, "no live workers\n");
    ctl__table t;
    memset(&t, 0, sizeof t);
    t.ncols = 8;
    const char *head[] = {"WORKER",  "KIND",      "QUEUES", "CONCURRENCY",
                          "RUNNING", "PROCESSED", "FAILED", "LAST SEEN"};
    rc = ctl__table_row(&t, head);
    json_array_foreach(workers, i, e) {
        if (rc < 0)
            break;
        char qs[256], n[4][24];
        ctl__join(json_object_get(e, "queues"), qs, sizeof qs);
        snprintf(n[0], sizeof n[0], "%lld", ctl__int(e, "concurrency"));
        snprintf(n[1], sizeof n[1], "%zu", json_array_size(json_object_get(e, "current")));
        snprintf(n[2], sizeof n[2], "%lld", ctl__int(e, "processed"));
        snprintf(n[3], sizeof n[3], "%lld", ctl__int(e, "failed"));
        const char *row[] = {ctl__str(e, "id"), ctl__str(e, "kind"), qs, n[0], n[1], n[2], n[3],
                             ctl__str(e, "last_seen")};
        rc = ctl__table_row(&t, row);
    }
    if (rc == 0)
        rc = ctl__table_render(b, &t);
    ctl__table_free(&t);
    return rc;
}

int ctl_out_error_json(sp_buf *b, const char *code, const char *message)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", code ? code : "error", "message",
                          message ? message : "");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL)
        return SP_ENOMEM;
    int rc = sp_buf_addf(b, "%s\n", text);
    sp_free(text);
    return rc;
}

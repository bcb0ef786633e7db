/* schedules.c - spoolctl's schedule commands over /v1/schedules: `schedules` (the list)
 * and `schedule create|show|pause|resume|delete|runs NAME`. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "output.h"
#include "spool/alloc.h"

#define CTL_SCHED_JOB_FILE_MAX (1024 * 1024) /* bytes of a --job @FILE */

/* A string member of o, or "-". */
static const char *ctl__s(const json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "-";
}

/* One line of the list: NAME CRON ZONE MISSED STATE NEXT RUNS. */
static int ctl__sched_line(sp_buf *b, const json_t *s)
{
    int rc = 0;
    const char *cols[] = {ctl__s(s, "name"), ctl__s(s, "cron"), ctl__s(s, "timezone"),
                          ctl__s(s, "missed"),
                          json_is_true(json_object_get(s, "paused")) ? "paused" : "active",
                          ctl__s(s, "next_run_at")};
    int width[] = {24, 20, 16, 9, 7, 25};
    for (size_t i = 0; i < 6 && rc == 0; i++) {
        size_t start = b->len;
        rc = ctl_out_clean(b, cols[i]);
        for (size_t n = b->len - start; rc == 0 && n < (size_t)width[i]; n++)
            rc = sp_buf_addc(b, ' ');
        if (rc == 0)
            rc = sp_buf_addc(b, ' ');
    }
    if (rc == 0)
        rc = sp_buf_addf(b, "%lld\n",
                         (long long)json_integer_value(json_object_get(s, "runs_total")));
    return rc;
}

/* Print v as --json, -q (names or ids) or text (fmt). */
static int ctl__print(ctl_client *c, const json_t *v, int (*fmt)(sp_buf *, const json_t *))
{
    if (c->o->json)
        return ctl_client_print_json(c, v);
    sp_buf b;
    sp_buf_init(&b, 64 * 1024 * 1024);
    int rc = fmt(&b, v);
    rc = rc < 0 ? ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory")
                : ctl_client_print(c, &b);
    sp_buf_free(&b);
    return rc;
}

static int ctl__list_text(sp_buf *b, const json_t *list)
{
    size_t i;
    const json_t *s;
    int rc = sp_buf_addf(b, "%-24s %-20s %-16s %-9s %-7s %-25s %s\n", "NAME", "CRON", "TIMEZONE",
                         "MISSED", "STATE", "NEXT RUN", "RUNS");
    json_array_foreach(json_object_get(list, "schedules"), i, s) {
        if (rc == 0)
            rc = ctl__sched_line(b, s);
    }
    return rc;
}

/* One line per element of v's array `array`: its string field `field` (--quiet). */
static int ctl__column(sp_buf *b, const json_t *v, const char *array, const char *field)
{
    size_t i;
    const json_t *x;
    int rc = 0;
    json_array_foreach(json_object_get(v, array), i, x) {
        if (rc == 0)
            rc = sp_buf_addf(b, "%s\n", ctl__s(x, field));
    }
    return rc;
}

static int ctl__names(sp_buf *b, const json_t *list)
{
    return ctl__column(b, list, "schedules", "name");
}

static int ctl__show_text(sp_buf *b, const json_t *s)
{
    char *job = json_dumps(json_object_get(s, "job"), JSON_COMPACT);
    int rc = 0;
    const char *rows[][2] = {
        {"name", ctl__s(s, "name")},
        {"cron", ctl__s(s, "cron")},
        {"timezone", ctl__s(s, "timezone")},
        {"missed", ctl__s(s, "missed")},
        {"state", json_is_true(json_object_get(s, "paused")) ? "paused" : "active"},
        {"next run", ctl__s(s, "next_run_at")},
        {"last run", ctl__s(s, "last_run_at")},
        {"created", ctl__s(s, "created_at")},
        {"job", job ? job : "-"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows && rc == 0; i++) {
        rc = sp_buf_addf(b, "%-10s ", rows[i][0]);
        if (rc == 0)
            rc = ctl_out_clean(b, rows[i][1]);
        if (rc == 0)
            rc = sp_buf_addc(b, '\n');
    }
    if (rc == 0)
        rc = sp_buf_addf(b, "%-10s %lld made, %lld missed\n", "runs",
                         (long long)json_integer_value(json_object_get(s, "runs_total")),
                         (long long)json_integer_value(json_object_get(s, "missed_total")));
    sp_free(job);
    return rc;
}

static int ctl__name_text(sp_buf *b, const json_t *s)
{
    return sp_buf_addf(b, "%s\n", ctl__s(s, "name"));
}

static int ctl__runs_text(sp_buf *b, const json_t *r)
{
    size_t i;
    const json_t *x;
    int rc = sp_buf_addf(b, "%-25s %-37s %s\n", "TICK", "JOB", "STATE");
    json_array_foreach(json_object_get(r, "runs"), i, x) {
        if (rc == 0)
            rc = sp_buf_addf(b, "%-25s %-37s %s\n", ctl__s(x, "tick_at"), ctl__s(x, "job_id"),
                             json_is_string(json_object_get(x, "state")) ? ctl__s(x, "state")
                                                                         : "expired");
    }
    return rc;
}

static int ctl__run_ids(sp_buf *b, const json_t *r)
{
    return ctl__column(b, r, "runs", "job_id");
}

/* One request (a JSON body or none): its JSON answer into *v (a new reference), or
 * an exit code after reporting. */
static int ctl__fetch(ctl_client *c, const char *method, const char *path, const char *body,
                      const char *what, json_t **v)
{
    ctl_request rq;
    ctl_request_init(&rq, method, path);
    rq.timeout_ms = 60000;
    if (body) {
        rq.content_type = "application/json";
        rq.data = body;
        rq.data_len = strlen(body);
    }
    ctl_response resp;
    ctl_response_init(&resp);
    int rc = ctl_client_call(c, &rq, &resp, v, what);
    ctl_response_free(&resp);
    return rc;
}

/* One request and its answer printed with fmt (quiet: qfmt, or nothing when NULL). */
static int ctl__call(ctl_client *c, const char *method, const char *path, const char *body,
                     const char *what, int (*fmt)(sp_buf *, const json_t *),
                     int (*qfmt)(sp_buf *, const json_t *))
{
    json_t *v;
    int rc = ctl__fetch(c, method, path, body, what, &v);
    if (rc == 0) {
        if (c->o->quiet && !c->o->json)
            rc = qfmt ? ctl__print(c, v, qfmt) : 0;
        else
            rc = ctl__print(c, v, fmt);
        json_decref(v);
    }
    return rc;
}

/* Every schedule: the pages of GET /v1/schedules followed by their `next`, printed
 * together (--json: one {"schedules": [...], "next": null}). */
int ctl_cmd_schedules(ctl_client *c)
{
    json_t *all = json_array(), *next = NULL;
    int rc = all ? 0 : ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    char path[128] = "/v1/schedules?limit=1000";
    while (rc == 0) {
        json_t *page;
        rc = ctl__fetch(c, "GET", path, NULL, "schedules", &page);
        if (rc != 0)
            break;
        json_array_extend(all, json_object_get(page, "schedules"));
        next = json_object_get(page, "next");
        const char *after = json_string_value(next);
        /* Names are 1-64 of A-Z a-z 0-9 _ . -: nothing to escape in a query. */
        bool more = after && after[0] && strlen(after) <= 64 && strspn(after,
                        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
                        strlen(after);
        if (more)
            snprintf(path, sizeof path, "/v1/schedules?limit=1000&after=%s", after);
        json_decref(page);
        if (!more)
            break;
    }
    if (rc == 0) {
        json_t *v = json_pack("{s:O, s:n}", "schedules", all, "next");
        rc = v == NULL ? ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory")
             : c->o->quiet && !c->o->json ? ctl__print(c, v, ctl__names)
                                           : ctl__print(c, v, ctl__list_text);
        json_decref(v);
    }
    json_decref(all);
    return rc;
}

/* --job: JSON text, or @FILE. A new reference, or NULL after reporting (exit code in
 * *rc). */
static json_t *ctl__job(ctl_client *c, int *rc)
{
    const char *spec = c->o->job;
    json_error_t jerr;
    json_t *job;
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "rb");
        char *text = f ? sp_malloc(CTL_SCHED_JOB_FILE_MAX + 1) : NULL;
        size_t n = text ? fread(text, 1, CTL_SCHED_JOB_FILE_MAX + 1, f) : 0;
        bool bad = f == NULL || text == NULL || ferror(f);
        if (f)
            fclose(f);
        if (bad || n > CTL_SCHED_JOB_FILE_MAX) {
            sp_free(text);
            *rc = bad ? ctl_client_fail(c, CTL_EXIT_USAGE, "usage", "cannot read %s", spec + 1)
                      : ctl_client_fail(c, CTL_EXIT_USAGE, "usage",
                                        "%s is larger than %d bytes (a job template is at "
                                        "most 64 KiB as compact JSON)",
                                        spec + 1, CTL_SCHED_JOB_FILE_MAX);
            return NULL;
        }
        job = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
        sp_free(text);
    } else {
        job = json_loads(spec, JSON_REJECT_DUPLICATES, &jerr);
    }
    if (job == NULL)
        *rc = ctl_client_fail(c, CTL_EXIT_USAGE, "usage", "--job is not JSON: %s", jerr.text);
    return job;
}

int ctl_cmd_schedule(ctl_client *c)
{
    const ctl_opts *o = c->o;
    const char *action = o->target, *name = o->name;
    char path[160], what[120];
    snprintf(path, sizeof path, "/v1/schedules/%s", name);
    snprintf(what, sizeof what, "schedule %s", name);
    if (strcmp(action, "show") == 0)
        return ctl__call(c, "GET", path, NULL, what, ctl__show_text, ctl__name_text);
    if (strcmp(action, "delete") == 0)
        return ctl__call(c, "DELETE", path, NULL, what, ctl__name_text, NULL);
    if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0)
        return ctl__call(c, "PATCH", path, action[0] == 'p' ? "{\"paused\":true}"
                                                            : "{\"paused\":false}",
                         what, ctl__show_text, NULL);
    if (strcmp(action, "runs") == 0) {
        snprintf(path, sizeof path, "/v1/schedules/%s/runs?limit=%lld", name,
                 (long long)(o->limit > 0 ? o->limit : 50));
        return ctl__call(c, "GET", path, NULL, what, ctl__runs_text, ctl__run_ids);
    }
    /* create */
    int rc = 0;
    json_t *job = ctl__job(c, &rc);
    if (job == NULL)
        return rc;
    json_t *body = json_pack("{s:s, s:s, s:o, s:b}", "name", name, "cron", o->cron, "job", job,
                             "paused", o->paused);
    if (body && o->timezone)
        json_object_set_new(body, "timezone", json_string(o->timezone));
    if (body && o->missed)
        json_object_set_new(body, "missed", json_string(o->missed));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL)
        return ctl_client_fail(c, CTL_EXIT_USAGE, "usage", "--cron, --timezone and --missed "
                                                           "must be UTF-8");
    rc = ctl__call(c, "POST", "/v1/schedules", text, what, ctl__show_text, ctl__name_text);
    sp_free(text);
    return rc;
}

/* schedules.c - /v1/schedules: create (POST), list, read, change (PATCH: pause, resume,
 * cron, timezone, missed, job), delete, and the jobs a schedule made (/runs). Storage
 * is spool/schedule.h's; when schedules fire, schedloop.c's; what a template may hold,
 * schedjob.h's (the POST routes' own validation). */
#include <jansson.h>
#include <string.h>

#include "cron.h"
#include "handlers.h"
#include "jobjson.h"
#include "reply.h"
#include "schedjob.h"
#include "spool/alloc.h"
#include "spool/log.h"

#define API_SCHED_BODY_MAX (1024 * 1024) /* a POST or PATCH body (the template within it is
                                          * limited to SP_SCHED_JOB_MAX once compact) */
#define API_SCHED_LIST_DEFAULT 100
#define API_SCHED_LIST_MAX 1000
#define API_SCHED_PATCH_TRIES 5

enum MHD_Result api_schedules_begin(api_req *r)
{
    return api_json_body_begin(r, API_SCHED_BODY_MAX);
}

/* ---- a schedule's JSON --------------------------------------------------------------- */

static json_t *api__sched_json(const sp_sched *s)
{
    json_t *job = json_loads(s->job ? s->job : "null", JSON_DECODE_ANY, NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:o, s:o, s:I, s:I, s:I, s:o, s:o}", "name",
                     s->name, "cron", s->cron, "timezone", s->timezone, "missed",
                     s->run_once ? "run_once" : "skip", "job", job ? job : json_null(),
                     "paused", s->paused, "next_run_at",
                     api_json_time(s->paused ? 0 : s->next_at), "last_run_at",
                     api_json_time(s->last_fired), "runs_total", (json_int_t)s->fired,
                     "missed_total", (json_int_t)s->passed, "invalid_total",
                     (json_int_t)s->invalid, "created_at",
                     api_json_time(s->created_at), "updated_at", api_json_time(s->updated_at));
}

static enum MHD_Result api__reply_sched(api_req *r, int status, const sp_sched *s)
{
    json_t *v = api__sched_json(s);
    if (v == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    if (status == 201) {
        char loc[96];
        snprintf(loc, sizeof loc, "/v1/schedules/%s", s->name);
        api_hdr_kv h[] = {{"Location", loc}};
        return api_reply_json_value_h(r, status, v, h, 1);
    }
    return api_reply_json_value(r, status, v);
}

/* The answer for a failed storage call. */
static enum MHD_Result api__refused(api_req *r, int rc, const sp_err *err)
{
    if (rc == SP_ENOTFOUND)
        return api_reply_error(r, API_E_NOT_FOUND, "no such schedule: %s", r->route.schedule);
    return api_reply_code(r, rc, err);
}

/* ---- the fields of a POST or PATCH body ----------------------------------------------- */

/* A body's fields once judged. */
typedef struct api__fields {
    const char *cron, *timezone, *missed; /* borrowed from the body; NULL: not given */
    json_t *job;                          /* borrowed; NULL: not given */
    int paused;                           /* -1: not given */
    api_cron c;
    api_tz *tz;                           /* owned once timezone (or UTC) is opened */
    char *job_text;                       /* owned: job in compact form */
} api__fields;

static void api__fields_free(api__fields *f)
{
    api_tz_free(f->tz);
    sp_free(f->job_text);
}

/* Judge the members of body (for POST when create) into f. 0 or -1 when it answered
 * (422 naming the field). */
static int api__fields_read(api_req *r, const json_t *body, bool create, api__fields *f)
{
    memset(f, 0, sizeof *f);
    f->paused = -1;
    api_invalid inv;
    if (!json_is_object(body)) {
        api_invalid_set(&inv, "body", "the body must be a JSON object");
        goto refuse;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "name") == 0 && create) {
            if (!json_is_string(v) || !sp_sched_name_valid(json_string_value(v))) {
                api_invalid_set(&inv, "name", "name must be 1-%d of A-Z a-z 0-9 _ . - (not "
                                              "starting with . or -)",
                                SP_SCHED_NAME_MAX);
                goto refuse;
            }
        } else if (strcmp(key, "cron") == 0 || strcmp(key, "timezone") == 0 ||
                   strcmp(key, "missed") == 0) {
            if (!json_is_string(v)) {
                api_invalid_set(&inv, key, "%s must be a string", key);
                goto refuse;
            }
            const char *s = json_string_value(v);
            *(key[0] == 'c' ? &f->cron : key[0] == 't' ? &f->timezone : &f->missed) = s;
        } else if (strcmp(key, "job") == 0) {
            f->job = v;
        } else if (strcmp(key, "paused") == 0) {
            if (!json_is_boolean(v)) {
                api_invalid_set(&inv, key, "paused must be true or false");
                goto refuse;
            }
            f->paused = json_is_true(v);
        } else {
            api_invalid_set(&inv, key, "unknown field '%.60s' (expected %scron, timezone, "
                                       "missed, job, paused)",
                            key, create ? "name, " : "");
            goto refuse;
        }
    }
    if (create) {
        static const char *const need[] = {"name", "cron", "job"};
        for (size_t i = 0; i < 3; i++)
            if (json_object_get(body, need[i]) == NULL) {
                api_invalid_set(&inv, need[i], "%s is required", need[i]);
                goto refuse;
            }
    }
    sp_err err;
    if (f->cron && api_cron_parse(f->cron, &f->c, &err) < 0) {
        api_invalid_set(&inv, "cron", "cron: %s", err.msg);
        goto refuse;
    }
    if (f->timezone && (strlen(f->timezone) > SP_SCHED_TZ_MAX ||
                        (f->tz = api_tz_open(f->timezone, &err)) == NULL)) {
        api_invalid_set(&inv, "timezone", "timezone must be an IANA time zone name such as "
                                          "Europe/Berlin or UTC");
        goto refuse;
    }
    if (f->missed && strcmp(f->missed, "skip") != 0 && strcmp(f->missed, "run_once") != 0) {
        api_invalid_set(&inv, "missed", "missed must be skip or run_once");
        goto refuse;
    }
    if (f->job) {
        api_sched_job j;
        api_sched_job_init(&j);
        int rc = api_sched_job_build(f->job, (size_t)r->srv->cfg->inline_max, &j, &inv);
        api_sched_job_free(&j);
        if (rc == SP_ENOMEM) {
            api_reply_code(r, rc, NULL);
            return -1;
        }
        if (rc < 0)
            goto refuse;
        if ((f->job_text = json_dumps(f->job, JSON_COMPACT)) == NULL) {
            api_reply_code(r, SP_ENOMEM, NULL);
            return -1;
        }
        if (strlen(f->job_text) > SP_SCHED_JOB_MAX) {
            api_invalid_set(&inv, "job", "the job template takes %zu bytes as compact JSON, "
                                         "more than the limit of %d",
                            strlen(f->job_text), SP_SCHED_JOB_MAX);
            goto refuse;
        }
    }
    return 0;
refuse:
    api_reply_invalid(r, &inv);
    return -1;
}

/* The body as JSON, or NULL when it answered 400. */
static json_t *api__body(api_req *r)
{
    json_error_t jerr;
    json_t *body = json_loadb(r->text.data ? r->text.data : "", r->text.len,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL)
        api_reply_error(r, API_E_INVALID_JSON, "the body is not valid JSON: %s (line %d, column %d)",
                        jerr.text, jerr.line, jerr.column);
    return body;
}

/* The first tick after now_ms into *next. 0 or -1 when it answered. */
static int api__next(api_req *r, const api_cron *c, const api_tz *tz, int64_t now_ms,
                     int64_t *next)
{
    sp_err err;
    if (api_cron_next(c, tz, now_ms, next, &err) == 0)
        return 0;
    api_invalid inv;
    api_invalid_set(&inv, "cron", "cron: %s", err.msg);
    api_reply_invalid(r, &inv);
    return -1;
}

/* ---- routes --------------------------------------------------------------------------- */

/* POST /v1/schedules */
enum MHD_Result api_schedules_create(api_req *r)
{
    json_t *body = api__body(r);
    if (body == NULL)
        return api_replied(r);
    api__fields f;
    sp_sched s;
    memset(&s, 0, sizeof s);
    enum MHD_Result ret;
    sp_err err;
    if (api__fields_read(r, body, true, &f) < 0) {
        ret = api_replied(r);
        goto out;
    }
    if (f.tz == NULL && (f.tz = api_tz_open("UTC", &err)) == NULL) {
        ret = api_reply_code(r, err.code, &err);
        goto out;
    }
    snprintf(s.name, sizeof s.name, "%s", json_string_value(json_object_get(body, "name")));
    snprintf(s.cron, sizeof s.cron, "%s", f.cron);
    snprintf(s.timezone, sizeof s.timezone, "%s", f.timezone ? f.timezone : "UTC");
    s.run_once = f.missed && strcmp(f.missed, "run_once") == 0;
    s.paused = f.paused == 1;
    s.job = f.job_text;
    sp_scheds *h = api_scheds(r, &err);
    int64_t now;
    int rc = h ? sp_scheds_time(h, &now, &err) : err.code;
    if (rc < 0) {
        ret = api_reply_code(r, rc, &err);
        goto out;
    }
    if (api__next(r, &f.c, f.tz, now, &s.next_at) < 0) {
        ret = api_replied(r);
        goto out;
    }
    s.last_tick = now;
    rc = sp_sched_create(h, &s, r->srv->cfg->max_schedules, &err);
    if (rc == SP_ECONFLICT)
        ret = api_reply_error(r, API_E_SCHEDULE_EXISTS, "a schedule named %s exists", s.name);
    else if (rc == SP_EFULL)
        ret = api_reply_error(r, API_E_TOO_MANY_SCHEDULES,
                              "%s; SPOOL_MAX_SCHEDULES is %lld: delete one first", err.msg,
                              (long long)r->srv->cfg->max_schedules);
    else if (rc < 0)
        ret = api_reply_code(r, rc, &err);
    else {
        sp_info(NULL, "schedule %s created (%s, %s)", s.name, s.cron, s.timezone);
        ret = api__reply_sched(r, 201, &s);
    }
out:
    s.job = NULL; /* f's */
    api__fields_free(&f);
    json_decref(body);
    return ret;
}

static int api__list_arg(void *ud, const char *name, const char *value)
{
    void **a = ud;
    api_req *r = a[0];
    api_invalid inv;
    int64_t v;
    if (strcmp(name, "limit") == 0) {
        if (sp_parse_i64(value, 1, API_SCHED_LIST_MAX, &v) == 0) {
            *(size_t *)a[1] = (size_t)v;
            return 0;
        }
        api_invalid_set(&inv, name, "limit must be from 1 to %d", API_SCHED_LIST_MAX);
    } else if (strcmp(name, "after") == 0 && a[2] != NULL) {
        if (sp_sched_name_valid(value)) {
            snprintf(a[2], SP_SCHED_NAME_MAX + 1, "%s", value);
            return 0;
        }
        api_invalid_set(&inv, name, "after must be a schedule name (the next cursor of a page)");
    } else if (strcmp(name, "before") == 0 && a[3] != NULL) {
        if (sp_id_valid(value)) {
            memcpy(a[3], value, SP_ID_LEN + 1);
            return 0;
        }
        api_invalid_set(&inv, name, "before must be a job id (the next cursor of a page)");
    } else {
        api_invalid_set(&inv, name, "unknown parameter '%s' (expected limit, %s)", name,
                        a[2] ? "after" : "before");
    }
    api_reply_invalid(r, &inv);
    return -1;
}

/* GET /v1/schedules?limit=&after=: {"schedules":[...],"next":name|null}, by name. */
enum MHD_Result api_schedules_list(api_req *r)
{
    size_t limit = API_SCHED_LIST_DEFAULT;
    char after[SP_SCHED_NAME_MAX + 1] = "";
    void *a[] = {r, &limit, after, NULL};
    if (api_query_each(r, api__list_arg, a) != 0)
        return api_replied(r);
    sp_err err;
    sp_scheds *h = api_scheds(r, &err);
    if (h == NULL)
        return api_reply_code(r, err.code, &err);
    sp_sched *all = sp_calloc(limit, sizeof *all);
    if (all == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    size_t n = 0;
    bool more = false;
    int rc = sp_sched_list(h, after, limit, all, &n, &more, &err);
    json_t *arr = rc == 0 ? json_array() : NULL;
    for (size_t i = 0; i < n && arr; i++)
        if (json_array_append_new(arr, api__sched_json(&all[i])) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    json_t *out = arr ? json_pack("{s:o, s:o}", "schedules", arr,
                                  "next", more && n ? json_string(all[n - 1].name) : json_null())
                      : NULL;
    for (size_t i = 0; i < n; i++)
        sp_sched_clear(&all[i]);
    sp_free(all);
    if (rc < 0)
        return api_reply_code(r, rc, &err);
    if (out == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    return api_reply_json_value(r, 200, out);
}

/* The schedule a route that takes no parameters names: 0 with *h and *s (clear it), or
 * -1 with the answer given in *ret. */
static int api__sched_load(api_req *r, sp_scheds **h, sp_sched *s, enum MHD_Result *ret)
{
    if (api_query_each(r, api_query_none, r) != 0) {
        *ret = api_replied(r);
        return -1;
    }
    sp_err err;
    *h = api_scheds(r, &err);
    int rc = *h ? sp_sched_get(*h, r->route.schedule, s, &err) : err.code;
    if (rc < 0) {
        *ret = api__refused(r, rc, &err);
        return -1;
    }
    return 0;
}

/* GET /v1/schedules/{name} */
enum MHD_Result api_schedules_get(api_req *r)
{
    sp_scheds *h;
    sp_sched s;
    enum MHD_Result ret;
    if (api__sched_load(r, &h, &s, &ret) < 0)
        return ret;
    ret = api__reply_sched(r, 200, &s);
    sp_sched_clear(&s);
    return ret;
}

/* Apply f to s (read at now): how its ticks move (enum sp_sched_timing), or -1 when it
 * answered. */
static int api__apply(api_req *r, const api__fields *f, sp_sched *s, int64_t now)
{
    bool was_paused = s->paused;
    bool retime = false;
    if (f->cron && strcmp(f->cron, s->cron) != 0) {
        snprintf(s->cron, sizeof s->cron, "%s", f->cron);
        retime = true;
    }
    if (f->timezone && strcmp(f->timezone, s->timezone) != 0) {
        snprintf(s->timezone, sizeof s->timezone, "%s", f->timezone);
        retime = true;
    }
    if (f->missed)
        s->run_once = strcmp(f->missed, "run_once") == 0;
    if (f->job_text) {
        sp_free(s->job);
        s->job = sp_strdup(f->job_text);
        if (s->job == NULL) {
            api_reply_code(r, SP_ENOMEM, NULL);
            return -1;
        }
    }
    if (f->paused >= 0)
        s->paused = f->paused == 1;
    if (s->paused)
        return was_paused ? SP_SCHED_KEEP : SP_SCHED_PAUSE;
    if (!retime && !was_paused)
        return SP_SCHED_KEEP;
    /* Resumed, or a new expression or zone: ticks count from now (none missed while
     * paused fires). */
    api_cron c;
    sp_err err;
    api_tz *tz = api_tz_open(s->timezone, &err);
    int rc = tz && api_cron_parse(s->cron, &c, &err) == 0 ? 0 : -1;
    if (rc < 0) {
        api_tz_free(tz);
        api_reply_error(r, API_E_INTERNAL, "the stored schedule does not parse: %s", err.msg);
        return -1;
    }
    rc = api__next(r, &c, tz, now, &s->next_at);
    api_tz_free(tz);
    if (rc < 0)
        return -1;
    s->last_tick = now;
    return SP_SCHED_RETIME;
}

/* PATCH /v1/schedules/{name}: any of cron, timezone, missed, job, paused. */
enum MHD_Result api_schedules_patch(api_req *r)
{
    json_t *body = api__body(r);
    if (body == NULL)
        return api_replied(r);
    api__fields f;
    enum MHD_Result ret;
    if (api__fields_read(r, body, false, &f) < 0) {
        ret = api_replied(r);
        goto out;
    }
    sp_err err;
    sp_scheds *h = api_scheds(r, &err);
    int rc = h ? 0 : err.code;
    sp_sched s;
    memset(&s, 0, sizeof s);
    /* Read, change, write if nobody wrote meanwhile; else again. */
    for (int i = 0; rc == 0 && i < API_SCHED_PATCH_TRIES; i++) {
        int64_t now;
        sp_sched_clear(&s);
        if ((rc = sp_sched_get(h, r->route.schedule, &s, &err)) < 0 ||
            (rc = sp_scheds_time(h, &now, &err)) < 0)
            break;
        int timing = api__apply(r, &f, &s, now);
        if (timing < 0) {
            ret = api_replied(r);
            sp_sched_clear(&s);
            goto out;
        }
        rc = sp_sched_update(h, &s, timing, &err);
        if (rc != SP_ECONFLICT)
            break;
        rc = i + 1 < API_SCHED_PATCH_TRIES ? 0 : rc;
    }
    if (rc == SP_ECONFLICT)
        ret = api_reply_error(r, API_E_SCHEDULE_CHANGED,
                              "the schedule kept changing while this change was made: try again");
    else if (rc < 0)
        ret = api__refused(r, rc, &err);
    else
        ret = api__reply_sched(r, 200, &s);
    sp_sched_clear(&s);
out:
    api__fields_free(&f);
    json_decref(body);
    return ret;
}

/* DELETE /v1/schedules/{name}: answers with the schedule as it was. */
enum MHD_Result api_schedules_delete(api_req *r)
{
    sp_scheds *h;
    sp_sched s;
    enum MHD_Result ret;
    if (api__sched_load(r, &h, &s, &ret) < 0)
        return ret;
    sp_err err;
    int rc = sp_sched_delete(h, r->route.schedule, s.generation, &err); /* the one read */
    if (rc < 0) {
        ret = api__refused(r, rc, &err);
    } else {
        sp_info(NULL, "schedule %s deleted", s.name);
        ret = api__reply_sched(r, 200, &s);
    }
    sp_sched_clear(&s);
    return ret;
}

/* GET /v1/schedules/{name}/runs?limit=&before=: {"runs":[{"tick_at","job_id","state",
 * "job"}...],"next":cursor|null}, the latest tick first; state and job are null once the
 * job has expired. */
enum MHD_Result api_schedules_runs(api_req *r)
{
    size_t limit = 50;
    char before[SP_ID_LEN + 1] = "";
    void *a[] = {r, &limit, NULL, before};
    if (api_query_each(r, api__list_arg, a) != 0)
        return api_replied(r);
    sp_err err;
    sp_scheds *h = api_scheds(r, &err);
    sp_sched s;
    int rc = h ? sp_sched_get(h, r->route.schedule, &s, &err) : err.code;
    if (rc < 0)
        return api__refused(r, rc, &err);
    sp_sched_clear(&s);
    sp_sched_run *runs = sp_calloc(limit, sizeof *runs);
    if (runs == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    size_t n = 0;
    char next[SP_ID_LEN + 1];
    rc = sp_sched_runs(h, r->route.schedule, before[0] ? before : NULL, limit, runs, &n, next,
                       &err);
    if (rc == SP_ENOTFOUND) {
        sp_free(runs);
        api_invalid inv;
        api_invalid_set(&inv, "before", "the cursor's run is no longer listed");
        return api_reply_invalid(r, &inv);
    }
    sp_buf b;
    sp_buf_init(&b, 256 * 1024 * 1024);
    if (rc == 0)
        rc = sp_buf_adds(&b, "{\"runs\":[");
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *t = api_json_time(runs[i].tick);
        char *tick = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
        json_decref(t);
        rc = tick ? sp_buf_addf(&b, "%s{\"tick_at\":%s,\"job_id\":\"%s\",\"state\":", i ? "," : "",
                                tick, runs[i].job.id)
                  : SP_ENOMEM;
        sp_free(tick);
        if (rc == 0)
            rc = runs[i].found ? sp_buf_addf(&b, "\"%s\",\"job\":",
                                             sp_state_name(runs[i].job.state))
                               : sp_buf_adds(&b, "null,\"job\":null}");
        if (rc == 0 && runs[i].found) {
            rc = api_job_render(&runs[i].job, &b);
            if (rc == 0)
                rc = sp_buf_addc(&b, '}');
        }
    }
    if (rc == 0)
        rc = next[0] ? sp_buf_addf(&b, "],\"next\":\"%s\"}\n", next) : sp_buf_adds(&b, "],\"next\":null}\n");
    for (size_t i = 0; i < n; i++)
        sp_job_clear(&runs[i].job);
    sp_free(runs);
    if (rc < 0) {
        sp_buf_free(&b);
        return api_reply_code(r, rc, &err);
    }
    return api_reply_json(r, 200, &b, NULL, 0);
}

/* workers.c - GET /v1/workers: the live workers (host, queues, concurrency, the jobs
 * each is running and its last heartbeat), for the dashboard's workers page. */
#include <jansson.h>
#include <string.h>

#include "handlers.h"
#include "jobjson.h"
#include "reply.h"
#include "spool/alloc.h"

#define API_MAX_WORKERS 1024
/* The most running jobs looked up for one answer (one read each). */
#define API_WORKER_JOBS_MAX 256

/* The comma-separated list s as a JSON array of strings. */
static json_t *api__split(const char *s, size_t cap)
{
    json_t *out = json_array();
    char *tmp = sp_strndup(s, strnlen(s, cap));
    char *save = NULL;
    for (char *p = tmp ? strtok_r(tmp, ",", &save) : NULL; p && out;
         p = strtok_r(NULL, ",", &save))
        json_array_append_new(out, json_string(p));
    sp_free(tmp);
    return out;
}

json_t *api_worker_json(const sp_worker_info *w)
{
    return json_pack("{s:s?, s:s?, s:s?, s:I, s:o?, s:I, s:o, s:o, s:o?, s:I, s:I}", "id", w->id,
                     "kind", w->kind, "host", w->host, "pid", (json_int_t)w->pid, "queues",
                     api__split(w->queues, sizeof w->queues), "concurrency",
                     (json_int_t)w->concurrency, "started_at", api_json_time(w->started_at),
                     "last_seen", api_json_time(w->last_seen), "current",
                     api__split(w->current, sizeof w->current), "processed",
                     (json_int_t)w->processed, "failed", (json_int_t)w->failed);
}

/* The jobs a worker runs, as {id, type, queue, state, progress, started_at}; ids whose
 * record is gone are left out. *budget counts the lookups left. */
static int api__current_jobs(sp_queue *q, json_t *ids, json_t *out, size_t *budget, sp_err *err)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (*budget == 0)
            break;
        (*budget)--;
        sp_job j;
        int rc = sp_queue_get(q, json_string_value(v), &j, err);
        if (rc == SP_ENOTFOUND)
            continue;
        if (rc < 0)
            return rc;
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:o}", "id", j.id, "type", j.type,
                              "queue", j.queue, "state", sp_state_name(j.state), "progress",
                              (json_int_t)j.progress, "started_at",
                              api_json_time(j.started_at));
        sp_job_clear(&j);
        if (o == NULL || json_array_append_new(out, o) < 0)
            return SP_ENOMEM;
    }
    return 0;
}

enum MHD_Result api_workers_list(api_req *r)
{
    if (api_query_each(r, api_query_none, r) != 0)
        return api_replied(r);
    sp_err err;
    sp_queue *q = api_queue(r, &err);
    if (q == NULL)
        return api_reply_code(r, err.code, &err);
    sp_worker_info *w = sp_calloc(API_MAX_WORKERS, sizeof *w);
    if (w == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    size_t nw = 0, budget = API_WORKER_JOBS_MAX;
    int rc = sp_queue_workers(q, w, API_MAX_WORKERS, &nw, &err);
    json_t *workers = rc == 0 ? json_array() : NULL;
    if (rc == 0 && workers == NULL)
        rc = SP_ENOMEM;
    for (size_t i = 0; i < nw && rc == 0; i++) {
        json_t *o = api_worker_json(&w[i]);
        json_t *jobs = json_array();
        json_t *current = json_object_get(o, "current"), *list = jobs; /* borrowed */
        /* set_new and append_new take their reference, even when they fail */
        bool bad = o == NULL || jobs == NULL;
        if (!bad)
            bad = json_object_set_new(o, "jobs", jobs) < 0;
        else
            json_decref(jobs);
        if (!bad)
            bad = json_array_append_new(workers, o) < 0;
        else
            json_decref(o);
        if (bad) {
            rc = SP_ENOMEM;
            break;
        }
        rc = api__current_jobs(q, current, list, &budget, &err);
    }
    sp_free(w);
    json_t *out = NULL;
    if (rc == 0 && (out = json_pack("{s:o}", "workers", workers)) == NULL)
        rc = SP_ENOMEM; /* json_pack took workers, even so */
    else if (rc < 0)
        json_decref(workers);
    if (rc < 0)
        return api_reply_code(r, rc, rc == SP_ENOMEM ? NULL : &err);
    return api_reply_json_value(r, 200, out);
}

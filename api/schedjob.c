/* schedjob.c - a schedule's job template into a job's params and input (see
 * schedjob.h). */
#include "schedjob.h"

#include <stdio.h>
#include <string.h>

#include "exportbody.h"
#include "spool/alloc.h"
#include "spool/schedule.h"

void api_sched_job_init(api_sched_job *j)
{
    memset(j, 0, sizeof *j);
    /* escaped, a byte of the inline rows or a URL takes at most 6 ("\u0001") */
    sp_buf_init(&j->params, 6 * SP_SCHED_JOB_MAX + 4096);
    sp_buf_init(&j->input, 6 * SP_SCHED_JOB_MAX + 4096);
}

void api_sched_job_free(api_sched_job *j)
{
    if (j == NULL)
        return;
    sp_buf_free(&j->params);
    sp_buf_free(&j->input);
    memset(j, 0, sizeof *j);
}

/* inv's field, which names a member of params, becomes "job.params.<field>". */
static int api__within(api_invalid *inv, int rc)
{
    if (rc != SP_EINVAL || inv == NULL)
        return rc;
    char f[sizeof inv->field];
    if (strcmp(inv->field, "body") == 0)
        snprintf(f, sizeof f, "job.params");
    else
        snprintf(f, sizeof f, "job.params.%.100s", inv->field);
    memcpy(inv->field, f, sizeof f);
    return rc;
}

static int api__rows_sink(void *ud, const char *data, size_t n)
{
    return sp_buf_add(ud, data, n);
}

static int api__export(const json_t *params, size_t inline_max, api_sched_job *j,
                       api_invalid *inv)
{
    char *text = json_dumps(params, JSON_COMPACT);
    if (text == NULL)
        return SP_ENOMEM;
    sp_buf rows;
    sp_buf_init(&rows, inline_max);
    api_export_req x;
    api_export_init(&x);
    int rc = api_xbody_parse(text, strlen(text), api__rows_sink, &rows, &x, inv);
    bool has_rows = json_object_get(params, "rows") != NULL;
    sp_free(text);
    if (rc == SP_ETOOBIG)
        rc = api_invalid_set(inv, "rows",
                             "a schedule's rows travel in each job's record: at most %zu bytes "
                             "(SPOOL_INLINE_DATASET_MAX) as NDJSON; give a larger dataset by "
                             "source_url",
                             inline_max);
    if (rc == SP_EPROTO) /* not possible for text jansson wrote */
        rc = api_invalid_set(inv, "body", "%s", inv->message);
    if (rc == 0)
        rc = api_export_params(&x, &j->params);
    if (rc == 0)
        rc = has_rows ? api_export_input_inline(&rows, &j->input)
                      : api_export_input(x.format, 0, x.source_url, &j->input);
    if (rc == 0) {
        j->high_priority = x.high_priority;
        memcpy(j->callback_url, x.callback_url, sizeof j->callback_url);
    }
    api_export_free(&x);
    sp_buf_free(&rows);
    return api__within(inv, rc);
}

static int api__video(const json_t *params, api_sched_job *j, api_invalid *inv)
{
    api_video_req v;
    api_video_init(&v);
    int rc = api_video_from_json(&v, params, inv);
    if (rc == 0)
        rc = api_video_params(&v, &j->params);
    if (rc == 0) {
        json_t *in = json_pack("{s:s}", "url", v.source_url);
        rc = in ? api_json_append(&j->input, in) : SP_ENOMEM;
        json_decref(in);
    }
    if (rc == 0) {
        j->high_priority = v.high_priority;
        memcpy(j->callback_url, v.callback_url, sizeof j->callback_url);
    }
    return api__within(inv, rc);
}

int api_sched_job_build(const json_t *tmpl, size_t inline_max, api_sched_job *j,
                        api_invalid *inv)
{
    if (!json_is_object(tmpl))
        return api_invalid_set(inv, "job", "job must be an object {\"type\", \"params\"}");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)tmpl, key, val) {
        if (strcmp(key, "type") != 0 && strcmp(key, "params") != 0)
            return api_invalid_set(inv, "job", "unknown member '%.60s' of job (expected type, "
                                               "params)",
                                   key);
    }
    const char *type = json_string_value(json_object_get(tmpl, "type"));
    if (type == NULL || (strcmp(type, "pdf.export") != 0 && strcmp(type, "video.transcode") != 0))
        return api_invalid_set(inv, "job.type", "job.type must be pdf.export or video.transcode");
    const json_t *params = json_object_get(tmpl, "params");
    if (!json_is_object(params))
        return api_invalid_set(inv, "job.params",
                               "job.params must be an object: the JSON body a POST to %s takes",
                               type[0] == 'p' ? "/v1/exports" : "/v1/videos");
    static const char *const when[] = {"run_at", "delay"};
    for (size_t i = 0; i < 2; i++)
        if (json_object_get(params, when[i]))
            return api_invalid_set(inv, i ? "job.params.delay" : "job.params.run_at",
                                   "a schedule's job runs at its tick: %s is not taken",
                                   when[i]);
    sp_buf_reset(&j->params);
    sp_buf_reset(&j->input);
    j->type = type[0] == 'p' ? "pdf.export" : "video.transcode";
    return j->type[0] == 'p' ? api__export(params, inline_max, j, inv) : api__video(params, j, inv);
}

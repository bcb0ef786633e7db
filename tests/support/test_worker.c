/* test_worker.c - spool-test-worker: a worker binary built on the shared runtime whose
 * jobs do what their params say, so tests can drive the runtime itself:
 *   {"sleep_ms": N}        work for N ms, reporting progress, stopping when asked
 *   {"fail": "retry"|"permanent"}  fail that way
 *   {"limit_ms": N}        set the job's time limit
 *   {"output": "name"}     commit a blob with that name holding the job id
 * It uses the same options as the real workers (--queues, --concurrency, ...). */
#include <jansson.h>
#include <string.h>

#include "spool/util.h"
#include "spool/worker.h"

static int handle(sp_job_ctx *ctx, void *ud, int slot)
{
    (void)ud;
    (void)slot;
    const sp_job *job = sp_job_ctx_job(ctx);
    json_t *p = json_loads(job->params ? job->params : "{}", 0, NULL);
    if (p == NULL)
        return sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params", "params are not JSON");
    int64_t sleep_ms = json_integer_value(json_object_get(p, "sleep_ms"));
    int64_t limit_ms = json_integer_value(json_object_get(p, "limit_ms"));
    const char *fail = json_string_value(json_object_get(p, "fail"));
    const char *output = json_string_value(json_object_get(p, "output"));
    int rc = 0;
    if (limit_ms > 0)
        sp_job_ctx_set_time_limit(ctx, limit_ms);
    sp_job_ctx_set_metadata(ctx, "{\"phase\":\"working\"}");
    int64_t start = sp_mono_ms();
    while (sp_mono_ms() - start < sleep_ms) {
        if (sp_job_ctx_stopping(ctx)) {
            rc = sp_job_ctx_stop_reason(ctx);
            goto out;
        }
        sp_job_ctx_progress(ctx, (int)((sp_mono_ms() - start) * 100 / sleep_ms));
        sp_sleep_ms(10, NULL);
    }
    if (fail && strcmp(fail, "retry") == 0) {
        rc = sp_job_ctx_fail(ctx, SP_EIO, true, "io_error", "simulated transient failure");
        goto out;
    }
    if (fail && strcmp(fail, "permanent") == 0) {
        rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_input",
                             "simulated permanent failure");
        goto out;
    }
    if (output) {
        sp_blob_writer *w;
        sp_err err;
        rc = sp_blob_create(sp_job_ctx_blobs(ctx), job->id, output, 0, &w, &err);
        if (rc == 0)
            rc = sp_blob_write(w, job->id, strlen(job->id), &err);
        if (rc == 0)
            rc = sp_blob_commit(w, false, NULL, &err);
        else
            sp_blob_abort(w);
        if (rc == 0)
            rc = sp_job_ctx_add_output(ctx, output, "text/plain", (int64_t)strlen(job->id),
                                       NULL);
        if (rc < 0)
            rc = sp_job_ctx_fail(ctx, rc, true, NULL, "writing the output: %s", err.msg);
    }
out:
    json_decref(p);
    return rc;
}

int main(int argc, char **argv)
{
    sp_worker_def def = {"spool-test-worker", "A worker for testing the runtime.", "test",
                         "test", handle, NULL, NULL, NULL};
    return sp_worker_main(&def, NULL, 0, argc, argv);
}

/* schedjob.h - a schedule's job template, {"type": "pdf.export" | "video.transcode",
 * "params": {...}}, where params is the JSON body a POST to /v1/exports or /v1/videos
 * takes, judged by the very code that judges those bodies (validate.h, exportbody.h):
 * into the params and input of the job each tick makes. A template cannot upload (a
 * video needs source_url), nor carry run_at or delay (the tick says when); an export's
 * inline rows must fit in the job record (SPOOL_INLINE_DATASET_MAX). Pure code over
 * jansson, so the unit tests and the fuzzer can drive it. */
#ifndef SPOOL_API_SCHEDJOB_H
#define SPOOL_API_SCHEDJOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "spool/buf.h"
#include "validate.h"

typedef struct api_sched_job {
    const char *type;     /* "pdf.export" or "video.transcode" (static) */
    sp_buf params, input; /* the job's params and input, JSON text */
    bool high_priority;
    char callback_url[API_CALLBACK_MAX + 1]; /* "" if none */
} api_sched_job;

void api_sched_job_init(api_sched_job *j);
void api_sched_job_free(api_sched_job *j); /* accepts NULL; init again to reuse */

/* Judge template into j (inited). inline_max: the most bytes an export's rows take as
 * NDJSON in the job record. 0; SP_EINVAL with inv naming the field ("job", "job.type",
 * "job.params", "job.params.title", "job.params.rows"...); SP_ENOMEM. On error j holds
 * nothing to use. */
int api_sched_job_build(const json_t *tmpl, size_t inline_max, api_sched_job *j,
                        api_invalid *inv);

#endif

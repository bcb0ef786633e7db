/* fuzz_schedjob.c - a schedule's job template (api/schedjob.h) as POST /v1/schedules
 * takes it: any JSON value, judged into a job's params and input, with a small and a
 * zero inline limit; a template that passes must give JSON params and input. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "schedjob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *t = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                           &jerr);
    if (t == NULL)
        return 0;
    static const size_t limits[] = {0, 64, 16384};
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        api_sched_job j;
        api_invalid inv;
        api_sched_job_init(&j);
        int rc = api_sched_job_build(t, limits[i], &j, &inv);
        if (rc == 0 && (!api_json_valid(j.params.data, j.params.len) ||
                        !api_json_valid(j.input.data, j.input.len)))
            abort();
        if (rc == SP_EINVAL && strncmp(inv.field, "job", 3) != 0)
            abort(); /* every refusal names a field of the template */
        api_sched_job_free(&j);
    }
    json_decref(t);
    return 0;
}

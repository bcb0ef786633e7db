/* fuzz_path.c - request paths and ids: route parsing must classify any path, and a
 * route that carries an id or an output name only ever carries valid ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "spool/blob.h"
#include "spool/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[8192];
    if (size >= sizeof path)
        return 0;
    memcpy(path, data, size);
    path[size] = '\0';
    api_route r;
    api_route_id id = api_route_parse(path, &r);
    if (id != r.id || (unsigned)id >= API_R_COUNT)
        abort();
    bool job_route = id == API_R_JOB || id == API_R_JOB_RETRY || id == API_R_JOB_OUTPUT ||
                     id == API_R_JOB_EVENTS;
    if (job_route && !r.bad_param && !sp_id_valid(r.job))
        abort();
    if (id == API_R_JOB_OUTPUT && !r.bad_param && !sp_blob_name_valid(r.name))
        abort();
    if (!job_route && (r.bad_param || r.job[0] || r.name[0]))
        abort();
    (void)api_route_label(id);
    (void)api_route_methods(id);
    (void)api_route_needs_auth(id);
    (void)api_method_bit(path);
    if (sp_id_valid(path))
        (void)sp_id_time_ms(path);
    return 0;
}

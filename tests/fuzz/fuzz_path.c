/* fuzz_path.c - request paths and ids: route parsing must classify any path, and a
 * route that carries an id, an output or asset name, a queue or schedule name only ever
 * carries valid ones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "spool/blob.h"
#include "spool/config.h"
#include "spool/schedule.h"
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
    bool queue_route = id == API_R_QUEUE_DEAD || id == API_R_QUEUE_DEAD_RETRY ||
                       id == API_R_QUEUE_DEAD_PURGE || id == API_R_QUEUE_HISTORY ||
                       id == API_R_QUEUE_PAUSE || id == API_R_QUEUE_RESUME;
    if (queue_route && !r.bad_param && !sp_queue_name_valid(r.queue))
        abort();
    bool sched_route = id == API_R_SCHEDULE || id == API_R_SCHEDULE_RUNS;
    if (sched_route && !r.bad_param && !sp_sched_name_valid(r.schedule))
        abort();
    if (!sched_route && r.schedule[0])
        abort();
    /* an asset's name is one path segment that is not hidden (nor . or ..) */
    if (id == API_R_UI_ASSET && (r.name[0] == '\0' || r.name[0] == '.' || strchr(r.name, '/')))
        abort();
    if ((!job_route && !queue_route && !sched_route && r.bad_param) || (!job_route && r.job[0]) ||
        (!job_route && id != API_R_UI_ASSET && r.name[0]) || (!queue_route && r.queue[0]))
        abort();
    if (api_path_is_ui(path) != (strncmp(path, "/ui", 3) == 0 && (path[3] == '\0' || path[3] == '/')))
        abort();
    (void)api_route_label(id);
    (void)api_route_methods(id);
    (void)api_route_needs_auth(id);
    (void)api_method_bit(path);
    if (sp_id_valid(path))
        (void)sp_id_time_ms(path);
    return 0;
}

/* route.c - the API's URL space (see route.h). */
#include "route.h"

#include <string.h>

#include "spool/blob.h"
#include "spool/config.h"

static const struct {
    const char *label;
    unsigned methods;
} api__routes[API_R_COUNT] = {
    [API_R_NONE] = {"other", 0},
    [API_R_HEALTHZ] = {"/healthz", API_M_GET | API_M_HEAD},
    [API_R_READYZ] = {"/readyz", API_M_GET | API_M_HEAD},
    [API_R_METRICS] = {"/metrics", API_M_GET | API_M_HEAD},
    [API_R_VIDEOS] = {"/v1/videos", API_M_POST},
    [API_R_EXPORTS] = {"/v1/exports", API_M_POST},
    [API_R_JOBS] = {"/v1/jobs", API_M_GET | API_M_HEAD},
    [API_R_JOB] = {"/v1/jobs/{id}", API_M_GET | API_M_HEAD | API_M_DELETE},
    [API_R_JOB_RETRY] = {"/v1/jobs/{id}/retry", API_M_POST},
    [API_R_JOB_OUTPUT] = {"/v1/jobs/{id}/outputs/{name}", API_M_GET | API_M_HEAD},
    [API_R_QUEUES] = {"/v1/queues", API_M_GET | API_M_HEAD},
    [API_R_EVENTS] = {"/v1/events", API_M_GET},
    [API_R_JOB_EVENTS] = {"/v1/jobs/{id}/events", API_M_GET},
    [API_R_WORKERS] = {"/v1/workers", API_M_GET | API_M_HEAD},
    [API_R_QUEUE_DEAD] = {"/v1/queues/{name}/dead", API_M_GET | API_M_HEAD},
    [API_R_QUEUE_DEAD_RETRY] = {"/v1/queues/{name}/dead/retry", API_M_POST},
    [API_R_QUEUE_DEAD_PURGE] = {"/v1/queues/{name}/dead/purge", API_M_POST},
    [API_R_QUEUE_HISTORY] = {"/v1/queues/{name}/history", API_M_GET | API_M_HEAD},
    [API_R_UI] = {"/ui", API_M_GET | API_M_HEAD},
    [API_R_UI_ASSET] = {"/ui/assets/{name}", API_M_GET | API_M_HEAD},
    [API_R_QUEUE_PAUSE] = {"/v1/queues/{name}/pause", API_M_POST},
    [API_R_QUEUE_RESUME] = {"/v1/queues/{name}/resume", API_M_POST},
    [API_R_OPENAPI] = {"/openapi.json", API_M_GET | API_M_HEAD},
    [API_R_DOCS_API] = {"/docs/api", API_M_GET | API_M_HEAD},
    [API_R_SCHEDULES] = {"/v1/schedules", API_M_GET | API_M_HEAD | API_M_POST},
    [API_R_SCHEDULE] = {"/v1/schedules/{name}",
                        API_M_GET | API_M_HEAD | API_M_PATCH | API_M_DELETE},
    [API_R_SCHEDULE_RUNS] = {"/v1/schedules/{name}/runs", API_M_GET | API_M_HEAD},
};

const char *api_route_label(api_route_id id)
{
    return (unsigned)id < API_R_COUNT ? api__routes[id].label : "other";
}

unsigned api_route_methods(api_route_id id)
{
    return (unsigned)id < API_R_COUNT ? api__routes[id].methods : 0;
}

unsigned api_method_bit(const char *m)
{
    if (m == NULL)
        return API_M_OTHER;
    if (strcmp(m, "GET") == 0)
        return API_M_GET;
    if (strcmp(m, "HEAD") == 0)
        return API_M_HEAD;
    if (strcmp(m, "POST") == 0)
        return API_M_POST;
    if (strcmp(m, "DELETE") == 0)
        return API_M_DELETE;
    if (strcmp(m, "PATCH") == 0)
        return API_M_PATCH;
    return API_M_OTHER;
}

bool api_route_needs_auth(api_route_id id)
{
    /* The dashboard's files carry no data: the data routes they call need the token. */
    return id != API_R_HEALTHZ && id != API_R_READYZ && id != API_R_METRICS && id != API_R_UI &&
           id != API_R_UI_ASSET && id != API_R_OPENAPI && id != API_R_DOCS_API;
}

bool api_path_is_ui(const char *path)
{
    return path && strncmp(path, "/ui", 3) == 0 && (path[3] == '\0' || path[3] == '/');
}

/* Copy the segment starting at *p (up to the next '/' or the end) into out (cap bytes
 * with the NUL); advance *p past it. False when it does not fit. */
static bool api__segment(const char **p, char *out, size_t cap)
{
    const char *s = *p;
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    *p = s + n;
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    return true;
}

/* The routes under /v1/queues/{name}/, p just after that prefix. A name that is not a
 * valid queue name is a bad_param (no such queue can exist). */
static api_route_id api__queue_route(const char *p, api_route *out)
{
    char name[SP_QUEUE_MAX + 2];
    bool name_ok = api__segment(&p, name, sizeof name) && sp_queue_name_valid(name);
    static const struct {
        const char *rest;
        api_route_id id;
    } sub[] = {{"/dead", API_R_QUEUE_DEAD},
               {"/dead/retry", API_R_QUEUE_DEAD_RETRY},
               {"/dead/purge", API_R_QUEUE_DEAD_PURGE},
               {"/history", API_R_QUEUE_HISTORY},
               {"/pause", API_R_QUEUE_PAUSE},
               {"/resume", API_R_QUEUE_RESUME}};
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        if (strcmp(p, sub[i].rest) != 0)
            continue;
        out->id = sub[i].id;
        if (name_ok)
            memcpy(out->queue, name, strlen(name) + 1);
        else
            out->bad_param = true;
        return out->id;
    }
    return out->id;
}

/* /v1/schedules/{name}[/runs]: p is past "/v1/schedules/". */
static api_route_id api__schedule_route(const char *p, api_route *out)
{
    char name[SP_SCHED_NAME_MAX + 2];
    bool name_ok = api__segment(&p, name, sizeof name) && sp_sched_name_valid(name);
    if (*p == '\0')
        out->id = API_R_SCHEDULE;
    else if (strcmp(p, "/runs") == 0)
        out->id = API_R_SCHEDULE_RUNS;
    else
        return out->id;
    if (name_ok)
        memcpy(out->schedule, name, strlen(name) + 1);
    else
        out->bad_param = true;
    return out->id;
}

static bool api__asset_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > API_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* /ui/...: p is past "/ui/". The dashboard's pages all get its one HTML file; its own
 * script reads the path. */
static api_route_id api__ui_route(const char *p, api_route *out)
{
    if (strncmp(p, "assets/", 7) == 0) {
        if (api__asset_name_ok(p + 7)) {
            out->id = API_R_UI_ASSET;
            memcpy(out->name, p + 7, strlen(p + 7) + 1);
        }
        return out->id;
    }
    static const char *const pages[] = {"queues", "jobs", "workers", "dead"};
    for (size_t i = 0; i < sizeof pages / sizeof *pages; i++) {
        size_t n = strlen(pages[i]);
        if (strncmp(p, pages[i], n) == 0 && (p[n] == '\0' || p[n] == '/') &&
            strlen(p) <= 256)
            return out->id = API_R_UI;
    }
    return out->id;
}

api_route_id api_route_parse(const char *path, api_route *out)
{
    memset(out, 0, sizeof *out);
    out->id = API_R_NONE;
    if (path == NULL)
        return out->id;
    static const struct {
        const char *path;
        api_route_id id;
    } fixed[] = {{"/healthz", API_R_HEALTHZ}, {"/readyz", API_R_READYZ},
                 {"/metrics", API_R_METRICS}, {"/v1/videos", API_R_VIDEOS},
                 {"/v1/exports", API_R_EXPORTS}, {"/v1/jobs", API_R_JOBS},
                 {"/v1/queues", API_R_QUEUES}, {"/v1/workers", API_R_WORKERS},
                 {"/v1/events", API_R_EVENTS}, {"/ui", API_R_UI}, {"/ui/", API_R_UI},
                 {"/openapi.json", API_R_OPENAPI}, {"/docs/api", API_R_DOCS_API},
                 {"/v1/schedules", API_R_SCHEDULES}};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (strcmp(path, fixed[i].path) == 0)
            return out->id = fixed[i].id;
    }
    if (strncmp(path, "/v1/queues/", 11) == 0)
        return api__queue_route(path + 11, out);
    if (strncmp(path, "/ui/", 4) == 0)
        return api__ui_route(path + 4, out);
    if (strncmp(path, "/v1/schedules/", 14) == 0)
        return api__schedule_route(path + 14, out);
    static const char jobs[] = "/v1/jobs/";
    if (strncmp(path, jobs, sizeof jobs - 1) != 0)
        return out->id;
    const char *p = path + sizeof jobs - 1;
    char id[SP_ID_LEN + 2];
    bool id_ok = api__segment(&p, id, sizeof id) && sp_id_valid(id);
    api_route_id route;
    if (*p == '\0') {
        route = API_R_JOB;
    } else if (strcmp(p, "/retry") == 0) {
        route = API_R_JOB_RETRY;
    } else if (strcmp(p, "/events") == 0) {
        route = API_R_JOB_EVENTS;
    } else if (strncmp(p, "/outputs/", 9) == 0) {
        p += 9; /* the rest is the name: a blob name, which may have folders */
        route = API_R_JOB_OUTPUT;
        if (sp_blob_name_valid(p))
            memcpy(out->name, p, strlen(p) + 1);
        else
            out->bad_param = true;
    } else {
        return out->id;
    }
    out->id = route;
    if (id_ok)
        memcpy(out->job, id, SP_ID_LEN + 1);
    else
        out->bad_param = true;
    return out->id;
}

bool api_uri_has_nul(const char *raw_uri)
{
    for (const char *p = raw_uri; p && (p = strchr(p, '%')) != NULL; p++) {
        if (p[1] == '0' && p[2] == '0')
            return true;
    }
    return false;
}

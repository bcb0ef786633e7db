/* ui.c - the dashboard's files: GET /ui and its pages (/ui/jobs/{id}...) answer its one
 * HTML file, whose script reads the address; /ui/assets/{name} its scripts, style and
 * Chart.js. All embedded (ui.h); no token needed, as they carry no data. Every answer
 * under /ui also gets the security headers reply.c adds there. */
#include "ui.h"

#include <string.h>

#include "handlers.h"
#include "reply.h"

const api_ui_file *api_ui_find(const char *name)
{
    for (size_t i = 0; i < api_ui_nfiles; i++) {
        if (strcmp(api_ui_files[i].name, name) == 0)
            return &api_ui_files[i];
    }
    return NULL;
}

const char *api_ui_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {{".html", "text/html; charset=utf-8"},
                 {".js", "text/javascript; charset=utf-8"},
                 {".css", "text/css; charset=utf-8"},
                 {".svg", "image/svg+xml"},
                 {".png", "image/png"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++) {
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* Answer file f (or 304 when the client has this version): revalidated on each use, so
 * an upgraded spool-api serves its new dashboard at once. */
static enum MHD_Result api__ui_file(api_req *r, const api_ui_file *f)
{
    const char *inm = api_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool same = inm && api_hdr_etag_match(inm, f->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        same ? 0 : f->len, same ? (void *)"" : (void *)f->data, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    bool ok =
        (same ||
         MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, api_ui_type(f->name)) ==
             MHD_YES) &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, f->etag) == MHD_YES &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    return api_reply_response(r, same ? 304 : 200, resp);
}

enum MHD_Result api_ui_page(api_req *r)
{
    const api_ui_file *f = api_ui_find("index.html");
    if (f == NULL)
        return api_reply_error(r, API_E_INTERNAL, "the dashboard was not built in");
    return api__ui_file(r, f);
}

enum MHD_Result api_ui_asset(api_req *r)
{
    const api_ui_file *f = api_ui_find(r->route.name);
    if (f == NULL || strcmp(f->name, "index.html") == 0)
        return api_reply_error(r, API_E_NO_ROUTE, "no such file: %s", r->path);
    return api__ui_file(r, f);
}

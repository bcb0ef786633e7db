/* apidoc.c - the API describing itself: GET /openapi.json (api/openapi.json, the
 * OpenAPI 3.1 description of every route) and GET /docs/api (that description rendered
 * as a static page, api/openapi.html). Both are built into the binary (assets.h), need
 * no token, and are cached by clients for a few minutes and revalidated by ETag. */
#include <string.h>

#include "assets.h"
#include "handlers.h"
#include "hdr.h"
#include "reply.h"

/* The page has no scripts and loads nothing: its styles are inline, its links local. */
#define API_DOCS_CSP                                                                       \
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "      \
    "form-action 'none'; frame-ancestors 'self'"

typedef struct api__asset {
    const char *data;
    size_t len;
    const char *etag;
    const char *content_type;
    bool page; /* a page a browser shows: CSP and frame headers */
} api__asset;

/* Answer the asset (200), or 304 when If-None-Match names its ETag. */
static enum MHD_Result api__asset_reply(api_req *r, const api__asset *a)
{
    const char *inm = api_header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = inm && api_hdr_etag_match(inm, a->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? (void *)"" : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    /* a 304 carries the validators only; a page gets the browser's headers too */
    const api_hdr_kv always[] = {
        {MHD_HTTP_HEADER_ETAG, a->etag},
        {MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=300"},
        {"X-Content-Type-Options", "nosniff"},
    };
    const api_hdr_kv page[] = {
        {"Content-Security-Policy", API_DOCS_CSP},
        {"X-Frame-Options", "SAMEORIGIN"},
        {"Referrer-Policy", "no-referrer"},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof always / sizeof *always && ok; i++)
        ok = MHD_add_response_header(resp, always[i].name, always[i].value) == MHD_YES;
    if (ok && !fresh)
        ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type) ==
             MHD_YES;
    for (size_t i = 0; i < sizeof page / sizeof *page && ok && a->page && !fresh; i++)
        ok = MHD_add_response_header(resp, page[i].name, page[i].value) == MHD_YES;
    if (!ok) {
        MHD_destroy_response(resp);
        return api_reply_code(r, SP_ENOMEM, NULL);
    }
    return api_reply_response(r, fresh ? 304 : 200, resp);
}

enum MHD_Result api_doc_openapi(api_req *r)
{
    const api__asset a = {api_asset_openapi, api_asset_openapi_len, api_asset_openapi_etag,
                          "application/json", false};
    return api__asset_reply(r, &a);
}

enum MHD_Result api_doc_page(api_req *r)
{
    const api__asset a = {api_asset_docs, api_asset_docs_len, api_asset_docs_etag,
                          "text/html; charset=utf-8", true};
    return api__asset_reply(r, &a);
}

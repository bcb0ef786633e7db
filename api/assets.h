/* assets.h - files built into spool-api at build time (scripts/embed-files.sh writes
 * their definitions into $(O)/gen/api_assets.c): each is the file's bytes (with a
 * NUL after them), its length, and an ETag naming its content. Read-only, static. */
#ifndef SPOOL_API_ASSETS_H
#define SPOOL_API_ASSETS_H

#include <stddef.h>

/* api/openapi.json: the OpenAPI description of every route. */
extern const char api_asset_openapi[];
extern const size_t api_asset_openapi_len;
extern const char api_asset_openapi_etag[];

/* api/openapi.html: the same, rendered (make openapi-docs). */
extern const char api_asset_docs[];
extern const size_t api_asset_docs_len;
extern const char api_asset_docs_etag[];

#endif

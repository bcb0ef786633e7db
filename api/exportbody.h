/* exportbody.h - the JSON body of POST /v1/exports, read as it streams. Its `rows` go
 * through rows.h to canonical NDJSON as they arrive; every other member (title,
 * columns, ...: small by nature) is gathered into a jansson object, within a budget,
 * and validated by validate.h when the body ends. So memory stays bounded by the
 * longest row and the budget, whatever the body's size. Pure code (no HTTP library),
 * so the fuzzer can drive it. */
#ifndef SPOOL_API_EXPORTBODY_H
#define SPOOL_API_EXPORTBODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rows.h"
#include "validate.h"

/* The members other than rows may take this much (text, and 32 bytes per value; the
 * largest valid request, 256 columns with the longest keys and labels, takes about
 * 460 KiB); past it the member is refused. */
#define API_XBODY_FIELDS_MAX (1024 * 1024)
/* ... and nest at most this deep. */
#define API_XBODY_MAX_DEPTH 16

typedef struct api_xbody api_xbody;

/* A reader whose rows go to sink(ud, ...) as NDJSON (see rows.h). NULL when out of
 * memory. */
api_xbody *api_xbody_new(api_rows_sink sink, void *ud);
void api_xbody_free(api_xbody *b); /* accepts NULL */

/* The next n bytes of the body. Returns 0; SP_EPROTO when it is not JSON (inv->message
 * says why, for a 400); SP_EINVAL with inv naming the field (422); SP_ENOMEM; or the
 * sink's code. After an error every call returns it again. */
int api_xbody_feed(api_xbody *b, const char *data, size_t n, api_invalid *inv);

/* The body has ended: validate it into x (see api_export_from_json). The same codes. */
int api_xbody_finish(api_xbody *b, api_export_req *x, api_invalid *inv);

/* Whether the body has rows (known once api_xbody_finish returned 0), and how many. */
bool api_xbody_has_rows(const api_xbody *b);
uint64_t api_xbody_rows(const api_xbody *b);

/* The whole body at once: api_xbody_new, _feed, _finish and _free. */
int api_xbody_parse(const char *body, size_t n, api_rows_sink sink, void *ud,
                    api_export_req *x, api_invalid *inv);

#endif

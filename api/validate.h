/* validate.h - strict validation of the two job requests, from JSON bodies, query
 * strings and form fields, into the `params` and `input` that docs/jobs.md defines.
 * Every failure names the offending field (api_invalid), for a 422 answer. Pure code
 * over jansson, so the fuzzer can drive it. */
#ifndef SPOOL_API_VALIDATE_H
#define SPOOL_API_VALIDATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "spool/buf.h"
#include "spool/err.h"

/* Why a request is invalid: the field (e.g. "columns[2].align") and a message. */
typedef struct api_invalid {
    char field[128];
    char message[256];
} api_invalid;

/* Fill inv and return SP_EINVAL. inv may be NULL. */
int api_invalid_set(api_invalid *inv, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define API_URL_MAX 2048

struct sp_outbound;
/* The outbound guard (SPOOL_OUTBOUND_ALLOW) source_url is judged by, set once before
 * the server starts; until then only public addresses pass. Not owned. */
void api_validate_set_outbound(const struct sp_outbound *g);
#define API_FILENAME_MAX 255
#define API_CALLBACK_MAX 2048 /* SP_WEBHOOK_URL_MAX */

/* Check a callback_url of n bytes (webhook.h's sp_webhook_url_check, with the guard set
 * above) and copy it into out. 0, or SP_EINVAL / SP_ENOMEM with inv naming
 * "callback_url". */
int api_callback_url(const char *s, size_t n, char out[API_CALLBACK_MAX + 1], api_invalid *inv);

/* When a job runs, from run_at (RFC 3339 with a zone: "2026-12-24T06:00:00+01:00") or
 * delay (seconds, or a duration such as "90s", "5m", "2h"; in JSON also a number of
 * seconds), at most API_WHEN_MAX_MS ahead; one of them, not both. A time already past
 * runs the job at once. */
#define API_WHEN_MAX_MS (366LL * 86400 * 1000)
typedef struct api_when {
    int64_t run_at_ms; /* > 0: given (ms since the epoch) */
    int64_t delay_ms;  /* > 0: given */
    bool given;        /* run_at or delay was given (refuses the other, or a repeat) */
} api_when;

/* A request member (api_when_json: a JSON value) or text parameter (api_when_text) named
 * name: 1 when it is run_at or delay and was applied to w, 0 when it is neither,
 * SP_EINVAL with inv naming it. */
int api_when_json(api_when *w, const char *name, const json_t *v, api_invalid *inv);
int api_when_text(api_when *w, const char *name, const char *v, api_invalid *inv);

/* ---- video.transcode ------------------------------------------------------------ */

typedef struct api_video_req {
    char preset[32];                   /* a preset name from presets.h */
    bool thumbnail;
    bool sprite;                       /* HLS presets: the sprite sheet (default on) */
    bool high_priority;
    char source_url[API_URL_MAX + 1];  /* JSON requests: the URL to fetch */
    char filename[API_FILENAME_MAX + 1]; /* raw uploads: ?filename= ("" if none) */
    char callback_url[API_CALLBACK_MAX + 1]; /* "" if none */
    api_when when;                     /* run_at / delay */
    unsigned seen;                     /* fields given so far (to refuse repeats) */
} api_video_req;

/* Defaults: preset mp4-720p, thumbnail on, sprite as the preset says, normal
 * priority. */
void api_video_init(api_video_req *v);

/* Validate a JSON request {"source_url", "preset", "thumbnail", "sprite", "priority",
 * "callback_url"} (api_video_check included).
 * Returns 0 or SP_EINVAL with inv naming the field. */
int api_video_from_json(api_video_req *v, const json_t *req, api_invalid *inv);

/* Apply one parameter given as text: a query string parameter of a raw upload
 * (allow_filename: "filename" is accepted) or a form field of a multipart upload.
 * Unknown or repeated names are refused. 0 or SP_EINVAL. */
int api_video_field(api_video_req *v, const char *name, const char *value, bool allow_filename,
                    api_invalid *inv);

/* Once every parameter is in: refuse sprite true with a preset that makes no HLS
 * ladder. 0 or SP_EINVAL with inv naming "sprite". */
int api_video_check(const api_video_req *v, api_invalid *inv);

/* The job's params object, {"preset":...,"thumbnail":...} and, for an HLS preset,
 * "sprite" (given, or true), appended to out as JSON. */
int api_video_params(const api_video_req *v, sp_buf *out);

/* ---- pdf.export ------------------------------------------------------------------- */

typedef struct api_export_req {
    json_t *params;      /* owned: the validated params object, NULL until valid */
    json_t *columns;     /* borrowed from params: the normalized columns, or NULL */
    bool high_priority;
    bool letter, landscape; /* the page, once the fields are valid */
    char source_url[API_URL_MAX + 1];
    char format[8];      /* source_url: csv, ndjson or json */
    char callback_url[API_CALLBACK_MAX + 1]; /* "" if none */
    api_when when;       /* run_at / delay */
    json_t *fields;      /* text parameters collected by api_export_field (owned) */
} api_export_req;

void api_export_init(api_export_req *x);
void api_export_free(api_export_req *x); /* accepts NULL; x can be reused after init */

/* Validate the members of a JSON request: title, author, columns, page_size,
 * orientation, font, compression, priority, callback_url, and either rows (inline: they are not in fields, which
 * has every other member; rows_given says whether the body had them, and rows.h judges
 * them) or source_url (with format). 0, SP_EINVAL or SP_ENOMEM; on error x holds no
 * params (what else it holds is not to be used). */
int api_export_from_json(api_export_req *x, const json_t *fields, bool rows_given,
                         api_invalid *inv);

/* Collect one query string parameter of a CSV or NDJSON body (columns is JSON text).
 * Unknown or repeated names are refused. 0 or SP_EINVAL. */
int api_export_field(api_export_req *x, const char *name, const char *value, api_invalid *inv);

/* Validate the collected parameters (title is required). 0 or SP_EINVAL. */
int api_export_fields_done(api_export_req *x, api_invalid *inv);

/* 0 when n columns fit across x's page at SP_EXPORT_MIN_COLUMN (spool-pdf refuses a
 * table that does not: it would print no text); else SP_EINVAL with inv naming field,
 * its message starting with what ("the CSV header names", "3 columns are given"...). */
int api_export_columns_fit(const api_export_req *x, size_t n, const char *field,
                           const char *what, api_invalid *inv);

/* The number of columns given, and the key of column i. */
size_t api_export_ncolumns(const api_export_req *x);
const char *api_export_column_key(const api_export_req *x, size_t i);

/* The job's params object appended to out as JSON. */
int api_export_params(const api_export_req *x, sp_buf *out);

/* An export's input object appended to out: {"inline":rows,"format":"ndjson","bytes":N}
 * for rows small enough to travel in the job record (a small export costs no file);
 * else {"url":url,"format":format} when url is not NULL, or {"blob":"dataset",
 * "format":format,"bytes":bytes}. 0, SP_ENOMEM or SP_ETOOBIG. */
int api_export_input_inline(const sp_buf *rows, sp_buf *out);
int api_export_input(const char *format, int64_t bytes, const char *url, sp_buf *out);

/* Append a JSON value to out in compact form. 0, SP_ENOMEM or SP_ETOOBIG. */
int api_json_append(sp_buf *out, const json_t *v);

#endif

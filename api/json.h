/* json.h - JSON read as a stream of events, through yajl: bodies are parsed as they
 * arrive, and nothing keeps a whole document in memory unless its handler builds one.
 * yajl checks the syntax; strings are also checked here for strict UTF-8 (yajl lets
 * overlong forms, surrogates and code points past U+10FFFF through), so an event's
 * text is always valid UTF-8 (it may hold NUL, from a \u0000 escape).
 *
 * Also: a syntax check for JSON texts stored on a job record, which answers embed
 * verbatim. */
#ifndef SPOOL_API_JSON_H
#define SPOOL_API_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_common.h>

/* yajl's allocation through spool's allocator (alloc.h), for parsers and generators. */
extern const yajl_alloc_funcs api_yajl_alloc;

typedef enum api_jev {
    API_JEV_NULL,
    API_JEV_TRUE,
    API_JEV_FALSE,
    API_JEV_NUMBER,  /* text: the number as written */
    API_JEV_STRING,  /* text: the decoded string */
    API_JEV_KEY,     /* text: the decoded key */
    API_JEV_MAP_OPEN,
    API_JEV_MAP_CLOSE,
    API_JEV_ARRAY_OPEN,
    API_JEV_ARRAY_CLOSE
} api_jev;

/* What a parser calls for each event: 0 to go on, or a negative code that stops the
 * parse and is returned by api_jparse_feed/finish. */
typedef int (*api_jev_fn)(void *ud, api_jev ev, const char *text, size_t n);

typedef struct api_jparse api_jparse;

/* A parser that calls fn(ud, ...) for each event. many: a stream of values separated
 * by whitespace (NDJSON) instead of exactly one. NULL when out of memory. */
api_jparse *api_jparse_new(api_jev_fn fn, void *ud, bool many);
void api_jparse_free(api_jparse *p); /* accepts NULL */

/* Refuse strings (and keys) longer than max bytes as written, before yajl has them:
 * yajl gathers a string that spans several calls by scanning it again from its start
 * at each call, so one long string would cost time quadratic in its length. */
void api_jparse_max_string(api_jparse *p, size_t max);

/* Parse the next n bytes (their events may come in a later call: see flush). Returns
 * 0, fn's code, SP_ENOMEM, SP_ETOOBIG for a string past the maximum, or SP_EPROTO for
 * invalid JSON, with a description in msg (cap bytes; "lexical error: ..."). After an
 * error every call returns it again. */
int api_jparse_feed(api_jparse *p, const char *data, size_t n, char *msg, size_t cap);

/* Hand the bytes fed so far to yajl now (feed batches them): their events come before
 * this returns. The same codes as feed. */
int api_jparse_flush(api_jparse *p, char *msg, size_t cap);

/* The input has ended: as feed; SP_EPROTO when a value is incomplete (or, unless many,
 * when there was none). */
int api_jparse_finish(api_jparse *p, char *msg, size_t cap);

/* True when s[0..n) is exactly one JSON value (surrounding whitespace allowed) with
 * strings in strict UTF-8. */
bool api_json_valid(const char *s, size_t n);

#endif

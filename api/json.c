/* json.c - JSON events through yajl (see json.h). */
#include "json.h"

#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/err.h"
#include "spool/utf8.h"

struct api_jparse {
    yajl_handle h;
    api_jev_fn fn;
    void *ud;
    int rc;           /* the error that stopped the parse; 0 while it goes on */
    char msg[160];    /* its description when it is SP_EPROTO or SP_ETOOBIG */
    size_t fed;       /* bytes fed before the current call */
    size_t max_string; /* 0: no limit */
    bool in_string;   /* the bytes fed so far end inside a string ... */
    bool escaped;     /* ... right after a backslash */
    size_t string_len; /* the bytes of that string so far */
    sp_buf pend;      /* bytes not yet handed to yajl (see api__push) */
};

/* Bytes go to yajl in batches of at least this many (or at a flush): yajl gathers a
 * string that spans calls by scanning it again from its start at each call, so a long
 * string trickled in small reads would cost time quadratic in the number of reads. */
#define API_JPARSE_BATCH (16 * 1024)

static int api__ev(api_jparse *p, api_jev ev, const char *s, size_t n)
{
    int rc = p->fn(p->ud, ev, s, n);
    if (rc < 0) {
        p->rc = rc;
        return 0; /* stops yajl: client_canceled */
    }
    return 1;
}

static int api__text(api_jparse *p, api_jev ev, const unsigned char *s, size_t n)
{
    if (!sp_utf8_valid(s, n)) {
        p->rc = SP_EPROTO;
        snprintf(p->msg, sizeof p->msg, "a %s is not valid UTF-8 (an overlong form, a "
                 "surrogate or a code point past U+10FFFF)",
                 ev == API_JEV_KEY ? "key" : "string");
        return 0;
    }
    return api__ev(p, ev, (const char *)s, n);
}

static int api__null(void *c) { return api__ev(c, API_JEV_NULL, "", 0); }
static int api__bool(void *c, int v) { return api__ev(c, v ? API_JEV_TRUE : API_JEV_FALSE, "", 0); }
static int api__number(void *c, const char *s, size_t n) { return api__ev(c, API_JEV_NUMBER, s, n); }
static int api__string(void *c, const unsigned char *s, size_t n) { return api__text(c, API_JEV_STRING, s, n); }
static int api__key(void *c, const unsigned char *s, size_t n) { return api__text(c, API_JEV_KEY, s, n); }
static int api__map_open(void *c) { return api__ev(c, API_JEV_MAP_OPEN, "", 0); }
static int api__map_close(void *c) { return api__ev(c, API_JEV_MAP_CLOSE, "", 0); }
static int api__array_open(void *c) { return api__ev(c, API_JEV_ARRAY_OPEN, "", 0); }
static int api__array_close(void *c) { return api__ev(c, API_JEV_ARRAY_CLOSE, "", 0); }

static const yajl_callbacks api__callbacks = {
    api__null,      api__bool,      NULL,           NULL,         api__number,
    api__string,    api__map_open,  api__key,       api__map_close, api__array_open,
    api__array_close,
};

static void *api__malloc(void *ctx, size_t n)
{
    (void)ctx;
    return sp_malloc(n);
}

static void *api__realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return sp_realloc(p, n);
}

static void api__free(void *ctx, void *p)
{
    (void)ctx;
    sp_free(p);
}

const yajl_alloc_funcs api_yajl_alloc = {api__malloc, api__realloc, api__free, NULL};

api_jparse *api_jparse_new(api_jev_fn fn, void *ud, bool many)
{
    api_jparse *p = sp_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->h = yajl_alloc(&api__callbacks, (yajl_alloc_funcs *)&api_yajl_alloc, p);
    if (p->h == NULL) {
        sp_free(p);
        return NULL;
    }
    if (many)
        yajl_config(p->h, yajl_allow_multiple_values, 1);
    sp_buf_init(&p->pend, (size_t)-1 / 2); /* bounded: a batch and one call's bytes */
    p->fn = fn;
    p->ud = ud;
    return p;
}

void api_jparse_free(api_jparse *p)
{
    if (p == NULL)
        return;
    yajl_free(p->h);
    sp_buf_free(&p->pend);
    sp_free(p);
}

/* The outcome of a yajl call on n bytes (0 for the final call). */
static int api__status(api_jparse *p, yajl_status st, const char *data, size_t n, char *msg,
                       size_t cap)
{
    if (st == yajl_status_ok) {
        p->fed += n;
        return 0;
    }
    size_t at = p->fed + yajl_get_bytes_consumed(p->h);
    if (st == yajl_status_error) {
        unsigned char *e = yajl_get_error(p->h, 0, (const unsigned char *)data, n);
        snprintf(p->msg, sizeof p->msg, "%s", e ? (const char *)e : "invalid JSON");
        if (e)
            yajl_free_error(p->h, e);
        size_t len = strlen(p->msg);
        while (len > 0 && (p->msg[len - 1] == '\n' || p->msg[len - 1] == '.' ||
                           p->msg[len - 1] == ' '))
            p->msg[--len] = '\0';
        p->rc = SP_EPROTO;
    }
    if (p->rc == SP_EPROTO) {
        size_t len = strlen(p->msg);
        snprintf(p->msg + len, sizeof p->msg - len, " (at byte %zu)", at);
    }
    if (p->rc == 0)
        p->rc = SP_ENOMEM; /* yajl stops by itself only on a syntax error or no memory */
    if (msg && cap)
        snprintf(msg, cap, "%s", p->rc == SP_EPROTO ? p->msg : sp_strerror(p->rc));
    return p->rc;
}

void api_jparse_max_string(api_jparse *p, size_t max)
{
    p->max_string = max;
}

/* Follow the strings in data[0..n) (quotes and backslash escapes: enough for text that
 * yajl will judge anyway). The bytes before the first problem (n when there is none),
 * after which p->rc says what it is: SP_ETOOBIG for a string past the maximum, SP_EPROTO
 * for a vertical tab or form feed outside a string (yajl takes them for whitespace; JSON
 * does not, nor do jansson or the clients that read our answers). Followed for every
 * parse: yajl also takes a string left open at the end of the input for a token still to
 * come, so `7 "x` and `{} "` would pass as one value without this (see finish). */
static size_t api__strings_fit(api_jparse *p, const char *data, size_t n)
{
    const char *s = data, *end = data + n;
    while (s < end) {
        if (!p->in_string) {
            const char *q = memchr(s, '"', (size_t)(end - s));
            for (const char *c = s; c < (q ? q : end); c++) {
                if (*c == '\v' || *c == '\f') {
                    snprintf(p->msg, sizeof p->msg, "lexical error: a %s outside a string is "
                             "not JSON whitespace (at byte %zu)",
                             *c == '\v' ? "vertical tab" : "form feed",
                             p->fed + p->pend.len + (size_t)(c - data));
                    p->rc = SP_EPROTO;
                    return (size_t)(c - data);
                }
            }
            if (q == NULL)
                return n;
            p->in_string = true;
            p->escaped = false;
            p->string_len = 0;
            s = q + 1;
            continue;
        }
        const char *start = s;
        while (s < end) {
            if (p->escaped)
                p->escaped = false;
            else if (*s == '\\')
                p->escaped = true;
            else if (*s == '"')
                break;
            s++;
        }
        p->string_len += (size_t)(s - start);
        if (p->max_string > 0 && p->string_len > p->max_string) {
            snprintf(p->msg, sizeof p->msg, "a string longer than %zu bytes (at byte %zu)",
                     p->max_string, p->fed + p->pend.len + (size_t)(s - data));
            p->rc = SP_ETOOBIG;
            return (size_t)(s - data);
        }
        if (s < end) {
            p->in_string = false;
            s++;
        }
    }
    return n;
}

/* The error that stopped the parse, in msg. */
static int api__stopped(api_jparse *p, char *msg, size_t cap)
{
    if (msg && cap)
        snprintf(msg, cap, "%s",
                 p->rc == SP_EPROTO || p->rc == SP_ETOOBIG ? p->msg : sp_strerror(p->rc));
    return p->rc;
}

static int api__parse(api_jparse *p, const char *data, size_t n, char *msg, size_t cap)
{
    return api__status(p, yajl_parse(p->h, (const unsigned char *)data, n), data, n, msg, cap);
}

int api_jparse_flush(api_jparse *p, char *msg, size_t cap)
{
    if (p->rc < 0)
        return api__stopped(p, msg, cap);
    if (p->pend.len == 0)
        return 0;
    int rc = api__parse(p, p->pend.data, p->pend.len, msg, cap);
    sp_buf_reset(&p->pend);
    return rc;
}

/* Hand n bytes on to yajl, batched (API_JPARSE_BATCH). */
static int api__push(api_jparse *p, const char *data, size_t n, char *msg, size_t cap)
{
    if (p->pend.len == 0 && n >= API_JPARSE_BATCH)
        return api__parse(p, data, n, msg, cap);
    if (sp_buf_add(&p->pend, data, n) < 0) {
        p->rc = SP_ENOMEM;
        return api__stopped(p, msg, cap);
    }
    return p->pend.len < API_JPARSE_BATCH ? 0 : api_jparse_flush(p, msg, cap);
}

int api_jparse_feed(api_jparse *p, const char *data, size_t n, char *msg, size_t cap)
{
    if (p->rc < 0)
        return api__stopped(p, msg, cap);
    size_t fit = api__strings_fit(p, data, n);
    if (fit < n) {
        /* what came before is parsed (its events may name the field a long string
         * belongs to), then the rest is refused */
        int rc = p->rc;
        p->rc = 0;
        if (api__push(p, data, fit, NULL, 0) == 0 && api_jparse_flush(p, NULL, 0) == 0)
            p->rc = rc;
        /* else: an error before the string is the one to report */
        return api__stopped(p, msg, cap);
    }
    return n == 0 ? 0 : api__push(p, data, n, msg, cap);
}

int api_jparse_finish(api_jparse *p, char *msg, size_t cap)
{
    int rc = api_jparse_flush(p, msg, cap);
    if (rc < 0)
        return rc;
    rc = api__status(p, yajl_complete_parse(p->h), "", 0, msg, cap);
    if (rc == 0 && p->in_string) {
        snprintf(p->msg, sizeof p->msg, "premature EOF: a string is not closed (at byte %zu)",
                 p->fed);
        p->rc = SP_EPROTO;
        rc = api__stopped(p, msg, cap);
    }
    return rc;
}

static int api__ignore(void *ud, api_jev ev, const char *s, size_t n)
{
    (void)ud;
    (void)ev;
    (void)s;
    (void)n;
    return 0;
}

bool api_json_valid(const char *s, size_t n)
{
    if (s == NULL)
        return false;
    api_jparse *p = api_jparse_new(api__ignore, NULL, false);
    bool ok = p && api_jparse_feed(p, s, n, NULL, 0) == 0 && api_jparse_finish(p, NULL, 0) == 0;
    api_jparse_free(p);
    return ok;
}

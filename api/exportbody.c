/* exportbody.c - the export JSON body as it streams (see exportbody.h). */
#include "exportbody.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/err.h"
#include "spool/limits.h"

/* The members a JSON export request may have. */
static const char *const api__members[] = {
    "title", "author", "columns", "page_size", "orientation", "font", "compression",
    "priority", "rows",  "source_url", "format", "callback_url", NULL,
};

struct api_xbody {
    api_jparse *parse;
    api_rows *rows;
    json_t *fields;           /* every member but rows */
    int rc;                   /* sticky error */
    api_invalid inv;
    int depth;                /* 0 outside the body object, 1 in it */
    bool in_rows;             /* inside the rows array (depth 2 and deeper) */
    bool has_rows;
    char member[16];          /* the member whose value comes next */
    size_t budget;            /* what the members but rows may still take */
    /* a member's value being built: the open containers and each object's next key */
    json_t *stack[API_XBODY_MAX_DEPTH];
    char *key[API_XBODY_MAX_DEPTH];
    size_t keylen[API_XBODY_MAX_DEPTH];
    int nstack;
};

static int api__fail(api_xbody *b, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int api__fail(api_xbody *b, int code, const char *field, const char *fmt, ...)
{
    char msg[sizeof b->inv.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_invalid_set(&b->inv, field, "%s", msg);
    return b->rc = code;
}

/* A number as jansson reads one: an integer when written without a fraction or an
 * exponent, a real otherwise; NULL (and b->rc) when out of range. */
static json_t *api__number(api_xbody *b, const char *s, size_t n)
{
    char tmp[64];
    char *t = n < sizeof tmp ? tmp : sp_strndup(s, n);
    if (t == NULL) {
        b->rc = SP_ENOMEM;
        return NULL;
    }
    if (t == tmp) {
        memcpy(tmp, s, n);
        tmp[n] = '\0';
    }
    json_t *v = NULL;
    errno = 0;
    if (strpbrk(t, ".eE") == NULL) {
        long long i = strtoll(t, NULL, 10);
        if (errno != ERANGE)
            v = json_integer(i);
    } else {
        double d = strtod(t, NULL);
        if (!(errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)))
            v = json_real(d);
    }
    if (v == NULL && errno == ERANGE)
        api__fail(b, SP_EPROTO, "body", "the number %.40s%s is too large", t,
                  n > 40 ? "..." : "");
    else if (v == NULL)
        b->rc = SP_ENOMEM;
    if (t != tmp)
        sp_free(t);
    return v;
}

/* Add v (taken) to the value being built: to the open container, or as the member. */
static int api__add(api_xbody *b, json_t *v)
{
    if (v == NULL)
        return b->rc ? b->rc : (b->rc = SP_ENOMEM);
    json_t *into = b->nstack ? b->stack[b->nstack - 1] : b->fields;
    int rc;
    if (json_is_array(into)) {
        rc = json_array_append_new(into, v);
    } else {
        const char *k = b->nstack ? b->key[b->nstack - 1] : b->member;
        size_t kn = b->nstack ? b->keylen[b->nstack - 1] : strlen(b->member);
        rc = json_object_setn_new_nocheck(into, k, kn, v);
    }
    return rc < 0 ? (b->rc = SP_ENOMEM) : 0;
}

/* Add a scalar (taken); at the body's level it is a member's whole value. */
static int api__scalar(api_xbody *b, json_t *v)
{
    int rc = api__add(b, v);
    if (b->nstack == 0)
        b->member[0] = '\0';
    return rc;
}

/* An event of a member's value other than rows. */
static int api__build(api_xbody *b, api_jev ev, const char *s, size_t n)
{
    size_t cost = 32 + n;
    if (cost > b->budget)
        return api__fail(b, SP_EINVAL, b->member, "%s is too large (the fields besides rows "
                         "may take at most %d KiB)", b->member, API_XBODY_FIELDS_MAX / 1024);
    b->budget -= cost;
    switch (ev) {
    case API_JEV_KEY: {
        json_t *obj = b->stack[b->nstack - 1];
        if (memchr(s, '\0', n))
            return api__fail(b, SP_EPROTO, "body", "a key in %s has a NUL character",
                             b->member);
        if (json_object_getn(obj, s, n))
            return api__fail(b, SP_EPROTO, "body", "%s has the key '%.*s' twice", b->member,
                             (int)(n < 40 ? n : 40), s);
        char *k = sp_strndup(s, n);
        if (k == NULL)
            return b->rc = SP_ENOMEM;
        sp_free(b->key[b->nstack - 1]);
        b->key[b->nstack - 1] = k;
        b->keylen[b->nstack - 1] = n;
        return 0;
    }
    case API_JEV_MAP_OPEN:
    case API_JEV_ARRAY_OPEN: {
        if (b->nstack == API_XBODY_MAX_DEPTH)
            return api__fail(b, SP_EINVAL, b->member, "%s nests deeper than %d levels",
                             b->member, API_XBODY_MAX_DEPTH);
        json_t *c = ev == API_JEV_MAP_OPEN ? json_object() : json_array();
        if (c == NULL || api__add(b, c) < 0)
            return b->rc = SP_ENOMEM;
        b->stack[b->nstack++] = c; /* borrowed: its parent holds it */
        return 0;
    }
    case API_JEV_MAP_CLOSE:
    case API_JEV_ARRAY_CLOSE:
        b->nstack--;
        sp_free(b->key[b->nstack]);
        b->key[b->nstack] = NULL;
        if (b->nstack == 0)
            b->member[0] = '\0'; /* the member's value is complete */
        return 0;
    case API_JEV_NULL:
        return api__scalar(b, json_null());
    case API_JEV_TRUE:
        return api__scalar(b, json_true());
    case API_JEV_FALSE:
        return api__scalar(b, json_false());
    case API_JEV_NUMBER:
        return api__scalar(b, api__number(b, s, n));
    default: /* API_JEV_STRING */
        return api__scalar(b, json_stringn_nocheck(s, n));
    }
}

/* A key of the body object: a member of the request. */
static int api__member(api_xbody *b, const char *s, size_t n)
{
    const char *known = NULL;
    for (size_t i = 0; api__members[i] && !known; i++) {
        if (strlen(api__members[i]) == n && memcmp(api__members[i], s, n) == 0)
            known = api__members[i];
    }
    if (known == NULL) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(n < 60 ? n : 60), s);
        if (memchr(name, '\0', n < 60 ? n : 60))
            return api__fail(b, SP_EPROTO, "body", "a key has a NUL character");
        return api__fail(b, SP_EINVAL, name,
                         "unknown field '%s' (expected title, author, columns, page_size, "
                         "orientation, font, compression, priority, rows, source_url, format, "
                         "callback_url)",
                         name);
    }
    if (json_object_get(b->fields, known) || (b->has_rows && strcmp(known, "rows") == 0))
        return api__fail(b, SP_EPROTO, "body", "the key '%s' is given twice", known);
    snprintf(b->member, sizeof b->member, "%s", known);
    return 0;
}

static int api__event(void *ud, api_jev ev, const char *s, size_t n)
{
    api_xbody *b = ud;
    if (b->rc < 0)
        return b->rc;
    if (b->depth == 0) {
        if (ev != API_JEV_MAP_OPEN)
            return api__fail(b, SP_EINVAL, "body", "the request body must be a JSON object");
        b->depth = 1;
        return 0;
    }
    if (b->in_rows) {
        /* the rows array's own close, or an event of a row */
        if (b->depth == 2 && ev == API_JEV_ARRAY_CLOSE) {
            b->in_rows = false;
            b->depth = 1;
            b->member[0] = '\0';
            return 0;
        }
        if (ev == API_JEV_MAP_OPEN || ev == API_JEV_ARRAY_OPEN)
            b->depth++;
        else if (ev == API_JEV_MAP_CLOSE || ev == API_JEV_ARRAY_CLOSE)
            b->depth--;
        int rc = api_rows_event(b->rows, ev, s, n);
        if (rc == SP_EINVAL)
            b->inv = *api_rows_invalid(b->rows);
        return rc < 0 ? (b->rc = rc) : 0;
    }
    if (b->nstack > 0)
        return api__build(b, ev, s, n);
    /* at the body object's level: a member's name, its value's start, or the end */
    if (ev == API_JEV_KEY)
        return api__member(b, s, n);
    if (ev == API_JEV_MAP_CLOSE) {
        b->depth = 0;
        return 0;
    }
    if (strcmp(b->member, "rows") == 0) {
        if (ev != API_JEV_ARRAY_OPEN)
            return api__fail(b, SP_EINVAL, "rows", "rows must be an array of objects or arrays");
        b->has_rows = true;
        b->in_rows = true;
        b->depth = 2;
        return 0;
    }
    return api__build(b, ev, s, n);
}

api_xbody *api_xbody_new(api_rows_sink sink, void *ud)
{
    api_xbody *b = sp_calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    api_rows_opts ro = {.ndjson = false, .ncolumns = -1, .sink = sink, .ud = ud};
    b->parse = api_jparse_new(api__event, b, false);
    if (b->parse)
        api_jparse_max_string(b->parse, SP_EXPORT_MAX_ROW_BYTES); /* nothing valid is longer */
    b->rows = api_rows_new(&ro);
    b->fields = json_object();
    b->budget = API_XBODY_FIELDS_MAX;
    if (b->parse == NULL || b->rows == NULL || b->fields == NULL) {
        api_xbody_free(b);
        return NULL;
    }
    return b;
}

void api_xbody_free(api_xbody *b)
{
    if (b == NULL)
        return;
    api_jparse_free(b->parse);
    api_rows_free(b->rows);
    json_decref(b->fields);
    for (int i = 0; i < API_XBODY_MAX_DEPTH; i++)
        sp_free(b->key[i]);
    sp_free(b);
}

/* The outcome of a parser call: a syntax error becomes SP_EPROTO with its message. */
static int api__outcome(api_xbody *b, int rc, const char *msg, api_invalid *inv)
{
    if (rc == SP_EPROTO && b->rc != SP_EPROTO)
        api__fail(b, SP_EPROTO, "body", "%s", msg);
    else if (rc == SP_ETOOBIG) /* a string no field or row can take */
        api__fail(b, SP_EINVAL, b->in_rows ? "rows" : b->member[0] ? b->member : "body", "%s",
                  msg);
    else if (rc < 0)
        b->rc = rc;
    if ((b->rc == SP_EPROTO || b->rc == SP_EINVAL) && inv)
        *inv = b->inv;
    return b->rc;
}

int api_xbody_feed(api_xbody *b, const char *data, size_t n, api_invalid *inv)
{
    char msg[200] = "";
    int rc = b->rc < 0 ? b->rc : api_jparse_feed(b->parse, data, n, msg, sizeof msg);
    return api__outcome(b, rc, msg, inv);
}

int api_xbody_finish(api_xbody *b, api_export_req *x, api_invalid *inv)
{
    char msg[200] = "";
    int rc = b->rc < 0 ? b->rc : api_jparse_finish(b->parse, msg, sizeof msg);
    if (rc < 0)
        return api__outcome(b, rc, msg, inv);
    rc = api_export_from_json(x, b->fields, b->has_rows, &b->inv);
    if (rc == 0 && b->has_rows) {
        rc = api_rows_finish(b->rows, api_export_ncolumns(x), &b->inv);
        size_t keys = api_rows_first_keys(b->rows);
        if (rc == 0 && api_export_ncolumns(x) == 0) {
            char what[80];
            snprintf(what, sizeof what, "the first row's %zu keys name the columns", keys);
            rc = api_export_columns_fit(x, keys, "rows[0]", what, &b->inv);
        }
        if (rc < 0)
            api_export_free(x);
    }
    return api__outcome(b, rc, "", inv);
}

bool api_xbody_has_rows(const api_xbody *b)
{
    return b->has_rows;
}

uint64_t api_xbody_rows(const api_xbody *b)
{
    return api_rows_count(b->rows);
}

int api_xbody_parse(const char *body, size_t n, api_rows_sink sink, void *ud,
                    api_export_req *x, api_invalid *inv)
{
    api_xbody *b = api_xbody_new(sink, ud);
    if (b == NULL)
        return SP_ENOMEM;
    int rc = api_xbody_feed(b, body, n, inv);
    if (rc == 0)
        rc = api_xbody_finish(b, x, inv);
    api_xbody_free(b);
    return rc;
}

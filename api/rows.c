/* rows.c - export rows checked and written as canonical NDJSON (see rows.h). */
#include "rows.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "spool/alloc.h"
#include "spool/err.h"
#include "spool/limits.h"
#include "spool/utf8.h"

/* Objects and arrays inside an NDJSON row's value nest at most this deep. */
#define API_ROWS_MAX_DEPTH 64
/* A row's first keys are told apart by comparing them; past this many, by a hash. */
#define API_ROWS_FEW_KEYS 16

enum { API_ROW_NONE = 0, API_ROW_OBJECT, API_ROW_ARRAY };

/* A row of note for the judgement that needs the columns: where it is and its size. */
typedef struct api__row_at {
    int64_t index; /* -1: none */
    uint64_t line;
    size_t values;
} api__row_at;

struct api_rows {
    api_rows_opts o;
    yajl_gen gen;       /* the row in progress, as JSON */
    /* the keys of the row in progress: the first few in `few` (offsets into fewbuf),
     * all of them in `keys` past that (jansson's seeded hash: no flooding) */
    json_t *keys;
    sp_buf fewbuf;
    size_t few_off[API_ROWS_FEW_KEYS], few_len[API_ROWS_FEW_KEYS];
    api_invalid inv;
    int rc;             /* sticky error */

    int depth;          /* inside the row in progress: 0 between rows */
    int kind;           /* of the row in progress */
    size_t values;      /* its keys (object) or values (array) so far */
    char key[48];       /* the key of the value being read (for messages) */
    uint64_t nrows;
    uint64_t row_line;  /* NDJSON: the line the row in progress is on */

    /* what the columns are judged against */
    int first_kind;
    size_t first_keys;
    uint64_t first_line;
    api__row_at first_array; /* the first array row */
    api__row_at odd_array;   /* the first array row of another length than that */

    /* NDJSON */
    api_jparse *parse;
    uint64_t line;       /* the line being read (1-based) */
    size_t line_bytes;   /* its bytes so far, without the newline */
    bool line_cr;        /* its last byte so far is a CR (not counted before a newline) */
    sp_bom bom;          /* a UTF-8 byte order mark before the first line: skipped */
    bool line_has_row;
    bool any_text;       /* anything but whitespace came (yajl calls no text incomplete) */
};

api_rows *api_rows_new(const api_rows_opts *o)
{
    api_rows *r = sp_calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->o = *o;
    sp_buf_init(&r->fewbuf, SP_EXPORT_MAX_ROW_BYTES);
    r->gen = yajl_gen_alloc(&api_yajl_alloc);
    r->keys = json_object();
    r->first_array.index = r->odd_array.index = -1;
    r->line = 1;
    if (o->ndjson)
        r->parse = api_jparse_new(api_rows_event, r, true);
    if (r->gen == NULL || r->keys == NULL || (o->ndjson && r->parse == NULL)) {
        api_rows_free(r);
        return NULL;
    }
    return r;
}

void api_rows_free(api_rows *r)
{
    if (r == NULL)
        return;
    if (r->gen)
        yajl_gen_free(r->gen);
    json_decref(r->keys);
    sp_buf_free(&r->fewbuf);
    api_jparse_free(r->parse);
    sp_free(r);
}

const api_invalid *api_rows_invalid(const api_rows *r)
{
    return &r->inv;
}

size_t api_rows_first_keys(const api_rows *r)
{
    return r->nrows > 0 && r->first_kind == API_ROW_OBJECT ? r->first_keys : 0;
}

uint64_t api_rows_count(const api_rows *r)
{
    return r->nrows;
}

/* Fail row `index` (on `line`) with what is wrong with it (or, with elem, with the
 * value elem names: ".key" or "[j]"). A JSON body's errors name the field ("rows[3].x
 * has a NUL character"), an NDJSON body's the line ("NDJSON line 3: the value .x has a
 * NUL character"). */
static int api__fail(api_rows *r, int64_t index, uint64_t line, const char *elem,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int api__fail(api_rows *r, int64_t index, uint64_t line, const char *elem,
                     const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* a message for people: truncation is fine */
    va_end(ap);
    if (r->o.ndjson) {
        api_invalid_set(&r->inv, "body", "NDJSON line %llu: the %s%s %s",
                        (unsigned long long)line, elem ? "value " : "row", elem ? elem : "",
                        msg);
    } else {
        char field[128];
        snprintf(field, sizeof field, "rows[%lld]%s", (long long)index, elem ? elem : "");
        api_invalid_set(&r->inv, field, "%s %s", field, msg);
    }
    return r->rc = SP_EINVAL;
}

/* What in the row in progress a message names: .key, [j], or nothing. */
static const char *api__elem(api_rows *r, char *buf, size_t cap)
{
    if (r->kind == API_ROW_OBJECT)
        snprintf(buf, cap, ".%s", r->key);
    else
        snprintf(buf, cap, "[%zu]", r->values ? r->values - 1 : 0);
    return buf;
}

/* A number jansson (which spool-pdf reads the rows with) takes: an integer that fits
 * 64 bits, or a real that does not overflow a double. */
static bool api__number_fits(const char *s, size_t n)
{
    bool integer = true;
    for (size_t i = 0; i < n && integer; i++)
        integer = s[i] != '.' && s[i] != 'e' && s[i] != 'E';
    if (integer && n <= 18)
        return true; /* 18 digits (and a sign) always fit 64 bits */
    if (integer && n > 20)
        return false; /* more digits than any 64-bit integer has */
    char small[32];
    char *t = n < sizeof small ? small : sp_strndup(s, n);
    if (t == NULL)
        return true; /* out of memory: jansson will judge it */
    if (t == small) {
        memcpy(small, s, n);
        small[n] = '\0';
    }
    errno = 0;
    bool ok;
    if (integer) {
        (void)strtoll(t, NULL, 10);
        ok = errno != ERANGE;
    } else {
        double d = strtod(t, NULL);
        ok = !(errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL));
    }
    if (t != small)
        sp_free(t);
    return ok;
}

static int api__gen(api_rows *r, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok)
        return r->rc = SP_ENOMEM; /* the events arrive well formed: only memory can fail */
    const unsigned char *line;
    size_t len;
    yajl_gen_get_buf(r->gen, &line, &len);
    if (len > SP_EXPORT_MAX_ROW_BYTES) /* refused as soon as it is too long */
        return api__fail(r, (int64_t)r->nrows, r->row_line, NULL,
                         "takes more than %d bytes as a line of NDJSON", SP_EXPORT_MAX_ROW_BYTES);
    return 0;
}

/* The judgement that needs the columns, on what the rows gave so far. */
static int api__judge(api_rows *r, size_t ncols, bool final)
{
    if (final && r->nrows == 0 && ncols == 0) {
        if (r->o.ndjson)
            api_invalid_set(&r->inv, "body",
                            "the NDJSON body has no rows (and no columns were given)");
        else
            api_invalid_set(&r->inv, "rows", "rows must not be empty when no columns are given");
        return r->rc = SP_EINVAL;
    }
    if (r->nrows == 0)
        return 0;
    if (ncols == 0) {
        if (r->first_kind == API_ROW_ARRAY)
            return api__fail(r, 0, r->first_line, NULL,
                             "is an array: give columns to name its values");
        if (r->first_keys == 0)
            return api__fail(r, 0, r->first_line, NULL,
                             "has no fields (its keys name the columns when no columns are "
                             "given)");
        if (r->first_keys > SP_EXPORT_MAX_COLUMNS)
            return api__fail(r, 0, r->first_line, NULL,
                             "has %zu keys, which would name the columns, and there can be at "
                             "most %d columns",
                             r->first_keys, SP_EXPORT_MAX_COLUMNS);
    }
    size_t want = ncols ? ncols : r->first_keys;
    const api__row_at *bad = r->first_array.index >= 0 && r->first_array.values != want
                                 ? &r->first_array
                                 : r->odd_array.index >= 0 ? &r->odd_array : NULL;
    if (bad)
        return api__fail(r, bad->index, bad->line, NULL,
                         "has %zu values but there are %zu columns (one value per column)",
                         bad->values, want);
    return 0;
}

static int api__row_begin(api_rows *r, int kind)
{
    if (r->o.ndjson && r->line_has_row)
        return api__fail(r, (int64_t)r->nrows, r->line, NULL, "is not alone on its line");
    r->line_has_row = true;
    r->kind = kind;
    r->values = 0;
    r->key[0] = '\0';
    r->row_line = r->line;
    r->depth = 1;
    sp_buf_reset(&r->fewbuf);
    if (json_object_size(r->keys) > 0)
        json_object_clear(r->keys);
    return api__gen(r, kind == API_ROW_OBJECT ? yajl_gen_map_open(r->gen)
                                              : yajl_gen_array_open(r->gen));
}

static int api__row_end(api_rows *r)
{
    int rc = api__gen(r, r->kind == API_ROW_OBJECT ? yajl_gen_map_close(r->gen)
                                                   : yajl_gen_array_close(r->gen));
    if (rc < 0)
        return rc;
    r->depth = 0;
    int64_t index = (int64_t)r->nrows;
    const unsigned char *line;
    size_t len;
    yajl_gen_get_buf(r->gen, &line, &len);
    if (index == 0) {
        r->first_kind = r->kind;
        r->first_line = r->row_line;
        r->first_keys = r->kind == API_ROW_OBJECT ? r->values : 0;
    }
    if (r->kind == API_ROW_ARRAY) {
        api__row_at at = {index, r->row_line, r->values};
        if (r->first_array.index < 0)
            r->first_array = at;
        else if (r->odd_array.index < 0 && r->values != r->first_array.values)
            r->odd_array = at;
    }
    r->nrows++;
    if (r->o.sink) {
        rc = r->o.sink(r->o.ud, (const char *)line, len);
        if (rc == 0)
            rc = r->o.sink(r->o.ud, "\n", 1);
        if (rc < 0)
            return r->rc = rc;
    }
    yajl_gen_clear(r->gen);
    yajl_gen_reset(r->gen, NULL);
    if (r->o.ncolumns >= 0)
        return api__judge(r, (size_t)r->o.ncolumns, false);
    return 0;
}

/* Note key s[0..n) of the row in progress; SP_EINVAL when the row has it already. */
static int api__key_once(api_rows *r, const char *s, size_t n)
{
    size_t k = r->values; /* keys so far */
    bool twice = false;
    if (k < API_ROWS_FEW_KEYS) {
        for (size_t i = 0; i < k && !twice; i++)
            twice = r->few_len[i] == n && memcmp(r->fewbuf.data + r->few_off[i], s, n) == 0;
        if (!twice) {
            r->few_off[k] = r->fewbuf.len;
            r->few_len[k] = n;
            if (sp_buf_add(&r->fewbuf, s, n) < 0)
                return r->rc = SP_ENOMEM;
        }
    } else {
        if (k == API_ROWS_FEW_KEYS) { /* many keys: from now on a hash of them all */
            for (size_t i = 0; i < k; i++) {
                if (json_object_setn_new_nocheck(r->keys, r->fewbuf.data + r->few_off[i],
                                                 r->few_len[i], json_null()) < 0)
                    return r->rc = SP_ENOMEM;
            }
        }
        twice = json_object_getn(r->keys, s, n) != NULL;
        if (!twice && json_object_setn_new_nocheck(r->keys, s, n, json_null()) < 0)
            return r->rc = SP_ENOMEM;
    }
    if (twice)
        return api__fail(r, (int64_t)r->nrows, r->row_line, NULL, "has the key '%s' twice",
                         r->key);
    return 0;
}

int api_rows_event(void *ud, api_jev ev, const char *s, size_t n)
{
    api_rows *r = ud;
    char elem[64];
    if (r->rc < 0)
        return r->rc;
    int64_t index = (int64_t)r->nrows;
    if (r->depth == 0) {
        if (ev == API_JEV_MAP_OPEN)
            return api__row_begin(r, API_ROW_OBJECT);
        if (ev == API_JEV_ARRAY_OPEN)
            return api__row_begin(r, API_ROW_ARRAY);
        return api__fail(r, index, r->line, NULL, "must be an object or an array");
    }
    switch (ev) {
    case API_JEV_KEY:
        if (memchr(s, '\0', n))
            return api__fail(r, index, r->row_line, NULL, "has a key with a NUL character");
        if (r->depth == 1) {
            size_t kn = n < sizeof r->key - 1 ? n : sizeof r->key - 1;
            memcpy(r->key, s, kn);
            r->key[kn] = '\0';
            int rc = api__key_once(r, s, n);
            if (rc < 0)
                return rc;
            r->values++;
        }
        return api__gen(r, yajl_gen_string(r->gen, (const unsigned char *)s, n));
    case API_JEV_MAP_OPEN:
    case API_JEV_ARRAY_OPEN:
        if (r->depth == 1 && r->kind == API_ROW_ARRAY)
            r->values++;
        if (!r->o.ndjson)
            return api__fail(r, index, r->row_line, api__elem(r, elem, sizeof elem),
                             "must be a string, number, boolean or null");
        if (++r->depth > API_ROWS_MAX_DEPTH)
            return api__fail(r, index, r->row_line, NULL, "nests deeper than %d levels",
                             API_ROWS_MAX_DEPTH);
        return api__gen(r, ev == API_JEV_MAP_OPEN ? yajl_gen_map_open(r->gen)
                                                  : yajl_gen_array_open(r->gen));
    case API_JEV_MAP_CLOSE:
    case API_JEV_ARRAY_CLOSE:
        if (r->depth == 1)
            return api__row_end(r);
        r->depth--;
        return api__gen(r, ev == API_JEV_MAP_CLOSE ? yajl_gen_map_close(r->gen)
                                                   : yajl_gen_array_close(r->gen));
    default:
        break;
    }
    /* a scalar */
    if (r->depth == 1 && r->kind == API_ROW_ARRAY)
        r->values++;
    switch (ev) {
    case API_JEV_NULL:
        return api__gen(r, yajl_gen_null(r->gen));
    case API_JEV_TRUE:
    case API_JEV_FALSE:
        return api__gen(r, yajl_gen_bool(r->gen, ev == API_JEV_TRUE));
    case API_JEV_NUMBER:
        if (!api__number_fits(s, n))
            return api__fail(r, index, r->row_line, api__elem(r, elem, sizeof elem),
                             "is a number too large for a 64-bit integer or a double");
        return api__gen(r, yajl_gen_number(r->gen, s, n));
    default: /* API_JEV_STRING */
        if (memchr(s, '\0', n))
            return api__fail(r, index, r->row_line, api__elem(r, elem, sizeof elem),
                             "has a NUL character");
        return api__gen(r, yajl_gen_string(r->gen, (const unsigned char *)s, n));
    }
}

/* The NDJSON body: the outcome of a call, with inv filled for SP_EINVAL. */
static int api__nd_rc(api_rows *r, int rc, const char *msg, api_invalid *inv)
{
    if (rc == SP_EPROTO) {
        api_invalid_set(&r->inv, "body", "NDJSON line %llu: %s", (unsigned long long)r->line,
                        msg);
        rc = r->rc = SP_EINVAL;
    }
    if (rc == SP_EINVAL && inv)
        *inv = r->inv;
    return rc;
}

static int api__nd_bytes(api_rows *r, const char *data, size_t n, api_invalid *inv);

int api_rows_feed(api_rows *r, const char *data, size_t n, api_invalid *inv)
{
    size_t held, skip = sp_bom_skip(&r->bom, data, n, &held);
    int rc = api__nd_bytes(r, sp_bom_bytes, held, inv);
    return rc < 0 ? rc : api__nd_bytes(r, data + skip, n - skip, inv);
}

static int api__nd_bytes(api_rows *r, const char *data, size_t n, api_invalid *inv)
{
    char msg[160] = "";
    for (size_t i = 0; i < n && !r->any_text; i++)
        r->any_text = !(data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n');
    while (n > 0 && r->rc == 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) + 1 : n;
        size_t content = take - (nl ? 1 : 0);
        r->line_bytes += content;
        if (content > 0)
            r->line_cr = data[content - 1] == '\r';
        /* its line end (LF or CR LF) not counted, as spool-pdf counts it: a CR last so
         * far may be the start of one (the last line's, at the end of the body, counts) */
        if (r->line_bytes - (r->line_cr ? 1 : 0) > SP_EXPORT_MAX_ROW_BYTES) {
            api_invalid_set(&r->inv, "body", "NDJSON line %llu is longer than %d bytes",
                            (unsigned long long)r->line, SP_EXPORT_MAX_ROW_BYTES);
            r->rc = SP_EINVAL;
            break;
        }
        int rc = api_jparse_feed(r->parse, data, take, msg, sizeof msg);
        if (rc == 0 && nl) /* the line's events, before the line is judged */
            rc = api_jparse_flush(r->parse, msg, sizeof msg);
        if (rc < 0)
            return api__nd_rc(r, rc, msg, inv);
        if (nl) {
            if (r->depth != 0)
                return api__nd_rc(r, api__fail(r, (int64_t)r->nrows, r->line, NULL,
                                               "does not end on its line"),
                                  "", inv);
            r->line++;
            r->line_bytes = 0;
            r->line_cr = false;
            r->line_has_row = false;
        }
        data += take;
        n -= take;
    }
    return api__nd_rc(r, r->rc, "", inv);
}

int api_rows_finish(api_rows *r, size_t ncolumns, api_invalid *inv)
{
    if (r->o.ndjson && r->rc == 0) {
        int rc = api__nd_bytes(r, sp_bom_bytes, sp_bom_end(&r->bom), inv);
        if (rc < 0)
            return rc;
    }
    if (r->rc == 0 && r->o.ndjson && r->line_bytes > SP_EXPORT_MAX_ROW_BYTES) {
        api_invalid_set(&r->inv, "body", "NDJSON line %llu is longer than %d bytes",
                        (unsigned long long)r->line, SP_EXPORT_MAX_ROW_BYTES);
        r->rc = SP_EINVAL;
    }
    if (r->rc == 0 && r->o.ndjson && r->any_text) {
        char msg[160] = "";
        int rc = api_jparse_finish(r->parse, msg, sizeof msg);
        if (rc < 0)
            return api__nd_rc(r, rc, msg, inv);
    }
    if (r->rc == 0)
        api__judge(r, ncolumns, true);
    if (r->rc == SP_EINVAL && inv)
        *inv = r->inv;
    return r->rc;
}

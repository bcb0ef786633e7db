/* dataset_json.c - the dataset reader's JSON (dataset_int.h): NDJSON a line at a time
 * and JSON arrays an element at a time, each parsed by jansson; the columns are the
 * first object's keys; errors name the line. */
#include <jansson.h>
#include <string.h>

#include "dataset_int.h"
#include "spool/alloc.h"
#include "spool/limits.h"
#include "spool/utf8.h"
#include "text.h"

/* ---- JSON ------------------------------------------------------------------------ */

/* The next NDJSON line (without its "\n" or "\r\n") into *p,*n; *line its number. The
 * bytes point into the read buffer when the line lies in it, else into acc. A line may
 * take max_row bytes, its line end not counted. 1, 0 at the end, or an error. */
static int sp__ndjson_line(sp_dataset *ds, const char **p, size_t *n, int64_t *line,
                           sp_err *err)
{
    sp_buf_reset(&ds->acc);
    for (;;) {
        int rc = sp_dataset__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (ds->acc.len == 0)
                return 0;
            if (ds->acc.len > ds->max_row)
                return sp_dataset__too_long(ds, ds->line, err);
            *p = ds->acc.data;
            *n = ds->acc.len;
            *line = ds->line++;
            return 1;
        }
        const unsigned char *start = ds->rbuf + ds->rpos;
        size_t avail = ds->rlen - ds->rpos;
        const unsigned char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        if (ds->acc.len + take > ds->max_row + 1) /* + 1: a CR that may end the line */
            return sp_dataset__too_long(ds, ds->line, err);
        if (nl && ds->acc.len == 0) {
            *p = (const char *)start;
            *n = take;
        } else {
            if (sp_buf_add(&ds->acc, start, take) < 0)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            *p = ds->acc.data;
            *n = ds->acc.len;
        }
        ds->rpos += take + (nl ? 1 : 0);
        if (nl) {
            if (*n > 0 && (*p)[*n - 1] == '\r')
                (*n)--;
            if (*n > ds->max_row)
                return sp_dataset__too_long(ds, ds->line, err);
            *line = ds->line++;
            return 1;
        }
    }
}

static bool sp__json_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The next element of a top-level JSON array into acc; *line where it starts.
 * 1, 0 after the closing ']', or an error. */
static int sp__array_elem(sp_dataset *ds, int64_t *line, sp_err *err)
{
    sp_buf_reset(&ds->acc);
    for (;;) {
        int rc = sp_dataset__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (ds->ja_state == SP_DATASET__JA_END || ds->ja_state == SP_DATASET__JA_DONE) {
                ds->ja_state = SP_DATASET__JA_DONE;
                return 0;
            }
            if (ds->ja_state == SP_DATASET__JA_START)
                return sp_err_set(err, SP_EINVAL, "line %lld: expected a JSON array of rows, "
                                  "found the end of the file", (long long)ds->line);
            return sp_err_set(err, SP_EINVAL, "line %lld: the JSON array is not closed "
                              "(unexpected end of file)", (long long)ds->line);
        }
        unsigned char c = ds->rbuf[ds->rpos];
        if (ds->ja_state != SP_DATASET__JA_FIRST && ds->ja_state != SP_DATASET__JA_NEXT &&
            ds->ja_state != SP_DATASET__JA_START) {
            /* after the closing ']': only blanks */
            if (!sp__json_ws(c))
                return sp_err_set(err, SP_EINVAL, "line %lld: text after the end of the JSON "
                                  "array", (long long)ds->line);
            if (c == '\n')
                ds->line++;
            ds->rpos++;
            continue;
        }
        if (sp__json_ws(c)) {
            if (c == '\n')
                ds->line++;
            ds->rpos++;
            continue;
        }
        if (ds->ja_state == SP_DATASET__JA_START) {
            if (c != '[')
                return sp_err_set(err, SP_EINVAL, "line %lld: expected a JSON array of rows "
                                  "('[')", (long long)ds->line);
            ds->rpos++;
            ds->ja_state = SP_DATASET__JA_FIRST;
            continue;
        }
        if (c == ']') {
            if (ds->ja_state == SP_DATASET__JA_NEXT)
                return sp_err_set(err, SP_EINVAL, "line %lld: a ',' before the closing ']'",
                                  (long long)ds->line);
            ds->rpos++;
            ds->ja_state = SP_DATASET__JA_END;
            continue;
        }
        break;
    }

    /* An element: copy bytes until a ',' or ']' outside strings and brackets. Its size
     * leaves out the blanks before that ',' or ']' (run: the blanks seen last). */
    *line = ds->line;
    int depth = 0;
    bool in_str = false, esc = false;
    size_t seen = 0, run = 0;
    for (;;) {
        int rc = sp_dataset__fill(ds, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return sp_err_set(err, SP_EINVAL, "line %lld: the JSON array is not closed "
                              "(unexpected end of file)", (long long)ds->line);
        const unsigned char *p = ds->rbuf + ds->rpos;
        size_t avail = ds->rlen - ds->rpos;
        size_t k = 0;
        int end = 0; /* 1: ',' ends the element, 2: ']' ends it and the array */
        for (; k < avail; k++) {
            unsigned char c = p[k];
            if (c == '\n')
                ds->line++;
            if (!in_str && sp__json_ws(c)) {
                run++;
                continue;
            }
            if (in_str) {
                run = 0;
                if (esc)
                    esc = false;
                else if (c == '\\')
                    esc = true;
                else if (c == '"')
                    in_str = false;
                continue;
            }
            if (c == '"') {
                in_str = true;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (depth == 0 && c == ']') {
                    end = 2;
                    break;
                }
                if (depth > 0)
                    depth--;
            } else if (c == ',' && depth == 0) {
                end = 1;
                break;
            }
            run = 0;
        }
        seen += k;
        if (seen - run > ds->max_row)
            return sp_dataset__too_long(ds, *line, err);
        /* Bytes past max_row can only be trailing blanks, which the parse does without. */
        size_t keep = ds->max_row - ds->acc.len;
        if (sp_buf_add(&ds->acc, p, k < keep ? k : keep) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        ds->rpos += k;
        if (end) {
            ds->rpos++; /* the ',' or ']' */
            ds->ja_state = end == 1 ? SP_DATASET__JA_NEXT : SP_DATASET__JA_END;
            return 1;
        }
    }
}

/* Parse the next JSON row (NDJSON line or array element) into *v. 1, 0, error. */
int sp_dataset__json_read(sp_dataset *ds, json_t **v, int64_t *line, sp_err *err)
{
    if (ds->peek) {
        *v = ds->peek;
        *line = ds->peek_line;
        ds->peek = NULL;
        return 1;
    }
    const char *p = NULL;
    size_t n = 0;
    for (;;) {
        int rc;
        if (ds->fmt == SP_DATASET_NDJSON) {
            rc = sp__ndjson_line(ds, &p, &n, line, err);
        } else {
            rc = sp__array_elem(ds, line, err);
            p = ds->acc.data;
            n = ds->acc.len;
        }
        if (rc <= 0)
            return rc;
        size_t i = 0;
        while (i < n && sp__json_ws((unsigned char)p[i]))
            i++;
        if (i == n) {
            if (ds->fmt == SP_DATASET_NDJSON)
                continue; /* a blank line */
            return sp_err_set(err, SP_EINVAL, "line %lld: an empty element in the JSON array",
                              (long long)*line);
        }
        json_error_t je;
        json_t *j = json_loadb(p, n, JSON_DECODE_ANY, &je);
        if (j == NULL) {
            int64_t at = *line + (je.line > 1 ? je.line - 1 : 0);
            return sp_err_set(err, SP_EINVAL, "line %lld: invalid JSON: %s (column %d)",
                              (long long)at, je.text, je.column);
        }
        if (!json_is_object(j) && !json_is_array(j)) {
            json_decref(j);
            return sp_err_set(err, SP_EINVAL, "line %lld: a row must be a JSON object or "
                              "array", (long long)*line);
        }
        *v = j;
        return 1;
    }
}

/* Append the text of a JSON value as a field. */
static int sp__json_field(sp_dataset *ds, json_t *v)
{
    size_t start = ds->text.len;
    char tmp[64];
    int rc = 0;
    switch (json_typeof(v)) {
    case JSON_STRING:
        rc = sp_buf_add(&ds->text, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        rc = sp_buf_addf(&ds->text, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL: {
        /* the shortest text that reads back as the same double */
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d)
                break;
        }
        rc = sp_buf_adds(&ds->text, tmp);
        break;
    }
    case JSON_TRUE:
        rc = sp_buf_adds(&ds->text, "true");
        break;
    case JSON_FALSE:
        rc = sp_buf_adds(&ds->text, "false");
        break;
    case JSON_NULL:
        break;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        char *s = json_dumps(v, JSON_COMPACT);
        if (s == NULL)
            return SP_ENOMEM;
        rc = sp_buf_adds(&ds->text, s);
        free(s);
        break;
    }
    }
    if (rc == 0)
        rc = sp_dataset__field_end(ds, start);
    return rc;
}

int sp_dataset__json_keys_from(sp_dataset *ds, json_t *v, int64_t line, sp_err *err)
{
    ds->keys_done = true;
    if (!json_is_object(v))
        return 0;
    size_t n = json_object_size(v);
    if (n > ds->max_cols)
        return sp_err_set(err, SP_EINVAL, "line %lld: the first row has %zu keys; at most %zu "
                          "columns", (long long)line, n, ds->max_cols);
    ds->keys = sp_calloc(n ? n : 1, sizeof *ds->keys);
    if (ds->keys == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        (void)val;
        ds->keys[ds->nkeys] = sp_strdup(key);
        if (ds->keys[ds->nkeys] == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        ds->nkeys++;
    }
    return 0;
}

int sp_dataset__json_next(sp_dataset *ds, sp_dataset_row *row, sp_err *err)
{
    json_t *v;
    int64_t line;
    int rc = sp_dataset__json_read(ds, &v, &line, err);
    if (rc <= 0)
        return rc;
    rc = 0;
    if (!ds->keys_done)
        rc = sp_dataset__json_keys_from(ds, v, line, err);
    if (rc == 0 && !ds->selected) {
        if (ds->nkeys == 0)
            rc = sp_err_set(err, SP_EINVAL, "line %lld: the rows are arrays, so the columns "
                            "must be given (params.columns)", (long long)line);
        else
            rc = sp_dataset_select(ds, (const char *const *)ds->keys, ds->nkeys, err);
    }
    if (rc < 0)
        goto out;
    sp_dataset__row_reset(ds);
    if (json_is_array(v)) {
        size_t n = json_array_size(v);
        if (n != ds->nsel) {
            rc = sp_err_set(err, SP_EINVAL, "line %lld: the row has %zu values, expected %zu "
                            "(one per column)", (long long)line, n, ds->nsel);
            goto out;
        }
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = sp__json_field(ds, json_array_get(v, i));
    } else {
        for (size_t i = 0; i < ds->nsel && rc == 0; i++) {
            json_t *f = json_object_get(v, ds->sel[i]);
            if (f == NULL) {
                size_t start = ds->text.len;
                rc = sp_dataset__field_end(ds, start);
            } else {
                rc = sp__json_field(ds, f);
            }
        }
    }
    if (rc == SP_ETOOBIG)
        rc = sp_dataset__too_long(ds, line, err);
    else if (rc < 0)
        rc = sp_err_set(err, rc, "out of memory");
    else {
        sp_dataset__row_out(ds, row, line);
        rc = 1;
    }
out:
    json_decref(v);
    return rc;
}

/* dataset.c - streaming CSV and NDJSON checks (see dataset.h). */
#include "dataset.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    API_CSV_FIELD_START = 0, /* at the start of a field */
    API_CSV_UNQUOTED,        /* inside an unquoted field */
    API_CSV_QUOTED,          /* inside a quoted field */
    API_CSV_QUOTE,           /* a quote inside a quoted field: closing or doubled */
    API_CSV_CR,              /* a CR ended a record; a LF may follow */
    API_CSV_FAILED
};

void api_csv_init(api_csv *c)
{
    memset(c, 0, sizeof *c);
    c->line = 1;
    sp_buf_init(&c->header, API_CSV_HEADER_MAX);
}

void api_csv_free(api_csv *c)
{
    if (c)
        sp_buf_free(&c->header);
}

static int api__csv_fail(api_csv *c, api_invalid *inv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int api__csv_fail(api_csv *c, api_invalid *inv, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap); /* truncation is fine: a message for people */
    va_end(ap);
    c->state = API_CSV_FAILED;
    return api_invalid_set(inv, "body", "CSV line %llu: %s", (unsigned long long)c->line, msg);
}

/* Check one byte's place in UTF-8 (and refuse NUL). */
static int api__csv_utf8(api_csv *c, unsigned char b, api_invalid *inv)
{
    if (c->utf8_need == 0) {
        if (b == 0)
            return api__csv_fail(c, inv, "NUL byte");
        if (b < 0x80)
            return 0;
        c->utf8_lo = 0x80;
        c->utf8_hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            c->utf8_need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            c->utf8_need = 2;
            if (b == 0xe0)
                c->utf8_lo = 0xa0;
            else if (b == 0xed)
                c->utf8_hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            c->utf8_need = 3;
            if (b == 0xf0)
                c->utf8_lo = 0x90;
            else if (b == 0xf4)
                c->utf8_hi = 0x8f;
        } else {
            return api__csv_fail(c, inv, "not valid UTF-8");
        }
        return 0;
    }
    if (b < c->utf8_lo || b > c->utf8_hi)
        return api__csv_fail(c, inv, "not valid UTF-8");
    c->utf8_lo = 0x80;
    c->utf8_hi = 0xbf;
    c->utf8_need--;
    return 0;
}

/* Append a header byte (while the header line is being read). */
static int api__csv_hdr(api_csv *c, char ch, api_invalid *inv)
{
    if (c->nheader > 0)
        return 0;
    int rc = sp_buf_addc(&c->header, ch);
    if (rc == SP_ETOOBIG)
        return api__csv_fail(c, inv, "the header line is longer than %d bytes",
                             API_CSV_HEADER_MAX);
    return rc;
}

static int api__csv_end_field(api_csv *c, api_invalid *inv)
{
    if (c->nheader == 0) {
        /* The header's field just ended: it must name a column, once. */
        const char *names = sp_buf_cstr(&c->header);
        size_t len = c->header.len;
        size_t start = len;
        while (start > 0 && names[start - 1] != '\0')
            start--;
        if (start == len)
            return api__csv_fail(c, inv, "header column %zu is empty", c->field + 1);
        for (size_t p = 0; p < start; p += strlen(names + p) + 1) {
            if (strcmp(names + p, names + start) == 0)
                return api__csv_fail(c, inv, "header column %zu repeats a name",
                                     c->field + 1);
        }
        int rc = sp_buf_addc(&c->header, '\0');
        if (rc < 0)
            return rc == SP_ETOOBIG ? api__csv_fail(c, inv, "the header line is too long")
                                    : rc;
    }
    if (++c->field > API_CSV_MAX_FIELDS)
        return api__csv_fail(c, inv, "more than %d fields", API_CSV_MAX_FIELDS);
    return 0;
}

static int api__csv_end_record(api_csv *c, api_invalid *inv)
{
    if (c->rec_bytes == 0) { /* a blank line */
        c->field = 0;
        return 0;
    }
    int rc = api__csv_end_field(c, inv);
    if (rc < 0)
        return rc;
    if (c->nheader == 0) {
        c->nheader = c->field;
    } else if (c->field != c->nheader) {
        return api__csv_fail(c, inv, "%zu fields, but the header has %zu", c->field,
                             c->nheader);
    } else {
        c->records++;
    }
    c->field = 0;
    c->rec_bytes = 0;
    return 0;
}

int api_csv_feed(api_csv *c, const char *data, size_t n, api_invalid *inv)
{
    if (c->state == API_CSV_FAILED)
        return api_invalid_set(inv, "body", "CSV body is not valid");
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        int rc = api__csv_utf8(c, (unsigned char)ch, inv);
        if (rc < 0)
            return rc;
        if (c->state == API_CSV_CR) {
            c->state = API_CSV_FIELD_START;
            if (ch == '\n') { /* CRLF: the record already ended at the CR */
                c->line++;
                continue;
            }
        }
        switch (c->state) {
        case API_CSV_FIELD_START:
        case API_CSV_UNQUOTED:
            if (ch == ',') {
                c->rec_bytes++;
                rc = api__csv_end_field(c, inv);
                c->state = API_CSV_FIELD_START;
            } else if (ch == '\n' || ch == '\r') {
                rc = api__csv_end_record(c, inv);
                c->state = ch == '\r' ? API_CSV_CR : API_CSV_FIELD_START;
            } else if (ch == '"') {
                if (c->state == API_CSV_UNQUOTED)
                    return api__csv_fail(c, inv, "a quote inside an unquoted field");
                c->rec_bytes++;
                c->state = API_CSV_QUOTED;
                c->quote_line = c->line;
            } else {
                c->rec_bytes++;
                c->state = API_CSV_UNQUOTED;
                rc = api__csv_hdr(c, ch, inv);
            }
            break;
        case API_CSV_QUOTED:
            c->rec_bytes++;
            if (ch == '"')
                c->state = API_CSV_QUOTE;
            else
                rc = api__csv_hdr(c, ch, inv);
            break;
        case API_CSV_QUOTE:
            if (ch == '"') {
                c->rec_bytes++;
                c->state = API_CSV_QUOTED;
                rc = api__csv_hdr(c, ch, inv);
            } else if (ch == ',') {
                c->rec_bytes++;
                rc = api__csv_end_field(c, inv);
                c->state = API_CSV_FIELD_START;
            } else if (ch == '\n' || ch == '\r') {
                rc = api__csv_end_record(c, inv);
                c->state = ch == '\r' ? API_CSV_CR : API_CSV_FIELD_START;
            } else {
                return api__csv_fail(c, inv, "unexpected character after a closing quote");
            }
            break;
        default:
            return api__csv_fail(c, inv, "internal state");
        }
        if (rc < 0)
            return rc;
        if (ch == '\n')
            c->line++;
    }
    return 0;
}

int api_csv_finish(api_csv *c, api_invalid *inv)
{
    if (c->state == API_CSV_FAILED)
        return api_invalid_set(inv, "body", "CSV body is not valid");
    if (c->utf8_need)
        return api__csv_fail(c, inv, "truncated UTF-8 sequence at the end");
    if (c->state == API_CSV_QUOTED) {
        c->line = c->quote_line;
        return api__csv_fail(c, inv, "a quoted field is not closed before the end");
    }
    if (c->state != API_CSV_CR) {
        int rc = api__csv_end_record(c, inv);
        if (rc < 0)
            return rc;
    }
    if (c->nheader == 0)
        return api_invalid_set(inv, "body", "the CSV body is empty: it needs a header line naming "
                                            "the columns");
    return 0;
}

bool api_csv_has_column(const api_csv *c, const char *key)
{
    if (c->nheader == 0)
        return false;
    const char *names = sp_buf_cstr(&c->header);
    for (size_t p = 0; p < c->header.len; p += strlen(names + p) + 1) {
        if (strcmp(names + p, key) == 0)
            return true;
    }
    return false;
}

/* ---- NDJSON ------------------------------------------------------------------- */

void api_ndjson_init(api_ndjson *d, bool need_object)
{
    memset(d, 0, sizeof *d);
    sp_buf_init(&d->line, API_NDJSON_LINE_MAX);
    d->need_object = need_object;
}

void api_ndjson_free(api_ndjson *d)
{
    if (d)
        sp_buf_free(&d->line);
}

static int api__nd_line(api_ndjson *d, api_invalid *inv)
{
    d->lineno++;
    const char *s = sp_buf_cstr(&d->line);
    size_t n = d->line.len;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == n) {
        sp_buf_reset(&d->line);
        return 0; /* blank lines are allowed */
    }
    json_error_t jerr;
    json_t *v = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    int rc = 0;
    if (v == NULL)
        rc = api_invalid_set(inv, "body", "NDJSON line %llu: %s (column %d)",
                             (unsigned long long)d->lineno, jerr.text, jerr.column);
    else if (!json_is_object(v) && !json_is_array(v))
        rc = api_invalid_set(inv, "body", "NDJSON line %llu: a row must be an object or an array",
                             (unsigned long long)d->lineno);
    else if (d->need_object && d->rows == 0 && (!json_is_object(v) || json_object_size(v) == 0))
        rc = api_invalid_set(inv, "body",
                             "NDJSON line %llu: without columns the first row must be an object "
                             "with keys (they name the columns)",
                             (unsigned long long)d->lineno);
    json_decref(v);
    d->rows++;
    sp_buf_reset(&d->line);
    return rc;
}

int api_ndjson_feed(api_ndjson *d, const char *data, size_t n, api_invalid *inv)
{
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        int rc = sp_buf_add(&d->line, data, take);
        if (rc == SP_ETOOBIG)
            return api_invalid_set(inv, "body", "NDJSON line %llu is longer than %d bytes",
                                   (unsigned long long)d->lineno + 1, API_NDJSON_LINE_MAX);
        if (rc < 0)
            return rc;
        if (nl == NULL)
            break;
        if ((rc = api__nd_line(d, inv)) < 0)
            return rc;
        data += take + 1;
        n -= take + 1;
    }
    return 0;
}

int api_ndjson_finish(api_ndjson *d, api_invalid *inv)
{
    if (d->line.len > 0) {
        int rc = api__nd_line(d, inv);
        if (rc < 0)
            return rc;
    }
    if (d->rows == 0 && d->need_object)
        return api_invalid_set(inv, "body", "the NDJSON body has no rows (and no columns were "
                                            "given)");
    return 0;
}

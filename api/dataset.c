/* dataset.c - the streaming CSV check (see dataset.h). */
#include "dataset.h"

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
    sp_utf8_stream_init(&c->utf8);
    c->rec_blank = true;
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
    if (b == 0)
        return api__csv_fail(c, inv, "NUL byte");
    if (!sp_utf8_stream_byte(&c->utf8, b))
        return api__csv_fail(c, inv, "not valid UTF-8");
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

/* The record ends: at a line end (eol), or at the end of the body. */
static int api__csv_end_record(api_csv *c, bool eol, api_invalid *inv)
{
    if (c->rec_bytes == 0 || (eol && c->field == 0 && c->rec_blank)) {
        /* A blank line, or one of only spaces and tabs, which spool-pdf skips too. */
        if (c->nheader == 0) { /* the blanks went into the header's first name: out */
            size_t start = c->header.len;
            while (start > 0 && c->header.data[start - 1] != '\0')
                start--;
            c->header.len = start;
            if (c->header.data)
                c->header.data[start] = '\0';
        }
        c->field = 0;
        c->rec_bytes = 0;
        c->rec_blank = true;
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
    c->rec_blank = true;
    return 0;
}

static int api__csv_bytes(api_csv *c, const char *data, size_t n, api_invalid *inv);

int api_csv_feed(api_csv *c, const char *data, size_t n, api_invalid *inv)
{
    if (c->state == API_CSV_FAILED)
        return api_invalid_set(inv, "body", "CSV body is not valid");
    size_t held, skip = sp_bom_skip(&c->bom, data, n, &held);
    int rc = api__csv_bytes(c, sp_bom_bytes, held, inv);
    return rc < 0 ? rc : api__csv_bytes(c, data + skip, n - skip, inv);
}

static int api__csv_bytes(api_csv *c, const char *data, size_t n, api_invalid *inv)
{
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
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r')
            c->rec_blank = false;
        switch (c->state) {
        case API_CSV_FIELD_START:
        case API_CSV_UNQUOTED:
            if (ch == ',') {
                c->rec_bytes++;
                rc = api__csv_end_field(c, inv);
                c->state = API_CSV_FIELD_START;
            } else if (ch == '\n' || ch == '\r') {
                rc = api__csv_end_record(c, true, inv);
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
                rc = api__csv_end_record(c, true, inv);
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
        if (c->rec_bytes > API_CSV_RECORD_MAX)
            return api__csv_fail(c, inv, "the record is longer than %d bytes",
                                 API_CSV_RECORD_MAX);
        if (ch == '\n')
            c->line++;
    }
    return 0;
}

int api_csv_finish(api_csv *c, api_invalid *inv)
{
    if (c->state == API_CSV_FAILED)
        return api_invalid_set(inv, "body", "CSV body is not valid");
    int rc = api__csv_bytes(c, sp_bom_bytes, sp_bom_end(&c->bom), inv);
    if (rc < 0)
        return rc;
    if (!sp_utf8_stream_done(&c->utf8))
        return api__csv_fail(c, inv, "truncated UTF-8 sequence at the end");
    if (c->state == API_CSV_QUOTED) {
        c->line = c->quote_line;
        return api__csv_fail(c, inv, "a quoted field is not closed before the end");
    }
    if (c->state != API_CSV_CR) {
        rc = api__csv_end_record(c, false, inv);
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

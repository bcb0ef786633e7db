/* buf.c - growable buffer with a hard maximum. */
#include "spool/buf.h"

#include <stdio.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/err.h"

void sp_buf_init(sp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

static int sp__buf_reserve(sp_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return SP_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    char *p = sp_realloc(b->data, cap);
    if (p == NULL)
        return SP_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int sp_buf_add(sp_buf *b, const void *data, size_t n)
{
    int rc = sp__buf_reserve(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sp_buf_adds(sp_buf *b, const char *s)
{
    return sp_buf_add(b, s, strlen(s));
}

int sp_buf_addc(sp_buf *b, char c)
{
    return sp_buf_add(b, &c, 1);
}

int sp_buf_vaddf(sp_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SP_EINVAL;
    if ((size_t)n < sizeof small)
        return sp_buf_add(b, small, (size_t)n);
    int rc = sp__buf_reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sp_buf_addf(sp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sp_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sp_buf_add_json_escaped(sp_buf *b, const char *s, size_t n)
{
    size_t start_len = b->len;
    size_t run = 0; /* start of the pending run of plain bytes */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char hex[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                snprintf(hex, sizeof hex, "\\u%04x", c);
                esc = hex;
            }
        }
        if (esc == NULL)
            continue;
        int rc = sp_buf_add(b, s + run, i - run);
        if (rc == 0)
            rc = sp_buf_adds(b, esc);
        if (rc < 0) {
            b->len = start_len;
            if (b->data)
                b->data[b->len] = '\0';
            return rc;
        }
        run = i + 1;
    }
    int rc = sp_buf_add(b, s + run, n - run);
    if (rc < 0) {
        b->len = start_len;
        if (b->data)
            b->data[b->len] = '\0';
    }
    return rc;
}

const char *sp_buf_cstr(const sp_buf *b)
{
    return b->data ? b->data : "";
}

void sp_buf_reset(sp_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *sp_buf_take(sp_buf *b)
{
    char *p = b->data;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void sp_buf_free(sp_buf *b)
{
    if (b == NULL)
        return;
    sp_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

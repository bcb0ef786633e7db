/* utf8.c - strict UTF-8 (see utf8.h). */
#include "spool/utf8.h"

#include "spool/err.h"

size_t sp_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        goto bad;
    }
    if (n < len)
        goto bad;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return len;
bad:
    *cp = SP_UTF8_REPLACEMENT;
    return 1;
}

int sp_utf8_add(sp_buf *b, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | (cp >> 18));
        o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return sp_buf_add(b, o, n);
}

int sp_utf8_add_repaired(sp_buf *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t run = 0; /* start of the valid run not yet copied */
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = sp_utf8_decode(u + i, n - i, &cp);
        if (cp == SP_UTF8_REPLACEMENT && k == 1) {
            int rc = sp_buf_add(b, s + run, i - run);
            if (rc == 0)
                rc = sp_utf8_add(b, SP_UTF8_REPLACEMENT);
            if (rc < 0)
                return rc;
            run = i + 1;
        }
        i += k;
    }
    return sp_buf_add(b, s + run, n - run);
}

bool sp_utf8_valid(const void *s, size_t n)
{
    const unsigned char *u = s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t k = sp_utf8_decode(u + i, n - i, &cp);
        if (cp == SP_UTF8_REPLACEMENT && k == 1)
            return false;
        i += k;
    }
    return true;
}

void sp_utf8_stream_init(sp_utf8_stream *u)
{
    u->need = 0;
    u->lo = 0x80;
    u->hi = 0xBF;
}

bool sp_utf8_stream_byte(sp_utf8_stream *u, unsigned char b)
{
    if (u->need == 0) {
        if (b < 0x80)
            return true;
        u->lo = 0x80;
        u->hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            u->need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            u->need = 2;
            if (b == 0xE0)
                u->lo = 0xA0; /* no overlong forms */
            else if (b == 0xED)
                u->hi = 0x9F; /* no surrogates */
        } else if (b >= 0xF0 && b <= 0xF4) {
            u->need = 3;
            if (b == 0xF0)
                u->lo = 0x90;
            else if (b == 0xF4)
                u->hi = 0x8F; /* nothing past U+10FFFF */
        } else {
            return false;
        }
        return true;
    }
    if (b < u->lo || b > u->hi)
        return false;
    u->lo = 0x80;
    u->hi = 0xBF;
    u->need--;
    return true;
}

bool sp_utf8_stream_done(const sp_utf8_stream *u)
{
    return u->need == 0;
}

const char sp_bom_bytes[3] = {'\xEF', '\xBB', '\xBF'};

size_t sp_bom_skip(sp_bom *b, const char *data, size_t n, size_t *held)
{
    *held = 0;
    size_t i = 0, before = b->matched;
    while (!b->done && i < n) {
        if (data[i] != sp_bom_bytes[b->matched]) { /* data[0..i-1] are data too */
            *held = before;
            b->done = true;
            return 0;
        }
        i++;
        if (++b->matched == sizeof sp_bom_bytes)
            b->done = true;
    }
    return i;
}

size_t sp_bom_end(sp_bom *b)
{
    size_t held = b->done ? 0 : b->matched;
    b->done = true;
    return held;
}

/* jsonv.c - strict JSON syntax check without allocation (see jsonv.h). */
#include "jsonv.h"

#include <string.h>

typedef struct api__jv {
    const unsigned char *p, *end;
    int depth;
} api__jv;

static void api__ws(api__jv *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
        v->p++;
}

static bool api__lit(api__jv *v, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, word, n) != 0)
        return false;
    v->p += n;
    return true;
}

static bool api__digits(api__jv *v)
{
    const unsigned char *start = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    return v->p > start;
}

static bool api__number(api__jv *v)
{
    if (v->p < v->end && *v->p == '-')
        v->p++;
    if (v->p < v->end && *v->p == '0')
        v->p++;
    else if (!api__digits(v))
        return false;
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        if (!api__digits(v))
            return false;
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        if (!api__digits(v))
            return false;
    }
    return true;
}

static int api__hex4(api__jv *v)
{
    if (v->end - v->p < 4)
        return -1;
    int x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = *v->p++;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        x = x * 16 + d;
    }
    return x;
}

/* One UTF-8 sequence starting at v->p (first byte >= 0x80). */
static bool api__utf8(api__jv *v)
{
    unsigned char c = *v->p++;
    int need;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 2;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 3;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return false;
    }
    for (int i = 0; i < need; i++) {
        if (v->p >= v->end || *v->p < lo || *v->p > hi)
            return false;
        v->p++;
        lo = 0x80;
        hi = 0xbf;
    }
    return true;
}

static bool api__string(api__jv *v)
{
    v->p++; /* the opening quote */
    while (v->p < v->end) {
        unsigned char c = *v->p;
        if (c == '"') {
            v->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\') {
            v->p++;
            if (v->p >= v->end)
                return false;
            c = *v->p++;
            if (c == 'u') {
                int x = api__hex4(v);
                if (x < 0)
                    return false;
                if (x >= 0xd800 && x <= 0xdbff) { /* a high surrogate needs its low half */
                    if (!api__lit(v, "\\u"))
                        return false;
                    int y = api__hex4(v);
                    if (y < 0xdc00 || y > 0xdfff)
                        return false;
                } else if (x >= 0xdc00 && x <= 0xdfff) {
                    return false;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return false;
            }
        } else if (c >= 0x80) {
            if (!api__utf8(v))
                return false;
        } else {
            v->p++;
        }
    }
    return false;
}

static bool api__value(api__jv *v);

static bool api__container(api__jv *v, unsigned char close)
{
    if (++v->depth > API_JSONV_MAX_DEPTH)
        return false;
    v->p++;
    api__ws(v);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return true;
    }
    for (;;) {
        if (close == '}') {
            if (v->p >= v->end || *v->p != '"' || !api__string(v))
                return false;
            api__ws(v);
            if (v->p >= v->end || *v->p++ != ':')
                return false;
        }
        if (!api__value(v))
            return false;
        api__ws(v);
        if (v->p >= v->end)
            return false;
        if (*v->p == close) {
            v->p++;
            v->depth--;
            return true;
        }
        if (*v->p++ != ',')
            return false;
        api__ws(v);
    }
}

static bool api__value(api__jv *v)
{
    api__ws(v);
    if (v->p >= v->end)
        return false;
    switch (*v->p) {
    case '{':
        return api__container(v, '}');
    case '[':
        return api__container(v, ']');
    case '"':
        return api__string(v);
    case 't':
        return api__lit(v, "true");
    case 'f':
        return api__lit(v, "false");
    case 'n':
        return api__lit(v, "null");
    default:
        return api__number(v);
    }
}

bool api_jsonv_valid_utf8(const char *s, size_t n)
{
    if (s == NULL || n == 0 || (unsigned char)s[0] < 0x80)
        return false;
    api__jv v = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
    return api__utf8(&v) && v.p == v.end;
}

bool api_jsonv_valid(const char *s, size_t n)
{
    if (s == NULL)
        return false;
    api__jv v = {(const unsigned char *)s, (const unsigned char *)s + n, 0};
    if (!api__value(&v))
        return false;
    api__ws(&v);
    return v.p == v.end;
}

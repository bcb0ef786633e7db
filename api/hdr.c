/* hdr.c - HTTP header values (see hdr.h). */
#include "hdr.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "spool/err.h"

static bool api__tchar(unsigned char c)
{
    /* RFC 9110 token characters */
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static const char *api__skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Read a token into out (lowercased when lower); NULL when empty or too long. */
static const char *api__token(const char *p, char *out, size_t cap, bool lower)
{
    size_t n = 0;
    while (api__tchar((unsigned char)*p)) {
        if (n + 1 >= cap)
            return NULL;
        out[n++] = lower ? (char)tolower((unsigned char)*p) : *p;
        p++;
    }
    out[n] = '\0';
    return n ? p : NULL;
}

/* Read a quoted-string (with backslash escapes) into out; NULL when malformed. */
static const char *api__quoted(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p++ != '"')
        return NULL;
    for (;;) {
        unsigned char c = (unsigned char)*p++;
        if (c == '\0')
            return NULL;
        if (c == '"')
            break;
        if (c == '\\') {
            c = (unsigned char)*p++;
            if (c == '\0')
                return NULL;
        }
        if (c < 0x20 && c != '\t')
            return NULL;
        if (n + 1 >= cap)
            return NULL;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return p;
}

/* Read an unquoted parameter value into out: everything up to the next ';' without
 * trailing whitespace. RFC 9110 wants a token, but clients send values such as
 * codecs=avc1.42E01E,mp4a.40.2 or boundary=----=_Part_1 unquoted, and a value is only
 * refused when it has a control character. NULL when empty, too long or refused. */
static const char *api__pvalue(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    while (*p && *p != ';') {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f || n + 1 >= cap)
            return NULL;
        out[n++] = *p++;
    }
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\t'))
        n--;
    out[n] = '\0';
    return n ? p : NULL;
}

static bool api__boundary_ok(const char *b)
{
    size_t n = strlen(b);
    if (n == 0 || n > API_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)b[i];
        if (!isalnum(c) && strchr("'()+_,-./:=? ", c) == NULL)
            return false;
    }
    return true;
}

int api_hdr_media_type(const char *value, api_media *out)
{
    memset(out, 0, sizeof *out);
    if (value == NULL)
        return SP_EINVAL;
    char type[64], sub[64];
    const char *p = api__skip_ows(value);
    if ((p = api__token(p, type, sizeof type, true)) == NULL || *p++ != '/' ||
        (p = api__token(p, sub, sizeof sub, true)) == NULL)
        goto bad;
    size_t tl = strlen(type), sl = strlen(sub);
    memcpy(out->type, type, tl);
    out->type[tl] = '/';
    memcpy(out->type + tl + 1, sub, sl + 1);
    for (;;) {
        p = api__skip_ows(p);
        if (*p == '\0')
            break;
        if (*p++ != ';')
            goto bad;
        p = api__skip_ows(p);
        if (*p == '\0')
            break; /* a trailing ';' is tolerated */
        char name[32], val[256];
        if ((p = api__token(p, name, sizeof name, true)) == NULL || *p++ != '=')
            goto bad;
        if (*p == '"')
            p = api__quoted(p, val, sizeof val);
        else
            p = api__pvalue(p, val, sizeof val);
        if (p == NULL)
            goto bad;
        if (strcmp(name, "boundary") == 0) {
            if (out->boundary[0] || !api__boundary_ok(val))
                goto bad;
            memcpy(out->boundary, val, strlen(val) + 1);
        } else if (strcmp(name, "charset") == 0) {
            size_t n = strlen(val);
            if (n >= sizeof out->charset)
                goto bad;
            for (size_t i = 0; i <= n; i++)
                out->charset[i] = (char)tolower((unsigned char)val[i]);
        }
    }
    return 0;
bad:
    memset(out, 0, sizeof *out);
    return SP_EINVAL;
}

bool api_hdr_is_video(const char *type)
{
    return strncmp(type, "video/", 6) == 0 && type[6] != '\0';
}

/* Parse a non-negative decimal number at *p (at most 18 digits); -1 when none. */
static int64_t api__num(const char **p)
{
    int64_t v = 0;
    int digits = 0;
    while (**p >= '0' && **p <= '9') {
        if (++digits > 18)
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    return digits ? v : -1;
}

int api_hdr_range(const char *value, int64_t size, int64_t *start, int64_t *len)
{
    if (value == NULL)
        return API_RANGE_NONE;
    const char *p = api__skip_ows(value);
    if (strncasecmp(p, "bytes", 5) != 0)
        return API_RANGE_NONE;
    p = api__skip_ows(p + 5);
    if (*p++ != '=')
        return API_RANGE_NONE;
    p = api__skip_ows(p);
    int64_t first = -1, last = -1;
    if (*p == '-') {
        p++;
        int64_t suffix = api__num(&p);
        if (suffix < 0)
            return API_RANGE_NONE;
        p = api__skip_ows(p);
        if (*p != '\0')
            return API_RANGE_NONE; /* several ranges or junk: serve the whole file */
        if (suffix == 0 || size == 0)
            return API_RANGE_UNSATISFIABLE;
        if (suffix > size)
            suffix = size;
        *start = size - suffix;
        *len = suffix;
        return API_RANGE_PARTIAL;
    }
    first = api__num(&p);
    if (first < 0 || *p++ != '-')
        return API_RANGE_NONE;
    if (*p >= '0' && *p <= '9') {
        last = api__num(&p);
        if (last < 0 || last < first)
            return API_RANGE_NONE;
    }
    p = api__skip_ows(p);
    if (*p != '\0')
        return API_RANGE_NONE;
    if (first >= size)
        return API_RANGE_UNSATISFIABLE;
    if (last < 0 || last >= size)
        last = size - 1;
    *start = first;
    *len = last - first + 1;
    return API_RANGE_PARTIAL;
}

bool api_hdr_etag_match(const char *inm, const char *etag)
{
    if (inm == NULL || etag == NULL)
        return false;
    size_t elen = strlen(etag);
    const char *p = inm;
    for (;;) {
        p = api__skip_ows(p);
        while (*p == ',')
            p = api__skip_ows(p + 1);
        if (*p == '\0')
            return false;
        if (*p == '*')
            return true;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        if (*p != '"')
            return false;
        const char *end = strchr(p + 1, '"');
        if (end == NULL)
            return false;
        size_t n = (size_t)(end - p + 1);
        if (n == elen && memcmp(p, etag, n) == 0)
            return true;
        p = end + 1;
    }
}

bool api_hdr_bearer(const char *value, const char **tok, size_t *len)
{
    if (value == NULL)
        return false;
    const char *p = api__skip_ows(value);
    if (strncasecmp(p, "bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return false;
    p = api__skip_ows(p + 6);
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return false;
    *tok = p;
    *len = n;
    return true;
}

bool api_hdr_secure_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    unsigned char diff = (unsigned char)(alen != blen);
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int api_hdr_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return SP_EINVAL;
}

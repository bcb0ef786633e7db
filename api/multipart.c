/* multipart.c - streaming multipart/form-data parser (see multipart.h). */
#include "multipart.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

enum {
    API_MP_PREAMBLE = 0, /* before the first delimiter: ignored */
    API_MP_AFTER_DELIM,  /* right after a delimiter: "--", padding or CRLF */
    API_MP_CLOSE_DASH,   /* saw "-" after a delimiter */
    API_MP_PADDING,      /* transport padding (spaces, tabs) before the CRLF */
    API_MP_DELIM_CR,     /* saw CR after a delimiter */
    API_MP_HEADERS,      /* a part's header lines */
    API_MP_DATA,         /* a part's body */
    API_MP_EPILOGUE,     /* after the closing delimiter: ignored */
    API_MP_FAILED
};

int api_mp_init(api_mp *mp, const char *boundary, const api_mp_callbacks *cb, void *ud,
                sp_err *err)
{
    memset(mp, 0, sizeof *mp);
    size_t bl = boundary ? strlen(boundary) : 0;
    if (bl == 0 || bl > API_BOUNDARY_MAX) {
        mp->state = API_MP_FAILED;
        return sp_err_set(err, SP_EINVAL, "multipart boundary must be 1 to 70 characters");
    }
    mp->cb = *cb;
    mp->ud = ud;
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, boundary, bl);
    mp->dlen = 4 + bl;
    mp->delim[mp->dlen] = '\0';
    /* fail[m]: the longest proper prefix of delim[0..m) that is also its suffix. */
    mp->fail[0] = mp->fail[1] = 0;
    for (size_t m = 2; m <= mp->dlen; m++) {
        size_t k = mp->fail[m - 1];
        while (k > 0 && mp->delim[m - 1] != mp->delim[k])
            k = mp->fail[k];
        if (mp->delim[m - 1] == mp->delim[k])
            k++;
        mp->fail[m] = (unsigned char)k;
    }
    /* The body may start with the delimiter without a CRLF before it: pretend one. */
    mp->match = 2;
    mp->state = API_MP_PREAMBLE;
    return 0;
}

static int api__mp_fail(api_mp *mp, sp_err *err, const char *what)
{
    mp->state = API_MP_FAILED;
    return sp_err_set(err, SP_EINVAL, "malformed multipart body at byte %llu: %s",
                      (unsigned long long)mp->offset, what);
}

/* Hand confirmed part data to the callback (ignored outside a part). */
static int api__mp_emit(api_mp *mp, const char *p, size_t n, sp_err *err)
{
    if (n == 0 || mp->state != API_MP_DATA)
        return 0;
    return mp->cb.data(mp->ud, p, n, err);
}

/* A byte a header value may not hold: a control character (NUL among them: a name
 * would be cut there). */
static bool api__mp_ctl(char c)
{
    unsigned char u = (unsigned char)c;
    return (u < 0x20 && u != '\t') || u == 0x7f;
}

/* Copy a parameter value (quoted or token) at p into out; returns the position after
 * it or NULL (also for a control character). Backslashes are literal, as browsers send
 * them (WHATWG). */
static const char *api__mp_param_value(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        while (p < end && *p != '"') {
            if (n + 1 >= cap || api__mp_ctl(*p))
                return NULL;
            out[n++] = *p++;
        }
        if (p >= end)
            return NULL;
        p++;
    } else {
        while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
            if (n + 1 >= cap || api__mp_ctl(*p))
                return NULL;
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return p;
}

/* Parse "form-data; name="x"; filename="y"" into the part. */
static bool api__mp_disposition(api_mp_part *part, const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if ((size_t)(end - p) < 9 || strncasecmp(p, "form-data", 9) != 0)
        return false;
    p += 9;
    bool have_name = false;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        if (*p++ != ';')
            return false;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *ks = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        if (p == end || *p != '=')
            return false;
        size_t klen = (size_t)(p - ks);
        while (klen > 0 && (ks[klen - 1] == ' ' || ks[klen - 1] == '\t'))
            klen--;
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        char val[API_MP_FILENAME_MAX + 1];
        p = api__mp_param_value(p, end, val, sizeof val);
        if (p == NULL)
            return false;
        if (klen == 4 && strncasecmp(ks, "name", 4) == 0) {
            size_t n = strlen(val);
            if (have_name || n == 0 || n > API_MP_NAME_MAX)
                return false;
            memcpy(part->name, val, n + 1);
            have_name = true;
        } else if (klen == 8 && strncasecmp(ks, "filename", 8) == 0) {
            const char *base = val;
            for (const char *s = val; *s; s++)
                if (*s == '/' || *s == '\\')
                    base = s + 1;
            memmove(part->filename, base, strlen(base) + 1);
            part->has_filename = true;
        } else if (klen == 9 && strncasecmp(ks, "filename*", 9) == 0) {
            part->has_filename = true; /* RFC 5987 names are not decoded; the plain one wins */
        }
    }
    return have_name;
}

/* The header block (without its final CRLF CRLF) is complete: parse it and begin the
 * part. */
static int api__mp_headers_done(api_mp *mp, sp_err *err)
{
    memset(&mp->part, 0, sizeof mp->part);
    bool have_disp = false;
    const char *p = mp->hdr;
    const char *end = mp->hdr + mp->hlen;
    while (p < end) {
        const char *eol = p;
        while (eol + 1 < end && !(eol[0] == '\r' && eol[1] == '\n'))
            eol++;
        if (eol + 1 >= end)
            eol = end;
        if (eol == p) {
            p = eol + 2;
            continue;
        }
        if (*p == ' ' || *p == '\t')
            return api__mp_fail(mp, err, "folded part header");
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p)
            return api__mp_fail(mp, err, "part header without a name");
        size_t nlen = (size_t)(colon - p);
        for (const char *s = p; s < eol; s++) {
            if ((unsigned char)*s < 0x20 && *s != '\t')
                return api__mp_fail(mp, err, "control character in a part header");
        }
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        const char *vend = eol;
        while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
            vend--;
        if (nlen == 19 && strncasecmp(p, "content-disposition", 19) == 0) {
            if (have_disp || !api__mp_disposition(&mp->part, v, vend))
                return api__mp_fail(mp, err, "bad Content-Disposition in a part");
            have_disp = true;
        } else if (nlen == 12 && strncasecmp(p, "content-type", 12) == 0) {
            size_t n = (size_t)(vend - v);
            if (n > API_MEDIA_MAX)
                return api__mp_fail(mp, err, "part Content-Type too long");
            memcpy(mp->part.content_type, v, n);
            mp->part.content_type[n] = '\0';
        }
        p = eol + 2;
    }
    if (!have_disp)
        return api__mp_fail(mp, err, "part without Content-Disposition: form-data; name=...");
    mp->state = API_MP_DATA;
    mp->match = 0;
    int rc = mp->cb.begin(mp->ud, &mp->part, err);
    if (rc < 0)
        mp->state = API_MP_FAILED;
    return rc;
}

/* A delimiter was matched: end the part (if any) and look at what follows it. */
static int api__mp_delimiter(api_mp *mp, sp_err *err)
{
    int rc = 0;
    if (mp->state == API_MP_DATA)
        rc = mp->cb.end(mp->ud, err);
    mp->match = 0;
    mp->state = rc < 0 ? API_MP_FAILED : API_MP_AFTER_DELIM;
    return rc;
}

/* Scan part data (or the preamble) in p[0..n) for the delimiter. Returns the bytes
 * consumed (up to and including a delimiter) or a negative code.
 *
 * Data is handed on in as few pieces as possible (usually one per chunk): bytes of p
 * that turn out to be data are emitted straight from p when the chunk or the part
 * ends; bytes held back from an earlier chunk (always a prefix of the delimiter) are
 * emitted from the delimiter itself when a mismatch shows they were data. */
static long api__mp_scan(api_mp *mp, const char *p, size_t n, sp_err *err)
{
    size_t held_prev = mp->match; /* held bytes that came before p */
    size_t i = 0;
    int rc;
    while (i < n) {
        if (mp->match == 0) {
            /* Fast path: nothing held back; skip to the next possible delimiter. */
            const char *cr = memchr(p + i, mp->delim[0], n - i);
            if (cr == NULL) {
                i = n;
                break;
            }
            i = (size_t)(cr - p);
        }
        char c = p[i];
        while (mp->match > 0 && c != mp->delim[mp->match]) {
            /* Mismatch: the first match - k held bytes can no longer start a
             * delimiter; those from an earlier chunk go out now (they precede p). */
            size_t k = mp->fail[mp->match];
            size_t drop = mp->match - k;
            if (held_prev > 0) {
                size_t x = drop < held_prev ? drop : held_prev;
                if ((rc = api__mp_emit(mp, mp->delim, x, err)) < 0)
                    return rc;
                held_prev -= x;
            }
            mp->match = k;
        }
        if (c == mp->delim[mp->match])
            mp->match++;
        i++;
        if (mp->match == mp->dlen) {
            /* The delimiter ends at p[i-1]; what precedes it in p is data. */
            size_t in_p = mp->dlen - held_prev;
            if ((rc = api__mp_emit(mp, p, i - in_p, err)) < 0)
                return rc;
            mp->offset += i;
            if ((rc = api__mp_delimiter(mp, err)) < 0)
                return rc;
            return (long)i;
        }
    }
    /* End of the chunk: everything but the bytes still held back is data. (If bytes
     * from an earlier chunk are still held, every byte of p is held too.) */
    size_t held_in_p = mp->match - held_prev;
    if ((rc = api__mp_emit(mp, p, n - held_in_p, err)) < 0)
        return rc;
    mp->offset += n;
    return (long)n;
}

int api_mp_feed(api_mp *mp, const char *data, size_t n, sp_err *err)
{
    if (mp->state == API_MP_FAILED)
        return sp_err_set(err, SP_EINVAL, "malformed multipart body");
    size_t i = 0;
    while (i < n) {
        switch (mp->state) {
        case API_MP_PREAMBLE:
        case API_MP_DATA: {
            long k = api__mp_scan(mp, data + i, n - i, err);
            if (k < 0) {
                mp->state = API_MP_FAILED;
                return (int)k;
            }
            i += (size_t)k;
            continue;
        }
        case API_MP_EPILOGUE:
            mp->offset += n - i;
            return 0;
        default:
            break;
        }
        char c = data[i++];
        mp->offset++;
        switch (mp->state) {
        case API_MP_AFTER_DELIM:
            if (c == '-')
                mp->state = API_MP_CLOSE_DASH;
            else if (c == ' ' || c == '\t')
                mp->state = API_MP_PADDING;
            else if (c == '\r')
                mp->state = API_MP_DELIM_CR;
            else
                return api__mp_fail(mp, err, "unexpected byte after a boundary");
            break;
        case API_MP_CLOSE_DASH:
            if (c != '-')
                return api__mp_fail(mp, err, "unexpected byte after a boundary");
            mp->state = API_MP_EPILOGUE;
            break;
        case API_MP_PADDING:
            if (c == '\r')
                mp->state = API_MP_DELIM_CR;
            else if (c != ' ' && c != '\t')
                return api__mp_fail(mp, err, "unexpected byte after a boundary");
            break;
        case API_MP_DELIM_CR:
            if (c != '\n')
                return api__mp_fail(mp, err, "boundary line not ended by CRLF");
            if (++mp->nparts > API_MP_MAX_PARTS)
                return api__mp_fail(mp, err, "too many parts");
            mp->state = API_MP_HEADERS;
            mp->hlen = 0;
            break;
        case API_MP_HEADERS:
            if (mp->hlen == sizeof mp->hdr)
                return api__mp_fail(mp, err, "part headers too long");
            mp->hdr[mp->hlen++] = c;
            if (c == '\n') {
                if (mp->hlen < 2 || mp->hdr[mp->hlen - 2] != '\r')
                    return api__mp_fail(mp, err, "part header line not ended by CRLF");
                /* An empty line ends the headers. */
                if (mp->hlen == 2 || (mp->hlen >= 4 && mp->hdr[mp->hlen - 3] == '\n')) {
                    mp->hlen = mp->hlen == 2 ? 0 : mp->hlen - 4;
                    int rc = api__mp_headers_done(mp, err);
                    if (rc < 0)
                        return rc;
                }
            }
            break;
        default:
            return api__mp_fail(mp, err, "internal state");
        }
    }
    return 0;
}

int api_mp_finish(api_mp *mp, sp_err *err)
{
    if (mp->state == API_MP_EPILOGUE)
        return 0;
    if (mp->state == API_MP_FAILED)
        return sp_err_set(err, SP_EINVAL, "malformed multipart body");
    return api__mp_fail(mp, err, "the body ended before the closing boundary");
}

/* text.c - the number and date cell formats (see text.h). */
#include "text.h"

#include <stdio.h>
#include <string.h>

#include "spool/err.h"

static bool sp__blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool sp__digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Digits kept in a formatted number, and the largest decimal exponent accepted: beyond
 * these a cell is shown as written rather than as thousands of digits. */
#define SP__NUM_DIGITS 400
#define SP__NUM_EXP 300

int sp_text_format_number(const char *s, size_t n, int decimals, bool thousands, sp_buf *b)
{
    while (n > 0 && sp__blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && sp__blank(s[n - 1]))
        n--;
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) {
        neg = s[i] == '-';
        i++;
    }

    /* The mantissa's digits without leading zeros, and where its decimal point is. */
    char m[SP__NUM_DIGITS];
    size_t nm = 0;
    long point = 0; /* digits of m before the decimal point */
    size_t ndigits = 0;
    size_t group = 0; /* digits since the last ',' (or the start) */
    bool grouped = false;
    for (; i < n && (sp__digit(s[i]) || s[i] == ','); i++) {
        if (s[i] == ',') {
            /* separators only between groups of three: "1,234", not "12,34" or "1,,2" */
            if (group == 0 || group > 3 || (grouped && group != 3))
                return SP_EINVAL;
            grouped = true;
            group = 0;
            continue;
        }
        group++;
        ndigits++;
        if (nm == 0 && s[i] == '0')
            continue;
        if (nm == sizeof m)
            return SP_EINVAL;
        m[nm++] = s[i];
        point++;
    }
    if (grouped && group != 3)
        return SP_EINVAL;
    long frac = 0; /* fraction digits as written */
    if (i < n && s[i] == '.') {
        for (i++; i < n && sp__digit(s[i]); i++) {
            ndigits++;
            frac++;
            if (nm == 0 && s[i] == '0') {
                point--;
                continue;
            }
            if (nm == sizeof m)
                return SP_EINVAL;
            m[nm++] = s[i];
        }
    }
    if (ndigits == 0)
        return SP_EINVAL;
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            eneg = s[i] == '-';
            i++;
        }
        if (i >= n || !sp__digit(s[i]))
            return SP_EINVAL;
        for (; i < n && sp__digit(s[i]); i++) {
            exp = exp * 10 + (s[i] - '0');
            if (exp > SP__NUM_EXP)
                return SP_EINVAL;
        }
        if (eneg)
            exp = -exp;
    }
    if (i != n)
        return SP_EINVAL;
    if (nm == 0)
        point = 0;
    point += exp;

    long fd = decimals;
    if (fd < 0) {
        fd = frac - exp;
        if (fd < 0)
            fd = 0;
    }
    long ip = point > 0 ? point : 0; /* integer digits */
    if (ip + fd > SP__NUM_DIGITS)
        return SP_EINVAL;

    /* c[0..ip+fd-1]: the integer digits then the kept fraction digits, rounded. */
    char c[SP__NUM_DIGITS + 1];
    long nc = ip + fd;
    for (long k = 0; k < nc; k++) {
        long at = k < ip ? k : point + (k - ip); /* index into m */
        c[k] = at >= 0 && at < (long)nm ? m[at] : '0';
    }
    long r = point + fd; /* the first digit dropped */
    bool carry = r >= 0 && r < (long)nm && m[r] >= '5';
    for (long k = nc - 1; carry && k >= 0; k--) {
        if (c[k] == '9') {
            c[k] = '0';
        } else {
            c[k]++;
            carry = false;
        }
    }
    bool nonzero = carry;
    for (long k = 0; k < nc && !nonzero; k++)
        nonzero = c[k] != '0';

    sp_buf out;
    sp_buf_init(&out, b->max);
    int rc = 0;
    if (neg && nonzero)
        rc = sp_buf_addc(&out, '-');
    /* The integer part: a carried leading 1, then c[0..ip-1] without leading zeros. */
    long lead = 0; /* after a carried 1 every digit counts */
    while (!carry && lead < ip && c[lead] == '0')
        lead++;
    long intlen = (ip - lead) + (carry ? 1 : 0);
    if (intlen == 0) {
        if (rc == 0)
            rc = sp_buf_addc(&out, '0');
    } else {
        long left = intlen; /* integer digits still to write */
        if (carry && rc == 0) {
            rc = sp_buf_addc(&out, '1');
            left--;
            if (rc == 0 && thousands && left > 0 && left % 3 == 0)
                rc = sp_buf_addc(&out, ',');
        }
        for (long k = lead; k < ip && rc == 0; k++) {
            rc = sp_buf_addc(&out, c[k]);
            left--;
            if (rc == 0 && thousands && left > 0 && left % 3 == 0)
                rc = sp_buf_addc(&out, ',');
        }
    }
    if (fd > 0 && rc == 0) {
        rc = sp_buf_addc(&out, '.');
        if (rc == 0)
            rc = sp_buf_add(&out, c + ip, (size_t)fd);
    }
    if (rc == 0)
        rc = sp_buf_add(b, out.data, out.len);
    sp_buf_free(&out);
    return rc;
}

static bool sp__digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!sp__digit(s[i]))
            return false;
    return true;
}

static int sp__num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

int sp_text_format_date(const char *s, size_t n, sp_buf *b)
{
    while (n > 0 && sp__blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && sp__blank(s[n - 1]))
        n--;
    int y, mo, d;
    size_t rest;
    if (n >= 10 && sp__digits(s, 4) && s[4] == '-' && sp__digits(s + 5, 2) && s[7] == '-' &&
        sp__digits(s + 8, 2)) {
        y = sp__num(s, 4);
        mo = sp__num(s + 5, 2);
        d = sp__num(s + 8, 2);
        rest = 10;
    } else if (n >= 8 && sp__digits(s, 8) && (n == 8 || s[8] == 'T' || s[8] == 't')) {
        y = sp__num(s, 4);
        mo = sp__num(s + 4, 2);
        d = sp__num(s + 6, 2);
        rest = 8;
    } else {
        return SP_EINVAL;
    }
    if (rest < n && s[rest] != 'T' && s[rest] != 't' && s[rest] != ' ')
        return SP_EINVAL;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1)
        return SP_EINVAL;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap ? 1 : 0))
        return SP_EINVAL;
    char out[16];
    int len = snprintf(out, sizeof out, "%04d-%02d-%02d", y, mo, d);
    if (len != 10)
        return SP_EINVAL;
    return sp_buf_add(b, out, 10);
}

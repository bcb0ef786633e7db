/* bidi.c - Arabic shaping and visual line order through FriBidi (see bidi.h). */
#include "bidi.h"

#include <fribidi.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/err.h"

struct sp_bidi {
    FriBidiChar *str;
    FriBidiCharType *types;
    FriBidiBracketType *brackets;
    FriBidiLevel *lv;
    FriBidiJoiningType *join;
    FriBidiArabicProp *ar;
    size_t cap;
};

sp_bidi *sp_bidi_new(void)
{
    return sp_calloc(1, sizeof(sp_bidi));
}

void sp_bidi_free(sp_bidi *b)
{
    if (b == NULL)
        return;
    sp_free(b->str);
    sp_free(b->types);
    sp_free(b->brackets);
    sp_free(b->lv);
    sp_free(b->join);
    sp_free(b->ar);
    sp_free(b);
}

static int sp__grow(void *pp, size_t cap, size_t size)
{
    void **p = pp;
    void *q = sp_realloc(*p, cap * size);
    if (q == NULL)
        return SP_ENOMEM;
    *p = q;
    return 0;
}

/* Scratch for n characters. On failure some buffers may have grown; cap stays. */
static int sp__reserve(sp_bidi *b, size_t n)
{
    if (n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n)
        cap *= 2;
    if (sp__grow(&b->str, cap, sizeof *b->str) < 0 ||
        sp__grow(&b->types, cap, sizeof *b->types) < 0 ||
        sp__grow(&b->brackets, cap, sizeof *b->brackets) < 0 ||
        sp__grow(&b->lv, cap, sizeof *b->lv) < 0 || sp__grow(&b->join, cap, sizeof *b->join) < 0 ||
        sp__grow(&b->ar, cap, sizeof *b->ar) < 0)
        return SP_ENOMEM;
    b->cap = cap;
    return 0;
}

bool sp_bidi_needed(const uint16_t *cp, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t c = cp[i];
        if (c < 0x0590)
            continue;
        if ((c <= 0x08FF) || (c >= 0xFB1D && c <= 0xFDFF) || (c >= 0xFE70 && c <= 0xFEFE) ||
            c == 0x200F || c == 0x202B || c == 0x202E || c == 0x2067)
            return true;
    }
    return false;
}

bool sp_bidi_control(uint16_t c)
{
    return c == 0x200E || c == 0x200F || (c >= 0x202A && c <= 0x202E) ||
           (c >= 0x2066 && c <= 0x2069);
}

int sp_bidi_shape(sp_bidi *b, uint16_t *cp, size_t *n, int8_t *lv, uint32_t *types, bool *rtl)
{
    size_t len = *n;
    *rtl = false;
    if (len == 0)
        return 0;
    if (len > (size_t)INT32_MAX || sp__reserve(b, len) < 0)
        return SP_ENOMEM;
    FriBidiStrIndex fl = (FriBidiStrIndex)len;
    for (size_t i = 0; i < len; i++)
        b->str[i] = cp[i];
    fribidi_get_bidi_types(b->str, fl, b->types);
    fribidi_get_bracket_types(b->str, fl, b->types, b->brackets);
    FriBidiParType base = FRIBIDI_PAR_ON;
    if (fribidi_get_par_embedding_levels_ex(b->types, b->brackets, fl, &base, b->lv) == 0)
        return SP_ENOMEM; /* FriBidi fails only when it cannot allocate */
    fribidi_get_joining_types(b->str, fl, b->join);
    memcpy(b->ar, b->join, len * sizeof *b->ar);
    fribidi_join_arabic(b->types, fl, b->lv, b->ar);
    fribidi_shape(FRIBIDI_FLAG_SHAPE_MIRRORING | FRIBIDI_FLAGS_ARABIC, b->lv, fl, b->ar,
                  b->str);
    /* a ligature leaves FRIBIDI_CHAR_FILL where its second letter was: drop it */
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (b->str[i] == FRIBIDI_CHAR_FILL && cp[i] != FRIBIDI_CHAR_FILL)
            continue;
        cp[k] = b->str[i] > 0xFFFF ? 0xFFFD : (uint16_t)b->str[i];
        lv[k] = b->lv[i];
        types[k] = b->types[i];
        k++;
    }
    *n = k;
    *rtl = FRIBIDI_IS_RTL(base);
    return 0;
}

int sp_bidi_line(sp_bidi *b, const uint16_t *cp, size_t n, const int8_t *lv,
                 const uint32_t *types, bool rtl, uint16_t tail, uint16_t *out)
{
    size_t len = n + (tail != 0);
    if (len == 0)
        return 0;
    if (len > (size_t)INT32_MAX || sp__reserve(b, len) < 0)
        return SP_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->str[i] = cp[i];
        b->lv[i] = lv[i];
        b->types[i] = types[i];
    }
    if (tail) {
        b->str[n] = tail;
        b->lv[n] = rtl ? 1 : 0;
        b->types[n] = FRIBIDI_TYPE_ON;
    }
    FriBidiParType base = rtl ? FRIBIDI_PAR_RTL : FRIBIDI_PAR_LTR;
    if (fribidi_reorder_line(FRIBIDI_FLAG_REORDER_NSM, b->types, (FriBidiStrIndex)len, 0, base,
                             b->lv, b->str, NULL) == 0)
        return SP_ENOMEM;
    for (size_t i = 0; i < len; i++)
        out[i] = (uint16_t)b->str[i];
    return 0;
}

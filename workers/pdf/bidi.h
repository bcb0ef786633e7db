/* bidi.h - right-to-left text for the PDF renderer, by FriBidi: Hebrew and Arabic cells
 * are shaped (Arabic letters take their joining forms as the presentation-form code
 * points DejaVu draws, lam-alef becomes one ligature, brackets in right-to-left runs are
 * mirrored) and each laid-out line is put in visual order (UAX #9), because libharu
 * draws code points left to right as given. Every FriBidi call lives here.
 *
 * Cells without a right-to-left character never come here (sp_bidi_needed), so Latin
 * and CJK text pays one scan. A context is used by one thread at a time. */
#ifndef SPOOL_PDF_BIDI_H
#define SPOOL_PDF_BIDI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sp_bidi sp_bidi;

/* A context with its scratch buffers; NULL when out of memory. Free with sp_bidi_free
 * (accepts NULL). */
sp_bidi *sp_bidi_new(void);
void sp_bidi_free(sp_bidi *b);

/* Whether cp[0..n) holds a right-to-left character (Hebrew, Arabic, Syriac, Thaana,
 * N'Ko..., their presentation forms, or an explicit right-to-left mark or embedding). */
bool sp_bidi_needed(const uint16_t *cp, size_t n);

/* Shape the paragraph cp[0..*n) in place (still in logical order) and resolve its
 * embedding levels: lv[i] and types[i] are what sp_bidi_line needs for the shaped
 * cp[i]. A lam-alef ligature takes two characters' place in one, so *n may shrink.
 * *rtl says whether the paragraph's base direction is right to left (its first strong
 * character). 0 or SP_ENOMEM (cp unchanged). */
int sp_bidi_shape(sp_bidi *b, uint16_t *cp, size_t *n, int8_t *lv, uint32_t *types, bool *rtl);

/* Write the line cp[0..n) of a shaped paragraph (lv and types: its slices of what
 * sp_bidi_shape gave) to out[0..n + (tail != 0)) in visual order, left to right. A
 * non-zero tail (the "…" of a cut line) is appended in logical order first, so it ends
 * up where the line ends: on the left of a right-to-left paragraph. 0 or SP_ENOMEM. */
int sp_bidi_line(sp_bidi *b, const uint16_t *cp, size_t n, const int8_t *lv,
                 const uint32_t *types, bool rtl, uint16_t tail, uint16_t *out);

/* Bidi controls (LRM, RLM, embeddings, overrides, isolates): they steer sp_bidi_line
 * and are not drawn. */
bool sp_bidi_control(uint16_t c);

#endif

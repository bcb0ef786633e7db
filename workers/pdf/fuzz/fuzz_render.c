/* fuzz_render.c - libFuzzer target for spool-pdf's cell layout and drawing: arbitrary
 * bytes as the cells of a row (split at 0x1F) of a table whose column widths, wrapping
 * and alignment come from one of 16 table set-ups (picked by the first byte), laid out
 * and drawn through libharu (into /dev/null), with the CJK fallback font and right-to-left
 * shaping. Each set-up's document serves up to 300 inputs (loading
 * fonts per input would be too slow), so an input replayed alone is drawn in the same
 * table it was found with.
 *
 *   make fuzz && build/release/fuzz/fuzz_pdf_render -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define NCOL 4
#define FONTS "/usr/share/fonts/truetype/dejavu/"

/* Column widths (2 bits a column: 0 measured, 3, 40, 300 points), alignments, wrapping
 * and line limits, spread over the combinations. */
static const unsigned char knobs[16] = {0x00, 0x05, 0x1B, 0x27, 0x3C, 0x4E, 0x55, 0x6A,
                                        0x78, 0x93, 0xA5, 0xB1, 0xC6, 0xD9, 0xEF, 0xFF};
static sp_pdf_doc *docs[16];
static int uses[16];

static sp_pdf_doc *new_doc(unsigned char knob)
{
    static const double widths[4] = {0, 3, 40, 300};
    sp_pdf_column cols[NCOL];
    for (int i = 0; i < NCOL; i++) {
        cols[i].label = i % 2 ? "Label with several words" : "L";
        cols[i].width = widths[(knob >> (2 * i)) & 3];
        cols[i].align = (sp_pdf_align)((knob + i) % 3);
        cols[i].wrap = (knob >> i) & 1;
    }
    static const char *const fallbacks[] = {"/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"};
    sp_pdf_setup s = {.title = "Fuzz", .font_path = FONTS "DejaVuSans.ttf",
                      .bold_path = FONTS "DejaVuSans-Bold.ttf", .columns = cols,
                      .fallbacks = fallbacks, .nfallbacks = 1,
                      .ncolumns = NCOL, .max_lines = 1 + knob % 5, .max_memory = 64 << 20};
    sp_err err;
    sp_pdf_doc *d = sp_pdf_new(&s, &err);
    if (d == NULL)
        abort();
    const char *sample[NCOL] = {"sample", "1,234.50", "", "a much longer sample value"};
    size_t lens[NCOL];
    for (int i = 0; i < NCOL; i++)
        lens[i] = strlen(sample[i]);
    sp_pdf_sample(d, sample, lens);
    if (sp_pdf_layout_begin(d, &err) < 0 || sp_pdf_render_begin(d, "/dev/null", &err) < 0)
        abort();
    return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t k = data[0] % 16;
    if (docs[k] == NULL || ++uses[k] > 300) {
        sp_pdf_free(docs[k]);
        docs[k] = new_doc(knobs[k]);
        uses[k] = 0;
    }
    sp_pdf_doc *doc = docs[k];
    const char *cells[NCOL];
    size_t lens[NCOL];
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    for (int i = 0; i < NCOL; i++) {
        const char *q = memchr(p, 0x1F, (size_t)(end - p));
        if (q == NULL)
            q = end;
        cells[i] = p;
        lens[i] = (size_t)(q - p);
        p = q < end ? q + 1 : end;
    }
    sp_err err;
    int rc = sp_pdf_render_row(doc, cells, lens, &err);
    if (rc < 0) {
        /* the memory cap, or past the one page laid out (the file is numbered for the
         * layout's page count): start a new document */
        if (rc != SP_ETOOBIG && rc != SP_EPROTO)
            abort();
        sp_pdf_free(doc);
        docs[k] = NULL;
    }
    return 0;
}

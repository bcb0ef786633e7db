/* test_pdf_render.c - the export pipeline (params, dataset passes, libharu renderer)
 * checked on the PDFs it writes, with poppler's pdfinfo and pdftotext: page counts,
 * the header on every page, the last row, "Page N of M", non-ASCII text extracted back,
 * metadata, cells that never spill into the next column, number formats, limits,
 * cancellation and error messages, CJK text through the fallback font, right-to-left
 * text, and the visible, counted replacement of characters no font has; with qpdf
 * --check and pdffonts, the files written a page at a time around the page tree's node
 * size, memory that does not grow with the page count, and the compression setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "export.h"
#include "spool/alloc.h"
#include "spool/buf.h"

static char sp__dir[] = "/tmp/spool-test-render-XXXXXX";
static int sp__seq;

/* The fallback chain exports use (spool-pdf's default), switched off by some tests. */
#define WQY "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
static const char *const sp__wqy[] = {WQY};
static const char *const *sp__fallbacks = sp__wqy;
static size_t sp__nfallbacks = 1;

/* Run a shell command and return its stdout (caller frees). */
static char *sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    sp_buf b;
    sp_buf_init(&b, (size_t)1 << 28);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        sp_buf_add(&b, buf, n);
    pclose(p);
    char *s = sp_buf_take(&b);
    return s ? s : sp_strdup("");
}

static char *write_file(const char *data, size_t n)
{
    char *path = sp_malloc(256);
    snprintf(path, 256, "%s/f%d", sp__dir, sp__seq++);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

typedef struct run {
    int rc;
    sp_err err;
    sp_export_result res;
    char pdf[256];
    int progress_calls, last_progress, stop_at;
    sp_flag stop;
} run;

static void on_progress(void *ud, int percent)
{
    run *r = ud;
    if (percent < r->last_progress)
        fail_msg("progress went back from %d to %d", r->last_progress, percent);
    r->last_progress = percent;
    r->progress_calls++;
    if (r->stop_at > 0 && percent >= r->stop_at)
        r->stop = 1;
}

/* Export data (format fmt) with params; limits may be NULL. */
static void export_with(run *r, const char *params, const char *data, size_t n,
                        sp_dataset_format fmt, const sp_export_limits *limits)
{
    sp_export_params p;
    sp_err perr = {0};
    int prc = sp_export_params_parse(params, &p, &perr);
    if (prc != 0)
        fail_msg("params: %s", perr.msg);
    char *path = write_file(data, n);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    snprintf(r->pdf, sizeof r->pdf, "%s/out%d.pdf", sp__dir, sp__seq++);
    sp_export_opts o = {.creator = "spool-pdf test",
                        .fallbacks = sp__fallbacks,
                        .nfallbacks = sp__nfallbacks,
                        .now_ms = INT64_C(1714979289000), /* 2024-05-06 07:08:09 UTC */
                        .stop = &r->stop,
                        .progress = on_progress,
                        .ud = r};
    if (limits)
        o.limits = *limits;
    r->last_progress = -1;
    r->rc = sp_export_run(&p, fd, fmt, r->pdf, &o, &r->res, &r->err);
    sp_export_params_free(&p);
    unlink(path);
    sp_free(path);
}

static void export_ok(run *r, const char *params, const char *data, sp_dataset_format fmt)
{
    memset(r, 0, sizeof *r);
    export_with(r, params, data, strlen(data), fmt, NULL);
    if (r->rc != 0)
        fail_msg("export failed: %d %s", r->rc, r->err.msg);
}

/* n rows of NDJSON: {"id":i,"name":"Name i","amount":i*1.5} */
static char *ndjson_rows(int n)
{
    sp_buf b;
    sp_buf_init(&b, (size_t)1 << 30);
    for (int i = 1; i <= n; i++)
        sp_buf_addf(&b, "{\"id\":%d,\"name\":\"Name %d\",\"amount\":%d.5}\n", i, i, i);
    return sp_buf_take(&b);
}

static int pdf_pages(const char *pdf)
{
    char *out = sh("pdfinfo '%s' 2>&1", pdf);
    const char *p = strstr(out, "Pages:");
    int pages = p ? atoi(p + 6) : -1;
    sp_free(out);
    return pages;
}

/* The text of page n (1-based). */
static char *page_text(const char *pdf, int n)
{
    return sh("pdftotext -q -layout -f %d -l %d '%s' -", n, n, pdf);
}

static void expect_in(const char *hay, const char *needle, const char *what)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("%s: '%s' not found in:\n%.2000s", what, needle, hay);
}

static void test_page_count_header_on_every_page_and_footers(void **state)
{
    (void)state;
    char *data = ndjson_rows(1500);
    run r;
    export_ok(&r, "{\"title\":\"Numbers\",\"columns\":[{\"key\":\"id\",\"label\":\"Ident\"},"
                  "{\"key\":\"name\",\"label\":\"Full name\"},{\"key\":\"amount\","
                  "\"label\":\"Amount\",\"format\":\"number\",\"decimals\":2}]}",
              data, SP_DATASET_NDJSON);
    sp_free(data);
    assert_int_equal(r.res.rows, 1500);
    int pages = pdf_pages(r.pdf);
    assert_int_equal(pages, r.res.pages);
    assert_true(pages > 20);
    /* every page: the header, its footer */
    char *all = sh("pdftotext -q -layout '%s' -", r.pdf);
    int seen = 0;
    char footer[64];
    for (char *pg = all, *next; pg && *pg; pg = next) {
        next = strchr(pg, '\f');
        if (next)
            *next++ = '\0';
        if (*pg == '\0')
            continue;
        seen++;
        expect_in(pg, "Ident", "header");
        expect_in(pg, "Full name", "header");
        expect_in(pg, "Amount", "header");
        snprintf(footer, sizeof footer, "Page %d of %d", seen, pages);
        expect_in(pg, footer, "footer");
    }
    assert_int_equal(seen, pages);
    sp_free(all);
    char *first = page_text(r.pdf, 1);
    expect_in(first, "Numbers", "title");
    expect_in(first, "Page 1 of", "first footer");
    sp_free(first);
    char *last = page_text(r.pdf, pages);
    expect_in(last, "Name 1500", "last row");
    expect_in(last, "1,500.50", "last amount");
    snprintf(footer, sizeof footer, "Page %d of %d", pages, pages);
    expect_in(last, footer, "last footer");
    sp_free(last);
    /* progress went up to the end of the render pass */
    assert_true(r.progress_calls > 3);
    assert_true(r.last_progress >= 95);
}

static void test_non_ascii_text_is_extracted_back(void **state)
{
    (void)state;
    const char *data = "city,word\n"
                       "Zürich,Ça va très bien\n"
                       "Москва,Привет мир\n"
                       "Αθήνα,Καλημέρα κόσμε\n"
                       "東京,日本語テキスト\n"
                       "Yijing,䷀䷁䷂ hexagrams\n"
                       "Łódź,żółć gęślą jaźń\n";
    run r;
    export_ok(&r, "{\"title\":\"Ünïcödé — Привет — Ωμέγα\",\"author\":\"José Núñez\"}", data,
              SP_DATASET_CSV);
    char *text = sh("pdftotext -q '%s' -", r.pdf);
    const char *want[] = {"Zürich", "Ça va très bien", "Москва", "Привет мир", "Αθήνα",
                          "Καλημέρα κόσμε", "東京", "日本語テキスト", "䷀䷁䷂", "Łódź",
                          "żółć gęślą jaźń", "Ünïcödé — Привет — Ωμέγα"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        expect_in(text, want[i], "extracted text");
    sp_free(text);
    /* the ToUnicode maps are valid: poppler has nothing to warn about */
    char *warn = sh("pdftotext '%s' /dev/null 2>&1", r.pdf);
    assert_string_equal(warn, "");
    sp_free(warn);
    char *info = sh("pdfinfo '%s'", r.pdf);
    expect_in(info, "Ünïcödé — Привет — Ωμέγα", "title metadata");
    expect_in(info, "José Núñez", "author metadata");
    sp_free(info);
}

/* Dark pixels of page 1 rendered at 100 dpi in grey. */
static long page_ink(const char *pdf)
{
    char *img = sh("pdftoppm -q -r 100 -gray -f 1 -l 1 '%s' '%s/ink' && cat '%s'/ink*.pgm && "
                   "rm -f '%s'/ink*.pgm", pdf, sp__dir, sp__dir, sp__dir);
    int w = 0, h = 0, max = 0, off = 0;
    long ink = -1;
    if (sscanf(img, "P5 %d %d %d%n", &w, &h, &max, &off) == 3 && w > 0 && h > 0) {
        const unsigned char *px = (const unsigned char *)img + off + 1;
        ink = 0;
        for (long i = 0; i < (long)w * h; i++)
            ink += px[i] < 160;
    }
    sp_free(img);
    return ink;
}

static void test_cjk_text_is_drawn_with_the_fallback_font(void **state)
{
    (void)state;
    const char *data = "name,city\n"
                       "山田太郎,東京都\n"
                       "김민준,서울\n"
                       "王小明,北京市\n";
    run r;
    export_ok(&r, "{\"title\":\"顧客 Customers\"}", data, SP_DATASET_CSV);
    assert_int_equal(r.res.missing_glyphs, 0);
    char *text = sh("pdftotext -q '%s' -", r.pdf);
    const char *want[] = {"山田太郎", "東京都", "김민준", "서울", "王小明", "北京市", "顧客"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        expect_in(text, want[i], "extracted text");
    assert_null(strstr(text, "\xEF\xBF\xBD"));
    sp_free(text);
    char *fonts = sh("pdffonts '%s'", r.pdf);
    expect_in(fonts, "WenQuanYi", "fonts");
    expect_in(fonts, "DejaVuSans", "fonts");
    sp_free(fonts);
    /* The glyphs are drawn: the same rows without their CJK cells leave far less ink. */
    long cjk = page_ink(r.pdf);
    run blank;
    export_ok(&blank, "{\"title\":\"Customers\"}", "name,city\n,\n,\n,\n", SP_DATASET_CSV);
    long none = page_ink(blank.pdf);
    if (!(cjk > none + 200)) /* measured: 389 more dark pixels */
        fail_msg("page ink %ld with CJK text, %ld without", cjk, none);
    /* a document that needs no fallback does not embed it */
    run latin;
    export_ok(&latin, "{\"title\":\"Latin\"}", "a,b\nx,y\n", SP_DATASET_CSV);
    fonts = sh("pdffonts '%s'", latin.pdf);
    assert_null(strstr(fonts, "WenQuanYi"));
    sp_free(fonts);
}

static void test_characters_no_font_has_are_replaced_and_counted(void **state)
{
    (void)state;
    /* U+E000 (private use) and U+1F600 (outside the BMP) are in no font; the header
     * (two per page, on one page) counts once, a real U+FFFD in the text is not counted */
    const char *data = "a\xEE\x80\x80,b\n"
                       "x\xEE\x80\x80y,smile \xF0\x9F\x98\x80\n"
                       "\xEF\xBF\xBD,ok\n";
    run r;
    export_ok(&r, "{\"title\":\"T\"}", data, SP_DATASET_CSV);
    assert_int_equal(r.res.missing_glyphs, 3);
    char *text = sh("pdftotext -q '%s' -", r.pdf);
    expect_in(text, "x\xEF\xBF\xBDy", "replacement drawn in place");
    expect_in(text, "smile \xEF\xBF\xBD", "replacement for the emoji");
    sp_free(text);

    /* without a fallback font, CJK characters are counted and shown as U+FFFD */
    sp__nfallbacks = 0;
    run n;
    export_ok(&n, "{\"title\":\"T\"}", "name\n東京\n", SP_DATASET_CSV);
    sp__nfallbacks = 1;
    assert_int_equal(n.res.missing_glyphs, 2);
    text = sh("pdftotext -q '%s' -", n.pdf);
    expect_in(text, "\xEF\xBF\xBD\xEF\xBF\xBD", "two replacements");
    sp_free(text);
}

static void test_cjk_text_wraps_between_ideographs(void **state)
{
    (void)state;
    /* 60 ideographs and no space in a wrapping column 100 pt wide: it breaks between
     * them, never before the closing "。" */
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    sp_buf_addf(&b, "note\n");
    for (int i = 0; i < 19; i++)
        sp_buf_addf(&b, "日本語。");
    sp_buf_addf(&b, "\n");
    char *data = sp_buf_take(&b);
    run r;
    memset(&r, 0, sizeof r);
    sp_export_limits lim = {.max_lines = 20};
    export_with(&r, "{\"title\":\"T\",\"columns\":[{\"key\":\"note\",\"width\":100}]}", data,
                strlen(data), SP_DATASET_CSV, &lim);
    if (r.rc != 0)
        fail_msg("export failed: %d %s", r.rc, r.err.msg);
    char *text = sh("pdftotext -q -layout '%s' -", r.pdf);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        const char *p = line + strspn(line, " ");
        if (strncmp(p, "日", 3) == 0 || strncmp(p, "本", 3) == 0 || strncmp(p, "語", 3) == 0)
            lines++;
        if (strncmp(p, "。", 3) == 0)
            fail_msg("a line starts with the closing mark: %s", line);
    }
    sp_free(text);
    sp_free(data);
    if (lines < 5)
        fail_msg("the text took %d lines, not wrapped between ideographs", lines);
    assert_int_equal(r.res.missing_glyphs, 0);
}

static void test_metadata_page_size_and_orientation(void **state)
{
    (void)state;
    run r;
    export_ok(&r, "{\"title\":\"Meta\",\"page_size\":\"Letter\",\"orientation\":\"landscape\","
                  "\"font\":\"serif\"}",
              "a,b\n1,2\n", SP_DATASET_CSV);
    char *info = sh("pdfinfo '%s'", r.pdf);
    expect_in(info, "Title:           Meta", "title");
    expect_in(info, "Author:          spool", "default author");
    expect_in(info, "Creator:         spool-pdf test", "creator");
    expect_in(info, "CreationDate:    Mon May  6 07:08:09 2024 UTC", "creation date");
    expect_in(info, "792 x 612 pts (letter)", "landscape letter");
    sp_free(info);
    char *fonts = sh("pdffonts '%s'", r.pdf);
    expect_in(fonts, "DejaVuSerif", "serif font");
    expect_in(fonts, "CID TrueType", "embedded TrueType");
    sp_free(fonts);

    export_ok(&r, "{\"title\":\"Mono\",\"font\":\"mono\"}", "a\n1\n", SP_DATASET_CSV);
    info = sh("pdfinfo '%s'", r.pdf);
    expect_in(info, "595.276 x 841.89 pts (A4)", "A4 portrait");
    sp_free(info);
    fonts = sh("pdffonts '%s'", r.pdf);
    expect_in(fonts, "DejaVuSansMono", "mono font");
    sp_free(fonts);
}

/* Words of page 1 with their boxes, from pdftotext -bbox. */
typedef struct word {
    double x0, y0, x1, y1;
    char text[128];
} word;

static size_t page_words(const char *pdf, word *out, size_t max)
{
    char *html = sh("pdftotext -q -bbox -f 1 -l 1 '%s' -", pdf);
    size_t n = 0;
    for (char *p = strstr(html, "<word "); p && n < max; p = strstr(p + 1, "<word ")) {
        word *w = &out[n];
        if (sscanf(p, "<word xMin=\"%lf\" yMin=\"%lf\" xMax=\"%lf\" yMax=\"%lf\">", &w->x0, &w->y0,
                   &w->x1, &w->y1) != 4)
            continue;
        char *t = strchr(p, '>') + 1;
        char *e = strstr(t, "</word>");
        size_t len = (size_t)(e - t) < sizeof w->text - 1 ? (size_t)(e - t) : sizeof w->text - 1;
        memcpy(w->text, t, len);
        w->text[len] = '\0';
        n++;
    }
    sp_free(html);
    return n;
}

static const word *find_word(const word *w, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w[i].text, text) == 0)
            return &w[i];
    fail_msg("no word \"%s\" on the page", text);
    return NULL;
}

static void test_right_to_left_text_is_shaped_and_drawn_in_visual_order(void **state)
{
    (void)state;
    const char *data = "name,note\n"
                       "שלום עולם,abc אבג def\n"
                       "مرحبا لا,(1) نص\n";
    run r;
    export_ok(&r, "{\"title\":\"T\"}", data, SP_DATASET_CSV);
    assert_int_equal(r.res.missing_glyphs, 0);
    word w[64];
    size_t n = page_words(r.pdf, w, 64);
    /* Words come back as drawn, glyphs left to right: a Hebrew word reversed. The first
     * word of a right-to-left cell is the rightmost. */
    const word *shalom = find_word(w, n, "םולש"), *olam = find_word(w, n, "םלוע");
    if (!(olam->x0 < shalom->x0))
        fail_msg("עולם at %.1f should be left of שלום at %.1f", olam->x0, shalom->x0);
    /* A left-to-right cell keeps its order around the Hebrew word, which is reversed */
    const word *abc = find_word(w, n, "abc"), *heb = find_word(w, n, "גבא"),
               *def = find_word(w, n, "def");
    if (!(abc->x0 < heb->x0 && heb->x0 < def->x0))
        fail_msg("abc %.1f, אבג %.1f, def %.1f out of order", abc->x0, heb->x0, def->x0);
    /* Arabic takes its joined forms (presentation forms B) and lam-alef its ligature:
     * مرحبا is drawn as final alef, medial beh, initial hah... reversed */
    const word *marhaba = find_word(w, n, "\uFE8E\uFE92\uFEA3\uFEAE\uFEE3");
    const word *la = find_word(w, n, "\uFEFB");
    if (!(la->x0 < marhaba->x0))
        fail_msg("لا at %.1f should be left of مرحبا at %.1f", la->x0, marhaba->x0);
    /* In a right-to-left cell the number stays left to right, brackets mirrored */
    find_word(w, n, "(1)");
    /* pdftotext's own reordering gives the logical text back */
    char *text = sh("pdftotext -q '%s' -", r.pdf);
    expect_in(text, "שלום עולם", "logical Hebrew");
    sp_free(text);

    /* A cut right-to-left line ends on the left: "…" is drawn left of its last line */
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    sp_buf_addf(&b, "note\n");
    for (int i = 0; i < 30; i++)
        sp_buf_addf(&b, "שלום ");
    sp_buf_addf(&b, "\n");
    char *long_rtl = sp_buf_take(&b);
    run c;
    export_ok(&c, "{\"title\":\"T\",\"columns\":[{\"key\":\"note\",\"width\":120}]}",
              long_rtl, SP_DATASET_CSV);
    sp_free(long_rtl);
    n = page_words(c.pdf, w, 64);
    const word *ell = NULL;
    for (size_t i = 0; i < n; i++)
        if (strstr(w[i].text, "\u2026"))
            ell = &w[i];
    if (ell == NULL) {
        fail_msg("the long cell was not cut with \"…\"");
        return;
    }
    if (strncmp(ell->text, "\xE2\x80\xA6", 3) != 0)
        fail_msg("\"…\" is not at the left of \"%s\"", ell->text);
    for (size_t i = 0; i < n; i++)
        if (w[i].y0 == ell->y0 && w[i].x0 < ell->x0)
            fail_msg("\"%s\" is left of the \"…\" on the cut line", w[i].text);
}

static void test_cells_never_spill_into_the_next_column(void **state)
{
    (void)state;
    /* Column 1 spans 36..136 pt, column 2 136..236 pt. */
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    sp_buf_adds(&b, "[\"a\",\"b\"]\n");
    sp_buf_adds(&b, "[\"Supercalifragilisticexpialidocious-and-then-some-more-unbroken\",\"x\"]\n");
    sp_buf_adds(&b, "[\"many short words that will certainly need more than three lines of "
                    "this narrow column to fit and so must end in an ellipsis\",\"y\"]\n");
    sp_buf_adds(&b, "[\"two\\nlines\",\"z\"]\n");
    run r;
    export_ok(&r, "{\"title\":\"Wrap\",\"columns\":[{\"key\":\"a\",\"width\":100},"
                  "{\"key\":\"b\",\"width\":100,\"format\":\"number\"}]}",
              sp_buf_cstr(&b), SP_DATASET_NDJSON);
    sp_buf_free(&b);
    word words[512];
    size_t n = page_words(r.pdf, words, 512);
    assert_true(n > 10);
    int ellipses = 0;
    for (size_t i = 0; i < n; i++) {
        word *w = &words[i];
        if (w->y0 < 60 || w->y1 < 100)
            continue; /* footer */
        if (strstr(w->text, "\xE2\x80\xA6"))
            ellipses++;
        if (w->x0 < 136 - 0.01 && w->x1 > 136 - 4 + 0.5)
            fail_msg("'%s' spans %.2f..%.2f, past column 1's text edge (132)", w->text, w->x0,
                     w->x1);
    }
    assert_true(ellipses >= 1);
    char *text = page_text(r.pdf, 1);
    expect_in(text, "Supercalifragi", "long word cut inside");
    expect_in(text, "two", "hard line break");
    expect_in(text, "lines", "hard line break");
    sp_free(text);
}

static void test_numbers_are_formatted_and_right_aligned(void **state)
{
    (void)state;
    const char *data = "n,label\n1234.5,a\n-0.004,b\n1000000,c\nn/a,d\n2.675,e\n";
    run r;
    export_ok(&r, "{\"title\":\"Nums\",\"columns\":[{\"key\":\"n\",\"label\":\"N\",\"format\":"
                  "\"number\",\"decimals\":2,\"width\":150},{\"key\":\"label\",\"width\":50}]}",
              data, SP_DATASET_CSV);
    word words[256];
    size_t n = page_words(r.pdf, words, 256);
    const char *want[] = {"1,234.50", "0.00", "1,000,000.00", "n/a", "2.68"};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        size_t i = 0;
        while (i < n && strcmp(words[i].text, want[k]) != 0)
            i++;
        if (i == n)
            fail_msg("'%s' not on the page", want[k]);
        /* right-aligned: ends at the column's right edge (36 + 150) minus the padding */
        if (words[i].x1 < 186 - 4 - 1.0 || words[i].x1 > 186 - 4 + 0.5)
            fail_msg("'%s' ends at %.2f, expected about 182", want[k], words[i].x1);
    }
}

static void test_right_aligned_wrapped_lines_end_at_the_edge(void **state)
{
    (void)state;
    /* a 60 pt right-aligned text column: every wrapped line ends at 36 + 60 - 4 */
    run r;
    export_ok(&r, "{\"title\":\"Right\",\"columns\":[{\"key\":\"t\",\"width\":60,\"align\":"
                  "\"right\"},{\"key\":\"u\",\"width\":100}]}",
              "t,u\n\"alpha    beta     gamma  \",x\n", SP_DATASET_CSV);
    word words[64];
    size_t n = page_words(r.pdf, words, 64);
    const char *want[] = {"alpha", "beta", "gamma"};
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < 3; k++) {
            if (strcmp(words[i].text, want[k]) != 0)
                continue;
            found++;
            if (words[i].x1 < 92 - 0.6 || words[i].x1 > 92 + 0.5)
                fail_msg("'%s' ends at %.2f, expected 92 (the column's right edge)",
                         words[i].text, words[i].x1);
        }
    }
    assert_int_equal(found, 3);
}

static void test_measured_columns_fit_their_sampled_values(void **state)
{
    (void)state;
    /* no widths given: every column is measured, and short values are never cut */
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    sp_buf_adds(&b, "id,qty,price,city,note\n");
    for (int i = 1; i <= 120; i++)
        sp_buf_addf(&b, "%d,%d,%d.%02d,Zürich %d,\"%s\"\n", i, 1000 + i * 37, i * 91, i % 100, i,
                    "a note long enough to be wrapped over a few lines in its column, which "
                    "is the widest");
    run r;
    export_ok(&r, "{\"title\":\"Measured\",\"columns\":[{\"key\":\"id\",\"format\":\"number\"},"
                  "{\"key\":\"qty\",\"format\":\"number\"},{\"key\":\"price\",\"format\":"
                  "\"number\",\"decimals\":2},{\"key\":\"city\"},{\"key\":\"note\"}]}",
              sp_buf_cstr(&b), SP_DATASET_CSV);
    sp_buf_free(&b);
    char *text = sh("pdftotext -q -layout '%s' -", r.pdf);
    const char *want[] = {"5,440", "10,920.20", "Zürich 120", "1,037", "91.01"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        expect_in(text, want[i], "a measured column's value, whole");
    /* only the long notes may be cut */
    word words[1024];
    size_t n = page_words(r.pdf, words, 1024);
    for (size_t i = 0; i < n; i++)
        if (strstr(words[i].text, "\xE2\x80\xA6") && words[i].x0 < 300)
            fail_msg("'%s' at %.1f was cut", words[i].text, words[i].x0);
    sp_free(text);
}

static void test_columns_come_from_the_data_when_not_given(void **state)
{
    (void)state;
    run r;
    export_ok(&r, "{\"title\":\"Auto\"}", "[{\"zeta\":1,\"alpha\":\"x\"},{\"alpha\":\"y\"}]",
              SP_DATASET_JSON_ARRAY);
    char *text = page_text(r.pdf, 1);
    expect_in(text, "zeta", "first key");
    expect_in(text, "alpha", "second key");
    assert_true(strstr(text, "zeta") < strstr(text, "alpha"));
    sp_free(text);
    assert_int_equal(r.res.rows, 2);
}

static void test_empty_dataset_gives_one_page_with_the_header(void **state)
{
    (void)state;
    run r;
    export_ok(&r, "{\"title\":\"Empty\"}", "only,header\n", SP_DATASET_CSV);
    assert_int_equal(r.res.rows, 0);
    assert_int_equal(r.res.pages, 1);
    assert_int_equal(pdf_pages(r.pdf), 1);
    char *text = page_text(r.pdf, 1);
    expect_in(text, "header", "header");
    expect_in(text, "Page 1 of 1", "footer");
    sp_free(text);
}

/* Empty cells are measured before any text was decoded. fuzz_pdf_render found pointer
 * arithmetic on the still-unallocated code point buffer there, which clang's UBSan
 * reports ("applying zero offset to null pointer"; gcc's does not check it): built with
 * `make sanitize CC=clang`, this test fails without the fix. */
static void test_empty_cells_in_measured_columns(void **state)
{
    (void)state;
    run r;
    export_ok(&r, "{\"title\":\"Blanks\"}", "id,name\n,\n,Ann\n7,\n", SP_DATASET_CSV);
    assert_int_equal(r.res.rows, 3);
    assert_int_equal(pdf_pages(r.pdf), 1);
    char *text = page_text(r.pdf, 1);
    expect_in(text, "Ann", "a value after empty cells");
    expect_in(text, "7", "a value after empty cells");
    sp_free(text);
}

static void test_wide_tables_are_scaled_to_the_page(void **state)
{
    (void)state;
    sp_buf p;
    sp_buf_init(&p, 1 << 16);
    sp_buf_adds(&p, "{\"title\":\"Wide\",\"columns\":[");
    sp_buf d;
    sp_buf_init(&d, 1 << 16);
    for (int i = 0; i < 20; i++) {
        sp_buf_addf(&p, "%s{\"key\":\"c%d\",\"width\":200}", i ? "," : "", i);
        sp_buf_addf(&d, "%sc%d", i ? "," : "", i);
    }
    sp_buf_adds(&p, "]}");
    sp_buf_adds(&d, "\n");
    for (int i = 0; i < 20; i++)
        sp_buf_addf(&d, "%svalue-%d", i ? "," : "", i);
    sp_buf_adds(&d, "\n");
    run r;
    export_ok(&r, sp_buf_cstr(&p), sp_buf_cstr(&d), SP_DATASET_CSV);
    word words[1024];
    size_t n = page_words(r.pdf, words, 1024);
    for (size_t i = 0; i < n; i++)
        if (words[i].x1 > 595.276 - 36 + 0.5)
            fail_msg("'%s' ends at %.2f, past the right margin", words[i].text, words[i].x1);
    sp_buf_free(&p);
    sp_buf_free(&d);
}

static void expect_failure(const char *params, const char *data, sp_dataset_format fmt,
                           const sp_export_limits *limits, int rc, const char *code,
                           bool retryable, const char *msg)
{
    run r;
    memset(&r, 0, sizeof r);
    export_with(&r, params, data, strlen(data), fmt, limits);
    if (r.rc != rc || strcmp(r.res.error_code ? r.res.error_code : "", code) != 0 ||
        strstr(r.err.msg, msg) == NULL)
        fail_msg("got %d %s '%s', expected %d %s '...%s...'", r.rc,
                 r.res.error_code ? r.res.error_code : "(none)", r.err.msg, rc, code, msg);
    assert_int_equal(r.res.retryable, retryable);
}

static void test_malformed_data_fails_permanently_naming_the_line(void **state)
{
    (void)state;
    const char *p = "{\"title\":\"Bad\"}";
    expect_failure(p, "a,b\n1,2\n3,\"x\"y\n", SP_DATASET_CSV, NULL, SP_EINVAL, "invalid_input",
                   false, "invalid dataset: line 3: malformed CSV");
    expect_failure(p, "a,b\n1,2\n3\n", SP_DATASET_CSV, NULL, SP_EINVAL, "invalid_input", false,
                   "invalid dataset: line 3: the row has 1 fields, expected 2");
    expect_failure(p, "{\"a\":1}\n{\"a\":2}\n{\"a\":\n", SP_DATASET_NDJSON, NULL, SP_EINVAL,
                   "invalid_input", false, "invalid dataset: line 3: invalid JSON");
    expect_failure("{\"title\":\"T\",\"columns\":[{\"key\":\"nope\"}]}", "a\n1\n", SP_DATASET_CSV,
                   NULL, SP_EINVAL, "invalid_input", false, "column 'nope' is not in the CSV header");
    expect_failure(p, "", SP_DATASET_NDJSON, NULL, SP_EINVAL, "invalid_input", false,
                   "the data names no columns");
}

static void test_row_and_page_limits_fail_cleanly(void **state)
{
    (void)state;
    char *data = ndjson_rows(3000);
    sp_export_limits rows = {.max_rows = 2500};
    expect_failure("{\"title\":\"T\"}", data, SP_DATASET_NDJSON, &rows, SP_ETOOBIG, "too_large",
                   false, "export too large: the dataset has more than 2500 rows");
    sp_export_limits pages = {.max_pages = 10};
    expect_failure("{\"title\":\"T\"}", data, SP_DATASET_NDJSON, &pages, SP_ETOOBIG, "too_large",
                   false, "export too large: the table needs more than 10 pages");
    sp_free(data);
}

static void test_memory_cap_fails_the_export_cleanly(void **state)
{
    (void)state;
    char *data = ndjson_rows(20000);
    sp_export_limits mem = {.max_memory = 1 << 20};
    expect_failure("{\"title\":\"T\"}", data, SP_DATASET_NDJSON, &mem, SP_ETOOBIG, "too_large",
                   false, "export too large: the document needs more than 1 MiB of memory");
    /* the same export fits in 64 MiB and reports what it used */
    run r;
    memset(&r, 0, sizeof r);
    sp_export_limits big = {.max_memory = 64 << 20};
    export_with(&r, "{\"title\":\"T\"}", data, strlen(data), SP_DATASET_NDJSON, &big);
    assert_int_equal(r.rc, 0);
    assert_true(r.res.memory_peak > (1 << 20) && r.res.memory_peak < (8 << 20));
    sp_free(data);
}

static void test_memory_does_not_grow_with_the_page_count(void **state)
{
    (void)state;
    char *small = ndjson_rows(100), *large = ndjson_rows(60000);
    run a, b;
    export_ok(&a, "{\"title\":\"T\"}", small, SP_DATASET_NDJSON);
    export_ok(&b, "{\"title\":\"T\"}", large, SP_DATASET_NDJSON);
    sp_free(small);
    sp_free(large);
    assert_true(b.res.pages > 1000);
    /* libharu holds the fonts and one page: the same for 2 pages as for 1,000+ */
    if (b.res.memory_peak > a.res.memory_peak + (256 << 10))
        fail_msg("libharu's peak grew from %lld bytes (%lld pages) to %lld (%lld pages)",
                 (long long)a.res.memory_peak, (long long)a.res.pages,
                 (long long)b.res.memory_peak, (long long)b.res.pages);
}

/* n rows of 3 one-line columns (every row the same height) under the given params. */
static void export_rows(run *r, int n, const char *compression)
{
    char params[256];
    snprintf(params, sizeof params, "{\"title\":\"Pages\",%s%s%s\"columns\":["
             "{\"key\":\"id\",\"label\":\"Ident\"},{\"key\":\"name\",\"label\":\"Full name\"},"
             "{\"key\":\"amount\",\"label\":\"Amount\",\"format\":\"number\"}]}",
             compression ? "\"compression\":\"" : "", compression ? compression : "",
             compression ? "\"," : "");
    char *data = ndjson_rows(n);
    export_ok(r, params, data, SP_DATASET_NDJSON);
    sp_free(data);
    assert_int_equal(r->res.rows, n);
}

/* A valid PDF (qpdf --check) of n pages with both fonts embedded as subsets, every page
 * with the header and "Page i of n", the last row on the last page. */
static void check_document(const char *pdf, int n, int last_row)
{
    assert_int_equal(pdf_pages(pdf), n);
    char *q = sh("qpdf --check '%s' 2>&1; echo \"exit $?\"", pdf);
    expect_in(q, "No syntax or stream encoding errors found", "qpdf --check");
    expect_in(q, "exit 0", "qpdf --check's status");
    sp_free(q);
    char *f = sh("pdffonts '%s' | grep -c 'CID TrueType *Identity-H *yes yes yes'", pdf);
    if (atoi(f) != 2)
        fail_msg("%s: %s embedded subset fonts, expected 2", pdf, f);
    sp_free(f);
    char *all = sh("pdftotext -q -layout '%s' -", pdf);
    int seen = 0;
    char footer[64], row[32];
    for (char *pg = all, *next; pg && *pg; pg = next) {
        next = strchr(pg, '\f');
        if (next)
            *next++ = '\0';
        if (*pg == '\0')
            continue;
        seen++;
        expect_in(pg, "Ident", "header");
        expect_in(pg, "Full name", "header");
        snprintf(footer, sizeof footer, "Page %d of %d", seen, n);
        expect_in(pg, footer, "footer");
        if (seen == n) {
            snprintf(row, sizeof row, "Name %d", last_row);
            expect_in(pg, row, "the last row on the last page");
        }
    }
    assert_int_equal(seen, n);
    sp_free(all);
}

/* Rows on the first page (under the title) and on each later one. */
static void rows_per_page(int *first, int *later)
{
    run r;
    export_rows(&r, 400, NULL);
    int last[3] = {0};
    for (int pg = 1; pg <= 2; pg++) {
        char *t = page_text(r.pdf, pg);
        for (char *p = strstr(t, "Name "); p; p = strstr(p + 5, "Name "))
            last[pg] = atoi(p + 5);
        sp_free(t);
    }
    *first = last[1];
    *later = last[2] - last[1];
    assert_true(*first > 10 && *later > *first);
}

static void test_pages_around_a_page_tree_node(void **state)
{
    (void)state;
    /* The file's page tree has nodes of 256 pages: 1 page, 255, 256 and 257 pages (one
     * row more than 256 full pages), and 513 (three nodes). Each page is written to the
     * file as it is finished, numbered from the layout's count. */
    int first, later;
    rows_per_page(&first, &later);
    static const int pages[] = {1, 255, 256, 257, 513};
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        int n = pages[i];
        int rows = n == 1 ? first : n == 257 ? first + 255 * later + 1 : first + (n - 1) * later;
        run r;
        export_rows(&r, rows, NULL);
        assert_int_equal(r.res.pages, n);
        check_document(r.pdf, n, rows);
        unlink(r.pdf);
    }
    /* a full page then one row more: the next page holds that row alone */
    run r;
    export_rows(&r, first + 1, NULL);
    check_document(r.pdf, 2, first + 1);
}

static void test_fast_compression_is_larger_with_the_same_pages(void **state)
{
    (void)state;
    run def, fast, named;
    export_rows(&def, 4000, NULL);
    export_rows(&fast, 4000, "fast");
    export_rows(&named, 4000, "default");
    assert_int_equal(def.res.pages, fast.res.pages);
    check_document(fast.pdf, (int)fast.res.pages, 4000);
    /* (the fonts, a third of this file, are compressed the same either way) */
    if (!(fast.res.bytes > def.res.bytes + def.res.bytes / 40))
        fail_msg("fast: %lld bytes, default: %lld bytes (expected at least 2.5%% more)",
                 (long long)fast.res.bytes, (long long)def.res.bytes);
    assert_int_equal(named.res.bytes, def.res.bytes);
    /* the same text either way */
    char *a = sh("pdftotext -q '%s' -", def.pdf), *b = sh("pdftotext -q '%s' -", fast.pdf);
    assert_string_equal(a, b);
    sp_free(a);
    sp_free(b);
    /* the worker's default (SPOOL_PDF_COMPRESSION) applies when the job does not say */
    int level = 0;
    assert_int_equal(sp_export_compression_parse("fast", &level), 0);
    assert_int_equal(level, 1);
    assert_int_equal(sp_export_compression_parse("DEFAULT", &level), 0);
    assert_int_equal(level, 6);
    assert_int_equal(sp_export_compression_parse("9", &level), 0);
    assert_int_equal(level, 9);
    static const char *const bad[] = {"", "0", "10", "fastest", "1x", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(sp_export_compression_parse(bad[i], &level), SP_EINVAL);
        assert_int_equal(level, 9);
    }
}

static void test_an_unwritable_output_fails_retryably(void **state)
{
    (void)state;
    sp_export_params p;
    sp_err err = {0};
    assert_int_equal(sp_export_params_parse("{\"title\":\"T\"}", &p, &err), 0);
    char *path = write_file("{\"a\":1}\n", 8);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    sp_export_opts o = {.creator = "t"};
    sp_export_result res;
    int rc = sp_export_run(&p, fd, SP_DATASET_NDJSON, "/nonexistent-dir/out.pdf", &o, &res,
                           &err);
    sp_export_params_free(&p);
    unlink(path);
    sp_free(path);
    if (rc != SP_EIO || strcmp(res.error_code ? res.error_code : "", "io_error") != 0 ||
        strstr(err.msg, "/nonexistent-dir/out.pdf") == NULL)
        fail_msg("got %d %s '%s'", rc, res.error_code ? res.error_code : "(none)", err.msg);
    assert_true(res.retryable);
}

static void test_stop_flag_cancels_between_pages(void **state)
{
    (void)state;
    char *data = ndjson_rows(5000);
    run r;
    memset(&r, 0, sizeof r);
    r.stop_at = 30; /* stop once the render pass is under way */
    export_with(&r, "{\"title\":\"T\"}", data, strlen(data), SP_DATASET_NDJSON, NULL);
    assert_int_equal(r.rc, SP_ECANCELLED);
    assert_true(r.last_progress < 50);
    sp_free(data);
}

static void test_params_are_validated(void **state)
{
    (void)state;
    struct {
        const char *json, *msg;
    } bad[] = {
        {"[]", "params must be a JSON object"},
        {"{}", "params.title is required"},
        {"{\"title\":\"\"}", "params.title is required"},
        {"{\"title\":7}", "params.title must be a string"},
        {"{\"title\":\"t\",\"page_size\":\"A3\"}", "params.page_size must be 'A4' or 'Letter'"},
        {"{\"title\":\"t\",\"orientation\":\"up\"}", "params.orientation must be"},
        {"{\"title\":\"t\",\"font\":\"comic\"}", "params.font must be 'sans', 'serif' or 'mono'"},
        {"{\"title\":\"t\",\"compression\":\"max\"}",
         "params.compression must be 'default' or 'fast'"},
        {"{\"title\":\"t\",\"compression\":1}", "params.compression must be 'default' or 'fast'"},
        {"{\"title\":\"t\",\"columns\":[]}", "params.columns must be an array of 1 to 256"},
        {"{\"title\":\"t\",\"columns\":[{}]}", "params.columns[0].key is required"},
        {"{\"title\":\"t\",\"columns\":[{\"key\":\"a\",\"width\":0}]}",
         "params.columns[0].width must be a number of points from 1 to 10000"},
        {"{\"title\":\"t\",\"columns\":[{\"key\":\"a\"},{\"key\":\"b\",\"decimals\":11}]}",
         "params.columns[1].decimals must be an integer from 0 to 10"},
        {"{\"title\":\"t\",\"columns\":[{\"key\":\"a\",\"align\":\"middle\"}]}",
         "params.columns[0].align must be 'left', 'right' or 'center'"},
        {"{\"title\":\"t\",\"columns\":[{\"key\":\"a\",\"format\":\"money\"}]}",
         "params.columns[0].format must be 'text', 'number' or 'date'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_export_params p;
        sp_err err = {0};
        int rc = sp_export_params_parse(bad[i].json, &p, &err);
        if (rc != SP_EINVAL || strstr(err.msg, bad[i].msg) == NULL)
            fail_msg("%s: got %d '%s', expected '%s'", bad[i].json, rc, err.msg, bad[i].msg);
    }
    sp_export_params p;
    sp_err err = {0};
    assert_int_equal(sp_export_params_parse("{\"title\":\"t\",\"page_size\":\"letter\",\"columns\":"
                                            "[{\"key\":\"n\",\"format\":\"number\"}]}",
                                            &p, &err),
                     0);
    assert_true(p.letter);
    assert_string_equal(p.author, "spool");
    assert_string_equal(p.columns[0].label, "n");
    assert_int_equal(p.columns[0].align, SP_PDF_RIGHT);
    assert_int_equal(p.columns[0].decimals, -1);
    assert_true(p.columns[0].thousands);
    sp_export_params_free(&p);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(sp__dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char *out = sh("rm -rf '%s'", sp__dir);
    sp_free(out);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_count_header_on_every_page_and_footers),
        cmocka_unit_test(test_non_ascii_text_is_extracted_back),
        cmocka_unit_test(test_cjk_text_is_drawn_with_the_fallback_font),
        cmocka_unit_test(test_characters_no_font_has_are_replaced_and_counted),
        cmocka_unit_test(test_cjk_text_wraps_between_ideographs),
        cmocka_unit_test(test_metadata_page_size_and_orientation),
        cmocka_unit_test(test_cells_never_spill_into_the_next_column),
        cmocka_unit_test(test_right_to_left_text_is_shaped_and_drawn_in_visual_order),
        cmocka_unit_test(test_numbers_are_formatted_and_right_aligned),
        cmocka_unit_test(test_right_aligned_wrapped_lines_end_at_the_edge),
        cmocka_unit_test(test_measured_columns_fit_their_sampled_values),
        cmocka_unit_test(test_columns_come_from_the_data_when_not_given),
        cmocka_unit_test(test_empty_dataset_gives_one_page_with_the_header),
        cmocka_unit_test(test_empty_cells_in_measured_columns),
        cmocka_unit_test(test_wide_tables_are_scaled_to_the_page),
        cmocka_unit_test(test_malformed_data_fails_permanently_naming_the_line),
        cmocka_unit_test(test_row_and_page_limits_fail_cleanly),
        cmocka_unit_test(test_memory_cap_fails_the_export_cleanly),
        cmocka_unit_test(test_memory_does_not_grow_with_the_page_count),
        cmocka_unit_test(test_pages_around_a_page_tree_node),
        cmocka_unit_test(test_fast_compression_is_larger_with_the_same_pages),
        cmocka_unit_test(test_an_unwritable_output_fails_retryably),
        cmocka_unit_test(test_stop_flag_cancels_between_pages),
        cmocka_unit_test(test_params_are_validated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* test_video_sprite.c - the HLS ladder's sprite sheet (workers/video/sprite.c) on its
 * own: the interval and tile size at their bounds, tiles taken at the right times, the
 * halving that keeps a long (or unannounced) input within the tile limit, and the files
 * written: the JPEG's size (ffprobe) and WebVTT cues that cover the video, in order,
 * inside the image. Pictures are made here; leaks show under `make SAN=1`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavutil/frame.h>

#include "spool/log.h"
#include "sprite.h"
#include "transcode.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    sp_log_init("test_video_sprite", SP_LOG_ERROR, SP_LOG_TEXT);
    sp_video_global_init();
    snprintf(dir, sizeof dir, "/tmp/spool-test-sprite-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A w x h yuv420p picture of one luma value. */
static AVFrame *picture(int w, int h, int luma)
{
    AVFrame *f = av_frame_alloc();
    assert_non_null(f);
    f->width = w;
    f->height = h;
    f->format = AV_PIX_FMT_YUV420P;
    assert_int_equal(av_frame_get_buffer(f, 0), 0);
    memset(f->data[0], luma, (size_t)f->linesize[0] * h);
    memset(f->data[1], 128, (size_t)f->linesize[1] * (h / 2));
    memset(f->data[2], 128, (size_t)f->linesize[2] * (h / 2));
    return f;
}

static void test_interval_is_two_to_ten_seconds_then_bounds_the_tiles(void **state)
{
    (void)state;
    struct { double duration; int want; } cases[] = {
        {0, 2},    {-1, 2},   {1, 2},     {200, 2},   {200.5, 3}, {201, 3},
        {1000, 10}, {3000, 10}, {3000.1, 11}, {3001, 11}, {7200, 24},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = sp__sprite_interval(cases[i].duration);
        if (got != cases[i].want)
            fail_msg("interval for %g s: got %d, want %d", cases[i].duration, got,
                     cases[i].want);
        if (cases[i].duration > 0)
            assert_true(cases[i].duration / got <= SP_SPRITE_MAX_TILES);
    }
}

static void test_tile_is_160_wide_keeping_the_display_aspect(void **state)
{
    (void)state;
    struct { int w, h; AVRational sar; int tw, th; } cases[] = {
        {1920, 1080, {0, 1}, 160, 90},  {1280, 720, {1, 1}, 160, 90},
        {1080, 1920, {1, 1}, 160, 284}, {320, 240, {0, 0}, 160, 120},
        {100, 50, {1, 1}, 100, 50},     {161, 91, {1, 1}, 160, 90},
        {720, 576, {16, 15}, 160, 120}, /* anamorphic PAL 4:3 */
        {2, 2, {1, 1}, 2, 2},           {1, 1, {1, 1}, 2, 2},
        {2, 4000, {1, 1}, 2, 360},      {4000, 2, {1, 1}, 160, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int tw, th;
        sp__sprite_tile_size(cases[i].w, cases[i].h, cases[i].sar, &tw, &th);
        if (tw != cases[i].tw || th != cases[i].th)
            fail_msg("%dx%d sar %d:%d: got %dx%d, want %dx%d", cases[i].w, cases[i].h,
                     cases[i].sar.num, cases[i].sar.den, tw, th, cases[i].tw, cases[i].th);
    }
}

/* The WebVTT file: "WEBVTT", then per cue "from --> to" and "sprite.jpg#xywh=x,y,w,h";
 * checks order, coverage of [0, end] and that every tile is inside the image. */
static int check_vtt(const char *path, double end, int img_w, int img_h, int interval)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[256];
    assert_non_null(fgets(line, sizeof line, f));
    assert_string_equal(line, "WEBVTT\n");
    int cues = 0;
    double last_to = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n')
            continue;
        int h1, m1, h2, m2;
        double s1, s2;
        if (sscanf(line, "%d:%d:%lf --> %d:%d:%lf", &h1, &m1, &s1, &h2, &m2, &s2) != 6)
            fail_msg("not a cue timing line: %s", line);
        double from = h1 * 3600 + m1 * 60 + s1, to = h2 * 3600 + m2 * 60 + s2;
        assert_float_equal(from, last_to, 0.0005); /* contiguous from 0 */
        assert_true(to > from);
        if (to < end - 0.0005)
            assert_float_equal(to - from, interval, 0.0005);
        last_to = to;
        assert_non_null(fgets(line, sizeof line, f));
        int x, y, w, h;
        if (sscanf(line, "sprite.jpg#xywh=%d,%d,%d,%d", &x, &y, &w, &h) != 4)
            fail_msg("not a tile reference: %s", line);
        assert_true(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= img_w && y + h <= img_h);
        assert_int_equal(x, cues % SP_SPRITE_COLUMNS * w);
        assert_int_equal(y, cues / SP_SPRITE_COLUMNS * h);
        cues++;
    }
    fclose(f);
    assert_float_equal(last_to, end, 0.0005);
    return cues;
}

static void jpeg_size(const char *file, int *w, int *h)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -select_streams v -show_entries stream=width,height -of csv=p=0 "
             "'%s'", file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_int_equal(fscanf(p, "%d,%d", w, h), 2);
    pclose(p);
}

static void test_tiles_at_each_interval_and_cues_cover_the_video(void **state)
{
    (void)state;
    /* 25 fps for 9.96 s (249 pictures) of 320x240: tiles at 0, 2, 4, 6, 8 s. */
    sp__sprite *s = sp__sprite_new(9.96);
    assert_non_null(s);
    sp_err err;
    for (int i = 0; i < 249; i++) {
        AVFrame *f = picture(320, 240, 20 + i / 50 * 40);
        assert_int_equal(sp__sprite_add(s, f, i / 25.0, &err), 0);
        av_frame_free(&f);
    }
    sp_video_sprite out = {0};
    assert_int_equal(sp__sprite_write(s, dir, 249 / 25.0, &out, &err), 0);
    sp__sprite_free(s);
    assert_int_equal(out.tiles, 5);
    assert_int_equal(out.interval, 2);
    assert_int_equal(out.columns, 5);
    assert_int_equal(out.rows, 1);
    assert_int_equal(out.width, 800);
    assert_int_equal(out.height, 120);
    char jpg[128], vtt[128];
    snprintf(jpg, sizeof jpg, "%s/sprite.jpg", dir);
    snprintf(vtt, sizeof vtt, "%s/sprite.vtt", dir);
    int w, h;
    jpeg_size(jpg, &w, &h);
    assert_int_equal(w, 800);
    assert_int_equal(h, 120);
    assert_int_equal(check_vtt(vtt, 9.96, w, h, 2), 5);
    /* Each tile shows its own time: the luma steps by 40 every 2 s (full range now). */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ffmpeg -v error -nostdin -i '%s' -f rawvideo -pix_fmt gray -",
             jpg);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static unsigned char gray[800 * 120];
    assert_int_equal(fread(gray, 1, sizeof gray, p), sizeof gray);
    pclose(p);
    for (int k = 0; k < 5; k++) {
        double want = (20 + k * 40 - 16) * 255.0 / 219.0; /* limited to full range */
        double got = gray[60 * 800 + k * 160 + 80];
        if (got < want - 6 || got > want + 6)
            fail_msg("tile %d: luma %g, want about %g", k, got, want);
    }
}

static void test_past_the_tile_limit_the_interval_doubles(void **state)
{
    (void)state;
    /* No duration announced: 2 s; one picture a second for 1400 s makes 700 tiles at
     * 2 s, so the interval doubles twice (300 -> 150 at 4 s -> 300 -> 150 at 8 s). */
    sp__sprite *s = sp__sprite_new(0);
    assert_non_null(s);
    sp_err err;
    AVFrame *f = picture(64, 36, 100);
    for (int i = 0; i < 1400; i++)
        assert_int_equal(sp__sprite_add(s, f, i, &err), 0);
    av_frame_free(&f);
    sp_video_sprite out = {0};
    assert_int_equal(sp__sprite_write(s, dir, 1400, &out, &err), 0);
    sp__sprite_free(s);
    assert_int_equal(out.interval, 8);
    assert_int_equal(out.tiles, 175); /* 0, 8, ..., 1392 */
    assert_true(out.tiles <= SP_SPRITE_MAX_TILES);
    assert_int_equal(out.columns, 10);
    assert_int_equal(out.rows, 18);
    char vtt[128], jpg[128];
    snprintf(vtt, sizeof vtt, "%s/sprite.vtt", dir);
    snprintf(jpg, sizeof jpg, "%s/sprite.jpg", dir);
    int w, h;
    jpeg_size(jpg, &w, &h);
    assert_int_equal(w, 10 * out.tile_width);
    assert_int_equal(h, 18 * out.tile_height);
    assert_int_equal(check_vtt(vtt, 1400, w, h, 8), 175);
}

static void test_a_gap_repeats_the_picture_and_no_picture_is_an_error(void **state)
{
    (void)state;
    sp__sprite *s = sp__sprite_new(10);
    sp_err err;
    AVFrame *f = picture(32, 32, 100);
    /* The first picture at 5 s: tiles 0, 2 and 4 all show it. */
    assert_int_equal(sp__sprite_add(s, f, 5.0, &err), 0);
    sp_video_sprite out = {0};
    assert_int_equal(sp__sprite_write(s, dir, 6.0, &out, &err), 0);
    assert_int_equal(out.tiles, 3);
    sp__sprite_free(s);
    av_frame_free(&f);
    s = sp__sprite_new(10);
    assert_int_equal(sp__sprite_write(s, dir, 0, &out, &err), SP_EINVAL);
    sp__sprite_free(s);
    sp__sprite_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interval_is_two_to_ten_seconds_then_bounds_the_tiles),
        cmocka_unit_test(test_tile_is_160_wide_keeping_the_display_aspect),
        cmocka_unit_test(test_tiles_at_each_interval_and_cues_cover_the_video),
        cmocka_unit_test(test_past_the_tile_limit_the_interval_doubles),
        cmocka_unit_test(test_a_gap_repeats_the_picture_and_no_picture_is_an_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

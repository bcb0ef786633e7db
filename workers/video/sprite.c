/* sprite.c - the seek-preview sprite sheet (sprite.h). The ladder hands every filtered
 * picture (upright, constant frame rate, the top rendition's size) to sp__sprite_add on
 * its reading thread; one picture every interval seconds is scaled down (libswscale,
 * bicubic, to full-range yuvj420p as JPEG wants) and kept as a tile. At the end the
 * tiles are laid out in a grid, encoded as one JPEG (poster.c's encoder) and described
 * by a WebVTT file of "sprite.jpg#xywh=x,y,w,h" cues. */
#include "sprite.h"

#include "transcode_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <libswscale/swscale.h>

#include "spool/alloc.h"
#include "spool/buf.h"

/* JPEG quality of the sheet (MJPEG qscale: 2 best .. 31 worst): small tiles, small file. */
#define SP__SPRITE_QSCALE 5

struct sp__sprite {
    int interval;        /* seconds between tiles */
    int tw, th;          /* tile size, set by the first picture */
    AVFrame **tile;      /* tile k shows time k * interval */
    int n;
    struct SwsContext *sws;
};

int sp__sprite_interval(double duration)
{
    if (!(duration > 0))
        return 2;
    int i = (int)ceil(duration / 100.0);
    if (i < 2)
        i = 2;
    if (i > 10)
        i = 10;
    if (duration / i > SP_SPRITE_MAX_TILES)
        i = (int)ceil(duration / SP_SPRITE_MAX_TILES);
    return i;
}

static int sp__even(double v)
{
    int e = 2 * (int)lround(v / 2.0);
    return e < 2 ? 2 : e;
}

void sp__sprite_tile_size(int w, int h, AVRational sar, int *tw, int *th)
{
    double dw = w, dh = h > 0 ? h : 1;
    if (sar.num > 0 && sar.den > 0)
        dw = w * av_q2d(sar);
    if (dw <= 0)
        dw = 1;
    double width = dw < SP_SPRITE_TILE_WIDTH ? dw : SP_SPRITE_TILE_WIDTH;
    double height = width * dh / dw;
    if (height > SP_SPRITE_TILE_MAX_HEIGHT) {
        height = SP_SPRITE_TILE_MAX_HEIGHT;
        width = height * dw / dh;
    }
    *tw = sp__even(width);
    *th = sp__even(height);
}

sp__sprite *sp__sprite_new(double duration)
{
    sp__sprite *s = sp_calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->tile = sp_calloc(SP_SPRITE_MAX_TILES, sizeof *s->tile);
    if (s->tile == NULL) {
        sp_free(s);
        return NULL;
    }
    s->interval = sp__sprite_interval(duration);
    return s;
}

void sp__sprite_free(sp__sprite *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < s->n; k++)
        av_frame_free(&s->tile[k]);
    sp_free(s->tile);
    sws_freeContext(s->sws);
    sp_free(s);
}

/* Keep tiles 0, 2, 4...: the same times at twice the interval. */
static void sp__sprite_halve(sp__sprite *s)
{
    int kept = 0;
    for (int k = 0; k < s->n; k++) {
        if (k % 2 == 0)
            s->tile[kept++] = s->tile[k];
        else
            av_frame_free(&s->tile[k]);
    }
    for (int k = kept; k < s->n; k++)
        s->tile[k] = NULL;
    s->n = kept;
    s->interval *= 2;
}

/* f scaled to a new tile. */
static int sp__sprite_scale(sp__sprite *s, const AVFrame *f, AVFrame **out, sp_err *err)
{
    s->sws = sws_getCachedContext(s->sws, f->width, f->height, f->format, s->tw, s->th,
                                  AV_PIX_FMT_YUVJ420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (s->sws == NULL)
        return sp_err_set(err, SP_EIO, "cannot scale %dx%d to a %dx%d sprite tile", f->width,
                          f->height, s->tw, s->th);
    AVFrame *t = av_frame_alloc();
    if (t == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    t->width = s->tw;
    t->height = s->th;
    t->format = AV_PIX_FMT_YUVJ420P;
    if (av_frame_get_buffer(t, 0) < 0) {
        av_frame_free(&t);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    sws_scale(s->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, t->data,
              t->linesize);
    *out = t;
    return 0;
}

int sp__sprite_add(sp__sprite *s, const AVFrame *f, double t, sp_err *err)
{
    if (s->tw == 0)
        sp__sprite_tile_size(f->width, f->height, f->sample_aspect_ratio, &s->tw, &s->th);
    /* A picture at or past the next tile's time (a microsecond of slack for rounding)
     * is that tile; after a gap of several intervals it is each of them. */
    AVFrame *made = NULL;
    while (t + 1e-6 >= (double)s->n * s->interval) {
        if (s->n == SP_SPRITE_MAX_TILES) {
            sp__sprite_halve(s);
            made = NULL; /* it may have been dropped */
            continue;
        }
        AVFrame *tile = NULL;
        int rc = 0;
        if (made) {
            if ((tile = av_frame_clone(made)) == NULL)
                rc = sp_err_set(err, SP_ENOMEM, "out of memory");
        } else {
            rc = sp__sprite_scale(s, f, &tile, err);
            made = tile;
        }
        if (rc < 0)
            return rc;
        s->tile[s->n++] = tile;
    }
    return 0;
}

/* "HH:MM:SS.mmm" for a cue. */
static void sp__vtt_time(char *out, size_t cap, double seconds)
{
    long long ms = llround(seconds * 1000.0);
    if (ms < 0)
        ms = 0;
    snprintf(out, cap, "%02lld:%02lld:%02lld.%03lld", ms / 3600000, ms / 60000 % 60,
             ms / 1000 % 60, ms % 1000);
}

static int sp__write_vtt(const sp__sprite *s, const char *path, double end, int cols,
                         sp_err *err)
{
    sp_buf b;
    sp_buf_init(&b, 64 * 1024 + 128 * (size_t)SP_SPRITE_MAX_TILES);
    int rc = sp_buf_adds(&b, "WEBVTT\n");
    for (int k = 0; rc == 0 && k < s->n; k++) {
        double from = (double)k * s->interval;
        double to = k + 1 < s->n ? (double)(k + 1) * s->interval : end;
        if (to <= from) /* a last tile taken at the very end of the video */
            to = from + 0.001;
        char a[32], z[32];
        sp__vtt_time(a, sizeof a, from);
        sp__vtt_time(z, sizeof z, to);
        rc = sp_buf_addf(&b, "\n%s --> %s\nsprite.jpg#xywh=%d,%d,%d,%d\n", a, z,
                         k % cols * s->tw, k / cols * s->th, s->tw, s->th);
    }
    if (rc < 0) {
        sp_buf_free(&b);
        return sp_err_set(err, rc, "cannot build the sprite's WebVTT file");
    }
    FILE *f = fopen(path, "wbe");
    if (f == NULL) {
        sp_buf_free(&b);
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", path, strerror(errno));
    }
    size_t w = fwrite(b.data, 1, b.len, f);
    int crc = fclose(f);
    rc = w != b.len || crc != 0 ? sp_err_set(err, SP_EIO, "writing %s failed", path) : 0;
    sp_buf_free(&b);
    return rc;
}

int sp__sprite_write(sp__sprite *s, const char *dir, double end, sp_video_sprite *out,
                     sp_err *err)
{
    if (s->n == 0)
        return sp_err_set(err, SP_EINVAL, "no picture for the sprite sheet");
    int cols = s->n < SP_SPRITE_COLUMNS ? s->n : SP_SPRITE_COLUMNS;
    int rows = (s->n + cols - 1) / cols;
    AVFrame *sheet = av_frame_alloc();
    if (sheet == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sheet->width = cols * s->tw;
    sheet->height = rows * s->th;
    sheet->format = AV_PIX_FMT_YUVJ420P;
    sheet->sample_aspect_ratio = (AVRational){1, 1};
    if (av_frame_get_buffer(sheet, 0) < 0) {
        av_frame_free(&sheet);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    /* Black (full range) where the last row has no tile. */
    memset(sheet->data[0], 0, (size_t)sheet->linesize[0] * sheet->height);
    memset(sheet->data[1], 128, (size_t)sheet->linesize[1] * (sheet->height / 2));
    memset(sheet->data[2], 128, (size_t)sheet->linesize[2] * (sheet->height / 2));
    for (int k = 0; k < s->n; k++) {
        const AVFrame *t = s->tile[k];
        int x = k % cols * s->tw, y = k / cols * s->th;
        for (int p = 0; p < 3; p++) {
            int sh = p ? 1 : 0; /* chroma is half size both ways */
            for (int row = 0; row < s->th >> sh; row++)
                memcpy(sheet->data[p] + (ptrdiff_t)((y >> sh) + row) * sheet->linesize[p] +
                           (x >> sh),
                       t->data[p] + (ptrdiff_t)row * t->linesize[p], (size_t)(s->tw >> sh));
        }
    }
    char jpg[PATH_MAX], vtt[PATH_MAX];
    int a = snprintf(jpg, sizeof jpg, "%s/sprite.jpg", dir);
    int b = snprintf(vtt, sizeof vtt, "%s/sprite.vtt", dir);
    int rc = 0;
    if (a < 0 || (size_t)a >= sizeof jpg || b < 0 || (size_t)b >= sizeof vtt)
        rc = sp_err_set(err, SP_EIO, "work directory path too long");
    if (rc == 0)
        rc = sp__video_jpeg_write(sheet, SP__SPRITE_QSCALE, jpg, err);
    av_frame_free(&sheet);
    if (rc == 0)
        rc = sp__write_vtt(s, vtt, end, cols, err);
    if (rc == 0) {
        out->tiles = s->n;
        out->columns = cols;
        out->rows = rows;
        out->tile_width = s->tw;
        out->tile_height = s->th;
        out->width = cols * s->tw;
        out->height = rows * s->th;
        out->interval = s->interval;
    }
    return rc;
}

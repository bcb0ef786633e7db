/* ladder.c - an HLS ladder from one decode (sp_video_ladder, transcode.h). The read-
 * decode loop of transcode.c runs once with its picture filter graph (constant frame
 * rate, upright, yuv420p, the top rendition's size) and its sound path (one AAC
 * encoder into the audio rendition's HLS muxer); every filtered picture is handed, by
 * reference, to each rendition's queue. A rendition is a thread of its own that scales
 * (libswscale, bicubic, as the scale filter), encodes (libx264 with its own threads)
 * and muxes (libavformat's hls muxer, fMP4 segments), so the renditions run side by
 * side instead of one after the other on the reading thread. hls.c measures what was
 * written and writes the master playlist. With a sprite sheet, the reading thread
 * also offers each picture to sprite.c, which keeps one small tile every few seconds. */
#include "transcode_int.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <libavutil/cpu.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>

#include "hls.h"
#include "sprite.h"
#include "spool/alloc.h"

/* Pictures a rendition may have waiting: enough to ride out one encoder's stall
 * without holding many full-size frames. */
#define SP__QUEUE_LEN 8

typedef struct sp__ladder sp__ladder;

typedef struct sp__rend {
    struct sp__ladder *l;
    sp_video_rendition *out;
    const sp_rung *rung;
    int w, h;
    char dir[PATH_MAX];

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    AVFrame *q[SP__QUEUE_LEN];
    int head, count;
    bool eof, abort, failed; /* under mu */
    int rc;
    sp_err err;

    struct SwsContext *sws;
    AVFrame *scaled;
    AVCodecContext *enc;
    AVFormatContext *oc;
    AVStream *st;
    AVPacket *pkt;
    int64_t frames;
} sp__rend;

struct sp__ladder {
    const sp_video_opts *o;
    const sp_preset *p;
    sp__tx t;
    int n;
    sp__rend r[SP_VIDEO_MAX_RENDITIONS];
    int gop;
    double hls_time;
    const char *dir;
    sp__sprite *sprite; /* NULL: no sprite sheet */
};

/* ---- choosing the renditions ---------------------------------------------------- */

/* The rungs no taller than the input (display size dw x dh), or one rendition at the
 * input's own size when it is shorter than every rung. */
static int sp__pick(sp__ladder *l, int dw, int dh)
{
    int shortside = dw < dh ? dw : dh;
    int n = 0;
    for (const sp_rung *g = l->p->ladder; g->height > 0 && n < SP_VIDEO_MAX_RENDITIONS; g++) {
        if (g->height > l->p->height || g->height > shortside)
            continue;
        l->r[n++].rung = g;
    }
    if (n == 0) { /* smaller than the smallest rung: that rung's settings, native size */
        const sp_rung *g = l->p->ladder;
        while (g[1].height > 0)
            g++;
        l->r[n++].rung = g;
    }
    for (int i = 0; i < n; i++) {
        sp__rend *r = &l->r[i];
        r->l = l;
        sp_video_output_size(dw, dh, r->rung->height, &r->w, &r->h);
        snprintf(r->out->name, sizeof r->out->name, "%dp", r->w < r->h ? r->w : r->h);
        r->out->width = r->w;
        r->out->height = r->h;
    }
    return n;
}

/* x264 threads per rendition: the host's cores (or o->threads) and one more, shared in
 * proportion to each rendition's pixels, at least one each. The extra one keeps the
 * cores busy while an encoder waits for its next picture. */
static void sp__share_threads(sp__ladder *l)
{
    int cores = l->o && l->o->threads > 0 ? l->o->threads : av_cpu_count();
    double total = 0;
    for (int i = 0; i < l->n; i++)
        total += (double)l->r[i].w * l->r[i].h;
    for (int i = 0; i < l->n; i++) {
        double share = (double)l->r[i].w * l->r[i].h / total;
        int k = (int)lround((cores + 1) * share);
        l->r[i].out->threads = k < 1 ? 1 : k;
    }
}

/* ---- one rendition: encoder and muxer ------------------------------------------ */

static int sp__set_hls_opts(AVDictionary **d, double hls_time, const char *seg_pattern)
{
    char t[32];
    snprintf(t, sizeof t, "%.3f", hls_time);
    int rc = av_dict_set(d, "hls_time", t, 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_playlist_type", "vod", 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_segment_type", "fmp4", 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_fmp4_init_filename", "init.mp4", 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_segment_filename", seg_pattern, 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_list_size", "0", 0);
    if (rc >= 0)
        rc = av_dict_set(d, "start_number", "1", 0);
    if (rc >= 0)
        rc = av_dict_set(d, "hls_flags", "independent_segments", 0);
    return rc;
}

/* An hls muxer writing <dir>/index.m3u8 and its segments; its streams come after. */
static int sp__hls_alloc(sp__ladder *l, const char *dir, AVFormatContext **oc, sp_err *err)
{
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", dir, strerror(errno));
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s/index.m3u8", dir);
    if (n < 0 || (size_t)n >= sizeof path)
        return sp_err_set(err, SP_EIO, "work directory path too long");
    int rc = avformat_alloc_output_context2(oc, NULL, "hls", path);
    if (rc < 0 || *oc == NULL)
        return sp_err_set(err, SP_EIO, "the hls muxer is not available");
    (*oc)->interrupt_callback.callback = sp__video_interrupted;
    (*oc)->interrupt_callback.opaque = &l->t.in;
    return 0;
}

static int sp__hls_header(sp__ladder *l, AVFormatContext *oc, const char *dir, sp_err *err)
{
    char seg[PATH_MAX];
    int n = snprintf(seg, sizeof seg, "%s/seg_%%05d.m4s", dir);
    if (n < 0 || (size_t)n >= sizeof seg)
        return sp_err_set(err, SP_EIO, "work directory path too long");
    AVDictionary *d = NULL;
    int rc = sp__set_hls_opts(&d, l->hls_time, seg);
    if (rc >= 0)
        rc = avformat_write_header(oc, &d);
    av_dict_free(&d);
    if (rc < 0)
        return sp__video_write_error(rc, "writing the HLS header", err);
    return 0;
}

static int sp__rend_open(sp__rend *r, sp_err *err)
{
    sp__ladder *l = r->l;
    const sp__input *in = &l->t.in;
    int rc = sp__hls_alloc(l, r->dir, &r->oc, err);
    if (rc < 0)
        return rc;
    const AVCodec *codec;
    rc = sp__video_encoder_alloc(in, l->p->video_codec, r->w, r->h, &codec, &r->enc, err);
    if (rc < 0)
        return rc;
    r->pkt = av_packet_alloc();
    r->scaled = av_frame_alloc();
    if (r->pkt == NULL || r->scaled == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    AVCodecContext *c = r->enc;
    c->thread_count = r->out->threads;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER; /* fMP4 keeps SPS/PPS in its init segment */
    /* Keyframes every gop frames and nowhere else, in every rendition: segments of
     * every rendition start at the same pictures, so a player switches cleanly. */
    c->gop_size = l->gop;
    c->keyint_min = l->gop;
    c->rc_max_rate = r->rung->maxrate;
    c->rc_buffer_size = r->rung->bufsize;
    rc = av_opt_set(c->priv_data, "preset", l->p->speed, 0);
    if (rc >= 0)
        rc = av_opt_set_int(c->priv_data, "crf", r->rung->crf, 0);
    if (rc >= 0)
        rc = av_opt_set(c->priv_data, "x264-params", "scenecut=0:open-gop=0", 0);
    if (rc >= 0)
        rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot open the %s encoder at %dx%d: %s", l->p->video_codec, r->w,
                          r->h, sp__video_why(rc, b, sizeof b));
    }
    r->st = avformat_new_stream(r->oc, NULL);
    if (r->st == NULL || avcodec_parameters_from_context(r->st->codecpar, c) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    r->st->time_base = c->time_base;
    r->st->avg_frame_rate = in->rate;
    return sp__hls_header(l, r->oc, r->dir, err);
}

/* Write every packet the encoder has (frame NULL: drain it). */
static int sp__rend_encode(sp__rend *r, AVFrame *frame, sp_err *err)
{
    int rc = avcodec_send_frame(r->enc, frame);
    if (rc < 0 && rc != AVERROR_EOF) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "the %s encoder failed (%s): %s", r->enc->codec->name, r->out->name,
                          sp__video_why(rc, b, sizeof b));
    }
    for (;;) {
        rc = avcodec_receive_packet(r->enc, r->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            return sp_err_set(err, SP_EIO, "the %s encoder failed (%s): %s",
                              r->enc->codec->name, r->out->name, sp__video_why(rc, b, sizeof b));
        }
        r->pkt->stream_index = r->st->index;
        av_packet_rescale_ts(r->pkt, r->enc->time_base, r->st->time_base);
        rc = av_interleaved_write_frame(r->oc, r->pkt);
        if (rc < 0)
            return sp__video_write_error(rc, "writing an HLS segment", err);
    }
}

/* Scale f to the rendition's size (unless it is that size already) and encode it. */
static int sp__rend_picture(sp__rend *r, AVFrame *f, sp_err *err)
{
    AVFrame *pic = f;
    if (f->width != r->w || f->height != r->h) {
        r->sws = sws_getCachedContext(r->sws, f->width, f->height, f->format, r->w, r->h,
                                      AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
        if (r->sws == NULL)
            return sp_err_set(err, SP_EIO, "cannot scale %dx%d to %dx%d", f->width, f->height,
                              r->w, r->h);
        if (r->scaled->buf[0] == NULL) {
            r->scaled->width = r->w;
            r->scaled->height = r->h;
            r->scaled->format = AV_PIX_FMT_YUV420P;
            if (av_frame_get_buffer(r->scaled, 0) < 0)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
        } else if (av_frame_make_writable(r->scaled) < 0) {
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        }
        sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height,
                  r->scaled->data, r->scaled->linesize);
        if (av_frame_copy_props(r->scaled, f) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        pic = r->scaled;
    }
    pic->pict_type = AV_PICTURE_TYPE_NONE;
    int rc = sp__rend_encode(r, pic, err);
    if (rc == 0)
        r->frames++;
    return rc;
}

/* The rendition's thread: take pictures off the queue until the end (then drain the
 * encoder and write the trailer) or an abort. */
static void *sp__rend_main(void *arg)
{
    sp__rend *r = arg;
    const sp_video_opts *o = r->l->o;
    sp__video_scope_begin(o);
    int rc = 0;
    sp_err err = {0};
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (r->count == 0 && !r->eof && !r->abort)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->abort || (r->count == 0 && r->eof)) {
            bool done = !r->abort;
            pthread_mutex_unlock(&r->mu);
            if (done) {
                rc = sp__rend_encode(r, NULL, &err);
                if (rc == 0 && (rc = av_write_trailer(r->oc)) < 0)
                    rc = sp__video_write_error(rc, "finishing an HLS playlist", &err);
            }
            break;
        }
        AVFrame *f = r->q[r->head];
        r->q[r->head] = NULL;
        r->head = (r->head + 1) % SP__QUEUE_LEN;
        r->count--;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
        if (sp__video_stopped(o ? o->stop : NULL))
            rc = sp_err_set(&err, SP_ECANCELLED, "stopped");
        else
            rc = sp__rend_picture(r, f, &err);
        av_frame_free(&f);
        if (rc < 0)
            break;
    }
    pthread_mutex_lock(&r->mu);
    if (rc < 0) {
        r->rc = rc;
        r->err = err;
        r->failed = true;
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    sp__video_scope_end();
    return NULL;
}

/* ---- the reading thread's side ------------------------------------------------- */

/* t->picture: queue a reference to f for every rendition, waiting while a queue is
 * full; a rendition that failed fails the whole ladder with its error. */
static int sp__ladder_picture(sp__ladder *l, AVFrame *f, sp_err *err)
{
    const sp_flag *stop = l->o ? l->o->stop : NULL;
    if (l->sprite && f->pts != AV_NOPTS_VALUE) {
        int rc = sp__sprite_add(l->sprite, f, f->pts * av_q2d(av_inv_q(l->t.in.rate)), err);
        if (rc < 0)
            return rc;
    }
    for (int i = 0; i < l->n; i++) {
        sp__rend *r = &l->r[i];
        AVFrame *ref = av_frame_clone(f);
        if (ref == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        pthread_mutex_lock(&r->mu);
        while (r->count == SP__QUEUE_LEN && !r->failed && !sp__video_stopped(stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L; /* look at the stop flag ten times a second */
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
        int rc = 0;
        if (r->failed) {
            rc = r->rc;
            if (err)
                *err = r->err;
        } else if (sp__video_stopped(stop)) {
            rc = sp_err_set(err, SP_ECANCELLED, "stopped");
        } else {
            r->q[(r->head + r->count) % SP__QUEUE_LEN] = ref;
            r->count++;
            ref = NULL;
            pthread_cond_broadcast(&r->cv);
        }
        pthread_mutex_unlock(&r->mu);
        av_frame_free(&ref);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* End every rendition's thread: after the last picture (abort false: they drain and
 * write their trailers) or at once. The first rendition's error, if any, into err. */
static int sp__ladder_join(sp__ladder *l, bool abort, sp_err *err)
{
    int rc = 0;
    for (int i = 0; i < l->n; i++) {
        sp__rend *r = &l->r[i];
        if (!r->started)
            continue;
        pthread_mutex_lock(&r->mu);
        if (abort)
            r->abort = true;
        else
            r->eof = true;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    for (int i = 0; i < l->n; i++) {
        sp__rend *r = &l->r[i];
        if (!r->started)
            continue;
        pthread_join(r->thread, NULL);
        r->started = false;
        if (r->failed && rc == 0) {
            rc = r->rc;
            if (err)
                *err = r->err;
        }
    }
    return rc;
}

static void sp__rend_free(sp__rend *r)
{
    for (int k = 0; k < SP__QUEUE_LEN; k++)
        av_frame_free(&r->q[k]);
    sws_freeContext(r->sws);
    av_frame_free(&r->scaled);
    avcodec_free_context(&r->enc);
    av_packet_free(&r->pkt);
    avformat_free_context(r->oc); /* the hls muxer closes its own files */
    r->oc = NULL;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
}

/* The audio rendition: the transcoder's sound path into an hls muxer of its own. */
static int sp__audio_open(sp__ladder *l, sp_err *err)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/audio", l->dir);
    if (n < 0 || (size_t)n >= sizeof dir)
        return sp_err_set(err, SP_EIO, "work directory path too long");
    int rc = sp__hls_alloc(l, dir, &l->t.oc, err);
    if (rc == 0)
        rc = sp__video_audio_encoder_open(&l->t, err);
    if (rc == 0)
        rc = sp__hls_header(l, l->t.oc, dir, err);
    return rc;
}

/* Set everything up, run the loop, finish every output. */
static int sp__ladder_run(sp__ladder *l, const char *in_path, bool want_sprite,
                          sp_video_ladder_result *res, sp_err *err)
{
    sp__tx *t = &l->t;
    int rc = sp__video_input_open(&t->in, in_path, l->o, true, true, err);
    if (rc < 0)
        return rc;
    t->pkt = av_packet_alloc();
    t->frame = av_frame_alloc();
    t->filtered = av_frame_alloc();
    if (t->pkt == NULL || t->frame == NULL || t->filtered == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    int dw, dh;
    sp__video_display_size(&t->in, &dw, &dh);
    l->n = sp__pick(l, dw, dh);
    if (want_sprite && (l->sprite = sp__sprite_new(t->in.duration)) == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    res->count = l->n;
    sp__share_threads(l);
    /* The shared pass ends at the top rendition's size: the others scale from it. */
    t->out_w = l->r[0].w;
    t->out_h = l->r[0].h;
    t->vstart = av_rescale_q(t->in.start_us, AV_TIME_BASE_Q, t->in.vst->time_base);
    double fps = av_q2d(t->in.rate);
    l->gop = (int)lround(2.0 * fps);
    if (l->gop < 1)
        l->gop = 1;
    int per_segment = (int)lround(l->p->segment_seconds / 2.0);
    if (per_segment < 1)
        per_segment = 1;
    /* Half a frame short of whole GOPs, so the muxer cuts at the keyframe that ends
     * them rather than one GOP later. */
    l->hls_time = (per_segment * l->gop - 0.5) / fps;
    res->gop = l->gop;

    for (int i = 0; i < l->n && rc == 0; i++) {
        sp__rend *r = &l->r[i];
        int k = snprintf(r->dir, sizeof r->dir, "%s/%s", l->dir, r->out->name);
        if (k < 0 || (size_t)k >= sizeof r->dir)
            rc = sp_err_set(err, SP_EIO, "work directory path too long");
        else
            rc = sp__rend_open(r, err);
    }
    if (rc == 0 && t->in.adec)
        rc = sp__audio_open(l, err);
    for (int i = 0; i < l->n && rc == 0; i++) {
        sp__rend *r = &l->r[i];
        if (pthread_create(&r->thread, NULL, sp__rend_main, r) != 0)
            rc = sp_err_set(err, SP_ENOMEM, "cannot start a rendition's thread");
        else
            r->started = true;
    }
    if (rc == 0) {
        t->picture = sp__ladder_picture;
        t->picture_ud = l;
        rc = sp__video_tx_run(t, err);
    }
    /* A rendition's own failure explains a failed run better than the run's error. */
    sp_err jerr;
    int jrc = sp__ladder_join(l, rc < 0, &jerr);
    if (jrc < 0 && (rc == 0 || rc == SP_ECANCELLED) && !sp__video_stopped(l->o ? l->o->stop : NULL)) {
        rc = jrc;
        if (err)
            *err = jerr;
    }
    if (rc == 0 && t->oc)
        rc = sp__video_mux_finish(t, err);
    if (rc == 0 && t->vbad > 0)
        sp_warn(l->o ? l->o->log : NULL, "%lld of %lld video packets could not be decoded",
                (long long)t->vbad, (long long)t->vpackets);
    res->frames = t->frames;
    res->has_audio = t->aenc != NULL;
    for (int i = 0; i < l->n; i++) {
        sp__rend *r = &l->r[i];
        r->out->frames = r->frames;
        if (rc == 0 && r->enc)
            rc = sp__hls_codecs(r->enc->extradata, r->enc->extradata_size, res->has_audio,
                                r->out->codecs, sizeof r->out->codecs, err);
    }
    /* The last cue ends with the last picture. */
    if (rc == 0 && l->sprite)
        rc = sp__sprite_write(l->sprite, l->dir, t->frames / av_q2d(t->in.rate), &res->sprite,
                              err);
    return rc;
}

int sp_video_ladder(const char *in_path, const char *dir, const sp_preset *p,
                    const sp_video_opts *o, bool sprite, sp_video_ladder_result *res,
                    sp_err *err)
{
    if (p->ladder == NULL || p->ladder[0].height <= 0)
        return sp_err_set(err, SP_EINVAL, "preset %s has no ladder", p->name);
    int64_t t0 = sp_mono_ms();
    sp_video_ladder_result own;
    if (res == NULL)
        res = &own;
    memset(res, 0, sizeof *res);
    sp__ladder *l = sp_calloc(1, sizeof *l);
    if (l == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    sp__video_scope_begin(o);
    l->o = o;
    l->p = p;
    l->dir = dir;
    l->t.o = o;
    l->t.p = p;
    l->t.last_percent = -1;
    for (int i = 0; i < SP_VIDEO_MAX_RENDITIONS; i++) {
        l->r[i].out = &res->r[i];
        pthread_mutex_init(&l->r[i].mu, NULL);
        pthread_cond_init(&l->r[i].cv, NULL);
    }
    int rc = sp__ladder_run(l, in_path, sprite, res, err);
    if (rc == 0)
        rc = sp__hls_finish(dir, res, err);
    if (rc == 0) {
        res->seconds = (sp_mono_ms() - t0) / 1000.0;
        sp__video_progress(&l->t, 100, true);
    }
    sp__ladder_join(l, true, NULL);
    for (int i = 0; i < SP_VIDEO_MAX_RENDITIONS; i++)
        sp__rend_free(&l->r[i]);
    sp__video_tx_free(&l->t);
    sp__sprite_free(l->sprite);
    sp_free(l);
    sp__video_scope_end();
    return rc;
}

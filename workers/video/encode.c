/* encode.c - the transcoder's encoders (transcode_int.h): the video encoder at the
 * preset's codec, speed and quality, and the sound path, where libswresample converts
 * the decoded sound for the audio encoder and an AVAudioFifo cuts it into frames of
 * exactly frame_size samples: one resampler and a FIFO are all the encoder needs. */
#include "transcode_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>

static int sp__set_speed(AVCodecContext *c, const sp_preset *p)
{
    if (strcmp(p->video_codec, "libx264") == 0) {
        int rc = av_opt_set(c->priv_data, "preset", p->speed, 0);
        return rc < 0 ? rc : av_opt_set_int(c->priv_data, "crf", p->crf, 0);
    }
    if (strcmp(p->video_codec, "libvpx-vp9") == 0) {
        char deadline[32];
        snprintf(deadline, sizeof deadline, "%s", p->speed);
        char *colon = strchr(deadline, ':');
        int cpu_used = strncmp(deadline, "realtime", 8) == 0 ? 8 : 4;
        if (colon) {
            *colon = '\0';
            cpu_used = atoi(colon + 1);
        }
        c->bit_rate = 0; /* constant quality */
        int rc = av_opt_set(c->priv_data, "deadline", deadline, 0);
        if (rc >= 0)
            rc = av_opt_set_int(c->priv_data, "cpu-used", cpu_used, 0);
        if (rc >= 0)
            rc = av_opt_set_int(c->priv_data, "crf", p->crf, 0);
        if (rc >= 0)
            rc = av_opt_set_int(c->priv_data, "row-mt", 1, 0);
        return rc;
    }
    return av_opt_set_int(c, "global_quality", p->crf, 0);
}

/* Find the encoder called name and allocate its context into *ctx. */
static int sp__encoder_alloc(const char *name, const AVCodec **codec, AVCodecContext **ctx,
                             sp_err *err)
{
    *codec = avcodec_find_encoder_by_name(name);
    if (*codec == NULL)
        return sp_err_set(err, SP_EIO, "the %s encoder is not available in this FFmpeg build",
                          name);
    *ctx = avcodec_alloc_context3(*codec);
    if (*ctx == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return 0;
}

int sp__video_encoder_alloc(const sp__input *in, const char *name, int w, int h,
                            const AVCodec **codec, AVCodecContext **ctx, sp_err *err)
{
    int rc = sp__encoder_alloc(name, codec, ctx, err);
    if (rc < 0)
        return rc;
    const AVCodecParameters *par = in->vst->codecpar;
    AVCodecContext *c = *ctx;
    c->width = w;
    c->height = h;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = av_inv_q(in->rate);
    c->framerate = in->rate;
    c->sample_aspect_ratio = par->sample_aspect_ratio.num > 0 ? par->sample_aspect_ratio
                                                              : (AVRational){1, 1};
    if (fabs(in->rotation - 90) < 1.0 || fabs(in->rotation - 270) < 1.0)
        c->sample_aspect_ratio = av_inv_q(c->sample_aspect_ratio);
    c->color_range = AVCOL_RANGE_MPEG;
    /* As the input filters leave the picture (BT.709 after a tone map; probe.c). */
    c->color_primaries = in->out_primaries;
    c->color_trc = in->out_trc;
    c->colorspace = in->out_space;
    return 0;
}

int sp__video_encoder_open(sp__tx *t, sp_err *err)
{
    const AVCodec *codec;
    int rc = sp__video_encoder_alloc(&t->in, t->p->video_codec, t->out_w, t->out_h, &codec,
                                     &t->venc, err);
    if (rc < 0)
        return rc;
    AVCodecContext *c = t->venc;
    c->thread_count = t->o ? t->o->threads : 0;
    if (t->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    rc = sp__set_speed(c, t->p);
    if (rc >= 0)
        rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot open the %s encoder at %dx%d: %s", t->p->video_codec,
                          t->out_w, t->out_h, sp__video_why(rc, b, sizeof b));
    }
    t->vout = avformat_new_stream(t->oc, NULL);
    if (t->vout == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    t->vout->time_base = c->time_base;
    t->vout->avg_frame_rate = t->in.rate;
    rc = avcodec_parameters_from_context(t->vout->codecpar, c);
    if (rc < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return 0;
}

static enum AVSampleFormat sp__pick_sample_fmt(const AVCodec *codec)
{
    const enum AVSampleFormat *f = codec->sample_fmts;
    if (f == NULL)
        return AV_SAMPLE_FMT_FLTP;
    for (const enum AVSampleFormat *i = f; *i != AV_SAMPLE_FMT_NONE; i++) {
        if (*i == AV_SAMPLE_FMT_FLTP || *i == AV_SAMPLE_FMT_FLT)
            return *i;
    }
    return f[0];
}

static int sp__pick_sample_rate(const AVCodec *codec, int want)
{
    const int *r = codec->supported_samplerates;
    if (r == NULL)
        return want;
    int best = r[0];
    for (; *r; r++) {
        if (*r == want)
            return want;
        if (abs(*r - want) < abs(best - want))
            best = *r;
    }
    return best;
}

int sp__video_audio_encoder_open(sp__tx *t, sp_err *err)
{
    /* Mono stays mono; stereo, 5.1 and the rest are mixed down to stereo. */
    int channels = t->in.ast->codecpar->ch_layout.nb_channels >= 2 ? 2 : 1;
    const AVCodec *codec;
    int rc = sp__encoder_alloc(t->p->audio_codec, &codec, &t->aenc, err);
    if (rc < 0)
        return rc;
    AVCodecContext *c = t->aenc;
    av_channel_layout_default(&c->ch_layout, channels);
    c->sample_rate = sp__pick_sample_rate(codec, t->p->audio_rate);
    c->sample_fmt = sp__pick_sample_fmt(codec);
    c->bit_rate = t->p->audio_bitrate;
    c->time_base = (AVRational){1, c->sample_rate};
    c->thread_count = 1;
    if (t->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot open the %s encoder: %s", t->p->audio_codec,
                          sp__video_why(rc, b, sizeof b));
    }
    t->aout = avformat_new_stream(t->oc, NULL);
    if (t->aout == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    t->aout->time_base = c->time_base;
    if (avcodec_parameters_from_context(t->aout->codecpar, c) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    int fs = c->frame_size > 0 ? c->frame_size : 1024;
    t->fifo = av_audio_fifo_alloc(c->sample_fmt, channels, 4 * fs);
    if (t->fifo == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return 0;
}

int sp__video_encode(sp__tx *t, AVCodecContext *enc, AVStream *st, AVFrame *frame,
                     sp_err *err)
{
    int rc = avcodec_send_frame(enc, frame);
    if (rc < 0 && rc != AVERROR_EOF) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "the %s encoder failed: %s", enc->codec->name,
                          sp__video_why(rc, b, sizeof b));
    }
    for (;;) {
        rc = avcodec_receive_packet(enc, t->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            return sp_err_set(err, SP_EIO, "the %s encoder failed: %s", enc->codec->name,
                              sp__video_why(rc, b, sizeof b));
        }
        rc = sp__video_mux_packet(t, enc, st, err);
        if (rc < 0)
            return rc;
    }
}

/* Encode FIFO samples in frames of exactly frame_size; with last, also the remainder
 * (padded with silence when the encoder cannot take a short last frame). */
int sp__video_drain_fifo(sp__tx *t, bool last, sp_err *err)
{
    AVCodecContext *c = t->aenc;
    int fs = c->frame_size > 0 ? c->frame_size : 1024;
    bool small_last = (c->codec->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME) != 0;
    bool variable = (c->codec->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE) != 0;
    while (av_audio_fifo_size(t->fifo) >= fs || (last && av_audio_fifo_size(t->fifo) > 0)) {
        int avail = av_audio_fifo_size(t->fifo);
        int n = avail < fs ? avail : fs;
        AVFrame *f = av_frame_alloc();
        if (f == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        f->nb_samples = (n < fs && !small_last && !variable) ? fs : n;
        f->format = c->sample_fmt;
        f->sample_rate = c->sample_rate;
        int rc = av_channel_layout_copy(&f->ch_layout, &c->ch_layout);
        if (rc >= 0)
            rc = av_frame_get_buffer(f, 0);
        if (rc >= 0 && f->nb_samples > n)
            av_samples_set_silence(f->extended_data, n, f->nb_samples - n,
                                   c->ch_layout.nb_channels, c->sample_fmt);
        if (rc >= 0 && av_audio_fifo_read(t->fifo, (void **)f->extended_data, n) < n)
            rc = AVERROR(ENOMEM);
        if (rc < 0) {
            av_frame_free(&f);
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        }
        f->pts = t->audio_next_pts;
        t->audio_next_pts += f->nb_samples;
        rc = sp__video_encode(t, c, t->aout, f, err);
        av_frame_free(&f);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* (Re)configure the resampler for frames like f (the input may change its layout). */
int sp__video_audio_setup(sp__tx *t, const AVFrame *f, sp_err *err)
{
    if (t->swr && f->sample_rate == t->swr_in_rate && f->format == t->swr_in_fmt &&
        av_channel_layout_compare(&f->ch_layout, &t->swr_in_layout) == 0)
        return 0;
    swr_free(&t->swr);
    av_channel_layout_uninit(&t->swr_in_layout);
    AVChannelLayout in_layout = {0};
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in_layout, f->ch_layout.nb_channels);
    else if (av_channel_layout_copy(&in_layout, &f->ch_layout) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    int rc = swr_alloc_set_opts2(&t->swr, &t->aenc->ch_layout, t->aenc->sample_fmt,
                                 t->aenc->sample_rate, &in_layout, f->format, f->sample_rate, 0,
                                 NULL);
    av_channel_layout_uninit(&in_layout);
    if (rc >= 0)
        rc = swr_init(t->swr);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        swr_free(&t->swr);
        return sp_err_set(err, SP_EINVAL, "cannot convert the audio (%d channels, %d Hz): %s",
                          f->ch_layout.nb_channels, f->sample_rate, sp__video_why(rc, b, sizeof b));
    }
    if (av_channel_layout_copy(&t->swr_in_layout, &f->ch_layout) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    t->swr_in_rate = f->sample_rate;
    t->swr_in_fmt = f->format;
    return 0;
}

/* Convert n input samples (NULL: flush the resampler) into the FIFO and encode what
 * makes whole frames. */
int sp__video_convert_audio(sp__tx *t, const uint8_t **data, int n, sp_err *err)
{
    if (t->swr == NULL)
        return 0;
    int want = swr_get_out_samples(t->swr, n);
    if (want < 0)
        return sp_err_set(err, SP_EINVAL, "the audio resampler failed");
    if (want > t->conv_cap) {
        if (t->conv)
            av_freep(&t->conv[0]);
        av_freep(&t->conv);
        t->conv_cap = 0;
        if (av_samples_alloc_array_and_samples(&t->conv, NULL, t->aenc->ch_layout.nb_channels,
                                               want, t->aenc->sample_fmt, 0) < 0)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        t->conv_cap = want;
    }
    int got = swr_convert(t->swr, t->conv, t->conv_cap, data, n);
    if (got < 0)
        return sp_err_set(err, SP_EINVAL, "the audio resampler failed");
    if (got > 0 && av_audio_fifo_write(t->fifo, (void **)t->conv, got) < got)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return sp__video_drain_fifo(t, false, err);
}

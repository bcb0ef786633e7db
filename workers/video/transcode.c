/* transcode.c - the transcoder (see transcode.h and, for its parts, transcode_int.h):
 * libavformat demuxes (probe.c), libavcodec decodes here, libavfilter rotates/scales/
 * converts the picture and makes the frame rate constant (filter.c), libswresample
 * converts the sound for the encoders (encode.c), and the output is muxed (mux.c).
 * This file reads packets, decodes them, passes the pictures through the graph and the
 * sound through the resampler, drains everything at the end and checks the input was
 * whole. */
#include "transcode_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>

#include "spool/alloc.h"
#include "spool/util.h"

#define SP__PROGRESS_EVERY_MS 250

void sp__video_tx_free(sp__tx *t)
{
    sp__video_graph_free(&t->graph);
    avcodec_free_context(&t->venc);
    avcodec_free_context(&t->aenc);
    if (t->oc) {
        if (t->oc->pb)
            avio_closep(&t->oc->pb);
        avformat_free_context(t->oc);
        t->oc = NULL;
    }
    av_packet_free(&t->pkt);
    av_frame_free(&t->frame);
    av_frame_free(&t->filtered);
    swr_free(&t->swr);
    av_channel_layout_uninit(&t->swr_in_layout);
    if (t->fifo)
        av_audio_fifo_free(t->fifo);
    t->fifo = NULL;
    if (t->conv)
        av_freep(&t->conv[0]);
    av_freep(&t->conv);
    sp__video_input_close(&t->in);
}

void sp__video_progress(sp__tx *t, int percent, bool force)
{
    if (t->o == NULL || t->o->progress == NULL)
        return;
    int64_t now = sp_mono_ms();
    if (percent == t->last_percent || (!force && now - t->last_report < SP__PROGRESS_EVERY_MS))
        return;
    t->last_percent = percent;
    t->last_report = now;
    t->o->progress(t->o->ud, percent);
}

static void sp__progress_at(sp__tx *t, double seconds)
{
    int pct = 0;
    if (t->in.duration > 0) {
        pct = (int)(100.0 * seconds / t->in.duration);
    } else if (t->in.fmt->pb) {
        int64_t size = avio_size(t->in.fmt->pb), pos = avio_tell(t->in.fmt->pb);
        if (size > 0 && pos > 0)
            pct = (int)(100 * pos / size);
    }
    if (pct > 99)
        pct = 99;
    if (pct < 0)
        pct = 0;
    if (pct > t->last_percent)
        sp__video_progress(t, pct, false);
}

static int sp__pull_video(sp__tx *t, sp_err *err)
{
    for (;;) {
        if (sp__video_stopped(t->o ? t->o->stop : NULL))
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        int rc = av_buffersink_get_frame(t->graph.sink, t->filtered);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                              "the picture filters failed: %s", sp__video_why(rc, b, sizeof b));
        }
        AVRational stb = av_buffersink_get_time_base(t->graph.sink);
        AVRational tb = t->venc ? t->venc->time_base : av_inv_q(t->in.rate);
        if (t->filtered->pts != AV_NOPTS_VALUE)
            t->filtered->pts = av_rescale_q(t->filtered->pts, stb, tb);
        /* Encode what comes, not the input's frame types: keyframes are the encoder's
         * choice (as with the ffmpeg command). */
        t->filtered->pict_type = AV_PICTURE_TYPE_NONE;
        if (t->filtered->pts != AV_NOPTS_VALUE)
            t->last_t = (t->filtered->pts + 1) * av_q2d(tb);
        rc = t->picture ? t->picture(t->picture_ud, t->filtered, err)
                        : sp__video_encode(t, t->venc, t->vout, t->filtered, err);
        av_frame_unref(t->filtered);
        if (rc < 0)
            return rc;
        t->frames++;
        sp__progress_at(t, t->last_t);
    }
}

static int sp__push_video(sp__tx *t, AVFrame *f, sp_err *err)
{
    int64_t pts = f->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE)
        pts = t->vend + t->vstart;
    pts -= t->vstart;
    int64_t dur = f->pkt_duration > 0
                      ? f->pkt_duration
                      : av_rescale_q(1, av_inv_q(t->in.rate), t->in.vst->time_base);
    if (pts + dur > t->vend)
        t->vend = pts + dur;
    f->pts = pts;
    if (!t->graph_done) {
        int rc = sp__video_graph_init(&t->graph, &t->in, f, t->in.rate, t->out_w, t->out_h,
                                      AV_PIX_FMT_YUV420P, t->o ? t->o->threads : 0, err);
        if (rc < 0)
            return rc;
        t->graph_done = true;
    }
    int rc = av_buffersrc_add_frame_flags(t->graph.src, f, AV_BUFFERSRC_FLAG_KEEP_REF);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "the picture filters failed: %s", sp__video_why(rc, b, sizeof b));
    }
    return sp__pull_video(t, err);
}

/* Receive every decoded picture (after a packet or the drain) and pass it on. */
static int sp__receive_video(sp__tx *t, sp_err *err)
{
    for (int errors = 0;;) {
        int rc = avcodec_receive_frame(t->in.vdec, t->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        sp__video_input_decoded(&t->in, t->in.vdec, t->frame, rc);
        if (rc < 0) { /* a damaged picture: skip it, as players do */
            t->vbad++;
            if (++errors >= SP__MAX_DECODE_ERRORS || rc == AVERROR(ENOMEM))
                return sp__video_decode_failed(rc, t->read_t, err);
            continue;
        }
        rc = sp__push_video(t, t->frame, err);
        av_frame_unref(t->frame);
        if (rc < 0)
            return rc;
    }
}

static int sp__receive_audio(sp__tx *t, sp_err *err)
{
    for (int errors = 0;;) {
        int rc = avcodec_receive_frame(t->in.adec, t->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        sp__video_input_decoded(&t->in, t->in.adec, t->frame, rc);
        if (rc < 0) { /* a damaged audio frame: skip it */
            if (++errors >= SP__MAX_DECODE_ERRORS || rc == AVERROR(ENOMEM))
                return sp__video_decode_failed(rc, t->read_t, err);
            continue;
        }
        if (!t->audio_started) {
            /* Start the sound where it starts in the input (relative to the file's
             * start, as the pictures are), then count samples: monotonic by design. */
            int64_t ts = t->frame->best_effort_timestamp;
            if (ts != AV_NOPTS_VALUE) {
                int64_t start = av_rescale_q(t->in.start_us, AV_TIME_BASE_Q,
                                             t->in.ast->time_base);
                int64_t rel = av_rescale_q(ts - start, t->in.ast->time_base,
                                           t->aenc->time_base);
                t->audio_next_pts = rel > 0 ? rel : 0;
            }
            t->audio_started = true;
        }
        rc = sp__video_audio_setup(t, t->frame, err);
        if (rc == 0)
            rc = sp__video_convert_audio(t, (const uint8_t **)t->frame->extended_data,
                                         t->frame->nb_samples, err);
        av_frame_unref(t->frame);
        if (rc < 0)
            return rc;
    }
}

static int sp__decode(sp__tx *t, AVCodecContext *dec, const AVPacket *pkt, sp_err *err)
{
    int rc = avcodec_send_packet(dec, pkt);
    if (rc < 0 && rc != AVERROR_EOF) {
        if (rc == AVERROR(ENOMEM))
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        sp__video_input_decoded(&t->in, dec, NULL, rc);
        if (dec == t->in.vdec)
            t->vbad++; /* a damaged packet: carry on as players do */
    }
    return dec == t->in.vdec ? sp__receive_video(t, err) : sp__receive_audio(t, err);
}

/* End of input: drain the decoders, the filters, the resampler and the encoders. */
static int sp__finish(sp__tx *t, sp_err *err)
{
    int rc = sp__decode(t, t->in.vdec, NULL, err);
    if (rc == 0 && t->graph_done) {
        /* Close the filter input at the end of the last picture, so the fps filter
         * keeps it for its whole duration. */
        rc = av_buffersrc_close(t->graph.src, t->vend, AV_BUFFERSRC_FLAG_PUSH);
        if (rc < 0)
            rc = sp_err_set(err, SP_EIO, "the picture filters failed");
        else
            rc = sp__pull_video(t, err);
    }
    if (rc == 0 && t->venc)
        rc = sp__video_encode(t, t->venc, t->vout, NULL, err);
    if (rc == 0 && t->in.adec && t->aenc) {
        rc = sp__decode(t, t->in.adec, NULL, err);
        if (rc == 0 && t->swr)
            rc = sp__video_convert_audio(t, NULL, 0, err);
        if (rc == 0)
            rc = sp__video_drain_fifo(t, true, err);
        if (rc == 0)
            rc = sp__video_encode(t, t->aenc, t->aout, NULL, err);
    }
    return rc;
}

/* How far the input got against how long it says it is, in seconds: the video stream's
 * end against its stated duration; or, when the stream states none, the last packet
 * read against the file's duration. Matroska states one duration for the whole file in
 * its header, so a file cut short still announces it (a duration estimated from the
 * bitrate proves nothing). *stated is 0 when nothing can be compared. */
static void sp__input_reach(const sp__tx *t, double *got, double *stated)
{
    const sp__input *in = &t->in;
    *got = t->vend * av_q2d(in->vst->time_base);
    *stated = 0;
    if (in->vst->duration > 0 && in->vst->duration != AV_NOPTS_VALUE) {
        *stated = in->vst->duration * av_q2d(in->vst->time_base);
    } else if (in->fmt->duration > 0 && in->fmt->duration != AV_NOPTS_VALUE &&
               in->fmt->duration_estimation_method != AVFMT_DURATION_FROM_BITRATE) {
        *stated = in->fmt->duration / (double)AV_TIME_BASE;
        if (t->read_t > *got)
            *got = t->read_t;
    }
}

/* Read, decode, filter, encode, until the input ends. */
static int sp__loop(sp__tx *t, sp_err *err)
{
    const sp_flag *stop = t->o ? t->o->stop : NULL;
    for (;;) {
        if (sp__video_stopped(stop))
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        sp__video_why_reset(); /* so an error names this packet's problem */
        int rc = av_read_frame(t->in.fmt, t->pkt);
        if (rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return sp__video_read_error(rc, t->read_t, err);
        AVStream *st = t->in.fmt->streams[t->pkt->stream_index];
        sp__video_input_saw(&t->in, t->pkt);
        if (t->pkt->pts != AV_NOPTS_VALUE)
            t->read_t = t->pkt->pts * av_q2d(st->time_base) - t->in.start_us / 1e6;
        if (t->pkt->stream_index == t->in.vidx) {
            t->vpackets++;
            rc = sp__decode(t, t->in.vdec, t->pkt, err);
        } else if (t->pkt->stream_index == t->in.aidx && t->in.adec) {
            rc = sp__decode(t, t->in.adec, t->pkt, err);
        }
        av_packet_unref(t->pkt);
        if (rc < 0)
            return rc;
    }
}

int sp__video_tx_run(sp__tx *t, sp_err *err)
{
    sp__video_progress(t, 0, true);
    int rc = sp__loop(t, err);
    if (rc == 0)
        rc = sp__finish(t, err);
    if (rc == 0 && t->frames == 0)
        rc = sp_err_set(err, SP_EINVAL,
                        "input file has no decodable video frames (truncated or corrupt)");
    if (rc == 0) {
        double got, stated;
        sp__input_reach(t, &got, &stated);
        /* MPEG-TS states no length: libav measures it from the timestamps there are. */
        bool stated_by_header = stated > 0 && t->in.fmt->duration_estimation_method ==
                                                  AVFMT_DURATION_FROM_STREAM;
        rc = sp__video_input_whole(&t->in, stated_by_header, err);
        if (rc == 0 && stated > 0 && got < 0.8 * stated - 1.0)
            rc = sp_err_set(err, SP_EINVAL,
                            "input file is truncated: it ends at %.1f s of the %.1f s "
                            "its header announces",
                            got, stated);
    }
    return rc;
}

int sp_video_transcode(const char *in_path, const char *out_path, const sp_preset *p,
                       const sp_video_opts *o, sp_video_result *res, sp_err *err)
{
    int64_t t0 = sp_mono_ms();
    sp__video_scope_begin(o);
    sp__tx *t = sp_calloc(1, sizeof *t);
    if (t == NULL) {
        sp__video_scope_end();
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    t->o = o;
    t->p = p;
    t->last_percent = -1;
    int rc = sp__video_input_open(&t->in, in_path, o, true, true, err);
    if (rc < 0) {
        sp_free(t);
        unlink(out_path);
        sp__video_scope_end();
        return rc;
    }
    t->pkt = av_packet_alloc();
    t->frame = av_frame_alloc();
    t->filtered = av_frame_alloc();
    if (t->pkt == NULL || t->frame == NULL || t->filtered == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    int dw, dh;
    sp__video_display_size(&t->in, &dw, &dh);
    sp_video_output_size(dw, dh, p->height, &t->out_w, &t->out_h);
    t->vstart = av_rescale_q(t->in.start_us, AV_TIME_BASE_Q, t->in.vst->time_base);
    if (rc == 0)
        rc = sp__video_mux_open(t, out_path, err);
    if (rc == 0)
        rc = sp__video_tx_run(t, err);
    if (rc == 0)
        rc = sp__video_mux_finish(t, err);
    if (rc == 0) {
        if (t->vbad > 0)
            sp_warn(o ? o->log : NULL, "%lld of %lld video packets could not be decoded",
                    (long long)t->vbad, (long long)t->vpackets);
        if (res) {
            struct stat sb;
            memset(res, 0, sizeof *res);
            res->width = t->out_w;
            res->height = t->out_h;
            res->frames = t->frames;
            res->duration = t->frames * av_q2d(av_inv_q(t->in.rate));
            res->has_audio = t->aenc != NULL;
            res->bytes = stat(out_path, &sb) == 0 ? (int64_t)sb.st_size : 0;
            res->seconds = (sp_mono_ms() - t0) / 1000.0;
        }
        sp__video_progress(t, 100, true);
    }
    sp__video_tx_free(t);
    sp_free(t);
    if (rc < 0)
        unlink(out_path);
    sp__video_scope_end();
    return rc;
}

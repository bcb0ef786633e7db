/* poster.c - the JPEG poster frame (sp_video_poster, see transcode.h): the input opened
 * with its video decoder only, a picture chosen from about 10% in, turned upright and
 * scaled by the filter graph, and encoded as one MJPEG picture. */
#include "transcode_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavutil/pixdesc.h>

/* How interesting a picture looks: the spread of its luma on a sparse grid, or -1 when
 * it is (nearly) black or flat. Formats without an 8-bit luma plane count as fine. */
static double sp__picture_score(const AVFrame *f)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f->format);
    if (d == NULL || (d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL |
                                  AV_PIX_FMT_FLAG_HWACCEL)) ||
        d->comp[0].depth != 8 || d->comp[0].step != 1 || f->data[0] == NULL)
        return 1000;
    int stepx = f->width / 64 > 1 ? f->width / 64 : 1;
    int stepy = f->height / 64 > 1 ? f->height / 64 : 1;
    double sum = 0, sq = 0;
    int64_t n = 0;
    for (int y = 0; y < f->height; y += stepy) {
        const uint8_t *row = f->data[0] + (ptrdiff_t)y * f->linesize[0];
        for (int x = 0; x < f->width; x += stepx) {
            sum += row[x];
            sq += (double)row[x] * row[x];
            n++;
        }
    }
    if (n == 0)
        return -1;
    double mean = sum / n, sd = sqrt(fmax(0, sq / n - mean * mean));
    if (mean < 28 || sd < 6)
        return -1;
    return sd;
}

static int sp__write_file(const char *path, const uint8_t *data, size_t n, sp_err *err)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", path, strerror(errno));
    size_t w = fwrite(data, 1, n, f);
    int crc = fclose(f);
    if (w != n || crc != 0)
        return sp_err_set(err, SP_EIO, "writing %s failed: %s", path, strerror(errno));
    return 0;
}

int sp__video_jpeg_write(AVFrame *pic, int qscale, const char *path, sp_err *err)
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (codec == NULL)
        return sp_err_set(err, SP_EIO, "the mjpeg encoder is not available");
    AVCodecContext *c = avcodec_alloc_context3(codec);
    AVPacket *pkt = av_packet_alloc();
    int rc = c && pkt ? 0 : AVERROR(ENOMEM);
    if (rc == 0) {
        c->width = pic->width;
        c->height = pic->height;
        c->pix_fmt = pic->format;
        c->time_base = (AVRational){1, 25};
        c->sample_aspect_ratio = pic->sample_aspect_ratio;
        c->color_range = AVCOL_RANGE_JPEG;
        c->flags |= AV_CODEC_FLAG_QSCALE;
        c->global_quality = FF_QP2LAMBDA * qscale;
        rc = avcodec_open2(c, codec, NULL);
    }
    if (rc >= 0) {
        pic->quality = c->global_quality;
        pic->pict_type = AV_PICTURE_TYPE_I;
        pic->pts = 0;
        rc = avcodec_send_frame(c, pic);
    }
    if (rc >= 0)
        rc = avcodec_send_frame(c, NULL);
    if (rc >= 0)
        rc = avcodec_receive_packet(c, pkt);
    int code = 0;
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        code = sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot encode a JPEG picture: %s", sp__video_why(rc, b, sizeof b));
    } else {
        code = sp__write_file(path, pkt->data, (size_t)pkt->size, err);
    }
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    return code;
}

/* Decode from `at` (a fraction of the duration, 0: the start, no seek) and keep the
 * first interesting picture in best. */
static int sp__pick_poster(sp__input *in, double at, AVFrame *best, sp_err *err)
{
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    if (pkt == NULL || f == NULL) {
        av_packet_free(&pkt);
        av_frame_free(&f);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    AVRational tb = in->vst->time_base;
    double target_s = in->duration * at;
    int64_t start = av_rescale_q(in->start_us, AV_TIME_BASE_Q, tb);
    int64_t target = start + (int64_t)(target_s / av_q2d(tb));
    if (target_s > 0) {
        int64_t us = in->start_us + (int64_t)(target_s * AV_TIME_BASE);
        if (avformat_seek_file(in->fmt, -1, INT64_MIN, us, us, 0) < 0)
            avformat_seek_file(in->fmt, -1, INT64_MIN, in->start_us, in->start_us, 0);
        avcodec_flush_buffers(in->vdec);
    }
    /* Look at most this far past the target for a picture that is not black. */
    int64_t give_up = target + (int64_t)(3.0 / av_q2d(tb));
    double best_score = -2;
    int rc = 0, errors = 0;
    bool eof = false, done = false;
    while (!done && rc == 0) {
        if (sp__video_stopped(in->stop)) {
            rc = sp_err_set(err, SP_ECANCELLED, "stopped");
            break;
        }
        if (!eof) {
            rc = av_read_frame(in->fmt, pkt);
            if (rc == AVERROR_EOF) {
                eof = true;
                rc = avcodec_send_packet(in->vdec, NULL);
            } else if (rc < 0) {
                /* Damage after the picture we have is not our problem here. */
                if (best_score > -2 && rc != AVERROR_EXIT) {
                    rc = 0;
                    break;
                }
                rc = sp__video_read_error(rc, 0, err);
                break;
            } else {
                if (pkt->stream_index == in->vidx)
                    avcodec_send_packet(in->vdec, pkt); /* damaged packets are skipped */
                av_packet_unref(pkt);
            }
            if (rc == AVERROR_EOF)
                rc = 0;
        }
        for (;;) {
            int r = avcodec_receive_frame(in->vdec, f);
            if (r == AVERROR_EOF) {
                done = true;
                break;
            }
            if (r == AVERROR(EAGAIN))
                break;
            if (r < 0) {
                if (++errors >= SP__MAX_DECODE_ERRORS || r == AVERROR(ENOMEM)) {
                    rc = sp__video_decode_failed(r, 0, err);
                    done = true;
                    break;
                }
                continue;
            }
            errors = 0;
            int64_t ts = f->best_effort_timestamp;
            bool reached = ts == AV_NOPTS_VALUE || ts >= target;
            double score = sp__picture_score(f);
            /* Before the target only keep a fallback (a short clip may end first). */
            if (!reached)
                score = fmin(score, -1.5);
            if (score > best_score) {
                av_frame_unref(best);
                if (av_frame_ref(best, f) < 0) {
                    rc = sp_err_set(err, SP_ENOMEM, "out of memory");
                    done = true;
                }
                best_score = score;
            }
            av_frame_unref(f);
            if (reached && (score >= 0 || (ts != AV_NOPTS_VALUE && ts > give_up))) {
                done = true;
                break;
            }
        }
        if (eof && !done) {
            /* Drained: avcodec_receive_frame returned EAGAIN can't happen after the
             * flush packet, but guard against a decoder that never says EOF. */
            done = true;
        }
    }
    av_packet_free(&pkt);
    av_frame_free(&f);
    if (rc == 0 && best_score <= -2)
        rc = sp_err_set(err, SP_EINVAL,
                        "input file has no decodable video frames (truncated or corrupt)");
    return rc;
}

int sp_video_poster(const char *in_path, const char *out_path, const sp_preset *p,
                    const sp_video_opts *o, int *width, int *height, sp_err *err)
{
    sp__video_scope_begin(o);
    sp__input in;
    int rc = sp__video_input_open(&in, in_path, o, true, false, err);
    if (rc < 0) {
        unlink(out_path);
        sp__video_scope_end();
        return rc;
    }
    AVFrame *best = av_frame_alloc(), *pic = av_frame_alloc();
    sp__graph g = {0};
    int w = 0, h = 0;
    if (best == NULL || pic == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == 0) {
        rc = sp__pick_poster(&in, 0.10, best, err);
        if (rc == SP_EINVAL) {
            /* Nothing decodable after the seek: a file without an index (MPEG-TS) whose
             * keyframes are far apart lands where the decoder cannot start. Again from
             * the start, with the input opened afresh. */
            sp__video_input_close(&in);
            rc = sp__video_input_open(&in, in_path, o, true, false, err);
            if (rc == 0)
                rc = sp__pick_poster(&in, 0, best, err);
        }
    }
    if (rc == 0) {
        int dw, dh;
        sp__video_display_size(&in, &dw, &dh);
        sp_video_output_size(dw, dh, p->height, &w, &h);
        best->pts = 0;
        rc = sp__video_graph_init(&g, &in, best, (AVRational){0, 0}, w, h, AV_PIX_FMT_YUVJ420P,
                                  o ? o->threads : 0, err);
    }
    if (rc == 0) {
        int r = av_buffersrc_add_frame_flags(g.src, best, AV_BUFFERSRC_FLAG_KEEP_REF);
        if (r >= 0)
            r = av_buffersrc_add_frame(g.src, NULL);
        if (r >= 0)
            r = av_buffersink_get_frame(g.sink, pic);
        if (r < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            rc = sp_err_set(err, SP_EIO, "the picture filters failed: %s",
                            sp__video_why(r, b, sizeof b));
        }
    }
    if (rc == 0)
        rc = sp__video_jpeg_write(pic, 3, out_path, err);
    sp__video_graph_free(&g);
    av_frame_free(&best);
    av_frame_free(&pic);
    sp__video_input_close(&in);
    if (rc < 0) {
        unlink(out_path);
    } else {
        if (width)
            *width = w;
        if (height)
            *height = h;
    }
    sp__video_scope_end();
    return rc;
}

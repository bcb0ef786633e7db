/* filter.c - the picture filter graph of the transcoder (transcode_int.h): libavfilter
 * runs the input's filters (picture.c: deinterlace, constant frame rate, upright, tone
 * map), scales the picture and converts its pixel format, with the code the `ffmpeg`
 * command runs (its scale filter is libswscale with the same flags), so no hand-written
 * pixel loops are needed and the benchmark compares like for like. */
#include "transcode_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <libavutil/mem.h>
#include <libavutil/pixdesc.h>

#include "spool/buf.h"

void sp__video_graph_free(sp__graph *g)
{
    avfilter_graph_free(&g->g);
    g->src = g->sink = NULL;
}

/* Build buffer -> the input's filters (picture.c) -> scale -> format -> buffersink for
 * frames like first. fps: a constant output rate, or {0,0} for none. */
int sp__video_graph_init(sp__graph *gr, const sp__input *in, const AVFrame *first,
                         AVRational fps, int out_w, int out_h, enum AVPixelFormat pix_fmt,
                         int threads, sp_err *err)
{
    memset(gr, 0, sizeof *gr);
    sp_buf chain;
    sp_buf_init(&chain, 4096);
    char args[512];
    AVFilterInOut *outputs = NULL, *inputs = NULL;
    int rc = 0;

    gr->g = avfilter_graph_alloc();
    if (gr->g == NULL) {
        rc = AVERROR(ENOMEM);
        goto done;
    }
    gr->g->nb_threads = threads;
    AVRational tb = in->vst->time_base;
    AVRational sar = first->sample_aspect_ratio;
    if (sar.num <= 0 || sar.den <= 0)
        sar = (AVRational){1, 1};
    int n = snprintf(args, sizeof args,
                     "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d:"
                     "frame_rate=%d/%d",
                     first->width, first->height, first->format, tb.num, tb.den, sar.num,
                     sar.den, in->rate.num, in->rate.den);
    if (n < 0 || (size_t)n >= sizeof args) {
        rc = AVERROR(EINVAL);
        goto done;
    }
    rc = avfilter_graph_create_filter(&gr->src, avfilter_get_by_name("buffer"), "in", args,
                                      NULL, gr->g);
    if (rc >= 0)
        rc = avfilter_graph_create_filter(&gr->sink, avfilter_get_by_name("buffersink"), "out",
                                          NULL, NULL, gr->g);
    if (rc < 0)
        goto done;

    if (sp__video_input_chain(&chain, in, first, fps) < 0)
        rc = AVERROR(ENOMEM);
    if (rc >= 0 && sp_buf_addf(&chain, "scale=w=%d:h=%d:flags=bicubic,format=pix_fmts=%s",
                               out_w, out_h, av_get_pix_fmt_name(pix_fmt)) < 0)
        rc = AVERROR(ENOMEM);
    if (rc < 0)
        goto done;

    outputs = avfilter_inout_alloc();
    inputs = avfilter_inout_alloc();
    if (outputs == NULL || inputs == NULL) {
        rc = AVERROR(ENOMEM);
        goto done;
    }
    outputs->name = av_strdup("in");
    outputs->filter_ctx = gr->src;
    inputs->name = av_strdup("out");
    inputs->filter_ctx = gr->sink;
    if (outputs->name == NULL || inputs->name == NULL) {
        rc = AVERROR(ENOMEM);
        goto done;
    }
    rc = avfilter_graph_parse_ptr(gr->g, sp_buf_cstr(&chain), &inputs, &outputs, NULL);
    if (rc >= 0)
        rc = avfilter_graph_config(gr->g, NULL);
done:
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                   "cannot set up the picture filters (%s): %s", sp_buf_cstr(&chain),
                   sp__video_why(rc, b, sizeof b));
        sp_buf_free(&chain);
        sp__video_graph_free(gr);
        return err ? err->code : SP_EIO;
    }
    sp_buf_free(&chain);
    return 0;
}

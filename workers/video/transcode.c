/* transcode.c - the transcoder (see transcode.h): libavformat demuxes, libavcodec
 * decodes and encodes, libavfilter rotates/scales/converts the picture and makes the
 * frame rate constant, libswresample converts the sound for the encoder.
 *
 * Why libavfilter rather than libswscale alone: the picture needs rotating (transpose,
 * hflip/vflip from the display matrix), scaling, a pixel format conversion and, for
 * variable frame rate input, a constant output rate. libavfilter does all four with
 * the same code the `ffmpeg` command runs (its scale filter is libswscale with the same
 * flags), so the benchmark compares like for like and no hand-written pixel loops are
 * needed. Sound goes through libswresample directly: one resampler plus an
 * AVAudioFifo is all the encoder needs (frames of exactly frame_size samples). */
#include "transcode.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/avstring.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/util.h"

#define SP__PROGRESS_EVERY_MS 250
#define SP__MAX_FPS 120
#define SP__LOG_LINES_PER_CALL 20

/* ---- libav's messages ------------------------------------------------------------
 * libav logs through one process-wide callback. Each public call marks its thread
 * with the job's log context, so a message printed on that thread names the job, and
 * keeps the last error message to make our own errors specific ("moov atom not
 * found", "partial file"). Codec worker threads log without a job. */

static _Thread_local struct {
    bool active;
    const sp_logctx *log;
    int lines;
    char last[160];
} sp__tl;

static void sp__av_log(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING && !(level <= AV_LOG_INFO && sp_log_enabled(SP_LOG_DEBUG)))
        return;
    char line[512];
    int prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0)
        return;
    if (n > 240) /* e.g. "Format not on whitelist" followed by 300 names */
        memcpy(line + 237, "...", 4);
    if (level <= AV_LOG_ERROR && sp__tl.active) {
        /* Keep the message without its "[demuxer @ 0x...] " prefix. */
        const char *msg = line;
        if (msg[0] == '[') {
            const char *end = strstr(msg, "] ");
            if (end)
                msg = end + 2;
        }
        snprintf(sp__tl.last, sizeof sp__tl.last, "%.*s", (int)sizeof sp__tl.last - 1, msg);
    }
    if (sp__tl.lines >= SP__LOG_LINES_PER_CALL)
        return;
    sp__tl.lines++;
    int our = level <= AV_LOG_ERROR ? SP_LOG_WARN : SP_LOG_DEBUG;
    sp_log(our, sp__tl.active ? sp__tl.log : NULL, "libav: %s%s", line,
           sp__tl.lines == SP__LOG_LINES_PER_CALL ? " (further libav messages suppressed)" : "");
}

void sp_video_global_init(void)
{
    av_log_set_callback(sp__av_log);
}

static void sp__scope_begin(const sp_video_opts *o)
{
    sp__tl.active = true;
    sp__tl.log = o ? o->log : NULL;
    sp__tl.lines = 0;
    sp__tl.last[0] = '\0';
}

static void sp__scope_end(void)
{
    sp__tl.active = false;
    sp__tl.log = NULL;
}

/* The last libav error message on this thread, or libav's text for averr. */
static const char *sp__why(int averr, char *buf, size_t n)
{
    if (sp__tl.last[0])
        return sp__tl.last;
    av_strerror(averr, buf, n);
    return buf;
}

static bool sp__is_errno(int averr, int e)
{
    return averr == AVERROR(e);
}

/* Map a libav error met while reading the input to our codes. */
static int sp__read_error(int averr, double at, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR_EXIT)
        return sp_err_set(err, SP_ECANCELLED, "stopped");
    if (sp__is_errno(averr, ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (averr == AVERROR_INVALIDDATA || averr == AVERROR_EOF || averr == AVERROR_BUG ||
        averr == AVERROR_PATCHWELCOME)
        return sp_err_set(err, SP_EINVAL, "input file is truncated or corrupt at %.1f s (%s)",
                          at, sp__why(averr, b, sizeof b));
    return sp_err_set(err, SP_EIO, "reading the input failed at %.1f s: %s", at,
                      sp__why(averr, b, sizeof b));
}

/* Map a libav error met while writing the output. */
static int sp__write_error(int averr, const char *what, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR_EXIT)
        return sp_err_set(err, SP_ECANCELLED, "stopped");
    if (sp__is_errno(averr, ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    av_strerror(averr, b, sizeof b);
    return sp_err_set(err, SP_EIO, "%s failed: %s", what, b);
}

/* ---- the input ---------------------------------------------------------------- */

typedef struct sp__input {
    AVFormatContext *fmt;
    const sp_flag *stop;
    int vidx, aidx;
    AVStream *vst, *ast;
    AVCodecContext *vdec, *adec;
    const int32_t *matrix; /* display matrix or NULL */
    double rotation;       /* degrees clockwise to turn the picture for display */
    int64_t start_us;      /* the file's start time (AV_TIME_BASE), 0 if unknown */
    double duration;       /* seconds, 0 if unknown */
    AVRational rate;       /* the frame rate to encode at */
} sp__input;

static int sp__interrupted(void *opaque)
{
    const sp__input *in = opaque;
    return in->stop && *in->stop;
}

static bool sp__stopped(const sp_flag *stop)
{
    return stop && *stop;
}

/* ---- which inputs libavformat may open ----------------------------------------
 * An upload is untrusted. Some demuxers read other files or the network because the
 * input says so: playlists (hls, dash), scripts (concat, imf, vapoursynth, avisynth),
 * session descriptions (sdp, rtp, rtsp), file-name patterns (image2). Those would let
 * a crafted "video" read other jobs' files or reach internal hosts, so they are left
 * out: inputs open with every other demuxer, and only through the file protocol. */

static const char *const sp__blocked_demuxers[] = {
    "hls", "dash", "concat", "imf", "sdp", "rtp", "rtsp", "image2", "avisynth",
    "vapoursynth", "webm_dash_manifest", NULL};

static pthread_once_t sp__formats_once = PTHREAD_ONCE_INIT;
static char *sp__format_whitelist; /* every other demuxer, comma-separated */

static bool sp__blocked(const char *name)
{
    for (const char *const *b = sp__blocked_demuxers; *b; b++) {
        if (strcmp(*b, name) == 0)
            return true;
    }
    return false;
}

static void sp__build_whitelist(void)
{
    sp_buf b;
    sp_buf_init(&b, 1 << 20);
    void *it = NULL;
    const AVInputFormat *f;
    while ((f = av_demuxer_iterate(&it)) != NULL) {
        /* A name may list several ("mov,mp4,m4a,..."): allowed unless one is blocked. */
        char names[256];
        snprintf(names, sizeof names, "%s", f->name);
        bool ok = true;
        char *save = NULL;
        for (char *n = strtok_r(names, ",", &save); n; n = strtok_r(NULL, ",", &save))
            ok &= !sp__blocked(n);
        if (ok && sp_buf_addf(&b, "%s%s", b.len ? "," : "", f->name) < 0)
            break;
    }
    sp__format_whitelist = sp_buf_take(&b); /* kept for the process's life */
}

/* Whether the first bytes of path look like any format libav knows, judged by content
 * alone (the name is not consulted). */
static bool sp__recognised(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    enum { N = 65536 };
    unsigned char *buf = av_mallocz(N + AVPROBE_PADDING_SIZE);
    size_t n = buf ? fread(buf, 1, N, f) : 0;
    fclose(f);
    int score = 0;
    AVProbeData pd = {.filename = "", .buf = buf, .buf_size = (int)n, .mime_type = NULL};
    const AVInputFormat *fmt = n > 0 ? av_probe_input_format3(&pd, 1, &score) : NULL;
    av_free(buf);
    return fmt != NULL && score > AVPROBE_SCORE_RETRY;
}

/* Rotation from the display matrix, as the ffmpeg command reads it: degrees clockwise,
 * normalised to [0, 360). */
static double sp__rotation(const int32_t *m)
{
    double theta = m ? -round(av_display_rotation_get(m)) : 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    return theta;
}

static void sp__input_close(sp__input *in)
{
    avcodec_free_context(&in->vdec);
    avcodec_free_context(&in->adec);
    avformat_close_input(&in->fmt);
}

/* Pick the video stream: the largest picture among decodable, non-cover-art streams,
 * preferring the default one. */
static int sp__pick_video(AVFormatContext *fmt)
{
    int best = -1;
    int64_t best_score = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        AVStream *st = fmt->streams[i];
        AVCodecParameters *par = st->codecpar;
        if (par->codec_type != AVMEDIA_TYPE_VIDEO)
            continue;
        if (st->disposition & AV_DISPOSITION_ATTACHED_PIC)
            continue;
        if (par->width <= 0 || par->height <= 0 || avcodec_find_decoder(par->codec_id) == NULL)
            continue;
        int64_t score = (int64_t)par->width * par->height;
        if (st->disposition & AV_DISPOSITION_DEFAULT)
            score += (int64_t)1 << 40;
        if (score > best_score) {
            best = (int)i;
            best_score = score;
        }
    }
    return best;
}

/* A sensible constant frame rate for the output: what the ffmpeg command would pick
 * (av_guess_frame_rate), unless that is absurd (timestamps in ms give 1000 fps). */
static AVRational sp__frame_rate(AVFormatContext *fmt, AVStream *st)
{
    AVRational r = av_guess_frame_rate(fmt, st, NULL);
    if (r.num > 0 && r.den > 0 && av_q2d(r) <= SP__MAX_FPS)
        return r;
    r = st->avg_frame_rate;
    if (r.num > 0 && r.den > 0 && av_q2d(r) <= SP__MAX_FPS && av_q2d(r) >= 1)
        return r;
    return (AVRational){30, 1};
}

static int sp__open_decoder(AVStream *st, int threads, AVCodecContext **out, sp_err *err)
{
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (codec == NULL)
        return sp_err_set(err, SP_EUNSUPPORTED, "no decoder for the %s stream",
                          avcodec_get_name(st->codecpar->codec_id));
    AVCodecContext *c = avcodec_alloc_context3(codec);
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    int rc = avcodec_parameters_to_context(c, st->codecpar);
    if (rc >= 0) {
        c->pkt_timebase = st->time_base;
        c->thread_count = threads;
        c->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
        rc = avcodec_open2(c, codec, NULL);
    }
    if (rc < 0) {
        avcodec_free_context(&c);
        char b[AV_ERROR_MAX_STRING_SIZE];
        if (rc == AVERROR(ENOMEM))
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        return sp_err_set(err, SP_EINVAL, "cannot decode the %s stream: %s",
                          avcodec_get_name(st->codecpar->codec_id), sp__why(rc, b, sizeof b));
    }
    *out = c;
    return 0;
}

/* Open path and find its streams. With decoders, open the video decoder and (when
 * want_audio and there is one that decodes) the audio decoder. */
static int sp__input_open(sp__input *in, const char *path, const sp_video_opts *o,
                          bool decoders, bool want_audio, sp_err *err)
{
    memset(in, 0, sizeof *in);
    in->vidx = in->aidx = -1;
    in->stop = o ? o->stop : NULL;
    int threads = o ? o->threads : 0;
    char b[AV_ERROR_MAX_STRING_SIZE];

    in->fmt = avformat_alloc_context();
    if (in->fmt == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    in->fmt->interrupt_callback.callback = sp__interrupted;
    in->fmt->interrupt_callback.opaque = in;
    pthread_once(&sp__formats_once, sp__build_whitelist);
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    if (sp__format_whitelist)
        av_dict_set(&opts, "format_whitelist", sp__format_whitelist, 0);
    sp__tl.last[0] = '\0';
    int rc = avformat_open_input(&in->fmt, path, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0) { /* in->fmt was freed */
        if (rc == AVERROR_EXIT)
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        if (rc == AVERROR(ENOMEM))
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        if (strstr(sp__tl.last, "not on whitelist"))
            return sp_err_set(err, SP_EUNSUPPORTED,
                              "input is a playlist or script that refers to other files "
                              "(HLS, DASH, concat...), not a video file");
        /* The input is a local file that opened: a demuxer that gives up on its bytes
         * says so with EINVAL at times (the mp3 one on noise: "Could not seek"). */
        if (rc == AVERROR_INVALIDDATA || rc == AVERROR_EOF || rc == AVERROR(EINVAL)) {
            if (!sp__recognised(path))
                return sp_err_set(err, SP_EUNSUPPORTED,
                                  "input is not a video file (its format is not recognised)");
            return sp_err_set(err, SP_EINVAL, "input file is truncated or corrupt (%s)",
                              sp__why(rc, b, sizeof b));
        }
        return sp_err_set(err, SP_EIO, "cannot open the input: %s", sp__why(rc, b, sizeof b));
    }
    rc = avformat_find_stream_info(in->fmt, NULL);
    if (rc < 0) {
        int code = sp__read_error(rc, 0, err);
        sp__input_close(in);
        return code;
    }
    in->vidx = sp__pick_video(in->fmt);
    if (in->vidx < 0) {
        bool any = false;
        for (unsigned i = 0; i < in->fmt->nb_streams; i++)
            any |= in->fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
                   !(in->fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC);
        sp__input_close(in);
        if (any)
            return sp_err_set(err, SP_EUNSUPPORTED,
                              "input's video stream cannot be decoded (unsupported codec or "
                              "no picture size)");
        return sp_err_set(err, SP_EUNSUPPORTED,
                          "input is not a video file (no decodable video stream)");
    }
    in->vst = in->fmt->streams[in->vidx];
    in->aidx = av_find_best_stream(in->fmt, AVMEDIA_TYPE_AUDIO, -1, in->vidx, NULL, 0);
    if (in->aidx >= 0) {
        in->ast = in->fmt->streams[in->aidx];
        if (avcodec_find_decoder(in->ast->codecpar->codec_id) == NULL ||
            in->ast->codecpar->ch_layout.nb_channels <= 0 || in->ast->codecpar->sample_rate <= 0) {
            in->aidx = -1;
            in->ast = NULL;
        }
    } else {
        in->aidx = -1;
    }
    in->matrix = (const int32_t *)av_stream_get_side_data(in->vst, AV_PKT_DATA_DISPLAYMATRIX,
                                                          NULL);
    in->rotation = sp__rotation(in->matrix);
    in->start_us = in->fmt->start_time != AV_NOPTS_VALUE ? in->fmt->start_time : 0;
    if (in->fmt->duration > 0)
        in->duration = in->fmt->duration / (double)AV_TIME_BASE;
    else if (in->vst->duration > 0)
        in->duration = in->vst->duration * av_q2d(in->vst->time_base);
    in->rate = sp__frame_rate(in->fmt, in->vst);

    if (!decoders)
        return 0;
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        if ((int)i != in->vidx && (int)i != (want_audio ? in->aidx : -1))
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    rc = sp__open_decoder(in->vst, threads, &in->vdec, err);
    if (rc == 0 && want_audio && in->ast) {
        sp_err aerr;
        if (sp__open_decoder(in->ast, threads, &in->adec, &aerr) < 0) {
            sp_warn(sp__tl.log, "ignoring the audio: %s", aerr.msg);
            in->ast->discard = AVDISCARD_ALL;
            in->aidx = -1;
            in->ast = NULL;
        }
    }
    if (rc < 0)
        sp__input_close(in);
    return rc;
}

/* The picture's size once turned upright. */
static void sp__display_size(const sp__input *in, int *w, int *h)
{
    int cw = in->vst->codecpar->width, ch = in->vst->codecpar->height;
    bool quarter = fabs(in->rotation - 90) < 1.0 || fabs(in->rotation - 270) < 1.0;
    *w = quarter ? ch : cw;
    *h = quarter ? cw : ch;
}

static int sp__even(double v)
{
    int e = 2 * (int)lround(v / 2);
    return e < 2 ? 2 : e;
}

void sp_video_output_size(int in_w, int in_h, int preset_height, int *out_w, int *out_h)
{
    bool landscape = in_w >= in_h;
    int in_short = landscape ? in_h : in_w, in_long = landscape ? in_w : in_h;
    int s = in_short < preset_height ? in_short : preset_height;
    s = s & ~1;
    if (s < 2)
        s = 2;
    int l = sp__even((double)in_long * s / in_short);
    *out_w = landscape ? l : s;
    *out_h = landscape ? s : l;
}

/* ---- the picture filter graph ------------------------------------------------- */

typedef struct sp__graph {
    AVFilterGraph *g;
    AVFilterContext *src, *sink;
} sp__graph;

static void sp__graph_free(sp__graph *g)
{
    avfilter_graph_free(&g->g);
    g->src = g->sink = NULL;
}

/* Filters that turn the picture upright, as the ffmpeg command inserts them. */
static int sp__add_rotation(sp_buf *b, const sp__input *in)
{
    const int32_t *m = in->matrix;
    double t = in->rotation;
    if (m == NULL)
        return 0;
    if (fabs(t - 90) < 1.0)
        return sp_buf_addf(b, "transpose=%s,", m[3] > 0 ? "cclock_flip" : "clock");
    if (fabs(t - 180) < 1.0)
        return sp_buf_addf(b, "%s%s", m[0] < 0 ? "hflip," : "", m[4] < 0 ? "vflip," : "");
    if (fabs(t - 270) < 1.0)
        return sp_buf_addf(b, "transpose=%s,", m[3] < 0 ? "clock_flip" : "cclock");
    if (fabs(t) > 1.0)
        return sp_buf_addf(b, "rotate=%f*PI/180,", t);
    return m[4] < 0 ? sp_buf_adds(b, "vflip,") : 0;
}

/* Build buffer -> [fps] -> [rotation] -> scale -> format -> buffersink for frames like
 * first. fps: a constant output rate, or {0,0} for none. */
static int sp__graph_init(sp__graph *gr, const sp__input *in, const AVFrame *first,
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

    if (fps.num > 0 && sp_buf_addf(&chain, "fps=fps=%d/%d,", fps.num, fps.den) < 0)
        rc = AVERROR(ENOMEM);
    if (rc >= 0 && sp__add_rotation(&chain, in) < 0)
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
                   sp__why(rc, b, sizeof b));
        sp_buf_free(&chain);
        sp__graph_free(gr);
        return err ? err->code : SP_EIO;
    }
    sp_buf_free(&chain);
    return 0;
}

/* ---- probing ------------------------------------------------------------------ */

static int sp__json_str(sp_buf *b, const char *key, const char *val)
{
    if (val == NULL)
        return sp_buf_addf(b, "\"%s\":null", key);
    int rc = sp_buf_addf(b, "\"%s\":\"", key);
    if (rc == 0)
        rc = sp_buf_add_json_escaped(b, val, strlen(val));
    return rc == 0 ? sp_buf_addc(b, '"') : rc;
}

/* A friendlier container name than libav's demuxer list ("mov,mp4,m4a,..."). */
static const char *sp__container_name(const AVFormatContext *fmt, const sp__input *in)
{
    const char *name = fmt->iformat->name;
    if (strncmp(name, "mov,", 4) == 0) {
        AVDictionaryEntry *brand = av_dict_get(fmt->metadata, "major_brand", NULL, 0);
        if (brand && strncmp(brand->value, "qt", 2) == 0)
            return "mov";
        return "mp4";
    }
    if (strncmp(name, "matroska", 8) == 0) {
        enum AVCodecID v = in->vst ? in->vst->codecpar->codec_id : AV_CODEC_ID_NONE;
        enum AVCodecID a = in->ast ? in->ast->codecpar->codec_id : AV_CODEC_ID_NONE;
        bool webm_v = v == AV_CODEC_ID_VP8 || v == AV_CODEC_ID_VP9 || v == AV_CODEC_ID_AV1;
        bool webm_a = a == AV_CODEC_ID_NONE || a == AV_CODEC_ID_OPUS || a == AV_CODEC_ID_VORBIS;
        return webm_v && webm_a ? "webm" : "matroska";
    }
    return name;
}

static int sp__probe_json(const sp__input *in, sp_buf *b)
{
    const AVFormatContext *fmt = in->fmt;
    int64_t size = fmt->pb ? avio_size(fmt->pb) : -1;
    int rc = sp_buf_addc(b, '{');
    rc = rc ? rc : sp__json_str(b, "container", sp__container_name(fmt, in));
    rc = rc ? rc : sp_buf_adds(b, ",");
    rc = rc ? rc : sp__json_str(b, "format", fmt->iformat->name);
    rc = rc ? rc : sp_buf_addf(b, ",\"duration\":%.3f,\"bitrate\":%lld,\"size\":%lld,"
                                  "\"streams\":%u",
                               in->duration, (long long)(fmt->bit_rate > 0 ? fmt->bit_rate : 0),
                               (long long)(size > 0 ? size : 0), fmt->nb_streams);
    const AVCodecParameters *v = in->vst->codecpar;
    int dw, dh;
    sp__display_size(in, &dw, &dh);
    const char *pix = av_get_pix_fmt_name(v->format);
    rc = rc ? rc : sp_buf_adds(b, ",\"video\":{");
    rc = rc ? rc : sp__json_str(b, "codec", avcodec_get_name(v->codec_id));
    rc = rc ? rc : sp_buf_adds(b, ",");
    rc = rc ? rc : sp__json_str(b, "profile", avcodec_profile_name(v->codec_id, v->profile));
    rc = rc ? rc
            : sp_buf_addf(b,
                          ",\"width\":%d,\"height\":%d,\"display_width\":%d,"
                          "\"display_height\":%d,\"frame_rate\":%.3f,\"avg_frame_rate\":%.3f,"
                          "\"rotation\":%d,",
                          v->width, v->height, dw, dh, av_q2d(in->rate),
                          in->vst->avg_frame_rate.den ? av_q2d(in->vst->avg_frame_rate) : 0.0,
                          (int)in->rotation);
    rc = rc ? rc : sp__json_str(b, "pix_fmt", pix);
    rc = rc ? rc : sp_buf_addf(b, ",\"bitrate\":%lld}", (long long)v->bit_rate);
    if (in->ast) {
        const AVCodecParameters *a = in->ast->codecpar;
        char layout[64] = "";
        if (av_channel_layout_describe(&a->ch_layout, layout, sizeof layout) < 0)
            layout[0] = '\0';
        rc = rc ? rc : sp_buf_adds(b, ",\"audio\":{");
        rc = rc ? rc : sp__json_str(b, "codec", avcodec_get_name(a->codec_id));
        rc = rc ? rc
                : sp_buf_addf(b, ",\"channels\":%d,\"sample_rate\":%d,\"bitrate\":%lld,",
                              a->ch_layout.nb_channels, a->sample_rate, (long long)a->bit_rate);
        rc = rc ? rc : sp__json_str(b, "channel_layout", layout);
        rc = rc ? rc : sp_buf_addc(b, '}');
    } else {
        rc = rc ? rc : sp_buf_adds(b, ",\"audio\":null");
    }
    return rc ? rc : sp_buf_addc(b, '}');
}

int sp_video_probe(const char *path, const sp_video_opts *o, char **json, sp_err *err)
{
    sp__scope_begin(o);
    sp__input in;
    int rc = sp__input_open(&in, path, o, false, false, err);
    if (rc == 0) {
        sp_buf b;
        sp_buf_init(&b, 64 * 1024);
        rc = sp__probe_json(&in, &b);
        if (rc == 0) {
            *json = sp_buf_take(&b);
        } else {
            sp_err_set(err, rc, "cannot describe the input: %s", sp_strerror(rc));
            sp_buf_free(&b);
        }
        sp__input_close(&in);
    }
    sp__scope_end();
    return rc;
}

/* ---- transcoding -------------------------------------------------------------- */

typedef struct sp__tx {
    const sp_video_opts *o;
    const sp_preset *p;
    sp__input in;
    sp__graph graph;
    bool graph_done;
    AVFormatContext *oc;
    AVCodecContext *venc, *aenc;
    AVStream *vout, *aout;
    AVPacket *pkt;
    AVFrame *frame, *filtered;
    int out_w, out_h;

    /* Sound: resampler into the FIFO, FIFO into frames of frame_size. */
    SwrContext *swr;
    AVChannelLayout swr_in_layout;
    int swr_in_rate, swr_in_fmt;
    AVAudioFifo *fifo;
    uint8_t **conv;        /* resampler output buffer */
    int conv_cap;          /* its capacity in samples */
    int64_t audio_next_pts;/* in 1/sample_rate */
    bool audio_started;

    int64_t vstart;        /* the file's start time in the video stream's time base */
    int64_t vend;          /* end of the last decoded picture, video time base, relative */
    int64_t frames;
    double last_t;         /* presentation time reached (s), for progress and errors */
    double read_t;         /* time of the last packet read (s): error messages, truncation */
    int last_percent;
    int64_t last_report;
    int64_t vbad;          /* packets the video decoder rejected */
    int64_t vpackets;
} sp__tx;

static void sp__tx_free(sp__tx *t)
{
    sp__graph_free(&t->graph);
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
    sp__input_close(&t->in);
}

static void sp__progress(sp__tx *t, int percent, bool force)
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
        sp__progress(t, pct, false);
}

/* The x264 preset or the libvpx deadline[:cpu-used] from the preset's speed. */
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

static int sp__open_video_encoder(sp__tx *t, sp_err *err)
{
    const AVCodec *codec = avcodec_find_encoder_by_name(t->p->video_codec);
    if (codec == NULL)
        return sp_err_set(err, SP_EIO, "the %s encoder is not available in this FFmpeg build",
                          t->p->video_codec);
    AVCodecContext *c = t->venc = avcodec_alloc_context3(codec);
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    const AVCodecParameters *par = t->in.vst->codecpar;
    c->width = t->out_w;
    c->height = t->out_h;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->time_base = av_inv_q(t->in.rate);
    c->framerate = t->in.rate;
    c->sample_aspect_ratio = par->sample_aspect_ratio.num > 0 ? par->sample_aspect_ratio
                                                              : (AVRational){1, 1};
    if (fabs(t->in.rotation - 90) < 1.0 || fabs(t->in.rotation - 270) < 1.0)
        c->sample_aspect_ratio = av_inv_q(c->sample_aspect_ratio);
    c->color_range = AVCOL_RANGE_MPEG;
    c->color_primaries = par->color_primaries;
    c->color_trc = par->color_trc;
    c->colorspace = par->color_space;
    c->thread_count = t->o ? t->o->threads : 0;
    if (t->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int rc = sp__set_speed(c, t->p);
    if (rc >= 0)
        rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot open the %s encoder at %dx%d: %s", t->p->video_codec,
                          t->out_w, t->out_h, sp__why(rc, b, sizeof b));
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

static int sp__open_audio_encoder(sp__tx *t, sp_err *err)
{
    const AVCodec *codec = avcodec_find_encoder_by_name(t->p->audio_codec);
    if (codec == NULL)
        return sp_err_set(err, SP_EIO, "the %s encoder is not available in this FFmpeg build",
                          t->p->audio_codec);
    AVCodecContext *c = t->aenc = avcodec_alloc_context3(codec);
    if (c == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    /* Mono stays mono; stereo, 5.1 and the rest are mixed down to stereo. */
    int channels = t->in.ast->codecpar->ch_layout.nb_channels >= 2 ? 2 : 1;
    av_channel_layout_default(&c->ch_layout, channels);
    c->sample_rate = sp__pick_sample_rate(codec, t->p->audio_rate);
    c->sample_fmt = sp__pick_sample_fmt(codec);
    c->bit_rate = t->p->audio_bitrate;
    c->time_base = (AVRational){1, c->sample_rate};
    c->thread_count = 1;
    if (t->oc->oformat->flags & AVFMT_GLOBALHEADER)
        c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int rc = avcodec_open2(c, codec, NULL);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "cannot open the %s encoder: %s", t->p->audio_codec,
                          sp__why(rc, b, sizeof b));
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

static int sp__open_output(sp__tx *t, const char *path, sp_err *err)
{
    int rc = avformat_alloc_output_context2(&t->oc, NULL, t->p->container, path);
    if (rc < 0 || t->oc == NULL)
        return sp_err_set(err, SP_EIO, "the %s muxer is not available", t->p->container);
    t->oc->interrupt_callback.callback = sp__interrupted;
    t->oc->interrupt_callback.opaque = &t->in;
    rc = sp__open_video_encoder(t, err);
    if (rc == 0 && t->in.adec)
        rc = sp__open_audio_encoder(t, err);
    if (rc < 0)
        return rc;
    rc = avio_open2(&t->oc->pb, path, AVIO_FLAG_WRITE, &t->oc->interrupt_callback, NULL);
    if (rc < 0)
        return sp__write_error(rc, "creating the output", err);
    AVDictionary *mopts = NULL;
    if (strcmp(t->p->container, "mp4") == 0)
        av_dict_set(&mopts, "movflags", "+faststart", 0);
    rc = avformat_write_header(t->oc, &mopts);
    av_dict_free(&mopts);
    if (rc < 0)
        return sp__write_error(rc, "writing the output header", err);
    return 0;
}

/* Send frame (NULL: drain) to enc and write every packet it gives back. */
static int sp__encode(sp__tx *t, AVCodecContext *enc, AVStream *st, AVFrame *frame,
                      sp_err *err)
{
    int rc = avcodec_send_frame(enc, frame);
    if (rc < 0 && rc != AVERROR_EOF) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "the %s encoder failed: %s", enc->codec->name, sp__why(rc, b, sizeof b));
    }
    for (;;) {
        rc = avcodec_receive_packet(enc, t->pkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            return sp_err_set(err, SP_EIO, "the %s encoder failed: %s", enc->codec->name,
                              sp__why(rc, b, sizeof b));
        }
        t->pkt->stream_index = st->index;
        av_packet_rescale_ts(t->pkt, enc->time_base, st->time_base);
        rc = av_interleaved_write_frame(t->oc, t->pkt); /* takes the packet's reference */
        if (rc < 0)
            return sp__write_error(rc, "writing the output", err);
    }
}

/* Pull every picture the graph has ready into the encoder. */
static int sp__pull_video(sp__tx *t, sp_err *err)
{
    for (;;) {
        if (sp__stopped(t->o ? t->o->stop : NULL))
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        int rc = av_buffersink_get_frame(t->graph.sink, t->filtered);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            char b[AV_ERROR_MAX_STRING_SIZE];
            return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                              "the picture filters failed: %s", sp__why(rc, b, sizeof b));
        }
        AVRational stb = av_buffersink_get_time_base(t->graph.sink);
        if (t->filtered->pts != AV_NOPTS_VALUE)
            t->filtered->pts = av_rescale_q(t->filtered->pts, stb, t->venc->time_base);
        /* Encode what comes, not the input's frame types: keyframes are the encoder's
         * choice (as with the ffmpeg command). */
        t->filtered->pict_type = AV_PICTURE_TYPE_NONE;
        if (t->filtered->pts != AV_NOPTS_VALUE)
            t->last_t = (t->filtered->pts + 1) * av_q2d(t->venc->time_base);
        rc = sp__encode(t, t->venc, t->vout, t->filtered, err);
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
        int rc = sp__graph_init(&t->graph, &t->in, f, t->in.rate, t->out_w, t->out_h,
                                AV_PIX_FMT_YUV420P, t->o ? t->o->threads : 0, err);
        if (rc < 0)
            return rc;
        t->graph_done = true;
    }
    int rc = av_buffersrc_add_frame_flags(t->graph.src, f, AV_BUFFERSRC_FLAG_KEEP_REF);
    if (rc < 0) {
        char b[AV_ERROR_MAX_STRING_SIZE];
        return sp_err_set(err, rc == AVERROR(ENOMEM) ? SP_ENOMEM : SP_EIO,
                          "the picture filters failed: %s", sp__why(rc, b, sizeof b));
    }
    return sp__pull_video(t, err);
}

/* A decoder that fails this many times in a row will not recover. */
#define SP__MAX_DECODE_ERRORS 100

static int sp__decode_failed(int averr, double at, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR(ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return sp_err_set(err, SP_EINVAL, "input file is corrupt at %.1f s: it cannot be decoded (%s)",
                      at, sp__why(averr, b, sizeof b));
}

/* Receive every decoded picture (after a packet or the drain) and pass it on. */
static int sp__receive_video(sp__tx *t, sp_err *err)
{
    for (int errors = 0;;) {
        int rc = avcodec_receive_frame(t->in.vdec, t->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) { /* a damaged picture: skip it, as players do */
            t->vbad++;
            if (++errors >= SP__MAX_DECODE_ERRORS || rc == AVERROR(ENOMEM))
                return sp__decode_failed(rc, t->read_t, err);
            continue;
        }
        rc = sp__push_video(t, t->frame, err);
        av_frame_unref(t->frame);
        if (rc < 0)
            return rc;
    }
}

/* Encode FIFO samples in frames of exactly frame_size; with last, also the remainder
 * (padded with silence when the encoder cannot take a short last frame). */
static int sp__drain_fifo(sp__tx *t, bool last, sp_err *err)
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
        rc = sp__encode(t, c, t->aout, f, err);
        av_frame_free(&f);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* (Re)configure the resampler for frames like f (the input may change its layout). */
static int sp__audio_setup(sp__tx *t, const AVFrame *f, sp_err *err)
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
                          f->ch_layout.nb_channels, f->sample_rate, sp__why(rc, b, sizeof b));
    }
    if (av_channel_layout_copy(&t->swr_in_layout, &f->ch_layout) < 0)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    t->swr_in_rate = f->sample_rate;
    t->swr_in_fmt = f->format;
    return 0;
}

/* Convert n input samples (NULL: flush the resampler) into the FIFO and encode what
 * makes whole frames. */
static int sp__convert_audio(sp__tx *t, const uint8_t **data, int n, sp_err *err)
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
    return sp__drain_fifo(t, false, err);
}

static int sp__receive_audio(sp__tx *t, sp_err *err)
{
    for (int errors = 0;;) {
        int rc = avcodec_receive_frame(t->in.adec, t->frame);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) { /* a damaged audio frame: skip it */
            if (++errors >= SP__MAX_DECODE_ERRORS || rc == AVERROR(ENOMEM))
                return sp__decode_failed(rc, t->read_t, err);
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
        rc = sp__audio_setup(t, t->frame, err);
        if (rc == 0)
            rc = sp__convert_audio(t, (const uint8_t **)t->frame->extended_data,
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
    if (rc == 0)
        rc = sp__encode(t, t->venc, t->vout, NULL, err);
    if (rc == 0 && t->in.adec) {
        rc = sp__decode(t, t->in.adec, NULL, err);
        if (rc == 0 && t->swr)
            rc = sp__convert_audio(t, NULL, 0, err);
        if (rc == 0)
            rc = sp__drain_fifo(t, true, err);
        if (rc == 0)
            rc = sp__encode(t, t->aenc, t->aout, NULL, err);
    }
    return rc;
}

/* The video stream's own duration in seconds, when its header states one. */
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
        if (sp__stopped(stop))
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        sp__tl.last[0] = '\0'; /* so an error names this packet's problem */
        int rc = av_read_frame(t->in.fmt, t->pkt);
        if (rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return sp__read_error(rc, t->read_t, err);
        AVStream *st = t->in.fmt->streams[t->pkt->stream_index];
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

int sp_video_transcode(const char *in_path, const char *out_path, const sp_preset *p,
                       const sp_video_opts *o, sp_video_result *res, sp_err *err)
{
    int64_t t0 = sp_mono_ms();
    sp__scope_begin(o);
    sp__tx *t = sp_calloc(1, sizeof *t);
    if (t == NULL) {
        sp__scope_end();
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    t->o = o;
    t->p = p;
    t->last_percent = -1;
    int rc = sp__input_open(&t->in, in_path, o, true, true, err);
    if (rc < 0) {
        sp_free(t);
        unlink(out_path);
        sp__scope_end();
        return rc;
    }
    t->pkt = av_packet_alloc();
    t->frame = av_frame_alloc();
    t->filtered = av_frame_alloc();
    if (t->pkt == NULL || t->frame == NULL || t->filtered == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    int dw, dh;
    sp__display_size(&t->in, &dw, &dh);
    sp_video_output_size(dw, dh, p->height, &t->out_w, &t->out_h);
    t->vstart = av_rescale_q(t->in.start_us, AV_TIME_BASE_Q, t->in.vst->time_base);
    if (rc == 0)
        rc = sp__open_output(t, out_path, err);
    if (rc == 0) {
        sp__progress(t, 0, true);
        rc = sp__loop(t, err);
    }
    if (rc == 0)
        rc = sp__finish(t, err);
    if (rc == 0 && t->frames == 0)
        rc = sp_err_set(err, SP_EINVAL,
                        "input file has no decodable video frames (truncated or corrupt)");
    if (rc == 0) {
        double got, stated;
        sp__input_reach(t, &got, &stated);
        if (stated > 0 && got < 0.8 * stated - 1.0)
            rc = sp_err_set(err, SP_EINVAL,
                            "input file is truncated: it ends at %.1f s of the %.1f s "
                            "its header announces",
                            got, stated);
    }
    if (rc == 0) {
        int wrc = av_write_trailer(t->oc);
        if (wrc < 0)
            rc = sp__write_error(wrc, "finishing the output", err);
    }
    if (rc == 0 && t->oc->pb) {
        int crc = avio_closep(&t->oc->pb);
        if (crc < 0)
            rc = sp__write_error(crc, "closing the output", err);
    }
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
        sp__progress(t, 100, true);
    }
    sp__tx_free(t);
    sp_free(t);
    if (rc < 0)
        unlink(out_path);
    sp__scope_end();
    return rc;
}

/* ---- the poster frame ----------------------------------------------------------- */

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

/* Encode pic (already upright, scaled, yuvj420p) as a JPEG into path. */
static int sp__encode_jpeg(AVFrame *pic, const char *path, sp_err *err)
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
        c->global_quality = FF_QP2LAMBDA * 3;
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
                          "cannot encode the poster frame: %s", sp__why(rc, b, sizeof b));
    } else {
        code = sp__write_file(path, pkt->data, (size_t)pkt->size, err);
    }
    av_packet_free(&pkt);
    avcodec_free_context(&c);
    return code;
}

/* Decode from about 10% in and keep the first interesting picture in best. */
static int sp__pick_poster(sp__input *in, AVFrame *best, sp_err *err)
{
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    if (pkt == NULL || f == NULL) {
        av_packet_free(&pkt);
        av_frame_free(&f);
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    }
    AVRational tb = in->vst->time_base;
    double target_s = in->duration * 0.10;
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
        if (sp__stopped(in->stop)) {
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
                rc = sp__read_error(rc, 0, err);
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
                    rc = sp__decode_failed(r, 0, err);
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
    sp__scope_begin(o);
    sp__input in;
    int rc = sp__input_open(&in, in_path, o, true, false, err);
    if (rc < 0) {
        unlink(out_path);
        sp__scope_end();
        return rc;
    }
    AVFrame *best = av_frame_alloc(), *pic = av_frame_alloc();
    sp__graph g = {0};
    int w = 0, h = 0;
    if (best == NULL || pic == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == 0)
        rc = sp__pick_poster(&in, best, err);
    if (rc == 0) {
        int dw, dh;
        sp__display_size(&in, &dw, &dh);
        sp_video_output_size(dw, dh, p->height, &w, &h);
        best->pts = 0;
        rc = sp__graph_init(&g, &in, best, (AVRational){0, 0}, w, h, AV_PIX_FMT_YUVJ420P,
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
                            sp__why(r, b, sizeof b));
        }
    }
    if (rc == 0)
        rc = sp__encode_jpeg(pic, out_path, err);
    sp__graph_free(&g);
    av_frame_free(&best);
    av_frame_free(&pic);
    sp__input_close(&in);
    if (rc < 0) {
        unlink(out_path);
    } else {
        if (width)
            *width = w;
        if (height)
            *height = h;
    }
    sp__scope_end();
    return rc;
}

/* probe.c - the transcoder's input (transcode_int.h): opening an untrusted file with
 * libavformat (by its content, whatever its name says), refusing what cannot be a
 * whole video (empty, a cut MPEG-TS, pictures past SP__MAX_SIDE, sound alone),
 * picking its video and audio streams, what its pictures need (deinterlace, tone map),
 * opening their decoders, the output size a preset gives it, and its metadata as JSON
 * (sp_video_probe). */
#include "transcode_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <libavutil/display.h>
#include <libavutil/pixdesc.h>

#include "spool/buf.h"

#define SP__MAX_FPS 120

int sp__video_interrupted(void *opaque)
{
    const sp__input *in = opaque;
    return in->stop && *in->stop;
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

/* Whether the MPEG-TS file at path ends inside a packet: a download or an upload cut
 * at any byte but a packet boundary (187 in 188). MPEG-TS states no duration, so this
 * and a last packet cut short (sp__video_input_whole) are what tell a cut file from a
 * short one. The packet size (188, 192 for M2TS, 204 with FEC) is found from the sync
 * bytes at its start; *psize gets it. */
static bool sp__ts_cut(const char *path, int64_t *size, int *psize)
{
    static const int sizes[] = {188, 192, 204};
    unsigned char h[6 * 204];
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    size_t n = fread(h, 1, sizeof h, f);
    bool seek = fseeko(f, 0, SEEK_END) == 0;
    *size = seek ? (int64_t)ftello(f) : -1;
    fclose(f);
    if (*size <= 0)
        return false;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int p = sizes[i];
        for (int off = 0; off < p; off++) {
            bool sync = true;
            for (int k = 0; k < 5 && sync; k++)
                sync = (size_t)(off + k * p) < n && h[off + k * p] == 0x47;
            if (!sync)
                continue;
            /* An M2TS packet is a 4-byte time code, then the 188 bytes. */
            int start = p == 192 ? (off >= 4 ? off - 4 : off + 188) : off;
            *psize = p;
            return (*size - start) % p != 0;
        }
    }
    return false;
}

/* Rotation from the display matrix, as the ffmpeg command reads it: degrees clockwise,
 * normalised to [0, 360). */
static double sp__rotation(const int32_t *m)
{
    double theta = m ? -round(av_display_rotation_get(m)) : 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    return theta;
}

void sp__video_input_close(sp__input *in)
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

/* Pick the audio stream: the one marked default, else the first; among those with a
 * decoder, channels and a sample rate. (libav's best stream would take the highest
 * bitrate among several without a default, where players take the first.) */
static int sp__pick_audio(const AVFormatContext *fmt)
{
    int first = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        const AVCodecParameters *par = st->codecpar;
        if (par->codec_type != AVMEDIA_TYPE_AUDIO || avcodec_find_decoder(par->codec_id) == NULL ||
            par->ch_layout.nb_channels <= 0 || par->sample_rate <= 0)
            continue;
        if (st->disposition & AV_DISPOSITION_DEFAULT)
            return (int)i;
        if (first < 0)
            first = (int)i;
    }
    return first;
}

/* The HDR transfer of a stream that needs a tone map, or AVCOL_TRC_UNSPECIFIED. */
static enum AVColorTransferCharacteristic sp__hdr(const AVCodecParameters *par)
{
    if (par->color_trc == AVCOL_TRC_SMPTE2084 || par->color_trc == AVCOL_TRC_ARIB_STD_B67)
        return par->color_trc;
    return AVCOL_TRC_UNSPECIFIED;
}

/* What the pictures need and the colour they leave the input's filters with. */
static void sp__picture_needs(sp__input *in)
{
    const AVCodecParameters *par = in->vst->codecpar;
    in->interlaced = par->field_order == AV_FIELD_TT || par->field_order == AV_FIELD_BB ||
                     par->field_order == AV_FIELD_TB || par->field_order == AV_FIELD_BT;
    in->hdr = sp__hdr(par);
    if (in->hdr != AVCOL_TRC_UNSPECIFIED) {
        in->out_primaries = AVCOL_PRI_BT709;
        in->out_trc = AVCOL_TRC_BT709;
        in->out_space = AVCOL_SPC_BT709;
    } else {
        in->out_primaries = par->color_primaries;
        in->out_trc = par->color_trc;
        in->out_space = par->color_space;
    }
}

/* The input has no video stream to take: say what it is instead. */
static int sp__no_video(const AVFormatContext *fmt, sp_err *err)
{
    bool pictures = false;
    int audio = sp__pick_audio(fmt);
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        pictures |= fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
                    !(fmt->streams[i]->disposition & AV_DISPOSITION_ATTACHED_PIC);
    if (pictures)
        return sp_err_set(err, SP_EUNSUPPORTED,
                          "input's video stream cannot be decoded (unsupported codec or "
                          "no picture size)");
    if (audio >= 0)
        return sp_err_set(err, SP_EUNSUPPORTED,
                          "input is audio only (%s sound in a %s file, no video stream): the "
                          "video presets make pictures, so there is nothing to encode",
                          avcodec_get_name(fmt->streams[audio]->codecpar->codec_id),
                          fmt->iformat->name);
    return sp_err_set(err, SP_EUNSUPPORTED, "input is not a video file (no decodable video stream)");
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
                          avcodec_get_name(st->codecpar->codec_id), sp__video_why(rc, b, sizeof b));
    }
    *out = c;
    return 0;
}

/* Open path and find its streams. With decoders, open the video decoder and (when
 * want_audio and there is one that decodes) the audio decoder. */
int sp__video_input_open(sp__input *in, const char *path, const sp_video_opts *o,
                         bool decoders, bool want_audio, sp_err *err)
{
    memset(in, 0, sizeof *in);
    in->vidx = in->aidx = -1;
    in->hdr = AVCOL_TRC_UNSPECIFIED;
    in->stop = o ? o->stop : NULL;
    int threads = o ? o->threads : 0;
    char b[AV_ERROR_MAX_STRING_SIZE];

    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size == 0)
        return sp_err_set(err, SP_EINVAL, "input file is empty (0 bytes): the upload or the "
                                          "download carried no data");
    in->fmt = avformat_alloc_context();
    if (in->fmt == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    in->fmt->interrupt_callback.callback = sp__video_interrupted;
    in->fmt->interrupt_callback.opaque = in;
    pthread_once(&sp__formats_once, sp__build_whitelist);
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    if (sp__format_whitelist)
        av_dict_set(&opts, "format_whitelist", sp__format_whitelist, 0);
    sp__video_why_reset();
    int rc = avformat_open_input(&in->fmt, path, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0) { /* in->fmt was freed */
        if (rc == AVERROR_EXIT)
            return sp_err_set(err, SP_ECANCELLED, "stopped");
        if (rc == AVERROR(ENOMEM))
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        if (strstr(sp__video_why(rc, b, sizeof b), "not on whitelist"))
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
                              sp__video_why(rc, b, sizeof b));
        }
        return sp_err_set(err, SP_EIO, "cannot open the input: %s", sp__video_why(rc, b, sizeof b));
    }
    int64_t size;
    int psize;
    if (strcmp(in->fmt->iformat->name, "mpegts") == 0 && sp__ts_cut(path, &size, &psize)) {
        sp__video_input_close(in);
        return sp_err_set(err, SP_EINVAL,
                          "input file is truncated: the MPEG-TS stream ends inside a packet "
                          "(%lld bytes is not a whole number of %d-byte packets)",
                          (long long)size, psize);
    }
    rc = avformat_find_stream_info(in->fmt, NULL);
    if (rc < 0) {
        int code = sp__video_read_error(rc, 0, err);
        sp__video_input_close(in);
        return code;
    }
    in->vidx = sp__pick_video(in->fmt);
    in->aidx = sp__pick_audio(in->fmt);
    if (in->aidx >= 0)
        in->ast = in->fmt->streams[in->aidx];
    if (in->vidx < 0) {
        /* The probe describes a sound file (its metadata says what it is); the
         * transcoder and the poster have no pictures to make. */
        if (!decoders && in->aidx >= 0) {
            in->start_us = in->fmt->start_time != AV_NOPTS_VALUE ? in->fmt->start_time : 0;
            if (in->fmt->duration > 0)
                in->duration = in->fmt->duration / (double)AV_TIME_BASE;
            return 0;
        }
        rc = sp__no_video(in->fmt, err);
        sp__video_input_close(in);
        return rc;
    }
    in->vst = in->fmt->streams[in->vidx];
    const AVCodecParameters *vpar = in->vst->codecpar;
    if (vpar->width > SP__MAX_SIDE || vpar->height > SP__MAX_SIDE) {
        rc = sp_err_set(err, SP_EUNSUPPORTED,
                        "input's pictures are %dx%d: spool-video takes at most %d pixels a "
                        "side (8K)",
                        vpar->width, vpar->height, SP__MAX_SIDE);
        sp__video_input_close(in);
        return rc;
    }
    sp__picture_needs(in);
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
    if ((rc = sp__video_input_filters_check(in, err)) < 0) {
        sp__video_input_close(in);
        return rc;
    }
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        if ((int)i != in->vidx && (int)i != (want_audio ? in->aidx : -1))
            in->fmt->streams[i]->discard = AVDISCARD_ALL;
    }
    rc = sp__open_decoder(in->vst, threads, &in->vdec, err);
    if (rc == 0 && want_audio && in->ast) {
        sp_err aerr;
        if (sp__open_decoder(in->ast, threads, &in->adec, &aerr) < 0) {
            sp_warn(o ? o->log : NULL, "ignoring the audio: %s", aerr.msg);
            in->ast->discard = AVDISCARD_ALL;
            in->aidx = -1;
            in->ast = NULL;
        }
    }
    if (rc < 0)
        sp__video_input_close(in);
    return rc;
}

void sp__video_input_saw(sp__input *in, const AVPacket *pkt)
{
    bool cut = (pkt->flags & AV_PKT_FLAG_CORRUPT) != 0;
    if (pkt->stream_index == in->vidx)
        in->vtail_cut = cut;
    else if (pkt->stream_index == in->aidx)
        in->atail_cut = cut;
}

void sp__video_input_decoded(sp__input *in, const AVCodecContext *dec, const AVFrame *f,
                             int averr)
{
    bool bad = averr < 0 || f->decode_error_flags || (f->flags & AV_FRAME_FLAG_CORRUPT);
    if (dec == in->vdec)
        in->vtail_bad = bad;
    else
        in->atail_bad = bad;
}

int sp__video_input_whole(const sp__input *in, bool length_known, sp_err *err)
{
    if (in->vtail_cut || in->atail_cut)
        return sp_err_set(err, SP_EINVAL,
                          "input file is truncated: its last %s packet is cut short (the file "
                          "ends before the data its packet header announces)",
                          in->vtail_cut ? "video" : "audio");
    if (!length_known && (in->vtail_bad || in->atail_bad))
        return sp_err_set(err, SP_EINVAL,
                          "input file is truncated: its last %s is incomplete (the file ends "
                          "inside it)",
                          in->vtail_bad ? "picture" : "sound frame");
    return 0;
}

/* The picture's size once turned upright. */
void sp__video_display_size(const sp__input *in, int *w, int *h)
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

/* ---- the metadata ------------------------------------------------------------- */

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

/* The "video" object of the probe (the stream in->vst), without its key. */
static int sp__probe_video_json(const sp__input *in, sp_buf *b)
{
    const AVCodecParameters *v = in->vst->codecpar;
    int dw, dh;
    sp__video_display_size(in, &dw, &dh);
    const AVPixFmtDescriptor *desc = av_pix_fmt_desc_get(v->format);
    const char *trc = v->color_trc == AVCOL_TRC_UNSPECIFIED ? NULL
                                                            : av_color_transfer_name(v->color_trc);
    const char *hdr = in->hdr == AVCOL_TRC_SMPTE2084     ? "pq"
                      : in->hdr == AVCOL_TRC_ARIB_STD_B67 ? "hlg"
                                                          : NULL;
    int rc = sp_buf_addc(b, '{');
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
    rc = rc ? rc : sp__json_str(b, "pix_fmt", av_get_pix_fmt_name(v->format));
    rc = rc ? rc : sp_buf_addf(b, ",\"bit_depth\":%d,\"interlaced\":%s,",
                               desc ? desc->comp[0].depth : 0, in->interlaced ? "true" : "false");
    rc = rc ? rc : sp__json_str(b, "color_transfer", trc);
    rc = rc ? rc : sp_buf_adds(b, ",");
    rc = rc ? rc : sp__json_str(b, "hdr", hdr);
    return rc ? rc : sp_buf_addf(b, ",\"bitrate\":%lld}", (long long)v->bit_rate);
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
                                  "\"streams\":%u,\"video\":",
                               in->duration, (long long)(fmt->bit_rate > 0 ? fmt->bit_rate : 0),
                               (long long)(size > 0 ? size : 0), fmt->nb_streams);
    if (in->vst)
        rc = rc ? rc : sp__probe_video_json(in, b);
    else
        rc = rc ? rc : sp_buf_adds(b, "null");
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
    sp__video_scope_begin(o);
    sp__input in;
    int rc = sp__video_input_open(&in, path, o, false, false, err);
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
        sp__video_input_close(&in);
    }
    sp__video_scope_end();
    return rc;
}

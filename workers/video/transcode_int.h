/* transcode_int.h - what the parts of the transcoder (transcode.h) share: the opened
 * input, the picture filter graph, one transcode's state, and the functions one part
 * gives the others. Internal to workers/video; callers use transcode.h.
 *
 *   avlog.c      libav's messages into sp_log; libav errors mapped to spool's codes
 *   probe.c      opening an input, picking its streams, its metadata (sp_video_probe)
 *   picture.c    the input's half of the picture filters: deinterlace, fps, rotation,
 *                HDR tone map; and whether this FFmpeg has the filters an input needs
 *   filter.c     the picture filter graph: the input's filters, scale, pixel format
 *   encode.c     the video and audio encoders; the audio resampler and FIFO
 *   mux.c        the output file: container, header, packets, trailer
 *   transcode.c  the read-decode loop that drives them (sp_video_transcode)
 *   ladder.c     an HLS ladder from that loop: N renditions on their own threads
 *   hls.c        the ladder's playlists: measuring media playlists, the master
 *   sprite.c     the ladder's sprite sheet of seek previews and its WebVTT cues
 *   poster.c     the JPEG poster frame (sp_video_poster); JPEG pictures for sprite.c
 *
 * Errors follow transcode.h: 0 or a negative SP_E* code, with err filled in. */
#ifndef SPOOL_VIDEO_TRANSCODE_INT_H
#define SPOOL_VIDEO_TRANSCODE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libswresample/swresample.h>

#include "spool/buf.h"
#include "transcode.h"

/* A decoder that fails this many times in a row will not recover. */
#define SP__MAX_DECODE_ERRORS 100
/* The largest picture side taken (8K UHD is 7680x4320, DCI 8K 8192x4320): a header
 * that claims more is a decoder's memory bomb, not a video anyone uploads. */
#define SP__MAX_SIDE 8192

/* An opened input (probe.c): its demuxer, the streams picked and their decoders. */
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
    bool interlaced;       /* the stream says its pictures are interlaced: deinterlace */
    /* The transfer of an HDR input to tone-map to SDR (AVCOL_TRC_SMPTE2084: PQ,
     * AVCOL_TRC_ARIB_STD_B67: HLG), else AVCOL_TRC_UNSPECIFIED. */
    enum AVColorTransferCharacteristic hdr;
    /* The colour the pictures have when the input's filters are done (the input's
     * own, or BT.709 after a tone map): what the encoder must tag them with. */
    enum AVColorPrimaries out_primaries;
    enum AVColorTransferCharacteristic out_trc;
    enum AVColorSpace out_space;
    /* The last packet read of the video (audio) stream was cut short (the demuxer
     * flagged it corrupt): at the end of the file, that means the file is truncated. */
    bool vtail_cut, atail_cut;
    /* The last picture (sound frame) decoded was damaged or failed to decode: in a
     * file that states no length (MPEG-TS), the sign of a cut inside it. */
    bool vtail_bad, atail_bad;
} sp__input;

/* One picture filter graph: frames go into src and come out of sink. */
typedef struct sp__graph {
    AVFilterGraph *g;
    AVFilterContext *src, *sink;
} sp__graph;

typedef struct sp__ladder sp__tx_ud;

/* One transcode (transcode.c): the input, the graph, the encoders and the output. */
typedef struct sp__tx sp__tx;
struct sp__tx {
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

    /* Where filtered pictures go (pts in 1/rate): NULL encodes them with venc into oc
     * (sp_video_transcode); the ladder hands them to its renditions (ladder.c). */
    int (*picture)(sp__tx_ud *ud, AVFrame *f, sp_err *err);
    sp__tx_ud *picture_ud;
};

/* Whether *stop asks the work to end (stop may be NULL). */
static inline bool sp__video_stopped(const sp_flag *stop)
{
    return stop && *stop;
}

/* ---- transcode.c: the loop ---- */

/* Read, decode, filter and encode (or hand to t->picture) the whole input, drain
 * everything, and check the input was whole (frames, truncation). t->in, t->pkt,
 * t->frame, t->filtered, t->out_w/out_h, t->vstart and the outputs must be set up. */
int sp__video_tx_run(sp__tx *t, sp_err *err);
/* Free what t holds (not t); safe on a partly set up one. */
void sp__video_tx_free(sp__tx *t);
/* Report progress (at most every 250 ms unless force). */
void sp__video_progress(sp__tx *t, int percent, bool force);

/* ---- avlog.c: libav's messages and errors ---- */

/* Mark this thread as working for one public call (o may be NULL): libav's messages
 * name o->log, and the last error message is kept for sp__video_why. */
void sp__video_scope_begin(const sp_video_opts *o);
void sp__video_scope_end(void);
/* The last libav error message on this thread, or libav's text for averr (in buf). */
const char *sp__video_why(int averr, char *buf, size_t n);
/* Forget the last libav error message, so the next error names its own problem. */
void sp__video_why_reset(void);
/* Set err for a libav error met while reading the input at `at` seconds, or writing
 * the output (what: "writing the output"...), or decoding; return its code. */
int sp__video_read_error(int averr, double at, sp_err *err);
int sp__video_write_error(int averr, const char *what, sp_err *err);
int sp__video_decode_failed(int averr, double at, sp_err *err);

/* ---- probe.c: the input ---- */

/* libav's interrupt callback: non-zero once the sp__input's stop flag is set. */
int sp__video_interrupted(void *opaque);
/* Open path into in and pick its streams; with decoders, open the video decoder and
 * (with want_audio) the audio one. On error in holds nothing to close. */
int sp__video_input_open(sp__input *in, const char *path, const sp_video_opts *o,
                         bool decoders, bool want_audio, sp_err *err);
void sp__video_input_close(sp__input *in);
/* The picture's size once turned upright. */
void sp__video_display_size(const sp__input *in, int *w, int *h);

/* The input's packet pkt was read: keep what the end-of-file checks need. */
void sp__video_input_saw(sp__input *in, const AVPacket *pkt);
/* The decoder dec (in->vdec or in->adec) gave f (averr 0) or failed (averr < 0). */
void sp__video_input_decoded(sp__input *in, const AVCodecContext *dec, const AVFrame *f,
                             int averr);
/* After the last packet: SP_EINVAL with a reason if the input turned out truncated
 * in a way its length cannot show, else 0: a stream's last packet cut short, or (when
 * length_known is false: nothing states how long the file should be) its last picture
 * damaged. */
int sp__video_input_whole(const sp__input *in, bool length_known, sp_err *err);

/* ---- picture.c: the input's half of the picture filters ---- */

/* 0 if this FFmpeg has every filter in needs (tone map: zscale and tonemap; deinterlace:
 * bwdif or yadif); else SP_EUNSUPPORTED, with err naming the input and the filter. */
int sp__video_input_filters_check(const sp__input *in, sp_err *err);
/* Append to b the filters that make pictures like first ready to scale, each followed
 * by ',': deinterlace (bwdif, only the pictures flagged interlaced) when the input is
 * interlaced, fps (a constant rate) when fps.num > 0, the rotation that turns them
 * upright, and an HDR to SDR BT.709 tone map. Returns 0 or SP_ENOMEM / SP_ETOOBIG. */
int sp__video_input_chain(sp_buf *b, const sp__input *in, const AVFrame *first,
                          AVRational fps);

/* ---- filter.c: the picture filter graph ---- */

/* Build buffer -> the input's filters (picture.c) -> scale -> format -> buffersink for
 * frames like first; fps {0,0} for none. On error gr holds nothing to free. */
int sp__video_graph_init(sp__graph *gr, const sp__input *in, const AVFrame *first,
                         AVRational fps, int out_w, int out_h, enum AVPixelFormat pix_fmt,
                         int threads, sp_err *err);
/* Free the graph; safe on a zeroed or already freed one. */
void sp__video_graph_free(sp__graph *g);

/* ---- encode.c: the encoders ---- */

/* Open t->venc (t->aenc) and add its stream to t->oc; what is allocated before an
 * error stays in t for sp__tx_free. */
/* Allocate the video encoder called name for w x h pictures of in into *ctx (and
 * *codec): YUV 4:2:0 at the input's frame rate, its pixel aspect (turned with the
 * picture), tagged with the colour the input filters leave. The caller sets the rest
 * and opens it. */
int sp__video_encoder_alloc(const sp__input *in, const char *name, int w, int h,
                            const AVCodec **codec, AVCodecContext **ctx, sp_err *err);
int sp__video_encoder_open(sp__tx *t, sp_err *err);
int sp__video_audio_encoder_open(sp__tx *t, sp_err *err);
/* Send frame (NULL: drain) to enc and write every packet it gives back to st. */
int sp__video_encode(sp__tx *t, AVCodecContext *enc, AVStream *st, AVFrame *frame,
                     sp_err *err);
/* The sound path: (re)configure the resampler for frames like f, convert n samples
 * (data NULL: flush) into the FIFO, and encode the FIFO in frames of frame_size (with
 * last, the remainder too). */
int sp__video_audio_setup(sp__tx *t, const AVFrame *f, sp_err *err);
int sp__video_convert_audio(sp__tx *t, const uint8_t **data, int n, sp_err *err);
int sp__video_drain_fifo(sp__tx *t, bool last, sp_err *err);

/* ---- mux.c: the output file ---- */

/* Create path as t->p's container, open the encoders into it and write its header. */
int sp__video_mux_open(sp__tx *t, const char *path, sp_err *err);
/* Write t->pkt, encoded by enc, as a packet of st (takes the packet's reference). */
int sp__video_mux_packet(sp__tx *t, const AVCodecContext *enc, AVStream *st, sp_err *err);
/* Write the trailer and close the file. */
int sp__video_mux_finish(sp__tx *t, sp_err *err);

/* ---- poster.c: JPEG pictures ---- */

/* Encode pic (yuvj420p) as one JPEG picture at MJPEG quality qscale (2 best .. 31)
 * into the file path. */
int sp__video_jpeg_write(AVFrame *pic, int qscale, const char *path, sp_err *err);

#endif

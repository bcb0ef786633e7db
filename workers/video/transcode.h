/* transcode.h - spool-video's transcoder: every libav* call (libavformat, libavcodec,
 * libavfilter, libswresample) lives behind this module. It probes an input file into
 * a JSON summary, transcodes it to a preset (H.264/AAC in MP4 with +faststart, or
 * VP9/Opus in WebM), and writes a JPEG poster frame. Files in, files out: the caller
 * (job.c) owns blob staging, job state and retries.
 *
 * Errors are classified so the caller can decide about retries:
 *   SP_EUNSUPPORTED  not a video: unknown format, no decodable video stream (permanent)
 *   SP_EINVAL        truncated or corrupt input (permanent)
 *   SP_EIO           reading or writing a file failed, or an encoder or filter could not
 *                    be set up (transient: worth another attempt)
 *   SP_ECANCELLED    *opts->stop became non-zero
 *   SP_ENOMEM        out of memory
 * and err says what a person can do about it. All functions are thread-safe: several
 * jobs may run at once in one process. */
#ifndef SPOOL_VIDEO_TRANSCODE_H
#define SPOOL_VIDEO_TRANSCODE_H

#include <stdbool.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/util.h"
#include "spool/log.h"
#include "spool/presets.h"

typedef struct sp_video_opts {
    /* Threads for the decoder, the filters and the encoder of one job; 0: as many as
     * the host has cores (libav's "auto"). */
    int threads;
    /* Non-zero stops the work within a frame or a blocking read (AVIOInterruptCB);
     * the call then returns SP_ECANCELLED. May be NULL. */
    const sp_flag *stop;
    /* Progress 0-100 from the output's presentation time against the input's
     * duration: at most every 250 ms while encoding, never 100 before the trailer is
     * written, and 100 once it is. May be NULL. */
    void (*progress)(void *ud, int percent);
    void *ud;
    /* Messages libav prints on the calling thread are logged with this context (the
     * job). May be NULL. */
    const sp_logctx *log;
} sp_video_opts;

/* What a transcode produced. */
typedef struct sp_video_result {
    int width, height;      /* output frame size (even) */
    int64_t frames;         /* video frames encoded */
    double duration;        /* seconds of video written */
    bool has_audio;         /* an audio stream was written */
    int64_t bytes;          /* size of the output file */
    double seconds;         /* wall time spent */
} sp_video_result;

/* Once per process, before any other call: send libav's messages to sp_log (errors
 * at warn, the rest at debug) instead of stderr. */
void sp_video_global_init(void);

/* Probe the input at path: container, duration, bitrate, size, and "video"/"audio"
 * objects (codec, width, height, frame_rate, rotation, pix_fmt, channels,
 * sample_rate...) as documented in docs/jobs.md. On 0, *json is a JSON object the
 * caller frees with sp_free. On error *json is untouched. */
int sp_video_probe(const char *path, const sp_video_opts *o, char **json, sp_err *err);

/* The frame size a preset gives an input (after rotation): its short side is
 * min(preset->height, the input's short side), never upscaled, aspect ratio kept, both
 * sides even. For inputs already probed elsewhere (tests, benchmarks). */
void sp_video_output_size(int in_w, int in_h, int preset_height, int *out_w, int *out_h);

/* Transcode in_path to out_path as preset p says. The output is written with an
 * explicit container name (so out_path may have any name, such as a blob staging
 * path); on failure it is removed. res (may be NULL) gets a summary on success. */
int sp_video_transcode(const char *in_path, const char *out_path, const sp_preset *p,
                       const sp_video_opts *o, sp_video_result *res, sp_err *err);

/* Write a JPEG poster frame of in_path to out_path: a frame from about 10% into the
 * video, skipping black or flat frames for up to a few seconds after that point,
 * upright and at the size p gives the video. On failure out_path is removed.
 * *width and *height (may be NULL) get the picture's size. */
int sp_video_poster(const char *in_path, const char *out_path, const sp_preset *p,
                    const sp_video_opts *o, int *width, int *height, sp_err *err);

#endif

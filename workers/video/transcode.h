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

/* One rendition of a ladder as written and measured (from its media playlist and its
 * files, not from settings). */
#define SP_VIDEO_MAX_RENDITIONS 4
typedef struct sp_video_rendition {
    char name[16];          /* its folder: "720p" (the short side) */
    int width, height;
    int threads;            /* the x264 threads it had */
    int64_t frames;         /* pictures written */
    int segments;
    double duration;        /* seconds: the sum of its segments' durations */
    double frame_rate;      /* frames / duration */
    int64_t bytes;          /* init segment and media segments */
    int64_t peak_bps;       /* the largest segment's bits / its duration, with audio */
    int64_t average_bps;    /* all segments' bits / duration, with audio */
    char codecs[48];        /* "avc1.64001f,mp4a.40.2" */
} sp_video_rendition;

/* The ladder's sprite sheet (sprite.jpg and sprite.vtt), when one was asked for. */
typedef struct sp_video_sprite {
    int tiles;              /* 0: none written */
    int columns, rows;
    int tile_width, tile_height;
    int width, height;      /* the JPEG's size: columns x tile_width, rows x tile_height */
    int interval;           /* seconds between tiles */
} sp_video_sprite;

typedef struct sp_video_ladder_result {
    int count;
    sp_video_rendition r[SP_VIDEO_MAX_RENDITIONS];
    bool has_audio;         /* an audio rendition "audio/" was written */
    int64_t audio_bytes;
    double duration;        /* seconds of video (the top rendition's) */
    int64_t frames;         /* pictures decoded and filtered once, then encoded N times */
    int gop;                /* frames between keyframes, the same in every rendition */
    double seconds;         /* wall time spent */
    sp_video_sprite sprite;
} sp_video_ladder_result;

/* Write preset p's HLS ladder (p->ladder) of in_path into the existing, empty
 * directory dir: master.m3u8; for each rendition <name>/index.m3u8, <name>/init.mp4
 * and <name>/seg_NNNNN.m4s (fMP4); and audio/... when the input has sound. One demux,
 * one decode and one filter pass (frame rate, rotation, pixel format, the top
 * rendition's size) feed every rendition; each scales and encodes (libx264, keyframes
 * every gop frames in all of them) on a thread of its own. The renditions are the
 * ladder's rungs no taller than the input, or one at the input's size when it is
 * shorter than all of them. With sprite, also sprite.jpg, a grid of small thumbnails
 * taken every few seconds from the same filtered pictures, and sprite.vtt, the WebVTT
 * cues that map each time range to its tile (sprite.h). On error dir may hold partial
 * files (the caller removes it). res (may be NULL) gets what was written. */
int sp_video_ladder(const char *in_path, const char *dir, const sp_preset *p,
                    const sp_video_opts *o, bool sprite, sp_video_ladder_result *res,
                    sp_err *err);

/* Write a JPEG poster frame of in_path to out_path: a frame from about 10% into the
 * video, skipping black or flat frames for up to a few seconds after that point,
 * upright and at the size p gives the video. On failure out_path is removed.
 * *width and *height (may be NULL) get the picture's size. */
int sp_video_poster(const char *in_path, const char *out_path, const sp_preset *p,
                    const sp_video_opts *o, int *width, int *height, sp_err *err);

#endif

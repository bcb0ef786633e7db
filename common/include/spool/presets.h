/* presets.h - the video presets, shared by spool-api (to validate requests) and
 * spool-video (to encode). */
#ifndef SPOOL_PRESETS_H
#define SPOOL_PRESETS_H

#include <stdint.h>

typedef struct sp_preset {
    const char *name;          /* "mp4-720p" */
    const char *container;     /* "mp4" or "webm" */
    const char *extension;     /* "mp4" or "webm" */
    const char *content_type;  /* "video/mp4" or "video/webm" */
    const char *video_codec;   /* libavcodec encoder: "libx264" or "libvpx-vp9" */
    const char *audio_codec;   /* libavcodec encoder: "aac" or "libopus" */
    int height;                /* target height; never upscaled */
    int crf;                   /* constant rate factor */
    const char *speed;         /* x264 preset ("veryfast"...) or vp9 deadline/cpu-used */
    int audio_bitrate;         /* bits/s */
    int audio_rate;            /* Hz */
    int64_t time_limit_ms;     /* default per-job time limit */
} sp_preset;

/* The preset called name, or NULL. */
const sp_preset *sp_preset_find(const char *name);

/* All presets, terminated by an entry with a NULL name. */
const sp_preset *sp_presets(void);

/* The preset used when a request names none. */
#define SP_PRESET_DEFAULT "mp4-720p"

#endif

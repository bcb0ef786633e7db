/* presets.h - the video presets, shared by spool-api (to validate requests) and
 * spool-video (to encode). */
#ifndef SPOOL_PRESETS_H
#define SPOOL_PRESETS_H

#include <stdint.h>

/* One rendition of an HLS ladder: its height (the short side; never upscaled) and its
 * x264 rate control, constant quality capped by a VBV (maxrate/bufsize), so a
 * rendition's peak bandwidth is bounded as players expect. */
typedef struct sp_rung {
    int height;                /* 0 ends a ladder */
    int crf;
    int maxrate;               /* bits/s */
    int bufsize;               /* bits */
} sp_rung;

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
    /* HLS presets: the renditions, tallest first, ended by a rung of height 0, and the
     * segment length; NULL for a preset that writes one file. */
    const sp_rung *ladder;
    int segment_seconds;
} sp_preset;

/* The preset called name, or NULL. */
const sp_preset *sp_preset_find(const char *name);

/* All presets, terminated by an entry with a NULL name. */
const sp_preset *sp_presets(void);

/* The preset used when a request names none. */
#define SP_PRESET_DEFAULT "mp4-720p"

#endif

/* presets.c - the video preset table (see presets.h). */
#include "spool/presets.h"

#include <string.h>

/* Apple's authoring guide ballpark for H.264 at 30 fps, as capped CRF. */
static const sp_rung sp__ladder[] = {
    {1080, 23, 6000000, 12000000},
    {720, 23, 3500000, 7000000},
    {480, 24, 1500000, 3000000},
    {360, 25, 800000, 1600000},
    {0, 0, 0, 0},
};

static const sp_preset sp__presets[] = {
    {"mp4-1080p", "mp4", "mp4", "video/mp4", "libx264", "aac", 1080, 23, "veryfast", 160000,
     48000, 3600000},
    {"mp4-720p", "mp4", "mp4", "video/mp4", "libx264", "aac", 720, 23, "veryfast", 128000, 48000,
     1800000},
    {"mp4-480p", "mp4", "mp4", "video/mp4", "libx264", "aac", 480, 24, "veryfast", 96000, 48000,
     1200000},
    {"webm-720p", "webm", "webm", "video/webm", "libvpx-vp9", "libopus", 720, 32, "realtime",
     96000, 48000, 3600000},
    {"hls", "hls", "m3u8", "application/vnd.apple.mpegurl", "libx264", "aac", 1080, 23,
     "veryfast", 128000, 48000, 3600000, sp__ladder, 6},
    {"hls-720p", "hls", "m3u8", "application/vnd.apple.mpegurl", "libx264", "aac", 720, 23,
     "veryfast", 128000, 48000, 1800000, sp__ladder + 1, 6},
    {NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, NULL, 0, 0, 0, NULL, 0},
};

const sp_preset *sp_preset_find(const char *name)
{
    for (const sp_preset *p = sp__presets; name && p->name; p++) {
        if (strcmp(p->name, name) == 0)
            return p;
    }
    return NULL;
}

const sp_preset *sp_presets(void)
{
    return sp__presets;
}

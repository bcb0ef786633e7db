/* hls.h - the HLS ladder's playlists (hls.c): what the renditions' media playlists say
 * and their files weigh, and the master playlist written from those measures. Internal
 * to workers/video (ladder.c). */
#ifndef SPOOL_VIDEO_HLS_H
#define SPOOL_VIDEO_HLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transcode.h"

/* The CODECS attribute of an H.264 rendition, "avc1.PPCCLL" from the SPS in the
 * encoder's extradata (Annex B or avcC), with ",mp4a.40.2" (AAC-LC) when audio. 0, or
 * SP_EIO when the extradata holds no SPS. */
int sp__hls_codecs(const uint8_t *extradata, int size, bool audio, char *out, size_t cap,
                   sp_err *err);

/* Measure every rendition under dir (and audio/ when res->has_audio) from its
 * index.m3u8 and files into res, then write dir/master.m3u8 from the measures. */
int sp__hls_finish(const char *dir, sp_video_ladder_result *res, sp_err *err);

#endif

/* job.h - spool-video's job handler: one video.transcode job from its record to its
 * outputs (input blob or source_url fetch, probe, poster frame, transcode, commit). */
#ifndef SPOOL_VIDEO_JOB_H
#define SPOOL_VIDEO_JOB_H

#include <stdint.h>

#include "spool/worker.h"

/* spool-video's own settings (see main.c for the options that fill them). */
typedef struct sp_video_config {
    int64_t threads;            /* codec/filter threads per job; 0: auto */
    int64_t time_limit_ms;      /* per-job time limit; 0: the preset's default */
    int64_t fetch_max_bytes;    /* source_url size limit; 0: none */
    int64_t fetch_connect_ms;   /* source_url connect timeout */
    int64_t fetch_timeout_ms;   /* source_url total timeout */
    int64_t fetch_max_redirects;
} sp_video_config;

/* The sp_job_handler for video.transcode; userdata is a const sp_video_config *.
 * Outputs: video.mp4 or video.webm, and poster.jpg unless params.thumbnail is false.
 * Failures: permanent for input that will never work (not a video, truncated or
 * corrupt, bad params, a URL that answers 404), retryable for I/O, fetch and
 * encoder set-up problems. Staging files are removed on every failure path. */
int sp_video_job_handle(sp_job_ctx *ctx, void *userdata, int slot);

#endif

/* main.c - spool-video: takes video.transcode jobs from its queues and transcodes them
 * (the worker runtime is common/worker.c; the work is job.c and the transcoder behind
 * transcode.h). */
#include <stdio.h>

#include "job.h"
#include "spool/worker.h"
#include "transcode.h"

static sp_video_config sp__cfg;

static int sp__setup(void *userdata, sp_err *err)
{
    (void)userdata;
    (void)err;
    sp_video_global_init();
    return 0;
}

int main(int argc, char **argv)
{
    sp_option extra[] = {
        {"threads", "SPOOL_VIDEO_THREADS", SP_OPT_INT, &sp__cfg.threads, "0",
         "codec and filter threads per job (0: one per core); lower it when several jobs "
         "or workers share a host",
         0, 256},
        {"time-limit", "SPOOL_VIDEO_TIME_LIMIT", SP_OPT_DURATION, &sp__cfg.time_limit_ms, "0",
         "per-job time limit, past which the job fails as retryable (0: the preset's: "
         "60m for mp4-1080p and webm-720p, 30m for mp4-720p, 20m for mp4-480p)",
         0, 7 * 86400000LL},
        {"fetch-max-bytes", "SPOOL_FETCH_MAX_BYTES", SP_OPT_SIZE, &sp__cfg.fetch_max_bytes,
         "2G", "size limit for a source_url download (0: none)", 0, INT64_MAX},
        {"fetch-connect-timeout", "SPOOL_FETCH_CONNECT_TIMEOUT", SP_OPT_DURATION,
         &sp__cfg.fetch_connect_ms, "10s", "connect timeout for a source_url download", 1,
         3600000},
        {"fetch-timeout", "SPOOL_FETCH_TIMEOUT", SP_OPT_DURATION, &sp__cfg.fetch_timeout_ms,
         "10m", "total time limit for a source_url download", 1, 86400000},
        {"fetch-max-redirects", "SPOOL_FETCH_MAX_REDIRECTS", SP_OPT_INT,
         &sp__cfg.fetch_max_redirects, "5", "redirects a source_url download may follow", 0,
         50},
    };
    sp_worker_def def = {
        .program = "spool-video",
        .summary = "Transcode video.transcode jobs (H.264/AAC MP4 or VP9/Opus WebM, poster "
                   "frames) from spool's Redis queues.",
        .kind = "video",
        .default_queues = "video",
        .handler = sp_video_job_handle,
        .userdata = &sp__cfg,
        .setup = sp__setup,
        .teardown = NULL,
    };
    return sp_worker_main(&def, extra, sizeof extra / sizeof extra[0], argc, argv);
}

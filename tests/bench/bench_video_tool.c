/* bench_video_tool.c - drive spool-video's transcoder without Redis: for the
 * benchmark (`make bench-video`) and for profiling.
 *
 *   bench_video_tool probe IN
 *   bench_video_tool transcode IN OUT [PRESET [THREADS]]
 *   bench_video_tool poster IN OUT [PRESET]
 *
 * Prints one JSON object on stdout; exits 1 with the error on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/presets.h"
#include "transcode.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_video_tool probe IN\n"
                    "       bench_video_tool transcode IN OUT [PRESET [THREADS]]\n"
                    "       bench_video_tool poster IN OUT [PRESET]\n");
    return 2;
}

int main(int argc, char **argv)
{
    sp_log_init("bench_video_tool", SP_LOG_WARN, SP_LOG_TEXT);
    sp_video_global_init();
    if (argc < 3)
        return usage();
    sp_err err = {0};
    sp_video_opts o = {0};
    const sp_preset *p = sp_preset_find(argc > 4 ? argv[4] : SP_PRESET_DEFAULT);
    if (p == NULL) {
        fprintf(stderr, "unknown preset %s\n", argv[4]);
        return 2;
    }
    if (argc > 5)
        o.threads = atoi(argv[5]);
    int rc;
    if (strcmp(argv[1], "probe") == 0) {
        char *json = NULL;
        rc = sp_video_probe(argv[2], &o, &json, &err);
        if (rc == 0)
            printf("%s\n", json);
        sp_free(json);
    } else if (strcmp(argv[1], "transcode") == 0 && argc >= 4) {
        sp_video_result r;
        rc = sp_video_transcode(argv[2], argv[3], p, &o, &r, &err);
        if (rc == 0)
            printf("{\"width\":%d,\"height\":%d,\"frames\":%lld,\"duration\":%.3f,"
                   "\"has_audio\":%s,\"bytes\":%lld,\"seconds\":%.3f,\"fps\":%.1f}\n",
                   r.width, r.height, (long long)r.frames, r.duration,
                   r.has_audio ? "true" : "false", (long long)r.bytes, r.seconds,
                   r.seconds > 0 ? r.frames / r.seconds : 0.0);
    } else if (strcmp(argv[1], "poster") == 0 && argc >= 4) {
        int w = 0, h = 0;
        rc = sp_video_poster(argv[2], argv[3], p, &o, &w, &h, &err);
        if (rc == 0)
            printf("{\"width\":%d,\"height\":%d}\n", w, h);
    } else {
        return usage();
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", sp_code_name(rc), err.msg);
        return 1;
    }
    return 0;
}

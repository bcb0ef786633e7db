/* bench_video_tool.c - spool-video's test and benchmark tool: drive the transcoder
 * without Redis (benchmark, profiling), and enqueue/inspect/cancel video.transcode jobs
 * through the real queue API the way spool-api does (integration tests, benchmark).
 *
 *   bench_video_tool probe IN
 *   bench_video_tool transcode IN OUT [PRESET [THREADS]]
 *   bench_video_tool poster IN OUT [PRESET]
 *   bench_video_tool ladder IN DIR [PRESET [THREADS [sprite]]]   (DIR: an empty directory)
 *   bench_video_tool enqueue (FILE | --url URL) [--params JSON] [--max-attempts N]
 *   bench_video_tool get ID
 *   bench_video_tool cancel ID
 *
 * The queue commands read SPOOL_REDIS_URL, SPOOL_KEY_PREFIX and the blob store's
 * settings (SPOOL_BLOB_URL with the SPOOL_S3_* and AWS_* ones, else SPOOL_DATA_DIR) as
 * the binaries do. Prints one JSON object (or the new id) on stdout; exits 1 with the error
 * on stderr. */
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/log.h"
#include "spool/presets.h"
#include "spool/queue.h"
#include "spool/util.h"
#include "transcode.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_video_tool probe IN\n"
                    "       bench_video_tool transcode IN OUT [PRESET [THREADS]]\n"
                    "       bench_video_tool poster IN OUT [PRESET]\n"
                    "       bench_video_tool ladder IN DIR [PRESET [THREADS [sprite]]]\n"
                    "       bench_video_tool enqueue (FILE | --url URL) [--params JSON] "
                    "[--max-attempts N]\n"
                    "       bench_video_tool get ID\n"
                    "       bench_video_tool cancel ID\n");
    return 2;
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && v[0] ? v : def;
}

static sp_queue *open_queue(sp_err *err)
{
    return sp_queue_open(env_or("SPOOL_REDIS_URL", "redis://127.0.0.1:6379/0"),
                         env_or("SPOOL_KEY_PREFIX", "spool:"), err);
}

/* Copy file into blob "input" of job id, as spool-api stores an upload. */
static int store_upload(const char *id, const char *file, int64_t *bytes, sp_err *err)
{
    /* SPOOL_BLOB_URL before SPOOL_DATA_DIR, as in the binaries. */
    const char *store = env_or("SPOOL_BLOB_URL", env_or("SPOOL_DATA_DIR", "./var/data"));
    sp_blobs *b = sp_blobs_open_at(store, err);
    if (b == NULL)
        return err->code;
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sp_blobs_close(b);
        return sp_err_set(err, SP_EIO, "cannot open %s", file);
    }
    sp_blob_writer *w = NULL;
    int rc = sp_blob_create(b, id, "input", 0, &w, err);
    char buf[65536];
    ssize_t n;
    while (rc == 0 && (n = read(fd, buf, sizeof buf)) > 0)
        rc = sp_blob_write(w, buf, (size_t)n, err);
    close(fd);
    if (rc == 0) {
        *bytes = sp_blob_written(w);
        rc = sp_blob_commit(w, false, NULL, err);
    } else {
        sp_blob_abort(w);
    }
    sp_blobs_close(b);
    return rc;
}

static int cmd_enqueue(int argc, char **argv, sp_err *err)
{
    const char *file = NULL, *url = NULL, *params = "{}";
    int64_t max_attempts = 3;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else if (strcmp(argv[i], "--params") == 0 && i + 1 < argc)
            params = argv[++i];
        else if (strcmp(argv[i], "--max-attempts") == 0 && i + 1 < argc)
            max_attempts = atoll(argv[++i]);
        else
            file = argv[i];
    }
    if ((file == NULL) == (url == NULL))
        return sp_err_set(err, SP_EINVAL, "give a FILE or --url URL");
    char id[SP_ID_LEN + 1];
    int rc = sp_id_new(id);
    if (rc < 0)
        return sp_err_set(err, rc, "cannot make an id");
    json_t *input = json_object();
    if (file) {
        int64_t bytes = 0;
        rc = store_upload(id, file, &bytes, err);
        if (rc < 0) {
            json_decref(input);
            return rc;
        }
        const char *base = strrchr(file, '/');
        json_object_set_new(input, "blob", json_string("input"));
        json_object_set_new(input, "bytes", json_integer(bytes));
        json_object_set_new(input, "content_type", json_string("video/mp4"));
        json_object_set_new(input, "filename", json_string(base ? base + 1 : file));
    } else {
        json_object_set_new(input, "url", json_string(url));
    }
    char *input_json = json_dumps(input, JSON_COMPACT);
    json_decref(input);
    sp_queue *q = open_queue(err);
    if (q == NULL) {
        free(input_json);
        return err->code;
    }
    sp_enqueue e = {.id = id,
                    .type = "video.transcode",
                    .queue = "video",
                    .max_attempts = max_attempts,
                    .retry_base_ms = 100,
                    .retry_cap_ms = 1000,
                    .params_json = params,
                    .input_json = input_json};
    char existing[SP_ID_LEN + 1];
    rc = sp_queue_enqueue(q, &e, existing, err);
    sp_queue_close(q);
    free(input_json);
    if (rc < 0)
        return rc;
    printf("%s\n", id);
    return 0;
}

static void set_raw(json_t *o, const char *key, const char *json)
{
    json_error_t jerr;
    json_t *v = json ? json_loads(json, JSON_DECODE_ANY, &jerr) : NULL;
    json_object_set_new(o, key, v ? v : json_null());
}

static int cmd_get(const char *id, sp_err *err)
{
    sp_queue *q = open_queue(err);
    if (q == NULL)
        return err->code;
    sp_job j;
    sp_job_init(&j);
    int rc = sp_queue_get(q, id, &j, err);
    sp_queue_close(q);
    if (rc < 0)
        return rc;
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j.id));
    json_object_set_new(o, "state", json_string(sp_state_name(j.state)));
    json_object_set_new(o, "progress", json_integer(j.progress));
    json_object_set_new(o, "attempts", json_integer(j.attempts));
    json_object_set_new(o, "max_attempts", json_integer(j.max_attempts));
    json_object_set_new(o, "worker", json_string(j.worker));
    json_object_set_new(o, "started_at", json_integer(j.started_at));
    json_object_set_new(o, "finished_at", json_integer(j.finished_at));
    if (j.has_error) {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(j.error_code));
        json_object_set_new(e, "message", json_string(j.error_message ? j.error_message : ""));
        json_object_set_new(e, "retryable", json_boolean(j.error_retryable));
        json_object_set_new(o, "error", e);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    set_raw(o, "outputs", j.outputs);
    set_raw(o, "metadata", j.metadata);
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    sp_job_clear(&j);
    return 0;
}

static int cmd_cancel(const char *id, sp_err *err)
{
    sp_queue *q = open_queue(err);
    if (q == NULL)
        return err->code;
    int rc = sp_queue_cancel(q, id, 7 * 86400000LL, err);
    sp_queue_close(q);
    if (rc >= 0)
        printf("{\"cancel\":%d}\n", rc);
    return rc < 0 ? rc : 0;
}

int main(int argc, char **argv)
{
    sp_log_init("bench_video_tool", SP_LOG_WARN, SP_LOG_TEXT);
    sp_video_global_init();
    if (argc < 3)
        return usage();
    sp_err err = {0};
    sp_video_opts o = {0};
    const char *cmd = argv[1];
    int rc;
    if (strcmp(cmd, "enqueue") == 0) {
        rc = cmd_enqueue(argc, argv, &err);
    } else if (strcmp(cmd, "get") == 0) {
        rc = cmd_get(argv[2], &err);
    } else if (strcmp(cmd, "cancel") == 0) {
        rc = cmd_cancel(argv[2], &err);
    } else if (strcmp(cmd, "probe") == 0) {
        char *json = NULL;
        rc = sp_video_probe(argv[2], &o, &json, &err);
        if (rc == 0)
            printf("%s\n", json);
        sp_free(json);
    } else if (strcmp(cmd, "ladder") == 0 && argc >= 4) {
        const sp_preset *p = sp_preset_find(argc > 4 ? argv[4] : "hls");
        if (p == NULL || p->ladder == NULL) {
            fprintf(stderr, "not a ladder preset: %s\n", argv[4]);
            return 2;
        }
        if (argc > 5)
            o.threads = atoi(argv[5]);
        sp_video_ladder_result r;
        bool sprite = argc > 6 && strcmp(argv[6], "sprite") == 0;
        rc = sp_video_ladder(argv[2], argv[3], p, &o, sprite, &r, &err);
        if (rc == 0) {
            printf("{\"frames\":%lld,\"duration\":%.3f,\"gop\":%d,\"has_audio\":%s,"
                   "\"seconds\":%.3f,\"renditions\":[",
                   (long long)r.frames, r.duration, r.gop, r.has_audio ? "true" : "false",
                   r.seconds);
            for (int i = 0; i < r.count; i++)
                printf("%s{\"name\":\"%s\",\"width\":%d,\"height\":%d,\"threads\":%d,"
                       "\"frames\":%lld,\"segments\":%d,\"bytes\":%lld,\"peak_bps\":%lld,"
                       "\"average_bps\":%lld,\"frame_rate\":%.3f,\"codecs\":\"%s\"}",
                       i ? "," : "", r.r[i].name, r.r[i].width, r.r[i].height, r.r[i].threads,
                       (long long)r.r[i].frames, r.r[i].segments, (long long)r.r[i].bytes,
                       (long long)r.r[i].peak_bps, (long long)r.r[i].average_bps,
                       r.r[i].frame_rate, r.r[i].codecs);
            printf("],\"sprite\":{\"tiles\":%d,\"interval\":%d,\"width\":%d,"
                   "\"height\":%d}}\n",
                   r.sprite.tiles, r.sprite.interval, r.sprite.width, r.sprite.height);
        }
    } else if ((strcmp(cmd, "transcode") == 0 || strcmp(cmd, "poster") == 0) && argc >= 4) {
        const sp_preset *p = sp_preset_find(argc > 4 ? argv[4] : SP_PRESET_DEFAULT);
        if (p == NULL) {
            fprintf(stderr, "unknown preset %s\n", argv[4]);
            return 2;
        }
        if (argc > 5)
            o.threads = atoi(argv[5]);
        if (strcmp(cmd, "transcode") == 0) {
            sp_video_result r;
            rc = sp_video_transcode(argv[2], argv[3], p, &o, &r, &err);
            if (rc == 0)
                printf("{\"width\":%d,\"height\":%d,\"frames\":%lld,\"duration\":%.3f,"
                       "\"has_audio\":%s,\"bytes\":%lld,\"seconds\":%.3f,\"fps\":%.1f}\n",
                       r.width, r.height, (long long)r.frames, r.duration,
                       r.has_audio ? "true" : "false", (long long)r.bytes, r.seconds,
                       r.seconds > 0 ? r.frames / r.seconds : 0.0);
        } else {
            int w = 0, h = 0;
            rc = sp_video_poster(argv[2], argv[3], p, &o, &w, &h, &err);
            if (rc == 0)
                printf("{\"width\":%d,\"height\":%d}\n", w, h);
        }
    } else {
        return usage();
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", sp_code_name(rc), err.msg);
        return 1;
    }
    return 0;
}

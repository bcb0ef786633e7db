/* job.c - the video.transcode handler (see job.h): reads the job's params and input,
 * fetches a source_url once per job, and runs the transcoder into blob staging files
 * that are committed only when everything succeeded. */
#include "job.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "spool/alloc.h"
#include "spool/buf.h"
#include "spool/fetch.h"
#include "spool/presets.h"
#include "publish.h"
#include "transcode.h"

#define SP__SOURCE_BLOB "source"
#define SP__POSTER_BLOB "poster.jpg"
#define SP__HLS_DIR "hls"
#define SP__HLS_MASTER "master.m3u8"
#define SP__SPRITE_JPG "sprite.jpg"
#define SP__SPRITE_VTT "sprite.vtt"

typedef struct sp__params {
    const sp_preset *preset;
    bool thumbnail;
    bool sprite; /* HLS presets only; on unless params.sprite is false */
} sp__params;

/* The job was asked to stop (cancel, lease lost, time limit, shutdown): the runtime
 * decides the outcome from the reason. */
static int sp__stopped(sp_job_ctx *ctx)
{
    int reason = sp_job_ctx_stop_reason(ctx);
    return reason ? reason : SP_ECANCELLED;
}

/* Record a failure from the transcoder or the blob store, classified by code. */
static int sp__fail(sp_job_ctx *ctx, int rc, const sp_err *err)
{
    if (rc == SP_ECANCELLED || sp_job_ctx_stopping(ctx))
        return sp__stopped(ctx);
    switch (rc) {
    case SP_EUNSUPPORTED:
        return sp_job_ctx_fail(ctx, rc, false, "unsupported_input", "%s", err->msg);
    case SP_EINVAL:
        return sp_job_ctx_fail(ctx, rc, false, "corrupt_input", "%s", err->msg);
    case SP_ENOMEM:
        return sp_job_ctx_fail(ctx, rc, true, "out_of_memory", "%s", err->msg);
    default:
        return sp_job_ctx_fail(ctx, rc, true, "io_error", "%s", err->msg);
    }
}

static int sp__parse_params(sp_job_ctx *ctx, sp__params *p)
{
    const sp_job *job = sp_job_ctx_job(ctx);
    p->preset = sp_preset_find(SP_PRESET_DEFAULT);
    p->thumbnail = true;
    p->sprite = false;
    if (job->params == NULL || job->params[0] == '\0')
        return 0;
    json_error_t jerr;
    json_t *root = json_loads(job->params, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        return sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params",
                               "the job's params are not a JSON object");
    }
    int rc = 0;
    json_t *preset = json_object_get(root, "preset");
    json_t *thumb = json_object_get(root, "thumbnail");
    json_t *sprite = json_object_get(root, "sprite");
    if (preset && !json_is_null(preset)) {
        const char *name = json_string_value(preset);
        p->preset = sp_preset_find(name);
        if (p->preset == NULL) {
            sp_buf names;
            sp_buf_init(&names, 1024);
            for (const sp_preset *i = sp_presets(); i->name; i++)
                sp_buf_addf(&names, "%s%s", names.len ? ", " : "", i->name);
            rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params",
                                 "unknown preset '%.64s' (use one of %s)", name ? name : "",
                                 sp_buf_cstr(&names));
            sp_buf_free(&names);
        }
    }
    if (rc == 0 && thumb && !json_is_null(thumb)) {
        if (!json_is_boolean(thumb))
            rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params",
                                 "params.thumbnail must be true or false");
        else
            p->thumbnail = json_is_true(thumb);
    }
    p->sprite = p->preset && p->preset->ladder != NULL;
    if (rc == 0 && sprite && !json_is_null(sprite)) {
        if (!json_is_boolean(sprite))
            rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params",
                                 "params.sprite must be true or false");
        else if (json_is_true(sprite) && !p->sprite)
            rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_params",
                                 "params.sprite needs an HLS preset (hls, hls-720p)");
        else
            p->sprite = json_is_true(sprite);
    }
    json_decref(root);
    return rc;
}

/* Fetch the job's source_url into its "source" blob (an earlier attempt's fetch is
 * reused by the caller). */
static int sp__fetch_source(sp_job_ctx *ctx, const sp_video_config *cfg, const char *url)
{
    const sp_job *job = sp_job_ctx_job(ctx);
    sp_err err, detail;
    sp_fetch_opts fo = {
        .max_bytes = cfg->fetch_max_bytes,
        .connect_timeout_ms = cfg->fetch_connect_ms,
        .total_timeout_ms = cfg->fetch_timeout_ms,
        .max_redirects = (int)cfg->fetch_max_redirects,
        .stop = sp_job_ctx_stop_flag(ctx),
        .outbound = sp_job_ctx_outbound(ctx),
        .detail = &detail,
    };
    int64_t bytes = 0;
    int64_t t0 = sp_mono_ms();
    int rc = sp_fetch_to_blob(sp_job_ctx_blobs(ctx), job->id, SP__SOURCE_BLOB, url, &fo,
                              &bytes, NULL, &err);
    if (rc == 0) {
        sp_info(sp_job_ctx_log(ctx), "fetched %lld bytes in %lld ms", (long long)bytes,
                (long long)(sp_mono_ms() - t0));
        return 0;
    }
    if (rc == SP_ECANCELLED || sp_job_ctx_stopping(ctx))
        return sp__stopped(ctx);
    switch (rc) {
    case SP_EUNREACHABLE: /* the job sees one message; the cause is for the operator */
        sp_warn(sp_job_ctx_log(ctx), "source_url not fetched: %s", detail.msg);
        return sp_job_ctx_fail(ctx, rc, true, "source_unreachable", "%s", err.msg);
    case SP_EFETCH:
    case SP_ETIMEDOUT:
    case SP_EIO:
    case SP_ENOMEM:
        return sp_job_ctx_fail(ctx, rc, true, "fetch_failed", "%s", err.msg);
    case SP_ETOOBIG: /* the code spool-pdf gives a dataset past its limit */
        return sp_job_ctx_fail(ctx, rc, false, "too_large", "%s", err.msg);
    default: /* bad URL, 404, other 4xx: the same URL will not work later */
        return sp_job_ctx_fail(ctx, rc, false, "fetch_failed", "%s", err.msg);
    }
}

/* The input as a local file: the uploaded blob, or the fetched source_url (fetched on
 * the first attempt into the blob "source", which later attempts reuse). */
static int sp__input(sp_job_ctx *ctx, const sp_video_config *cfg, sp_blob_local **in)
{
    const sp_job *job = sp_job_ctx_job(ctx);
    sp_blobs *blobs = sp_job_ctx_blobs(ctx);
    json_error_t jerr;
    json_t *root = job->input ? json_loads(job->input, 0, &jerr) : NULL;
    const char *blob = json_string_value(json_object_get(root, "blob"));
    const char *url = json_string_value(json_object_get(root, "url"));
    int rc = 0;
    sp_err err;
    if (!json_is_object(root) || (blob == NULL && url == NULL)) {
        rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_input",
                             "the job names no input (neither a blob nor a url)");
    } else if (blob) {
        if (!sp_blob_name_valid(blob))
            rc = sp_job_ctx_fail(ctx, SP_EINVAL, false, "invalid_input",
                                 "the job's input blob name is not valid");
        else if ((rc = sp_blob_local_open(blobs, job->id, blob, 0, in, &err)) == SP_ENOTFOUND)
            /* Retryable: a store that is not (yet) shared or mounted is a deployment
             * problem another attempt may not have. */
            rc = sp_job_ctx_fail(ctx, SP_ENOTFOUND, true, "input_missing",
                                 "the uploaded input is not in the blob store (%s): spool-api "
                                 "and spool-video must use the same store (SPOOL_BLOB_URL or "
                                 "SPOOL_DATA_DIR)",
                                 sp_blobs_describe(blobs));
        else if (rc < 0)
            rc = sp__fail(ctx, rc, &err);
    } else {
        rc = sp_blob_local_open(blobs, job->id, SP__SOURCE_BLOB, 0, in, &err);
        if (rc == 0) {
            sp_info(sp_job_ctx_log(ctx), "reusing the source fetched by an earlier attempt "
                                         "(%lld bytes)", (long long)sp_blob_local_size(*in));
        } else if (rc == SP_ENOTFOUND) {
            rc = sp__fetch_source(ctx, cfg, url);
            if (rc == 0 && (rc = sp_blob_local_open(blobs, job->id, SP__SOURCE_BLOB, 0, in,
                                                    &err)) < 0)
                rc = sp__fail(ctx, rc, &err);
        } else {
            rc = sp__fail(ctx, rc, &err);
        }
    }
    json_decref(root);
    return rc;
}

static void sp__on_progress(void *ud, int percent)
{
    sp_job_ctx_progress(ud, percent);
}

/* metadata = {"input": in, "output": out}; out may be NULL. */
static int sp__store_metadata(sp_job_ctx *ctx, const char *in, const char *out)
{
    sp_buf b;
    sp_buf_init(&b, 256 * 1024);
    int rc = sp_buf_addf(&b, "{\"input\":%s", in);
    if (rc == 0 && out)
        rc = sp_buf_addf(&b, ",\"output\":%s", out);
    if (rc == 0)
        rc = sp_buf_addc(&b, '}');
    if (rc == 0)
        rc = sp_job_ctx_set_metadata(ctx, sp_buf_cstr(&b));
    sp_buf_free(&b);
    if (rc == SP_ELOST || sp_job_ctx_stopping(ctx))
        return sp__stopped(ctx);
    if (rc < 0)
        return sp_job_ctx_fail(ctx, rc, true, "internal_error", "cannot store metadata: %s",
                               sp_strerror(rc));
    return 0;
}

/* The sprite sheet as JSON: its files, grid, tile size and interval. */
static int sp__sprite_json(sp_buf *b, const sp_video_sprite *s)
{
    return sp_buf_addf(b,
                       "{\"image\":\"" SP__HLS_DIR "/" SP__SPRITE_JPG "\",\"vtt\":\"" SP__HLS_DIR
                       "/" SP__SPRITE_VTT "\",\"interval\":%d,\"tiles\":%d,\"columns\":%d,"
                       "\"rows\":%d,\"tile_width\":%d,\"tile_height\":%d,\"width\":%d,"
                       "\"height\":%d}",
                       s->interval, s->tiles, s->columns, s->rows, s->tile_width, s->tile_height,
                       s->width, s->height);
}

/* The ladder's measures as JSON: {"duration":..,"gop":..,"renditions":[...]}. */
static int sp__ladder_json(sp_buf *b, const sp_video_ladder_result *res, int files,
                           int64_t bytes)
{
    int rc = sp_buf_addf(b, "{\"duration\":%.3f,\"gop\":%d,\"files\":%d,\"bytes_total\":%lld,"
                            "\"audio\":%s,\"renditions\":[",
                         res->duration, res->gop, files, (long long)bytes,
                         res->has_audio ? "true" : "false");
    for (int i = 0; rc == 0 && i < res->count; i++) {
        const sp_video_rendition *r = &res->r[i];
        rc = sp_buf_addf(b,
                         "%s{\"name\":\"%s\",\"playlist\":\"" SP__HLS_DIR "/%s/index.m3u8\","
                         "\"width\":%d,\"height\":%d,\"bandwidth\":%lld,"
                         "\"average_bandwidth\":%lld,\"codecs\":\"%s\",\"frame_rate\":%.3f,"
                         "\"segments\":%d,\"bytes\":%lld}",
                         i ? "," : "", r->name, r->name, r->width, r->height,
                         (long long)r->peak_bps, (long long)r->average_bps, r->codecs,
                         r->frame_rate, r->segments, (long long)r->bytes);
    }
    if (rc == 0)
        rc = sp_buf_adds(b, "],\"sprite\":");
    if (rc == 0 && res->sprite.tiles > 0)
        rc = sp__sprite_json(b, &res->sprite);
    else if (rc == 0)
        rc = sp_buf_adds(b, "null");
    return rc == 0 ? sp_buf_addc(b, '}') : rc;
}

/* List the sprite sheet's two files (published with the set) as outputs. */
static int sp__sprite_outputs(sp_job_ctx *ctx, const char *dir, const sp_video_sprite *s)
{
    struct stat st;
    char path[PATH_MAX + 32], extra[256];
    snprintf(path, sizeof path, "%s/" SP__SPRITE_VTT, dir);
    int n = snprintf(extra, sizeof extra,
                     "{\"interval\":%d,\"tiles\":%d,\"image\":\"" SP__HLS_DIR
                     "/" SP__SPRITE_JPG "\"}",
                     s->interval, s->tiles);
    int rc = sp_job_ctx_add_output(ctx, SP__HLS_DIR "/" SP__SPRITE_VTT, "text/vtt",
                                   stat(path, &st) == 0 ? (int64_t)st.st_size : 0,
                                   n > 0 && (size_t)n < sizeof extra ? extra : NULL);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof path, "%s/" SP__SPRITE_JPG, dir);
    n = snprintf(extra, sizeof extra,
                 "{\"width\":%d,\"height\":%d,\"columns\":%d,\"rows\":%d,"
                 "\"tile_width\":%d,\"tile_height\":%d}",
                 s->width, s->height, s->columns, s->rows, s->tile_width, s->tile_height);
    return sp_job_ctx_add_output(ctx, SP__HLS_DIR "/" SP__SPRITE_JPG, "image/jpeg",
                                 stat(path, &st) == 0 ? (int64_t)st.st_size : 0,
                                 n > 0 && (size_t)n < sizeof extra ? extra : NULL);
}

/* An HLS preset: the ladder into a work directory, its measures into the metadata, the
 * poster (staged already, may be NULL) and the whole set published, master last. The
 * job lists hls/master.m3u8 (spool-api serves the files under hls/ through it). */
static int sp__hls(sp_job_ctx *ctx, const char *in_path, const sp__params *params,
                   const sp_video_opts *vo, const char *in_meta, sp_blob_writer **poster,
                   int pw, int ph)
{
    const sp_job *job = sp_job_ctx_job(ctx);
    const sp_preset *p = params->preset;
    sp_blobs *blobs = sp_job_ctx_blobs(ctx);
    char dir[PATH_MAX] = "";
    sp_err err;
    sp_buf meta;
    sp_buf_init(&meta, 64 * 1024);
    sp_video_ladder_result res;
    int files = 0;
    int64_t bytes = 0, poster_bytes = 0;
    int rc = sp_blobs_work_dir(blobs, job->id, dir, sizeof dir, &err);
    if (rc == 0)
        rc = sp_video_ladder(in_path, dir, p, vo, params->sprite, &res, &err);
    if (rc < 0) {
        rc = sp__fail(ctx, rc, &err);
        goto out;
    }
    sp_info(sp_job_ctx_log(ctx), "encoded %d renditions of %lld frames (%.2f s) in %.2f s",
            res.count, (long long)res.frames, res.duration, res.seconds);
    if (*poster) {
        rc = sp_blob_commit(*poster, true, &poster_bytes, &err);
        *poster = NULL;
        if (rc < 0) {
            rc = sp__fail(ctx, rc, &err);
            goto out;
        }
    }
    rc = sp_video_publish_dir(blobs, job->id, dir, SP__HLS_DIR, SP__HLS_MASTER,
                              sp_job_ctx_stop_flag(ctx), &files, &bytes, &err);
    if (rc < 0) {
        rc = sp__fail(ctx, rc, &err);
        goto out;
    }
    rc = sp__ladder_json(&meta, &res, files, bytes);
    if (rc == 0)
        rc = sp__store_metadata(ctx, in_meta, sp_buf_cstr(&meta));
    if (rc == 0 && sp_job_ctx_stopping(ctx))
        rc = sp__stopped(ctx);
    if (rc < 0) {
        sp_video_unpublish_dir(blobs, job->id, dir, SP__HLS_DIR); /* all or nothing */
        goto out;
    }
    struct stat st;
    char master[PATH_MAX + 32];
    snprintf(master, sizeof master, "%s/%s", dir, SP__HLS_MASTER);
    rc = sp_job_ctx_add_output(ctx, SP__HLS_DIR "/" SP__HLS_MASTER, p->content_type,
                               stat(master, &st) == 0 ? (int64_t)st.st_size : 0,
                               sp_buf_cstr(&meta));
    if (rc == 0 && res.sprite.tiles > 0)
        rc = sp__sprite_outputs(ctx, dir, &res.sprite);
    if (rc == 0 && poster_bytes > 0) {
        char extra[128];
        int n = snprintf(extra, sizeof extra, "{\"width\":%d,\"height\":%d}", pw, ph);
        rc = sp_job_ctx_add_output(ctx, SP__POSTER_BLOB, "image/jpeg", poster_bytes,
                                   n > 0 && (size_t)n < sizeof extra ? extra : NULL);
    }
    if (rc < 0) {
        sp_video_unpublish_dir(blobs, job->id, dir, SP__HLS_DIR);
        rc = sp_job_ctx_fail(ctx, rc, true, "internal_error", "cannot list the outputs: %s",
                             sp_strerror(rc));
    }
out:
    sp_blobs_work_dir_remove(dir);
    sp_buf_free(&meta);
    return rc;
}

int sp_video_job_handle(sp_job_ctx *ctx, void *userdata, int slot)
{
    (void)slot;
    const sp_video_config *cfg = userdata;
    const sp_job *job = sp_job_ctx_job(ctx);
    const sp_logctx *log = sp_job_ctx_log(ctx);
    sp_blobs *blobs = sp_job_ctx_blobs(ctx);
    if (strcmp(job->type, "video.transcode") != 0)
        return sp_job_ctx_fail(ctx, SP_EUNSUPPORTED, false, "unsupported_type",
                               "spool-video does not run %s jobs (check the routing table)",
                               job->type);
    sp__params params;
    int rc = sp__parse_params(ctx, &params);
    if (rc < 0)
        return rc;
    const sp_preset *p = params.preset;
    sp_job_ctx_set_time_limit(ctx, cfg->time_limit_ms > 0 ? cfg->time_limit_ms
                                                          : p->time_limit_ms);
    sp_blob_local *input = NULL;
    rc = sp__input(ctx, cfg, &input);
    if (rc < 0)
        return rc;
    const char *in_path = sp_blob_local_path(input);

    sp_video_opts vo = {.threads = (int)cfg->threads,
                        .stop = sp_job_ctx_stop_flag(ctx),
                        .progress = sp__on_progress,
                        .ud = ctx,
                        .log = log};
    sp_err err;
    char *in_meta = NULL, *out_meta = NULL;
    sp_blob_writer *poster = NULL, *video = NULL;
    int pw = 0, ph = 0;
    sp_video_result res;
    char video_name[32];
    snprintf(video_name, sizeof video_name, "video.%s", p->extension);

    rc = sp_video_probe(in_path, &vo, &in_meta, &err);
    if (rc < 0) {
        rc = sp__fail(ctx, rc, &err);
        goto out;
    }
    rc = sp__store_metadata(ctx, in_meta, NULL);
    if (rc < 0)
        goto out;
    if (params.thumbnail) {
        rc = sp_blob_create_file(blobs, job->id, SP__POSTER_BLOB, &poster, &err);
        if (rc == 0)
            rc = sp_video_poster(in_path, sp_blob_staging_path(poster), p, &vo, &pw, &ph, &err);
        if (rc < 0) {
            rc = sp__fail(ctx, rc, &err);
            goto out;
        }
    }
    if (p->ladder) {
        rc = sp__hls(ctx, in_path, &params, &vo, in_meta, &poster, pw, ph);
        goto out;
    }
    rc = sp_blob_create_file(blobs, job->id, video_name, &video, &err);
    if (rc == 0)
        rc = sp_video_transcode(in_path, sp_blob_staging_path(video), p, &vo, &res, &err);
    if (rc < 0) {
        rc = sp__fail(ctx, rc, &err);
        goto out;
    }
    sp_info(log, "encoded %lld frames (%dx%d, %.2f s) in %.2f s: %.1f fps, %lld bytes",
            (long long)res.frames, res.width, res.height, res.duration, res.seconds,
            res.seconds > 0 ? res.frames / res.seconds : 0.0, (long long)res.bytes);
    /* The output's own probe, for the record (not fatal: the video is written). */
    if (sp_video_probe(sp_blob_staging_path(video), &vo, &out_meta, &err) < 0)
        sp_warn(log, "cannot probe the output: %s", err.msg);
    rc = sp__store_metadata(ctx, in_meta, out_meta);
    if (rc < 0)
        goto out;
    if (sp_job_ctx_stopping(ctx)) {
        rc = sp__stopped(ctx);
        goto out;
    }

    /* Everything is written: make the outputs visible. */
    int64_t poster_bytes = 0, video_bytes = 0;
    rc = sp_blob_commit(video, true, &video_bytes, &err);
    video = NULL;
    if (rc == 0 && poster) {
        rc = sp_blob_commit(poster, true, &poster_bytes, &err);
        poster = NULL;
    }
    if (rc < 0) {
        rc = sp__fail(ctx, rc, &err);
        goto out;
    }
    char extra[128];
    int n = snprintf(extra, sizeof extra, "{\"width\":%d,\"height\":%d,\"duration\":%.3f}",
                     res.width, res.height, res.duration);
    rc = sp_job_ctx_add_output(ctx, video_name, p->content_type, video_bytes,
                               n > 0 && (size_t)n < sizeof extra ? extra : NULL);
    if (rc == 0 && params.thumbnail) {
        n = snprintf(extra, sizeof extra, "{\"width\":%d,\"height\":%d}", pw, ph);
        rc = sp_job_ctx_add_output(ctx, SP__POSTER_BLOB, "image/jpeg", poster_bytes,
                                   n > 0 && (size_t)n < sizeof extra ? extra : NULL);
    }
    if (rc < 0)
        rc = sp_job_ctx_fail(ctx, rc, true, "internal_error", "cannot list the outputs: %s",
                             sp_strerror(rc));
out:
    sp_blob_abort(poster);
    sp_blob_abort(video);
    sp_blob_local_close(input);
    sp_free(in_meta);
    sp_free(out_meta);
    return rc;
}

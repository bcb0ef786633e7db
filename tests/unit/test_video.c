/* test_video.c - spool-video's transcoder on clips the set-up makes with the ffmpeg
 * command (never downloaded): probe, H.264/AAC and VP9/Opus outputs checked with
 * ffprobe, rotation, odd sizes, variable frame rate, 5.1 sound, poster frames, bad input
 * (truncated, not a video), cancel, and twenty jobs in one process (leaks show under
 * `make sanitize`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/presets.h"
#include "spool/util.h"
#include "transcode.h"

static char dir[256];

static const char *path(const char *name)
{
    static _Thread_local char bufs[4][512];
    static _Thread_local int k;
    char *b = bufs[k++ % 4];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "# command failed (%d): %s\n", rc, cmd);
    return rc;
}

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

#define ASSERT_CONTAINS(hay, needle)                                                          \
    do {                                                                                      \
        if (strstr((hay), (needle)) == NULL)                                                  \
            fail_msg("expected \"%s\" to contain \"%s\"", (hay), (needle));                  \
    } while (0)

/* ---- ffprobe -------------------------------------------------------------------- */

static json_t *ffprobe(const char *file)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -print_format json -show_format -show_streams '%s'", file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    json_error_t jerr;
    json_t *j = json_loadf(p, 0, &jerr);
    pclose(p);
    if (j == NULL)
        fail_msg("ffprobe %s: %s", file, jerr.text);
    return j;
}

/* The first stream of codec_type type, or NULL. */
static json_t *stream(json_t *probe, const char *type)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(probe, "streams"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "codec_type")), type) == 0)
            return s;
    }
    return NULL;
}

static const char *sfield(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

static int ifield(json_t *o, const char *k)
{
    return (int)json_integer_value(json_object_get(o, k));
}

static double dfield(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? atof(json_string_value(v)) : json_number_value(v);
}

/* Top-level boxes of an MP4 in order, as "ftyp moov free mdat ". */
static void mp4_boxes(const char *file, char *out, size_t n)
{
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    out[0] = '\0';
    size_t len = 0;
    unsigned char h[16];
    long pos = 0;
    while (fseek(f, pos, SEEK_SET) == 0 && fread(h, 1, 8, f) == 8 && len + 6 < n) {
        uint64_t size = ((uint64_t)h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3];
        if (size == 1) {
            if (fread(h + 8, 1, 8, f) != 8)
                break;
            size = 0;
            for (int i = 8; i < 16; i++)
                size = (size << 8) | h[i];
        }
        len += (size_t)snprintf(out + len, n - len, "%.4s ", (const char *)h + 4);
        if (size < 8)
            break;
        pos += (long)size;
    }
    fclose(f);
}

/* PSNR (dB, average over frames) between two videos, from ffmpeg's psnr filter. */
static double psnr(const char *a, const char *b)
{
    char cmd[1536];
    snprintf(cmd, sizeof cmd,
             "ffmpeg -v info -nostats -i '%s' -i '%s' -lavfi '[0:v][1:v]psnr' -f null - 2>&1 "
             "| grep -o 'average:[0-9.inf]*' | tail -1",
             a, b);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[128] = "";
    if (fgets(line, sizeof line, p) == NULL)
        line[0] = '\0';
    pclose(p);
    if (strncmp(line, "average:inf", 11) == 0)
        return INFINITY;
    return strncmp(line, "average:", 8) == 0 ? atof(line + 8) : 0;
}

/* Mean luma of an image (0-255), from ffmpeg's signalstats filter. */
static double mean_luma(const char *image)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "ffprobe -v error -f lavfi 'movie=%s,signalstats' -show_entries "
             "frame_tags=lavfi.signalstats.YAVG -of csv=p=0",
             image);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[128] = "";
    if (fgets(line, sizeof line, p) == NULL)
        line[0] = '\0';
    pclose(p);
    return atof(line);
}

/* ---- progress recording --------------------------------------------------------- */

typedef struct progress_log {
    int n;
    int v[4096];
    const sp_flag *stop_flag;
    sp_flag *stop_at_percent_flag;
    int stop_at;
} progress_log;

static void on_progress(void *ud, int pct)
{
    progress_log *l = ud;
    if (l->n < 4096)
        l->v[l->n++] = pct;
    if (l->stop_at_percent_flag && pct >= l->stop_at)
        *l->stop_at_percent_flag = 1;
}

/* ---- set-up: the clips ------------------------------------------------------------ */

#define SRC "-f lavfi -i testsrc2=size=%s:rate=%d:duration=%g"
#define SINE "-f lavfi -i sine=frequency=440:sample_rate=%d:duration=%g"
#define FF "ffmpeg -y -v error -nostdin "

static int make_clips(void **state)
{
    (void)state;
    sp_log_init("test_video", SP_LOG_ERROR, SP_LOG_TEXT);
    sp_video_global_init();
    snprintf(dir, sizeof dir, "/tmp/spool-test-video-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    int rc = 0;
    rc |= run(FF SRC " " SINE " -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac "
                 "-shortest -movflags +faststart '%s'",
              "320x240", 25, 2.0, 48000, 2.0, path("av.mp4"));
    rc |= run(FF SRC " -c:v libx264 -preset ultrafast -pix_fmt yuv420p '%s'", "320x240", 25, 2.0,
              path("noaudio.mp4"));
    /* A phone held upright: landscape pixels with a 90 degree display matrix. */
    rc |= run(FF "-i '%s' -c copy -metadata:s:v:0 rotate=90 '%s'", path("av.mp4"),
              path("rotated.mp4"));
    rc |= run(FF SRC " -vf scale=321:241 -c:v libx264 -preset ultrafast -pix_fmt yuv444p '%s'",
              "320x240", 25, 2.0, path("odd.mp4"));
    /* Variable frame rate: 30 fps, then 15, then 60. */
    rc |= run(FF SRC " -vf \"setpts='if(lt(N,30),N,if(lt(N,60),30+(N-30)*2,90+(N-60)/2))/(30*TB)'\" "
                 "-fps_mode vfr -c:v libx264 -preset ultrafast '%s'",
              "320x240", 30, 3.0, path("vfr.mp4"));
    rc |= run(FF SRC " " SINE " -filter_complex '[1:a]pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0[a]' "
                 "-map 0:v -map '[a]' -c:v libx264 -preset ultrafast -c:a aac '%s'",
              "320x240", 30, 2.0, 44100, 2.0, path("surround.mp4"));
    rc |= run(FF SINE " -c:a aac '%s'", 48000, 2.0, path("audioonly.m4a"));
    rc |= run(FF "-f lavfi -i color=black:size=320x240:rate=25:duration=1.5 " SRC
                 " -filter_complex '[0:v][1:v]concat=n=2:v=1[v]' -map '[v]' -c:v libx264 "
                 "-preset ultrafast -pix_fmt yuv420p '%s'",
              "320x240", 25, 2.5, path("blackstart.mp4"));
    rc |= run(FF SRC " " SINE " -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac "
                 "-shortest '%s'",
              "1280x720", 30, 4.0, 48000, 4.0, path("hd.mp4"));
    /* Truncated: moov at the end (cut before it), and faststart cut mid-data. */
    rc |= run("head -c 40000 '%s' > '%s'", path("noaudio.mp4"), path("cut_nomoov.mp4"));
    rc |= run(FF SRC " -c:v libx264 -preset ultrafast -movflags +faststart '%s' && head -c 60000 "
                 "'%s' > '%s'",
              "320x240", 25, 4.0, path("long_fs.mp4"), path("long_fs.mp4"),
              path("cut_faststart.mp4"));
    rc |= run("printf 'hello, this is not a video\\n' > '%s'", path("text.mp4"));
    /* Names that lie: MPEG-TS called .mp4, WebM called .mov, MP4 called .ts. */
    rc |= run(FF SRC " -c:v libx264 -preset ultrafast -pix_fmt yuv420p -f mpegts '%s'", "320x240",
              25, 1.0, path("ts_named.mp4"));
    rc |= run(FF SRC " -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -f webm '%s'", "320x240", 25,
              1.0, path("webm_named.mov"));
    rc |= run("cp '%s' '%s'", path("noaudio.mp4"), path("mp4_named.ts"));
    /* Empty, and an MPEG-TS cut inside a packet. */
    rc |= run(": > '%s'", path("empty.mp4"));
    rc |= run("head -c 50001 '%s' > '%s'", path("ts_named.mp4"), path("cut.ts"));
    /* Inputs that make libavformat open other files or the network. */
    rc |= run("printf '#EXTM3U\\n#EXT-X-TARGETDURATION:2\\n#EXTINF:2,\\nfile://%s\\n"
              "#EXT-X-ENDLIST\\n' > '%s'",
              path("av.mp4"), path("playlist.m3u8"));
    rc |= run("printf 'ffconcat version 1.0\\nfile %s\\n' > '%s'", path("av.mp4"),
              path("list.ffconcat"));
    return rc == 0 ? 0 : -1;
}

static int remove_clips(void **state)
{
    (void)state;
    if (dir[0])
        run("rm -rf '%s'", dir);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_output_size_keeps_aspect_never_upscales_even(void **state)
{
    (void)state;
    int w, h;
    sp_video_output_size(1920, 1080, 720, &w, &h);
    assert_int_equal(w, 1280);
    assert_int_equal(h, 720);
    sp_video_output_size(1080, 1920, 720, &w, &h); /* portrait: the short side is 720 */
    assert_int_equal(w, 720);
    assert_int_equal(h, 1280);
    sp_video_output_size(321, 241, 720, &w, &h); /* never upscaled; made even */
    assert_int_equal(w, 320);
    assert_int_equal(h, 240);
    sp_video_output_size(640, 360, 1080, &w, &h);
    assert_int_equal(w, 640);
    assert_int_equal(h, 360);
    sp_video_output_size(1281, 721, 480, &w, &h);
    assert_int_equal(w, 852);
    assert_int_equal(h, 480);
    sp_video_output_size(3, 1, 480, &w, &h);
    assert_int_equal(w, 6);
    assert_int_equal(h, 2);
}

static void test_probe_describes_container_and_streams(void **state)
{
    (void)state;
    char *json = NULL;
    sp_err err;
    assert_int_equal(sp_video_probe(path("av.mp4"), NULL, &json, &err), 0);
    json_error_t jerr;
    json_t *j = json_loads(json, 0, &jerr);
    assert_non_null(j);
    assert_string_equal(sfield(j, "container"), "mp4");
    assert_true(fabs(dfield(j, "duration") - 2.0) < 0.05);
    assert_true(ifield(j, "size") > 0);
    assert_int_equal(ifield(j, "streams"), 2);
    json_t *v = json_object_get(j, "video");
    assert_string_equal(sfield(v, "codec"), "h264");
    assert_int_equal(ifield(v, "width"), 320);
    assert_int_equal(ifield(v, "height"), 240);
    assert_true(fabs(dfield(v, "frame_rate") - 25.0) < 0.01);
    assert_int_equal(ifield(v, "rotation"), 0);
    assert_string_equal(sfield(v, "pix_fmt"), "yuv420p");
    json_t *a = json_object_get(j, "audio");
    assert_string_equal(sfield(a, "codec"), "aac");
    assert_int_equal(ifield(a, "sample_rate"), 48000);
    assert_int_equal(ifield(a, "channels"), 1);
    json_decref(j);
    sp_free(json);

    assert_int_equal(sp_video_probe(path("rotated.mp4"), NULL, &json, &err), 0);
    j = json_loads(json, 0, &jerr);
    v = json_object_get(j, "video");
    assert_int_equal(ifield(v, "display_width"), 240);
    assert_int_equal(ifield(v, "display_height"), 320);
    assert_int_not_equal(ifield(v, "rotation"), 0);
    assert_true(json_is_null(json_object_get(json_object_get(j, "audio"), "codec")) ||
                json_object_get(j, "audio") != NULL);
    json_decref(j);
    sp_free(json);
}

/* Transcode in to out with preset and check what ffprobe sees. */
static json_t *transcode_ok(const char *in, const char *out, const char *preset,
                            sp_video_result *res)
{
    sp_err err = {0};
    int rc = sp_video_transcode(in, out, sp_preset_find(preset), NULL, res, &err);
    if (rc != 0)
        fail_msg("transcode %s: %s (%s)", in, err.msg, sp_code_name(rc));
    return ffprobe(out);
}

/* The video stream's duration in the input and output differ by at most one frame. */
static void assert_same_duration(const char *in, json_t *outp, double fps)
{
    json_t *inp = ffprobe(in);
    double din = dfield(stream(inp, "video"), "duration");
    double dout = dfield(stream(outp, "video"), "duration");
    if (fabs(din - dout) > 1.0 / fps + 1e-6)
        fail_msg("video duration %.4f s, input %.4f s: more than one frame apart", dout, din);
    json_decref(inp);
}

static void test_mp4_is_h264_aac_faststart_with_progress(void **state)
{
    (void)state;
    progress_log pl = {0};
    sp_video_opts o = {.progress = on_progress, .ud = &pl};
    sp_video_result res;
    sp_err err;
    assert_int_equal(sp_video_transcode(path("hd.mp4"), path("hd_out.mp4"),
                                        sp_preset_find("mp4-480p"), &o, &res, &err),
                     0);
    json_t *p = ffprobe(path("hd_out.mp4"));
    json_t *v = stream(p, "video"), *a = stream(p, "audio");
    assert_non_null(v);
    assert_non_null(a);
    assert_string_equal(sfield(v, "codec_name"), "h264");
    assert_string_equal(sfield(v, "pix_fmt"), "yuv420p");
    assert_int_equal(ifield(v, "width"), 854); /* as scale=-2:480 */
    assert_int_equal(ifield(v, "height"), 480);
    assert_string_equal(sfield(a, "codec_name"), "aac");
    assert_int_equal(atoi(sfield(a, "sample_rate")), 48000);
    assert_same_duration(path("hd.mp4"), p, 30);
    assert_int_equal(res.width, 854);
    assert_int_equal(res.frames, 120);
    assert_true(res.has_audio);
    char boxes[256];
    mp4_boxes(path("hd_out.mp4"), boxes, sizeof boxes);
    const char *moov = strstr(boxes, "moov"), *mdat = strstr(boxes, "mdat");
    if (moov == NULL || mdat == NULL || moov > mdat)
        fail_msg("boxes \"%s\": moov must come before mdat (+faststart)", boxes);
    /* Progress: starts at 0, never goes back, below 100 until the end, ends at 100. */
    assert_true(pl.n >= 3);
    assert_int_equal(pl.v[0], 0);
    for (int i = 1; i < pl.n; i++) {
        assert_true(pl.v[i] >= pl.v[i - 1]);
        if (i < pl.n - 1)
            assert_true(pl.v[i] < 100);
    }
    assert_int_equal(pl.v[pl.n - 1], 100);
    json_decref(p);
}

static void test_mp4_without_audio(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("noaudio.mp4"), path("noaudio_out.mp4"), "mp4-720p", &res);
    assert_non_null(stream(p, "video"));
    assert_null(stream(p, "audio"));
    assert_false(res.has_audio);
    assert_int_equal(ifield(stream(p, "video"), "width"), 320);
    assert_same_duration(path("noaudio.mp4"), p, 25);
    json_decref(p);
}

static void test_rotated_input_comes_out_upright(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("rotated.mp4"), path("rotated_out.mp4"), "mp4-720p", &res);
    json_t *v = stream(p, "video");
    assert_int_equal(ifield(v, "width"), 240);
    assert_int_equal(ifield(v, "height"), 320);
    /* No display matrix left: the pixels themselves are upright. */
    assert_null(json_object_get(v, "side_data_list"));
    /* The same picture as the ffmpeg command's autorotate gives. */
    assert_int_equal(run(FF "-i '%s' -an -c:v libx264 -preset ultrafast -qp 0 '%s'",
                         path("rotated.mp4"), path("rotated_ref.mp4")),
                     0);
    double db = psnr(path("rotated_out.mp4"), path("rotated_ref.mp4"));
    if (!(db > 30))
        fail_msg("PSNR against ffmpeg's autorotate %.1f dB, expected > 30", db);
    json_decref(p);
}

static void test_odd_size_gives_even_yuv420p(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("odd.mp4"), path("odd_out.mp4"), "mp4-720p", &res);
    json_t *v = stream(p, "video");
    assert_int_equal(ifield(v, "width"), 320);
    assert_int_equal(ifield(v, "height"), 240);
    assert_string_equal(sfield(v, "pix_fmt"), "yuv420p");
    json_decref(p);
}

static void test_variable_frame_rate_keeps_duration(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("vfr.mp4"), path("vfr_out.mp4"), "mp4-720p", &res);
    assert_same_duration(path("vfr.mp4"), p, 30);
    assert_string_equal(sfield(stream(p, "video"), "r_frame_rate"), "30/1");
    json_decref(p);
}

static void test_surround_is_mixed_to_stereo_48k(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("surround.mp4"), path("surround_out.mp4"), "mp4-720p", &res);
    json_t *a = stream(p, "audio");
    assert_non_null(a);
    assert_int_equal(ifield(a, "channels"), 2);
    assert_int_equal(atoi(sfield(a, "sample_rate")), 48000);
    double dv = dfield(stream(p, "video"), "duration"), da = dfield(a, "duration");
    if (fabs(dv - da) > 0.05)
        fail_msg("audio %.3f s and video %.3f s differ", da, dv);
    json_decref(p);
}

static void test_webm_is_vp9_opus(void **state)
{
    (void)state;
    sp_video_result res;
    json_t *p = transcode_ok(path("av.mp4"), path("av_out.webm"), "webm-720p", &res);
    assert_string_equal(sfield(json_object_get(p, "format"), "format_name"), "matroska,webm");
    assert_string_equal(sfield(stream(p, "video"), "codec_name"), "vp9");
    assert_string_equal(sfield(stream(p, "audio"), "codec_name"), "opus");
    double d = dfield(json_object_get(p, "format"), "duration");
    assert_true(fabs(d - 2.0) < 0.1);
    json_decref(p);
}

static void expect_failure(const char *in, int code, const char *words)
{
    sp_err err = {0};
    sp_video_result res;
    const char *out = path("failed_out.mp4");
    run("touch '%s'", out); /* as a blob staging file would exist */
    int rc = sp_video_transcode(in, out, sp_preset_find("mp4-720p"), NULL, &res, &err);
    assert_int_equal(rc, code);
    ASSERT_CONTAINS(err.msg, words);
    assert_false(exists(out));
}

static void test_truncated_input_is_a_permanent_error(void **state)
{
    (void)state;
    expect_failure(path("cut_nomoov.mp4"), SP_EINVAL, "truncated or corrupt");
    expect_failure(path("cut_faststart.mp4"), SP_EINVAL, "truncated");
}

static void test_text_file_is_not_a_video(void **state)
{
    (void)state;
    expect_failure(path("text.mp4"), SP_EUNSUPPORTED, "not a video file");
    char *json = NULL;
    sp_err err;
    assert_int_equal(sp_video_probe(path("text.mp4"), NULL, &json, &err), SP_EUNSUPPORTED);
    assert_null(json);
}

static void test_playlists_and_scripts_are_refused(void **state)
{
    (void)state;
    expect_failure(path("playlist.m3u8"), SP_EUNSUPPORTED, "playlist");
    expect_failure(path("list.ffconcat"), SP_EUNSUPPORTED, "playlist");
}

static void test_audio_only_is_not_a_video(void **state)
{
    (void)state;
    expect_failure(path("audioonly.m4a"), SP_EUNSUPPORTED, "input is audio only (aac sound");
    /* The probe still says what it is (the job's metadata). */
    char *json = NULL;
    sp_err err = {0};
    assert_int_equal(sp_video_probe(path("audioonly.m4a"), NULL, &json, &err), 0);
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr);
    assert_non_null(root);
    assert_true(json_is_null(json_object_get(root, "video")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "audio"),
                                                          "codec")),
                        "aac");
    json_decref(root);
    sp_free(json);
}

static void test_names_that_lie_are_probed_by_content(void **state)
{
    (void)state;
    const char *cases[][2] = {{"ts_named.mp4", "mpegts"}, {"webm_named.mov", "webm"},
                              {"mp4_named.ts", "mp4"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *json = NULL;
        sp_err err = {0};
        assert_int_equal(sp_video_probe(path(cases[i][0]), NULL, &json, &err), 0);
        json_error_t jerr;
        json_t *root = json_loads(json, 0, &jerr);
        assert_non_null(root);
        assert_string_equal(json_string_value(json_object_get(root, "container")), cases[i][1]);
        json_decref(root);
        sp_free(json);
        sp_video_result res;
        assert_int_equal(sp_video_transcode(path(cases[i][0]), path("lie_out.mp4"),
                                            sp_preset_find("mp4-480p"), NULL, &res, &err),
                         0);
        assert_int_equal(res.width, 320);
    }
}

static void test_empty_and_cut_ts_are_permanent_errors(void **state)
{
    (void)state;
    expect_failure(path("empty.mp4"), SP_EINVAL, "input file is empty (0 bytes)");
    expect_failure(path("cut.ts"), SP_EINVAL, "ends inside a packet");
}

static void test_missing_input_or_unwritable_output_is_io(void **state)
{
    (void)state;
    sp_err err;
    assert_int_equal(sp_video_transcode(path("nope.mp4"), path("x.mp4"),
                                        sp_preset_find("mp4-720p"), NULL, NULL, &err),
                     SP_EIO);
    assert_int_equal(sp_video_transcode(path("av.mp4"), "/nonexistent-dir/x.mp4",
                                        sp_preset_find("mp4-720p"), NULL, NULL, &err),
                     SP_EIO);
}

typedef struct stopper {
    sp_flag flag;
    int after_ms;
    int64_t set_at;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    usleep((useconds_t)s->after_ms * 1000);
    s->set_at = sp_mono_ms();
    s->flag = 1;
    return NULL;
}

static void test_stop_flag_cancels_within_a_second_and_removes_output(void **state)
{
    (void)state;
    stopper s = {0, 300, 0};
    sp_video_opts o = {.threads = 1, .stop = &s.flag};
    pthread_t t;
    pthread_create(&t, NULL, stop_later, &s);
    sp_err err;
    int rc = sp_video_transcode(path("hd.mp4"), path("cancel_out.mp4"),
                                sp_preset_find("mp4-720p"), &o, NULL, &err);
    int64_t done = sp_mono_ms();
    pthread_join(t, NULL);
    assert_int_equal(rc, SP_ECANCELLED);
    assert_false(exists(path("cancel_out.mp4")));
    if (done - s.set_at > 1000)
        fail_msg("stopped %lld ms after the flag was set", (long long)(done - s.set_at));
}

static void test_poster_skips_black_frames(void **state)
{
    (void)state;
    sp_err err;
    int w = 0, h = 0;
    assert_int_equal(sp_video_poster(path("blackstart.mp4"), path("poster.jpg"),
                                     sp_preset_find("mp4-720p"), NULL, &w, &h, &err),
                     0);
    assert_int_equal(w, 320);
    assert_int_equal(h, 240);
    json_t *p = ffprobe(path("poster.jpg"));
    assert_string_equal(sfield(stream(p, "video"), "codec_name"), "mjpeg");
    assert_int_equal(ifield(stream(p, "video"), "width"), 320);
    json_decref(p);
    double y = mean_luma(path("poster.jpg"));
    if (y < 40)
        fail_msg("poster mean luma %.1f: a black frame", y);
}

static void test_poster_of_rotated_video_is_upright(void **state)
{
    (void)state;
    sp_err err;
    int w = 0, h = 0;
    assert_int_equal(sp_video_poster(path("rotated.mp4"), path("poster_rot.jpg"),
                                     sp_preset_find("mp4-720p"), NULL, &w, &h, &err),
                     0);
    assert_int_equal(w, 240);
    assert_int_equal(h, 320);
    json_t *p = ffprobe(path("poster_rot.jpg"));
    assert_int_equal(ifield(stream(p, "video"), "width"), 240);
    assert_int_equal(ifield(stream(p, "video"), "height"), 320);
    json_decref(p);
    assert_int_equal(sp_video_poster(path("text.mp4"), path("poster_bad.jpg"),
                                     sp_preset_find("mp4-720p"), NULL, NULL, NULL, &err),
                     SP_EUNSUPPORTED);
    assert_false(exists(path("poster_bad.jpg")));
}

static void test_twenty_jobs_in_one_process(void **state)
{
    (void)state;
    const char *inputs[] = {"av.mp4", "noaudio.mp4", "rotated.mp4", "surround.mp4",
                            "text.mp4"};
    for (int i = 0; i < 20; i++) {
        const char *in = path(inputs[i % 5]);
        sp_err err;
        char *json = NULL;
        int prc = sp_video_probe(in, NULL, &json, &err);
        sp_free(json);
        int rc = sp_video_transcode(in, path("loop.mp4"), sp_preset_find("mp4-480p"), NULL,
                                    NULL, &err);
        int posterc = sp_video_poster(in, path("loop.jpg"), sp_preset_find("mp4-480p"), NULL,
                                      NULL, NULL, &err);
        int want = i % 5 == 4 ? SP_EUNSUPPORTED : 0;
        assert_int_equal(prc, want);
        assert_int_equal(rc, want);
        assert_int_equal(posterc, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_output_size_keeps_aspect_never_upscales_even),
        cmocka_unit_test(test_probe_describes_container_and_streams),
        cmocka_unit_test(test_mp4_is_h264_aac_faststart_with_progress),
        cmocka_unit_test(test_mp4_without_audio),
        cmocka_unit_test(test_rotated_input_comes_out_upright),
        cmocka_unit_test(test_odd_size_gives_even_yuv420p),
        cmocka_unit_test(test_variable_frame_rate_keeps_duration),
        cmocka_unit_test(test_surround_is_mixed_to_stereo_48k),
        cmocka_unit_test(test_webm_is_vp9_opus),
        cmocka_unit_test(test_truncated_input_is_a_permanent_error),
        cmocka_unit_test(test_text_file_is_not_a_video),
        cmocka_unit_test(test_playlists_and_scripts_are_refused),
        cmocka_unit_test(test_audio_only_is_not_a_video),
        cmocka_unit_test(test_names_that_lie_are_probed_by_content),
        cmocka_unit_test(test_empty_and_cut_ts_are_permanent_errors),
        cmocka_unit_test(test_missing_input_or_unwritable_output_is_io),
        cmocka_unit_test(test_stop_flag_cancels_within_a_second_and_removes_output),
        cmocka_unit_test(test_poster_skips_black_frames),
        cmocka_unit_test(test_poster_of_rotated_video_is_upright),
        cmocka_unit_test(test_twenty_jobs_in_one_process),
    };
    return cmocka_run_group_tests_name("video", tests, make_clips, remove_clips);
}

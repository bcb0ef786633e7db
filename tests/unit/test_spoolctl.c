/* test_spoolctl.c - spoolctl's parts that need no server: the command line (commands,
 * options, defaults from the environment, every refusal), the text it prints (sizes,
 * durations, times, bars, job lines, summaries, tables, cleaning of control
 * characters), the exit codes for HTTP answers, error reporting with --json, URL
 * escaping, and a refused connection. tests/integration/test_spoolctl.py drives the
 * binary against the real spool-api. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "harness.h"
#include "http.h"
#include "opts.h"
#include "output.h"
#include "spool/buf.h"

#define ID "00d21bzzkbx640ad5ygv9st98bkmmj38rc19"

/* Parse a NULL-terminated list of arguments; err and help text captured. */
static int parse(ctl_opts *o, sp_err *err, char *help, size_t n, ...)
{
    char *argv[40];
    int argc = 0;
    argv[argc++] = "spoolctl";
    va_list ap;
    va_start(ap, n);
    for (char *a = va_arg(ap, char *); a && argc < 39; a = va_arg(ap, char *))
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    FILE *out = tmpfile();
    assert_non_null(out);
    int rc = ctl_opts_parse(o, argc, argv, out, err);
    if (help) {
        rewind(out);
        size_t k = fread(help, 1, n - 1, out);
        help[k] = '\0';
    }
    fclose(out);
    return rc;
}

#define PARSE(o, err, ...) parse((o), (err), NULL, 0, __VA_ARGS__, (char *)NULL)

static int env_setup(void **state)
{
    (void)state;
    unsetenv("SPOOL_SERVER");
    unsetenv("SPOOL_TOKEN");
    return 0;
}

static void test_submit_video_options_are_parsed(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    assert_int_equal(PARSE(&o, &err, "submit-video", "clip.mp4", "--preset", "webm-720p",
                           "--no-thumbnail", "--priority=high", "--wait", "--timeout", "90s",
                           "--filename", "x.mp4", "--retries", "0"),
                     0);
    assert_int_equal(o.cmd, CTL_CMD_SUBMIT_VIDEO);
    assert_string_equal(o.target, "clip.mp4");
    assert_string_equal(o.preset, "webm-720p");
    assert_string_equal(o.thumbnail, "false");
    assert_string_equal(o.priority, "high");
    assert_true(o.wait);
    assert_int_equal(o.timeout_ms, 90000);
    assert_string_equal(o.filename, "x.mp4");
    assert_int_equal(o.retries, 0);
    assert_string_equal(o.server, CTL_DEFAULT_SERVER);
    assert_null(o.token);
    assert_false(o.json);

    assert_int_equal(PARSE(&o, &err, "submit-video", "https://example.com/a.mov", "--thumbnail"), 0);
    assert_string_equal(o.thumbnail, "true");
    assert_int_equal(o.retries, 3); /* the default */
}

static void test_global_options_go_anywhere_and_env_gives_defaults(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    assert_int_equal(PARSE(&o, &err, "--json", "status", ID, "--server", "http://h:1/"), 0);
    assert_int_equal(o.cmd, CTL_CMD_STATUS);
    assert_true(o.json);
    assert_string_equal(o.server, "http://h:1/");
    assert_string_equal(o.target, ID);

    setenv("SPOOL_SERVER", "http://from-env:9", 1);
    setenv("SPOOL_TOKEN", "s3cret", 1);
    assert_int_equal(PARSE(&o, &err, "queues", "-q"), 0);
    assert_string_equal(o.server, "http://from-env:9");
    assert_string_equal(o.token, "s3cret");
    assert_true(o.quiet);
    assert_int_equal(PARSE(&o, &err, "queues", "--token", "other", "--server=https://x"), 0);
    assert_string_equal(o.server, "https://x");
    assert_string_equal(o.token, "other");
    setenv("SPOOL_SERVER", "", 1); /* empty means unset */
    assert_int_equal(PARSE(&o, &err, "queues"), 0);
    assert_string_equal(o.server, CTL_DEFAULT_SERVER);
    unsetenv("SPOOL_SERVER");
    unsetenv("SPOOL_TOKEN");
}

static void test_export_format_comes_from_the_extension_or_format(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    const struct {
        const char *file, *format;
    } cases[] = {{"a.csv", "csv"},       {"A.CSV", "csv"},   {"dir.x/b.ndjson", "ndjson"},
                 {"c.jsonl", "ndjson"},  {"d.json", "json"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(PARSE(&o, &err, "export", cases[i].file), 0);
        assert_string_equal(o.format, cases[i].format);
    }
    assert_int_equal(PARSE(&o, &err, "export", "data.txt", "--format", "ndjson"), 0);
    assert_string_equal(o.format, "ndjson");
    assert_int_equal(PARSE(&o, &err, "export", "https://h/rows", "--title", "T"), 0);
    assert_null(o.format); /* the server infers it from the URL or asks */
    assert_string_equal(o.title, "T");
    assert_int_equal(PARSE(&o, &err, "export", "-", "--format", "csv"), 0);
    assert_string_equal(o.target, "-");
    /* "--" ends the options: a file whose name starts with a dash. */
    assert_int_equal(PARSE(&o, &err, "export", "--title", "x", "--", "-odd.csv"), 0);
    assert_string_equal(o.target, "-odd.csv");
    assert_string_equal(o.format, "csv");
}

static void test_other_commands_take_their_arguments(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    assert_int_equal(PARSE(&o, &err, "download", ID, "video.mp4", "-o", "/tmp/x"), 0);
    assert_int_equal(o.cmd, CTL_CMD_DOWNLOAD);
    assert_string_equal(o.name, "video.mp4");
    assert_string_equal(o.output, "/tmp/x");
    assert_int_equal(PARSE(&o, &err, "jobs", "--state", "failed", "--type", "pdf.export",
                           "--limit=20"),
                     0);
    assert_string_equal(o.state, "failed");
    assert_string_equal(o.type, "pdf.export");
    assert_int_equal(o.limit, 20);
    assert_int_equal(PARSE(&o, &err, "wait", ID, "--timeout", "5m", "--no-progress"), 0);
    assert_int_equal(o.timeout_ms, 300000);
    assert_true(o.progress_set);
    assert_false(o.progress);
    assert_int_equal(PARSE(&o, &err, "health", "--ready"), 0);
    assert_true(o.ready);
    assert_int_equal(PARSE(&o, &err, "cancel", ID), 0);
    assert_int_equal(PARSE(&o, &err, "retry", ID), 0);
    assert_int_equal(o.cmd, CTL_CMD_RETRY);
    assert_int_equal(PARSE(&o, &err, "watch"), 0);
    assert_int_equal(o.cmd, CTL_CMD_WATCH);
    assert_null(o.target);
    assert_int_equal(PARSE(&o, &err, "watch", "--queue", "video", "--type", "video.transcode",
                           "--json"),
                     0);
    assert_string_equal(o.queue, "video");
    assert_string_equal(o.type, "video.transcode");
    assert_int_equal(PARSE(&o, &err, "watch", ID), 0);
    assert_string_equal(o.target, ID);
}

static void test_bad_command_lines_are_refused_with_a_reason(void **state)
{
    (void)state;
    const struct {
        const char *args[8];
        const char *says;
    } cases[] = {
        {{NULL}, "no command given"},
        {{"frobnicate"}, "unknown command 'frobnicate'"},
        {{"status"}, "status needs a job id"},
        {{"status", "abc"}, "'abc' is not a job id"},
        {{"status", "../../etc/passwd"}, "is not a job id"},
        {{"status", ID, "extra"}, "too many arguments for status"},
        {{"jobs", "--preset", "x"}, "option --preset does not apply to jobs"},
        {{"jobs", "--bogus"}, "unknown option '--bogus'"},
        {{"jobs", "-z"}, "unknown option '-z'"},
        {{"jobs", "--json=yes"}, "option --json takes no value"},
        {{"jobs", "--limit"}, "option --limit needs a value"},
        {{"jobs", "--limit", "0"}, "--limit wants a whole number from 1 to 1000, not '0'"},
        {{"jobs", "--limit", "1001"}, "not '1001'"},
        {{"jobs", "--limit", "ten"}, "not 'ten'"},
        {{"jobs", "--state", "done"}, "--state must be queued, running"},
        {{"jobs", "--type", "Video Transcode"}, "--type must be a job type"},
        {{"wait", ID, "--timeout", "soon"}, "--timeout wants a duration"},
        {{"queues", "--server", "ftp://h"}, "the server must be an http:// or https:// URL"},
        {{"queues", "--token", ""}, "the token must be one line of text"},
        {{"submit-video"}, "submit-video needs a FILE, a URL or -"},
        {{"submit-video", "a.mp4", "--priority", "urgent"}, "--priority must be high or normal"},
        {{"submit-video", "a.mp4", "--timeout", "5"}, "--timeout applies to wait and to --wait"},
        {{"submit-video", "http://h/a.mp4", "--filename", "b"}, "apply to an upload, not to a URL"},
        {{"submit-video", "a.mp4", "--filename", "x/y"}, "--filename must be a base name"},
        {{"submit-video", "a.mp4", "--content-type", "text/plain"}, "--content-type must be video/"},
        {{"export", "rows.txt"}, "cannot tell the format of 'rows.txt'"},
        {{"export", "a.csv", "--format", "xml"}, "--format must be csv, ndjson or json"},
        {{"export", "a.csv", "--idempotency-key", ""}, "--idempotency-key must be 1 to 255"},
        {{"download", ID, "../x"}, "'../x' is not an output name"},
        {{"download", ID, "-o", ""}, "--output must not be empty"},
        {{"watch", "abc"}, "'abc' is not a job id"},
        {{"watch", ID, "extra"}, "too many arguments for watch"},
        {{"watch", ID, "--queue", "video"}, "apply to watching every job, not one"},
        {{"watch", "--queue", "a b"}, "--queue must be 1-64 of"},
        {{"watch", "--type", "Video"}, "--type must be a job type"},
        {{"watch", "--timeout", "5"}, "option --timeout does not apply to watch"},
        {{"jobs", "--queue", "video"}, "option --queue does not apply to jobs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[10] = {"spoolctl"};
        int argc = 1;
        for (int k = 0; cases[i].args[k]; k++)
            argv[argc++] = (char *)cases[i].args[k];
        ctl_opts o;
        sp_err err;
        FILE *out = tmpfile();
        int rc = ctl_opts_parse(&o, argc, argv, out, &err);
        fclose(out);
        if (rc != SP_EINVAL || strstr(err.msg, cases[i].says) == NULL)
            fail_msg("case %zu (%s ...): rc %d, message '%s', expected '%s'", i,
                     cases[i].args[0] ? cases[i].args[0] : "", rc, err.msg, cases[i].says);
        assert_non_null(strstr(err.msg, "see spoolctl --help"));
    }
}

static void test_help_and_version_print_and_stop(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    char text[16384];
    assert_int_equal(parse(&o, &err, text, sizeof text, "--help", (char *)NULL), 1);
    assert_non_null(strstr(text, "Usage: spoolctl"));
    assert_non_null(strstr(text, "submit-video FILE|URL"));
    assert_non_null(strstr(text, "Exit codes:"));
    assert_non_null(strstr(text, "5  wait --timeout ran out"));
    assert_non_null(strstr(text, "SPOOL_SERVER"));
    /* --help wins over a bad rest of the line; so does `help`. */
    assert_int_equal(parse(&o, &err, text, sizeof text, "status", "-h", (char *)NULL), 1);
    assert_int_equal(parse(&o, &err, text, sizeof text, "help", (char *)NULL), 1);
    assert_non_null(strstr(text, "Commands:"));
    assert_int_equal(parse(&o, &err, text, sizeof text, "--version", (char *)NULL), 1);
    assert_string_equal(text, "spoolctl " SPOOL_VERSION "\n");
    assert_string_equal(ctl_cmd_name(CTL_CMD_SUBMIT_VIDEO), "submit-video");
    assert_string_equal(ctl_cmd_name(CTL_CMD_NONE), "");
}

/* ---- output ---------------------------------------------------------------------- */

static void test_sizes_and_durations_read_naturally(void **state)
{
    (void)state;
    const struct {
        int64_t n;
        const char *s;
    } sizes[] = {{0, "0 B"},
                 {1023, "1023 B"},
                 {1024, "1.0 KiB"},
                 {1536, "1.5 KiB"},
                 {147142, "144 KiB"},
                 {6606029, "6.3 MiB"},
                 {(int64_t)5 << 30, "5.0 GiB"},
                 {-3, "0 B"}};
    char out[32];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ctl_fmt_bytes(sizes[i].n, out);
        assert_string_equal(out, sizes[i].s);
    }
    const struct {
        int64_t ms;
        const char *s;
    } durs[] = {{0, "0 ms"},         {999, "999 ms"},         {1000, "1.0 s"},
                {4249, "4.2 s"},     {65000, "1 m 05 s"},     {7380000, "2 h 03 m"}};
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++) {
        ctl_fmt_duration(durs[i].ms, out);
        assert_string_equal(out, durs[i].s);
    }
}

static void test_times_parse_as_the_api_writes_them(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(ctl_parse_time("1970-01-01T00:00:01.250Z", &ms), 0);
    assert_int_equal(ms, 1250);
    assert_int_equal(ctl_parse_time("2026-11-24T00:41:17.490Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1795480877490));
    assert_int_equal(ctl_parse_time("2026-11-24T00:41:17Z", &ms), 0);
    assert_int_equal(ms, INT64_C(1795480877000));
    const char *bad[] = {NULL, "", "2026-11-24", "2026-11-24T00:41:17", "2026-11-24T00:41:17+01:00",
                         "2026-13-24T00:41:17Z", "2026-11-24T24:00:00Z", "2026-11-24T00:41:17.Z",
                         "2026-11-24T00:41:17.5Zjunk", "20x6-11-24T00:41:17Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ctl_parse_time(bad[i], &ms) != SP_EINVAL)
            fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
    }
}

static void test_bar_fills_in_proportion_and_clamps(void **state)
{
    (void)state;
    sp_buf b;
    sp_buf_init(&b, 1024);
    assert_int_equal(ctl_out_bar(&b, 45, 20), 0);
    assert_string_equal(sp_buf_cstr(&b), "[#########-----------]  45%");
    sp_buf_reset(&b);
    ctl_out_bar(&b, 0, 10);
    assert_string_equal(sp_buf_cstr(&b), "[----------]   0%");
    sp_buf_reset(&b);
    ctl_out_bar(&b, 100, 10);
    assert_string_equal(sp_buf_cstr(&b), "[##########] 100%");
    sp_buf_reset(&b);
    ctl_out_bar(&b, 250, 4);
    assert_string_equal(sp_buf_cstr(&b), "[####] 100%");
    sp_buf_reset(&b);
    ctl_out_bar(&b, -7, 4);
    assert_string_equal(sp_buf_cstr(&b), "[----]   0%");
    sp_buf_free(&b);
}

static void test_control_characters_from_the_server_never_reach_the_terminal(void **state)
{
    (void)state;
    sp_buf b;
    sp_buf_init(&b, 1024);
    assert_int_equal(ctl_out_clean(&b, "a\033[2Jb\r\nc\x7f" "d\xc2\x9b" "e caf\xc3\xa9"), 0);
    assert_string_equal(sp_buf_cstr(&b), "a?[2Jb??c?d?e caf\xc3\xa9");
    sp_buf_free(&b);
}

static json_t *job(const char *json)
{
    json_error_t e;
    json_t *j = json_loads(json, 0, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static void test_job_lines_say_state_progress_and_why(void **state)
{
    (void)state;
    const struct {
        const char *json, *line;
    } cases[] = {
        {"{\"id\":\"" ID "\",\"state\":\"running\",\"progress\":45,\"attempts\":1,\"max_attempts\":3}",
         ID " running 45%"},
        {"{\"id\":\"" ID "\",\"state\":\"running\",\"progress\":5,\"attempts\":2,\"max_attempts\":3}",
         ID " running 5% (attempt 2 of 3)"},
        {"{\"id\":\"" ID "\",\"state\":\"retrying\",\"progress\":0,\"attempts\":1,\"max_attempts\":3,"
         "\"error\":{\"code\":\"fetch_failed\",\"message\":\"HTTP 503\",\"retryable\":true},"
         "\"next_attempt_at\":\"2026-01-01T00:00:02.000Z\"}",
         ID " retrying 0% (attempt 1 of 3 failed: fetch_failed: HTTP 503; next attempt at "
            "2026-01-01T00:00:02.000Z)"},
        {"{\"id\":\"" ID "\",\"state\":\"failed\",\"progress\":0,\"attempts\":1,\"max_attempts\":3,"
         "\"error\":{\"code\":\"invalid_input\",\"message\":\"not a video\\u001b[31m\"}}",
         ID " failed 0% (invalid_input: not a video?[31m)"},
        {"{\"id\":\"" ID "\",\"state\":\"succeeded\",\"progress\":100}", ID " succeeded 100%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = job(cases[i].json);
        sp_buf b;
        sp_buf_init(&b, 4096);
        assert_int_equal(ctl_out_job_line(&b, j), 0);
        assert_string_equal(sp_buf_cstr(&b), cases[i].line);
        sp_buf_free(&b);
        json_decref(j);
    }
}

static void test_progress_line_fits_the_terminal(void **state)
{
    (void)state;
    json_t *j = job("{\"state\":\"running\",\"progress\":50}");
    sp_buf b;
    sp_buf_init(&b, 4096);
    assert_int_equal(ctl_out_progress(&b, j, 80, 75500), 0);
    assert_string_equal(sp_buf_cstr(&b),
                        "running   [####################--------------------]  50%  1:15");
    sp_buf_reset(&b);
    ctl_out_progress(&b, j, 30, 3723000); /* narrow: the bar keeps 10 columns */
    assert_string_equal(sp_buf_cstr(&b), "running   [#####-----]  50%  1:02:03");
    sp_buf_free(&b);
    json_decref(j);
}

static const char *const done_job =
    "{\"id\":\"" ID "\",\"type\":\"video.transcode\",\"queue\":\"video\",\"state\":\"succeeded\","
    "\"progress\":100,\"attempts\":1,\"max_attempts\":3,\"created_at\":\"2026-11-24T00:41:12.876Z\","
    "\"started_at\":\"2026-11-24T00:41:12.877Z\",\"finished_at\":\"2026-11-24T00:41:17.077Z\","
    "\"error\":null,\"outputs\":[{\"name\":\"video.mp4\",\"url\":\"/v1/jobs/" ID "/outputs/video.mp4\","
    "\"content_type\":\"video/mp4\",\"bytes\":147142},{\"name\":\"poster.jpg\",\"url\":\"/v1/jobs/" ID
    "/outputs/poster.jpg\",\"content_type\":\"image/jpeg\",\"bytes\":11952}],"
    "\"metadata\":{\"pages\":2}}";

static void test_summary_names_outputs_with_full_urls(void **state)
{
    (void)state;
    json_t *j = job(done_job);
    sp_buf b;
    sp_buf_init(&b, 4096);
    assert_int_equal(ctl_out_summary(&b, j, "http://127.0.0.1:8080"), 0);
    assert_string_equal(sp_buf_cstr(&b),
                        ID " succeeded in 4.2 s\n"
                        "  video.mp4     144 KiB  http://127.0.0.1:8080/v1/jobs/" ID "/outputs/video.mp4\n"
                        "  poster.jpg   11.7 KiB  http://127.0.0.1:8080/v1/jobs/" ID "/outputs/poster.jpg\n");
    json_decref(j);

    sp_buf_reset(&b);
    j = job("{\"id\":\"" ID "\",\"state\":\"failed\",\"attempts\":3,\"error\":{\"code\":\"timed_out\","
            "\"message\":\"the job ran past its time limit\"}}");
    ctl_out_summary(&b, j, "http://h");
    assert_string_equal(sp_buf_cstr(&b), ID " failed after 3 attempts: timed_out: the job ran past "
                                            "its time limit\n");
    json_decref(j);
    sp_buf_reset(&b);
    j = job("{\"id\":\"" ID "\",\"state\":\"cancelled\"}");
    ctl_out_summary(&b, j, "http://h");
    assert_string_equal(sp_buf_cstr(&b), ID " cancelled\n");
    json_decref(j);
    sp_buf_free(&b);
}

static void test_status_shows_every_field(void **state)
{
    (void)state;
    json_t *j = job(done_job);
    sp_buf b;
    sp_buf_init(&b, 8192);
    assert_int_equal(ctl_out_job(&b, j, "http://h:1"), 0);
    const char *want[] = {"id           " ID "\n",
                          "type         video.transcode (queue video)\n",
                          "state        succeeded, 100%\n",
                          "attempts     1 of 3\n",
                          "created      2026-11-24T00:41:12.876Z\n",
                          "finished     2026-11-24T00:41:17.077Z\n",
                          "outputs      video.mp4   video/mp4     144 KiB  http://h:1/v1/jobs/",
                          "             poster.jpg  image/jpeg   11.7 KiB  http://h:1/v1/jobs/",
                          "metadata     {\n               \"pages\": 2\n             }\n"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(sp_buf_cstr(&b), want[i]) == NULL)
            fail_msg("missing '%s' in:\n%s", want[i], sp_buf_cstr(&b));
    }
    assert_null(strstr(sp_buf_cstr(&b), "error"));
    json_decref(j);
    sp_buf_reset(&b);
    j = job("{\"id\":\"" ID "\",\"state\":\"retrying\",\"started_at\":null,"
            "\"next_attempt_at\":\"2026-01-01T00:00:02.000Z\","
            "\"error\":{\"code\":\"fetch_failed\",\"message\":\"503\",\"retryable\":true}}");
    ctl_out_job(&b, j, "http://h:1");
    assert_non_null(strstr(sp_buf_cstr(&b), "started      -\n"));
    assert_non_null(strstr(sp_buf_cstr(&b), "next attempt 2026-01-01T00:00:02.000Z\n"));
    assert_non_null(strstr(sp_buf_cstr(&b), "error        fetch_failed: 503 (retryable)\n"));
    json_decref(j);
    sp_buf_free(&b);
}

static void test_tables_align_columns(void **state)
{
    (void)state;
    json_t *list = job("{\"jobs\":[{\"id\":\"" ID "\",\"type\":\"pdf.export\",\"state\":\"queued\","
                       "\"progress\":0,\"attempts\":0,\"max_attempts\":3,\"created_at\":\"T1\"},"
                       "{\"id\":\"x\",\"type\":\"video.transcode\",\"state\":\"succeeded\","
                       "\"progress\":100,\"attempts\":1,\"max_attempts\":3,\"created_at\":\"T0\"}]}");
    sp_buf b;
    sp_buf_init(&b, 8192);
    assert_int_equal(ctl_out_jobs(&b, list), 0);
    assert_string_equal(sp_buf_cstr(&b),
                        "ID                                    TYPE             STATE      PROGRESS  ATTEMPTS  CREATED\n" ID
                        "  pdf.export       queued     0%        0/3       T1\n"
                        "x                                     video.transcode  succeeded  100%      1/3       T0\n");
    json_decref(list);
    sp_buf_reset(&b);
    list = job("{\"jobs\":[]}");
    ctl_out_jobs(&b, list);
    assert_string_equal(sp_buf_cstr(&b), "no jobs\n");
    json_decref(list);

    sp_buf_reset(&b);
    json_t *q = job("{\"queues\":[{\"name\":\"video\",\"depth\":12,\"running\":2,\"delayed\":1,"
                    "\"dead\":0,\"workers\":2,\"totals\":{\"succeeded\":40,\"failed\":1,"
                    "\"cancelled\":3}}],\"workers\":[{\"id\":\"host-1-ab\",\"kind\":\"video\","
                    "\"queues\":[\"video\",\"urgent\"],\"concurrency\":2,\"current\":[\"a\",\"b\"],"
                    "\"processed\":40,\"failed\":1,\"last_seen\":\"T\"}]}");
    assert_int_equal(ctl_out_queues(&b, q), 0);
    assert_string_equal(sp_buf_cstr(&b),
                        "QUEUE  WAITING  RUNNING  RETRYING  DEAD  WORKERS  SUCCEEDED  FAILED  CANCELLED\n"
                        "video  12       2        1         0     2        40         1       3\n"
                        "\n"
                        "WORKER     KIND   QUEUES        CONCURRENCY  RUNNING  PROCESSED  FAILED  LAST SEEN\n"
                        "host-1-ab  video  video,urgent  2            2        40         1       T\n");
    json_decref(q);
    sp_buf_reset(&b);
    q = job("{\"queues\":[],\"workers\":[]}");
    ctl_out_queues(&b, q);
    assert_string_equal(sp_buf_cstr(&b), "no queues yet (none has seen a job)\n\nno live workers\n");
    json_decref(q);
    sp_buf_free(&b);
}

/* ---- exit codes, errors, URLs, connections ---------------------------------------- */

static void test_http_statuses_map_to_documented_exit_codes(void **state)
{
    (void)state;
    const struct {
        long status;
        int exit;
    } cases[] = {{200, 0}, {202, 0}, {304, 0}, {400, 6}, {401, 6}, {404, 3}, {409, 6}, {410, 3},
                 {413, 6}, {415, 6}, {422, 6}, {408, 4}, {429, 4}, {500, 4}, {502, 4}, {503, 4},
                 {100, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ctl_client_exit_for_status(cases[i].status) != cases[i].exit)
            fail_msg("HTTP %ld: exit %d, expected %d", cases[i].status,
                     ctl_client_exit_for_status(cases[i].status), cases[i].exit);
    }
    assert_int_equal(ctl_client_exit_for_code(SP_ECANCELLED), CTL_EXIT_INTERRUPTED);
    assert_int_equal(ctl_client_exit_for_code(SP_EIO), CTL_EXIT_SERVER);
    assert_int_equal(ctl_client_exit_for_code(SP_ETIMEDOUT), CTL_EXIT_SERVER);
}

static void slurp(FILE *f, char *out, size_t n)
{
    fflush(f);
    rewind(f);
    size_t k = fread(out, 1, n - 1, f);
    out[k] = '\0';
}

static void test_server_errors_are_reported_in_text_and_json(void **state)
{
    (void)state;
    ctl_opts o;
    sp_err err;
    assert_int_equal(PARSE(&o, &err, "cancel", ID, "--json"), 0);
    ctl_client c = {&o, NULL, tmpfile(), tmpfile(), false, false};
    ctl_response resp;
    ctl_response_init(&resp);
    resp.status = 409;
    sp_buf_adds(&resp.body, "{\"error\":{\"code\":\"job_ended\",\"message\":\"job has already "
                            "ended (succeeded)\"}}");
    assert_int_equal(ctl_client_fail_answer(&c, &resp, "cancel job X"), CTL_EXIT_REFUSED);
    char out[2048], errtext[2048];
    slurp(c.out, out, sizeof out);
    slurp(c.err, errtext, sizeof errtext);
    assert_string_equal(errtext, "spoolctl: cancel job X: job has already ended (succeeded) "
                                 "(HTTP 409, job_ended)\n");
    json_t *j = job(out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "job_ended");
    json_decref(j);

    /* An answer without an error body (a proxy's 502) still says what happened. */
    fclose(c.out);
    fclose(c.err);
    c.out = tmpfile();
    c.err = tmpfile();
    resp.status = 503;
    resp.retry_after_s = 2;
    sp_buf_reset(&resp.body);
    sp_buf_adds(&resp.body, "<html>busy</html>");
    assert_int_equal(ctl_client_fail_answer(&c, &resp, "queues"), CTL_EXIT_SERVER);
    slurp(c.err, errtext, sizeof errtext);
    assert_string_equal(errtext, "spoolctl: queues: the server answered HTTP 503 (retry after 2 s)\n");
    slurp(c.out, out, sizeof out);
    j = job(out);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "http_503");
    json_decref(j);
    ctl_response_free(&resp);
    fclose(c.out);
    fclose(c.err);
}

static void test_query_values_are_percent_encoded(void **state)
{
    (void)state;
    sp_buf b;
    sp_buf_init(&b, 1024);
    assert_int_equal(ctl_url_escape(&b, "Q3 report: a&b=c/d?e f~g_h.i-j caf\xc3\xa9"), 0);
    assert_string_equal(sp_buf_cstr(&b),
                        "Q3%20report%3A%20a%26b%3Dc%2Fd%3Fe%20f~g_h.i-j%20caf%C3%A9");
    sp_buf_free(&b);
    sp_buf_init(&b, 8);
    assert_int_equal(sp_buf_adds(&b, "ab"), 0);
    assert_int_equal(ctl_url_escape(&b, "c d e f"), SP_ETOOBIG);
    assert_string_equal(sp_buf_cstr(&b), "ab"); /* unchanged */
    sp_buf_free(&b);
}

static void test_refused_connection_names_the_server(void **state)
{
    (void)state;
    sp_err err;
    assert_int_equal(ctl_http_global_init(&err), 0);
    char server[64];
    int port = sp_test_free_port(); /* nothing listens there */
    snprintf(server, sizeof server, "http://127.0.0.1:%d///", port);
    ctl_http *h = ctl_http_new(server, "tok", &err);
    assert_non_null(h);
    char want[64];
    snprintf(want, sizeof want, "http://127.0.0.1:%d", port);
    assert_string_equal(ctl_http_server(h), want);
    ctl_request rq;
    ctl_request_init(&rq, "GET", "/healthz");
    ctl_response resp;
    ctl_response_init(&resp);
    assert_int_equal(ctl_http_do(h, &rq, &resp, &err), SP_EIO);
    if (strstr(err.msg, want) == NULL || strstr(err.msg, "cannot reach the server") == NULL)
        fail_msg("message: %s", err.msg);
    ctl_response_free(&resp);
    ctl_http_free(h);
    ctl_http_free(NULL);
    ctl_response_free(NULL);
    ctl_http_global_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_submit_video_options_are_parsed, env_setup),
        cmocka_unit_test_setup(test_global_options_go_anywhere_and_env_gives_defaults, env_setup),
        cmocka_unit_test_setup(test_export_format_comes_from_the_extension_or_format, env_setup),
        cmocka_unit_test_setup(test_other_commands_take_their_arguments, env_setup),
        cmocka_unit_test_setup(test_bad_command_lines_are_refused_with_a_reason, env_setup),
        cmocka_unit_test_setup(test_help_and_version_print_and_stop, env_setup),
        cmocka_unit_test(test_sizes_and_durations_read_naturally),
        cmocka_unit_test(test_times_parse_as_the_api_writes_them),
        cmocka_unit_test(test_bar_fills_in_proportion_and_clamps),
        cmocka_unit_test(test_control_characters_from_the_server_never_reach_the_terminal),
        cmocka_unit_test(test_job_lines_say_state_progress_and_why),
        cmocka_unit_test(test_progress_line_fits_the_terminal),
        cmocka_unit_test(test_summary_names_outputs_with_full_urls),
        cmocka_unit_test(test_status_shows_every_field),
        cmocka_unit_test(test_tables_align_columns),
        cmocka_unit_test(test_http_statuses_map_to_documented_exit_codes),
        cmocka_unit_test_setup(test_server_errors_are_reported_in_text_and_json, env_setup),
        cmocka_unit_test(test_query_values_are_percent_encoded),
        cmocka_unit_test(test_refused_connection_names_the_server),
    };
    return cmocka_run_group_tests_name("spoolctl", tests, NULL, NULL);
}

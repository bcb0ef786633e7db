/* test_api_schedjob.c - a schedule's job template (api/schedjob.h) judged by the POST
 * routes' own validation into a job's params and input; schedule names and routes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "route.h"
#include "schedjob.h"
#include "spool/schedule.h"

/* Build tmpl (JSON text) with inline_max; the code, and inv's field on error. */
static int build(const char *tmpl, size_t inline_max, api_sched_job *j, api_invalid *inv)
{
    json_error_t jerr;
    json_t *t = json_loads(tmpl, 0, &jerr);
    assert_non_null(t);
    api_sched_job_init(j);
    memset(inv, 0, sizeof *inv);
    int rc = api_sched_job_build(t, inline_max, j, inv);
    json_decref(t);
    return rc;
}

static void refused(const char *tmpl, size_t inline_max, const char *field)
{
    api_sched_job j;
    api_invalid inv;
    int rc = build(tmpl, inline_max, &j, &inv);
    if (rc != SP_EINVAL || strcmp(inv.field, field) != 0)
        fail_msg("%s: expected %s refused, got %d field '%s' (%s)", tmpl, field, rc, inv.field,
                 inv.message);
    api_sched_job_free(&j);
}

static void test_an_export_template_becomes_the_params_and_inline_input_a_post_makes(void **s)
{
    (void)s;
    api_sched_job j;
    api_invalid inv;
    assert_int_equal(build("{\"type\":\"pdf.export\",\"params\":{\"title\":\"Sales\",\"rows\":"
                           "[{\"a\":1},{\"a\":2}],\"priority\":\"high\",\"callback_url\":"
                           "\"https://example.com/h\"}}",
                           16384, &j, &inv),
                     0);
    assert_string_equal(j.type, "pdf.export");
    assert_true(j.high_priority);
    assert_string_equal(j.callback_url, "https://example.com/h");
    assert_non_null(strstr(sp_buf_cstr(&j.params), "\"title\":\"Sales\""));
    assert_string_equal(sp_buf_cstr(&j.input),
                        "{\"inline\":\"{\\\"a\\\":1}\\n{\\\"a\\\":2}\\n\",\"format\":\"ndjson\","
                        "\"bytes\":16}");
    api_sched_job_free(&j);
    /* source_url: fetched each time */
    assert_int_equal(build("{\"type\":\"pdf.export\",\"params\":{\"title\":\"S\",\"source_url\":"
                           "\"https://example.com/d.csv\",\"format\":\"csv\"}}",
                           16384, &j, &inv),
                     0);
    assert_string_equal(sp_buf_cstr(&j.input),
                        "{\"url\":\"https://example.com/d.csv\",\"format\":\"csv\"}");
    assert_false(j.high_priority);
    api_sched_job_free(&j);
}

static void test_a_video_template_needs_a_source_url(void **s)
{
    (void)s;
    api_sched_job j;
    api_invalid inv;
    assert_int_equal(build("{\"type\":\"video.transcode\",\"params\":{\"source_url\":"
                           "\"https://example.com/v.mp4\",\"preset\":\"mp4-480p\"}}",
                           0, &j, &inv),
                     0);
    assert_string_equal(j.type, "video.transcode");
    assert_non_null(strstr(sp_buf_cstr(&j.params), "\"preset\":\"mp4-480p\""));
    assert_string_equal(sp_buf_cstr(&j.input), "{\"url\":\"https://example.com/v.mp4\"}");
    api_sched_job_free(&j);
    refused("{\"type\":\"video.transcode\",\"params\":{}}", 0, "job.params.source_url");
    refused("{\"type\":\"video.transcode\",\"params\":{\"source_url\":\"https://e.com/v\","
            "\"preset\":\"nope\"}}",
            0, "job.params.preset");
}

static void test_bad_templates_name_the_field(void **s)
{
    (void)s;
    refused("[]", 100, "job");
    refused("{\"type\":\"pdf.export\",\"params\":{\"title\":\"t\",\"rows\":[{\"a\":1}]},\"x\":1}",
            100, "job");
    refused("{\"params\":{}}", 100, "job.type");
    refused("{\"type\":\"webhook.deliver\",\"params\":{}}", 100, "job.type");
    refused("{\"type\":\"pdf.export\",\"params\":[]}", 100, "job.params");
    refused("{\"type\":\"pdf.export\"}", 100, "job.params");
    refused("{\"type\":\"pdf.export\",\"params\":{\"rows\":[{\"a\":1}]}}", 100, "job.params.title");
    refused("{\"type\":\"pdf.export\",\"params\":{\"title\":\"t\",\"rows\":[{\"a\":1}],"
            "\"delay\":5}}",
            100, "job.params.delay");
    refused("{\"type\":\"pdf.export\",\"params\":{\"title\":\"t\",\"rows\":[{\"a\":1}],"
            "\"run_at\":\"2030-01-01T00:00:00Z\"}}",
            100, "job.params.run_at");
    refused("{\"type\":\"pdf.export\",\"params\":{\"title\":\"t\",\"rows\":[{\"a\":1},\"x\"]}}", 100,
            "job.params.rows[1]");
}

static void test_inline_rows_fit_the_inline_limit_at_its_edge(void **s)
{
    (void)s;
    /* {"a":1}\n is 8 bytes of NDJSON: 2 rows are 16 */
    const char *t = "{\"type\":\"pdf.export\",\"params\":{\"title\":\"t\",\"rows\":[{\"a\":1},{\"a\":2}]}}";
    api_sched_job j;
    api_invalid inv;
    assert_int_equal(build(t, 16, &j, &inv), 0);
    api_sched_job_free(&j);
    refused(t, 15, "job.params.rows");
    refused(t, 0, "job.params.rows");
}

static void test_schedule_names_and_routes(void **s)
{
    (void)s;
    char n64[65], n65[66];
    memset(n64, 'n', 64);
    n64[64] = '\0';
    memset(n65, 'n', 65);
    n65[65] = '\0';
    assert_true(sp_sched_name_valid(n64));
    assert_false(sp_sched_name_valid(n65));
    assert_true(sp_sched_name_valid("a"));
    assert_true(sp_sched_name_valid("Nightly_report.v2-x"));
    assert_false(sp_sched_name_valid(""));
    assert_false(sp_sched_name_valid(NULL));
    assert_false(sp_sched_name_valid(".a"));
    assert_false(sp_sched_name_valid("-a"));
    assert_false(sp_sched_name_valid("a:b")); /* keys.h relies on it */
    assert_false(sp_sched_name_valid("a b"));
    api_route r;
    assert_int_equal(api_route_parse("/v1/schedules", &r), API_R_SCHEDULES);
    assert_int_equal(api_route_parse("/v1/schedules/nightly", &r), API_R_SCHEDULE);
    assert_string_equal(r.schedule, "nightly");
    assert_false(r.bad_param);
    assert_int_equal(api_route_parse("/v1/schedules/nightly/runs", &r), API_R_SCHEDULE_RUNS);
    assert_int_equal(api_route_parse("/v1/schedules/.x/runs", &r), API_R_SCHEDULE_RUNS);
    assert_true(r.bad_param);
    char path[128];
    snprintf(path, sizeof path, "/v1/schedules/%s", n65);
    assert_int_equal(api_route_parse(path, &r), API_R_SCHEDULE);
    assert_true(r.bad_param);
    assert_int_equal(api_route_parse("/v1/schedules/a/other", &r), API_R_NONE);
    assert_int_equal(api_route_methods(API_R_SCHEDULE),
                     API_M_GET | API_M_HEAD | API_M_PATCH | API_M_DELETE);
    assert_int_equal(api_method_bit("PATCH"), API_M_PATCH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_export_template_becomes_the_params_and_inline_input_a_post_makes),
        cmocka_unit_test(test_a_video_template_needs_a_source_url),
        cmocka_unit_test(test_bad_templates_name_the_field),
        cmocka_unit_test(test_inline_rows_fit_the_inline_limit_at_its_edge),
        cmocka_unit_test(test_schedule_names_and_routes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

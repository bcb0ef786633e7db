/* test_api_history.c - the queues' sampled history behind the dashboard's chart: the
 * first sample of a queue is only a base, later ones report what happened since the
 * previous one, a counter that goes down (keys reset) counts 0, the ring keeps the last
 * 30 minutes of samples and drops older ones, unknown queues have none. No Redis: the
 * samples are added as the sampling thread would add them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "history.h"

static json_t *render(api_history *h, const char *queue)
{
    sp_buf b;
    sp_buf_init(&b, 64 * 1024 * 1024);
    assert_int_equal(api_history_render(h, queue, &b), 0);
    json_error_t e;
    json_t *v = json_loads(sp_buf_cstr(&b), 0, &e);
    if (v == NULL)
        fail_msg("not JSON (%s): %s", e.text, sp_buf_cstr(&b));
    sp_buf_free(&b);
    return v;
}

static sp_queue_stat stat(const char *name, int64_t succeeded, int64_t failed, int64_t ready)
{
    sp_queue_stat s;
    memset(&s, 0, sizeof s);
    snprintf(s.name, sizeof s.name, "%s", name);
    s.succeeded = succeeded;
    s.failed = failed;
    s.ready = ready;
    return s;
}

static int64_t field(json_t *samples, size_t i, const char *name)
{
    return json_integer_value(json_object_get(json_array_get(samples, i), name));
}

static void test_first_sample_is_a_base_then_differences(void **state)
{
    (void)state;
    sp_err err;
    api_history *h = api_history_start(NULL, "", 1000, &err);
    assert_non_null(h);
    int64_t t = 1765000000000;
    sp_queue_stat s[2] = {stat("a", 10, 1, 3), stat("b", 0, 0, 0)};
    api_history_add(h, t, s, 2);
    json_t *v = render(h, "a");
    assert_int_equal(json_array_size(json_object_get(v, "samples")), 0);
    assert_int_equal(json_integer_value(json_object_get(v, "interval_ms")), 1000);
    json_decref(v);
    s[0] = stat("a", 15, 3, 7);
    api_history_add(h, t + 1000, s, 2);
    s[0] = stat("a", 2, 0, 1); /* the queue's keys were reset */
    api_history_add(h, t + 2000, s, 1);
    v = render(h, "a");
    json_t *sm = json_object_get(v, "samples");
    assert_int_equal(json_array_size(sm), 2);
    assert_int_equal(field(sm, 0, "succeeded"), 5);
    assert_int_equal(field(sm, 0, "failed"), 2);
    assert_int_equal(field(sm, 0, "ready"), 7);
    assert_int_equal(field(sm, 1, "succeeded"), 0);
    assert_int_equal(field(sm, 1, "ready"), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sm, 0), "at")),
                        "2025-12-06T05:46:41.000Z");
    json_decref(v);
    v = render(h, "b");
    assert_int_equal(json_array_size(json_object_get(v, "samples")), 1);
    json_decref(v);
    v = render(h, "never");
    assert_int_equal(json_array_size(json_object_get(v, "samples")), 0);
    json_decref(v);
    api_history_stop(h);
    api_history_stop(NULL);
}

static void test_ring_keeps_the_last_window_only(void **state)
{
    (void)state;
    sp_err err;
    int64_t every = 10000; /* 180 samples in 30 minutes, a base before them */
    size_t keep = API_HISTORY_WINDOW_MS / every;
    api_history *h = api_history_start(NULL, "", every, &err);
    assert_non_null(h);
    int64_t t0 = 1765000000000;
    for (size_t i = 0; i < keep + 50; i++) {
        sp_queue_stat s = stat("q", (int64_t)i * (int64_t)i, 0, (int64_t)i);
        api_history_add(h, t0 + (int64_t)i * every, &s, 1);
    }
    json_t *v = render(h, "q");
    json_t *sm = json_object_get(v, "samples");
    assert_int_equal(json_array_size(sm), keep);
    /* the newest is the last added, each a difference of squares: 2i - 1 */
    size_t last = keep + 49;
    assert_int_equal(field(sm, keep - 1, "ready"), last);
    assert_int_equal(field(sm, keep - 1, "succeeded"), 2 * last - 1);
    assert_int_equal(field(sm, 0, "ready"), last - keep + 1);
    assert_int_equal(field(sm, 0, "succeeded"), 2 * (last - keep + 1) - 1);
    json_decref(v);
    api_history_stop(h);
}

static void test_more_queues_than_followed_are_left_out(void **state)
{
    (void)state;
    sp_err err;
    api_history *h = api_history_start(NULL, "", 1000, &err);
    assert_non_null(h);
    sp_queue_stat s[API_HISTORY_QUEUES + 1];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i <= API_HISTORY_QUEUES; i++) {
            char name[16];
            snprintf(name, sizeof name, "q%03d", i);
            s[i] = stat(name, round, 0, 0);
        }
        api_history_add(h, 1765000000000 + round * 1000, s, API_HISTORY_QUEUES + 1);
    }
    json_t *v = render(h, "q063");
    assert_int_equal(json_array_size(json_object_get(v, "samples")), 1);
    json_decref(v);
    v = render(h, "q064");
    assert_int_equal(json_array_size(json_object_get(v, "samples")), 0);
    json_decref(v);
    api_history_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_sample_is_a_base_then_differences),
        cmocka_unit_test(test_ring_keeps_the_last_window_only),
        cmocka_unit_test(test_more_queues_than_followed_are_left_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

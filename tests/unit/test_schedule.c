/* test_schedule.c - schedules as Redis keeps them (common/schedule.c, lua/sched_*.lua),
 * against a real redis-server: sched_advance's compare-and-set (a stale version,
 * generation or last_tick writes nothing), the compare-and-delete on the generation,
 * and the tick's derived job id. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "qfixture.h"
#include "spool/schedule.h"
#include "spool/util.h"

static sp_scheds *open_h(void)
{
    sp_err err;
    sp_scheds *h = sp_scheds_open(R.url, prefix, &err);
    if (h == NULL)
        fail_msg("sp_scheds_open: %s", err.msg);
    return h;
}

/* A new schedule "s" ticking every second, last_tick 1000, next_at 2000. */
static void create(sp_scheds *h, sp_sched *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "s");
    snprintf(s->cron, sizeof s->cron, "@every 1s");
    snprintf(s->timezone, sizeof s->timezone, "UTC");
    s->last_tick = 1000;
    s->next_at = 2000;
    sp_err err;
    int rc = sp_sched_create(h, s, 0, &err);
    if (rc != 0)
        fail_msg("sp_sched_create: %d %s", rc, err.msg);
}

/* What an advance writes (the record's fields, the due index, the runs, the stats), as
 * one line, to compare before and after. */
static const char *written(void)
{
    static char out[1024];
    /* the hashes' fields compared: key (after the prefix), field */
    static const char *const hf[][2] = {
        {"sched:s", "last_tick"}, {"sched:s", "next_at"},  {"sched:s", "fired"},
        {"sched:s", "passed"},    {"sched:s", "invalid"},  {"sched:s", "last_fired"},
        {"schedules:stats", "fired"}, {"schedules:stats", "invalid"}};
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof hf / sizeof *hf; i++) {
        const char *v = sp_test_redis_cli(&R, "HGET %s%s %s", prefix, hf[i][0], hf[i][1]);
        len += (size_t)snprintf(out + len, sizeof out - len, "%s|", v ? v : "");
    }
    const char *due = sp_test_redis_cli(&R, "ZSCORE %sschedules:due s", prefix);
    len += (size_t)snprintf(out + len, sizeof out - len, "due %s|", due ? due : "");
    const char *runs = sp_test_redis_cli(&R, "ZCARD %ssched:s:runs", prefix);
    snprintf(out + len, sizeof out - len, "runs %s", runs ? runs : "");
    return out;
}

static void test_advance_writes_nothing_when_the_read_is_stale(void **state)
{
    (void)state;
    sp_scheds *h = open_h();
    sp_sched s;
    create(h, &s);
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    const char(*ids)[SP_ID_LEN + 1] = (const char(*)[SP_ID_LEN + 1])id;
    int64_t ticks[] = {2000};
    sp_sched_step st = {.read = &s, .last_tick = 2000, .next_at = 3000, .nruns = 1,
                        .run_ids = ids, .run_ticks = ticks};
    sp_err err;
    char before[512];
    snprintf(before, sizeof before, "%s", written());

    sp_sched stale = s;
    stale.version = s.version + 1;
    st.read = &stale;
    assert_int_equal(sp_sched_advance(h, &st, &err), 0);
    assert_string_equal(written(), before);

    stale = s;
    sp_id_new(stale.generation); /* deleted and created again meanwhile */
    assert_int_equal(sp_sched_advance(h, &st, &err), 0);
    assert_string_equal(written(), before);

    stale = s;
    stale.last_tick = 999; /* another process moved it on meanwhile */
    assert_int_equal(sp_sched_advance(h, &st, &err), 0);
    assert_string_equal(written(), before);

    st.read = &s;
    st.invalid = 2;
    assert_int_equal(sp_sched_advance(h, &st, &err), 1);
    sp_sched got;
    assert_int_equal(sp_sched_get(h, "s", &got, &err), 0);
    assert_int_equal(got.last_tick, 2000);
    assert_int_equal(got.next_at, 3000);
    assert_int_equal(got.fired, 1);
    assert_int_equal(got.invalid, 2);
    assert_int_equal(got.passed, 0);
    assert_int_equal(got.last_fired, 2000);
    sp_sched_clear(&got);
    /* The same step again (a second process with the same read) is refused. */
    assert_int_equal(sp_sched_advance(h, &st, &err), 0);
    sp_sched_counts c;
    assert_int_equal(sp_sched_counts_get(h, &c, &err), 0);
    assert_int_equal(c.fired, 1);
    assert_int_equal(c.invalid, 2);
    sp_sched_clear(&s);
    sp_scheds_close(h);
}

static void test_delete_removes_only_the_generation_it_read(void **state)
{
    (void)state;
    sp_scheds *h = open_h();
    sp_sched s;
    create(h, &s);
    sp_err err;
    char other[SP_ID_LEN + 1];
    sp_id_new(other);
    assert_int_equal(sp_sched_delete(h, "s", other, &err), SP_ENOTFOUND);
    sp_sched got;
    assert_int_equal(sp_sched_get(h, "s", &got, &err), 0);
    sp_sched_clear(&got);
    assert_int_equal(sp_sched_delete(h, "s", s.generation, &err), 0);
    assert_int_equal(sp_sched_get(h, "s", &got, &err), SP_ENOTFOUND);
    assert_int_equal(sp_sched_delete(h, "s", NULL, &err), SP_ENOTFOUND);
    sp_sched_clear(&s);
    sp_scheds_close(h);
}

static void test_a_tick_id_is_the_same_everywhere_and_sorts_by_the_tick(void **state)
{
    (void)state;
    sp_sched s = {.name = "nightly"};
    snprintf(s.generation, sizeof s.generation, "%s", "00d2a8b2x7q1m3n4p5r6s7t8v9w0x1y2z3ab");
    char a[SP_ID_LEN + 1], b[SP_ID_LEN + 1], c[SP_ID_LEN + 1], d[SP_ID_LEN + 1];
    sp_err err;
    int64_t tick = 1796677005000;
    assert_int_equal(sp_sched_tick_id(&s, tick, a, &err), 0);
    assert_int_equal(sp_sched_tick_id(&s, tick, b, &err), 0);
    assert_string_equal(a, b);
    assert_true(sp_id_valid(a));
    assert_int_equal(sp_id_time_ms(a), tick);
    assert_int_equal(sp_sched_tick_id(&s, tick + 1000, c, &err), 0);
    assert_true(strcmp(a, c) < 0);
    s.generation[SP_ID_LEN - 1] = s.generation[SP_ID_LEN - 1] == 'a' ? 'b' : 'a';
    assert_int_equal(sp_sched_tick_id(&s, tick, d, &err), 0);
    assert_string_not_equal(a, d);
    assert_memory_equal(a, d, 10); /* the time part is the tick's */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_advance_writes_nothing_when_the_read_is_stale, setup_test),
        cmocka_unit_test_setup(test_delete_removes_only_the_generation_it_read, setup_test),
        cmocka_unit_test_setup(test_a_tick_id_is_the_same_everywhere_and_sorts_by_the_tick,
                               setup_test),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

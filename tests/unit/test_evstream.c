/* test_evstream.c - the job event stream's read side (common/evstream.c) against a real
 * redis-server: ids, parsing entries into events, blocking reads, resuming mid-entry,
 * and telling a trimmed history. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "qfixture.h"
#include "spool/evstream.h"

#define J1 "0123456789abcdefghjkmnpqrstvwxyz0123"
#define J2 "1123456789abcdefghjkmnpqrstvwxyz0124"
#define J3 "0zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"

static sp_evstream *open_es(void)
{
    sp_err err;
    sp_evstream *s = sp_evstream_open(R.url, prefix, &err);
    if (s == NULL)
        fail_msg("sp_evstream_open: %s", err.msg);
    return s;
}

/* XADD an entry with id (e.g. "100-1") and pairs given as one shell-quoted string. */
static void xadd(const char *id, const char *pairs)
{
    const char *r = sp_test_redis_cli(&R, "XADD %sevents %s %s", prefix, id, pairs);
    if (r == NULL || strcmp(r, id) != 0)
        fail_msg("XADD %s: %s", id, r ? r : "(no answer)");
}

static void assert_id(const sp_evid *id, const char *want)
{
    char got[SP_EVID_LEN];
    sp_evid_format(id, got);
    assert_string_equal(got, want);
}

/* ---- ids and events (no Redis) ------------------------------------------------------- */

static void test_ids_parse_strictly_and_round_trip(void **state)
{
    (void)state;
    sp_evid id;
    static const char *const good[] = {"0-0", "1765112345678-0/3", "1-2", "1-0/100000",
                                       "18446744073709551615-18446744073709551615/0"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        assert_int_equal(sp_evid_parse(good[i], &id), 0);
        assert_id(&id, good[i]);
    }
    static const char *const bad[] = {"", "1", "1-", "-1", "1-0/", "1-0/x", "1-0/100001",
                                      " 1-0", "1-0 ", "+1-0", "1--0", "1-0/-1", "1-0/1/2",
                                      "18446744073709551616-0", "1-0/99999999999", "01-0", "1-00", "1-0/01",
                                      "abc", "1-0\n"};
    sp_evid keep = {7, 7, 7};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        id = keep;
        assert_int_equal(sp_evid_parse(bad[i], &id), SP_EINVAL);
        assert_int_equal(id.ms, 7); /* unchanged on error */
    }
    sp_evid a, b;
    sp_evid_parse("5-1/2", &a);
    sp_evid_parse("5-1", &b);
    assert_true(sp_evid_cmp(&a, &b) < 0); /* a whole entry after each of its pairs */
    assert_int_equal(sp_evid_cmp_entry(&a, &b), 0);
    sp_evid_parse("5-2/0", &b);
    assert_true(sp_evid_cmp(&a, &b) < 0);
    sp_evid_parse("6-0", &b);
    assert_true(sp_evid_cmp_entry(&b, &a) > 0);
}

static void test_event_pairs_parse_strictly(void **state)
{
    (void)state;
    sp_evid e = {1765112345678, 4, -1};
    sp_event ev;
    const char *v = "running 40 video video.transcode";
    assert_int_equal(sp_event_parse(&e, 2, J1, 36, v, strlen(v), &ev), 0);
    assert_string_equal(ev.job, J1);
    assert_int_equal(ev.state, SP_STATE_RUNNING);
    assert_int_equal(ev.progress, 40);
    assert_string_equal(ev.queue, "video");
    assert_string_equal(ev.type, "video.transcode");
    assert_int_equal(ev.at_ms, 1765112345678);
    assert_id(&ev.id, "1765112345678-4/2");
    static const char *const bad[] = {
        "running 40 video",                  /* no type */
        "running 40 video video.transcode ",  /* trailing space */
        "running  40 video video.transcode", /* two spaces */
        "walking 40 video video.transcode",  /* no such state */
        "running 101 video video.transcode", /* progress past 100 */
        "running -1 video video.transcode",
        "running 4x video video.transcode",
        "running 40 vi/deo video.transcode", /* queue charset */
        "running 40 video Video.Transcode",  /* type charset */
        "running 40 video video.transcode extra",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        memset(&ev, 0x5a, sizeof ev);
        assert_int_equal(sp_event_parse(&e, 0, J1, 36, bad[i], strlen(bad[i]), &ev), SP_EINVAL);
        assert_int_equal((unsigned char)ev.job[0], 0x5a); /* unchanged */
    }
    v = "succeeded 100 pdf pdf.export";
    assert_int_equal(sp_event_parse(&e, 0, "not-an-id", 9, v, strlen(v), &ev), SP_EINVAL);
    assert_int_equal(sp_event_parse(&e, 0, "2123456789abcdefghjkmnpqrstvwxyz0123", 36, v,
                                    strlen(v), &ev),
                     SP_EINVAL); /* first character past the id's range */
    assert_int_equal(sp_event_parse(&e, 0, J2, 36, v, strlen(v), &ev), 0);
    assert_int_equal(ev.progress, 100);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void test_tail_of_a_missing_stream_is_zero(void **state)
{
    (void)state;
    sp_evstream *s = open_es();
    sp_err err;
    sp_evid last = {9, 9, 9};
    assert_int_equal(sp_evstream_tail(s, &last, &err), 0);
    assert_id(&last, "0-0");
    xadd("100-1", "" J1 " 'queued 0 video video.transcode'");
    xadd("100-2", "" J2 " 'queued 0 pdf pdf.export'");
    assert_int_equal(sp_evstream_tail(s, &last, &err), 0);
    assert_id(&last, "100-2");
    sp_evstream_close(s);
    sp_evstream_close(NULL);
}

static void test_read_waits_then_brings_new_entries_in_order(void **state)
{
    (void)state;
    sp_evstream *s = open_es();
    sp_err err;
    sp_evbatch b;
    sp_evbatch_init(&b);
    sp_evid from = {0, 0, -1};
    int64_t t0 = sp_test_ms();
    assert_int_equal(sp_evstream_read(s, &from, 200, 10, &b, &err), 0);
    int64_t took = sp_test_ms() - t0;
    assert_true(took >= 150 && took < 2000);
    assert_int_equal(b.n, 0);
    xadd("200-0", "" J1 " 'running 10 video video.transcode' " J2 " 'queued 0 pdf pdf.export'");
    xadd("201-0", "" J3 " 'nonsense' " J1 " 'running 50 video video.transcode'");
    xadd("202-0", "" J1 " 'succeeded 100 video video.transcode'");
    assert_int_equal(sp_evstream_read(s, &from, 200, 2, &b, &err), 2); /* COUNT 2 */
    assert_int_equal(b.entries, 2);
    assert_int_equal(b.n, 3); /* the malformed pair is skipped */
    assert_id(&b.ev[0].id, "200-0/0");
    assert_id(&b.ev[1].id, "200-0/1");
    assert_string_equal(b.ev[1].job, J2);
    assert_id(&b.ev[2].id, "201-0/1"); /* its index in the entry, not in the batch */
    assert_int_equal(b.ev[2].progress, 50);
    assert_id(&b.last, "201-0");
    from = b.last;
    sp_evbatch_free(&b);
    assert_int_equal(sp_evstream_read(s, &from, 200, 100, &b, &err), 1);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.ev[0].state, SP_STATE_SUCCEEDED);
    assert_id(&b.last, "202-0");
    sp_evbatch_free(&b);
    sp_evstream_close(s);
}

static void test_range_resumes_inside_an_entry(void **state)
{
    (void)state;
    sp_evstream *s = open_es();
    sp_err err;
    xadd("300-0", "" J1 " 'running 1 video video.transcode' " J2 " 'running 2 pdf pdf.export' "
         J3 " 'running 3 pdf pdf.export'");
    xadd("301-0", "" J1 " 'running 4 video video.transcode'");
    sp_evbatch b;
    sp_evbatch_init(&b);
    sp_evid after;
    sp_evid_parse("300-0/0", &after);
    assert_int_equal(sp_evstream_range(s, &after, 10, &b, &err), 2);
    assert_int_equal(b.n, 3);
    assert_id(&b.ev[0].id, "300-0/1");
    assert_id(&b.ev[1].id, "300-0/2");
    assert_id(&b.ev[2].id, "301-0/0");
    assert_id(&b.last, "301-0");
    sp_evbatch_free(&b);
    /* the last pair of an entry, and the whole entry: the next entry only */
    sp_evid_parse("300-0/2", &after);
    assert_int_equal(sp_evstream_range(s, &after, 10, &b, &err), 2);
    assert_int_equal(b.n, 1);
    assert_id(&b.ev[0].id, "301-0/0");
    sp_evbatch_free(&b);
    sp_evid_parse("300-0", &after);
    assert_int_equal(sp_evstream_range(s, &after, 10, &b, &err), 1);
    assert_int_equal(b.n, 1);
    sp_evbatch_free(&b);
    /* a limit, and an id past the end */
    sp_evid_parse("0-0", &after);
    assert_int_equal(sp_evstream_range(s, &after, 1, &b, &err), 1);
    assert_int_equal(b.n, 3);
    assert_id(&b.last, "300-0");
    sp_evbatch_free(&b);
    sp_evid_parse("999-0/5", &after);
    assert_int_equal(sp_evstream_range(s, &after, 10, &b, &err), 0);
    assert_int_equal(b.n, 0);
    sp_evbatch_free(&b);
    sp_evstream_close(s);
}

static void test_gap_only_when_history_after_the_id_was_trimmed(void **state)
{
    (void)state;
    sp_evstream *s = open_es();
    sp_err err;
    sp_evid after, oldest;
    sp_evid_parse("5-0/1", &after);
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 0); /* no stream yet */
    for (int i = 1; i <= 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d-0", 400 + i);
        xadd(id, "" J1 " 'running 1 video video.transcode' " J2 " 'queued 0 pdf pdf.export'");
    }
    sp_evid_parse("0-0", &after);
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 0); /* nothing trimmed */
    assert_id(&oldest, "401-0");
    assert_string_equal(sp_test_redis_cli(&R, "XTRIM %sevents MAXLEN 2", prefix), "3");
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 1);
    assert_id(&oldest, "404-0");
    sp_evid_parse("403-0/0", &after); /* the rest of 403 is gone */
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 1);
    sp_evid_parse("404-0/0", &after); /* 404 is kept whole */
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 0);
    sp_evid_parse("405-0", &after);
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 0);
    assert_string_equal(sp_test_redis_cli(&R, "XTRIM %sevents MAXLEN 0", prefix), "2");
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 0); /* saw all of it */
    assert_id(&oldest, "0-0");
    sp_evid_parse("405-0/0", &after);
    assert_int_equal(sp_evstream_gap(s, &after, &oldest, &err), 1); /* 405/1 is gone */
    sp_evstream_close(s);
}

static void test_redis_down_then_back(void **state)
{
    (void)state;
    sp_evstream *s = open_es();
    sp_err err;
    sp_evid last;
    xadd("500-0", "" J1 " 'running 1 video video.transcode'");
    assert_int_equal(sp_evstream_tail(s, &last, &err), 0);
    sp_test_redis_stop(&R);
    sp_evbatch b;
    sp_evbatch_init(&b);
    assert_int_equal(sp_evstream_read(s, &last, 100, 10, &b, &err), SP_EREDIS);
    assert_int_equal(sp_evstream_range(s, &last, 10, &b, &err), SP_EREDIS);
    assert_int_equal(b.n, 0);
    assert_int_equal(sp_test_redis_restart(&R), 0);
    xadd("501-0", "" J2 " 'queued 0 pdf pdf.export'"); /* AOF kept 500-0 */
    assert_int_equal(sp_evstream_read(s, &last, 1000, 10, &b, &err), 1);
    assert_int_equal(b.n, 1);
    assert_string_equal(b.ev[0].job, J2);
    sp_evbatch_free(&b);
    sp_evstream_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_parse_strictly_and_round_trip),
        cmocka_unit_test(test_event_pairs_parse_strictly),
        cmocka_unit_test_setup(test_tail_of_a_missing_stream_is_zero, setup_test),
        cmocka_unit_test_setup(test_read_waits_then_brings_new_entries_in_order, setup_test),
        cmocka_unit_test_setup(test_range_resumes_inside_an_entry, setup_test),
        cmocka_unit_test_setup(test_gap_only_when_history_after_the_id_was_trimmed, setup_test),
        cmocka_unit_test_setup(test_redis_down_then_back, setup_test),
    };
    return cmocka_run_group_tests_name("evstream", tests, group_setup_aof, group_teardown);
}

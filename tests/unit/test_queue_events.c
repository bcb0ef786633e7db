/* test_queue_events.c - what the queue scripts write besides the jobs themselves, against
 * a real redis-server: the events stream (one entry per script call, one pair per job),
 * the delivery jobs of callbacks (webhooks), and paused queues. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "qfixture.h"
#include "spool/queue.h"
#include "spool/util.h"

static redisContext *raw(void)
{
    redisContext *c = redisConnect("127.0.0.1", R.port);
    if (c == NULL || c->err)
        fail_msg("redisConnect: %s", c ? c->errstr : "no memory");
    return c;
}

/* The events of job id, in stream order, as "state progress queue type" lines joined by
 * '|', into out. Also counts the stream's entries into *entries (may be NULL). */
static void events_of(const char *id, char *out, size_t cap, size_t *entries)
{
    redisContext *c = raw();
    char key[128];
    snprintf(key, sizeof key, "%sevents", prefix);
    redisReply *r = redisCommand(c, "XRANGE %s - +", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    out[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t k = 0; k + 1 < fields->elements; k += 2) {
            if (strcmp(fields->element[k]->str, id) != 0)
                continue;
            int n = snprintf(out + used, cap - used, "%s%s", used ? "|" : "",
                             fields->element[k + 1]->str);
            assert_true(n > 0 && (size_t)n < cap - used);
            used += (size_t)n;
        }
    }
    if (entries)
        *entries = r->elements;
    freeReplyObject(r);
    redisFree(c);
}

static sp_job take(sp_consumer *c)
{
    sp_job job;
    sp_err err;
    int rc = sp_consumer_next(c, 2000, &job, &err);
    if (rc != 0)
        fail_msg("next: %d %s", rc, err.msg);
    return job;
}

static void finish(sp_consumer *c, sp_job *job, int mode, int64_t delay)
{
    sp_outcome o = {mode, "[]", NULL, "boom", "it broke", delay};
    sp_err err;
    int rc = sp_consumer_finish(c, job, &o, false, NULL, &err);
    if (rc != 0)
        fail_msg("finish: %d %s", rc, err.msg);
    sp_job_clear(job);
}

static void test_events_follow_a_job_through_every_state(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"ev"};
    sp_consumer *c = open_consumer(R.url, "w1", queues, 1, 30000);
    char id[SP_ID_LEN + 1], ev[1024];
    enqueue(q, "ev", 2, 1, 1, id);
    sp_job job = take(c);
    assert_string_equal(job.id, id);
    finish(c, &job, SP_FINISH_RETRY, 1);
    usleep(20000);
    sp_maint_report rep;
    maintain(q, "ev", &rep);
    job = take(c);
    finish(c, &job, SP_FINISH_RETRY, 1);
    events_of(id, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 ev test.noop|running 0 ev test.noop|retrying 0 ev test.noop|"
                            "queued 0 ev test.noop|running 0 ev test.noop|failed 0 ev test.noop");
    /* Both attempts are in the record's attempt log, with their errors and times. */
    redisContext *rx = raw();
    redisReply *log = redisCommand(rx, "HGET %sjob:%s attempt_log", prefix, id);
    json_t *l = json_loads(log->str, 0, NULL);
    assert_int_equal(json_array_size(l), 2);
    const char *want[] = {"retrying", "failed"};
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(l, i);
        assert_int_equal(json_integer_value(json_object_get(e, "attempt")), (json_int_t)i + 1);
        assert_string_equal(json_string_value(json_object_get(e, "outcome")), want[i]);
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "error"), "code")),
                            "boom");
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(e, "error"), "message")), "it broke");
        json_int_t t0 = json_integer_value(json_object_get(e, "started_at"));
        json_int_t t1 = json_integer_value(json_object_get(e, "ended_at"));
        assert_true(t0 > 1700000000000 && t1 >= t0 && t1 - t0 < 60000);
    }
    json_decref(l);
    freeReplyObject(log);
    redisFree(rx);
    sp_err err;
    assert_int_equal(sp_queue_requeue(q, id, &err), 0);
    job = take(c);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    events_of(id, ev, sizeof ev, NULL);
    assert_non_null(strstr(ev, "failed 0 ev test.noop|queued 0 ev test.noop|"
                               "running 0 ev test.noop|succeeded 100 ev test.noop"));
    /* Cancelled while queued; a progress step is a running event with the progress. */
    char id2[SP_ID_LEN + 1];
    enqueue(q, "ev", 1, 1, 1, id2);
    assert_int_equal(sp_queue_cancel(q, id2, 60000, &err), 0);
    events_of(id2, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 ev test.noop|cancelled 0 ev test.noop");
    char id3[SP_ID_LEN + 1];
    enqueue(q, "ev", 1, 1, 1, id3);
    job = take(c);
    bool cancel = false;
    assert_int_equal(sp_queue_renew(q, id3, job.token, 30000, 40, &cancel, &err), 0);
    assert_int_equal(sp_queue_renew(q, id3, job.token, 30000, 40, &cancel, &err), 0);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    events_of(id3, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 ev test.noop|running 0 ev test.noop|running 40 ev "
                            "test.noop|succeeded 100 ev test.noop");
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_a_batch_is_one_stream_entry(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    enum { N = 40 };
    sp_enqueue e[N];
    char ids[N][SP_ID_LEN + 1];
    int results[N];
    for (int i = 0; i < N; i++) {
        sp_id_new(ids[i]);
        e[i] = (sp_enqueue){.id = ids[i], .type = "test.batch", .queue = "bt", .max_attempts = 1};
    }
    sp_err err;
    assert_int_equal(sp_queue_enqueue_many(q, e, N, results, &err), 0);
    char ev[256];
    size_t entries = 0;
    events_of(ids[N - 1], ev, sizeof ev, &entries);
    assert_string_equal(ev, "queued 0 bt test.batch");
    assert_int_equal(entries, 1);
    /* With an idempotency key the script path writes the same event. */
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    sp_enqueue one = {.id = id, .type = "test.idem", .queue = "bt", .max_attempts = 1,
                      .idem_key = "k1", .fingerprint = "f1"};
    assert_int_equal(sp_queue_enqueue(q, &one, NULL, &err), 0);
    events_of(id, ev, sizeof ev, &entries);
    assert_string_equal(ev, "queued 0 bt test.idem");
    assert_int_equal(entries, 2);
    sp_queue_close(q);
}

/* The delivery job made for id's end: its record's fields into the returned JSON object
 * (a hash as an object), or NULL when the webhooks queue holds none for id. */
static json_t *delivery_of(const char *id, char did[SP_ID_LEN + 1])
{
    redisContext *c = raw();
    redisReply *r = redisCommand(c, "LRANGE %sq:webhooks:ready 0 -1", prefix);
    json_t *found = NULL;
    for (size_t i = 0; r && i < r->elements && !found; i++) {
        redisReply *h = redisCommand(c, "HGETALL %sjob:%s", prefix, r->element[i]->str);
        json_t *o = json_object();
        for (size_t k = 0; k + 1 < h->elements; k += 2)
            json_object_set_new(o, h->element[k]->str, json_string(h->element[k + 1]->str));
        json_t *params = json_loads(json_string_value(json_object_get(o, "params")), 0, NULL);
        if (params && strcmp(json_string_value(json_object_get(params, "job_id")), id) == 0) {
            json_object_set_new(o, "params", params);
            snprintf(did, SP_ID_LEN + 1, "%s", r->element[i]->str);
            found = o;
        } else {
            json_decref(params);
            json_decref(o);
        }
        freeReplyObject(h);
    }
    freeReplyObject(r);
    redisFree(c);
    return found;
}

static void enqueue_cb(sp_queue *q, const char *queue, const char *url, char id[SP_ID_LEN + 1])
{
    sp_id_new(id);
    sp_enqueue e = {.id = id, .type = "test.cb", .queue = queue, .max_attempts = 1,
                    .callback_url = url, .callback_attempts = 5};
    sp_err err;
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
}

static void test_an_ended_job_with_a_callback_makes_one_delivery_job(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"cb"};
    sp_consumer *c = open_consumer(R.url, "w1", queues, 1, 30000);
    char id[SP_ID_LEN + 1], plain[SP_ID_LEN + 1], did[SP_ID_LEN + 1], ev[512];
    enqueue_cb(q, "cb", "https://example.com/hook?a=\"b\"", id);
    enqueue(q, "cb", 1, 1, 1, plain);
    sp_job job = take(c);
    assert_string_equal(job.id, id);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    job = take(c);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    json_t *d = delivery_of(id, did);
    assert_non_null(d);
    assert_true(sp_id_valid(did));
    assert_string_equal(json_string_value(json_object_get(d, "type")), "webhook.deliver");
    assert_string_equal(json_string_value(json_object_get(d, "queue")), "webhooks");
    assert_string_equal(json_string_value(json_object_get(d, "state")), "queued");
    assert_string_equal(json_string_value(json_object_get(d, "max_attempts")), "5");
    json_t *p = json_object_get(d, "params");
    assert_string_equal(json_string_value(json_object_get(p, "event")), "job.succeeded");
    assert_string_equal(json_string_value(json_object_get(p, "url")),
                        "https://example.com/hook?a=\"b\"");
    json_decref(d);
    assert_null(delivery_of(plain, did));
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sq:webhooks:ready", prefix), "1");
    events_of(id, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 cb test.cb|running 0 cb test.cb|succeeded 100 cb test.cb");

    /* A delivery is a job like another: a consumer of the webhooks queue takes it. */
    const char *wq[] = {"webhooks"};
    sp_consumer *wc = open_consumer(R.url, "hooks", wq, 1, 30000);
    json_decref(delivery_of(id, did));
    job = take(wc);
    assert_string_equal(job.id, did);
    assert_string_equal(job.type, "webhook.deliver");
    assert_int_equal(job.max_attempts, 5);
    finish(wc, &job, SP_FINISH_SUCCEEDED, -1);
    /* ...and makes no delivery of its own. */
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sq:webhooks:ready", prefix), "0");

    /* Cancelled while queued: a job.cancelled delivery, made by the cancel. */
    char id2[SP_ID_LEN + 1];
    enqueue_cb(q, "cb2", "http://example.net/h", id2);
    sp_err err;
    assert_int_equal(sp_queue_cancel(q, id2, 60000, &err), 0);
    d = delivery_of(id2, did);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "params"), "event")),
                        "job.cancelled");
    json_decref(d);
    sp_consumer_free(wc);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_a_job_failed_then_rerun_makes_a_second_delivery(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"cf"};
    sp_consumer *c = open_consumer(R.url, "w1", queues, 1, 30000);
    char id[SP_ID_LEN + 1], did1[SP_ID_LEN + 1], did2[SP_ID_LEN + 1];
    enqueue_cb(q, "cf", "http://example.org/x", id);
    sp_job job = take(c);
    finish(c, &job, SP_FINISH_FAILED, -1);
    json_t *d = delivery_of(id, did1);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "params"), "event")),
                        "job.failed");
    json_decref(d);
    /* Drain it, run the job again, end it again. */
    redisContext *rc = raw();
    freeReplyObject(redisCommand(rc, "DEL %sq:webhooks:ready", prefix));
    redisFree(rc);
    sp_err err;
    assert_int_equal(sp_queue_requeue(q, id, &err), 0);
    job = take(c);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    d = delivery_of(id, did2);
    assert_non_null(d);
    assert_string_not_equal(did1, did2);
    json_decref(d);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_a_lease_that_runs_out_on_the_last_attempt_makes_a_failed_delivery(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"ce"};
    sp_consumer *c = open_consumer(R.url, "dies", queues, 1, 200);
    char id[SP_ID_LEN + 1], did[SP_ID_LEN + 1], ev[512];
    enqueue_cb(q, "ce", "http://example.org/e", id); /* one attempt */
    sp_job job = take(c);
    usleep(400000); /* the worker stalls past its 200 ms lease */
    sp_maint_report r;
    maintain(q, "ce", &r);
    assert_int_equal(r.expired, 1);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_FAILED);
    json_t *d = delivery_of(id, did);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "params"), "event")),
                        "job.failed");
    json_decref(d);
    events_of(id, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 ce test.cb|running 0 ce test.cb|failed 0 ce test.cb");
    events_of(did, ev, sizeof ev, NULL);
    assert_string_equal(ev, "queued 0 webhooks webhook.deliver");
    const char *log = sp_test_redis_cli(&R, "HGET %sjob:%s attempt_log", prefix, id);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"code\":\"lease_expired\""));
    assert_non_null(strstr(log, "\"outcome\":\"failed\""));
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_a_delayed_job_is_scheduled_until_its_time_then_runs(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"dl"};
    sp_consumer *c = open_consumer(R.url, "w1", queues, 1, 30000);
    char id[SP_ID_LEN + 1], id2[SP_ID_LEN + 1], past[SP_ID_LEN + 1], ev[256];
    sp_err err;
    sp_id_new(id);
    sp_enqueue e = {.id = id, .type = "test.later", .queue = "dl", .max_attempts = 1,
                    .delay_ms = 700};
    int64_t t0 = sp_test_ms();
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    sp_job got;
    assert_int_equal(sp_queue_get(q, id, &got, &err), 0);
    assert_int_equal(got.state, SP_STATE_SCHEDULED);
    assert_true(got.run_at > 0);
    sp_job_clear(&got);
    sp_queue_stat st;
    assert_int_equal(sp_queue_stat_one(q, "dl", &st, &err), 0);
    assert_int_equal(st.ready, 0);
    assert_int_equal(st.delayed, 1);
    /* Not before its time: maintenance leaves it, a consumer finds nothing. */
    sp_maint_report r;
    maintain(q, "dl", &r);
    assert_int_equal(sp_consumer_next(c, 200, &got, &err), SP_ETIMEDOUT);
    /* After it: maintenance queues it, and it runs. */
    while (sp_test_ms() - t0 < 750)
        usleep(20000);
    maintain(q, "dl", &r);
    sp_job job = take(c);
    assert_string_equal(job.id, id);
    assert_true(sp_test_ms() - t0 >= 700);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    events_of(id, ev, sizeof ev, NULL);
    assert_string_equal(ev, "scheduled 0 dl test.later|queued 0 dl test.later|"
                            "running 0 dl test.later|succeeded 100 dl test.later");
    /* Cancelled while scheduled: it never runs. */
    sp_id_new(id2);
    e.id = id2;
    e.delay_ms = 0;
    e.run_at_ms = sp_now_ms() + 60000;
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    assert_int_equal(state_of(q, id2, NULL), SP_STATE_SCHEDULED);
    assert_int_equal(sp_queue_cancel(q, id2, 60000, &err), 0);
    assert_int_equal(state_of(q, id2, NULL), SP_STATE_CANCELLED);
    assert_int_equal(sp_queue_stat_one(q, "dl", &st, &err), 0);
    assert_int_equal(st.delayed, 0);
    /* A time already past queues it at once; so does an idempotent repeat's first. */
    sp_id_new(past);
    e.id = past;
    e.run_at_ms = sp_now_ms() - 1000;
    e.idem_key = "delayed-1";
    e.fingerprint = "fp";
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    assert_int_equal(state_of(q, past, NULL), SP_STATE_QUEUED);
    job = take(c);
    assert_string_equal(job.id, past);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_a_paused_queue_keeps_its_jobs_until_resumed(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    sp_err err;
    assert_int_equal(sp_queue_pause(q, "pa", true, &err), 0);
    assert_int_equal(sp_queue_pause(q, "pa", true, &err), 0); /* again: no change */
    sp_queue_stat st;
    assert_int_equal(sp_queue_stat_one(q, "pa", &st, &err), 0);
    assert_true(st.paused);
    assert_true(st.paused_at > 0);
    char a[SP_ID_LEN + 1], b[SP_ID_LEN + 1];
    enqueue(q, "pa", 1, 1, 1, a); /* a paused queue still takes jobs */
    enqueue(q, "pb", 1, 1, 1, b);
    const char *queues[] = {"pa", "pb"};
    sp_consumer *c = open_consumer(R.url, "w1", queues, 2, 30000);
    sp_job job = take(c);
    assert_string_equal(job.id, b);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    int64_t t0 = sp_test_ms();
    assert_int_equal(sp_consumer_next(c, 1500, &job, &err), SP_ETIMEDOUT);
    assert_true(sp_test_ms() - t0 >= 1400);
    assert_int_equal(state_of(q, a, NULL), SP_STATE_QUEUED);
    /* Listed as paused among the queues. */
    sp_queue_stat all[8];
    size_t n = 0;
    assert_int_equal(sp_queue_stats(q, all, 8, &n, &err), 0);
    bool seen = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].name, "pa") == 0)
            seen = all[i].paused && all[i].ready == 1;
    assert_true(seen);
    /* Resumed: a consumer already waiting takes the job within about a second. */
    assert_int_equal(sp_queue_pause(q, "pa", false, &err), 0);
    t0 = sp_test_ms();
    job = take(c);
    assert_string_equal(job.id, a);
    assert_true(sp_test_ms() - t0 < 1800);
    finish(c, &job, SP_FINISH_SUCCEEDED, -1);
    assert_int_equal(sp_queue_stat_one(q, "pa", &st, &err), 0);
    assert_false(st.paused);
    assert_int_equal(sp_queue_pause(q, "bad name", true, &err), SP_EINVAL);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_ids_claimed_before_a_pause_go_back_to_the_queue(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"pc"};
    sp_err err;
    /* A prefetching consumer claims the next jobs while it runs the first. */
    sp_consumer_opts o = {R.url, prefix, "pf", queues, 1, 30000, 60000, 1000};
    sp_consumer *c = sp_consumer_new(&o, &err);
    assert_non_null(c);
    char ids[6][SP_ID_LEN + 1];
    for (int i = 0; i < 6; i++)
        enqueue(q, "pc", 1, 1, 1, ids[i]);
    /* The first job is taken alone; its finish, jobs being short, claims the rest. */
    sp_job job = take(c);
    finish_ok(c, &job, true);
    sp_job_clear(&job);
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sw:pf:claim:pc", prefix), "5");
    assert_int_equal(sp_queue_pause(q, "pc", true, &err), 0);
    /* The step that would start them gives them back instead. */
    assert_int_equal(sp_consumer_next(c, 1200, &job, &err), SP_ETIMEDOUT);
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sw:pf:claim:pc", prefix), "0");
    sp_queue_stat st;
    assert_int_equal(sp_queue_stat_one(q, "pc", &st, &err), 0);
    assert_int_equal(st.ready, 5);
    assert_int_equal(st.running, 0);
    for (int i = 1; i < 6; i++)
        assert_int_equal(state_of(q, ids[i], NULL), SP_STATE_QUEUED);
    assert_int_equal(sp_queue_pause(q, "pc", false, &err), 0);
    for (int i = 1; i < 6; i++) {
        job = take(c);
        assert_string_equal(job.id, ids[i]); /* back in their order */
        finish_ok(c, &job, false);
        sp_job_clear(&job);
    }
    assert_int_equal(sp_consumer_flush(c, NULL, &err), 0);
    assert_int_equal(sp_queue_stat_one(q, "pc", &st, &err), 0);
    assert_int_equal(st.succeeded, 6);
    sp_consumer_free(c);
    sp_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_events_follow_a_job_through_every_state, setup_test),
        cmocka_unit_test_setup(test_a_batch_is_one_stream_entry, setup_test),
        cmocka_unit_test_setup(test_an_ended_job_with_a_callback_makes_one_delivery_job,
                               setup_test),
        cmocka_unit_test_setup(test_a_job_failed_then_rerun_makes_a_second_delivery, setup_test),
        cmocka_unit_test_setup(test_a_lease_that_runs_out_on_the_last_attempt_makes_a_failed_delivery,
                               setup_test),
        cmocka_unit_test_setup(test_a_delayed_job_is_scheduled_until_its_time_then_runs, setup_test),
        cmocka_unit_test_setup(test_a_paused_queue_keeps_its_jobs_until_resumed, setup_test),
        cmocka_unit_test_setup(test_ids_claimed_before_a_pause_go_back_to_the_queue, setup_test),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

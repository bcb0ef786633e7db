/* test_api_longpoll.c - spool-api's long-poll event thread and blob GC against a
 * private Redis: a job change wakes its waiters within milliseconds, deadlines and the
 * first recheck wake them, a lost subscriber makes them poll, stop wakes everyone; the
 * GC removes the files of jobs that no longer exist and keeps the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "gc.h"
#include "../support/harness.h"
#include "longpoll.h"
#include "spool/blob.h"
#include "spool/queue.h"
#include "spool/util.h"

static sp_test_redis redis;
static const char PREFIX[] = "lptest:";

/* Waiters woken so far (the wake callback runs on the event thread). */
static pthread_mutex_t woke_mu = PTHREAD_MUTEX_INITIALIZER;
static api_waiter *woken[64];
static int64_t woken_at[64];
static int nwoken;

static void on_wake(api_waiter *w)
{
    pthread_mutex_lock(&woke_mu);
    if (nwoken < 64) {
        woken_at[nwoken] = sp_mono_ms();
        woken[nwoken++] = w;
    }
    pthread_mutex_unlock(&woke_mu);
}

static int woken_count(void)
{
    pthread_mutex_lock(&woke_mu);
    int n = nwoken;
    pthread_mutex_unlock(&woke_mu);
    return n;
}

static void reset_woken(void)
{
    pthread_mutex_lock(&woke_mu);
    nwoken = 0;
    pthread_mutex_unlock(&woke_mu);
}

/* Wait up to ms for n wakes; returns the count seen. */
static int wait_woken(int n, int64_t ms)
{
    int64_t end = sp_mono_ms() + ms;
    while (woken_count() < n && sp_mono_ms() < end)
        sp_sleep_ms(2, NULL);
    return woken_count();
}

static void make_job(sp_queue *q, char id[SP_ID_LEN + 1])
{
    sp_err err;
    assert_int_equal(sp_id_new(id), 0);
    sp_enqueue e = {.id = id, .type = "pdf.export", .queue = "pdf", .max_attempts = 3};
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    return sp_test_redis_start(&redis, 0);
}

static int teardown(void **state)
{
    (void)state;
    sp_test_redis_destroy(&redis);
    return 0;
}

static void test_change_wakes_only_that_jobs_waiters(void **state)
{
    (void)state;
    sp_err err;
    sp_queue *q = sp_queue_open(redis.url, PREFIX, &err);
    assert_non_null(q);
    char a[SP_ID_LEN + 1], b[SP_ID_LEN + 1];
    make_job(q, a);
    make_job(q, b);
    api_lp *lp = api_lp_start(redis.url, PREFIX, on_wake, &err);
    assert_non_null(lp);
    reset_woken();
    api_waiter wa1 = {0}, wa2 = {0}, wb = {0};
    memcpy(wa1.id, a, sizeof wa1.id);
    memcpy(wa2.id, a, sizeof wa2.id);
    memcpy(wb.id, b, sizeof wb.id);
    wa1.deadline_ms = wa2.deadline_ms = wb.deadline_ms = sp_mono_ms() + 10000;
    assert_int_equal(api_lp_wait(lp, &wa1), 0);
    assert_int_equal(api_lp_wait(lp, &wa2), 0);
    assert_int_equal(api_lp_wait(lp, &wb), 0);
    assert_int_equal(api_lp_waiting(lp), 3);
    sp_sleep_ms(50, NULL); /* let the subscriptions reach Redis */
    int64_t t0 = sp_mono_ms();
    assert_int_equal(sp_queue_cancel(q, a, 60000, &err), 0); /* publishes a change */
    assert_int_equal(wait_woken(2, 2000), 2);
    int64_t took = woken_at[1] - t0;
    if (took > 200)
        fail_msg("waiters woke %lld ms after the change", (long long)took);
    assert_true((woken[0] == &wa1 && woken[1] == &wa2) || (woken[0] == &wa2 && woken[1] == &wa1));
    sp_sleep_ms(100, NULL);
    assert_int_equal(woken_count(), 2); /* b's waiter still waits */
    assert_int_equal(api_lp_waiting(lp), 1);
    api_lp_free(lp); /* wakes b */
    assert_int_equal(woken_count(), 3);
    assert_ptr_equal(woken[2], &wb);
    sp_queue_close(q);
}

static void test_deadline_and_recheck_wake(void **state)
{
    (void)state;
    sp_err err;
    api_lp *lp = api_lp_start(redis.url, PREFIX, on_wake, &err);
    assert_non_null(lp);
    reset_woken();
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    api_waiter w1 = {0}, w2 = {0};
    memcpy(w1.id, id, sizeof w1.id);
    memcpy(w2.id, id, sizeof w2.id);
    int64_t t0 = sp_mono_ms();
    w1.deadline_ms = t0 + 300;
    w2.deadline_ms = t0 + 5000;
    w2.recheck = true; /* woken once about 100 ms after registering */
    assert_int_equal(api_lp_wait(lp, &w1), 0);
    assert_int_equal(api_lp_wait(lp, &w2), 0);
    assert_int_equal(wait_woken(2, 2000), 2);
    assert_ptr_equal(woken[0], &w2);
    assert_ptr_equal(woken[1], &w1);
    assert_in_range(woken_at[0] - t0, 50, 250);
    assert_in_range(woken_at[1] - t0, 290, 600);
    api_lp_stop(lp);
    api_waiter w3 = {0};
    memcpy(w3.id, id, sizeof w3.id);
    assert_int_equal(api_lp_wait(lp, &w3), SP_ESHUTDOWN);
    api_lp_free(lp);
}

static void test_lost_subscriber_wakes_waiters_to_poll(void **state)
{
    (void)state;
    sp_err err;
    api_lp *lp = api_lp_start(redis.url, PREFIX, on_wake, &err);
    assert_non_null(lp);
    reset_woken();
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    api_waiter w = {0};
    memcpy(w.id, id, sizeof w.id);
    w.deadline_ms = sp_mono_ms() + 20000;
    assert_int_equal(api_lp_wait(lp, &w), 0);
    sp_sleep_ms(100, NULL);
    /* Redis drops the subscriber: the waiter is woken to read its job again. */
    assert_non_null(sp_test_redis_cli(&redis, "CLIENT KILL TYPE pubsub"));
    assert_int_equal(wait_woken(1, 2000), 1);
    /* Registered again while Redis is down, it is woken within about a second. */
    sp_test_redis_stop(&redis);
    reset_woken();
    w.deadline_ms = sp_mono_ms() + 20000;
    int64_t t0 = sp_mono_ms();
    assert_int_equal(api_lp_wait(lp, &w), 0);
    assert_int_equal(wait_woken(1, 3000), 1);
    assert_in_range(woken_at[0] - t0, 500, 1500);
    assert_int_equal(sp_test_redis_restart(&redis), 0);
    api_lp_free(lp);
}

static void set_old(const char *path)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= 7200;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

/* The directory of job id's blobs into out (the layout blob.h documents). */
static void job_dir(const char *root, const char *id, char *out, size_t n)
{
    size_t k = strlen(id);
    snprintf(out, n, "%s/jobs/%c%c/%s", root, id[k - 2], id[k - 1], id);
}

static void test_gc_removes_files_of_missing_jobs_only(void **state)
{
    (void)state;
    sp_err err;
    char dir[] = "/tmp/spool-test-gc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    sp_blobs *blobs = sp_blobs_open_at(dir, &err);
    sp_queue *q = sp_queue_open(redis.url, PREFIX, &err);
    assert_non_null(blobs);
    assert_non_null(q);
    /* live: its job exists; gone: no job; young: no job but recent; busy: no job yet,
     * an upload is still being written in it. */
    char live[SP_ID_LEN + 1], gone[SP_ID_LEN + 1], young[SP_ID_LEN + 1], busy[SP_ID_LEN + 1];
    make_job(q, live);
    sp_id_new(gone);
    sp_id_new(young);
    sp_id_new(busy);
    const char *done[] = {live, gone, young};
    for (int i = 0; i < 3; i++) {
        sp_blob_writer *w;
        assert_int_equal(sp_blob_create(blobs, done[i], "input", 0, &w, &err), 0);
        assert_int_equal(sp_blob_write(w, "x", 1, &err), 0);
        assert_int_equal(sp_blob_commit(w, false, NULL, &err), 0);
    }
    sp_blob_writer *upload;
    assert_int_equal(sp_blob_create(blobs, busy, "input", 0, &upload, &err), 0);
    assert_int_equal(sp_blob_write(upload, "y", 1, &err), 0);
    char path[512];
    const char *aged[] = {live, gone, busy};
    for (int i = 0; i < 3; i++) {
        job_dir(dir, aged[i], path, sizeof path);
        set_old(path);
    }
    int removed = -1;
    assert_int_equal(api_gc_run(redis.url, PREFIX, blobs, 3600000, &removed, &err), 0);
    assert_int_equal(removed, 1);
    struct stat st;
    const char *kept[] = {live, young, busy};
    for (int i = 0; i < 3; i++) {
        job_dir(dir, kept[i], path, sizeof path);
        if (stat(path, &st) != 0)
            fail_msg("directory of %s was removed", kept[i] == live ? "live" : kept[i] == young ? "young" : "busy");
    }
    job_dir(dir, gone, path, sizeof path);
    assert_int_not_equal(stat(path, &st), 0);
    sp_blob_abort(upload);
    /* With Redis down nothing is removed on a guess. */
    sp_test_redis_stop(&redis);
    assert_int_equal(api_gc_run(redis.url, PREFIX, blobs, 0, &removed, &err), SP_EREDIS);
    assert_int_equal(removed, 0);
    job_dir(dir, young, path, sizeof path);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(sp_test_redis_restart(&redis), 0);
    sp_queue_close(q);
    sp_blobs_close(blobs);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_wakes_only_that_jobs_waiters),
        cmocka_unit_test(test_deadline_and_recheck_wake),
        cmocka_unit_test(test_lost_subscriber_wakes_waiters_to_poll),
        cmocka_unit_test(test_gc_removes_files_of_missing_jobs_only),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

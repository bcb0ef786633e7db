/* test_queue.c - the Redis job queue against a real redis-server (leases, fencing and
 * the worker registry are in test_lease.c; Redis refusing to serve in test_redis.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "qfixture.h"
#include "spool/queue.h"
#include "spool/util.h"

/* ---- 1. many producers and consumers: every job completes exactly once ------------ */

static volatile sig_atomic_t child_stop;
static void on_term(int sig)
{
    (void)sig;
    child_stop = 1;
}

static void consumer_proc(const char *queue, int outfd, int idx)
{
    signal(SIGTERM, on_term);
    char wid[64];
    snprintf(wid, sizeof wid, "c%d-%d", idx, (int)getpid());
    const char *queues[] = {queue};
    sp_err err;
    /* Half the consumers prefetch (one round trip per job), half do not. */
    sp_consumer_opts o = {R.url, prefix, wid, queues, 1, 30000, 60000, idx % 2 ? 1000 : 0};
    sp_consumer *c = sp_consumer_new(&o, &err);
    if (c == NULL)
        _exit(3);
    while (!child_stop) {
        sp_job job;
        int rc = sp_consumer_next(c, 200, &job, &err);
        if (rc == SP_ETIMEDOUT)
            continue;
        if (rc < 0)
            _exit(4);
        sp_outcome out = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
        if (sp_consumer_finish(c, &job, &out, true, NULL, &err) < 0)
            _exit(5);
        char line[SP_ID_LEN + 2];
        memcpy(line, job.id, SP_ID_LEN);
        line[SP_ID_LEN] = '\n';
        if (write(outfd, line, SP_ID_LEN + 1) != SP_ID_LEN + 1)
            _exit(6);
        sp_job_clear(&job);
    }
    sp_consumer_free(c);
    _exit(0);
}

static void producer_proc(const char *queue, int n)
{
    sp_err err;
    sp_queue *q = sp_queue_open(R.url, prefix, &err);
    if (q == NULL)
        _exit(3);
    enum { BATCH = 500 };
    static sp_enqueue e[BATCH];
    static char ids[BATCH][SP_ID_LEN + 1];
    int results[BATCH];
    for (int done = 0; done < n; done += BATCH) {
        int m = n - done < BATCH ? n - done : BATCH;
        for (int i = 0; i < m; i++) {
            sp_id_new(ids[i]);
            e[i] = (sp_enqueue){ids[i], "test.noop", queue, 3, 1000, 10000, false, NULL,
                                NULL, NULL, NULL, 0, 0};
        }
        if (sp_queue_enqueue_many(q, e, (size_t)m, results, &err) != 0)
            _exit(4);
        for (int i = 0; i < m; i++)
            if (results[i] != 0)
                _exit(5);
    }
    sp_queue_close(q);
    _exit(0);
}

static int cmp_ids(const void *a, const void *b)
{
    return memcmp(a, b, SP_ID_LEN);
}

static void test_many_producers_and_consumers_complete_each_job_once(void **state)
{
    (void)state;
    enum { JOBS = 10000, PRODUCERS = 2, CONSUMERS = 4 };
    char path[] = "/tmp/spool-test-done-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    int outfd = open(path, O_WRONLY | O_APPEND);
    pid_t consumers[CONSUMERS], producers[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++) {
        if ((consumers[i] = fork()) == 0)
            consumer_proc("work", outfd, i);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        if ((producers[i] = fork()) == 0)
            producer_proc("work", JOBS / PRODUCERS);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        int st;
        waitpid(producers[i], &st, 0);
        assert_int_equal(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    }
    sp_queue *q = open_q();
    sp_queue_stat s;
    sp_err err;
    int64_t deadline = sp_test_ms() + 120000;
    do {
        usleep(20000);
        assert_int_equal(sp_queue_stat_one(q, "work", &s, &err), 0);
    } while (s.succeeded < JOBS && sp_test_ms() < deadline);
    usleep(200000); /* let a duplicate, if any, show up */
    for (int i = 0; i < CONSUMERS; i++) {
        kill(consumers[i], SIGTERM);
        int st;
        waitpid(consumers[i], &st, 0);
        assert_int_equal(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    }
    assert_int_equal(sp_queue_stat_one(q, "work", &s, &err), 0);
    assert_int_equal(s.enqueued, JOBS);
    assert_int_equal(s.succeeded, JOBS);
    assert_int_equal(s.ready, 0);
    assert_int_equal(s.running, 0);

    /* Every id appears exactly once in what the consumers did. */
    FILE *f = fopen(path, "r");
    static char ids[JOBS + 10][SP_ID_LEN + 1];
    int n = 0;
    char line[128];
    while (fgets(line, sizeof line, f) && n < JOBS + 10) {
        line[strcspn(line, "\n")] = '\0';
        memcpy(ids[n++], line, SP_ID_LEN + 1);
    }
    fclose(f);
    close(outfd);
    close(fd);
    unlink(path);
    assert_int_equal(n, JOBS);
    qsort(ids, (size_t)n, sizeof ids[0], cmp_ids);
    for (int i = 1; i < n; i++)
        assert_int_not_equal(memcmp(ids[i - 1], ids[i], SP_ID_LEN), 0);
    /* And each record says succeeded after one attempt. */
    for (int i = 0; i < n; i += 97) {
        int64_t attempts;
        assert_int_equal(state_of(q, ids[i], &attempts), SP_STATE_SUCCEEDED);
        assert_int_equal(attempts, 1);
    }
    sp_queue_close(q);
}

/* ---- 2. retries: backoff with full jitter, dead-letter, requeue -------------------- */

static void test_retry_delay_within_full_jitter_bounds(void **state)
{
    (void)state;
    const int64_t base = 100, cap = 1000;
    for (int64_t attempt = 1; attempt <= 8; attempt++) {
        int64_t bound = base << (attempt - 1);
        if (bound > cap)
            bound = cap;
        int64_t max = 0;
        double sum = 0;
        enum { N = 20000 };
        for (int i = 0; i < N; i++) {
            int64_t d = sp_retry_delay_ms(attempt, base, cap);
            assert_in_range(d, 0, bound);
            if (d > max)
                max = d;
            sum += (double)d;
        }
        /* Full jitter spreads uniformly over [0, bound]. */
        assert_true(max >= bound * 95 / 100);
        double mean = sum / N;
        assert_true(mean > bound * 0.45 && mean < bound * 0.55);
    }
}

static void test_retries_back_off_then_dead_letter_then_requeue(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    const int64_t base = 200, cap = 300;
    enqueue(q, "r", 3, base, cap, id);
    const char *queues[] = {"r"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_err err;
    for (int attempt = 1; attempt <= 3; attempt++) {
        sp_job job;
        int rc;
        int64_t t0 = sp_test_ms();
        do {
            maintain(q, "r", NULL);
            rc = sp_consumer_next(c, 20, &job, &err);
        } while (rc == SP_ETIMEDOUT && sp_test_ms() - t0 < 5000);
        assert_int_equal(rc, 0);
        assert_int_equal(job.attempts, attempt);
        char msg[64];
        snprintf(msg, sizeof msg, "boom %d", attempt);
        sp_outcome o = {SP_FINISH_RETRY, NULL, NULL, "io_error", msg, -1};
        sp_state st;
        assert_int_equal(sp_consumer_finish(c, &job, &o, false, &st, &err), 0);
        sp_job j;
        assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
        if (attempt < 3) {
            assert_int_equal(st, SP_STATE_RETRYING);
            assert_int_equal(j.state, SP_STATE_RETRYING);
            int64_t bound = base << (attempt - 1);
            if (bound > cap)
                bound = cap;
            int64_t delay = j.next_attempt_at - j.updated_at;
            assert_in_range(delay, 0, bound);
        } else {
            assert_int_equal(st, SP_STATE_FAILED);
            assert_int_equal(j.state, SP_STATE_FAILED);
            assert_string_equal(j.error_code, "io_error");
            assert_string_equal(j.error_message, "boom 3");
            assert_true(j.error_retryable);
        }
        sp_job_clear(&j);
        sp_job_clear(&job);
    }
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "r", &s, &err), 0);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.retried, 2);
    assert_int_equal(s.failed, 1);
    const char *score = sp_test_redis_cli(&R, "ZSCORE %sq:r:dead %s", prefix, id);
    assert_non_null(score);
    assert_true(atoll(score) > 0);

    /* Requeue from the dead-letter set: it runs again with fresh attempts. */
    assert_int_equal(sp_queue_requeue(q, id, &err), 0);
    assert_int_equal(sp_queue_requeue(q, id, &err), SP_ESTATE);
    sp_job job;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, id);
    assert_int_equal(job.attempts, 1);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_SUCCEEDED);
    assert_int_equal(sp_queue_stat_one(q, "r", &s, &err), 0);
    assert_int_equal(s.dead, 0);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_permanent_failure_is_not_retried(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "p", 5, 10, 10, id);
    const char *queues[] = {"p"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    sp_outcome o = {SP_FINISH_FAILED, NULL, NULL, "invalid_input", "not a video", -1};
    sp_state st;
    assert_int_equal(sp_consumer_finish(c, &job, &o, false, &st, &err), 0);
    assert_int_equal(st, SP_STATE_FAILED);
    sp_job_clear(&job);
    usleep(50000);
    maintain(q, "p", NULL);
    assert_int_equal(sp_consumer_next(c, 100, &job, &err), SP_ETIMEDOUT);
    int64_t attempts;
    assert_int_equal(state_of(q, id, &attempts), SP_STATE_FAILED);
    assert_int_equal(attempts, 1);
    sp_consumer_free(c);
    sp_queue_close(q);
}

/* ---- 3. cancel -------------------------------------------------------------------------- */

static void test_cancel_before_start_never_starts(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1], other[SP_ID_LEN + 1];
    enqueue(q, "c", 3, 100, 1000, id);
    enqueue(q, "c", 3, 100, 1000, other);
    sp_err err;
    assert_int_equal(sp_queue_cancel(q, id, 60000, &err), 0);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_CANCELLED);
    const char *queues[] = {"c"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    assert_int_equal(sp_consumer_next(c, 500, &job, &err), 0);
    assert_string_equal(job.id, other);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 200, &job, &err), SP_ETIMEDOUT);
    int64_t attempts;
    assert_int_equal(state_of(q, id, &attempts), SP_STATE_CANCELLED);
    assert_int_equal(attempts, 0);
    assert_int_equal(sp_queue_cancel(q, id, 60000, &err), SP_ESTATE);
    assert_int_equal(sp_queue_cancel(q, "00000000000000000000000000000000000", 60000, &err),
                     SP_ENOTFOUND);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_cancel_during_run_seen_within_a_second(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "c2", 3, 100, 1000, id);
    const char *queues[] = {"c2"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    sp_queue *keeper = open_q();
    int64_t t0 = sp_test_ms();
    assert_int_equal(sp_queue_cancel(q, id, 60000, &err), 1);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_RUNNING);
    bool cancel = false;
    /* The worker's keeper renews every 500 ms by default; it sees the flag on the next. */
    while (!cancel && sp_test_ms() - t0 < 2000) {
        usleep(500000);
        assert_int_equal(sp_queue_renew(keeper, job.id, job.token, 30000, 40, &cancel, &err), 0);
    }
    assert_true(cancel);
    assert_true(sp_test_ms() - t0 <= 1000);
    sp_outcome o = {SP_FINISH_CANCELLED, NULL, NULL, NULL, NULL, -1};
    sp_state st;
    assert_int_equal(sp_consumer_finish(c, &job, &o, false, &st, &err), 0);
    assert_int_equal(st, SP_STATE_CANCELLED);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_CANCELLED);
    sp_job_clear(&job);

    /* A running job whose worker died after a cancel request ends cancelled, not
     * redelivered. */
    enqueue(q, "c2", 3, 100, 1000, id);
    sp_consumer *d = open_consumer(R.url, "dies", queues, 1, 200);
    assert_int_equal(sp_consumer_next(d, 1000, &job, &err), 0);
    assert_int_equal(sp_queue_cancel(q, id, 60000, &err), 1);
    usleep(300000);
    maintain(q, "c2", NULL);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_CANCELLED);
    sp_job_clear(&job);
    sp_consumer_free(d);
    sp_consumer_free(c);
    sp_queue_close(keeper);
    sp_queue_close(q);
}

/* ---- 4. Redis restarts and outages ---------------------------------------------------- */

static void test_aof_restart_between_enqueue_and_dequeue_loses_nothing(void **state)
{
    (void)state;
    sp_test_redis aof;
    assert_int_equal(sp_test_redis_start(&aof, 1), 0);
    sp_err err;
    sp_queue *q = sp_queue_open(aof.url, prefix, &err);
    enum { N = 500 };
    static sp_enqueue e[N];
    static char ids[N][SP_ID_LEN + 1];
    int results[N];
    for (int i = 0; i < N; i++) {
        sp_id_new(ids[i]);
        e[i] = (sp_enqueue){ids[i], "test.noop", "aof", 3, 100, 1000, false, NULL, NULL,
                            NULL, NULL, 0, 0};
    }
    assert_int_equal(sp_queue_enqueue_many(q, e, N, results, &err), 0);
    assert_int_equal(sp_test_redis_restart(&aof), 0);
    const char *queues[] = {"aof"};
    sp_consumer *c = open_consumer(aof.url, "w", queues, 1, 30000);
    int got = 0;
    sp_job job;
    while (sp_consumer_next(c, 200, &job, &err) == 0) {
        finish_ok(c, &job, true);
        sp_job_clear(&job);
        got++;
    }
    assert_int_equal(got, N);
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "aof", &s, &err), 0);
    assert_int_equal(s.succeeded, N);
    sp_consumer_free(c);
    sp_queue_close(q);
    sp_test_redis_destroy(&aof);
}

static void test_consumer_reports_outage_and_resumes(void **state)
{
    (void)state;
    sp_test_redis aof;
    assert_int_equal(sp_test_redis_start(&aof, 1), 0);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        const char *queues[] = {"o"};
        sp_err err;
        sp_consumer_opts o = {aof.url, prefix, "patient", queues, 1, 30000, 60000};
        sp_consumer *c = sp_consumer_new(&o, &err);
        bool reported = false;
        int64_t end = sp_test_ms() + 30000;
        while (sp_test_ms() < end) {
            sp_job job;
            int rc = sp_consumer_next(c, 500, &job, &err);
            if (rc == SP_EREDIS) {
                if (!reported && strstr(err.msg, "Redis unavailable") &&
                    write(pfd[1], "o", 1) != 1)
                    _exit(4);
                reported = true;
                usleep(100000);
                continue;
            }
            if (rc == 0) {
                sp_outcome out = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
                int frc = sp_consumer_finish(c, &job, &out, false, NULL, &err);
                if (write(pfd[1], frc == 0 ? "d" : "x", 1) != 1)
                    _exit(4);
                _exit(0);
            }
        }
        _exit(3);
    }
    usleep(300000); /* the consumer is now blocked waiting for a job */
    sp_test_redis_stop(&aof);
    char b = 0;
    struct timeval tv = {10, 0};
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(pfd[0], &fds);
    assert_int_equal(select(pfd[0] + 1, &fds, NULL, NULL, &tv), 1);
    assert_int_equal(read(pfd[0], &b, 1), 1);
    assert_int_equal(b, 'o'); /* the outage was reported */
    usleep(500000);
    assert_int_equal(sp_test_redis_restart(&aof), 0);
    sp_err err;
    sp_queue *q = sp_queue_open(aof.url, prefix, &err);
    char id[SP_ID_LEN + 1];
    assert_int_equal(sp_id_new(id), 0);
    sp_enqueue e = {id, "test.noop", "o", 3, 100, 1000, false, NULL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    FD_ZERO(&fds);
    FD_SET(pfd[0], &fds);
    tv.tv_sec = 15;
    assert_int_equal(select(pfd[0] + 1, &fds, NULL, NULL, &tv), 1);
    assert_int_equal(read(pfd[0], &b, 1), 1);
    assert_int_equal(b, 'd');
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(WEXITSTATUS(st), 0);
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
    assert_int_equal(j.state, SP_STATE_SUCCEEDED);
    sp_job_clear(&j);
    sp_queue_close(q);
    sp_test_redis_destroy(&aof);
    close(pfd[0]);
    close(pfd[1]);
}

/* ---- the rest of the queue's surface -------------------------------------------------- */

static void test_idempotency_key_returns_first_job_or_conflict(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char a[SP_ID_LEN + 1], b[SP_ID_LEN + 1], existing[SP_ID_LEN + 1];
    sp_id_new(a);
    sp_id_new(b);
    sp_err err;
    sp_enqueue e = {a, "test.noop", "i", 3, 100, 1000, false, NULL, NULL, "key-1", "fp-A", 0,
                    60000};
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), 0);
    e.id = b;
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), 1);
    assert_string_equal(existing, a);
    e.fingerprint = "fp-B";
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), SP_ECONFLICT);
    assert_string_equal(existing, a);
    sp_job j;
    assert_int_equal(sp_queue_get(q, b, &j, &err), SP_ENOTFOUND);
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "i", &s, &err), 0);
    assert_int_equal(s.ready, 1);
    sp_queue_close(q);
}

/* An enqueue with new_id refuses an id whose job exists: it answers with that id and
 * changes nothing (no second push, the record as it was), even on a full queue. */
static void test_new_id_enqueue_refuses_an_existing_job(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1], existing[SP_ID_LEN + 1] = "";
    sp_id_new(id);
    sp_err err;
    sp_enqueue e = {id, "test.noop", "n", 3, 100, 1000, false, "{\"v\":1}", NULL, NULL, NULL,
                    1, 0};
    e.new_id = true;
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), 0);
    e.params_json = "{\"v\":2}";
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), 1);
    assert_string_equal(existing, id);
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
    assert_string_equal(j.params, "{\"v\":1}");
    sp_job_clear(&j);
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "n", &s, &err), 0);
    assert_int_equal(s.ready, 1);
    assert_int_equal(s.enqueued, 1);
    /* Without the flag the same id is written over (what new_id prevents). */
    e.new_id = false;
    e.queue_limit = 0;
    assert_int_equal(sp_queue_enqueue(q, &e, existing, &err), 0);
    assert_int_equal(sp_queue_stat_one(q, "n", &s, &err), 0);
    assert_int_equal(s.ready, 2);
    sp_queue_close(q);
}

static void test_queue_limit_rejects_when_full(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    sp_err err;
    for (int i = 0; i < 4; i++) {
        char id[SP_ID_LEN + 1];
        sp_id_new(id);
        sp_enqueue e = {id, "test.noop", "l", 3, 100, 1000, false, NULL, NULL, NULL, NULL, 3,
                        0};
        assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), i < 3 ? 0 : SP_EFULL);
    }
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "l", &s, &err), 0);
    assert_int_equal(s.ready, 3);
    assert_int_equal(s.enqueued, 3);
    sp_queue_close(q);
}

static void test_finished_job_expires_after_retention(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "ret", 3, 100, 1000, id);
    const char *queues[] = {"ret"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    sp_err err;
    const char *ttl = sp_test_redis_cli(&R, "PTTL %sjob:%s", prefix, id);
    assert_string_equal(ttl, "-1"); /* live jobs never expire */
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    ttl = sp_test_redis_cli(&R, "PTTL %sjob:%s", prefix, id);
    assert_non_null(ttl);
    assert_in_range(atoll(ttl), 50000, 60000); /* the consumer's 60 s retention */
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_multi_queue_wait_takes_first_arrival(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    const char *queues[] = {"hi", "lo"};
    sp_consumer *c = open_consumer(R.url, "multi", queues, 2, 30000);
    sp_err err;
    pid_t pid = fork();
    if (pid == 0) {
        usleep(200000);
        sp_queue *pq = sp_queue_open(R.url, prefix, &err);
        char id[SP_ID_LEN + 1];
        sp_id_new(id);
        sp_enqueue e = {id, "test.noop", "lo", 3, 100, 1000, false, NULL, NULL, NULL, NULL, 0, 0};
        _exit(sp_queue_enqueue(pq, &e, NULL, &err) == 0 ? 0 : 3);
    }
    sp_job job;
    int64_t t0 = sp_test_ms();
    assert_int_equal(sp_consumer_next(c, 5000, &job, &err), 0);
    int64_t waited = sp_test_ms() - t0;
    assert_in_range(waited, 150, 1000);
    assert_string_equal(job.queue, "lo");
    waitpid(pid, NULL, 0);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    /* Nothing stranded on the other queue's claim list; the other wait was released. */
    const char *len = sp_test_redis_cli(&R, "LLEN %sw:multi:claim:hi", prefix);
    assert_string_equal(len, "0");
    /* Preference order: with both queues non-empty, the first queue wins. */
    char lo[SP_ID_LEN + 1], hi[SP_ID_LEN + 1];
    enqueue(q, "lo", 3, 100, 1000, lo);
    enqueue(q, "hi", 3, 100, 1000, hi);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, hi);
    finish_ok(c, &job, true);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, lo);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

/* enqueue_many sends runs of plain enqueues as one transaction each: every job still
 * gets its own result, each queue keeps its order (high priority at the front, LIFO
 * as for single enqueues), an idempotent enqueue in the middle goes through its script,
 * and a job that fails validation stops the call there. */
static void test_enqueue_many_batches_keep_order_and_results(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    enum { N = 300, IDEM = 150, BAD = 280 };
    static sp_enqueue e[N];
    static char ids[N][SP_ID_LEN + 1];
    int results[N];
    const char *want[2][N]; /* per queue, the order consumers must see */
    int nwant[2] = {0, 0}, nhigh[2] = {0, 0};
    for (int i = 0; i < N; i++) {
        sp_id_new(ids[i]);
        int qi = i % 3 == 0;
        e[i] = (sp_enqueue){ids[i], i == BAD ? "" : "test.noop", qi ? "mb" : "ma", 3, 100,
                            1000, i % 7 == 0, NULL, NULL, NULL, NULL, 0, 0};
        if (i == IDEM) {
            e[i].idem_key = "batch-key";
            e[i].fingerprint = "fp";
        }
    }
    sp_err err;
    assert_int_equal(sp_queue_enqueue_many(q, e, N, results, &err), SP_EINVAL);
    for (int i = 0; i < N; i++)
        assert_int_equal(results[i], i < BAD ? 0 : SP_EINVAL);
    /* Expected order: high-priority jobs newest first, then the rest oldest first. */
    for (int qi = 0; qi < 2; qi++) {
        for (int i = BAD - 1; i >= 0; i--)
            if ((i % 3 == 0) == qi && e[i].high_priority)
                want[qi][nwant[qi]++] = ids[i], nhigh[qi]++;
        for (int i = 0; i < BAD; i++)
            if ((i % 3 == 0) == qi && !e[i].high_priority)
                want[qi][nwant[qi]++] = ids[i];
    }
    const char *names[] = {"ma", "mb"};
    for (int qi = 0; qi < 2; qi++) {
        sp_queue_stat s;
        assert_int_equal(sp_queue_stat_one(q, names[qi], &s, &err), 0);
        assert_int_equal(s.enqueued, nwant[qi]);
        assert_int_equal(s.ready, nwant[qi]);
        const char *queues[] = {names[qi]};
        sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
        sp_job job;
        for (int k = 0; k < nwant[qi]; k++) {
            assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
            assert_string_equal(job.id, want[qi][k]);
            assert_string_equal(job.queue, names[qi]);
            assert_int_equal(job.state, SP_STATE_RUNNING);
            assert_true(job.created_at > 0);
            finish_ok(c, &job, false);
            sp_job_clear(&job);
        }
        assert_int_equal(sp_consumer_next(c, 100, &job, &err), SP_ETIMEDOUT);
        sp_consumer_free(c);
    }
    assert_true(nhigh[0] > 0 && nhigh[1] > 0);
    /* The idempotent one was recorded under its key; the rejected ones not at all. */
    char existing[SP_ID_LEN + 1];
    assert_int_equal(sp_queue_idem_lookup(q, "batch-key", existing, &err), 1);
    assert_string_equal(existing, ids[IDEM]);
    sp_job gone;
    assert_int_equal(sp_queue_get(q, ids[BAD + 1], &gone, &err), SP_ENOTFOUND);
    sp_job_clear(&gone);
    sp_queue_close(q);
}

static void test_high_priority_jumps_the_queue(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char a[SP_ID_LEN + 1], b[SP_ID_LEN + 1], urgent[SP_ID_LEN + 1];
    enqueue(q, "pr", 3, 100, 1000, a);
    enqueue(q, "pr", 3, 100, 1000, b);
    sp_id_new(urgent);
    sp_err err;
    sp_enqueue e = {urgent, "test.noop", "pr", 3, 100, 1000, true, NULL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    const char *queues[] = {"pr"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    const char *order[] = {urgent, a, b};
    for (int i = 0; i < 3; i++) {
        sp_job job;
        assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
        assert_string_equal(job.id, order[i]);
        assert_int_equal(job.high_priority, i == 0);
        finish_ok(c, &job, true);
        sp_job_clear(&job);
    }
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_release_gives_job_back_without_counting_attempt(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "rel", 3, 100, 1000, id);
    const char *queues[] = {"rel"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    sp_outcome o = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
    sp_state st;
    assert_int_equal(sp_consumer_finish(c, &job, &o, false, &st, &err), 0);
    assert_int_equal(st, SP_STATE_QUEUED);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, id);
    assert_int_equal(job.attempts, 1);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_list_and_stats(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char ids[5][SP_ID_LEN + 1];
    for (int i = 0; i < 5; i++) {
        enqueue(q, "ls", 3, 100, 1000, ids[i]);
        usleep(2000); /* order is by creation millisecond */
    }
    sp_err err;
    assert_int_equal(sp_queue_cancel(q, ids[1], 60000, &err), 0);
    sp_job out[10];
    size_t n;
    sp_list_filter f = {false, SP_STATE_QUEUED, NULL, 10};
    assert_int_equal(sp_queue_list(q, &f, out, &n, &err), 0);
    assert_int_equal(n, 5);
    assert_string_equal(out[0].id, ids[4]); /* newest first */
    for (size_t i = 0; i < n; i++)
        sp_job_clear(&out[i]);
    f = (sp_list_filter){true, SP_STATE_CANCELLED, NULL, 10};
    assert_int_equal(sp_queue_list(q, &f, out, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, ids[1]);
    sp_job_clear(&out[0]);
    f = (sp_list_filter){false, SP_STATE_QUEUED, "other.type", 10};
    assert_int_equal(sp_queue_list(q, &f, out, &n, &err), 0);
    assert_int_equal(n, 0);
    f = (sp_list_filter){true, SP_STATE_QUEUED, "test.noop", 2};
    assert_int_equal(sp_queue_list(q, &f, out, &n, &err), 0);
    assert_int_equal(n, 2);
    sp_job_clear(&out[0]);
    sp_job_clear(&out[1]);
    sp_queue_stat s[4];
    assert_int_equal(sp_queue_stats(q, s, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(s[0].name, "ls");
    assert_int_equal(s[0].ready, 4);
    assert_int_equal(s[0].cancelled, 1);
    assert_int_equal(s[0].enqueued, 5);
    sp_queue_close(q);
}

static void test_events_report_job_changes(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "ev", 3, 100, 1000, id);
    sp_err err;
    sp_events *ev = sp_events_open(R.url, prefix, &err);
    assert_non_null(ev);
    assert_int_equal(sp_events_watch(ev, id, &err), 0);
    usleep(50000);
    assert_int_equal(sp_queue_cancel(q, id, 60000, &err), 0);
    char got[SP_ID_LEN + 1], what[32];
    int rc = 0;
    int64_t end = sp_test_ms() + 2000;
    while (rc == 0 && sp_test_ms() < end) {
        rc = sp_events_read(ev, got, what, &err);
        if (rc == 0)
            usleep(5000);
    }
    assert_int_equal(rc, 1);
    assert_string_equal(got, id);
    assert_string_equal(what, "cancelled");
    assert_int_equal(sp_events_unwatch(ev, id, &err), 0);
    sp_events_close(ev);
    sp_queue_close(q);
}

/* What a consumer's on_finished reported. */
typedef struct finished_log {
    int n;
    char ids[16][SP_ID_LEN + 1];
    sp_state states[16];
    int rcs[16];
} finished_log;

static void on_finished(void *arg, const sp_finished *f)
{
    finished_log *l = arg;
    if (l->n < 16) {
        memcpy(l->ids[l->n], f->id, SP_ID_LEN + 1);
        l->states[l->n] = f->state;
        l->rcs[l->n] = f->rc;
    }
    l->n++;
}

static void test_prefetch_batches_and_gives_back(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    sp_queue *keeper = open_q(); /* another thread's connection */
    char ids[6][SP_ID_LEN + 1];
    for (int i = 0; i < 6; i++) {
        enqueue(q, "pf", 3, 100, 1000, ids[i]);
        usleep(2000);
    }
    const char *queues[] = {"pf"};
    sp_err err;
    finished_log log = {0};
    sp_consumer_opts o = {R.url, prefix, "fetcher", queues, 1, 30000, 60000, 1000,
                          on_finished, &log};
    sp_consumer *c = sp_consumer_new(&o, &err);
    assert_non_null(c);
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    sp_state st = SP_STATE_QUEUED;
    sp_job job;
    /* The first job tells how long jobs take; its finish is recorded at once and
     * claims the rest in the same step. */
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, ids[0]);
    assert_int_equal(sp_consumer_finish(c, &job, &ok, true, &st, &err), 0);
    assert_int_equal(st, SP_STATE_SUCCEEDED);
    sp_job_clear(&job);
    assert_int_equal(log.n, 1);
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sw:fetcher:claim:pf", prefix), "5");
    /* One step starts all five; they run in order. */
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, ids[1]);
    assert_int_equal(job.attempts, 1);
    assert_string_equal(job.params, "{\"n\":1}");
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sw:fetcher:claim:pf", prefix), "0");
    for (int i = 1; i < 6; i++)
        assert_int_equal(state_of(q, ids[i], NULL), SP_STATE_RUNNING);
    sp_consumer *other = open_consumer(R.url, "other", queues, 1, 30000);
    sp_job j2;
    assert_int_equal(sp_consumer_next(other, 100, &j2, &err), SP_ETIMEDOUT);
    /* Finishes are held back while a started job waits to run... */
    assert_int_equal(sp_consumer_finish(c, &job, &ok, true, NULL, &err), 1);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, ids[2]);
    assert_int_equal(sp_consumer_finish(c, &job, &ok, true, NULL, &err), 1);
    sp_job_clear(&job);
    assert_int_equal(state_of(q, ids[1], NULL), SP_STATE_RUNNING);
    assert_int_equal(log.n, 1);
    /* ...until a flush, here from another connection as a worker's keeper does. */
    assert_int_equal(sp_consumer_flush(c, keeper, &err), 0);
    assert_int_equal(log.n, 3);
    for (int i = 1; i < 3; i++) {
        assert_string_equal(log.ids[i], ids[i]);
        assert_int_equal(log.states[i], SP_STATE_SUCCEEDED);
        assert_int_equal(state_of(q, ids[i], NULL), SP_STATE_SUCCEEDED);
    }
    /* Job 3 turns out long: the two jobs started behind it go back, in order and with
     * their attempts not counted, and the other consumer runs them. */
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, ids[3]);
    assert_int_equal(sp_consumer_give_back(c, keeper, &err), 0);
    assert_int_equal(log.n, 5);
    for (int i = 4; i < 6; i++) {
        int64_t attempts;
        assert_int_equal(state_of(q, ids[i], &attempts), SP_STATE_QUEUED);
        assert_int_equal(attempts, 0);
        assert_int_equal(sp_consumer_next(other, 1000, &j2, &err), 0);
        assert_string_equal(j2.id, ids[i]);
        assert_int_equal(j2.attempts, 1);
        finish_ok(other, &j2, false);
        sp_job_clear(&j2);
    }
    /* Job 3 ends; nothing is left for its consumer. */
    assert_int_equal(sp_consumer_finish(c, &job, &ok, true, &st, &err), 0);
    assert_int_equal(st, SP_STATE_SUCCEEDED);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 200, &job, &err), SP_ETIMEDOUT);
    assert_int_equal(log.n, 6);
    for (int i = 0; i < 6; i++) {
        int64_t attempts;
        assert_int_equal(state_of(q, ids[i], &attempts), SP_STATE_SUCCEEDED);
        assert_int_equal(attempts, 1);
    }
    for (int i = 0; i < log.n; i++)
        assert_int_equal(log.rcs[i], 0);
    sp_consumer_free(other);
    sp_consumer_free(c);
    sp_queue_close(keeper);
    sp_queue_close(q);
}

/* A job held ahead for half its lease (no keeper gave it back) is not run on the old
 * lease: it goes back and is started afresh, attempt not counted. */
static void test_prefetch_does_not_run_a_job_on_a_stale_lease(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char ids[3][SP_ID_LEN + 1];
    for (int i = 0; i < 3; i++)
        enqueue(q, "pf", 3, 100, 1000, ids[i]);
    const char *queues[] = {"pf"};
    sp_err err;
    sp_consumer_opts o = {R.url, prefix, "slow", queues, 1, 1000, 60000, 1000};
    sp_consumer *c = sp_consumer_new(&o, &err);
    assert_non_null(c);
    sp_job job;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    finish_ok(c, &job, true);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0); /* starts 1 and 2 */
    assert_string_equal(job.id, ids[1]);
    char old[SP_TOKEN_LEN + 1];
    snprintf(old, sizeof old, "%s", sp_test_redis_cli(&R, "HGET %sjob:%s token", prefix, ids[2]));
    assert_int_equal(strlen(old), SP_TOKEN_LEN);
    usleep(600 * 1000); /* job 1 runs past half the lease */
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(c, &job, &ok, true, NULL, &err), 1);
    sp_job_clear(&job);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, ids[2]);
    assert_int_equal(job.attempts, 1);
    assert_string_not_equal(job.token, old);
    assert_true(job.lease_until > sp_now_ms() + 700);
    assert_int_equal(state_of(q, ids[1], NULL), SP_STATE_SUCCEEDED);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

/* Finishes held back when Redis restarts are recorded once it is back: every job ends
 * succeeded after one attempt. */
static void test_prefetch_held_finishes_survive_a_redis_restart(void **state)
{
    (void)state;
    sp_test_redis aof;
    assert_int_equal(sp_test_redis_start(&aof, 1), 0);
    sp_err err;
    sp_queue *q = sp_queue_open(aof.url, prefix, &err);
    assert_non_null(q);
    enum { N = 10 };
    char ids[N][SP_ID_LEN + 1];
    for (int i = 0; i < N; i++)
        enqueue(q, "pf", 3, 100, 1000, ids[i]);
    const char *queues[] = {"pf"};
    sp_consumer_opts o = {aof.url, prefix, "restarter", queues, 1, 30000, 60000, 1000};
    sp_consumer *c = sp_consumer_new(&o, &err);
    assert_non_null(c);
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    int ran = 0, held = 0;
    for (int tries = 0; tries < 100; tries++) {
        sp_job job;
        int rc = sp_consumer_next(c, 200, &job, &err);
        if (rc == SP_ETIMEDOUT)
            break;
        if (rc == SP_EREDIS) {
            usleep(100 * 1000);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(job.attempts, 1);
        ran++;
        int frc;
        for (int k = 0; (frc = sp_consumer_finish(c, &job, &ok, true, NULL, &err)) == SP_EREDIS &&
                        k < 50; k++)
            usleep(100 * 1000);
        assert_true(frc == 0 || frc == 1);
        held += frc;
        sp_job_clear(&job);
        if (ran == 3) {
            assert_true(held > 0); /* finishes are held back now */
            assert_int_equal(sp_test_redis_restart(&aof), 0);
        }
    }
    assert_int_equal(ran, N);
    sp_consumer_free(c);
    for (int i = 0; i < N; i++) {
        int64_t attempts;
        assert_int_equal(state_of(q, ids[i], &attempts), SP_STATE_SUCCEEDED);
        assert_int_equal(attempts, 1);
    }
    sp_queue_close(q);
    sp_test_redis_destroy(&aof);
}

/* A consumer stopping with finishes held back records them as it goes. */
static void test_prefetch_free_records_held_finishes(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char ids[4][SP_ID_LEN + 1];
    for (int i = 0; i < 4; i++)
        enqueue(q, "pf", 3, 100, 1000, ids[i]);
    const char *queues[] = {"pf"};
    sp_err err;
    sp_consumer_opts o = {R.url, prefix, "quitter", queues, 1, 30000, 60000, 1000};
    sp_consumer *c = sp_consumer_new(&o, &err);
    assert_non_null(c);
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    int held = 0;
    for (int i = 0; i < 3; i++) {
        sp_job job;
        assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
        int rc = sp_consumer_finish(c, &job, &ok, true, NULL, &err);
        assert_true(rc == 0 || rc == 1);
        held += rc;
        sp_job_clear(&job);
    }
    assert_true(held > 0);
    sp_consumer_free(c);
    for (int i = 0; i < 4; i++) {
        int64_t attempts;
        sp_state st = state_of(q, ids[i], &attempts);
        /* Three ran; the fourth was started ahead and went back unrun. */
        assert_int_equal(st, i < 3 ? SP_STATE_SUCCEEDED : SP_STATE_QUEUED);
        assert_int_equal(attempts, i < 3 ? 1 : 0);
    }
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sq:pf:ready", prefix), "1");
    sp_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_many_producers_and_consumers_complete_each_job_once,
                               setup_test),
        cmocka_unit_test_setup(test_retry_delay_within_full_jitter_bounds, setup_test),
        cmocka_unit_test_setup(test_retries_back_off_then_dead_letter_then_requeue, setup_test),
        cmocka_unit_test_setup(test_permanent_failure_is_not_retried, setup_test),
        cmocka_unit_test_setup(test_cancel_before_start_never_starts, setup_test),
        cmocka_unit_test_setup(test_cancel_during_run_seen_within_a_second, setup_test),
        cmocka_unit_test_setup(test_aof_restart_between_enqueue_and_dequeue_loses_nothing,
                               setup_test),
        cmocka_unit_test_setup(test_consumer_reports_outage_and_resumes, setup_test),
        cmocka_unit_test_setup(test_idempotency_key_returns_first_job_or_conflict, setup_test),
        cmocka_unit_test_setup(test_new_id_enqueue_refuses_an_existing_job, setup_test),
        cmocka_unit_test_setup(test_queue_limit_rejects_when_full, setup_test),
        cmocka_unit_test_setup(test_finished_job_expires_after_retention, setup_test),
        cmocka_unit_test_setup(test_multi_queue_wait_takes_first_arrival, setup_test),
        cmocka_unit_test_setup(test_enqueue_many_batches_keep_order_and_results, setup_test),
        cmocka_unit_test_setup(test_high_priority_jumps_the_queue, setup_test),
        cmocka_unit_test_setup(test_release_gives_job_back_without_counting_attempt,
                               setup_test),
        cmocka_unit_test_setup(test_list_and_stats, setup_test),
        cmocka_unit_test_setup(test_events_report_job_changes, setup_test),
        cmocka_unit_test_setup(test_prefetch_batches_and_gives_back, setup_test),
        cmocka_unit_test_setup(test_prefetch_free_records_held_finishes, setup_test),
        cmocka_unit_test_setup(test_prefetch_held_finishes_survive_a_redis_restart, setup_test),
        cmocka_unit_test_setup(test_prefetch_does_not_run_a_job_on_a_stale_lease, setup_test),
    };
    return cmocka_run_group_tests_name("queue", tests, group_setup, group_teardown);
}

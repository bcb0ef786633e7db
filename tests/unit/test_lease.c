/* test_lease.c - what keeps running jobs safe, against a real redis-server: leases
 * (expiry, renewal, fencing), the worker registry, and a silent worker's running jobs
 * going back after its heartbeat TTL rather than its lease (expire.lua). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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

/* A consumer for worker wid; with ttl_ms > 0 its jobs may go back once the worker (which
 * the test makes beat with beat()) and the job have both been silent that long. */
static sp_consumer *open_consumer_ttl(const char *wid, const char *const *queues, size_t n,
                                      int64_t lease_ms, int64_t ttl_ms)
{
    sp_err err;
    sp_consumer_opts o = {R.url, prefix, wid, queues, n, lease_ms, 60000};
    o.worker_ttl_ms = ttl_ms;
    sp_consumer *c = sp_consumer_new(&o, &err);
    if (c == NULL)
        fail_msg("sp_consumer_new: %s", err.msg);
    return c;
}

/* A heartbeat of worker wid, which takes jobs from queue, from its process run ("":
 * none). */
static void beat_run(sp_queue *q, const char *wid, const char *queue, int64_t ttl_ms,
                     const char *run)
{
    sp_worker_info w;
    memset(&w, 0, sizeof w);
    snprintf(w.id, sizeof w.id, "%s", wid);
    snprintf(w.queues, sizeof w.queues, "%s", queue);
    snprintf(w.run, sizeof w.run, "%s", run);
    sp_err err;
    if (sp_queue_worker_beat(q, &w, ttl_ms, &err) != 0)
        fail_msg("beat %s: %s", wid, err.msg);
}

static void beat(sp_queue *q, const char *wid, const char *queue, int64_t ttl_ms)
{
    beat_run(q, wid, queue, ttl_ms, "");
}

/* Another worker, "watcher", beats and runs maintenance every 20 ms until job id is no
 * longer running or until_ms (a sp_test_ms time) passes. Returns the job's state and
 * adds up the reports in *sum (may be NULL). */
static sp_state watch_until(sp_queue *q, const char *queue, const char *id, int64_t ttl_ms,
                            int64_t until_ms, sp_maint_report *sum)
{
    sp_state st;
    for (;;) {
        beat(q, "watcher", queue, ttl_ms);
        sp_maint_report r;
        maintain(q, queue, &r);
        if (sum) {
            sum->expired += r.expired;
            sum->workers_reaped += r.workers_reaped;
        }
        st = state_of(q, id, NULL);
        if (st != SP_STATE_RUNNING || sp_test_ms() >= until_ms)
            return st;
        usleep(20000);
    }
}

static void error_of(sp_queue *q, const char *id, char *code, size_t n, char *msg, size_t m)
{
    sp_job j;
    sp_err err;
    assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
    assert_true(j.has_error);
    snprintf(code, n, "%s", j.error_code);
    snprintf(msg, m, "%s", j.error_message);
    sp_job_clear(&j);
}

/* ---- 1. a consumer killed mid-job: redelivered after its lease, done once --------- */

static void test_killed_consumer_job_redelivered_after_lease(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "k", 3, 100, 1000, id);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        const char *queues[] = {"k"};
        sp_err err;
        sp_consumer_opts o = {R.url, prefix, "victim", queues, 1, 1000, 60000};
        sp_consumer *c = sp_consumer_new(&o, &err);
        sp_job job;
        if (c == NULL || sp_consumer_next(c, 2000, &job, &err) != 0)
            _exit(3);
        if (write(pfd[1], "s", 1) != 1)
            _exit(4);
        pause(); /* "working" until killed */
        _exit(0);
    }
    char b;
    assert_int_equal(read(pfd[0], &b, 1), 1);
    assert_int_equal(kill(pid, SIGKILL), 0);
    waitpid(pid, NULL, 0);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_RUNNING);

    /* Another consumer, running maintenance as every worker does, gets it once the
     * 1 s lease has run out, and not before. */
    const char *queues[] = {"k"};
    sp_consumer *c = open_consumer(R.url, "rescuer", queues, 1, 30000);
    int64_t t0 = sp_test_ms();
    sp_job job;
    sp_err err;
    int rc;
    do {
        sp_maint_report r;
        maintain(q, "k", &r);
        rc = sp_consumer_next(c, 50, &job, &err);
    } while (rc == SP_ETIMEDOUT && sp_test_ms() - t0 < 10000);
    assert_int_equal(rc, 0);
    assert_string_equal(job.id, id);
    assert_int_equal(job.attempts, 2);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    int64_t attempts;
    assert_int_equal(state_of(q, id, &attempts), SP_STATE_SUCCEEDED);
    assert_int_equal(attempts, 2);
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "k", &s, &err), 0);
    assert_int_equal(s.succeeded, 1);
    assert_int_equal(s.expired, 1);
    sp_consumer_free(c);
    sp_queue_close(q);
    close(pfd[0]);
    close(pfd[1]);
}

/* ---- 2. fencing: an expired lease cannot complete or fail the job ------------------- */

static void test_expired_lease_cannot_complete_or_fail(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "f", 3, 100, 1000, id);
    const char *queues[] = {"f"};
    sp_consumer *a = open_consumer(R.url, "slow", queues, 1, 300);
    sp_consumer *b = open_consumer(R.url, "fast", queues, 1, 30000);
    sp_job ja, jb;
    sp_err err;
    assert_int_equal(sp_consumer_next(a, 1000, &ja, &err), 0);
    usleep(500000); /* a stalls past its 300 ms lease */

    /* Expired but not yet reaped: a still cannot finish. */
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[{\"name\":\"stale\"}]", NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(a, &ja, &ok, false, NULL, &err), SP_ELOST);
    bool cancel;
    assert_int_equal(sp_queue_renew(q, ja.id, ja.token, 300, 50, &cancel, &err), SP_ELOST);

    sp_maint_report r;
    maintain(q, "f", &r);
    assert_int_equal(r.expired, 1);
    assert_int_equal(sp_consumer_next(b, 1000, &jb, &err), 0);
    assert_string_equal(jb.id, id);
    assert_string_not_equal(jb.token, ja.token);

    /* Now another attempt owns it: a's success, failure and renewal are all refused. */
    assert_int_equal(sp_consumer_finish(a, &ja, &ok, false, NULL, &err), SP_ELOST);
    sp_outcome bad = {SP_FINISH_FAILED, NULL, NULL, "boom", "stale failure", -1};
    assert_int_equal(sp_consumer_finish(a, &ja, &bad, false, NULL, &err), SP_ELOST);
    assert_int_equal(sp_queue_renew(q, ja.id, ja.token, 300, 50, &cancel, &err), SP_ELOST);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_RUNNING);

    sp_outcome good = {SP_FINISH_SUCCEEDED, "[{\"name\":\"fresh\"}]", NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(b, &jb, &good, false, NULL, &err), 0);
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
    assert_int_equal(j.state, SP_STATE_SUCCEEDED);
    assert_int_equal(j.attempts, 2);
    assert_string_equal(j.outputs, "[{\"name\":\"fresh\"}]");
    assert_false(j.has_error);
    sp_job_clear(&j);
    sp_job_clear(&ja);
    sp_job_clear(&jb);
    sp_consumer_free(a);
    sp_consumer_free(b);
    sp_queue_close(q);
}

/* ---- 3. a job that outlives its lease but renews it is never redelivered ----------- */

static void test_renewed_long_job_not_redelivered(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "long", 3, 100, 1000, id);
    const char *queues[] = {"long"};
    sp_consumer *c = open_consumer(R.url, "worker-a", queues, 1, 400);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);

    /* A rival runs maintenance and tries to take jobs the whole time. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t rival = fork();
    if (rival == 0) {
        close(pfd[1]);
        sp_queue *rq = sp_queue_open(R.url, prefix, &err);
        sp_consumer_opts o = {R.url, prefix, "rival", queues, 1, 30000, 60000};
        sp_consumer *rc = sp_consumer_new(&o, &err);
        int got = 0;
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        char b;
        while (read(pfd[0], &b, 1) != 1) {
            const char *qs[] = {"long"};
            sp_queue_maintain(rq, qs, 1, 60000, NULL, &err);
            sp_job j;
            if (sp_consumer_next(rc, 20, &j, &err) == 0) {
                got++;
                sp_job_clear(&j);
            }
        }
        _exit(got);
    }
    close(pfd[0]);
    /* Work for 5 lease lengths, renewing every 100 ms like the worker keeper does. */
    sp_queue *keeper = open_q();
    int64_t end = sp_test_ms() + 2000;
    int renewals = 0;
    while (sp_test_ms() < end) {
        bool cancel = true;
        assert_int_equal(sp_queue_renew(keeper, job.id, job.token, 400, 50, &cancel, &err), 0);
        assert_false(cancel);
        renewals++;
        usleep(100000);
    }
    assert_true(renewals >= 15);
    finish_ok(c, &job, false);
    assert_int_equal(write(pfd[1], "x", 1), 1);
    int st;
    waitpid(rival, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* the rival never got the job */
    int64_t attempts;
    assert_int_equal(state_of(q, id, &attempts), SP_STATE_SUCCEEDED);
    assert_int_equal(attempts, 1);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(keeper);
    sp_queue_close(q);
    close(pfd[1]);
}


/* ---- 4. the worker registry: a dead worker's claimed jobs go back ------------------ */

static void test_dead_worker_claimed_job_goes_back(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char first[SP_ID_LEN + 1], second[SP_ID_LEN + 1];
    enqueue(q, "dw", 3, 100, 1000, first);
    enqueue(q, "dw", 3, 100, 1000, second);
    pid_t pid = fork();
    if (pid == 0) {
        /* Finish the first job and claim the second in the same step, then die. A
         * consumer that prefetches claims ahead (one that does not takes and starts
         * the next job in that step: test_finish_takes_the_next_job). */
        const char *queues[] = {"dw"};
        sp_err err;
        sp_queue *wq = sp_queue_open(R.url, prefix, &err);
        sp_worker_info w = {0};
        snprintf(w.id, sizeof w.id, "doomed");
        snprintf(w.queues, sizeof w.queues, "dw");
        sp_queue_worker_beat(wq, &w, 300, &err);
        sp_consumer_opts o = {R.url, prefix, "doomed", queues, 1, 30000, 60000, 1000};
        sp_consumer *c = sp_consumer_new(&o, &err);
        sp_job job;
        if (sp_consumer_next(c, 1000, &job, &err) != 0)
            _exit(3);
        sp_outcome out = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
        if (sp_consumer_finish(c, &job, &out, true, NULL, &err) < 0)
            _exit(4);
        _exit(0); /* no cleanup: the claimed job is stranded */
    }
    int st;
    waitpid(pid, &st, 0);
    assert_int_equal(WEXITSTATUS(st), 0);
    sp_err err;
    size_t n;
    sp_worker_info ws[4];
    assert_int_equal(sp_queue_workers(q, ws, 4, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ws[0].id, "doomed");
    assert_int_equal(state_of(q, second, NULL), SP_STATE_QUEUED);
    const char *queues[] = {"dw"};
    sp_consumer *c = open_consumer(R.url, "heir", queues, 1, 30000);
    sp_job job;
    assert_int_equal(sp_consumer_next(c, 100, &job, &err), SP_ETIMEDOUT);
    usleep(400000); /* the heartbeat runs out */
    sp_maint_report r;
    maintain(q, "dw", &r);
    assert_int_equal(r.workers_reaped, 1);
    assert_int_equal(r.reclaimed, 1);
    assert_int_equal(sp_queue_workers(q, ws, 4, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, second);
    assert_int_equal(job.attempts, 1); /* a claim that never started costs no attempt */
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

/* Without prefetch, a finish that takes the next job starts it in the same step: the
 * next sp_consumer_next hands it out without a round trip, and it is running (its
 * attempt counted) until it is finished or given back. */
static void test_finish_takes_the_next_job(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char first[SP_ID_LEN + 1], second[SP_ID_LEN + 1];
    enqueue(q, "tn", 3, 100, 1000, first);
    enqueue(q, "tn", 3, 100, 1000, second);
    const char *queues[] = {"tn"};
    sp_consumer *c = open_consumer(R.url, "taker", queues, 1, 30000);
    sp_err err;
    sp_job job;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_string_equal(job.id, first);
    finish_ok(c, &job, true);
    sp_job_clear(&job);
    assert_int_equal(state_of(q, second, NULL), SP_STATE_RUNNING);
    assert_string_equal(sp_test_redis_cli(&R, "LLEN %sq:tn:ready", prefix), "0");
    assert_int_equal(sp_consumer_next(c, 0, &job, &err), 0);
    assert_string_equal(job.id, second);
    assert_int_equal(job.attempts, 1);
    assert_true(job.token[0] != '\0');
    /* Given back unrun (shutting down): queued again, the attempt not counted. */
    sp_outcome rel = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(c, &job, &rel, false, NULL, &err), 0);
    sp_job_clear(&job);
    sp_job rec;
    assert_int_equal(sp_queue_get(q, second, &rec, &err), 0);
    assert_int_equal(rec.state, SP_STATE_QUEUED);
    assert_int_equal(rec.attempts, 0);
    sp_job_clear(&rec);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_metadata_annotation_is_fenced(void **state)
{
    (void)state;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "meta", 3, 100, 1000, id);
    const char *queues[] = {"meta"};
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_int_equal(sp_queue_annotate(q, id, job.token, "{\"pages\":3}", &err), 0);
    assert_int_equal(sp_queue_annotate(q, id, "not-the-token", "{\"pages\":9}", &err), SP_ELOST);
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), 0);
    assert_string_equal(j.metadata, "{\"pages\":3}");
    sp_job_clear(&j);
    finish_ok(c, &job, false);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}


/* ---- 5. a silent worker's running jobs go back after its TTL, not its lease ---------- */

static void test_silent_worker_job_goes_back_after_the_ttl_not_the_lease(void **state)
{
    (void)state;
    const int64_t ttl = 500;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "sw", 3, 100, 1000, id);
    const char *queues[] = {"sw"};
    beat(q, "watcher", "sw", ttl);
    beat(q, "gone", "sw", ttl);
    sp_consumer *c = open_consumer_ttl("gone", queues, 1, 30000, ttl);
    sp_job job;
    sp_err err;
    bool cancel;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    assert_int_equal(sp_queue_renew(q, job.id, job.token, 30000, 10, &cancel, &err), 0);
    int64_t last = sp_test_ms();
    beat(q, "watcher", "sw", ttl);

    /* "gone" neither beats nor renews from now on (killed, frozen, cut off). */
    sp_maint_report sum = {0, 0, 0, 0};
    sp_state st = watch_until(q, "sw", id, ttl, last + 5000, &sum);
    int64_t took = sp_test_ms() - last;
    assert_int_equal(st, SP_STATE_QUEUED);
    if (took < ttl - 50 || took > 3000)
        fail_msg("the job went back %lld ms after its last renewal (TTL %lld ms, lease 30 s)",
                 (long long)took, (long long)ttl);
    assert_int_equal(sum.expired, 1);
    assert_int_equal(sum.workers_reaped, 1);
    int64_t attempts;
    assert_int_equal(state_of(q, id, &attempts), SP_STATE_QUEUED);
    assert_int_equal(attempts, 1);
    char code[64], msg[256];
    error_of(q, id, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "lease_expired");
    assert_non_null(strstr(msg, "went silent"));

    /* If it was only frozen, it wakes up fenced off: no renewal, no finish. */
    assert_int_equal(sp_queue_renew(q, job.id, job.token, 30000, 50, &cancel, &err), SP_ELOST);
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[{\"name\":\"late\"}]", NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(c, &job, &ok, false, NULL, &err), SP_ELOST);
    assert_int_equal(state_of(q, id, NULL), SP_STATE_QUEUED);

    sp_consumer *heir = open_consumer_ttl("heir", queues, 1, 30000, ttl);
    sp_job again;
    assert_int_equal(sp_consumer_next(heir, 1000, &again, &err), 0);
    assert_string_equal(again.id, id);
    assert_int_equal(again.attempts, 2);
    finish_ok(heir, &again, false);
    sp_queue_stat s;
    assert_int_equal(sp_queue_stat_one(q, "sw", &s, &err), 0);
    assert_int_equal(s.succeeded, 1);
    assert_int_equal(s.expired, 1);
    sp_job_clear(&again);
    sp_job_clear(&job);
    sp_consumer_free(heir);
    sp_consumer_free(c);
    sp_queue_close(q);
}

/* The start writes no renewed_at (expire.lua takes the later of it and started_at): a
 * renewal left from an earlier attempt must not stand for the new attempt's last sign
 * of life. */
static void test_new_attempts_silence_counts_from_its_start_not_an_old_renewal(void **state)
{
    (void)state;
    const int64_t ttl = 400;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "na", 3, 100, 1000, id);
    const char *queues[] = {"na"};
    beat(q, "watcher", "na", ttl);
    beat(q, "first", "na", ttl);
    sp_consumer *c1 = open_consumer_ttl("first", queues, 1, 30000, ttl);
    sp_job job;
    sp_err err;
    bool cancel;
    assert_int_equal(sp_consumer_next(c1, 1000, &job, &err), 0);
    assert_int_equal(sp_queue_renew(q, job.id, job.token, 30000, 10, &cancel, &err), 0);
    sp_outcome rel = {SP_FINISH_RELEASE, NULL, NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(c1, &job, &rel, false, NULL, &err), 0);
    sp_job_clear(&job);
    /* Every heartbeat stops for two TTLs (a gap), then the watcher is heard again: the
     * silence since the old renewal spans the gap, the new attempt's does not. */
    usleep((useconds_t)(2 * ttl * 1000));
    beat(q, "watcher", "na", ttl);
    usleep(20000);

    /* "second" never beats (it dies right after the start): only the start vouches. */
    sp_consumer *c2 = open_consumer_ttl("second", queues, 1, 30000, ttl);
    assert_int_equal(sp_consumer_next(c2, 1000, &job, &err), 0);
    int64_t started = sp_test_ms();
    assert_string_equal(job.id, id);
    /* The job goes back a TTL after its start, not at once. */
    assert_int_equal(watch_until(q, "na", id, ttl, started + 5000, NULL), SP_STATE_QUEUED);
    int64_t took = sp_test_ms() - started;
    if (took < ttl - 50 || took > 3000)
        fail_msg("went back %lld ms after the attempt started (TTL %lld ms)", (long long)took,
                 (long long)ttl);
    sp_job_clear(&job);
    sp_consumer_free(c2);
    sp_consumer_free(c1);
    sp_queue_close(q);
}

static void test_renewed_job_stays_when_only_its_worker_heartbeat_stops(void **state)
{
    (void)state;
    const int64_t ttl = 300;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "hb", 3, 100, 1000, id);
    const char *queues[] = {"hb"};
    beat(q, "watcher", "hb", ttl);
    beat(q, "half", "hb", ttl);
    sp_consumer *c = open_consumer_ttl("half", queues, 1, 30000, ttl);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);

    /* Its heartbeat stops but its job keeps renewing: five TTLs pass, the worker is
     * reaped from the registry, and the job stays where it is. */
    sp_maint_report sum = {0, 0, 0, 0};
    int64_t end = sp_test_ms() + 5 * ttl;
    while (sp_test_ms() < end) {
        bool cancel;
        assert_int_equal(sp_queue_renew(q, job.id, job.token, 30000, 20, &cancel, &err), 0);
        assert_int_equal(watch_until(q, "hb", id, ttl, 0, &sum), SP_STATE_RUNNING);
        usleep(30000);
    }
    assert_int_equal(sum.workers_reaped, 1);
    assert_int_equal(sum.expired, 0);

    /* Once the renewals stop too, the job goes back a TTL later. */
    bool cancel;
    assert_int_equal(sp_queue_renew(q, job.id, job.token, 30000, 20, &cancel, &err), 0);
    int64_t last = sp_test_ms();
    assert_int_equal(watch_until(q, "hb", id, ttl, last + 5000, NULL), SP_STATE_QUEUED);
    int64_t took = sp_test_ms() - last;
    if (took < ttl - 50 || took > 3000)
        fail_msg("went back %lld ms after the last renewal (TTL %lld ms)", (long long)took,
                 (long long)ttl);
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_unrenewed_job_of_a_beating_worker_waits_for_its_lease(void **state)
{
    (void)state;
    const int64_t ttl = 300, lease = 1500;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "lb", 3, 100, 1000, id);
    const char *queues[] = {"lb"};
    beat(q, "stuck", "lb", ttl);
    sp_consumer *c = open_consumer_ttl("stuck", queues, 1, lease, ttl);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    int64_t t0 = sp_test_ms();

    /* The worker beats but never renews the job: its heartbeat proves the process, not
     * the job, so the job waits for the lease like one whose worker has no TTL. */
    sp_state st;
    do {
        beat(q, "stuck", "lb", ttl);
        st = watch_until(q, "lb", id, ttl, 0, NULL);
        usleep(20000);
    } while (st == SP_STATE_RUNNING && sp_test_ms() - t0 < 5000);
    int64_t took = sp_test_ms() - t0;
    assert_int_equal(st, SP_STATE_QUEUED);
    if (took < lease - 100)
        fail_msg("went back after %lld ms, before the %lld ms lease", (long long)took,
                 (long long)lease);
    char code[64], msg[256];
    error_of(q, id, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "lease_expired");
    assert_non_null(strstr(msg, "stopped renewing its lease"));
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_silence_across_a_gap_in_every_heartbeat_does_not_count(void **state)
{
    (void)state;
    const int64_t ttl = 400, lease = 2500;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "gap", 3, 100, 1000, id);
    const char *queues[] = {"gap"};
    beat(q, "watcher", "gap", ttl);
    beat(q, "w", "gap", ttl);
    sp_consumer *c = open_consumer_ttl("w", queues, 1, lease, ttl);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    int64_t t0 = sp_test_ms();

    /* Nobody beats for longer than half the TTL, as when Redis is away for everyone (or
     * its clock jumps). When the heartbeats come back, the job's silence before then
     * proves nothing about its worker: it stays until renewed or until its lease ends. */
    usleep(3 * ttl / 2 * 1000);
    assert_int_equal(watch_until(q, "gap", id, ttl, t0 + lease - 300, NULL), SP_STATE_RUNNING);
    assert_int_equal(watch_until(q, "gap", id, ttl, t0 + 5000, NULL), SP_STATE_QUEUED);
    int64_t took = sp_test_ms() - t0;
    if (took < lease - 100)
        fail_msg("went back after %lld ms, before the %lld ms lease", (long long)took,
                 (long long)lease);
    char code[64], msg[256];
    error_of(q, id, code, sizeof code, msg, sizeof msg);
    assert_non_null(strstr(msg, "stopped renewing its lease"));
    sp_job_clear(&job);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_worker_restarted_under_its_id_does_not_vouch_for_the_old_run(void **state)
{
    (void)state;
    const int64_t ttl = 400;
    sp_queue *q = open_q();
    char id[SP_ID_LEN + 1];
    enqueue(q, "rr", 3, 100, 1000, id);
    const char *queues[] = {"rr"};
    beat(q, "watcher", "rr", ttl);
    beat_run(q, "phoenix", "rr", ttl, "run-1");
    sp_consumer *c = open_consumer_ttl("phoenix", queues, 1, 30000, ttl);
    sp_job job;
    sp_err err;
    assert_int_equal(sp_consumer_next(c, 1000, &job, &err), 0);
    int64_t t0 = sp_test_ms();

    /* The process is killed and restarted under the same id (a fixed SPOOL_WORKER_ID),
     * and it was the only worker: nobody beats while it restarts, longer than half the
     * TTL. The id beats on, from a new run, and its old job still goes back after the
     * TTL: that run has ended for sure, whatever the pause in the heartbeats. */
    usleep(3 * ttl / 2 * 1000);
    sp_state st;
    do {
        beat_run(q, "phoenix", "rr", ttl, "run-2");
        st = watch_until(q, "rr", id, ttl, 0, NULL);
        usleep(20000);
    } while (st == SP_STATE_RUNNING && sp_test_ms() - t0 < 5000);
    int64_t took = sp_test_ms() - t0;
    assert_int_equal(st, SP_STATE_QUEUED);
    if (took < ttl - 50 || took > 3000)
        fail_msg("went back after %lld ms (TTL %lld ms)", (long long)took, (long long)ttl);
    size_t n;
    sp_worker_info ws[4];
    assert_int_equal(sp_queue_workers(q, ws, 4, &n, &err), 0);
    assert_int_equal(n, 2); /* the new run stays registered */

    /* The new run's own jobs are its to keep: started after it first beat. */
    sp_consumer *c2 = open_consumer_ttl("phoenix", queues, 1, 30000, ttl);
    sp_job again;
    assert_int_equal(sp_consumer_next(c2, 1000, &again, &err), 0);
    assert_int_equal(again.attempts, 2);
    int64_t end = sp_test_ms() + 4 * ttl;
    while (sp_test_ms() < end) {
        bool cancel;
        beat_run(q, "phoenix", "rr", ttl, "run-2");
        assert_int_equal(sp_queue_renew(q, again.id, again.token, 30000, 5, &cancel, &err), 0);
        assert_int_equal(watch_until(q, "rr", id, ttl, 0, NULL), SP_STATE_RUNNING);
        usleep(30000);
    }
    finish_ok(c2, &again, false);
    sp_job_clear(&again);
    sp_job_clear(&job);
    sp_consumer_free(c2);
    sp_consumer_free(c);
    sp_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_killed_consumer_job_redelivered_after_lease, setup_test),
        cmocka_unit_test_setup(test_expired_lease_cannot_complete_or_fail, setup_test),
        cmocka_unit_test_setup(test_renewed_long_job_not_redelivered, setup_test),
        cmocka_unit_test_setup(test_dead_worker_claimed_job_goes_back, setup_test),
        cmocka_unit_test_setup(test_finish_takes_the_next_job, setup_test),
        cmocka_unit_test_setup(test_metadata_annotation_is_fenced, setup_test),
        cmocka_unit_test_setup(test_silent_worker_job_goes_back_after_the_ttl_not_the_lease,
                               setup_test),
        cmocka_unit_test_setup(test_new_attempts_silence_counts_from_its_start_not_an_old_renewal,
                               setup_test),
        cmocka_unit_test_setup(test_renewed_job_stays_when_only_its_worker_heartbeat_stops,
                               setup_test),
        cmocka_unit_test_setup(test_unrenewed_job_of_a_beating_worker_waits_for_its_lease,
                               setup_test),
        cmocka_unit_test_setup(test_silence_across_a_gap_in_every_heartbeat_does_not_count,
                               setup_test),
        cmocka_unit_test_setup(test_worker_restarted_under_its_id_does_not_vouch_for_the_old_run,
                               setup_test),
    };
    return cmocka_run_group_tests_name("lease", tests, group_setup, group_teardown);
}

/* test_redis.c - Redis that cannot serve us, against a real redis-server: down, loading
 * its AOF, busy running a script, refusing our password. Each is SP_EREDIS with a message
 * naming the cause (the API answers 503, workers wait and retry), never a protocol
 * error; a command Redis refuses for what it is stays SP_EPROTO. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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

static void expect_msg(const sp_err *err, const char *part)
{
    if (strstr(err->msg, part) == NULL)
        fail_msg("expected \"%s\" in: %s", part, err->msg);
}

static sp_enqueue job_of(char id[SP_ID_LEN + 1], const char *queue)
{
    sp_id_new(id);
    return (sp_enqueue){id, "test.noop", queue, 3, 100, 1000, false, NULL, NULL, NULL, NULL,
                        0, 0};
}

static bool loading(sp_test_redis *r)
{
    const char *v = sp_test_redis_cli(r, "PING");
    return v && strncmp(v, "LOADING", 7) == 0;
}

static void test_redis_down_gives_clear_error(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", sp_test_free_port());
    sp_err err;
    sp_queue *q = sp_queue_open(url, prefix, &err);
    assert_non_null(q);
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    sp_enqueue e = {id, "test.noop", "x", 3, 100, 1000, false, NULL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), SP_EREDIS);
    assert_non_null(strstr(err.msg, "Redis unavailable at 127.0.0.1:"));
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), SP_EREDIS);
    assert_int_equal(sp_queue_ping(q, &err), SP_EREDIS);
    const char *queues[] = {"x"};
    sp_consumer *c = open_consumer(url, "w", queues, 1, 1000);
    assert_int_equal(sp_consumer_next(c, 100, &j, &err), SP_EREDIS);
    sp_consumer_free(c);
    sp_queue_close(q);
    assert_null(sp_queue_open("http://nope", prefix, &err));
    assert_int_equal(err.code, SP_EINVAL);
}

static void test_password_and_database_in_the_url(void **state)
{
    (void)state;
    sp_test_redis r;
    assert_int_equal(sp_test_redis_start(&r, 0), 0);
    assert_string_equal(sp_test_redis_cli(&r, "CONFIG SET requirepass 's3cr%%t'"), "OK");
    char good[160], bad[160];
    snprintf(good, sizeof good, "redis://:s3cr%%25t@127.0.0.1:%d/2", r.port);
    snprintf(bad, sizeof bad, "redis://:wrong@127.0.0.1:%d/2", r.port);
    sp_err err;
    sp_queue *q = sp_queue_open(good, prefix, &err);
    assert_non_null(q);
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    sp_enqueue e = {id, "test.noop", "auth", 3, 100, 1000, false, NULL, NULL, NULL, NULL, 0, 0};
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    /* The job is in database 2, not 0. */
    const char *n = sp_test_redis_cli(&r, "-a 's3cr%%t' --no-auth-warning -n 2 EXISTS %sjob:%s",
                                      prefix, id);
    assert_string_equal(n, "1");
    n = sp_test_redis_cli(&r, "-a 's3cr%%t' --no-auth-warning -n 0 EXISTS %sjob:%s", prefix, id);
    assert_string_equal(n, "0");
    /* A wrong password, or none where one is needed: Redis is unavailable to us, and the
     * message says why (an operator reads it in the logs and on /readyz). */
    sp_queue *wrong = sp_queue_open(bad, prefix, &err);
    assert_non_null(wrong);
    assert_int_equal(sp_queue_ping(wrong, &err), SP_EREDIS);
    expect_msg(&err, "authentication failed");
    expect_msg(&err, "WRONGPASS");
    assert_int_equal(sp_queue_enqueue(wrong, &e, NULL, &err), SP_EREDIS);
    sp_queue_close(wrong);
    char none[160];
    snprintf(none, sizeof none, "redis://127.0.0.1:%d/2", r.port);
    wrong = sp_queue_open(none, prefix, &err);
    assert_int_equal(sp_queue_ping(wrong, &err), SP_EREDIS);
    expect_msg(&err, "needs a password");
    sp_queue_close(wrong);
    sp_queue_close(q);
    sp_test_redis_cli(&r, "-a 's3cr%%t' --no-auth-warning CONFIG SET requirepass ''");
    /* A password where Redis has none. */
    wrong = sp_queue_open(bad, prefix, &err);
    assert_int_equal(sp_queue_ping(wrong, &err), SP_EREDIS);
    expect_msg(&err, "authentication failed");
    sp_queue_close(wrong);
    sp_test_redis_destroy(&r);
}


static void test_loading_redis_is_unavailable_until_it_has_loaded(void **state)
{
    (void)state;
    sp_err err;
    sp_queue *q = sp_queue_open(R.url, prefix, &err);
    char id[SP_ID_LEN + 1];
    sp_enqueue e = job_of(id, "ld");
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    /* Enough keys, in the AOF's RDB base, for a slow load to last a few seconds. */
    sp_test_redis_cli(&R, "EVAL \"for i = 1, 20000 do redis.call('SET', 'fill:' .. i, i) end\" 0");
    sp_test_redis_cli(&R, "BGREWRITEAOF");
    int64_t end = sp_test_ms() + 20000;
    while (sp_test_ms() < end &&
           strcmp(sp_test_redis_cli(&R, "INFO persistence | grep -c 'rewrite_in_progress:0'")
                      ?: "",
                  "1") != 0)
        usleep(20000);
    assert_int_equal(sp_test_redis_restart_loading(&R), 0);
    assert_true(loading(&R));

    /* Every kind of call: a plain and a scripted enqueue, a batch, reads, a consumer,
     * maintenance. */
    assert_int_equal(sp_queue_ping(q, &err), SP_EREDIS);
    expect_msg(&err, "is loading its data set");
    char id2[SP_ID_LEN + 1];
    sp_enqueue e2 = job_of(id2, "ld");
    assert_int_equal(sp_queue_enqueue(q, &e2, NULL, &err), SP_EREDIS);
    expect_msg(&err, "is loading its data set");
    e2.idem_key = "k";
    e2.fingerprint = "f";
    assert_int_equal(sp_queue_enqueue(q, &e2, NULL, &err), SP_EREDIS);
    int results[2];
    sp_enqueue two[2] = {job_of(id2, "ld"), e};
    assert_int_equal(sp_queue_enqueue_many(q, two, 2, results, &err), SP_EREDIS);
    assert_int_equal(results[0], SP_EREDIS);
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), SP_EREDIS);
    sp_queue_stat st;
    assert_int_equal(sp_queue_stat_one(q, "ld", &st, &err), SP_EREDIS);
    const char *queues[] = {"ld"};
    assert_int_equal(sp_queue_maintain(q, queues, 1, 60000, NULL, &err), SP_EREDIS);
    sp_consumer *c = open_consumer(R.url, "w", queues, 1, 30000);
    assert_int_equal(sp_consumer_next(c, 100, &j, &err), SP_EREDIS);
    expect_msg(&err, "is loading its data set");
    assert_true(loading(&R)); /* all of the above while it loads */

    /* Loaded: the same handles work, and the job written before is there. */
    end = sp_test_ms() + 30000;
    while (loading(&R) && sp_test_ms() < end)
        usleep(50000);
    assert_int_equal(sp_queue_ping(q, &err), 0);
    assert_int_equal(sp_consumer_next(c, 1000, &j, &err), 0);
    assert_string_equal(j.id, id);
    sp_outcome ok = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    assert_int_equal(sp_consumer_finish(c, &j, &ok, false, NULL, &err), 0);
    sp_job_clear(&j);
    sp_consumer_free(c);
    sp_queue_close(q);
}

static void test_busy_redis_is_unavailable(void **state)
{
    (void)state;
    sp_err err;
    sp_queue *q = sp_queue_open(R.url, prefix, &err);
    assert_int_equal(sp_queue_ping(q, &err), 0);
    assert_string_equal(sp_test_redis_cli(&R, "CONFIG SET busy-reply-threshold 50"), "OK");
    pid_t pid = fork();
    if (pid == 0) {
        sp_test_redis_cli(&R, "EVAL \"local stop = redis.call('TIME')[1] + 2 "
                              "while tonumber(redis.call('TIME')[1]) < stop do end\" 0");
        _exit(0);
    }
    int64_t end = sp_test_ms() + 5000;
    const char *v;
    while ((v = sp_test_redis_cli(&R, "PING")) && strncmp(v, "BUSY", 4) != 0 &&
           sp_test_ms() < end)
        usleep(10000);
    char id[SP_ID_LEN + 1];
    sp_enqueue e = job_of(id, "busy");
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), SP_EREDIS);
    expect_msg(&err, "is busy running a script");
    waitpid(pid, NULL, 0);
    assert_int_equal(sp_queue_enqueue(q, &e, NULL, &err), 0);
    sp_test_redis_cli(&R, "CONFIG SET busy-reply-threshold 5000");
    sp_queue_close(q);
}

static void test_a_refused_command_stays_a_protocol_error(void **state)
{
    (void)state;
    sp_err err;
    sp_queue *q = sp_queue_open(R.url, prefix, &err);
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    sp_test_redis_cli(&R, "SET %sjob:%s not-a-hash", prefix, id); /* WRONGTYPE for HGETALL */
    sp_job j;
    assert_int_equal(sp_queue_get(q, id, &j, &err), SP_EPROTO);
    expect_msg(&err, "WRONGTYPE");
    assert_int_equal(sp_queue_ping(q, &err), 0); /* the connection stays usable */
    sp_queue_close(q);
}

/* Whether a failed command may have run: not when Redis was down (nothing was sent);
 * not when Redis dropped an idle connection (that is found before sending, and the
 * command goes over a new one and succeeds); yes when it was sent and its answer did
 * not come in time (here Redis is stopped past the client's 5 s timeout, and the job
 * appears once it goes on). */
static void test_a_failed_command_says_whether_it_was_sent(void **state)
{
    (void)state;
    char url[64], id[SP_ID_LEN + 1];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/0", sp_test_free_port());
    sp_err err;
    sp_queue *down = sp_queue_open(url, prefix, &err);
    assert_non_null(down);
    sp_enqueue e = job_of(id, "x");
    assert_int_equal(sp_queue_enqueue(down, &e, NULL, &err), SP_EREDIS);
    assert_false(sp_queue_unanswered(down));
    sp_queue_close(down);

    sp_queue *q = open_q();
    assert_int_equal(sp_queue_ping(q, &err), 0);
    const char *killed = sp_test_redis_cli(&R, "CLIENT KILL TYPE normal");
    assert_non_null(killed);
    assert_true(atoi(killed) >= 1);
    e = job_of(id, "x");
    if (sp_queue_enqueue(q, &e, NULL, &err) != 0)
        fail_msg("an enqueue after Redis closed the idle connection: %s", err.msg);
    assert_false(sp_queue_unanswered(q));

    /* Redis stopped past the client's timeout: the command waits in its socket, and
     * runs once Redis goes on, after the client gave up on it. */
    assert_int_equal(kill(R.pid, SIGSTOP), 0);
    e = job_of(id, "x");
    int sent = sp_queue_enqueue(q, &e, NULL, &err);
    bool unanswered = sp_queue_unanswered(q);
    assert_int_equal(kill(R.pid, SIGCONT), 0);
    assert_int_equal(sent, SP_EREDIS);
    assert_true(unanswered);
    sp_job j;
    int rc = SP_EREDIS;
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = sp_queue_get(q, id, &j, &err);
        if (rc != 0)
            sp_sleep_ms(100, NULL);
    }
    if (rc != 0)
        fail_msg("the job whose answer was lost: %s", err.msg);
    sp_job_clear(&j);
    sp_queue_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_redis_down_gives_clear_error, setup_test),
        cmocka_unit_test_setup(test_password_and_database_in_the_url, setup_test),
        cmocka_unit_test_setup(test_busy_redis_is_unavailable, setup_test),
        cmocka_unit_test_setup(test_a_refused_command_stays_a_protocol_error, setup_test),
        cmocka_unit_test_setup(test_a_failed_command_says_whether_it_was_sent, setup_test),
        cmocka_unit_test_setup(test_loading_redis_is_unavailable_until_it_has_loaded,
                               setup_test),
    };
    return cmocka_run_group_tests_name("redis", tests, group_setup_aof, group_teardown);
}

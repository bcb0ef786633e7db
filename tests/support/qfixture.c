/* qfixture.c - the fixture the queue suites share: their Redis, key prefixes and
 * helpers (qfixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "qfixture.h"
#include "spool/util.h"

sp_test_redis R;
char prefix[64];

int setup_test(void **state)
{
    static int n;
    (void)state;
    snprintf(prefix, sizeof prefix, "t%d:", ++n);
    return 0;
}

int group_setup(void **state)
{
    (void)state;
    return sp_test_redis_start(&R, 0);
}

int group_setup_aof(void **state)
{
    (void)state;
    return sp_test_redis_start(&R, 1);
}

int group_teardown(void **state)
{
    (void)state;
    sp_test_redis_destroy(&R);
    return 0;
}

sp_queue *open_q(void)
{
    sp_err err;
    sp_queue *q = sp_queue_open(R.url, prefix, &err);
    assert_non_null(q);
    return q;
}

sp_consumer *open_consumer(const char *url, const char *wid, const char *const *queues,
                           size_t n, int64_t lease_ms)
{
    sp_err err;
    sp_consumer_opts o = {url, prefix, wid, queues, n, lease_ms, 60000};
    sp_consumer *c = sp_consumer_new(&o, &err);
    if (c == NULL)
        fail_msg("sp_consumer_new: %s", err.msg);
    return c;
}

void enqueue(sp_queue *q, const char *queue, int64_t max_attempts, int64_t base,
             int64_t cap, char *id_out)
{
    char id[SP_ID_LEN + 1];
    assert_int_equal(sp_id_new(id), 0);
    sp_enqueue e = {id, "test.noop", queue, max_attempts, base, cap, false,
                    "{\"n\":1}", NULL, NULL, NULL, 0, 0};
    sp_err err;
    int rc = sp_queue_enqueue(q, &e, NULL, &err);
    if (rc != 0)
        fail_msg("enqueue: %d %s", rc, err.msg);
    if (id_out)
        memcpy(id_out, id, sizeof id);
}

sp_state state_of(sp_queue *q, const char *id, int64_t *attempts)
{
    sp_job j;
    sp_err err;
    int rc = sp_queue_get(q, id, &j, &err);
    if (rc != 0)
        fail_msg("get %s: %s", id, err.msg);
    sp_state s = j.state;
    if (attempts)
        *attempts = j.attempts;
    sp_job_clear(&j);
    return s;
}

void finish_ok(sp_consumer *c, sp_job *job, bool take_next)
{
    sp_outcome o = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
    sp_err err;
    int rc = sp_consumer_finish(c, job, &o, take_next, NULL, &err);
    if (rc != 0)
        fail_msg("finish: %d %s", rc, err.msg);
}

void maintain(sp_queue *q, const char *queue, sp_maint_report *r)
{
    const char *queues[] = {queue};
    sp_err err;
    int rc = sp_queue_maintain(q, queues, 1, 60000, r, &err);
    if (rc != 0)
        fail_msg("maintain: %s", err.msg);
}

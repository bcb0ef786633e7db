/* qfixture.h - the fixture the queue suites share (test_queue, test_lease, test_redis):
 * one private redis-server per suite, a fresh key prefix per test, and helpers that fail
 * the running cmocka test when the queue refuses them. Link tests/support/qfixture.o. */
#ifndef SPOOL_TEST_QFIXTURE_H
#define SPOOL_TEST_QFIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "spool/queue.h"

/* The suite's redis-server, started by group_setup or group_setup_aof. */
extern sp_test_redis R;

/* The running test's key prefix ("t<n>:"), set by setup_test. */
extern char prefix[64];

/* cmocka group set-up: start R with AOF off (group_setup) or on (group_setup_aof).
 * Return 0, or -1 with a message on stderr. */
int group_setup(void **state);
int group_setup_aof(void **state);

/* cmocka group tear-down: stop R and remove its directory. Returns 0. */
int group_teardown(void **state);

/* cmocka per-test set-up: a new key prefix, so tests never share state. Returns 0. */
int setup_test(void **state);

/* A queue on R under prefix; the caller closes it. Fails the test on error. */
sp_queue *open_q(void);

/* A consumer on url (usually R.url) under prefix for worker wid, taking from
 * queues[0..n-1] with leases of lease_ms; the caller frees it. Fails the test on
 * error. */
sp_consumer *open_consumer(const char *url, const char *wid, const char *const *queues,
                           size_t n, int64_t lease_ms);

/* Enqueue one "test.noop" job on queue; its id goes to id_out (may be NULL). Fails the
 * test on error. */
void enqueue(sp_queue *q, const char *queue, int64_t max_attempts, int64_t base,
             int64_t cap, char *id_out);

/* Job id's state, and its attempts into *attempts (may be NULL). Fails the test if the
 * job cannot be read. */
sp_state state_of(sp_queue *q, const char *id, int64_t *attempts);

/* Finish job as succeeded, claiming the next job in the same step when take_next.
 * Fails the test unless the finish is recorded now (any result but 0). */
void finish_ok(sp_consumer *c, sp_job *job, bool take_next);

/* One maintenance pass over queue (retention 60 s), its report into *r. Fails the test
 * on error. */
void maintain(sp_queue *q, const char *queue, sp_maint_report *r);

#endif

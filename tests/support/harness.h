/* harness.h - test support: a private redis-server per suite, started in a temporary
 * directory on a free loopback port and stopped on every exit path; plus assertion
 * helpers that print both values. */
#ifndef SPOOL_TEST_HARNESS_H
#define SPOOL_TEST_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct sp_test_redis {
    pid_t pid;
    int port;
    char dir[256];
    char url[128];
    int aof;
    int slow_load; /* spawn with a slow AOF load (sp_test_redis_restart_loading) */
} sp_test_redis;

/* Start a redis-server (AOF on when aof) and wait until it answers PING.
 * Returns 0, or -1 with a message on stderr. */
int sp_test_redis_start(sp_test_redis *r, int aof);

/* Stop it (SIGTERM; Redis writes its AOF on the way down), keep the directory. */
void sp_test_redis_stop(sp_test_redis *r);

/* Start again on the same port and directory (data reloads from the AOF). */
int sp_test_redis_restart(sp_test_redis *r);

/* Restart it so that it loads its AOF slowly (100 us per key), and return as soon as
 * it answers, LOADING: a test can talk to a Redis that is loading. */
int sp_test_redis_restart_loading(sp_test_redis *r);

/* Stop it and remove the directory. Safe to call twice. */
void sp_test_redis_destroy(sp_test_redis *r);

/* Run a redis-cli command against it and return its first output line (static
 * buffer), or NULL. For checks only. */
const char *sp_test_redis_cli(sp_test_redis *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A free TCP port on 127.0.0.1 (bound to port 0 and released). */
int sp_test_free_port(void);

/* Milliseconds since an arbitrary point. */
int64_t sp_test_ms(void);

#endif

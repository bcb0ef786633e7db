/* redis.h - the one module that talks to hiredis (internal to common/). It parses
 * Redis URLs, connects lazily, reconnects after a connection error (never reusing a
 * broken context), loads Lua scripts and runs them by SHA, checks reply types, and
 * always frees replies. Not thread-safe: one sp_redis per thread. */
#ifndef SPOOL_REDIS_INTERNAL_H
#define SPOOL_REDIS_INTERNAL_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

#define SP_REDIS_MAX_SENTINELS 16

typedef struct sp_redis_hostport {
    char host[256];
    int port;
} sp_redis_hostport;

typedef struct sp_redis_url {
    char host[256];
    int port;
    char unix_path[256]; /* set for unix:// URLs */
    char user[128];
    char password[256];
    int db;
    /* redis-sentinel:// URLs: the master's name and the sentinels that know where it is
     * (host and port above stay empty: the sentinels say, on every connect) */
    char master[128];
    sp_redis_hostport sentinels[SP_REDIS_MAX_SENTINELS];
    size_t nsentinels;
} sp_redis_url;

/* Parse redis://[user:password@]host[:port][/db], unix:///path[?db=N], or
 * redis-sentinel://[[user:]password@]host[:port][,host[:port]...][/db]#MASTER (the
 * form Lettuce documents; the user and password are the data nodes', the sentinels'
 * port is 26379 unless given). Returns 0 or SP_EINVAL with err naming the problem. */
int sp_redis_url_parse(const char *url, sp_redis_url *out, sp_err *err);

/* A Lua script, loaded by SHA on each connection. */
typedef struct sp_script {
    const char *name;
    const char *source;
} sp_script;

typedef struct sp_redis sp_redis;

/* Create a handle for url; connects on first use. scripts[0..nscripts-1] must outlive
 * it. Returns NULL with err set for a bad URL or out of memory. Free with
 * sp_redis_free. */
sp_redis *sp_redis_new(const char *url, const sp_script *const *scripts, size_t nscripts,
                       int64_t timeout_ms, sp_err *err);

/* Close and free. Accepts NULL. */
void sp_redis_free(sp_redis *r);

/* Connect now if not connected. 0 or SP_EREDIS. */
int sp_redis_connect(sp_redis *r, sp_err *err);

/* With Sentinel: has a failover replaced the master this handle is connected to (a
 * sentinel names a master promoted from one of its replicas)? Then the connection is
 * dropped and 1 returned (the next command goes to the new master); else 0. Commands
 * ask this at most once a second by themselves; a caller about to promise something
 * (a 202) asks now. 0 without Sentinel or a connection. */
int sp_redis_master_moved(sp_redis *r);

/* Drop the connection (the next call reconnects). */
void sp_redis_disconnect(sp_redis *r);

/* Run one command. On success *out holds the reply (free with sp_redis_reply_free);
 * a Redis error reply returns SP_EPROTO with its text in err and *out NULL.
 * A connection error returns SP_EREDIS and drops the connection. */
int sp_redis_cmd(sp_redis *r, redisReply **out, sp_err *err, int argc, const char **argv,
                 const size_t *lens);

/* Like sp_redis_cmd for a blocking command (BLMOVE...) that may wait block_ms. */
int sp_redis_cmd_blocking(sp_redis *r, int64_t block_ms, redisReply **out, sp_err *err,
                          int argc, const char **argv, const size_t *lens);

/* Run scripts[index] with keys and args (lens may be NULL for C strings). */
int sp_redis_eval(sp_redis *r, size_t index, int nkeys, const char **keys, int nargs,
                  const char **args, const size_t *arglens, redisReply **out, sp_err *err);

/* Pipelining: queue a script call or command without waiting, then read the replies
 * in order with sp_redis_read. Errors in a pipeline drop the connection. */
int sp_redis_append_eval(sp_redis *r, size_t index, int nkeys, const char **keys, int nargs,
                         const char **args, const size_t *arglens, sp_err *err);
int sp_redis_append(sp_redis *r, sp_err *err, int argc, const char **argv, const size_t *lens);
int sp_redis_read(sp_redis *r, redisReply **out, sp_err *err);

/* Non-blocking use for waiting on several connections at once: send a command,
 * then poll sp_redis_fd and call sp_redis_try_read until it returns 1 (reply ready),
 * 0 (not yet) or a negative code. */
int sp_redis_send(sp_redis *r, sp_err *err, int argc, const char **argv, const size_t *lens);
int sp_redis_fd(const sp_redis *r);
int sp_redis_try_read(sp_redis *r, redisReply **out, sp_err *err);

/* True when the last connection error hit a connection that had already answered:
 * Redis restarted or dropped us while idle, and a reconnect is worth one try. */
bool sp_redis_stale_error(const sp_redis *r);

/* True when a read that failed with rc is worth one more try (sp_redis_stale_error):
 * reads are made twice when the first finds the connection broken. */
bool sp_redis_retry_read(const sp_redis *r, int rc);

/* Redis's clock (TIME) in ms since the epoch into *now_ms. 0 or an error (SP_EPROTO
 * for an unexpected reply; *now_ms unchanged). */
int sp_redis_time_ms(sp_redis *r, int64_t *now_ms, sp_err *err);

/* True when the last command failed after it was sent (no answer came, or it came from
 * a master a failover has replaced): it may have run, and what it wrote may still
 * appear. False when it failed before anything was sent, or succeeded. */
bool sp_redis_unanswered(const sp_redis *r);

/* How many connections this handle has made: a command that finds it changed since
 * an earlier one ran on another connection (perhaps to another server). */
uint64_t sp_redis_generation(const sp_redis *r);

/* This connection's CLIENT ID (0 until connected). */
int64_t sp_redis_client_id(const sp_redis *r);

void sp_redis_reply_free(redisReply *reply);

/* Reply helpers: they never fail on a NULL or mistyped reply; they return the
 * fallback instead. */
const char *sp_reply_str(const redisReply *r, size_t *len);     /* NULL unless string */
int64_t sp_reply_int(const redisReply *r, int64_t fallback);     /* integer or numeric string */
const redisReply *sp_reply_elem(const redisReply *r, size_t i);  /* NULL unless array[i] */
size_t sp_reply_len(const redisReply *r);                        /* array length or 0 */
int sp_reply_is(const redisReply *r, const char *s);             /* string/status equals s */

#endif

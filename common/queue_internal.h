/* queue_internal.h - what the queue files (queue*.c), consumer.c and events.c share
 * (internal). */
#ifndef SPOOL_QUEUE_INTERNAL_H
#define SPOOL_QUEUE_INTERNAL_H

#include "keys.h"
#include "redis.h"
#include "scripts.h"
#include "spool/queue.h"

#define SP_PREFIX_MAX 64

struct sp_queue {
    sp_redis *r;
    char prefix[SP_PREFIX_MAX + 1];
};

/* Check and copy a key prefix. 0 or SP_EINVAL. */
int sp__prefix_copy(char out[SP_PREFIX_MAX + 1], const char *prefix, sp_err *err);

/* Fill job (whose id is id) from a flat field/value array reply (HGETALL; a field
 * repeated later overrides its earlier value). 0, SP_ENOTFOUND when the array is empty,
 * SP_EPROTO or SP_ENOMEM. On error job is cleared. */
int sp__job_from_reply(const redisReply *r, const char *id, sp_job *job, sp_err *err);

/* Open the sp_queue a consumer uses for its own calls. */
int sp__queue_init(sp_queue *q, const char *url, const char *prefix, sp_err *err);
void sp__queue_fini(sp_queue *q);

/* Read-only calls are made twice when the first finds the connection broken: after
 * Redis restarts, the first call on an old connection fails and the second reconnects.
 * Writes are never repeated this way. True when a read that returned rc is worth that
 * second try. */
bool sp__retry_read(const sp_queue *q, int rc);

/* Read just the queue job id is on into queue. 0, SP_ENOTFOUND or SP_EREDIS. */
int sp__job_queue(sp_queue *q, const char *id, char queue[SP_QUEUE_MAX + 1], sp_err *err);

#endif

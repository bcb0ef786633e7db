/* queue_internal.h - what queue.c, consumer.c and events.c share (internal). */
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

#endif

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

/* Copy the len bytes at v into dst (cap bytes) as a string, cut to fit. */
void sp__copy(char *dst, size_t cap, const char *v, size_t len);

/* Fill job (whose id is id) from a flat field/value array reply (HGETALL; a field
 * repeated later overrides its earlier value). 0, SP_ENOTFOUND when the array is empty,
 * SP_EPROTO or SP_ENOMEM. On error job is cleared. */
int sp__job_from_reply(const redisReply *r, const char *id, sp_job *job, sp_err *err);

/* Pipeline an HGETALL of the record of each id in ids (an array reply; an element that
 * is not a string reads as an empty record), one reply each to read with sp_redis_read.
 * 0, or an error after part of them was appended. */
int sp__append_records(sp_queue *q, const redisReply *ids, sp_err *err);

/* Open the sp_queue a consumer uses for its own calls. */
int sp__queue_init(sp_queue *q, const char *url, const char *prefix, sp_err *err);
void sp__queue_fini(sp_queue *q);

/* Read-only calls are made twice when the first finds the connection broken: after
 * Redis restarts, the first call on an old connection fails and the second reconnects.
 * Writes are never repeated this way. True when a read that returned rc is worth that
 * second try. */
bool sp__retry_read(const sp_queue *q, int rc);

/* Fill k[0..3] with what lib.lua's webhook() takes in KEYS: the webhooks queue's ready
 * list and stats, the jobs index and the queues set; return keys pointing at them. */
static inline void sp__webhook_keys(sp_key k[4], const char *p, const char *keys[4])
{
    keys[0] = sp__key_q(&k[0], p, SP_WEBHOOK_QUEUE, "ready");
    keys[1] = sp__key_q(&k[1], p, SP_WEBHOOK_QUEUE, "stats");
    keys[2] = sp__key(&k[2], p, "jobs");
    keys[3] = sp__key(&k[3], p, "queues");
}

/* Read just the queue job id is on into queue. 0, SP_ENOTFOUND or SP_EREDIS. */
int sp__job_queue(sp_queue *q, const char *id, char queue[SP_QUEUE_MAX + 1], sp_err *err);

#endif

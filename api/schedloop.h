/* schedloop.h - the schedules' firing loop: a thread in every spool-api (SPOOL_SCHEDULER=on)
 * that wakes at least every 250 ms, takes the schedules due by Redis's clock, works out
 * each one's ticks (cron.h: those within SPOOL_SCHEDULE_GRACE fire, older ones are passed
 * over, or with the run_once policy the latest of them fires) and makes each tick's job
 * through the enqueue every POST uses, under the tick's own job id (sp_sched_tick_id,
 * refused once its job exists) and the idempotency key
 * "sched:<name>:<generation>:<tick ms>": processes that fire the same tick, however far
 * apart, make one job. A tick whose job cannot be made is tried again after a backoff.
 * The schedule then moves on by a compare-and-set (spool/schedule.h), and the job
 * joins its runs. */
#ifndef SPOOL_API_SCHEDLOOP_H
#define SPOOL_API_SCHEDLOOP_H

#include <stdint.h>

#include "spool/config.h"
#include "spool/err.h"

struct api_config;

#define API_SCHED_WAKE_MS 250 /* the longest the loop sleeps */

typedef struct api_sched_loop api_sched_loop;

/* Start the loop for the schedules of cfg's Redis, making jobs routed by routes (both
 * must outlive it). NULL with err set when the thread cannot start. Stop with
 * api_sched_stop. */
api_sched_loop *api_sched_start(const struct api_config *cfg, const sp_routes *routes,
                                sp_err *err);

/* Stop the thread (a schedule being fired is finished first; no tick fires after this
 * returns) and keep the rest (api_sched_errors still answers). From the thread that
 * stops the server; again is harmless. Accepts NULL. */
void api_sched_halt(api_sched_loop *l);

/* Halt and free. Accepts NULL. */
void api_sched_stop(api_sched_loop *l);

/* This process's count of ticks that could not make their job (the template no longer
 * valid, Redis or the queue refusing: a refused tick is tried again after a backoff
 * while within the grace). 0 for NULL. */
uint64_t api_sched_errors(const api_sched_loop *l);

#endif

/* worker.h - the runtime both worker binaries share. A worker binary supplies a job
 * handler and its own options; this module does the rest: options and logs,
 * registration and heartbeats, SPOOL_CONCURRENCY job slots (threads) taking jobs from
 * their queues, lease renewal with cancel checks and progress while a job runs,
 * maintenance (due retries, lapsed leases, dead workers), per-job time limits, and
 * shutdown: on SIGTERM or SIGINT stop taking jobs, let running jobs finish within the
 * grace period, then stop them and give them back to the queue at once without
 * counting the attempt.
 *
 * The handler runs on a slot thread. It must poll sp_job_ctx_stopping() (cheap) often
 * enough to stop within a second, and return 0 on success or the code from
 * sp_job_ctx_fail(). */
#ifndef SPOOL_WORKER_H
#define SPOOL_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/blob.h"
#include "spool/config.h"
#include "spool/err.h"
#include "spool/util.h"
#include "spool/job.h"
#include "spool/log.h"

typedef struct sp_job_ctx sp_job_ctx;

/* The started job's record (params, input, attempts...). Valid during the handler. */
const sp_job *sp_job_ctx_job(const sp_job_ctx *ctx);

/* The outbound guard (SPOOL_OUTBOUND_ALLOW) for every URL a job's user supplied:
 * pass it as sp_fetch_opts.outbound. */
const struct sp_outbound *sp_job_ctx_outbound(const sp_job_ctx *ctx);

/* The blob store (SPOOL_DATA_DIR). */
sp_blobs *sp_job_ctx_blobs(const sp_job_ctx *ctx);

/* Log context naming this job, queue and worker. */
const sp_logctx *sp_job_ctx_log(const sp_job_ctx *ctx);

/* Record progress (0-100). Cheap and thread-safe; the runtime writes it to Redis at
 * most a few times a second. */
void sp_job_ctx_progress(sp_job_ctx *ctx, int percent);

/* True once the job must stop: a cancel was requested, the lease was lost, its time
 * limit ran out, or shutdown's grace period ended. Cheap (an atomic load). */
bool sp_job_ctx_stopping(const sp_job_ctx *ctx);

/* Why the job must stop: SP_ECANCELLED, SP_ELOST, SP_ETIMEDOUT, SP_ESHUTDOWN, or 0. */
int sp_job_ctx_stop_reason(const sp_job_ctx *ctx);

/* The address of the stop flag (non-zero once stopping), for interrupt callbacks such
 * as libavformat's AVIOInterruptCB or libcurl's progress callback. */
const sp_flag *sp_job_ctx_stop_flag(const sp_job_ctx *ctx);

/* Set the job's time limit, counted from its start (0: none). Past it the job is
 * stopped and fails as retryable with code "timed_out". */
void sp_job_ctx_set_time_limit(sp_job_ctx *ctx, int64_t ms);

/* Store metadata (a JSON object) on the job now, so clients see it while it runs; it
 * is also kept with the result. 0, SP_ELOST, SP_EREDIS... */
int sp_job_ctx_set_metadata(sp_job_ctx *ctx, const char *json);

/* Declare an output the handler has committed to the blob store; listed on the job
 * when it succeeds. extra_json is NULL or a JSON object whose members are added to the
 * output's entry (e.g. {"width":1280}). */
int sp_job_ctx_add_output(sp_job_ctx *ctx, const char *name, const char *content_type,
                          int64_t bytes, const char *extra_json);

/* Record why the job failed and return code, for `return sp_job_ctx_fail(...)`.
 * retryable: a transient problem (I/O, fetch, timeout) worth another attempt; false
 * for input that will never work (corrupt video, malformed dataset). error_code is a
 * snake_case name (e.g. "invalid_input"); the message says what a person can do. */
int sp_job_ctx_fail(sp_job_ctx *ctx, int code, bool retryable, const char *error_code,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The handler: 0 on success (outputs declared), or a negative code (after
 * sp_job_ctx_fail, or when stopping). userdata is sp_worker_def.userdata; slot is this
 * thread's slot number (0..concurrency-1), for per-slot state. */
typedef int (*sp_job_handler)(sp_job_ctx *ctx, void *userdata, int slot);

typedef struct sp_worker_def {
    const char *program;        /* "spool-video" */
    const char *summary;        /* one line for --help */
    const char *kind;           /* "video": shown in the worker registry */
    const char *default_queues; /* "video" */
    sp_job_handler handler;
    void *userdata;
    /* Called once after options are parsed (may be NULL): validate extra options and
     * build shared state. Return 0 or a negative code with err set (exit 2). */
    int (*setup)(void *userdata, sp_err *err);
    /* Called once at exit (may be NULL). */
    void (*teardown)(void *userdata);
} sp_worker_def;

/* Parse the shared worker options (SPOOL_REDIS_URL, SPOOL_DATA_DIR, SPOOL_QUEUES,
 * SPOOL_CONCURRENCY, SPOOL_LEASE, SPOOL_GRACE, ...) and extra[0..nextra-1], then run
 * until SIGTERM/SIGINT. extra's targets are filled before def->setup runs; string
 * targets are freed when this returns. Returns the process exit code. */
int sp_worker_main(const sp_worker_def *def, sp_option *extra, size_t nextra, int argc,
                   char **argv);

#endif

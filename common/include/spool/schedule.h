/* schedule.h - schedules as Redis keeps them (keys.h says where): a record per schedule,
 * an index of the unpaused ones by when they fire next, and the jobs each one made
 * (its runs). Every change is one Lua script; the firing loop moves a schedule on with
 * a compare-and-set, so of several processes firing the same tick one advances it.
 * What a schedule's fields mean (cron, zone, job template) is the API's business
 * (api/cron.h, api/schedjob.h); this module stores them.
 *
 * Handles are not thread-safe: one sp_scheds per thread. Calls that talk to Redis
 * return SP_EREDIS when it is unreachable (the next call reconnects) and leave Redis
 * unchanged when they fail. */
#ifndef SPOOL_SCHEDULE_H
#define SPOOL_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/job.h"

#define SP_SCHED_NAME_MAX 64        /* 1-64 of A-Z a-z 0-9 _ . - */
#define SP_SCHED_CRON_MAX 256       /* bytes of an expression (api/cron.h) */
#define SP_SCHED_TZ_MAX 64          /* bytes of a time zone name */
#define SP_SCHED_JOB_MAX (64 * 1024) /* bytes of a job template (compact JSON) */
#define SP_SCHED_RUNS_KEEP 1000     /* the runs a schedule keeps: the latest this many */

/* True when s can name a schedule: 1 to SP_SCHED_NAME_MAX of A-Z a-z 0-9 _ . -, not
 * starting with '.' or '-'. */
bool sp_sched_name_valid(const char *s);

/* One schedule. Times are ms since the epoch by Redis's clock (0: none). */
typedef struct sp_sched {
    char name[SP_SCHED_NAME_MAX + 1];
    char cron[SP_SCHED_CRON_MAX + 1];
    char timezone[SP_SCHED_TZ_MAX + 1];
    bool run_once;       /* missed ticks: the latest runs once (run_once), or none (skip) */
    char *job;           /* the job template as JSON text: owned, freed by sp_sched_clear */
    bool paused;
    char generation[SP_ID_LEN + 1]; /* made at creation: a schedule deleted and created
                                     * again under its name is another one */
    int64_t version;     /* bumped by every change through the API */
    int64_t created_at, updated_at;
    int64_t last_tick;   /* the last tick fired or passed over (or when it was created,
                          * resumed or retimed: ticks after it count) */
    int64_t next_at;     /* the next tick */
    int64_t last_fired;  /* the latest tick that made a job */
    int64_t fired;       /* ticks that made a job */
    int64_t passed;      /* ticks passed over (missed while no process could fire) */
    int64_t invalid;     /* ticks passed over because the job template no longer validates */
} sp_sched;

/* The job id of s's tick (ms): the tick's time, then 128 bits of the SHA-256 of
 * "name:generation:tick", so every process that fires the tick names the same job and
 * ids still sort by time. 0 or an error (libcrypto's) with out "". */
int sp_sched_tick_id(const sp_sched *s, int64_t tick, char out[SP_ID_LEN + 1], sp_err *err);

/* Free s's job template and zero it. Accepts NULL. */
void sp_sched_clear(sp_sched *s);

typedef struct sp_scheds sp_scheds;

/* A handle on the schedules in the Redis at url under key prefix. Connects lazily.
 * NULL with err set for a bad URL or prefix, or SP_ENOMEM. Close with sp_scheds_close
 * (accepts NULL). */
sp_scheds *sp_scheds_open(const char *url, const char *prefix, sp_err *err);
void sp_scheds_close(sp_scheds *h);

/* Redis's clock (TIME) in ms into *now_ms: the one clock schedules go by. 0 or an
 * error. */
int sp_scheds_time(sp_scheds *h, int64_t *now_ms, sp_err *err);

/* Record the new schedule s (name, cron, timezone, run_once, job, paused, last_tick and
 * next_at set by the caller). Fills s->generation, version, created_at and updated_at.
 * 0; SP_ECONFLICT when the name is taken; SP_EFULL when max schedules (> 0) exist
 * already; SP_EINVAL for a bad name; or an error. Nothing changes on error. */
int sp_sched_create(sp_scheds *h, sp_sched *s, int64_t max, sp_err *err);

/* Read schedule name into *out (sp_sched_clear it afterwards). SP_ENOTFOUND. */
int sp_sched_get(sp_scheds *h, const char *name, sp_sched *out, sp_err *err);

/* The schedules by name, from the first after `after` ("" or NULL: the first), at most
 * max, into out[0..*n) (each to be sp_sched_clear'ed); *more says whether others
 * follow. */
int sp_sched_list(sp_scheds *h, const char *after, size_t max, sp_sched *out, size_t *n,
                  bool *more, sp_err *err);

/* How a change moves the schedule's ticks (sp_sched_update). */
enum sp_sched_timing {
    SP_SCHED_KEEP,   /* unchanged: last_tick and next_at are not written */
    SP_SCHED_PAUSE,  /* paused: it leaves the due index */
    SP_SCHED_RETIME  /* s->last_tick and s->next_at are new: due again at next_at */
};

/* Write s's changeable fields (cron, timezone, run_once, job, paused; last_tick and
 * next_at with SP_SCHED_RETIME) if the stored version is still s->version; then
 * s->version and updated_at are the new ones. 0; SP_ENOTFOUND (deleted); SP_ECONFLICT
 * (changed since it was read: read it again and retry); or an error. */
int sp_sched_update(sp_scheds *h, sp_sched *s, int timing, sp_err *err);

/* Delete schedule name with its runs, if it is still the given generation (NULL: any).
 * 0 or SP_ENOTFOUND (none, or another generation: nothing deleted), or an error. */
int sp_sched_delete(sp_scheds *h, const char *name, const char *generation, sp_err *err);

/* The names of the unpaused schedules due at now_ms (next_at <= now_ms), earliest
 * first, from the skip-th of them on, at most max, into names[0..*n); *earliest gets
 * the next_at of the first schedule not due (0 when none). */
int sp_sched_due(sp_scheds *h, int64_t now_ms, size_t skip,
                 char (*names)[SP_SCHED_NAME_MAX + 1], size_t max, size_t *n,
                 int64_t *earliest, sp_err *err);

/* A firing loop's outcome for one schedule as it was read (sp_sched_advance). */
typedef struct sp_sched_step {
    const sp_sched *read;     /* the schedule as read: its generation, version, last_tick */
    int64_t last_tick;        /* the new last tick (fired or passed over) */
    int64_t next_at;          /* the tick after it */
    int64_t passed;           /* ticks passed over (missed) */
    int64_t invalid;          /* ticks passed over: the template no longer validates */
    size_t nruns;             /* jobs made for ticks: run_ids[i] for run_ticks[i] */
    const char (*run_ids)[SP_ID_LEN + 1];
    const int64_t *run_ticks;
} sp_sched_step;

/* Move the schedule on, record its runs (the latest SP_SCHED_RUNS_KEEP are kept) and
 * count its fired and passed-over ticks, if it still is the generation and version
 * that was read with the same last_tick. 1 when applied, 0 when not (another process
 * did, or the schedule changed or went: nothing is written), or an error. */
int sp_sched_advance(sp_scheds *h, const sp_sched_step *st, sp_err *err);

/* One job a schedule made. */
typedef struct sp_sched_run {
    int64_t tick;   /* the tick it was made for */
    bool found;     /* its record exists (not expired) */
    sp_job job;     /* the record when found (id set either way): sp_job_clear it */
} sp_sched_run;

/* The runs of schedule name, the latest tick first, after the run of job id `before`
 * (NULL: from the latest), at most max, into out[0..*n); next gets the cursor of the
 * following page ("" when none). SP_ENOTFOUND when `before` is not among its runs. */
int sp_sched_runs(sp_scheds *h, const char *name, const char *before, size_t max,
                  sp_sched_run *out, size_t *n, char next[SP_ID_LEN + 1], sp_err *err);

/* Numbers for metrics: schedules, how many are paused, ticks fired, missed and passed
 * over for an invalid template since the store was first used (all processes
 * together). */
typedef struct sp_sched_counts {
    int64_t schedules, paused, fired, passed, invalid;
} sp_sched_counts;
int sp_sched_counts_get(sp_scheds *h, sp_sched_counts *out, sp_err *err);

#endif

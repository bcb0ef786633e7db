/* job.h - the job record as stored in Redis (one hash per job) and its states. */
#ifndef SPOOL_JOB_H
#define SPOOL_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "spool/util.h"

typedef enum sp_state {
    SP_STATE_QUEUED = 0,
    SP_STATE_RUNNING,
    SP_STATE_RETRYING,
    SP_STATE_SUCCEEDED,
    SP_STATE_FAILED,
    SP_STATE_CANCELLED,
    SP_STATE_SCHEDULED, /* waiting for its run_at (a delayed job), then queued */
    SP_STATE_COUNT
} sp_state;

/* "queued", "running", ...; "unknown" for an out-of-range value. */
const char *sp_state_name(sp_state s);

/* Parse a state name. Returns 0 or SP_EINVAL. */
int sp_state_parse(const char *name, sp_state *out);

/* True for succeeded, failed and cancelled. */
bool sp_state_terminal(sp_state s);

#define SP_TYPE_MAX 64
#define SP_QUEUE_MAX 64

/* True when t can be a job type: 1 to SP_TYPE_MAX of a-z 0-9 . _ - ("video.transcode"). */
bool sp_job_type_valid(const char *t);
#define SP_TOKEN_LEN 32

/* A job record. Times are ms since the epoch, 0 when not (yet) known. The JSON fields
 * are heap strings owned by the record (NULL when absent): free with sp_job_clear. */
typedef struct sp_job {
    char id[SP_ID_LEN + 1];
    char type[SP_TYPE_MAX + 1];
    char queue[SP_QUEUE_MAX + 1];
    sp_state state;
    int progress;          /* 0-100 */
    int64_t attempts;      /* attempts started so far */
    int64_t max_attempts;
    int64_t retry_base_ms; /* backoff: delay = rand(0, min(cap, base * 2^(attempt-1))) */
    int64_t retry_cap_ms;
    bool high_priority;
    bool cancel_requested;
    int64_t version;       /* bumped on every visible change (ETags, long-poll) */
    int64_t created_at, started_at, finished_at, updated_at, next_attempt_at, lease_until;
    int64_t run_at; /* a delayed job: when it is due (ms, Redis's clock); 0: at once */
    char worker[128];
    char token[SP_TOKEN_LEN + 1]; /* the current attempt's lease token, while running */
    bool has_error;
    char error_code[64];
    bool error_retryable;
    char *error_message;
    char *params;   /* JSON object: the job's parameters */
    char *input;    /* JSON object: {"blob":name,...} or {"url":...} */
    char *outputs;  /* JSON array of {"name","content_type","bytes"} */
    char *metadata; /* JSON object: probe results, page counts */
    char *callback_url;        /* where its end is announced (webhooks), or NULL */
    int64_t callback_attempts; /* the delivery's max_attempts (0: not set) */
    char *attempt_log; /* JSON array: attempts that ended other than in success, the last
                        * 10: {attempt, started_at, ended_at (ms), outcome, error} */
} sp_job;

/* Zero a record (no heap fields). */
void sp_job_init(sp_job *j);

/* Free the heap fields and zero the record. Accepts NULL. */
void sp_job_clear(sp_job *j);

/* Set one field from its Redis hash name and value; unknown fields are ignored.
 * Returns 0 or SP_ENOMEM. */
int sp_job_set_field(sp_job *j, const char *name, const char *value, size_t len);

#endif

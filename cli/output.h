/* output.h - what spoolctl prints for people: job summaries, progress lines and bars,
 * tables of jobs and queues, sizes and durations. Pure functions that append to an
 * sp_buf (no I/O), so the tests check the exact text. Text that comes from the server
 * is cleaned of control characters before it reaches a terminal. */
#ifndef SPOOLCTL_OUTPUT_H
#define SPOOLCTL_OUTPUT_H

#include <jansson.h>
#include <stdint.h>

#include "spool/buf.h"

/* "0 B", "999 B", "1.5 KiB", "12.3 MiB", "1.20 GiB". out needs 32 bytes. */
void ctl_fmt_bytes(int64_t n, char out[32]);

/* "850 ms", "4.2 s", "1 m 05 s", "2 h 03 m". out needs 32 bytes. */
void ctl_fmt_duration(int64_t ms, char out[32]);

/* Parse an RFC 3339 UTC time as the API writes it ("2024-05-01T10:00:00.123Z", the
 * fraction optional) into ms since the epoch. 0 or SP_EINVAL. */
int ctl_parse_time(const char *s, int64_t *ms);

/* Append s with control characters and invalid bytes replaced by '?'. */
int ctl_out_clean(sp_buf *b, const char *s);

/* "[##########----------]  45%" with width characters between the brackets. */
int ctl_out_bar(sp_buf *b, int percent, int width);

/* One line per change, for wait when not on a terminal:
 * "<id> running 45%", "<id> retrying 0% (attempt 1 of 3 failed: code: message; next
 * attempt at T)", "<id> succeeded 100%". No newline. */
int ctl_out_job_line(sp_buf *b, const json_t *job);

/* The live line for a terminal (no newline, no carriage return), fitted to columns:
 * "<state> [bar] 45%  0:12". elapsed_ms is shown as m:ss. */
int ctl_out_progress(sp_buf *b, const json_t *job, int columns, int64_t elapsed_ms);

/* The job in detail (status): id, type and queue, state and progress, attempts, times,
 * error, outputs with their full URLs under server, metadata. Ends with a newline. */
int ctl_out_job(sp_buf *b, const json_t *job, const char *server);

/* How a job ended (wait): "<id> succeeded in 4.2 s" and one line per output with its
 * size and URL; "<id> failed after 3 attempts: code: message"; "<id> cancelled".
 * Ends with a newline. */
int ctl_out_summary(sp_buf *b, const json_t *job, const char *server);

/* A table of {"jobs":[...]} (jobs): ID, TYPE, STATE, PROGRESS, ATTEMPTS, CREATED. */
int ctl_out_jobs(sp_buf *b, const json_t *list);

/* The tables of {"queues":[...],"workers":[...]} (queues). */
int ctl_out_queues(sp_buf *b, const json_t *q);

/* {"error":{"code":code,"message":message}} and a newline, for --json. */
int ctl_out_error_json(sp_buf *b, const char *code, const char *message);

/* The state of a job object ("" when absent). */
const char *ctl_job_state(const json_t *job);

/* True for succeeded, failed and cancelled. */
int ctl_state_terminal(const char *state);

#endif

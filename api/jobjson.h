/* jobjson.h - the job as the API shows it (DESIGN.md): id, type, queue, state,
 * progress, attempts, max_attempts, priority, created_at, started_at, finished_at,
 * updated_at (RFC 3339 UTC or null), next_attempt_at (while retrying), cancel_requested,
 * callback_url (null when the job has none), error (null or {code,message,retryable}), outputs [{name,url,content_type,bytes,...}],
 * metadata, params and input. */
#ifndef SPOOL_API_JOBJSON_H
#define SPOOL_API_JOBJSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/buf.h"
#include "spool/job.h"

/* Append the job's JSON object to out. A stored JSON field that does not parse is
 * shown as null rather than failing the request. Returns 0, SP_ENOMEM or SP_ETOOBIG. */
int api_job_render(const sp_job *j, sp_buf *out);

/* The job's entity tag, "\"<version>\"", into out (32 bytes). */
/* Append jobs[0..n) as a JSON array of job objects. 0 or SP_ENOMEM / SP_ETOOBIG (out
 * may then hold part of it). */
int api_job_render_list(const sp_job *jobs, size_t n, sp_buf *out);

void api_job_etag(const sp_job *j, char out[32]);

/* Find output name among the job's outputs: 0 with its content type copied into
 * ctype (cap bytes; "application/octet-stream" when it has none), or SP_ENOTFOUND. A
 * listed output in a folder ("hls/master.m3u8") stands for its whole set: every name
 * under that folder ("hls/720p/seg_00001.m4s") is found too, typed by its extension. */
int api_job_output(const sp_job *j, const char *name, char *ctype, size_t cap);

/* ms since the epoch as a JSON RFC 3339 string, or JSON null when ms <= 0 (a new
 * reference; NULL when out of memory). */
json_t *api_json_time(int64_t ms);

#endif

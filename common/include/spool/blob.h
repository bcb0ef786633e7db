/* blob.h - the blob store: uploads, fetched inputs and job outputs, shared by the API
 * and the workers. One interface (an operations table) with a local-directory
 * implementation under SPOOL_DATA_DIR; an S3-compatible store can implement the same
 * table. Writes go to a staging file and appear under their final name only on commit
 * (an atomic rename), so a reader never sees a partial blob and a retried job replaces
 * rather than duplicates its outputs.
 *
 * Layout: <root>/jobs/<last 2 chars of id>/<id>/<name>; staging files are
 * "<name>.tmp-<random>" in the same directory, each listed while it is open by an
 * empty marker "<root>/staging/<id>.<name>.tmp-<random>". Handles are thread-safe.
 *
 * Telling a dead writer's staging file from a live one (a process killed mid-upload
 * leaves its file; an upload from another host sharing the directory may be slow):
 * the process that writes a staging file refreshes its modification time every
 * SP_BLOB_HEARTBEAT_MS from a thread of its own, whether data arrives or not (and for
 * files a library writes by path), and holds an flock on it until it closes it. A
 * sweep (sp_blobs_sweep_staging) removes a file only when both say its writer is gone:
 * no refresh for a while by the file system's clock (so hosts' clocks may differ, and
 * NFS stamps with the server's), and no lock held (a live writer on this host, or on
 * another where locks reach the server, keeps its file however late its refresh). */
#ifndef SPOOL_BLOB_H
#define SPOOL_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

typedef struct sp_blobs sp_blobs;
typedef struct sp_blob_writer sp_blob_writer;

/* Open (creating if needed) the store rooted at dir. NULL with err set when the
 * directory cannot be created. Close with sp_blobs_close, after every writer has been
 * committed or aborted (it stops the thread that refreshes their files). */
sp_blobs *sp_blobs_open(const char *dir, sp_err *err);
void sp_blobs_close(sp_blobs *b); /* accepts NULL */

/* How often a writer's process refreshes its open staging files. */
#define SP_BLOB_HEARTBEAT_MS 2000
/* The least silence after which a sweep may judge a writer dead: five refreshes. */
#define SP_BLOB_STALE_MIN_MS (5 * SP_BLOB_HEARTBEAT_MS)

/* Check that the store can take a write now (create, write and remove a probe file).
 * 0 or SP_EIO with the reason. For readiness probes. */
int sp_blobs_check(sp_blobs *b, sp_err *err);

/* True for a valid blob name: 1-64 of [A-Za-z0-9._-], not starting with '.'. */
bool sp_blob_name_valid(const char *name);

/* Start writing blob name of job id. max_bytes caps the size (0: no cap). On 0, *out
 * is a writer to finish with sp_blob_commit or sp_blob_abort. */
int sp_blob_create(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                   sp_blob_writer **out, sp_err *err);

/* Append n bytes. SP_ETOOBIG past max_bytes, SP_EIO on a write error (disk full...). */
int sp_blob_write(sp_blob_writer *w, const void *data, size_t n, sp_err *err);

/* Bytes written so far. */
int64_t sp_blob_written(const sp_blob_writer *w);

/* The staging file's path, for libraries that write files themselves (libavformat,
 * libharu). Write there, then commit. */
const char *sp_blob_staging_path(const sp_blob_writer *w);

/* Make the blob visible under its final name, replacing any older one. With durable,
 * fsync the file and its directory first. Frees w whatever the result; on failure the
 * staging file is removed. */
int sp_blob_commit(sp_blob_writer *w, bool durable, sp_err *err);

/* Discard the staging file and free w. Accepts NULL. */
void sp_blob_abort(sp_blob_writer *w);

/* The path of a committed blob (whether it exists or not). 0, SP_EINVAL for a bad id
 * or name, SP_ETOOBIG if it does not fit in n. */
int sp_blob_path(sp_blobs *b, const char *job_id, const char *name, char *out, size_t n,
                 sp_err *err);

/* Open a committed blob for reading: *fd (caller closes) and *size. SP_ENOTFOUND. */
int sp_blob_open_read(sp_blobs *b, const char *job_id, const char *name, int *fd,
                      int64_t *size, sp_err *err);

/* Remove blob name of job id. 0 also when it did not exist. */
int sp_blob_remove(sp_blobs *b, const char *job_id, const char *name, sp_err *err);

/* Remove the staging files of job id: what an earlier attempt that died mid-write left.
 * Committed blobs stay. 0 also when there were none. Only call while holding the
 * job's lease (no other attempt writes then). */
int sp_blobs_remove_staging(sp_blobs *b, const char *job_id, sp_err *err);

/* Remove every blob of job id (and its directory). 0 also when there were none. */
int sp_blobs_remove_job(sp_blobs *b, const char *job_id, sp_err *err);

/* Remove the staging files whose writers died (killed mid-upload or mid-job, on any
 * host sharing the store): those with a marker whose file has not been refreshed for
 * stale_ms (raised to SP_BLOB_STALE_MIN_MS if lower) and whose lock no process holds,
 * and markers left without a file. Reads only <root>/staging, so it is cheap to run
 * every few seconds. *removed (may be NULL) gets the staging files removed. 0, or
 * SP_EIO when the directory cannot be read. */
int sp_blobs_sweep_staging(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err);

/* Garbage collection: for each job directory not modified for min_age_ms, ask
 * keep(job_id, ud): 1 keeps it, 0 removes it, a negative code stops the walk (and is
 * returned). Staging files older than min_age_ms (left by crashed writers) in kept
 * directories are removed. *removed (may be NULL) gets the directories removed. */
int sp_blobs_gc(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *job_id, void *ud),
                void *ud, int *removed, sp_err *err);

#endif

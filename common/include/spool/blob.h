/* blob.h - the blob store: uploads, fetched inputs and job outputs, shared by the API
 * and the workers. One interface with two stores behind it, chosen by SPOOL_BLOB_URL:
 *
 * - a directory (file:///path, or SPOOL_DATA_DIR): every process must see it (one
 *   host, or a network file system). Writes go to a staging file and appear under
 *   their final name only on commit (an atomic rename).
 * - an S3-compatible object store (s3://BUCKET/PREFIX): nothing is shared but the
 *   store. A write buffers one part in memory and becomes a multipart upload when it
 *   outgrows it; the object appears only when its PUT or CompleteMultipartUpload
 *   succeeds; an abandoned write's upload is aborted. Files that a library writes or
 *   reads by path (libavformat, libharu) live in a local scratch directory
 *   (SPOOL_SCRATCH_DIR) for the time of the job.
 *
 * Either way a reader never sees a partial blob, and a retried job replaces rather
 * than duplicates its outputs.
 *
 * Directory layout: <root>/jobs/<last 2 chars of id>/<id>/<name>; staging files are
 * "<name>.tmp-<random>" in the same directory, each listed while it is open by an
 * empty marker "<root>/staging/<id>.<name>.tmp-<random>". Object keys:
 * <PREFIX>jobs/<id>/<name>. Handles are thread-safe.
 *
 * Telling a dead writer's staging file from a live one (a process killed mid-upload
 * leaves its file; an upload from another host sharing the directory may be slow):
 * the process that writes a staging file refreshes its modification time every
 * SP_BLOB_HEARTBEAT_MS from a thread of its own, whether data arrives or not (and for
 * files a library writes by path), and holds an flock on it until it closes it. A
 * sweep (sp_blobs_sweep_staging) removes a file only when both say its writer is gone:
 * no refresh for a while by the file system's clock (so hosts' clocks may differ, and
 * NFS stamps with the server's), and no lock held (a live writer on this host, or on
 * another where locks reach the server, keeps its file however late its refresh). In
 * an object store the sweep aborts the multipart uploads not written to for as long,
 * by the store's clock. */
#ifndef SPOOL_BLOB_H
#define SPOOL_BLOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/config.h"
#include "spool/err.h"

typedef struct sp_blobs sp_blobs;
typedef struct sp_blob_writer sp_blob_writer;

/* Where the blobs live: url (SPOOL_BLOB_URL) if set, else the directory data_dir
 * (SPOOL_DATA_DIR). The S3 settings apply to s3:// URLs. */
typedef struct sp_blob_config {
    const char *url;         /* file:///path, s3://BUCKET[/PREFIX], or NULL/"" */
    const char *data_dir;    /* the directory when url is empty */
    const char *scratch_dir; /* local files for libraries (object store only); NULL or
                              * "": $TMPDIR/spool-scratch */
    const char *s3_endpoint; /* http(s)://host[:port]; NULL or "": AWS */
    const char *s3_region;   /* NULL or "": us-east-1 */
    bool s3_path_style;
    const char *access_key, *secret_key, *session_token; /* AWS_* */
    int64_t part_size;       /* bytes buffered per part; 0: SP_BLOB_PART_SIZE */
} sp_blob_config;

#define SP_BLOB_PART_SIZE (8 * 1024 * 1024)
#define SP_BLOB_PART_MIN (5 * 1024 * 1024) /* S3's smallest part but the last */

/* c's settings from the shared options (SPOOL_BLOB_URL, SPOOL_DATA_DIR, SPOOL_S3_...),
 * completed from the environment by sp_blob_config_env. The strings point into
 * common. */
void sp_blob_config_from(const sp_common_config *common, sp_blob_config *c);

/* Fill c from the environment: SPOOL_BLOB_URL, SPOOL_DATA_DIR, SPOOL_SCRATCH_DIR,
 * SPOOL_S3_ENDPOINT, SPOOL_S3_REGION (else AWS_REGION, AWS_DEFAULT_REGION),
 * SPOOL_S3_PATH_STYLE, SPOOL_S3_PART_SIZE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
 * Fields already set are kept (the strings point into the environment). For binaries
 * whose options table has no S3 settings, and for the credentials, which are never
 * options (a command line is visible to every user of the host). */
void sp_blob_config_env(sp_blob_config *c);

/* Open the store c names (creating the directory if needed). NULL with err set when
 * the settings are wrong or the directory cannot be created; an object store is not
 * contacted (sp_blobs_check does). Close with sp_blobs_close, after every writer has
 * been committed or aborted. */
sp_blobs *sp_blobs_open(const sp_blob_config *c, sp_err *err);
/* The directory store rooted at dir, or the store a URL names (with the environment's
 * S3 settings): for tools. */
sp_blobs *sp_blobs_open_at(const char *dir_or_url, sp_err *err);
void sp_blobs_close(sp_blobs *b); /* accepts NULL */

/* "directory /var/lib/spool" or "s3://BUCKET/PREFIX at ENDPOINT", for logs. */
const char *sp_blobs_describe(const sp_blobs *b);
/* "directory" or "s3". */
const char *sp_blobs_kind(const sp_blobs *b);

/* How often a writer's process refreshes its open staging files. */
#define SP_BLOB_HEARTBEAT_MS 2000
/* The least silence after which a sweep may judge a writer dead: five refreshes. */
#define SP_BLOB_STALE_MIN_MS (5 * SP_BLOB_HEARTBEAT_MS)

/* Check that the store can take a write now (create, write and remove a probe file;
 * in an object store, that the bucket exists and the credentials may use it). 0 or
 * SP_EIO with the reason. For readiness probes. */
int sp_blobs_check(sp_blobs *b, sp_err *err);

/* A blob name is a path of 1 to SP_BLOB_DEPTH_MAX parts joined by '/' ("video.mp4",
 * "hls/720p/seg_00001.m4s"), at most SP_BLOB_NAME_MAX bytes in all; each part is 1 to
 * SP_BLOB_PART_MAX of [A-Za-z0-9._-] and does not start with '.'. So no name is
 * absolute, empty, ".", "..", holds an empty part ("a//b", "a/") or a backslash, and
 * every store can map it to a file or key as it is. (The limit keeps a staging marker,
 * "<id>.<name with '+' for '/'>.tmp-<16 hex>", within one file name of 255 bytes.) */
#define SP_BLOB_NAME_MAX 192
#define SP_BLOB_PART_MAX 64
#define SP_BLOB_DEPTH_MAX 8
bool sp_blob_name_valid(const char *name);

/* The Content-Type for a blob, from its name's extension ("hls/master.m3u8" ->
 * "application/vnd.apple.mpegurl"); "application/octet-stream" when unknown. */
const char *sp_blob_content_type(const char *name);

/* A new empty directory for job id's files while it works (a ladder's segments and
 * playlists, written by a library), in this process's scratch directory (so a process
 * that dies leaves nothing that the next one does not sweep). Its path goes to out.
 * Remove it with sp_blobs_work_dir_remove. */
int sp_blobs_work_dir(sp_blobs *b, const char *job_id, char *out, size_t n, sp_err *err);
void sp_blobs_work_dir_remove(const char *dir); /* it and everything in it; accepts NULL */

/* Copy the local file at path into blob name of job id and commit it (see
 * sp_blob_commit): a file a library wrote in a work directory. *size (may be NULL) gets
 * its size. On error nothing new is visible. */
int sp_blob_put_file(sp_blobs *b, const char *job_id, const char *name, const char *path,
                     bool durable, int64_t *size, sp_err *err);

/* Start writing blob name of job id with sp_blob_write. max_bytes caps the size (0: no
 * cap). On 0, *out is a writer to finish with sp_blob_commit or sp_blob_abort. */
int sp_blob_create(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                   sp_blob_writer **out, sp_err *err);

/* Start a blob that a library writes by path (sp_blob_staging_path), not with
 * sp_blob_write: a staging file in the directory store, a scratch file uploaded on
 * commit in an object store. */
int sp_blob_create_file(sp_blobs *b, const char *job_id, const char *name,
                        sp_blob_writer **out, sp_err *err);

/* Append n bytes. SP_ETOOBIG past max_bytes, SP_EIO on a write error (disk full, the
 * object store failing after its retries...). */
int sp_blob_write(sp_blob_writer *w, const void *data, size_t n, sp_err *err);

/* Bytes written so far (with sp_blob_write). */
int64_t sp_blob_written(const sp_blob_writer *w);

/* The file a writer from sp_blob_create_file stands for, for libraries that write
 * files themselves (libavformat, libharu). Write there, then commit. NULL for a writer
 * from sp_blob_create in an object store. */
const char *sp_blob_staging_path(const sp_blob_writer *w);

/* Make the blob visible under its final name, replacing any older one. With durable,
 * fsync the file and its directory first (an object store's answer is durable). Frees
 * w whatever the result; on failure the staging file (or upload) is removed. *size
 * (may be NULL) gets the blob's size. */
int sp_blob_commit(sp_blob_writer *w, bool durable, int64_t *size, sp_err *err);

/* Discard the staging file (or the upload) and free w. Accepts NULL. */
void sp_blob_abort(sp_blob_writer *w);

/* A committed blob opened for reading at any offset: the file in the directory store,
 * ranged GETs in an object store (each checked against the ETag the object had when
 * opened, so a blob replaced meanwhile fails the read rather than mixing two). */
typedef struct sp_blob_reader sp_blob_reader;
int sp_blob_reader_open(sp_blobs *b, const char *job_id, const char *name,
                        sp_blob_reader **out, int64_t *size, sp_err *err);
/* Read up to n bytes at off into buf; *got gets how many (0 at the end). */
int sp_blob_read(sp_blob_reader *r, int64_t off, void *buf, size_t n, size_t *got,
                 sp_err *err);
/* The reader's file descriptor, for sendfile (directory store), or -1. */
int sp_blob_reader_fd(const sp_blob_reader *r);
void sp_blob_reader_close(sp_blob_reader *r); /* accepts NULL */

/* A committed blob as a local file, for libraries that open files by path: the blob's
 * own file in the directory store, a copy in the scratch directory in an object store
 * (removed by sp_blob_local_close). max_bytes (0: none) refuses a bigger blob with
 * SP_ETOOBIG before copying it. SP_ENOTFOUND when there is no such blob. */
typedef struct sp_blob_local sp_blob_local;
int sp_blob_local_open(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                       sp_blob_local **out, sp_err *err);
const char *sp_blob_local_path(const sp_blob_local *l);
int64_t sp_blob_local_size(const sp_blob_local *l);
void sp_blob_local_close(sp_blob_local *l); /* accepts NULL */

/* Open a committed blob as a file for reading: *fd (caller closes) and *size (a local
 * copy in an object store, already unlinked). max_bytes as for sp_blob_local_open
 * (*size still gets the blob's size with SP_ETOOBIG). SP_ENOTFOUND. */
int sp_blob_open_read(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                      int *fd, int64_t *size, sp_err *err);

/* A URL that lets its holder GET blob name of job id for ttl_s seconds without spool:
 * an object store's presigned URL, at endpoint (NULL or "": the store's own address;
 * another one for clients that reach the store elsewhere), answered with ctype and
 * disposition (NULL: the object's). SP_EUNSUPPORTED for the directory store. */
int sp_blob_presign(sp_blobs *b, const char *job_id, const char *name, const char *endpoint,
                    int64_t ttl_s, const char *ctype, const char *disposition, char *out,
                    size_t cap, sp_err *err);

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
 * every few seconds. In an object store: abort the multipart uploads not written to
 * for stale_ms. *removed (may be NULL) gets the staging files removed. 0, or SP_EIO
 * when the directory (or the store) cannot be read. */
int sp_blobs_sweep_staging(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err);

/* True when some writer of job id wrote within window_ms: an upload in progress whose
 * job may not exist yet. (Always false for an object store, where nothing of a write
 * is listed before it is complete.) */
bool sp_blobs_writing(sp_blobs *b, const char *job_id, int64_t window_ms);

/* Garbage collection: for each job whose blobs were all last modified at least
 * min_age_ms ago, ask keep(job_id, ud): 1 keeps it, 0 removes it, a negative code
 * stops the walk (and is returned). Staging files older than min_age_ms (left by
 * crashed writers) of kept jobs are removed. *removed (may be NULL) gets the jobs
 * removed. */
int sp_blobs_gc(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *job_id, void *ud),
                void *ud, int *removed, sp_err *err);

#endif

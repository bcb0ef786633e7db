/* blob_internal.h - what the blob store's front (blob.c) and its two stores
 * (blob_dir.c, blob_s3.c) share (internal to common/). */
#ifndef SPOOL_BLOB_INTERNAL_H
#define SPOOL_BLOB_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "s3.h"
#include "spool/blob.h"
#include "spool/ticker.h"

/* What a store provides. The front checks names and ids, and frees writers, readers
 * and locals after the store's close/commit/abort. */
typedef struct sp_blob_ops {
    const char *kind;
    void (*close)(sp_blobs *b);
    int (*check)(sp_blobs *b, sp_err *err);
    int (*create)(sp_blobs *b, const char *id, const char *name, sp_blob_writer *w,
                  sp_err *err);
    int (*write)(sp_blob_writer *w, const void *data, size_t n, sp_err *err);
    int (*commit)(sp_blob_writer *w, bool durable, sp_err *err);
    void (*abort)(sp_blob_writer *w);
    int (*reader_open)(sp_blobs *b, const char *id, const char *name, sp_blob_reader *r,
                       sp_err *err);
    int (*read)(sp_blob_reader *r, int64_t off, void *buf, size_t n, size_t *got,
                sp_err *err);
    void (*reader_close)(sp_blob_reader *r);
    int (*local_open)(sp_blobs *b, const char *id, const char *name, int64_t max_bytes,
                      sp_blob_local *l, sp_err *err);
    void (*local_close)(sp_blob_local *l);
    int (*remove)(sp_blobs *b, const char *id, const char *name, sp_err *err);
    int (*remove_job)(sp_blobs *b, const char *id, sp_err *err);
    int (*remove_staging)(sp_blobs *b, const char *id, sp_err *err);
    int (*sweep)(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err);
    bool (*writing)(sp_blobs *b, const char *id, int64_t window_ms);
    int (*gc)(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *id, void *ud), void *ud,
              int *removed, sp_err *err);
    int (*presign)(sp_blobs *b, const char *id, const char *name, const char *endpoint,
                   int64_t ttl_s, const char *ctype, const char *disposition, char *out,
                   size_t cap, sp_err *err); /* NULL: none */
} sp_blob_ops;

struct sp_blobs {
    const sp_blob_ops *ops;
    char describe[PATH_MAX / 2 + 64]; /* "directory ROOT", "s3://BUCKET/PREFIX at ..." */
    /* the directory store */
    char root[PATH_MAX / 2];
    /* The open writers, whose staging files the keeper (started with the first writer,
     * stopped by sp_blobs_close) refreshes every SP_BLOB_HEARTBEAT_MS. */
    pthread_mutex_t mu;
    sp_blob_writer *writers;
    sp_ticker *keeper;
    /* the object store */
    sp_s3 *s3;
    char prefix[512];   /* key prefix, "" or ending in '/' */
    int64_t part_size;
    /* This process's scratch directory (object store), made on first use:
     * <scratch_base>/<pid>-<random>, holding the lock file "lock" while it lives. */
    char scratch_base[PATH_MAX / 4];
    char scratch[PATH_MAX / 4 + 64];
    int scratch_lock;
};

struct sp_blob_writer {
    sp_blobs *store;
    int fd;
    int64_t written;
    int64_t max_bytes;
    bool by_path; /* from sp_blob_create_file */
    char name[SP_BLOB_NAME_MAX + 1];
    sp_blob_writer *prev, *next; /* in store->writers while listed */
    bool listed;
    char staging[PATH_MAX];
    char final[PATH_MAX]; /* the file (directory) or the object key */
    char marker[PATH_MAX]; /* "<root>/staging/<id>.<staging file name>" */
    /* object store: the part being filled, and the multipart upload once begun */
    char *part;
    size_t part_len;
    char upload_id[SP_S3_UPLOAD_ID_MAX];
    char **etags;
    size_t nparts, cap_parts;
};

struct sp_blob_reader {
    sp_blobs *store;
    int fd;
    int64_t size;
    char key[PATH_MAX];
    char etag[SP_S3_ETAG_MAX];
};

struct sp_blob_local {
    sp_blobs *store;
    int64_t size;
    bool copy; /* a scratch copy, removed on close */
    char path[PATH_MAX];
};

extern const sp_blob_ops sp_blob_dir_ops;
extern const sp_blob_ops sp_blob_s3_ops;

/* The directory store rooted at dir, into b. */
int sp_blob_dir_init(sp_blobs *b, const char *dir, sp_err *err);
/* The object store of s3://BUCKET[/PREFIX], into b. */
int sp_blob_s3_init(sp_blobs *b, const char *url, const sp_blob_config *c, sp_err *err);

/* A new file in this process's scratch directory named after the job and blob (the
 * path into out), opened for writing (and reading) into *fd. */
int sp_blob_scratch_file(sp_blobs *b, const char *id, const char *name, char *out,
                         size_t n, int *fd, sp_err *err);


/* name with each '/' turned into '+' (which no name holds), for one flat file name:
 * staging markers, scratch files. */
void sp_blob_flat_name(const char *name, char out[SP_BLOB_NAME_MAX + 1]);

/* Remove name (a file, or a directory and everything under it) in directory parent (a
 * descriptor, or AT_FDCWD). Symbolic links are removed, never followed. 0, or -1 when
 * something could not be removed (an absent name is not an error). */
int sp_blob_rm_tree(int parent, const char *name);

#endif

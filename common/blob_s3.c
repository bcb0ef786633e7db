/* blob_s3.c - the blob store in an S3-compatible object store (see blob.h, s3.h).
 *
 * Keys: <prefix>jobs/<id>/<name>. A writer fills one part in memory; a blob that fits
 * in it is one PUT at commit, a bigger one a multipart upload whose parts go as they
 * fill and which completes at commit (and is aborted on failure or abort), so an
 * object exists under its key only once it is whole. A library's file (by path) is a
 * scratch file, uploaded at commit straight from the file. */
#include "blob_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/util.h"

/* S3's most parts in one upload. */
#define SP__S3_MAX_PARTS 10000
/* Keys deleted per batch request (S3's most). */
#define SP__S3_BATCH 1000

int sp_blob_s3_init(sp_blobs *b, const char *url, const sp_blob_config *c, sp_err *err)
{
    const char *p = url + 5; /* after s3:// */
    size_t bl = strcspn(p, "/");
    char bucket[64];
    if (bl == 0 || bl >= sizeof bucket)
        return sp_err_set(err, SP_EINVAL, "bad blob URL '%s': want s3://BUCKET/PREFIX", url);
    memcpy(bucket, p, bl);
    bucket[bl] = '\0';
    const char *prefix = p[bl] == '/' ? p + bl + 1 : "";
    size_t pl = strlen(prefix);
    if (pl + 2 >= sizeof b->prefix || strstr(prefix, "//") || strchr(prefix, '?') ||
        strchr(prefix, '#'))
        return sp_err_set(err, SP_EINVAL, "bad key prefix in blob URL '%s'", url);
    snprintf(b->prefix, sizeof b->prefix, "%s%s", prefix, pl > 0 && prefix[pl - 1] != '/' ? "/" : "");
    sp_s3_config sc = {.endpoint = c->s3_endpoint,
                       .region = c->s3_region,
                       .bucket = bucket,
                       .path_style = c->s3_path_style,
                       .access_key = c->access_key,
                       .secret_key = c->secret_key,
                       .session_token = c->session_token};
    if ((b->s3 = sp_s3_new(&sc, err)) == NULL)
        return err ? err->code : SP_EINVAL;
    b->ops = &sp_blob_s3_ops;
    b->part_size = c->part_size > 0 ? c->part_size : SP_BLOB_PART_SIZE;
    if (b->part_size < SP_BLOB_PART_MIN)
        b->part_size = SP_BLOB_PART_MIN;
    snprintf(b->describe, sizeof b->describe, "%s (keys under '%s')", sp_s3_name(b->s3),
             b->prefix);
    return 0;
}

static void sp__s3_close(sp_blobs *b)
{
    sp_s3_free(b->s3);
    b->s3 = NULL;
}

static int sp__s3_check(sp_blobs *b, sp_err *err)
{
    return sp_s3_check(b->s3, err);
}

/* "<prefix>jobs/<id>/" or, with name, "<prefix>jobs/<id>/<name>". */
static void sp__key(const sp_blobs *b, const char *id, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%sjobs/%s/%s", b->prefix, id, name ? name : "");
}

/* ---- writing ------------------------------------------------------------------- */

static int sp__s3_create(sp_blobs *b, const char *id, const char *name, sp_blob_writer *w,
                         sp_err *err)
{
    sp__key(b, id, name, w->final, sizeof w->final);
    if (w->by_path)
        return sp_blob_scratch_file(b, id, name, w->staging, sizeof w->staging, &w->fd, err);
    return 0;
}

/* The part size for a blob of up to max bytes: the store's, or larger when max would
 * need more than S3's 10,000 parts. */
static int64_t sp__part_size(const sp_blobs *b, int64_t max)
{
    int64_t need = max > 0 ? (max + SP__S3_MAX_PARTS - 1) / SP__S3_MAX_PARTS : 0;
    return need > b->part_size ? need : b->part_size;
}

static int sp__begin(sp_blob_writer *w, sp_err *err)
{
    if (w->upload_id[0])
        return 0;
    return sp_s3_mpu_create(w->store->s3, w->final, sp_blob_content_type(w->name), w->upload_id,
                            sizeof w->upload_id, err);
}

/* Upload the next part: len bytes from memory, or from the file at off (fd >= 0). */
static int sp__part(sp_blob_writer *w, const void *data, int fd, int64_t off, int64_t len,
                    sp_err *err)
{
    if (w->nparts >= SP__S3_MAX_PARTS)
        return sp_err_set(err, SP_ETOOBIG, "blob %s needs more than %d parts", w->name,
                          SP__S3_MAX_PARTS);
    if (w->nparts == w->cap_parts) {
        size_t cap = w->cap_parts ? w->cap_parts * 2 : 16;
        char **e = sp_realloc(w->etags, cap * sizeof *e);
        if (e == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        w->etags = e;
        w->cap_parts = cap;
    }
    int rc = sp__begin(w, err);
    char etag[SP_S3_ETAG_MAX];
    if (rc == 0)
        rc = sp_s3_mpu_part(w->store->s3, w->final, w->upload_id, (int)w->nparts + 1, data, fd,
                            off, len, etag, err);
    if (rc == 0 && (w->etags[w->nparts] = sp_strdup(etag)) == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    if (rc == 0)
        w->nparts++;
    return rc;
}

static int sp__s3_write(sp_blob_writer *w, const void *data, size_t n, sp_err *err)
{
    size_t part = (size_t)sp__part_size(w->store, w->max_bytes);
    if (w->part == NULL && n > 0 && (w->part = sp_malloc(part)) == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    const char *p = data;
    while (n > 0) {
        /* A full part goes only when more comes: a blob of exactly one part stays one
         * PUT. */
        if (w->part_len == part) {
            int rc = sp__part(w, w->part, -1, 0, (int64_t)w->part_len, err);
            if (rc < 0)
                return rc;
            w->part_len = 0;
        }
        size_t k = part - w->part_len < n ? part - w->part_len : n;
        memcpy(w->part + w->part_len, p, k);
        w->part_len += k;
        p += k;
        n -= k;
    }
    return 0;
}

static void sp__release(sp_blob_writer *w)
{
    for (size_t i = 0; i < w->nparts; i++)
        sp_free(w->etags[i]);
    sp_free(w->etags);
    sp_free(w->part);
    w->etags = NULL;
    w->part = NULL;
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    if (w->staging[0])
        unlink(w->staging);
}

static int sp__complete(sp_blob_writer *w, sp_err *err)
{
    return sp_s3_mpu_complete(w->store->s3, w->final, w->upload_id,
                              (const char *const *)w->etags, w->nparts, err);
}

/* Upload a library's file: one PUT, or parts read from the file. */
static int sp__commit_file(sp_blob_writer *w, sp_err *err)
{
    struct stat st;
    if (fstat(w->fd, &st) < 0)
        return sp_err_set(err, SP_EIO, "stat %s: %s", w->staging, strerror(errno));
    int64_t size = st.st_size;
    int64_t part = sp__part_size(w->store, size);
    if (size <= part)
        return sp_s3_put_file(w->store->s3, w->final, sp_blob_content_type(w->name), w->fd, 0,
                              size, err);
    int rc = 0;
    for (int64_t off = 0; rc == 0 && off < size; off += part)
        rc = sp__part(w, NULL, w->fd, off, size - off < part ? size - off : part, err);
    return rc == 0 ? sp__complete(w, err) : rc;
}

static void sp__abort_upload(sp_blob_writer *w)
{
    if (w->upload_id[0] == '\0')
        return;
    sp_err e;
    if (sp_s3_mpu_abort(w->store->s3, w->final, w->upload_id, &e) < 0)
        sp_warn(NULL, "cannot abort the upload of %s (the store's sweep will): %s", w->final,
                e.msg);
    w->upload_id[0] = '\0';
}

static int sp__s3_commit(sp_blob_writer *w, bool durable, sp_err *err)
{
    (void)durable; /* the store answers only once the object is stored */
    int rc;
    if (w->by_path)
        rc = sp__commit_file(w, err);
    else if (w->upload_id[0] == '\0')
        rc = sp_s3_put(w->store->s3, w->final, sp_blob_content_type(w->name),
                       w->part ? w->part : "", w->part_len, err);
    else {
        rc = w->part_len > 0 ? sp__part(w, w->part, -1, 0, (int64_t)w->part_len, err) : 0;
        if (rc == 0)
            rc = sp__complete(w, err);
    }
    if (rc < 0)
        sp__abort_upload(w);
    sp__release(w);
    return rc;
}

static void sp__s3_abort(sp_blob_writer *w)
{
    sp__abort_upload(w);
    sp__release(w);
}

/* ---- reading ------------------------------------------------------------------- */

static int sp__s3_reader_open(sp_blobs *b, const char *id, const char *name,
                              sp_blob_reader *r, sp_err *err)
{
    sp__key(b, id, name, r->key, sizeof r->key);
    return sp_s3_head(b->s3, r->key, &r->size, r->etag, err);
}

static int sp__s3_read(sp_blob_reader *r, int64_t off, void *buf, size_t n, size_t *got,
                       sp_err *err)
{
    return sp_s3_get_range(r->store->s3, r->key, r->etag, off, n, buf, got, err);
}

static void sp__s3_reader_close(sp_blob_reader *r)
{
    (void)r;
}

static int sp__s3_local_open(sp_blobs *b, const char *id, const char *name, int64_t max_bytes,
                             sp_blob_local *l, sp_err *err)
{
    char key[PATH_MAX];
    sp__key(b, id, name, key, sizeof key);
    int64_t size = 0;
    int rc = sp_s3_head(b->s3, key, &size, NULL, err);
    if (rc < 0)
        return rc;
    l->size = size;
    if (max_bytes > 0 && size > max_bytes)
        return sp_err_set(err, SP_ETOOBIG, "blob '%s' is %lld bytes, more than the limit of %lld",
                          name, (long long)size, (long long)max_bytes);
    int fd;
    rc = sp_blob_scratch_file(b, id, name, l->path, sizeof l->path, &fd, err);
    if (rc < 0)
        return rc;
    /* Room for the copy, or a clear reason now rather than ENOSPC half way. */
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) == 0 && (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize < size) {
        rc = sp_err_set(err, SP_EIO, "the scratch directory has %lld bytes free, blob '%s' "
                                     "needs %lld (SPOOL_SCRATCH_DIR)",
                        (long long)vfs.f_bavail * (long long)vfs.f_frsize, name, (long long)size);
        close(fd);
        unlink(l->path);
        return rc;
    }
    /* At most the size seen: an object replaced meanwhile by a bigger one is refused. */
    rc = sp_s3_get_file(b->s3, key, fd, size > 0 ? size : 1, &l->size, err);
    if (rc == 0 && close(fd) < 0)
        rc = sp_err_set(err, SP_EIO, "close %s: %s", l->path, strerror(errno));
    else if (rc < 0)
        close(fd);
    if (rc < 0)
        unlink(l->path);
    l->copy = rc == 0;
    return rc;
}

static void sp__s3_local_close(sp_blob_local *l)
{
    if (l->copy)
        unlink(l->path);
}

/* ---- removing ------------------------------------------------------------------ */

static int sp__s3_remove(sp_blobs *b, const char *id, const char *name, sp_err *err)
{
    char key[PATH_MAX];
    sp__key(b, id, name, key, sizeof key);
    return sp_s3_delete(b->s3, key, err);
}

/* Keys gathered for one batch delete. */
typedef struct sp__batch {
    sp_blobs *b;
    char *keys[SP__S3_BATCH];
    size_t n;
    int deleted;
    sp_err *err;
} sp__batch;

static int sp__batch_flush(sp__batch *t)
{
    int rc = sp_s3_delete_many(t->b->s3, (const char *const *)t->keys, t->n, t->err);
    if (rc == 0)
        t->deleted += (int)t->n;
    for (size_t i = 0; i < t->n; i++)
        sp_free(t->keys[i]);
    t->n = 0;
    return rc;
}

static int sp__batch_add(const sp_s3_object *o, void *ud)
{
    sp__batch *t = ud;
    if ((t->keys[t->n] = sp_strdup(o->key)) == NULL)
        return sp_err_set(t->err, SP_ENOMEM, "out of memory");
    if (++t->n == SP__S3_BATCH)
        return sp__batch_flush(t);
    return 0;
}

typedef struct sp__abort_walk {
    sp_blobs *b;
    int64_t stale_ms; /* 0: every upload */
    int aborted;
} sp__abort_walk;

static int sp__abort_one(const sp_s3_upload *u, int64_t now_ms, void *ud)
{
    sp__abort_walk *a = ud;
    sp_err e;
    if (a->stale_ms > 0) {
        if (u->initiated_ms >= 0 && now_ms - u->initiated_ms < a->stale_ms)
            return 0;
        int64_t last = -1;
        if (sp_s3_upload_touched(a->b->s3, u->key, u->id, &last, &e) < 0)
            return 0; /* gone meanwhile, or unknown: judged next time */
        if (last >= 0 && now_ms - last < a->stale_ms)
            return 0;
    }
    if (sp_s3_mpu_abort(a->b->s3, u->key, u->id, &e) == 0)
        a->aborted++;
    else
        sp_warn(NULL, "cannot abort the upload of %s: %s", u->key, e.msg);
    return 0;
}

static int sp__s3_remove_staging(sp_blobs *b, const char *id, sp_err *err)
{
    char prefix[PATH_MAX];
    sp__key(b, id, NULL, prefix, sizeof prefix);
    sp__abort_walk a = {b, 0, 0};
    return sp_s3_list_uploads(b->s3, prefix, sp__abort_one, &a, err);
}

static int sp__s3_remove_job(sp_blobs *b, const char *id, sp_err *err)
{
    char prefix[PATH_MAX];
    sp__key(b, id, NULL, prefix, sizeof prefix);
    sp__batch t = {.b = b, .err = err};
    int rc = sp_s3_list(b->s3, prefix, sp__batch_add, &t, err);
    if (rc == 0 && t.n > 0)
        rc = sp__batch_flush(&t);
    for (size_t i = 0; i < t.n; i++)
        sp_free(t.keys[i]);
    if (rc == 0)
        rc = sp__s3_remove_staging(b, id, err);
    return rc;
}

static int sp__s3_sweep(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err)
{
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%sjobs/", b->prefix);
    sp__abort_walk a = {b, stale_ms, 0};
    int rc = sp_s3_list_uploads(b->s3, prefix, sp__abort_one, &a, err);
    if (removed)
        *removed = a.aborted;
    return rc;
}

static bool sp__s3_writing(sp_blobs *b, const char *id, int64_t window_ms)
{
    (void)b, (void)id, (void)window_ms;
    return false; /* nothing of a write is listed before it is complete */
}

/* The garbage collector's walk: keys come in order, so a job's objects are adjacent. */
typedef struct sp__gc_walk {
    sp_blobs *b;
    int64_t min_age_ms, now;
    int (*keep)(const char *id, void *ud);
    void *ud;
    int *removed;
    sp_err *err;
    char id[SP_ID_LEN + 1]; /* the job whose objects are being seen, or "" */
    int64_t newest;
} sp__gc_walk;

static int sp__gc_judge(sp__gc_walk *g)
{
    if (g->id[0] == '\0' || g->now - g->newest < g->min_age_ms)
        return 0;
    int k = g->keep(g->id, g->ud);
    if (k < 0)
        return sp_err_set(g->err, k, "blob gc stopped");
    if (k == 0 && sp__s3_remove_job(g->b, g->id, g->err) == 0 && g->removed)
        (*g->removed)++;
    return 0;
}

static int sp__gc_object(const sp_s3_object *o, void *ud)
{
    sp__gc_walk *g = ud;
    size_t pl = strlen(g->b->prefix) + 5; /* "<prefix>jobs/" */
    const char *id = o->key + pl;
    if (strlen(o->key) < pl + SP_ID_LEN + 1 || id[SP_ID_LEN] != '/')
        return 0;
    if (g->id[0] == '\0' || strncmp(g->id, id, SP_ID_LEN) != 0) {
        int rc = sp__gc_judge(g);
        if (rc < 0)
            return rc;
        memcpy(g->id, id, SP_ID_LEN);
        g->id[SP_ID_LEN] = '\0';
        if (!sp_id_valid(g->id))
            g->id[0] = '\0';
        g->newest = -1;
    }
    if (o->mtime_ms > g->newest)
        g->newest = o->mtime_ms < 0 ? g->now : o->mtime_ms;
    return 0;
}

static int sp__s3_gc(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *id, void *ud),
                     void *ud, int *removed, sp_err *err)
{
    char prefix[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%sjobs/", b->prefix);
    sp__gc_walk g = {.b = b, .min_age_ms = min_age_ms, .now = sp_now_ms(), .keep = keep,
                     .ud = ud, .removed = removed, .err = err};
    int rc = sp_s3_list(b->s3, prefix, sp__gc_object, &g, err);
    if (rc == 0)
        rc = sp__gc_judge(&g);
    return rc;
}

static int sp__s3_presign(sp_blobs *b, const char *id, const char *name, const char *endpoint,
                          int64_t ttl_s, const char *ctype, const char *disposition, char *out,
                          size_t cap, sp_err *err)
{
    char key[PATH_MAX];
    sp__key(b, id, name, key, sizeof key);
    return sp_s3_presign_get(b->s3, key, endpoint, ttl_s, ctype, disposition, out, cap, err);
}

const sp_blob_ops sp_blob_s3_ops = {
    .kind = "s3",
    .close = sp__s3_close,
    .check = sp__s3_check,
    .create = sp__s3_create,
    .write = sp__s3_write,
    .commit = sp__s3_commit,
    .abort = sp__s3_abort,
    .reader_open = sp__s3_reader_open,
    .read = sp__s3_read,
    .reader_close = sp__s3_reader_close,
    .local_open = sp__s3_local_open,
    .local_close = sp__s3_local_close,
    .remove = sp__s3_remove,
    .remove_job = sp__s3_remove_job,
    .remove_staging = sp__s3_remove_staging,
    .sweep = sp__s3_sweep,
    .writing = sp__s3_writing,
    .gc = sp__s3_gc,
    .presign = sp__s3_presign,
};

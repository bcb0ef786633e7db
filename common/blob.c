/* blob.c - the blob store's front (see blob.h): settings, names, and the calls that
 * every store shares; the stores are blob_dir.c and blob_s3.c. Also the scratch
 * directory where an object store's library files live. */
#include "blob_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/util.h"

/* One part of a name: 1-SP_BLOB_PART_MAX of [A-Za-z0-9._-], not starting with '.' (so
 * never "." or ".."). */
static bool sp__part_valid(const char *s, size_t n)
{
    if (n == 0 || n > SP_BLOB_PART_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

bool sp_blob_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t n = strnlen(name, SP_BLOB_NAME_MAX + 1);
    if (n == 0 || n > SP_BLOB_NAME_MAX)
        return false;
    int parts = 0;
    for (const char *p = name;;) {
        const char *slash = memchr(p, '/', n - (size_t)(p - name));
        size_t len = slash ? (size_t)(slash - p) : n - (size_t)(p - name);
        if (!sp__part_valid(p, len) || ++parts > SP_BLOB_DEPTH_MAX)
            return false;
        if (slash == NULL)
            return true;
        p = slash + 1;
    }
}

const char *sp_blob_content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".mp4", "video/mp4"},       {".webm", "video/webm"},  {".mkv", "video/x-matroska"},
        {".mov", "video/quicktime"}, {".jpg", "image/jpeg"},   {".jpeg", "image/jpeg"},
        {".png", "image/png"},       {".pdf", "application/pdf"}, {".csv", "text/csv"},
        {".json", "application/json"}, {".ndjson", "application/x-ndjson"},
        {".m3u8", "application/vnd.apple.mpegurl"}, {".m4s", "video/mp4"},
        {".ts", "video/mp2t"},       {".vtt", "text/vtt"},
    };
    const char *base = strrchr(name, '/');
    const char *dot = strrchr(base ? base + 1 : name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void sp__env(const char **field, const char *a, const char *b, const char *c)
{
    const char *names[] = {a, b, c};
    for (size_t i = 0; i < 3 && (*field == NULL || (*field)[0] == '\0'); i++)
        if (names[i])
            *field = getenv(names[i]);
}

void sp_blob_config_env(sp_blob_config *c)
{
    sp__env(&c->url, "SPOOL_BLOB_URL", NULL, NULL);
    sp__env(&c->data_dir, "SPOOL_DATA_DIR", NULL, NULL);
    sp__env(&c->scratch_dir, "SPOOL_SCRATCH_DIR", NULL, NULL);
    sp__env(&c->s3_endpoint, "SPOOL_S3_ENDPOINT", NULL, NULL);
    sp__env(&c->s3_region, "SPOOL_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION");
    sp__env(&c->access_key, "AWS_ACCESS_KEY_ID", NULL, NULL);
    sp__env(&c->secret_key, "AWS_SECRET_ACCESS_KEY", NULL, NULL);
    sp__env(&c->session_token, "AWS_SESSION_TOKEN", NULL, NULL);
    const char *part = getenv("SPOOL_S3_PART_SIZE");
    int64_t n;
    if (c->part_size == 0 && part && sp_parse_size(part, &n) == 0)
        c->part_size = n;
    const char *ps = getenv("SPOOL_S3_PATH_STYLE");
    if (!c->s3_path_style && ps)
        c->s3_path_style = strcmp(ps, "1") == 0 || strcasecmp(ps, "true") == 0 ||
                           strcasecmp(ps, "yes") == 0 || strcasecmp(ps, "on") == 0;
}

void sp_blob_config_from(const sp_common_config *common, sp_blob_config *c)
{
    *c = (sp_blob_config){.url = common->blob_url,
                          .data_dir = common->data_dir,
                          .scratch_dir = common->scratch_dir,
                          .s3_endpoint = common->s3_endpoint,
                          .s3_region = common->s3_region,
                          .s3_path_style = common->s3_path_style != 0,
                          .part_size = common->s3_part_size};
    sp_blob_config_env(c);
}

sp_blobs *sp_blobs_open(const sp_blob_config *c, sp_err *err)
{
    sp_blobs *b = sp_calloc(1, sizeof *b);
    if (b == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    b->scratch_lock = -1;
    pthread_mutex_init(&b->mu, NULL);
    const char *url = c->url && c->url[0] ? c->url : NULL;
    int rc;
    if (url && strncmp(url, "s3://", 5) == 0)
        rc = sp_blob_s3_init(b, url, c, err);
    else if (url && strncmp(url, "file://", 7) == 0)
        rc = url[7] == '/' ? sp_blob_dir_init(b, url + 7, err)
                           : sp_err_set(err, SP_EINVAL, "bad blob URL '%s': want file:///path",
                                        url);
    else if (url)
        rc = sp_err_set(err, SP_EINVAL, "bad blob URL '%s': want file:///path or "
                                        "s3://BUCKET/PREFIX",
                        url);
    else
        rc = sp_blob_dir_init(b, c->data_dir, err);
    const char *scratch = c->scratch_dir && c->scratch_dir[0] ? c->scratch_dir : NULL;
    const char *tmp = getenv("TMPDIR");
    int n = scratch ? snprintf(b->scratch_base, sizeof b->scratch_base, "%s", scratch)
                    : snprintf(b->scratch_base, sizeof b->scratch_base, "%s/spool-scratch",
                               tmp && tmp[0] ? tmp : "/tmp");
    if (rc == 0 && (n < 0 || (size_t)n >= sizeof b->scratch_base))
        rc = sp_err_set(err, SP_EINVAL, "scratch directory path too long");
    if (rc < 0) {
        if (b->ops)
            b->ops->close(b);
        pthread_mutex_destroy(&b->mu);
        sp_free(b);
        return NULL;
    }
    return b;
}

sp_blobs *sp_blobs_open_at(const char *dir_or_url, sp_err *err)
{
    sp_blob_config c = {0};
    if (strstr(dir_or_url, "://"))
        c.url = dir_or_url;
    else
        c.data_dir = dir_or_url;
    sp_blob_config_env(&c);
    if (!strstr(dir_or_url, "://"))
        c.url = NULL; /* a directory named here beats SPOOL_BLOB_URL */
    return sp_blobs_open(&c, err);
}

void sp_blob_flat_name(const char *name, char out[SP_BLOB_NAME_MAX + 1])
{
    size_t i = 0;
    for (; name[i] && i < SP_BLOB_NAME_MAX; i++)
        out[i] = name[i] == '/' ? '+' : name[i];
    out[i] = '\0';
}

int sp_blob_rm_tree(int parent, const char *name)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : unlinkat(parent, name, 0);
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (unlinkat(fd, e->d_name, 0) == 0 || errno == ENOENT)
            continue;
        if ((errno != EISDIR && errno != EPERM) || sp_blob_rm_tree(fd, e->d_name) < 0)
            rc = -1;
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = -1;
    return rc;
}

/* Remove dir and everything in it (a job's work directory may have folders). */
static void sp__rm_dir(const char *dir)
{
    sp_blob_rm_tree(AT_FDCWD, dir);
}

void sp_blobs_close(sp_blobs *b)
{
    if (b == NULL)
        return;
    b->ops->close(b);
    if (b->scratch[0]) {
        sp__rm_dir(b->scratch);
        close(b->scratch_lock);
    }
    pthread_mutex_destroy(&b->mu);
    sp_free(b);
}

const char *sp_blobs_describe(const sp_blobs *b)
{
    return b->describe;
}

const char *sp_blobs_kind(const sp_blobs *b)
{
    return b->ops->kind;
}

int sp_blobs_check(sp_blobs *b, sp_err *err)
{
    return b->ops->check(b, err);
}

/* ---- the scratch directory ----------------------------------------------------- */

/* Remove the scratch directories of processes that died (their lock is free). */
static void sp__scratch_sweep(const char *base)
{
    DIR *d = opendir(base);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/%s/lock", base, e->d_name);
        if (n < 0 || (size_t)n >= sizeof path)
            continue;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT)
            continue;
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0) {
            path[strlen(path) - 5] = '\0';
            sp__rm_dir(path);
        }
        if (fd >= 0)
            close(fd);
    }
    if (d)
        closedir(d);
}

/* Make this process's scratch directory (once), removing dead processes' first. */
static int sp__scratch_dir(sp_blobs *b, sp_err *err)
{
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    if (b->scratch[0] == '\0') {
        if (mkdir(b->scratch_base, 0700) < 0 && errno != EEXIST)
            rc = sp_err_set(err, SP_EIO, "cannot create scratch directory %s: %s",
                            b->scratch_base, strerror(errno));
        if (rc == 0)
            sp__scratch_sweep(b->scratch_base);
        char dir[sizeof b->scratch];
        int n = snprintf(dir, sizeof dir, "%s/%d-%08llx", b->scratch_base, (int)getpid(),
                         (unsigned long long)sp_random_below(UINT32_MAX));
        if (rc == 0 && (n < 0 || (size_t)n >= sizeof dir))
            rc = sp_err_set(err, SP_EINVAL, "scratch directory path too long");
        if (rc == 0 && mkdir(dir, 0700) < 0)
            rc = sp_err_set(err, SP_EIO, "cannot create %s: %s", dir, strerror(errno));
        char lock[sizeof dir + 8];
        snprintf(lock, sizeof lock, "%s/lock", dir);
        int fd = rc == 0 ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
        if (rc == 0 && (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)) {
            rc = sp_err_set(err, SP_EIO, "cannot lock %s: %s", lock, strerror(errno));
            if (fd >= 0)
                close(fd);
            rmdir(dir);
        }
        if (rc == 0) {
            b->scratch_lock = fd;
            memcpy(b->scratch, dir, sizeof dir);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int sp_blob_scratch_file(sp_blobs *b, const char *id, const char *name, char *out, size_t n,
                         int *fd, sp_err *err)
{
    int rc = sp__scratch_dir(b, err);
    if (rc < 0)
        return rc;
    char flat[SP_BLOB_NAME_MAX + 1];
    sp_blob_flat_name(name, flat);
    int len = snprintf(out, n, "%s/%s.%s.%016llx", b->scratch, id, flat,
                       (unsigned long long)sp_random_below(UINT64_MAX));
    if (len < 0 || (size_t)len >= n)
        return sp_err_set(err, SP_ETOOBIG, "scratch path too long");
    *fd = open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", out, strerror(errno));
    return 0;
}

int sp_blobs_work_dir(sp_blobs *b, const char *job_id, char *out, size_t n, sp_err *err)
{
    if (!sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    int rc = sp__scratch_dir(b, err);
    if (rc < 0)
        return rc;
    int len = snprintf(out, n, "%s/%s.work.%016llx", b->scratch, job_id,
                       (unsigned long long)sp_random_below(UINT64_MAX));
    if (len < 0 || (size_t)len >= n)
        return sp_err_set(err, SP_ETOOBIG, "scratch path too long");
    if (mkdir(out, 0700) < 0)
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", out, strerror(errno));
    return 0;
}

void sp_blobs_work_dir_remove(const char *dir)
{
    if (dir && dir[0])
        sp__rm_dir(dir);
}

int sp_blob_put_file(sp_blobs *b, const char *job_id, const char *name, const char *path,
                     bool durable, int64_t *size, sp_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "open %s: %s", path, strerror(errno));
    sp_blob_writer *w;
    int rc = sp_blob_create(b, job_id, name, 0, &w, err);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    char *buf = sp_malloc(256 * 1024);
    if (buf == NULL)
        rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    while (rc == 0) {
        ssize_t k = read(fd, buf, 256 * 1024);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = sp_err_set(err, SP_EIO, "read %s: %s", path, strerror(errno));
        if (k <= 0)
            break;
        rc = sp_blob_write(w, buf, (size_t)k, err);
    }
    sp_free(buf);
    close(fd);
    if (rc < 0) {
        sp_blob_abort(w);
        return rc;
    }
    return sp_blob_commit(w, durable, size, err);
}

/* ---- writing ------------------------------------------------------------------- */

static int sp__create(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                      bool by_path, sp_blob_writer **out, sp_err *err)
{
    *out = NULL;
    if (!sp_blob_name_valid(name))
        return sp_err_set(err, SP_EINVAL, "bad blob name");
    if (!sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    sp_blob_writer *w = sp_calloc(1, sizeof *w);
    if (w == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    w->store = b;
    w->fd = -1;
    w->max_bytes = max_bytes;
    w->by_path = by_path;
    snprintf(w->name, sizeof w->name, "%s", name);
    int rc = b->ops->create(b, job_id, name, w, err);
    if (rc < 0) {
        sp_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

int sp_blob_create(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                   sp_blob_writer **out, sp_err *err)
{
    return sp__create(b, job_id, name, max_bytes, false, out, err);
}

int sp_blob_create_file(sp_blobs *b, const char *job_id, const char *name,
                        sp_blob_writer **out, sp_err *err)
{
    return sp__create(b, job_id, name, 0, true, out, err);
}

int sp_blob_write(sp_blob_writer *w, const void *data, size_t n, sp_err *err)
{
    if (w->by_path)
        return sp_err_set(err, SP_EINVAL, "blob %s is written by path", w->name);
    if (w->max_bytes > 0 && (int64_t)n > w->max_bytes - w->written)
        return sp_err_set(err, SP_ETOOBIG, "larger than the limit of %lld bytes",
                          (long long)w->max_bytes);
    int rc = w->store->ops->write(w, data, n, err);
    if (rc == 0)
        w->written += (int64_t)n;
    return rc;
}

int64_t sp_blob_written(const sp_blob_writer *w)
{
    return w->written;
}

const char *sp_blob_staging_path(const sp_blob_writer *w)
{
    return w->staging[0] ? w->staging : NULL;
}

int sp_blob_commit(sp_blob_writer *w, bool durable, int64_t *size, sp_err *err)
{
    int64_t n = w->written;
    struct stat st;
    if (w->by_path)
        n = stat(w->staging, &st) == 0 ? (int64_t)st.st_size : 0;
    int rc = w->store->ops->commit(w, durable, err);
    sp_free(w);
    if (size)
        *size = rc == 0 ? n : 0;
    return rc;
}

void sp_blob_abort(sp_blob_writer *w)
{
    if (w == NULL)
        return;
    w->store->ops->abort(w);
    sp_free(w);
}

/* ---- reading ------------------------------------------------------------------- */

int sp_blob_reader_open(sp_blobs *b, const char *job_id, const char *name,
                        sp_blob_reader **out, int64_t *size, sp_err *err)
{
    *out = NULL;
    if (!sp_blob_name_valid(name) || !sp_id_valid(job_id))
        return sp_err_set(err, SP_ENOTFOUND, "no such blob");
    sp_blob_reader *r = sp_calloc(1, sizeof *r);
    if (r == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    r->store = b;
    r->fd = -1;
    int rc = b->ops->reader_open(b, job_id, name, r, err);
    if (rc < 0) {
        sp_free(r);
        return rc;
    }
    *size = r->size;
    *out = r;
    return 0;
}

int sp_blob_read(sp_blob_reader *r, int64_t off, void *buf, size_t n, size_t *got,
                 sp_err *err)
{
    *got = 0;
    if (off >= r->size || n == 0)
        return 0;
    if ((int64_t)n > r->size - off)
        n = (size_t)(r->size - off);
    return r->store->ops->read(r, off, buf, n, got, err);
}

int sp_blob_reader_fd(const sp_blob_reader *r)
{
    return r->fd;
}

void sp_blob_reader_close(sp_blob_reader *r)
{
    if (r == NULL)
        return;
    r->store->ops->reader_close(r);
    sp_free(r);
}

int sp_blob_local_open(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                       sp_blob_local **out, sp_err *err)
{
    *out = NULL;
    if (!sp_blob_name_valid(name) || !sp_id_valid(job_id))
        return sp_err_set(err, SP_ENOTFOUND, "no such blob");
    sp_blob_local *l = sp_calloc(1, sizeof *l);
    if (l == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    l->store = b;
    int rc = b->ops->local_open(b, job_id, name, max_bytes, l, err);
    if (rc < 0) {
        sp_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

const char *sp_blob_local_path(const sp_blob_local *l)
{
    return l->path;
}

int64_t sp_blob_local_size(const sp_blob_local *l)
{
    return l->size;
}

void sp_blob_local_close(sp_blob_local *l)
{
    if (l == NULL)
        return;
    l->store->ops->local_close(l);
    sp_free(l);
}

int sp_blob_open_read(sp_blobs *b, const char *job_id, const char *name, int64_t max_bytes,
                      int *fd, int64_t *size, sp_err *err)
{
    *fd = -1;
    *size = 0;
    if (!sp_blob_name_valid(name) || !sp_id_valid(job_id))
        return sp_err_set(err, SP_ENOTFOUND, "no such blob");
    sp_blob_local l = {.store = b};
    int rc = b->ops->local_open(b, job_id, name, max_bytes, &l, err);
    *size = l.size; /* also for SP_ETOOBIG */
    if (rc < 0)
        return rc;
    *fd = open(l.path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0)
        rc = errno == ENOENT ? sp_err_set(err, SP_ENOTFOUND, "no such blob '%s'", name)
                             : sp_err_set(err, SP_EIO, "open %s: %s", l.path, strerror(errno));
    b->ops->local_close(&l); /* a copy goes now; the open file stays readable */
    return rc;
}

int sp_blob_presign(sp_blobs *b, const char *job_id, const char *name, const char *endpoint,
                    int64_t ttl_s, const char *ctype, const char *disposition, char *out,
                    size_t cap, sp_err *err)
{
    if (!sp_blob_name_valid(name) || !sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad blob name");
    if (b->ops->presign == NULL)
        return sp_err_set(err, SP_EUNSUPPORTED, "the %s store has no presigned URLs",
                          b->ops->kind);
    return b->ops->presign(b, job_id, name, endpoint, ttl_s, ctype, disposition, out, cap, err);
}

/* ---- removing ------------------------------------------------------------------ */

int sp_blob_remove(sp_blobs *b, const char *job_id, const char *name, sp_err *err)
{
    if (!sp_blob_name_valid(name) || !sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad blob name");
    return b->ops->remove(b, job_id, name, err);
}

int sp_blobs_remove_job(sp_blobs *b, const char *job_id, sp_err *err)
{
    if (!sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    return b->ops->remove_job(b, job_id, err);
}

int sp_blobs_remove_staging(sp_blobs *b, const char *job_id, sp_err *err)
{
    if (!sp_id_valid(job_id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    return b->ops->remove_staging(b, job_id, err);
}

int sp_blobs_sweep_staging(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err)
{
    if (removed)
        *removed = 0;
    if (stale_ms < SP_BLOB_STALE_MIN_MS)
        stale_ms = SP_BLOB_STALE_MIN_MS;
    return b->ops->sweep(b, stale_ms, removed, err);
}

bool sp_blobs_writing(sp_blobs *b, const char *job_id, int64_t window_ms)
{
    return sp_id_valid(job_id) && b->ops->writing(b, job_id, window_ms);
}

int sp_blobs_gc(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *job_id, void *ud),
                void *ud, int *removed, sp_err *err)
{
    if (removed)
        *removed = 0;
    return b->ops->gc(b, min_age_ms, keep, ud, removed, err);
}

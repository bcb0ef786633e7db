/* blob_dir.c - the blob store in a directory (see blob.h): staging files renamed into
 * place on commit, refreshed and locked while they are written. */
#include "blob_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/ticker.h"
#include "spool/util.h"

/* <root>/jobs/<shard>/<id> into out. */
static int sp__job_dir(const sp_blobs *b, const char *id, char *out, size_t n, sp_err *err)
{
    if (!sp_id_valid(id))
        return sp_err_set(err, SP_EINVAL, "bad job id");
    int len = snprintf(out, n, "%s/jobs/%c%c/%s", b->root, id[SP_ID_LEN - 2], id[SP_ID_LEN - 1],
                       id);
    if (len < 0 || (size_t)len >= n)
        return sp_err_set(err, SP_ETOOBIG, "blob path too long");
    return 0;
}

static int sp__blob_path(sp_blobs *b, const char *job_id, const char *name, char *out,
                         size_t n, sp_err *err)
{
    if (!sp_blob_name_valid(name))
        return sp_err_set(err, SP_EINVAL, "bad blob name");
    char dir[PATH_MAX];
    int rc = sp__job_dir(b, job_id, dir, sizeof dir, err);
    if (rc < 0)
        return rc;
    int len = snprintf(out, n, "%s/%s", dir, name);
    if (len < 0 || (size_t)len >= n)
        return sp_err_set(err, SP_ETOOBIG, "blob path too long");
    return 0;
}

/* mkdir -p for path (which must be absolute or relative without trailing '/'). */
static int sp__mkdirs(const char *path, sp_err *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof tmp)
        return sp_err_set(err, SP_ETOOBIG, "path too long");
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char saved = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return sp_err_set(err, SP_EIO, "cannot create %s: %s", tmp, strerror(errno));
        tmp[i] = saved;
    }
    return 0;
}

static int sp__fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* ---- staging liveness: the keeper thread and the markers ------------------------ */

/* The keeper's tick. Under the lock, so no writer closes its fd (and has the number
 * reused) meanwhile. The time set is the file system's own (the server's, over NFS). */
static void sp__keeper_tick(void *ud)
{
    sp_blobs *b = ud;
    pthread_mutex_lock(&b->mu);
    for (sp_blob_writer *w = b->writers; w; w = w->next)
        futimens(w->fd, NULL);
    pthread_mutex_unlock(&b->mu);
}

/* List w among the writers the keeper refreshes, starting the keeper if needed. */
static int sp__writer_list(sp_blobs *b, sp_blob_writer *w, sp_err *err)
{
    pthread_mutex_lock(&b->mu);
    if (b->keeper == NULL &&
        (b->keeper = sp_ticker_start(SP_BLOB_HEARTBEAT_MS, sp__keeper_tick, b, err)) == NULL) {
        pthread_mutex_unlock(&b->mu);
        return SP_ENOMEM; /* the only way it fails; err says so */
    }
    w->prev = NULL;
    w->next = b->writers;
    if (b->writers)
        b->writers->prev = w;
    b->writers = w;
    w->listed = true;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* Take w off the list (before its fd is closed). */
static void sp__writer_unlist(sp_blob_writer *w)
{
    if (!w->listed)
        return;
    sp_blobs *b = w->store;
    pthread_mutex_lock(&b->mu);
    if (w->prev)
        w->prev->next = w->next;
    else
        b->writers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->listed = false;
    pthread_mutex_unlock(&b->mu);
}

/* ---- the local directory store ------------------------------------------------- */

static int sp__dir_create(sp_blobs *b, const char *id, const char *name, sp_blob_writer *w,
                          sp_err *err)
{
    char dir[PATH_MAX];
    int rc = sp__blob_path(b, id, name, w->final, sizeof w->final, err);
    if (rc < 0)
        return rc;
    /* The blob's folder (the job's directory for a plain name). */
    memcpy(dir, w->final, sizeof dir);
    *strrchr(dir, '/') = '\0';
    rc = sp__mkdirs(dir, err);
    if (rc < 0)
        return rc;
    unsigned long long r = (unsigned long long)sp_random_below(UINT64_MAX);
    int len = snprintf(w->staging, sizeof w->staging, "%s.tmp-%016llx", w->final, r);
    if (len < 0 || (size_t)len >= sizeof w->staging)
        return sp_err_set(err, SP_ETOOBIG, "blob path too long");
    char flat[SP_BLOB_NAME_MAX + 1];
    sp_blob_flat_name(name, flat);
    len = snprintf(w->marker, sizeof w->marker, "%s/staging/%s.%s.tmp-%016llx", b->root, id,
                   flat, r);
    if (len < 0 || (size_t)len >= sizeof w->marker)
        return sp_err_set(err, SP_ETOOBIG, "blob path too long");
    /* The marker first, so every staging file has one (a crash in between leaves a
     * marker without a file, which a sweep removes once it is stale). */
    int m = open(w->marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (m < 0)
        return sp_err_set(err, SP_EIO, "cannot create %s: %s", w->marker, strerror(errno));
    close(m);
    w->fd = open(w->staging, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = sp_err_set(err, SP_EIO, "cannot create %s: %s", w->staging, strerror(errno));
        unlink(w->marker);
        return rc;
    }
    /* Held until the fd closes (or the process dies): a sweep on this host never takes a
     * file whose writer lives. Where the file system cannot lock (ENOLCK), the
     * heartbeat alone tells. */
    (void)flock(w->fd, LOCK_EX | LOCK_NB);
    rc = sp__writer_list(b, w, err);
    if (rc < 0) {
        close(w->fd);
        w->fd = -1;
        unlink(w->staging);
        unlink(w->marker);
    }
    return rc;
}

static int sp__dir_commit(sp_blob_writer *w, bool durable, sp_err *err)
{
    sp__writer_unlist(w);
    int rc = 0;
    if (durable && fsync(w->fd) < 0)
        rc = sp_err_set(err, SP_EIO, "fsync %s: %s", w->staging, strerror(errno));
    if (close(w->fd) < 0 && rc == 0)
        rc = sp_err_set(err, SP_EIO, "close %s: %s", w->staging, strerror(errno));
    w->fd = -1;
    if (rc == 0 && rename(w->staging, w->final) < 0)
        rc = sp_err_set(err, SP_EIO, "rename to %s: %s", w->final, strerror(errno));
    if (rc == 0 && durable && sp__fsync_dir(w->final) < 0)
        rc = sp_err_set(err, SP_EIO, "fsync directory of %s: %s", w->final, strerror(errno));
    if (rc < 0)
        unlink(w->staging);
    unlink(w->marker);
    return rc;
}

static void sp__dir_abort(sp_blob_writer *w)
{
    sp__writer_unlist(w);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    unlink(w->staging);
    unlink(w->marker);
}

/* The file of a committed blob, open for reading, with its size. */
static int sp__dir_open(sp_blobs *b, const char *id, const char *name, int *fd, int64_t *size,
                        char path[PATH_MAX], sp_err *err)
{
    int rc = sp__blob_path(b, id, name, path, PATH_MAX, err);
    if (rc < 0)
        return rc == SP_EINVAL ? sp_err_set(err, SP_ENOTFOUND, "no such blob") : rc;
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return sp_err_set(err, SP_ENOTFOUND, "no such blob '%s'", name);
        return sp_err_set(err, SP_EIO, "open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return sp_err_set(err, SP_ENOTFOUND, "no such blob '%s'", name);
    }
    *fd = f;
    *size = st.st_size;
    return 0;
}

static int sp__dir_reader_open(sp_blobs *b, const char *id, const char *name,
                               sp_blob_reader *r, sp_err *err)
{
    return sp__dir_open(b, id, name, &r->fd, &r->size, r->key, err);
}

static int sp__dir_read(sp_blob_reader *r, int64_t off, void *buf, size_t n, size_t *got,
                        sp_err *err)
{
    ssize_t k;
    do
        k = pread(r->fd, buf, n, off);
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return sp_err_set(err, SP_EIO, "read %s: %s", r->key, strerror(errno));
    *got = (size_t)k;
    return 0;
}

static void sp__dir_reader_close(sp_blob_reader *r)
{
    if (r->fd >= 0)
        close(r->fd);
}

/* The blob's own file: libraries read it in place. */
static int sp__dir_local_open(sp_blobs *b, const char *id, const char *name, int64_t max_bytes,
                              sp_blob_local *l, sp_err *err)
{
    int fd;
    int rc = sp__dir_open(b, id, name, &fd, &l->size, l->path, err);
    if (rc < 0)
        return rc;
    close(fd);
    if (max_bytes > 0 && l->size > max_bytes)
        return sp_err_set(err, SP_ETOOBIG, "blob '%s' is %lld bytes, more than the limit of %lld",
                          name, (long long)l->size, (long long)max_bytes);
    return 0;
}

static void sp__dir_local_close(sp_blob_local *l)
{
    (void)l;
}

static int sp__dir_remove(sp_blobs *b, const char *id, const char *name, sp_err *err)
{
    char path[PATH_MAX];
    int rc = sp__blob_path(b, id, name, path, sizeof path, err);
    if (rc < 0)
        return rc;
    if (unlink(path) < 0 && errno != ENOENT)
        return sp_err_set(err, SP_EIO, "remove %s: %s", path, strerror(errno));
    return 0;
}

/* Unlink the files in job id's directory: every one, or only staging files. The path
 * of the directory goes to dir. 0 also when the directory does not exist. */
/* Remove every staging marker of job id ("<id>.<name>.tmp-<hex>" in <root>/staging):
 * those of the staging files just removed, and those whose file is already gone (a
 * writer killed between creating its marker and its file, or between committing, the
 * rename, and removing its marker). Callers hold the job's lease or remove the job, so
 * no attempt of it writes now. */
static void sp__unlink_markers(sp_blobs *b, const char *id)
{
    char staging[PATH_MAX];
    snprintf(staging, sizeof staging, "%s/staging", b->root);
    int sd = open(staging, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = sd >= 0 ? fdopendir(sd) : NULL;
    if (d == NULL) {
        if (sd >= 0)
            close(sd);
        return;
    }
    size_t idlen = strlen(id);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, id, idlen) == 0 && e->d_name[idlen] == '.' &&
            strstr(e->d_name + idlen, ".tmp-") != NULL)
            unlinkat(sd, e->d_name, 0);
    }
    closedir(d);
}

/* Unlink the staging files under directory fd (and its folders). */
static int sp__unlink_staging(int fd, const char *dir, sp_err *err)
{
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return sp_err_set(err, SP_EIO, "open %s: %s", dir, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (strstr(e->d_name, ".tmp-") != NULL) {
            if (unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT)
                rc = sp_err_set(err, SP_EIO, "remove %s/%s: %s", dir, e->d_name,
                                strerror(errno));
            continue;
        }
        int sub = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0 && sp__unlink_staging(sub, dir, err) < 0)
            rc = err ? err->code : SP_EIO;
    }
    closedir(d);
    return rc;
}

/* Remove job id's directory (or, with staging_only, the staging files in it and its
 * folders) and its markers. The path of the directory goes to dir. 0 also when the
 * directory does not exist. */
static int sp__dir_unlink(sp_blobs *b, const char *id, bool staging_only, char dir[PATH_MAX],
                          sp_err *err)
{
    int rc = sp__job_dir(b, id, dir, PATH_MAX, err);
    if (rc < 0)
        return rc;
    if (staging_only) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 && errno != ENOENT)
            rc = sp_err_set(err, SP_EIO, "open %s: %s", dir, strerror(errno));
        else if (fd >= 0)
            rc = sp__unlink_staging(fd, dir, err);
    } else if (sp_blob_rm_tree(AT_FDCWD, dir) < 0) {
        rc = sp_err_set(err, SP_EIO, "remove %s: %s", dir, strerror(errno));
    }
    sp__unlink_markers(b, id);
    return rc;
}

static int sp__dir_remove_job(sp_blobs *b, const char *id, sp_err *err)
{
    char dir[PATH_MAX];
    return sp__dir_unlink(b, id, false, dir, err);
}

static int sp__dir_remove_staging(sp_blobs *b, const char *id, sp_err *err)
{
    char dir[PATH_MAX];
    return sp__dir_unlink(b, id, true, dir, err);
}


/* ---- opening, checking, writing --------------------------------------------- */

int sp_blob_dir_init(sp_blobs *b, const char *dir, sp_err *err)
{
    if (dir == NULL || dir[0] == '\0' || strlen(dir) >= sizeof b->root - 8)
        return sp_err_set(err, SP_EINVAL, "bad data directory");
    b->ops = &sp_blob_dir_ops;
    snprintf(b->root, sizeof b->root, "%s", dir);
    size_t n = strlen(b->root);
    while (n > 1 && b->root[n - 1] == '/')
        b->root[--n] = '\0';
    snprintf(b->describe, sizeof b->describe, "directory %s", b->root);
    char jobs[PATH_MAX], staging[PATH_MAX];
    snprintf(jobs, sizeof jobs, "%s/jobs", b->root);
    snprintf(staging, sizeof staging, "%s/staging", b->root);
    if (sp__mkdirs(jobs, err) < 0 || sp__mkdirs(staging, err) < 0)
        return err ? err->code : SP_EIO;
    return 0;
}

static void sp__dir_close(sp_blobs *b)
{
    sp_ticker_stop(b->keeper);
    b->keeper = NULL;
}

static int sp__dir_check(sp_blobs *b, sp_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.probe-%d-%llx", b->root, (int)getpid(),
             (unsigned long long)sp_random_below(UINT64_MAX));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "data directory %s is not writable: %s", b->root,
                          strerror(errno));
    int rc = 0;
    if (write(fd, "ok", 2) != 2)
        rc = sp_err_set(err, SP_EIO, "data directory %s: write failed: %s", b->root,
                        strerror(errno));
    close(fd);
    unlink(path);
    return rc;
}

static int sp__dir_write(sp_blob_writer *w, const void *data, size_t n, sp_err *err)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return sp_err_set(err, SP_EIO, "write %s: %s", w->staging, strerror(errno));
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int64_t sp__mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static int64_t sp__age_ms(const struct stat *st, int64_t now)
{
    return now - sp__mtime_ms(st);
}

/* The file system's clock (the server's, over NFS), which stamps the staging files:
 * the modification time of a file created in dir now. The local clock if that fails. */
static int64_t sp__fs_now_ms(const char *dir)
{
    char path[PATH_MAX];
    int len = snprintf(path, sizeof path, "%s/.probe-%d-%llx", dir, (int)getpid(),
                       (unsigned long long)sp_random_below(UINT64_MAX));
    int fd = len > 0 && (size_t)len < sizeof path
                 ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644)
                 : -1;
    if (fd < 0)
        return sp_now_ms();
    struct stat st;
    int64_t now = fstat(fd, &st) == 0 ? sp__mtime_ms(&st) : sp_now_ms();
    close(fd);
    unlink(path);
    return now;
}

/* Judge the staging file one marker names; remove both when its writer is dead.
 * Returns 1 when a staging file was removed. */
static int sp__sweep_one(sp_blobs *b, int mdir, const char *marker, int64_t now,
                         int64_t stale_ms)
{
    /* "<id>.<name>.tmp-<hex>" */
    char id[SP_ID_LEN + 1];
    if (strlen(marker) <= SP_ID_LEN + 1 || marker[SP_ID_LEN] != '.' ||
        strstr(marker + SP_ID_LEN + 1, ".tmp-") == NULL)
        return 0;
    memcpy(id, marker, SP_ID_LEN);
    id[SP_ID_LEN] = '\0';
    char dir[PATH_MAX], path[PATH_MAX + 256];
    struct stat ms;
    if (sp__job_dir(b, id, dir, sizeof dir, NULL) < 0 ||
        fstatat(mdir, marker, &ms, AT_SYMLINK_NOFOLLOW) < 0)
        return 0;
    int len = snprintf(path, sizeof path, "%s/%s", dir, marker + SP_ID_LEN + 1);
    if (len < 0 || (size_t)len >= sizeof path)
        return 0;
    for (char *c = path + strlen(dir); *c; c++) /* '+' stands for '/' (sp_blob_flat_name) */
        if (*c == '+')
            *c = '/';
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        /* Committed, aborted or removed already, and the marker outlived it (a crash
         * between the two): the marker goes once it is old enough not to be one whose
         * writer is about to create its file. */
        if (errno == ENOENT && now - sp__mtime_ms(&ms) >= stale_ms)
            unlinkat(mdir, marker, 0);
        return 0;
    }
    int removed = 0;
    struct stat st;
    /* Dead: not refreshed for stale_ms, and no process holds its lock (a writer on this
     * host, or on another where locks reach the server, holds it until it dies). */
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && now - sp__mtime_ms(&st) >= stale_ms &&
        (flock(fd, LOCK_EX | LOCK_NB) == 0 || errno != EWOULDBLOCK)) {
        if (unlink(path) == 0)
            removed = 1;
        unlinkat(mdir, marker, 0);
    }
    close(fd);
    return removed;
}

static int sp__dir_sweep(sp_blobs *b, int64_t stale_ms, int *removed, sp_err *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/staging", b->root);
    DIR *d = opendir(dir);
    if (d == NULL)
        return sp_err_set(err, SP_EIO, "open %s: %s", dir, strerror(errno));
    int64_t now = sp__fs_now_ms(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int k = sp__sweep_one(b, dirfd(d), e->d_name, now, stale_ms);
        if (removed)
            *removed += k;
    }
    closedir(d);
    return 0;
}

/* Remove staging files older than min_age_ms in dir and its folders. */
static void sp__gc_staging(const char *dir, int64_t min_age_ms, int64_t now)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        struct stat st;
        int len = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (len < 0 || (size_t)len >= sizeof path || lstat(path, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode))
            sp__gc_staging(path, min_age_ms, now);
        else if (strstr(e->d_name, ".tmp-") != NULL && sp__age_ms(&st, now) >= min_age_ms)
            unlink(path);
    }
    closedir(d);
}

static int sp__dir_gc(sp_blobs *b, int64_t min_age_ms, int (*keep)(const char *job_id, void *ud),
                      void *ud, int *removed, sp_err *err)
{
    char jobs[PATH_MAX];
    snprintf(jobs, sizeof jobs, "%s/jobs", b->root);
    DIR *top = opendir(jobs);
    if (top == NULL)
        return sp_err_set(err, SP_EIO, "open %s: %s", jobs, strerror(errno));
    int64_t now = sp_now_ms();
    int rc = 0;
    struct dirent *s;
    while (rc == 0 && (s = readdir(top)) != NULL) {
        if (s->d_name[0] == '.' || strlen(s->d_name) != 2)
            continue;
        char shard[PATH_MAX + 4];
        snprintf(shard, sizeof shard, "%s/%.2s", jobs, s->d_name);
        DIR *d = opendir(shard);
        if (d == NULL)
            continue;
        struct dirent *e;
        while (rc == 0 && (e = readdir(d)) != NULL) {
            if (!sp_id_valid(e->d_name))
                continue;
            char dir[PATH_MAX + 64];
            struct stat st;
            int len = snprintf(dir, sizeof dir, "%s/%.*s", shard, SP_ID_LEN, e->d_name);
            if (len < 0 || (size_t)len >= sizeof dir || stat(dir, &st) < 0 ||
                sp__age_ms(&st, now) < min_age_ms)
                continue;
            int k = keep(e->d_name, ud);
            if (k < 0) {
                rc = sp_err_set(err, k, "blob gc stopped");
                break;
            }
            if (k == 0) {
                if (sp__dir_remove_job(b, e->d_name, err) == 0 && removed)
                    (*removed)++;
            } else {
                sp__gc_staging(dir, min_age_ms, now);
            }
        }
        closedir(d);
    }
    closedir(top);
    return rc;
}

/* True when job id's directory holds a staging file written to within window_ms: an
 * upload in progress whose job does not exist yet (uploads write continuously; a
 * stalled one is timed out much sooner). */
static bool sp__dir_writing(sp_blobs *b, const char *id, int64_t window_ms)
{
    char dir[PATH_MAX];
    if (sp__job_dir(b, id, dir, sizeof dir, NULL) < 0)
        return false;
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    bool busy = false;
    int64_t now = sp_now_ms();
    struct dirent *e;
    while (!busy && (e = readdir(d)) != NULL) {
        struct stat st;
        if (strstr(e->d_name, ".tmp-") != NULL && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            busy = now - sp__mtime_ms(&st) < window_ms;
    }
    closedir(d);
    return busy;
}

const sp_blob_ops sp_blob_dir_ops = {
    .kind = "directory",
    .close = sp__dir_close,
    .check = sp__dir_check,
    .create = sp__dir_create,
    .write = sp__dir_write,
    .commit = sp__dir_commit,
    .abort = sp__dir_abort,
    .reader_open = sp__dir_reader_open,
    .read = sp__dir_read,
    .reader_close = sp__dir_reader_close,
    .local_open = sp__dir_local_open,
    .local_close = sp__dir_local_close,
    .remove = sp__dir_remove,
    .remove_job = sp__dir_remove_job,
    .remove_staging = sp__dir_remove_staging,
    .sweep = sp__dir_sweep,
    .writing = sp__dir_writing,
    .gc = sp__dir_gc,
};

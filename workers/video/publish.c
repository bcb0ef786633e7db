/* publish.c - a work directory published as a job's blobs (see publish.h). */
#include "publish.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "spool/alloc.h"

/* The files found, as paths under the directory. */
typedef struct sp__files {
    char **path;
    size_t n, cap;
} sp__files;

static void sp__files_free(sp__files *f)
{
    for (size_t i = 0; i < f->n; i++)
        sp_free(f->path[i]);
    sp_free(f->path);
    f->path = NULL;
    f->n = f->cap = 0;
}

/* Every regular file under root/rel (rel "" for root itself), depth-first. */
static int sp__walk(const char *root, const char *rel, sp__files *f, int depth, sp_err *err)
{
    if (depth > SP_BLOB_DEPTH_MAX)
        return sp_err_set(err, SP_EIO, "work directory %s nests too deep", root);
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    if (n < 0 || (size_t)n >= sizeof dir)
        return sp_err_set(err, SP_EIO, "work directory path too long");
    DIR *d = opendir(dir);
    if (d == NULL)
        return sp_err_set(err, SP_EIO, "cannot read %s", dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char sub[PATH_MAX], full[PATH_MAX * 2];
        n = snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (n < 0 || (size_t)n >= sizeof sub) {
            rc = sp_err_set(err, SP_EIO, "work directory path too long");
            break;
        }
        snprintf(full, sizeof full, "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = sp__walk(root, sub, f, depth + 1, err);
        } else if (S_ISREG(st.st_mode)) {
            if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 64;
                char **p = sp_realloc(f->path, cap * sizeof *p);
                if (p == NULL) {
                    rc = sp_err_set(err, SP_ENOMEM, "out of memory");
                    break;
                }
                f->path = p;
                f->cap = cap;
            }
            if ((f->path[f->n] = sp_strdup(sub)) == NULL)
                rc = sp_err_set(err, SP_ENOMEM, "out of memory");
            else
                f->n++;
        }
    }
    closedir(d);
    return rc;
}

/* 0: media, 1: playlists, 2: the entry point. */
static int sp__rank(const char *path, const char *last)
{
    if (strcmp(path, last) == 0)
        return 2;
    size_t n = strlen(path);
    return n > 5 && strcmp(path + n - 5, ".m3u8") == 0 ? 1 : 0;
}

/* Paths carry their rank in their first byte while sorted ('0' + rank). */
static int sp__order(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort f's paths by rank, then name. */
static int sp__sort(sp__files *f, const char *last, sp_err *err)
{
    for (size_t i = 0; i < f->n; i++) {
        size_t n = strlen(f->path[i]);
        char *r = sp_malloc(n + 2);
        if (r == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        r[0] = (char)('0' + sp__rank(f->path[i], last));
        memcpy(r + 1, f->path[i], n + 1);
        sp_free(f->path[i]);
        f->path[i] = r;
    }
    qsort(f->path, f->n, sizeof *f->path, sp__order);
    for (size_t i = 0; i < f->n; i++)
        memmove(f->path[i], f->path[i] + 1, strlen(f->path[i]));
    return 0;
}

int sp_video_publish_dir(sp_blobs *b, const char *job_id, const char *dir, const char *prefix,
                         const char *last, const sp_flag *stop, int *files, int64_t *bytes,
                         sp_err *err)
{
    sp__files f = {0};
    int rc = sp__walk(dir, "", &f, 0, err);
    if (rc == 0)
        rc = sp__sort(&f, last, err);
    int64_t total = 0;
    size_t done = 0;
    char name[SP_BLOB_NAME_MAX + 2];
    for (; rc == 0 && done < f.n; done++) {
        if (stop && *stop) {
            rc = sp_err_set(err, SP_ECANCELLED, "stopped");
            break;
        }
        char path[PATH_MAX * 2];
        int n = snprintf(name, sizeof name, "%s/%s", prefix, f.path[done]);
        snprintf(path, sizeof path, "%s/%s", dir, f.path[done]);
        if (n < 0 || (size_t)n >= sizeof name || !sp_blob_name_valid(name)) {
            rc = sp_err_set(err, SP_EIO, "output name %s/%s is not a valid blob name", prefix,
                            f.path[done]);
            break;
        }
        int64_t size = 0;
        rc = sp_blob_put_file(b, job_id, name, path, true, &size, err);
        total += size;
    }
    if (rc < 0 && done < f.n)
        done++; /* the file that failed may have been committed before its error */
    if (rc < 0) { /* none of the set, rather than part of it */
        for (size_t i = 0; i < done && i < f.n; i++) {
            if (snprintf(name, sizeof name, "%s/%s", prefix, f.path[i]) < (int)sizeof name)
                sp_blob_remove(b, job_id, name, NULL);
        }
    }
    if (rc == 0 && files)
        *files = (int)f.n;
    if (rc == 0 && bytes)
        *bytes = total;
    sp__files_free(&f);
    return rc;
}

void sp_video_unpublish_dir(sp_blobs *b, const char *job_id, const char *dir,
                            const char *prefix)
{
    sp__files f = {0};
    sp_err err;
    if (sp__walk(dir, "", &f, 0, &err) == 0) {
        char name[SP_BLOB_NAME_MAX + 2];
        for (size_t i = 0; i < f.n; i++)
            if (snprintf(name, sizeof name, "%s/%s", prefix, f.path[i]) < (int)sizeof name)
                sp_blob_remove(b, job_id, name, NULL);
    }
    sp__files_free(&f);
}

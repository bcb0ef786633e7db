/* blobtool.c - drives the blob store (spool/blob.h) from the command line, for the
 * integration tests that check it against a real S3 server (test_blob_s3.py) and a
 * directory. STORE is a directory or a URL (file:///..., s3://BUCKET/PREFIX, with the
 * S3 settings and credentials from the environment, as the binaries read them).
 *
 *   blobtool check STORE
 *   blobtool put STORE ID NAME FILE [CHUNK]     sp_blob_write in CHUNK-byte writes
 *   blobtool putfile STORE ID NAME FILE         copied to sp_blob_staging_path, committed
 *   blobtool putlimit STORE ID NAME FILE MAX    like put, with max_bytes MAX
 *   blobtool abort STORE ID NAME BYTES          write BYTES, then abort
 *   blobtool die STORE ID NAME BYTES            write BYTES, then exit without either
 *   blobtool read STORE ID NAME OFF LEN         bytes [OFF, OFF+LEN) to stdout (reader)
 *   blobtool local STORE ID NAME [MAX]          copy the local file to stdout
 *   blobtool rm STORE ID NAME | rmjob STORE ID | staging STORE ID
 *   blobtool sweep STORE STALE_MS               prints the staging files removed
 *   blobtool gc STORE MIN_AGE_MS [KEEP_ID...]   prints the jobs removed
 *
 * Prints "error <code_name>: <message>" and exits 1 on failure. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/blob.h"

static int fail(const sp_err *err)
{
    printf("error %s: %s\n", sp_code_name(err->code), err->msg);
    return 1;
}

static int write_file(sp_blob_writer *w, const char *file, size_t chunk, sp_err *err)
{
    int fd = open(file, O_RDONLY);
    if (fd < 0)
        return sp_err_set(err, SP_EIO, "open %s: %s", file, strerror(errno));
    char *buf = sp_malloc(chunk);
    ssize_t n = 0;
    int rc = buf ? 0 : sp_err_set(err, SP_ENOMEM, "out of memory");
    while (rc == 0 && (n = read(fd, buf, chunk)) > 0)
        rc = sp_blob_write(w, buf, (size_t)n, err);
    if (rc == 0 && n < 0)
        rc = sp_err_set(err, SP_EIO, "read %s: %s", file, strerror(errno));
    sp_free(buf);
    close(fd);
    return rc;
}

static int copy_into(const char *from, const char *to, sp_err *err)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_TRUNC);
    char buf[65536];
    ssize_t n = 0;
    int rc = in < 0 || out < 0 ? sp_err_set(err, SP_EIO, "open: %s", strerror(errno)) : 0;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n)
            rc = sp_err_set(err, SP_EIO, "write %s: %s", to, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

static int fill(sp_blob_writer *w, long long bytes, sp_err *err)
{
    static char block[65536];
    int rc = 0;
    for (long long done = 0; rc == 0 && done < bytes;) {
        size_t k = bytes - done < (long long)sizeof block ? (size_t)(bytes - done) : sizeof block;
        for (size_t i = 0; i < k; i++)
            block[i] = (char)((done + (long long)i) % 251);
        rc = sp_blob_write(w, block, k, err);
        done += (long long)k;
    }
    return rc;
}

static int keep_listed(const char *id, void *ud)
{
    for (char **k = ud; *k; k++)
        if (strcmp(*k, id) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: see tests/support/blobtool.c\n");
        return 2;
    }
    const char *cmd = argv[1];
    sp_err err = {0};
    sp_blobs *b = sp_blobs_open_at(argv[2], &err);
    if (b == NULL)
        return fail(&err);
    int rc = 0;
    sp_blob_writer *w = NULL;
    char **a = argv + 3;
    int n = argc - 3;
    if (strcmp(cmd, "check") == 0) {
        rc = sp_blobs_check(b, &err);
    } else if ((strcmp(cmd, "put") == 0 || strcmp(cmd, "putlimit") == 0) && n >= 3) {
        bool limit = strcmp(cmd, "putlimit") == 0;
        size_t chunk = !limit && n >= 4 ? (size_t)atoll(a[3]) : 65536;
        int64_t size = 0;
        rc = sp_blob_create(b, a[0], a[1], limit && n >= 4 ? atoll(a[3]) : 0, &w, &err);
        if (rc == 0 && (rc = write_file(w, a[2], chunk, &err)) < 0)
            sp_blob_abort(w);
        else if (rc == 0 && (rc = sp_blob_commit(w, true, &size, &err)) == 0)
            printf("%lld\n", (long long)size);
    } else if (strcmp(cmd, "putfile") == 0 && n >= 3) {
        int64_t size = 0;
        rc = sp_blob_create_file(b, a[0], a[1], &w, &err);
        if (rc == 0 && (rc = copy_into(a[2], sp_blob_staging_path(w), &err)) < 0)
            sp_blob_abort(w);
        else if (rc == 0 && (rc = sp_blob_commit(w, true, &size, &err)) == 0)
            printf("%lld\n", (long long)size);
    } else if ((strcmp(cmd, "abort") == 0 || strcmp(cmd, "die") == 0) && n >= 3) {
        rc = sp_blob_create(b, a[0], a[1], 0, &w, &err);
        if (rc == 0)
            rc = fill(w, atoll(a[2]), &err);
        if (rc == 0 && strcmp(cmd, "die") == 0) {
            printf("dying\n");
            fflush(stdout);
            _exit(0);
        }
        sp_blob_abort(w);
    } else if (strcmp(cmd, "read") == 0 && n >= 4) {
        sp_blob_reader *r;
        int64_t size;
        rc = sp_blob_reader_open(b, a[0], a[1], &r, &size, &err);
        long long off = atoll(a[2]), len = atoll(a[3]);
        char buf[65536];
        while (rc == 0 && len > 0) {
            size_t got = 0;
            rc = sp_blob_read(r, off, buf, len < (long long)sizeof buf ? (size_t)len : sizeof buf,
                              &got, &err);
            if (rc < 0 || got == 0)
                break;
            fwrite(buf, 1, got, stdout);
            off += (long long)got;
            len -= (long long)got;
        }
        if (rc == 0)
            sp_blob_reader_close(r);
    } else if (strcmp(cmd, "local") == 0 && n >= 2) {
        sp_blob_local *l;
        rc = sp_blob_local_open(b, a[0], a[1], n >= 3 ? atoll(a[2]) : 0, &l, &err);
        if (rc == 0) {
            fprintf(stderr, "%s\n", sp_blob_local_path(l));
            FILE *f = fopen(sp_blob_local_path(l), "rb");
            char buf[65536];
            size_t k;
            while (f && (k = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, k, stdout);
            if (f)
                fclose(f);
            sp_blob_local_close(l);
        }
    } else if (strcmp(cmd, "rm") == 0 && n >= 2) {
        rc = sp_blob_remove(b, a[0], a[1], &err);
    } else if (strcmp(cmd, "rmjob") == 0 && n >= 1) {
        rc = sp_blobs_remove_job(b, a[0], &err);
    } else if (strcmp(cmd, "staging") == 0 && n >= 1) {
        rc = sp_blobs_remove_staging(b, a[0], &err);
    } else if (strcmp(cmd, "sweep") == 0 && n >= 1) {
        int removed = 0;
        if ((rc = sp_blobs_sweep_staging(b, atoll(a[0]), &removed, &err)) == 0)
            printf("%d\n", removed);
    } else if (strcmp(cmd, "gc") == 0 && n >= 1) {
        int removed = 0;
        if ((rc = sp_blobs_gc(b, atoll(a[0]), keep_listed, a + 1, &removed, &err)) == 0)
            printf("%d\n", removed);
    } else {
        fprintf(stderr, "unknown command or missing arguments: %s\n", cmd);
        sp_blobs_close(b);
        return 2;
    }
    sp_blobs_close(b);
    return rc < 0 ? fail(&err) : 0;
}

/* pdfq.c - test helper for spool-pdf's integration tests, until spool-api exists:
 * put datasets in the blob store and enqueue, read and cancel pdf.export jobs through
 * the common library (the same key names and Lua scripts as the API).
 *
 *   pdfq newid
 *   pdfq put STORE ID NAME FILE            copy FILE into the blob store (a directory
 *                                          or a URL, as SPOOL_BLOB_URL)
 *   pdfq path DIR ID NAME                  print a blob's path (directory store; it
 *                                          may not exist)
 *   pdfq enqueue REDIS_URL ID PARAMS_JSON INPUT_JSON [MAX_ATTEMPTS]
 *   pdfq get REDIS_URL ID                  print the record as one JSON object
 *   pdfq cancel REDIS_URL ID
 *
 * Keys use SPOOL_KEY_PREFIX (default "spool:"). Retries use PDFQ_RETRY_BASE_MS (100). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/job.h"
#include "spool/queue.h"
#include "spool/util.h"

static int die(const char *what, const sp_err *err)
{
    fprintf(stderr, "pdfq: %s: %s\n", what, err ? err->msg : strerror(errno));
    return 1;
}

static const char *prefix(void)
{
    const char *p = getenv("SPOOL_KEY_PREFIX");
    return p && *p ? p : "spool:";
}

static int cmd_put(char **a)
{
    sp_err err = {0};
    sp_blobs *b = sp_blobs_open_at(a[0], &err);
    if (b == NULL)
        return die("blob store", &err);
    int fd = open(a[3], O_RDONLY);
    if (fd < 0)
        return die(a[3], NULL);
    sp_blob_writer *w;
    if (sp_blob_create(b, a[1], a[2], 0, &w, &err) < 0)
        return die("create", &err);
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        if (sp_blob_write(w, buf, (size_t)n, &err) < 0)
            return die("write", &err);
    close(fd);
    if (n < 0 || sp_blob_commit(w, false, NULL, &err) < 0)
        return die("commit", &err);
    sp_blobs_close(b);
    return 0;
}

/* The blob's path in a directory store, whether it exists or not (the layout blob.h
 * documents), for tests that check a file is or is not there. */
static int cmd_path(char **a)
{
    size_t n = strlen(a[1]);
    if (strstr(a[0], "://") || n < 2 || strchr(a[1], '/') || strchr(a[2], '/'))
        return die("path: a directory, a job id and a blob name", NULL);
    printf("%s/jobs/%s/%s/%s\n", a[0], a[1] + n - 2, a[1], a[2]);
    return 0;
}

static int cmd_enqueue(char **a, int n)
{
    sp_err err = {0};
    sp_queue *q = sp_queue_open(a[0], prefix(), &err);
    if (q == NULL)
        return die("redis", &err);
    const char *base = getenv("PDFQ_RETRY_BASE_MS");
    sp_enqueue e = {
        .id = a[1],
        .type = "pdf.export",
        .queue = "pdf",
        .max_attempts = n > 4 ? atoll(a[4]) : 3,
        .retry_base_ms = base ? atoll(base) : 100,
        .retry_cap_ms = 1000,
        .params_json = a[2],
        .input_json = a[3],
    };
    char existing[SP_ID_LEN + 1];
    int rc = sp_queue_enqueue(q, &e, existing, &err);
    sp_queue_close(q);
    if (rc < 0)
        return die("enqueue", &err);
    printf("%s\n", a[1]);
    return 0;
}

static void raw_or_null(sp_buf *b, const char *key, const char *json)
{
    sp_buf_addf(b, ",\"%s\":%s", key, json && *json ? json : "null");
}

static int cmd_get(char **a)
{
    sp_err err = {0};
    sp_queue *q = sp_queue_open(a[0], prefix(), &err);
    if (q == NULL)
        return die("redis", &err);
    sp_job j;
    sp_job_init(&j);
    int rc = sp_queue_get(q, a[1], &j, &err);
    sp_queue_close(q);
    if (rc < 0)
        return die("get", &err);
    sp_buf b;
    sp_buf_init(&b, 1 << 24);
    sp_buf_addf(&b, "{\"id\":\"%s\",\"state\":\"%s\",\"attempts\":%lld,\"progress\":%d,"
                "\"started_at\":%lld,\"finished_at\":%lld,\"worker\":\"", j.id,
                sp_state_name(j.state), (long long)j.attempts, j.progress,
                (long long)j.started_at, (long long)j.finished_at);
    sp_buf_add_json_escaped(&b, j.worker, strlen(j.worker));
    sp_buf_adds(&b, "\"");
    if (j.has_error) {
        sp_buf_addf(&b, ",\"error\":{\"code\":\"%s\",\"retryable\":%s,\"message\":\"",
                    j.error_code, j.error_retryable ? "true" : "false");
        const char *m = j.error_message ? j.error_message : "";
        sp_buf_add_json_escaped(&b, m, strlen(m));
        sp_buf_adds(&b, "\"}");
    } else {
        sp_buf_adds(&b, ",\"error\":null");
    }
    raw_or_null(&b, "outputs", j.outputs);
    raw_or_null(&b, "metadata", j.metadata);
    sp_buf_adds(&b, "}");
    printf("%s\n", sp_buf_cstr(&b));
    sp_buf_free(&b);
    sp_job_clear(&j);
    return 0;
}

static int cmd_cancel(char **a)
{
    sp_err err = {0};
    sp_queue *q = sp_queue_open(a[0], prefix(), &err);
    if (q == NULL)
        return die("redis", &err);
    int rc = sp_queue_cancel(q, a[1], 7LL * 86400 * 1000, &err);
    sp_queue_close(q);
    if (rc < 0)
        return die("cancel", &err);
    printf("%d\n", rc);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    int n = argc - 2;
    char **a = argv + 2;
    if (!strcmp(cmd, "newid") && n == 0) {
        char id[SP_ID_LEN + 1];
        if (sp_id_new(id) < 0)
            return 1;
        printf("%s\n", id);
        return 0;
    }
    if (!strcmp(cmd, "put") && n == 4)
        return cmd_put(a);
    if (!strcmp(cmd, "path") && n == 3)
        return cmd_path(a);
    if (!strcmp(cmd, "enqueue") && (n == 4 || n == 5))
        return cmd_enqueue(a, n);
    if (!strcmp(cmd, "get") && n == 2)
        return cmd_get(a);
    if (!strcmp(cmd, "cancel") && n == 2)
        return cmd_cancel(a);
    fprintf(stderr, "usage: pdfq newid | put DIR ID NAME FILE | path DIR ID NAME | "
                    "enqueue URL ID PARAMS INPUT [MAX_ATTEMPTS] | get URL ID | cancel URL ID\n");
    return 2;
}

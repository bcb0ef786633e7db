/* test_worker.c - a worker the API's integration tests drive line by line on stdin, so
 * a test can put a job in any state through the real queue (sp_consumer_*) and watch
 * the API report it: take, progress, outputs, succeed, fail, retry. Not installed.
 *
 *   api-test-worker REDIS_URL PREFIX STORE QUEUE[,QUEUE...]   (STORE: a directory or a
 *                                                              URL, as SPOOL_BLOB_URL)
 *   take [block_ms]             -> "taken <id>" | "none"
 *   progress <0-100>            -> "ok" | "error <msg>"
 *   output <name> <type> <n>    -> "ok": a committed blob of n bytes (byte i = i % 251)
 *   succeed | fail <code> <msg> | retry <code> <msg>   -> "ok <new state>"
 *   maintain                    -> "ok <promoted> <expired>": one maintenance pass over
 *                                  its queues (what a real worker does every 250 ms)
 *   quit */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/queue.h"

/* Print "<word>[ <text>]" and a newline. */
static void reply(const char *word, const char *text)
{
    printf("%s%s%s\n", word, text && text[0] ? " " : "", text ? text : "");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s REDIS_URL PREFIX STORE QUEUES\n", argv[0]);
        return 2;
    }
    sp_err err;
    const char *queues[16];
    size_t nq = 0;
    char *qspec = argv[4];
    for (char *save = NULL, *q = strtok_r(qspec, ",", &save); q && nq < 16;
         q = strtok_r(NULL, ",", &save))
        queues[nq++] = q;
    char wid[128];
    sp_worker_id_new(wid, "test");
    sp_consumer_opts o = {argv[1], argv[2], wid, queues, nq, 60000, 0};
    sp_consumer *c = sp_consumer_new(&o, &err);
    sp_queue *q = sp_queue_open(argv[1], argv[2], &err);
    sp_blobs *blobs = sp_blobs_open_at(argv[3], &err);
    if (c == NULL || q == NULL || blobs == NULL) {
        fprintf(stderr, "test worker: %s\n", err.msg);
        return 1;
    }
    sp_job job;
    sp_job_init(&job);
    bool have = false;
    sp_buf outputs;
    sp_buf_init(&outputs, 1 << 20);
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL;
        char *cmd = strtok_r(line, " ", &save);
        if (cmd == NULL)
            continue;
        if (strcmp(cmd, "quit") == 0)
            break;
        if (strcmp(cmd, "maintain") == 0) {
            sp_maint_report m;
            char counts[64];
            if (sp_queue_maintain(q, queues, nq, 60000, &m, &err) == 0) {
                snprintf(counts, sizeof counts, "%d %d", m.promoted, m.expired);
                reply("ok", counts);
            } else {
                reply("error", err.msg);
            }
        } else if (strcmp(cmd, "take") == 0) {
            char *ms = strtok_r(NULL, " ", &save);
            sp_job_clear(&job);
            int rc = sp_consumer_next(c, ms ? atoll(ms) : 5000, &job, &err);
            have = rc == 0;
            sp_buf_reset(&outputs);
            if (rc == 0)
                reply("taken", job.id);
            else
                reply("none", err.msg);
        } else if (!have) {
            reply("error", "no job taken");
        } else if (strcmp(cmd, "progress") == 0) {
            char *p = strtok_r(NULL, " ", &save);
            bool cancel = false;
            int rc = sp_queue_renew(q, job.id, job.token, 60000, p ? atoi(p) : 0, &cancel, &err);
            reply(rc == 0 ? "ok" : "error", rc == 0 ? (cancel ? "cancel" : "") : err.msg);
        } else if (strcmp(cmd, "output") == 0) {
            char *name = strtok_r(NULL, " ", &save);
            char *type = strtok_r(NULL, " ", &save);
            char *n = strtok_r(NULL, " ", &save);
            sp_blob_writer *w;
            long long bytes = n ? atoll(n) : 0;
            int rc = name && type ? sp_blob_create(blobs, job.id, name, 0, &w, &err) : -1;
            static char block[251 * 64];
            for (size_t i = 0; i < sizeof block; i++)
                block[i] = (char)(i % 251);
            for (long long done = 0; rc == 0 && done < bytes;) {
                size_t k = (size_t)(bytes - done < (long long)sizeof block ? bytes - done
                                                                            : (long long)sizeof block);
                rc = sp_blob_write(w, block, k, &err);
                done += (long long)k;
            }
            if (rc == 0)
                rc = sp_blob_commit(w, false, NULL, &err);
            if (rc == 0)
                rc = sp_buf_addf(&outputs, "%s{\"name\":\"%s\",\"content_type\":\"%s\",\"bytes\":%lld}",
                                 outputs.len ? "," : "", name, type, bytes);
            reply(rc == 0 ? "ok" : "error", rc == 0 ? "" : err.msg);
        } else if (!strcmp(cmd, "succeed") || !strcmp(cmd, "fail") || !strcmp(cmd, "retry")) {
            char *code = strtok_r(NULL, " ", &save);
            char *msg = save && *save ? save : "failed on purpose";
            sp_buf outs;
            sp_buf_init(&outs, 1 << 20);
            sp_buf_addf(&outs, "[%s]", sp_buf_cstr(&outputs));
            sp_outcome oc = {cmd[0] == 's' ? SP_FINISH_SUCCEEDED
                             : cmd[0] == 'f' ? SP_FINISH_FAILED
                                             : SP_FINISH_RETRY,
                             sp_buf_cstr(&outs), "{\"pages\":1,\"rows\":2}",
                             code ? code : "test_error", msg, 60000};
            sp_state st;
            int rc = sp_consumer_finish(c, &job, &oc, false, &st, &err);
            sp_buf_free(&outs);
            have = false;
            reply(rc == 0 ? "ok" : "error", rc == 0 ? sp_state_name(st) : err.msg);
        } else {
            reply("error unknown command", cmd);
        }
    }
    sp_job_clear(&job);
    sp_buf_free(&outputs);
    sp_consumer_free(c);
    sp_queue_close(q);
    sp_blobs_close(blobs);
    return 0;
}

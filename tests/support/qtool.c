/* qtool.c - a command-line window on the queue, for integration tests and benches:
 *
 *   qtool URL PREFIX enqueue QUEUE TYPE PARAMS_JSON [MAX_ATTEMPTS [INPUT_JSON]]  -> id
 *   qtool URL PREFIX get ID        -> the record as one JSON object
 *   qtool URL PREFIX cancel ID     -> cancelled | requested | error
 *   qtool URL PREFIX requeue ID
 *   qtool URL PREFIX stats QUEUE   -> JSON object of depths and counters
 *   qtool URL PREFIX workers       -> one JSON object per line
 * Exit status 0 on success, 1 on error (message on stderr), 3 for "not found". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/queue.h"
#include "spool/util.h"

static json_t *raw_or_null(const char *s)
{
    if (s == NULL)
        return json_null();
    json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
    return v ? v : json_string(s);
}

static int print_job(const sp_job *j)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "type", json_string(j->type));
    json_object_set_new(o, "queue", json_string(j->queue));
    json_object_set_new(o, "state", json_string(sp_state_name(j->state)));
    json_object_set_new(o, "progress", json_integer(j->progress));
    json_object_set_new(o, "attempts", json_integer(j->attempts));
    json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    json_object_set_new(o, "version", json_integer(j->version));
    json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    json_object_set_new(o, "created_at", json_integer(j->created_at));
    json_object_set_new(o, "started_at", json_integer(j->started_at));
    json_object_set_new(o, "finished_at", json_integer(j->finished_at));
    json_object_set_new(o, "next_attempt_at", json_integer(j->next_attempt_at));
    json_object_set_new(o, "worker", json_string(j->worker));
    if (j->has_error) {
        json_t *e = json_object();
        json_object_set_new(e, "code", json_string(j->error_code));
        json_object_set_new(e, "message", json_string(j->error_message ? j->error_message : ""));
        json_object_set_new(e, "retryable", json_boolean(j->error_retryable));
        json_object_set_new(o, "error", e);
    } else {
        json_object_set_new(o, "error", json_null());
    }
    json_object_set_new(o, "params", raw_or_null(j->params));
    json_object_set_new(o, "input", raw_or_null(j->input));
    json_object_set_new(o, "outputs", raw_or_null(j->outputs));
    json_object_set_new(o, "metadata", raw_or_null(j->metadata));
    char *s = json_dumps(o, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(o);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: qtool URL PREFIX command args...\n");
        return 1;
    }
    sp_err err;
    sp_queue *q = sp_queue_open(argv[1], argv[2], &err);
    if (q == NULL) {
        fprintf(stderr, "qtool: %s\n", err.msg);
        return 1;
    }
    const char *cmd = argv[3];
    int rc = 0;
    if (!strcmp(cmd, "enqueue") && argc >= 7) {
        char id[SP_ID_LEN + 1];
        sp_id_new(id);
        sp_enqueue e = {id, argv[5], argv[4], argc > 7 ? atoll(argv[7]) : 3, 200, 2000, false,
                        argv[6], argc > 8 ? argv[8] : NULL, NULL, NULL, 0, 0};
        rc = sp_queue_enqueue(q, &e, NULL, &err);
        if (rc == 0)
            printf("%s\n", id);
    } else if (!strcmp(cmd, "get") && argc >= 5) {
        sp_job j;
        rc = sp_queue_get(q, argv[4], &j, &err);
        if (rc == 0)
            print_job(&j);
        sp_job_clear(&j);
    } else if (!strcmp(cmd, "cancel") && argc >= 5) {
        rc = sp_queue_cancel(q, argv[4], 3600000, &err);
        if (rc >= 0)
            printf("%s\n", rc == 0 ? "cancelled" : "requested");
        rc = rc > 0 ? 0 : rc;
    } else if (!strcmp(cmd, "requeue") && argc >= 5) {
        rc = sp_queue_requeue(q, argv[4], &err);
    } else if (!strcmp(cmd, "stats") && argc >= 5) {
        sp_queue_stat s;
        rc = sp_queue_stat_one(q, argv[4], &s, &err);
        if (rc == 0)
            printf("{\"ready\":%lld,\"running\":%lld,\"delayed\":%lld,\"dead\":%lld,"
                   "\"enqueued\":%lld,\"succeeded\":%lld,\"failed\":%lld,\"cancelled\":%lld,"
                   "\"retried\":%lld,\"expired\":%lld,\"requeued\":%lld}\n",
                   (long long)s.ready, (long long)s.running, (long long)s.delayed,
                   (long long)s.dead, (long long)s.enqueued, (long long)s.succeeded,
                   (long long)s.failed, (long long)s.cancelled, (long long)s.retried,
                   (long long)s.expired, (long long)s.requeued);
    } else if (!strcmp(cmd, "workers")) {
        sp_worker_info w[64];
        size_t n = 0;
        rc = sp_queue_workers(q, w, 64, &n, &err);
        for (size_t i = 0; rc == 0 && i < n; i++)
            printf("{\"id\":\"%s\",\"kind\":\"%s\",\"queues\":\"%s\",\"current\":\"%s\","
                   "\"processed\":%lld,\"failed\":%lld,\"pid\":%lld}\n",
                   w[i].id, w[i].kind, w[i].queues, w[i].current, (long long)w[i].processed,
                   (long long)w[i].failed, (long long)w[i].pid);
    } else {
        fprintf(stderr, "qtool: unknown command or missing arguments\n");
        rc = SP_EINVAL;
    }
    if (rc < 0)
        fprintf(stderr, "qtool: %s\n", err.msg);
    sp_queue_close(q);
    return rc == SP_ENOTFOUND ? 3 : rc < 0 ? 1 : 0;
}

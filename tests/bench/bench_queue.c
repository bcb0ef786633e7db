/* bench_queue.c - the queue's throughput and start latency on a private redis-server.
 *
 *   bench_queue [--jobs N] [--consumers K] [--latency-samples M] [--redis-url URL]
 *               [--prefetch-ms MS]   (consumer prefetch while jobs are shorter; 0: off)
 *   bench_queue --redis-url URL --work-only N
 *       enqueue N jobs, then take and finish them in this process, and exit: a fixed
 *       amount of queue work for measuring Redis's cost per job (callgrind). 
 *
 * 1. enqueue: N no-op jobs, pipelined in batches of 1000 (jobs/s).
 * 2. end to end: K consumer processes, already waiting, process N jobs that one
 *    producer enqueues (first enqueue to last completion, jobs/s).
 * 3. start latency: one idle consumer blocked in Redis; M jobs enqueued one at a time,
 *    each after the previous started; enqueue call to sp_consumer_next returning
 *    (CLOCK_MONOTONIC across processes), p50/p99/max.
 * Prints one "name value unit" line per figure (machine-readable for the bench
 * script). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "spool/queue.h"
#include "spool/util.h"

static char url[128];
static int64_t prefetch_ms = 50;
static const char *prefix = "bench:";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const sp_err *err)
{
    fprintf(stderr, "bench_queue: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static void enqueue_batch(sp_queue *q, const char *queue, int n)
{
    enum { BATCH = 1000 };
    static sp_enqueue e[BATCH];
    static char ids[BATCH][SP_ID_LEN + 1];
    static int results[BATCH];
    sp_err err;
    for (int done = 0; done < n; done += BATCH) {
        int m = n - done < BATCH ? n - done : BATCH;
        for (int i = 0; i < m; i++) {
            sp_id_new(ids[i]);
            e[i] = (sp_enqueue){ids[i], "bench.noop", queue, 3, 1000, 60000, false, NULL, NULL,
                                NULL, NULL, 0, 0};
        }
        if (sp_queue_enqueue_many(q, e, (size_t)m, results, &err) != 0)
            die("enqueue", &err);
    }
}

static volatile sig_atomic_t stop;
static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* A consumer process: take, finish (claiming the next in the same step), repeat. With
 * a latency pipe it writes each start time instead. */
static void consumer(const char *queue, int idx, int latfd)
{
    signal(SIGTERM, on_term);
    char wid[64];
    snprintf(wid, sizeof wid, "bench-%d-%d", idx, (int)getpid());
    const char *queues[] = {queue};
    sp_err err;
    sp_consumer_opts o = {url, prefix, wid, queues, 1, 30000, 600000, prefetch_ms};
    sp_consumer *c = sp_consumer_new(&o, &err);
    if (c == NULL)
        die("consumer", &err);
    while (!stop) {
        sp_job job;
        int rc = sp_consumer_next(c, 200, &job, &err);
        if (rc == SP_ETIMEDOUT)
            continue;
        if (rc < 0)
            die("next", &err);
        double t = now_s();
        if (latfd >= 0 && write(latfd, &t, sizeof t) != sizeof t)
            die("pipe", NULL);
        sp_outcome out = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
        if (sp_consumer_finish(c, &job, &out, latfd < 0, NULL, &err) < 0)
            die("finish", &err);
        sp_job_clear(&job);
    }
    sp_consumer_free(c);
    _exit(0);
}

/* Enqueue n jobs, then take and finish all of them with one consumer. */
static int work_only(int n)
{
    sp_err err;
    sp_queue *q = sp_queue_open(url, prefix, &err);
    if (q == NULL)
        die("open", &err);
    enqueue_batch(q, "work", n);
    if (getenv("BENCH_ENQUEUE_ONLY")) {
        sp_queue_close(q);
        return 0;
    }
    const char *queues[] = {"work"};
    sp_consumer_opts o = {url, prefix, "profile", queues, 1, 30000, 600000, prefetch_ms};
    sp_consumer *c = sp_consumer_new(&o, &err);
    int done = 0;
    sp_job job;
    while (sp_consumer_next(c, 100, &job, &err) == 0) {
        sp_outcome out = {SP_FINISH_SUCCEEDED, "[]", NULL, NULL, NULL, -1};
        if (sp_consumer_finish(c, &job, &out, true, NULL, &err) < 0)
            die("finish", &err);
        sp_job_clear(&job);
        done++;
    }
    sp_consumer_free(c);
    sp_queue_close(q);
    printf("work_only %d jobs\n", done);
    return done == n ? 0 : 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int jobs = 50000, consumers = 4, samples = 2000;
    const char *given_url = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--jobs"))
            jobs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--consumers"))
            consumers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--latency-samples"))
            samples = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis-url"))
            given_url = argv[i + 1];
        else if (!strcmp(argv[i], "--prefetch-ms"))
            prefetch_ms = atoll(argv[i + 1]);
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--work-only") && given_url) {
            snprintf(url, sizeof url, "%s", given_url);
            return work_only(atoi(argv[i + 1]));
        }
    }
    sp_test_redis r;
    if (given_url) {
        snprintf(url, sizeof url, "%s", given_url);
    } else {
        if (sp_test_redis_start(&r, 0) < 0)
            return 1;
        snprintf(url, sizeof url, "%s", r.url);
    }
    sp_err err;
    sp_queue *q = sp_queue_open(url, prefix, &err);
    if (q == NULL || sp_queue_ping(q, &err) < 0)
        die("redis", &err);

    /* 1. enqueue throughput */
    double t0 = now_s();
    enqueue_batch(q, "enq", jobs);
    double t1 = now_s();
    printf("enqueue_jobs_per_s %.0f jobs/s\n", jobs / (t1 - t0));

    /* 2. end to end with K waiting consumers */
    pid_t pids[64];
    for (int i = 0; i < consumers && i < 64; i++)
        if ((pids[i] = fork()) == 0)
            consumer("e2e", i, -1);
    usleep(300000);
    t0 = now_s();
    enqueue_batch(q, "e2e", jobs);
    sp_queue_stat s;
    do {
        usleep(5000);
        if (sp_queue_stat_one(q, "e2e", &s, &err) < 0)
            die("stats", &err);
    } while (s.succeeded < jobs);
    t1 = now_s();
    printf("end_to_end_jobs_per_s %.0f jobs/s (%d consumers, %d jobs, prefetch %s)\n",
           jobs / (t1 - t0), consumers, jobs, prefetch_ms > 0 ? "on" : "off");
    for (int i = 0; i < consumers && i < 64; i++) {
        kill(pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }

    /* 3. start latency with an idle consumer */
    int pfd[2];
    if (pipe(pfd) < 0)
        die("pipe", NULL);
    pid_t lat = fork();
    if (lat == 0) {
        close(pfd[0]);
        consumer("lat", 0, pfd[1]);
    }
    close(pfd[1]);
    usleep(300000);
    double *d = calloc((size_t)samples, sizeof *d);
    for (int i = 0; i < samples; i++) {
        char id[SP_ID_LEN + 1];
        sp_id_new(id);
        sp_enqueue e = {id, "bench.noop", "lat", 3, 1000, 60000, false, NULL, NULL, NULL, NULL,
                        0, 0};
        usleep(2000); /* the consumer is back to waiting in Redis */
        double sent = now_s();
        if (sp_queue_enqueue(q, &e, NULL, &err) != 0)
            die("enqueue", &err);
        double started;
        if (read(pfd[0], &started, sizeof started) != sizeof started)
            die("latency pipe", NULL);
        d[i] = (started - sent) * 1000.0;
    }
    kill(lat, SIGTERM);
    waitpid(lat, NULL, 0);
    qsort(d, (size_t)samples, sizeof *d, cmp_double);
    printf("start_latency_p50 %.3f ms\n", d[samples / 2]);
    printf("start_latency_p99 %.3f ms\n", d[samples * 99 / 100]);
    printf("start_latency_max %.3f ms\n", d[samples - 1]);
    free(d);
    sp_queue_close(q);
    if (!given_url)
        sp_test_redis_destroy(&r);
    return 0;
}

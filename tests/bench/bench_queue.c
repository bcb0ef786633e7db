/* bench_queue.c - spool's side of make bench-queue (tests/bench/bench_queue.sh): the
 * queue's enqueue rate, end-to-end throughput and start latency on a Redis given by URL.
 *
 *   bench_queue --redis-url URL [--jobs N] [--consumers K] [--latency-samples M]
 *               [--cost CMD]     (run as "CMD reset" before and "CMD report JOBS LABEL"
 *                                 after each measured phase: tests/bench/redis_cost.py)
 *               [--phases LIST]  (comma list of phases to run: enqueue_one, enqueue_batch,
 *                                 e2e_prefetch, e2e_noprefetch, latency; default all)
 *   bench_queue --redis-url URL --work-only N [--prefetch-ms MS]
 *       enqueue N jobs, then take and finish them in this process, and exit: a fixed
 *       amount of queue work for measuring Redis's cost per job (callgrind).
 *
 * Phases, each printing "name value unit" lines:
 * 1. enqueue_one: N no-op jobs, one sp_queue_enqueue call (one round trip) each.
 * 2. enqueue_batch: N jobs through sp_queue_enqueue_many, 1000 per call (pipelined).
 * 3. e2e_prefetch, e2e_noprefetch: K consumer processes, already waiting, with prefetch
 *    50 ms (the workers' default) and off; one producer enqueues N jobs in batches;
 *    from the first enqueue until every job is finished. A consumer's per-job work: take
 *    the job, append one byte to a file (the driver counts them: the same completion
 *    signal as the Celery and BullMQ peers), finish it as succeeded.
 * 4. latency: one idle consumer (prefetch on) blocked in Redis; M jobs enqueued one at a
 *    time, each after the previous started; enqueue call to sp_consumer_next returning
 *    (CLOCK_MONOTONIC across processes), p50/p99. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "spool/queue.h"
#include "spool/util.h"

static char url[128];
static int64_t prefetch_ms = 50;
static const char *prefix = "bench:";
static const char *cost_cmd; /* NULL: no Redis cost figures */
static const char *phases;   /* NULL: every phase */

/* Whether --phases names this phase (a whole item of its comma list). */
static bool phase(const char *name)
{
    if (phases == NULL)
        return true;
    size_t n = strlen(name);
    for (const char *p = phases; (p = strstr(p, name)) != NULL; p += n)
        if ((p == phases || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}
static char done_path[256];

/* Run the cost helper (outside the timed windows). */
static void cost(const char *what, int jobs, const char *label)
{
    if (cost_cmd == NULL)
        return;
    char cmd[1024];
    if (jobs > 0)
        snprintf(cmd, sizeof cmd, "%s %s %d %s", cost_cmd, what, jobs, label);
    else
        snprintf(cmd, sizeof cmd, "%s %s", cost_cmd, what);
    fflush(stdout);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_queue: %s failed\n", cmd);
}

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
    /* A driver that dies takes its consumers along: orphans would take the next run's
     * jobs on a shared Redis. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int donefd = latfd < 0 ? open(done_path, O_WRONLY | O_APPEND | O_CREAT, 0600) : -1;
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
        if (donefd >= 0 && write(donefd, "x", 1) != 1)
            die("done file", NULL);
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

/* Phase 3: K waiting consumers with the given prefetch; n jobs enqueued in batches. */
static void e2e(sp_queue *q, const char *queue, int n, int consumers, int64_t prefetch,
                const char *label)
{
    snprintf(done_path, sizeof done_path, "/tmp/spool-bench-done-%d-%s", (int)getpid(), queue);
    unlink(done_path);
    int fd = open(done_path, O_RDONLY | O_CREAT, 0600);
    if (fd < 0)
        die("done file", NULL);
    prefetch_ms = prefetch;
    pid_t pids[64];
    for (int i = 0; i < consumers && i < 64; i++)
        if ((pids[i] = fork()) == 0)
            consumer(queue, i, -1);
    usleep(500000);
    cost("reset", 0, NULL);
    double t0 = now_s();
    enqueue_batch(q, queue, n);
    struct stat st;
    double deadline = t0 + 600;
    do {
        usleep(1000);
        if (fstat(fd, &st) < 0)
            die("done file", NULL);
    } while (st.st_size < n && now_s() < deadline);
    double t1 = now_s();
    printf("%s_jobs_per_s %.0f jobs/s (%d consumers, %lld jobs)\n", label,
           (double)st.st_size / (t1 - t0), consumers, (long long)st.st_size);
    cost("report", n, label);
    for (int i = 0; i < consumers && i < 64; i++) {
        kill(pids[i], SIGTERM);
        waitpid(pids[i], NULL, 0);
    }
    close(fd);
    unlink(done_path);
}

/* Phase 4: start latency with an idle consumer. */
static void latency(sp_queue *q, int samples)
{
    sp_err err;
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
    printf("latency_p50 %.3f ms\n", d[samples / 2]);
    printf("latency_p99 %.3f ms\n", d[samples * 99 / 100]);
    free(d);
}

int main(int argc, char **argv)
{
    int jobs = 10000, consumers = 4, samples = 200;
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
        else if (!strcmp(argv[i], "--cost"))
            cost_cmd = argv[i + 1];
        else if (!strcmp(argv[i], "--phases"))
            phases = argv[i + 1];
    }
    if (given_url == NULL) {
        fprintf(stderr, "bench_queue: --redis-url is required (make bench-queue starts one)\n");
        return 2;
    }
    snprintf(url, sizeof url, "%s", given_url);
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--work-only"))
            return work_only(atoi(argv[i + 1]));
    if (samples < 1)
        samples = 1;
    sp_err err;
    sp_queue *q = sp_queue_open(url, prefix, &err);
    if (q == NULL || sp_queue_ping(q, &err) < 0)
        die("redis", &err);

    if (phase("enqueue_one")) {
        cost("reset", 0, NULL);
        double t0 = now_s();
        for (int i = 0; i < jobs; i++) {
            char id[SP_ID_LEN + 1];
            sp_id_new(id);
            sp_enqueue e = {id, "bench.noop", "one", 3, 1000, 60000, false, NULL, NULL, NULL,
                            NULL, 0, 0};
            if (sp_queue_enqueue(q, &e, NULL, &err) != 0)
                die("enqueue", &err);
        }
        double t1 = now_s();
        printf("enqueue_one_jobs_per_s %.0f jobs/s\n", jobs / (t1 - t0));
        cost("report", jobs, "enqueue_one");
    }
    if (phase("enqueue_batch")) {
        cost("reset", 0, NULL);
        double t0 = now_s();
        enqueue_batch(q, "enq", jobs);
        double t1 = now_s();
        printf("enqueue_batch_jobs_per_s %.0f jobs/s\n", jobs / (t1 - t0));
        cost("report", jobs, "enqueue_batch");
    }
    if (phase("e2e_prefetch"))
        e2e(q, "e2e1", jobs, consumers, 50, "e2e_prefetch");
    if (phase("e2e_noprefetch"))
        e2e(q, "e2e0", jobs, consumers, 0, "e2e_noprefetch");
    prefetch_ms = 50;
    if (phase("latency"))
        latency(q, samples);
    sp_queue_close(q);
    return 0;
}

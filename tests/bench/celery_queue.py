"""Celery + Redis peer of make bench-queue (tests/bench/bench_queue.sh): the same
phases as bench_queue.c, with the same job count and the same per-job work.

Run with Debian's python (/usr/bin/python3, which has python3-celery and
python3-redis). Prefork pool with CONSUMERS processes in both configurations:
  default   Celery's defaults: a task is acked when a worker receives it (a crash loses
            it), prefetch multiplier 4. Celery's primary line.
  acks_late task_acks_late and prefetch multiplier 1: at-least-once like spool (a task
            whose worker dies is redelivered).
Both ignore results (task_ignore_result), as spool's no-op jobs store none.

The task's work is what a spool consumer does besides the queue: append one byte to
a file (O_APPEND), which the driver counts to see every task done. Phases:
  enqueue_one  JOBS apply_async calls (Celery has no batched enqueue)
  e2e          workers already waiting; JOBS tasks sent; until every task ran
  latency      (default only) one idle worker process; apply_async to the task
               starting, SAMPLES times (the task pushes its start time to Redis)

  celery_queue.py REDIS_URL JOBS CONSUMERS SAMPLES default|acks_late COST_CMD|-
Prints "name value unit" lines like bench_queue.
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import redis
from celery import Celery

# The worker subprocess imports this module too: it finds its settings in the
# environment.
if __name__ == "__main__":
    os.environ["CELERY_BENCH_URL"] = sys.argv[1]
    os.environ["CB_MODE"] = sys.argv[5]
URL = os.environ.get("CELERY_BENCH_URL", "redis://127.0.0.1:6379/1")
LATE = os.environ.get("CB_MODE", "default") == "acks_late"
app = Celery("celery_queue", broker=URL)
app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False)
if LATE:
    app.conf.update(task_acks_late=True, worker_prefetch_multiplier=1)
_done = None
_r = None


@app.task(name="noop")
def noop():
    global _done
    if _done is None:
        _done = os.open(os.environ["CB_DONE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(_done, b"x")


@app.task(name="stamp")
def stamp():
    global _r
    if _r is None:
        _r = redis.Redis.from_url(URL)
    _r.rpush("celerybench:started", repr(time.monotonic()))


def start_worker(concurrency, queue, done):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)), CB_DONE=done)
    log = tempfile.TemporaryFile()
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_queue", "worker",
                             "--pool", "prefork", "--concurrency", str(concurrency), "-Q", queue,
                             "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                             "--without-heartbeat"],
                            cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(p):
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def cost(cmd, what, jobs=0, label=""):
    if cmd == "-":
        return
    sys.stdout.flush()
    args = cmd.split() + [what] + ([str(jobs), label] if jobs else [])
    subprocess.run(args, check=True)


def main():
    jobs, consumers, samples = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    mode, cost_cmd = sys.argv[5], sys.argv[6]
    r = redis.Redis.from_url(URL)
    r.flushdb()

    cost(cost_cmd, "reset")
    t0 = time.monotonic()
    for _ in range(jobs):
        noop.apply_async(queue="enq")
    t1 = time.monotonic()
    print(f"enqueue_one_jobs_per_s {jobs / (t1 - t0):.0f} jobs/s", flush=True)
    cost(cost_cmd, "report", jobs, "enqueue_one")
    r.delete("enq")

    done = tempfile.NamedTemporaryFile(prefix="celery-bench-done-", delete=False).name
    w = start_worker(consumers, "e2e", done)
    time.sleep(3)  # let the pool start
    cost(cost_cmd, "reset")
    t0 = time.monotonic()
    for _ in range(jobs):
        noop.apply_async(queue="e2e")
    deadline = time.monotonic() + 900
    while os.path.getsize(done) < jobs and time.monotonic() < deadline:
        time.sleep(0.001)
    t1 = time.monotonic()
    n = os.path.getsize(done)
    print(f"e2e_jobs_per_s {n / (t1 - t0):.0f} jobs/s ({consumers} consumers, {n} jobs)",
          flush=True)
    cost(cost_cmd, "report", jobs, "e2e")
    stop_worker(w)
    os.unlink(done)

    if mode == "default" and samples > 0:
        w = start_worker(1, "lat", "/dev/null")
        time.sleep(3)
        lat = []
        for _ in range(samples):
            time.sleep(0.002)
            sent = time.monotonic()
            stamp.apply_async(queue="lat")
            item = r.blpop("celerybench:started", timeout=30)
            if item is None:
                break
            lat.append((float(item[1]) - sent) * 1000.0)
        stop_worker(w)
        lat.sort()
        if lat:
            print(f"latency_p50 {lat[len(lat) // 2]:.3f} ms")
            print(f"latency_p99 {lat[len(lat) * 99 // 100]:.3f} ms")
    r.flushdb()


if __name__ == "__main__":
    main()

"""Celery + Redis counterpart of bench_queue: the same three measurements.

Run with Debian's python (/usr/bin/python3, which has python3-celery and
python3-redis). Two configurations, prefork pool in both:
  safe     acks_late, prefetch multiplier 1: at-least-once like spool (a task whose
           worker dies is redelivered)
  default  Celery's defaults: acked on receipt (a crash loses the task), prefetch 4
Prints "name value unit" lines like bench_queue.

  celery_queue.py REDIS_URL JOBS CONSUMERS LATENCY_SAMPLES safe|default
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

import redis
from celery import Celery

# The worker subprocess imports this module too: it finds the URL in the environment.
if __name__ == "__main__":
    os.environ["CELERY_BENCH_URL"] = sys.argv[1]
    safe = len(sys.argv) < 6 or sys.argv[5] == "safe"
    os.environ["CB_LATE"] = "1" if safe else "0"
    os.environ["CB_PREFETCH"] = "1" if safe else "4"
URL = os.environ.get("CELERY_BENCH_URL", "redis://127.0.0.1:6379/1")
app = Celery("celery_queue", broker=URL)
app.conf.update(task_acks_late=os.environ.get("CB_LATE","1")=="1", worker_prefetch_multiplier=int(os.environ.get("CB_PREFETCH","1")), task_ignore_result=True,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)
_r = None


def _redis():
    global _r
    if _r is None:
        _r = redis.Redis.from_url(URL)
    return _r


@app.task(name="noop")
def noop():
    _redis().incr("celerybench:done")


@app.task(name="stamp")
def stamp():
    _redis().rpush("celerybench:started", repr(time.monotonic()))


def start_worker(concurrency, queue):
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    log = tempfile.TemporaryFile()
    p = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_queue", "worker",
                          "--pool", "prefork", "--concurrency", str(concurrency), "-Q", queue,
                          "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                          "--without-heartbeat"],
                         cwd=os.path.dirname(os.path.abspath(__file__)), env=env,
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return p


def stop_worker(p):
    os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def main():
    jobs, consumers, samples = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    r = _redis()
    r.flushdb()

    t0 = time.monotonic()
    for _ in range(jobs):
        noop.apply_async(queue="enq")
    t1 = time.monotonic()
    print(f"enqueue_jobs_per_s {jobs / (t1 - t0):.0f} jobs/s", flush=True)
    r.delete("enq")

    w = start_worker(consumers, "e2e")
    time.sleep(3)  # let the pool start
    t0 = time.monotonic()
    for _ in range(jobs):
        noop.apply_async(queue="e2e")
    deadline = time.monotonic() + 600
    while int(r.get("celerybench:done") or 0) < jobs and time.monotonic() < deadline:
        time.sleep(0.005)
    t1 = time.monotonic()
    done = int(r.get("celerybench:done") or 0)
    print(f"end_to_end_jobs_per_s {done / (t1 - t0):.0f} jobs/s ({consumers} consumers, {jobs} jobs)",
          flush=True)
    stop_worker(w)

    w = start_worker(1, "lat")
    time.sleep(3)
    lat = []
    for i in range(samples):
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
        print(f"start_latency_p50 {lat[len(lat) // 2]:.3f} ms")
        print(f"start_latency_p99 {lat[len(lat) * 99 // 100]:.3f} ms")
        print(f"start_latency_max {lat[-1]:.3f} ms")
    r.flushdb()


if __name__ == "__main__":
    main()

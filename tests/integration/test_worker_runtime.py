"""The shared worker runtime (common/worker.c) driven through spool-test-worker: leases,
progress, cancel, time limits, SIGTERM grace, SIGKILL and SIGSTOP redelivery within the
worker TTL, long jobs never run twice, outages."""
import os
import signal
import time

from harness import Proc, Queue, Redis, Suite, TEST_BIN, eq, wait_until

suite = Suite("worker_runtime")
WORKER = os.path.join(TEST_BIN, "spool-test-worker")


def worker(ctx, *args, defaults=False, **env):
    """spool-test-worker on the suite's Redis; quicker renewals and maintenance than the
    defaults unless defaults=True."""
    e = {"SPOOL_REDIS_URL": ctx["redis"].url, "SPOOL_DATA_DIR": ctx["data"],
         "SPOOL_QUEUES": "test", "SPOOL_LOG_FORMAT": "text"}
    if not defaults:
        e.update({"SPOOL_RENEW_INTERVAL": "200ms", "SPOOL_MAINTAIN_INTERVAL": "100ms"})
    e.update({k: str(v) for k, v in env.items()})
    return Proc([WORKER, *args], env=e, name="test-worker")


def setup():
    r = Redis()
    data = os.path.join(suite.tmp, "data")
    return {"redis": r, "q": Queue(r), "data": data}


def teardown(ctx):
    ctx["redis"].destroy()


@suite.test
def test_job_succeeds_with_output_metadata_and_registry(ctx):
    q = ctx["q"]
    w = worker(ctx)
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 2500, "output": "result.txt"})
        q.wait_state(jid, "running", 10)
        wait_until(lambda: any(jid in x["current"] for x in q.workers()), 5, what="registry")
        # The handler stores its metadata as its first step, a moment after the start
        # makes the job running: a busy machine showed the record in between.
        running = wait_until(lambda: (lambda j: j if j.get("metadata") else None)(q.get(jid)),
                             5, 0.02, what="the handler's metadata in the record")
        eq(running["state"], "running", "state when the metadata came")
        eq(running["metadata"], {"phase": "working"}, "metadata while running")
        job = q.wait_state(jid, "succeeded", 10)
        eq(job["attempts"], 1, "attempts")
        eq(job["progress"], 100, "progress")
        eq(job["outputs"], [{"name": "result.txt", "content_type": "text/plain", "bytes": len(jid)}],
           "outputs")
        path = os.path.join(ctx["data"], "jobs", jid[-2:], jid, "result.txt")
        with open(path) as f:
            eq(f.read(), jid, "output content")
        wait_until(lambda: [x["processed"] for x in q.workers()] == [1], 5,
                   what="the processed counter in the registry")
    finally:
        eq(w.stop(), 0, "exit status")
    eq(q.workers(), [], "deregistered on exit")


@suite.test
def test_progress_is_visible_while_running(ctx):
    q = ctx["q"]
    w = worker(ctx)
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 2000})
        seen = wait_until(lambda: (lambda j: j if j["state"] == "running" and 0 < j["progress"] < 100 else None)(q.get(jid)),
                          10, what="progress between 1 and 99")
        assert seen["progress"] < 100
        q.wait_state(jid, "succeeded", 10)
    finally:
        w.stop()


@suite.test
def test_cancel_stops_running_job_within_a_second(ctx):
    q = ctx["q"]
    w = worker(ctx, SPOOL_RENEW_INTERVAL="500ms")
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 30000})
        q.wait_state(jid, "running", 10)
        t0 = time.monotonic()
        eq(q.cancel(jid), "requested", "cancel answer")
        q.wait_state(jid, "cancelled", 5)
        took = time.monotonic() - t0
        assert took < 1.5, f"cancel took {took:.2f}s"
    finally:
        w.stop()


@suite.test
def test_time_limit_fails_job_as_retryable(ctx):
    q = ctx["q"]
    w = worker(ctx)
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 30000, "limit_ms": 300}, max_attempts=1)
        job = q.wait_state(jid, "failed", 10)
        eq(job["error"]["code"], "timed_out", "error code")
        eq(job["error"]["retryable"], True, "retryable")
    finally:
        w.stop()


@suite.test
def test_permanent_and_retryable_failures(ctx):
    q = ctx["q"]
    w = worker(ctx)
    try:
        dead_before = q.stats("test")["dead"]
        perm = q.enqueue("test", "test.noop", {"fail": "permanent"}, max_attempts=3)
        job = q.wait_state(perm, "failed", 10)
        eq(job["attempts"], 1, "permanent failures are not retried")
        eq(job["error"], {"code": "invalid_input", "message": "simulated permanent failure",
                          "retryable": False}, "error")
        retry = q.enqueue("test", "test.noop", {"fail": "retry"}, max_attempts=2)
        job = q.wait_state(retry, "failed", 20)
        eq(job["attempts"], 2, "retried once, then failed")
        eq(job["error"]["code"], "io_error", "last error")
        eq(q.stats("test")["dead"] - dead_before, 2, "both on the dead-letter set")
    finally:
        w.stop()


@suite.test
def test_sigterm_lets_running_job_finish(ctx):
    q = ctx["q"]
    w = worker(ctx, SPOOL_GRACE="10s")
    jid = q.enqueue("test", "test.noop", {"sleep_ms": 1000})
    q.wait_state(jid, "running", 10)
    w.signal(signal.SIGTERM)
    later = q.enqueue("test", "test.noop", {})
    eq(w.wait(15), 0, "exit status")
    eq(q.get(jid)["state"], "succeeded", "the running job finished")
    eq(q.get(later)["state"], "queued", "no new job was taken")
    q.cancel(later)


@suite.test
def test_sigterm_past_grace_gives_job_back_without_attempt(ctx):
    q = ctx["q"]
    w = worker(ctx, SPOOL_GRACE="300ms")
    jid = q.enqueue("test", "test.noop", {"sleep_ms": 60000})
    q.wait_state(jid, "running", 10)
    t0 = time.monotonic()
    w.signal(signal.SIGTERM)
    eq(w.wait(15), 0, "exit status")
    assert time.monotonic() - t0 < 3, "stopped promptly after the grace period"
    job = q.get(jid)
    eq(job["state"], "queued", "given back")
    eq(job["attempts"], 0, "the interrupted attempt does not count")
    # Another worker picks it up at once.
    q2 = worker(ctx)
    try:
        q.wait_state(jid, "running", 10)
        q.cancel(jid)
        q.wait_state(jid, "cancelled", 5)
    finally:
        q2.stop()


@suite.test
def test_sigterm_idle_slot_gives_back_a_job_that_arrives_while_it_waits(ctx):
    q = ctx["q"]
    w = worker(ctx, SPOOL_CONCURRENCY=2, SPOOL_GRACE="10s", SPOOL_WORKER_ID="draining")
    busy = q.enqueue("test", "test.noop", {"sleep_ms": 1500})
    q.wait_state(busy, "running", 10)
    # The other slot is idle, blocked in Redis waiting for a job (up to 1 s per wait);
    # the job arrives in that wait, after the worker has begun to drain.
    w.signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM: finishing running jobs" in w.output(), 5, what="drain")
    new = q.enqueue("test", "test.noop", {"output": "new.txt"})
    eq(w.wait(15), 0, "exit status")
    job = q.get(busy)
    eq((job["state"], job["attempts"]), ("succeeded", 1), "the running job finished")
    job = q.get(new)
    eq((job["state"], job["attempts"]), ("queued", 0), "the new job was not run")
    eq(q.stats("test")["ready"], 1, "it is back on the queue")
    assert not os.path.exists(os.path.join(ctx["data"], "jobs", new[-2:], new, "new.txt")), \
        "no output from the draining worker"
    # The next worker runs it, as its first attempt.
    b = worker(ctx, SPOOL_WORKER_ID="next")
    try:
        job = q.wait_state(new, "succeeded", 10)
        eq((job["worker"], job["attempts"]), ("next", 1), "run once, by the next worker")
    finally:
        eq(b.stop(), 0, "exit status of the next worker")


@suite.test
def test_sigterm_gives_back_a_job_claimed_ahead_while_another_slot_runs(ctx):
    q = ctx["q"]
    a = worker(ctx, SPOOL_CONCURRENCY=2, SPOOL_PREFETCH="1s", SPOOL_GRACE="20s",
               SPOOL_WORKER_ID="prefetcher")
    b = None
    try:
        # One slot runs a long job (past the 1 s after which claims are given back once).
        long_ = q.enqueue("test", "test.noop", {"sleep_ms": 8000})
        q.wait_state(long_, "running", 10)
        time.sleep(1.5)
        # The other slot runs short jobs, so it claims the next one ahead each time.
        first = q.enqueue("test", "test.noop", {"sleep_ms": 800})
        q.wait_state(first, "running", 10)
        short = q.enqueue("test", "test.noop", {})
        mid = q.enqueue("test", "test.noop", {"sleep_ms": 700})
        last = q.enqueue("test", "test.noop", {})
        q.wait_state(mid, "running", 10)
        eq(q.stats("test")["ready"], 0, "the last job is claimed ahead")
        a.signal(signal.SIGTERM)
        wait_until(lambda: "SIGTERM: finishing running jobs" in a.output(), 5, what="drain")
        eq(q.wait_state(mid, ("succeeded", "failed"), 5)["state"], "succeeded", "mid job")
        # The claim goes back when its slot stops, not when the whole worker exits.
        wait_until(lambda: q.stats("test")["ready"] == 1, 1.5, what="the claim given back")
        job = q.get(last)
        eq((job["state"], job["attempts"]), ("queued", 0), "the claimed job was not run")
        b = worker(ctx, SPOOL_WORKER_ID="helper")
        job = q.wait_state(last, "succeeded", 5)
        eq((job["worker"], job["attempts"]), ("helper", 1), "run once, by the other worker")
        eq(q.get(long_)["state"], "running", "the long job is still running")
        eq(a.wait(15), 0, "exit status")
        eq(q.get(long_)["state"], "succeeded", "the long job finished within the grace")
        eq(q.get(short)["attempts"], 1, "short job attempts")
    finally:
        a.stop()
        if b:
            b.stop()


@suite.test
def test_killed_worker_job_is_redone_by_another(ctx):
    q = ctx["q"]
    a = worker(ctx, SPOOL_LEASE="2s")
    jid = q.enqueue("test", "test.noop", {"sleep_ms": 1500, "output": "once.txt"})
    q.wait_state(jid, "running", 10)
    a.kill()
    b = worker(ctx, SPOOL_LEASE="2s")
    try:
        job = q.wait_state(jid, "succeeded", 20)
        eq(job["attempts"], 2, "attempts")
        eq(len(job["outputs"]), 1, "one output")
        d = os.path.join(ctx["data"], "jobs", jid[-2:], jid)
        eq(sorted(os.listdir(d)), ["once.txt"], "one file, no staging leftovers")
    finally:
        b.stop()


def registered(q, worker_id):
    wait_until(lambda: any(w["id"] == worker_id for w in q.workers()), 5,
               what=f"worker {worker_id} registered")


def running_on(q, jid, worker_id, timeout):
    """Wait until job jid runs on worker_id; returns the job."""
    return wait_until(lambda: (lambda j: j if j and j["state"] == "running" and
                               j["worker"] == worker_id else None)(q.get(jid)),
                      timeout, 0.05, what=f"job {jid} running on {worker_id}")


@suite.test
def test_killed_worker_job_runs_again_within_15s_by_default(ctx):
    # Default lease (30 s), worker TTL (10 s), renewals and maintenance: the job of a
    # worker killed mid-job runs again once the worker has been silent for its TTL,
    # not when the 30 s lease runs out.
    q = ctx["q"]
    before = q.stats("test")
    a = worker(ctx, defaults=True, SPOOL_WORKER_ID="doomed")
    b = None
    jid = q.enqueue("test", "test.noop", {"sleep_ms": 120000})
    try:
        running_on(q, jid, "doomed", 10)
        b = worker(ctx, defaults=True, SPOOL_WORKER_ID="survivor")
        registered(q, "survivor")
        time.sleep(1)
        t0 = time.monotonic()
        a.kill()
        job = running_on(q, jid, "survivor", 45)
        took = time.monotonic() - t0
        print(f"# killed worker's job started again on another worker after {took:.2f} s")
        assert took < 15, f"the job waited {took:.1f} s (the lease, not the worker TTL?)"
        assert took > 8, f"the job moved after {took:.1f} s, before the 10 s worker TTL"
        eq(job["attempts"], 2, "the killed attempt counts")
        eq(q.stats("test")["expired"] - before["expired"], 1, "one lapsed attempt")
        eq(q.cancel(jid), "requested", "cancel answer")
        q.wait_state(jid, "cancelled", 5)
        eq(b.stop(), 0, "exit status of the survivor")
    finally:
        q._run("cancel", jid, check=False)
        a.kill()
        if b:
            b.kill()


@suite.test
def test_live_worker_long_job_is_never_run_twice(ctx):
    # A job four times the lease and six times the worker TTL, with an idle worker
    # maintaining the queue all along: renewals keep it where it is.
    q = ctx["q"]
    before = q.stats("test")
    fast = {"SPOOL_LEASE": "3s", "SPOOL_WORKER_TTL": "2s"}
    a = worker(ctx, SPOOL_WORKER_ID="steady", **fast)
    b = None
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 12000, "output": "long.txt"})
        running_on(q, jid, "steady", 10)
        b = worker(ctx, SPOOL_WORKER_ID="idle", **fast)
        registered(q, "idle")
        job = q.wait_state(jid, ("succeeded", "failed", "queued"), 30)
        eq((job["state"], job["worker"], job["attempts"]), ("succeeded", "steady", 1),
           "run once, by its worker")
        after = q.stats("test")
        eq(after["expired"] - before["expired"], 0, "no lease lapsed")
        eq(after["succeeded"] - before["succeeded"], 1, "one success")
        assert "started test.noop" not in b.output(), b.output()
        eq(a.stop(), 0, "exit status")
        eq(b.stop(), 0, "exit status of the idle worker")
    finally:
        a.kill()
        if b:
            b.kill()


@suite.test
def test_frozen_worker_job_moves_after_the_ttl_and_its_late_finish_is_refused(ctx):
    # SIGSTOP stands for a long pause (a VM stall, swapping, a debugger): past the
    # worker TTL (2 s here; the lease stays 30 s) another worker runs the job; when the
    # frozen one wakes, its job has run out of time to do: it finishes at once, and that
    # finish is refused (fenced by the lease token); the job ends once.
    q = ctx["q"]
    before = q.stats("test")
    a = worker(ctx, SPOOL_WORKER_TTL="2s", SPOOL_WORKER_ID="frozen")
    b = None
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 4000})
        running_on(q, jid, "frozen", 10)
        started = time.monotonic()
        b = worker(ctx, SPOOL_WORKER_TTL="2s", SPOOL_WORKER_ID="rescuer")
        registered(q, "rescuer")
        t0 = time.monotonic()
        a.signal(signal.SIGSTOP)
        job = running_on(q, jid, "rescuer", 25)
        took = time.monotonic() - t0
        print(f"# frozen worker's job started again after {took:.2f} s")
        assert took < 10, f"the job waited {took:.1f} s: the 30 s lease, not the 2 s TTL?"
        eq(job["attempts"], 2, "attempts")
        # Wake the frozen worker once its own attempt has had its 4 s of work.
        time.sleep(max(0.0, started + 4.5 - time.monotonic()))
        a.signal(signal.SIGCONT)
        wait_until(lambda: "this result is discarded" in a.output() or
                   "lease lost" in a.output(), 5, what="the frozen worker's finish refused")
        job = q.get(jid)
        eq((job["state"], job["worker"]), ("running", "rescuer"),
           "the late finish changed nothing")
        job = q.wait_state(jid, ("succeeded", "failed"), 15)
        eq((job["state"], job["worker"], job["attempts"]), ("succeeded", "rescuer", 2),
           "the job ended once, on the rescuer")
        time.sleep(0.5)
        after = q.stats("test")
        eq(after["succeeded"] - before["succeeded"], 1, "one success")
        eq(after["expired"] - before["expired"], 1, "one lapsed attempt")
        eq(a.stop(), 0, "exit status of the frozen worker")
        eq(b.stop(), 0, "exit status of the rescuer")
    finally:
        a.kill()
        if b:
            b.kill()


@suite.test
def test_worker_restarted_under_its_id_redoes_what_its_last_run_left(ctx):
    # A fixed SPOOL_WORKER_ID (systemd's %H-pdf-%i, a Kubernetes pod name) comes back
    # under the same id after a crash. Its new run gives back the jobs the old one had
    # claimed ahead (they would otherwise sit on its claim list while it lives), and its
    # heartbeat does not vouch for the old run's started jobs: they move after the TTL.
    q, r = ctx["q"], ctx["redis"]
    env = {"SPOOL_WORKER_TTL": "2s", "SPOOL_PREFETCH": "1s", "SPOOL_WORKER_ID": "phoenix"}
    claims = "spool:w:phoenix:claim:test"
    ids = [q.enqueue("test", "test.noop", {"sleep_ms": 100}) for _ in range(40)]
    a = worker(ctx, **env)
    b = None
    try:
        wait_until(lambda: int(r.cli("LLEN", claims) or 0) > 0 and
                   q.get(ids[0])["state"] == "succeeded", 10, 0.005,
                   what="jobs claimed ahead")
        a.kill()
        stranded = r.cli("LRANGE", claims, 0, -1).split()
        left_running = [i for i in ids if q.get(i)["state"] == "running"]
        assert stranded, "the killed run had jobs claimed ahead"
        t0 = time.monotonic()
        b = worker(ctx, **env)
        for i in ids:
            q.wait_state(i, ("succeeded", "failed"), 20)
        took = time.monotonic() - t0
        print(f"# {len(stranded)} claimed and {len(left_running)} started jobs of the "
              f"killed run done {took:.1f} s after the restart")
        assert took < 15, f"took {took:.1f} s: the old run's jobs waited for their lease?"
        jobs = [q.get(i) for i in ids]
        eq([j["state"] for j in jobs], ["succeeded"] * len(ids), "every job succeeded")
        for j in jobs:
            if j["id"] in stranded:
                eq(j["attempts"], 1, f"claimed job {j['id']} (a claim costs no attempt)")
            elif j["id"] in left_running:
                eq(j["attempts"], 2, f"started job {j['id']}")
        eq(r.cli("LLEN", claims), "0", "nothing left on the claim list")
        eq(b.stop(), 0, "exit status")
    finally:
        a.kill()
        if b:
            b.kill()


@suite.test
def test_concurrency_runs_jobs_at_once(ctx):
    q = ctx["q"]
    w = worker(ctx, SPOOL_CONCURRENCY=3)
    try:
        ids = [q.enqueue("test", "test.noop", {"sleep_ms": 1500}) for _ in range(3)]
        wait_until(lambda: all(q.get(i)["state"] == "running" for i in ids), 5,
                   what="three jobs running together")
        for i in ids:
            q.wait_state(i, "succeeded", 10)
    finally:
        w.stop()


@suite.test
def test_prefetched_job_is_not_held_behind_a_long_one(ctx):
    q = ctx["q"]
    # Queued before the worker starts: after the first job (short) the worker starts
    # the rest as one batch and holds back the second job's finish while the long job
    # waits to run.
    first = q.enqueue("test", "test.noop", {})
    second = q.enqueue("test", "test.noop", {})
    long_ = q.enqueue("test", "test.noop", {"sleep_ms": 4000})
    last = q.enqueue("test", "test.noop", {})
    a = worker(ctx, SPOOL_PREFETCH="200ms", SPOOL_WORKER_ID="prefetcher")
    b = None
    try:
        q.wait_state(long_, "running", 10)
        # The held finish is recorded soon after the long job passes the prefetch time.
        job = q.wait_state(second, "succeeded", 1.5)
        eq(job["worker"], "prefetcher", "the second job's worker")
        eq(q.get(last)["state"], "running", "the job held behind is not given back yet")
        # Within about a second the job held behind the long one goes back, attempt
        # not counted; a second worker runs it while the long job is still running.
        b = worker(ctx, SPOOL_WORKER_ID="helper")
        job = q.wait_state(last, "succeeded", 5)
        eq((job["worker"], job["attempts"]), ("helper", 1), "the job ran once, on the free worker")
        eq(q.get(long_)["state"], "running", "the long job is still running")
        q.wait_state(long_, "succeeded", 10)
        eq(q.get(first)["state"], "succeeded", "first job")
    finally:
        a.stop()
        if b:
            b.stop()


@suite.test
def test_worker_survives_redis_outage(ctx):
    r = Redis(aof=True)
    q = Queue(r)
    w = worker({"redis": r, "data": ctx["data"]})
    try:
        wait_until(lambda: q.workers(), 5, what="worker registered")
        r.stop()
        wait_until(lambda: "Redis unavailable" in w.output(), 10, what="outage reported")
        assert w.alive(), "the worker keeps running"
        r.start()
        jid = q.enqueue("test", "test.noop", {})
        q.wait_state(jid, "succeeded", 20)
        # Its maintenance resumes too: a retry is promoted when due.
        jid = q.enqueue("test", "test.noop", {"fail": "retry"}, max_attempts=2)
        job = q.wait_state(jid, "failed", 20)
        eq(job["attempts"], 2, "the retry ran")
    finally:
        w.stop()
        r.destroy()


@suite.test
def test_a_renewal_answered_after_its_job_ended_does_not_stop_the_next_job(ctx):
    # Short jobs one after the other with frequent renewals: a renewal sent for one job
    # is often answered after the slot has started the next. Its answer (the lease is
    # gone: the job ended) must not stop that next job, which would then be lost for a
    # lease and run a second time.
    q = ctx["q"]
    ids = [q.enqueue("test", "test.noop", {"sleep_ms": i % 3}) for i in range(400)]
    w = worker(ctx, SPOOL_RENEW_INTERVAL="50ms", SPOOL_PREFETCH="0", SPOOL_LEASE="5s")
    try:
        for jid in ids:
            job = q.wait_state(jid, ("succeeded", "failed"), 60)
            eq((job["state"], job["attempts"]), ("succeeded", 1), f"job {jid}")
        log = w.output()
    finally:
        eq(w.stop(), 0, "exit status")
    assert "lease lost" not in log, log[-3000:]


if __name__ == "__main__":
    raise SystemExit(suite.run(setup, teardown))

#!/usr/bin/env python3
"""A Redis that answers but cannot serve: loading its AOF, busy running a script,
refusing our password. The API answers 503 with Retry-After and a JSON body that says
why (never 500), logs the cause once and then sparingly, and /readyz names it; workers
wait and retry instead of failing jobs, and both carry on once Redis can serve."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proc, Queue, Redis, Suite, TEST_BIN, eq, wait_until  # noqa: E402
from test_api import ApiServer  # noqa: E402

suite = Suite("redis_faults")
WORKER = os.path.join(TEST_BIN, "spool-test-worker")
EXPORT = {"title": "t", "columns": [{"key": "a"}], "rows": [{"a": 1}]}
# Redis reads its AOF slowly enough to be caught at it: 20,000 keys at 100 us each, and
# it answers clients (LOADING) every KiB read. About 2-4 s here.
SLOW_LOAD = ["--key-load-delay", "100", "--loading-process-events-interval-bytes", "1024"]


def fill(redis, n=20000):
    """Give redis n filler keys and rewrite its AOF, so a restart loads them."""
    redis.cli("EVAL", f"for i = 1, {n} do redis.call('SET', 'filler:' .. i, i) end", 0)
    redis.cli("BGREWRITEAOF")
    wait_until(lambda: "aof_rewrite_in_progress:0" in redis.cli("INFO", "persistence") and
               "aof_rewrite_scheduled:0" in redis.cli("INFO", "persistence"), 20,
               what="the AOF rewrite")


def loading(redis):
    return redis.cli("PING").startswith("LOADING")


def worker(redis, data, **env):
    e = {"SPOOL_REDIS_URL": redis.url, "SPOOL_DATA_DIR": data, "SPOOL_QUEUES": "test",
         "SPOOL_LOG_FORMAT": "text", "SPOOL_RENEW_INTERVAL": "200ms",
         "SPOOL_MAINTAIN_INTERVAL": "100ms"}
    e.update({k: str(v) for k, v in env.items()})
    return Proc([WORKER], env=e, name="test-worker", logdir=suite.tmp)


def fresh(call, tries=6):
    """call() until its answer is not about a connection Redis closed when it restarted
    (each API thread finds its own out once); every answer must be 503."""
    for _ in range(tries):
        r = call()
        eq(r.status, 503, r.body)
        if "closed the connection" not in r.json()["error"]["message"]:
            return r
    return r


def assert_503(r, code, cause):
    eq(r.status, 503, r.body)
    assert int(r.headers["retry-after"]) > 0, r.headers
    err = r.json()["error"]
    eq(err["code"], code, "error code")
    assert cause in err["message"], err


@suite.test
def test_requests_while_redis_loads_its_aof_are_503_then_work():
    redis = Redis(aof=True)
    api = ApiServer(suite, redis, name="loading")
    try:
        fill(redis)
        job = api.http.post("/v1/exports", EXPORT)
        eq(job.status, 202, job.body)
        jid = job.json()["id"]
        redis.stop()
        redis.start(SLOW_LOAD, ready=False)
        assert loading(redis), redis.cli("PING")
        calls = [lambda: api.http.post("/v1/exports", EXPORT),
                 lambda: api.http.post("/v1/exports", EXPORT, headers={"Idempotency-Key": "k"}),
                 lambda: api.http.post("/v1/exports?title=t", b"a\n1\n",
                                       headers={"Content-Type": "text/csv"}),
                 lambda: api.http.get(f"/v1/jobs/{jid}"),
                 lambda: api.http.get("/v1/jobs?limit=5"),
                 lambda: api.http.get("/v1/queues"),
                 lambda: api.http.delete(f"/v1/jobs/{jid}"),
                 lambda: api.http.post(f"/v1/jobs/{jid}/retry")]
        answers = [fresh(c) for c in calls]
        ready = fresh(lambda: api.http.get("/readyz"))
        assert loading(redis), "Redis finished loading before the requests were answered"
        for r in answers:
            assert_503(r, "redis_unavailable", "loading its data set")
        assert_503(ready, "not_ready", "loading its data set")
        wait_until(lambda: api.http.get("/readyz").status == 200, 30, what="ready again")
        eq(api.http.post("/v1/exports", EXPORT).status, 202, "a submit after loading")
        eq(api.http.get(f"/v1/jobs/{jid}").json()["state"], "queued", "the earlier job")
        assert "ready again" in api.proc.output()
    finally:
        eq(api.stop(), 0, "exit status")
        redis.destroy()


@suite.test
def test_requests_while_a_script_keeps_redis_busy_are_503():
    redis = Redis()
    api = ApiServer(suite, redis, name="busy")
    try:
        eq(api.http.post("/v1/exports", EXPORT).status, 202)
        redis.cli("CONFIG", "SET", "busy-reply-threshold", "50")
        spin = ("local t = redis.call('TIME') local stop = t[1] + 3 "
                "while tonumber(redis.call('TIME')[1]) < stop do end return 1")
        busy = threading.Thread(target=redis.cli, args=("EVAL", spin, 0))
        busy.start()
        wait_until(lambda: redis.cli("PING").startswith("BUSY"), 5, what="Redis busy")
        r = api.http.post("/v1/exports", EXPORT)
        assert_503(r, "redis_unavailable", "busy running a script")
        busy.join()
        eq(api.http.post("/v1/exports", EXPORT).status, 202, "a submit afterwards")
    finally:
        eq(api.stop(), 0, "exit status")
        redis.destroy()


@suite.test
def test_a_running_job_finishing_while_redis_loads_is_recorded_once_it_is_back():
    redis = Redis(aof=True)
    q = Queue(redis)
    w = worker(redis, os.path.join(suite.tmp, "data-w"))
    try:
        fill(redis)
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 1500})
        q.wait_state(jid, "running", 10)
        redis.stop()
        redis.start(SLOW_LOAD, ready=False)
        # The job ends while Redis loads: its finish waits and is retried, not dropped.
        wait_until(lambda: "cannot record the outcome yet" in w.output(), 10,
                   what="the finish waiting for Redis")
        assert loading(redis), "Redis finished loading before the finish was tried"
        wait_until(lambda: not loading(redis), 30, what="Redis loaded")
        job = q.wait_state(jid, ("succeeded", "failed"), 15)
        eq((job["state"], job["attempts"]), ("succeeded", 1), "recorded once, not redone")
        assert "could not record the outcome" not in w.output(), w.output()
        later = q.enqueue("test", "test.noop", {})
        q.wait_state(later, "succeeded", 10)
        assert w.alive()
    finally:
        w.stop()
        redis.destroy()


@suite.test
def test_a_wrong_redis_password_is_logged_named_by_readyz_and_503():
    redis = Redis(password="right-one")
    wrong = f"redis://:wrong-one@127.0.0.1:{redis.port}/0"
    api = ApiServer(suite, redis, {"SPOOL_REDIS_URL": wrong}, name="wrongpass")
    w = worker(redis, os.path.join(suite.tmp, "data-wp"), SPOOL_REDIS_URL=wrong)
    try:
        # Said at start, before any request.
        wait_until(lambda: "cannot use Redis" in api.proc.output(), 5, what="the API's log")
        assert "authentication failed" in api.proc.output(), api.proc.output()
        r = api.http.get("/readyz")
        assert_503(r, "not_ready", "authentication failed")
        for _ in range(20):
            assert_503(api.http.post("/v1/exports", EXPORT), "redis_unavailable",
                       "authentication failed")
        for _ in range(5):
            assert_503(api.http.get("/readyz"), "not_ready", "authentication failed")
        out = api.proc.output()
        eq(len(re.findall(r"503 redis_unavailable", out)), 1, "lines for 20 refused submits")
        eq(len(re.findall(r"503 not_ready", out)), 1, "lines for 6 readiness probes")
        # The worker says so too, and keeps trying.
        wait_until(lambda: "authentication failed" in w.output(), 5, what="the worker's log")
        q = Queue(redis)
        jid = q.enqueue("test", "test.noop", {})
        time.sleep(1)
        assert w.alive(), w.output()
        eq(q.get(jid)["state"], "queued", "no job taken with a wrong password")
        # The operator fixes the password (here: on the server): both carry on.
        redis.cli("CONFIG", "SET", "requirepass", "wrong-one")
        redis.password = "wrong-one"
        q.wait_state(jid, "succeeded", 15)
        wait_until(lambda: api.http.get("/readyz").status == 200, 10, what="ready again")
        eq(api.http.post("/v1/exports", EXPORT).status, 202, "a submit with Redis usable")
    finally:
        w.stop()
        eq(api.stop(), 0, "exit status")
        redis.destroy()


@suite.test
def test_a_worker_told_to_stop_while_redis_is_away_exits_at_the_end_of_its_grace():
    """The job ends while Redis is down and the worker gets SIGTERM: it tries to record
    the outcome until its grace period is over, then exits (it used to try for two
    minutes); the job is not lost: its lease runs out and it runs again."""
    redis = Redis(aof=True)
    q = Queue(redis)
    w = worker(redis, os.path.join(suite.tmp, "data-grace"), SPOOL_GRACE="2s", SPOOL_LEASE="3s")
    again = None
    try:
        jid = q.enqueue("test", "test.noop", {"sleep_ms": 1000})
        q.wait_state(jid, "running", 10)
        redis.stop()
        wait_until(lambda: "cannot record the outcome yet" in w.output(), 10,
                   what="the finish waiting for Redis")
        w.signal(signal.SIGTERM)
        t0 = time.monotonic()
        wait_until(lambda: not w.alive(), 10, 0.05, what="the worker to exit:\n" + w.output()[-3000:])
        took = time.monotonic() - t0
        assert took < 5, f"exited {took:.1f} s after SIGTERM with a 2 s grace"
        assert "grace period over with Redis away" in w.output(), w.output()[-2000:]
        redis.start()
        again = worker(redis, os.path.join(suite.tmp, "data-grace-2"))
        job = q.wait_state(jid, "succeeded", 20)
        eq(job["attempts"], 2, "attempts: the first one's outcome was never recorded")
    finally:
        for p in (w, again):
            if p:
                p.stop()
        redis.destroy()


class Cutter:
    """A TCP proxy in front of a Redis that, the first time a client sends bytes holding
    marker, passes them on, lets Redis run them, then closes that connection without
    passing the answer back and refuses every connection for down seconds: a master
    that died after running a command, before its answer left (as in a failover)."""

    def __init__(self, port, marker, down=3.0):
        self.port, self.marker, self.down = port, marker, down
        self.cut_at = None
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        threading.Thread(target=self._accept, daemon=True).start()

    def _is_down(self):
        with self.lock:
            return self.cut_at is not None and time.monotonic() < self.cut_at + self.down

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self._is_down():
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            except OSError:
                c.close()
                continue
            threading.Thread(target=self._pipe, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, False), daemon=True).start()

    def _pipe(self, src, dst, upstream):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if self._is_down():
                    break  # nothing passes while down, answers included
                cut = False
                if upstream and self.marker in data:
                    with self.lock:
                        cut = self.cut_at is None
                        if cut:
                            self.cut_at = time.monotonic()
                dst.sendall(data)
                if cut:
                    time.sleep(0.2)  # Redis runs it; its answer is never passed on
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.sock.close()


@suite.test
def test_a_submit_whose_answer_redis_never_sent_keeps_its_upload_for_the_retry():
    """The enqueue ran, the answer was lost and no Redis answered the check after it: the
    API cannot know whether the job exists, answers 503, and must keep the uploaded
    dataset, because the job does exist and the retry with the same Idempotency-Key
    gets it. (It used to remove the upload, and the job failed: input_missing.)"""
    redis = Redis()
    cutter = Cutter(redis.port, b"lost-answer-title")
    api = ApiServer(suite, types.SimpleNamespace(url=cutter.url), name="cut")
    try:
        csv = b"a,b\n" + b"".join(b"%d,row %d\n" % (i, i) for i in range(1000))
        headers = {"Content-Type": "text/csv", "Idempotency-Key": "lost-answer-key"}
        r = api.http.post("/v1/exports?title=lost-answer-title", csv, headers=headers)
        assert cutter.cut_at is not None, f"the enqueue never passed the proxy: {r.status} {r.body[:300]}"
        assert r.status == 503, f"{r.status} {r.headers}\n{api.proc.output()[-3000:]}"
        assert_503(r, "redis_unavailable", "")
        recorded = redis.cli("ZRANGE", "spool:jobs", 0, -1).split()
        eq(len(recorded), 1, "jobs Redis recorded")
        jid = recorded[0]
        wait_until(lambda: not cutter._is_down(), 10, what="the proxy to pass again")
        again = wait_until(lambda: (lambda x: x if x.status == 202 else None)(
            api.http.post("/v1/exports?title=lost-answer-title", csv, headers=headers)), 15, 0.2,
            what="the retry accepted")
        eq(again.json()["id"], jid, "the retry's job")
        eq(again.headers.get("idempotent-replayed"), "true", "a replayed answer")
        d = os.path.join(api.data, "jobs", jid[-2:], jid)
        files = os.listdir(d) if os.path.isdir(d) else []
        assert files, f"the job's uploaded dataset is gone ({d}: {files})"
        eq(os.path.getsize(os.path.join(d, files[0])), len(csv), f"{files[0]}'s size")
    finally:
        eq(api.stop(), 0, "exit status")
        cutter.close()
        redis.destroy()


if __name__ == "__main__":
    raise SystemExit(suite.run())

#!/usr/bin/env python3
"""A Redis that answers but cannot serve: loading its AOF, busy running a script,
refusing our password. The API answers 503 with Retry-After and a JSON body that says
why (never 500), logs the cause once and then sparingly, and /readyz names it; workers
wait and retry instead of failing jobs, and both carry on once Redis can serve."""
import json
import os
import re
import subprocess
import sys
import threading
import time

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


if __name__ == "__main__":
    raise SystemExit(suite.run())

#!/usr/bin/env python3
"""The JSON routes behind the dashboard, over HTTP against a real Redis and real
workers: GET /v1/workers (a real spool-pdf), a queue's dead-letter set (list a page,
retry and purge given ids or all, every refusal), the sampled queue history (throughput
from the counters, no per-job Redis work), /v1/jobs ?queue= and its pages, and the
/ui files with their security headers, auth and cache validators.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Http, Proc, Redis, Suite, eq, wait_until  # noqa: E402
from test_api import ApiServer, Worker  # noqa: E402

suite = Suite("dashboard_api")
CSP_MUST = ["script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
            "default-src 'none'"]


class Ctx:
    pass


def setup():
    c = Ctx()
    c.redis = Redis()
    c.redis.start()
    c.api = ApiServer(suite, c.redis, env={"SPOOL_HISTORY_INTERVAL": "1s"})
    c.http = c.api.http
    c.tok = ApiServer(suite, c.redis, env={"SPOOL_API_TOKENS": "s3cret,other"},
                      name="spool-api-tokens", blobs=c.api.blobs)
    return c


def teardown(c):
    c.tok.stop()
    c.api.stop()
    c.redis.destroy()


def submit_video(c, n=1):
    """n video jobs (no video worker runs here, so they wait): their ids."""
    ids = []
    for _ in range(n):
        r = c.http.post("/v1/videos", {"source_url": "http://example.com/v.mp4"})
        assert r.status == 202, r.body
        ids.append(r.json()["id"])
    return ids


def failed_jobs(c, n):
    """n video jobs taken by api-test-worker and failed for good: their ids, the latest
    failure last."""
    w = Worker(c.api, queues="video")  # (it empties the ready lists first)
    ids = submit_video(c, n)
    try:
        got = []
        for _ in range(n):
            got.append(w.take())
            eq(w.cmd("fail broken_input the input is broken"), "ok failed", "fail")
            time.sleep(0.003)  # failures of one millisecond have no order
        assert sorted(got) == sorted(ids), (got, ids)
        return got
    finally:
        w.close()


def err(r, status, code):
    eq(r.status, status, f"status ({r.body[:300]!r})")
    eq(r.json()["error"]["code"], code, "error code")


@suite.test
def test_dead_list_pages_the_set_latest_failure_first(c):
    c.redis.cli("DEL", "spool:q:video:dead")
    ids = failed_jobs(c, 3)
    r = c.http.get("/v1/queues/video/dead")
    eq(r.status, 200)
    d = r.json()
    eq(d["total"], 3, "total")
    eq([j["id"] for j in d["jobs"]], ids[::-1], "latest failure first")
    eq(d["jobs"][0]["error"]["code"], "broken_input", "error shown")
    r = c.http.get("/v1/queues/video/dead?offset=1&limit=1").json()
    eq([j["id"] for j in r["jobs"]], [ids[1]], "offset 1 limit 1")
    eq(c.http.get("/v1/queues/video/dead?offset=3").json()["jobs"], [], "past the end")
    eq(c.http.get("/v1/queues/nosuch/dead").json(), {"queue": "nosuch", "total": 0, "offset": 0,
                                                      "jobs": []}, "a queue never seen")
    eq(c.http.get("/v1/queues/video/dead?limit=500").status, 200, "limit 500")
    for q in ("limit=0", "limit=501", "offset=-1", "offset=x", "bogus=1"):
        err(c.http.get("/v1/queues/video/dead?" + q), 422, "invalid_field")
    err(c.http.get("/v1/queues/" + "q" * 65 + "/dead"), 404, "not_found")
    err(c.http.get("/v1/queues/bad%20name/dead"), 404, "not_found")
    err(c.http.get("/v1/queues/video/dead/x"), 404, "no_such_route")
    err(c.http.delete("/v1/queues/video/dead"), 405, "method_not_allowed")


@suite.test
def test_dead_retry_given_ids_requeues_only_dead_ones(c):
    c.redis.cli("DEL", "spool:q:video:dead")
    ids = failed_jobs(c, 2)
    other = submit_video(c)[0]  # queued, not dead
    body = {"ids": [ids[0], other, "0" * 36]}
    r = c.http.post("/v1/queues/video/dead/retry", body)
    eq(r.status, 200, r.body)
    d = r.json()
    eq((d["retried"], d["remaining"]), (1, 1), "retried, remaining")
    eq(sorted(d["not_found"]), sorted([other, "0" * 36]), "not in the dead set")
    eq(c.http.get(f"/v1/jobs/{ids[0]}").json()["state"], "queued", "retried job")
    eq(c.http.get(f"/v1/jobs/{ids[0]}").json()["attempts"], 0, "fresh attempts")
    # the same id again: no longer dead
    eq(c.http.post("/v1/queues/video/dead/retry", {"ids": [ids[0]]}).json()["retried"], 0)
    # a dead job of video is not in pdf's set
    eq(c.http.post("/v1/queues/pdf/dead/retry", {"ids": [ids[1]]}).json()["not_found"], [ids[1]])
    eq(c.http.get(f"/v1/jobs/{ids[1]}").json()["state"], "failed", "untouched")


@suite.test
def test_dead_purge_all_empties_the_set_and_deletes_records(c):
    c.redis.cli("DEL", "spool:q:video:dead")
    ids = failed_jobs(c, 3)
    r = c.http.post("/v1/queues/video/dead/purge", {"all": True})
    eq(r.status, 200, r.body)
    eq((r.json()["purged"], r.json()["remaining"]), (3, 0), "purged all")
    for i in ids:
        eq(c.http.get(f"/v1/jobs/{i}").status, 404, "purged record")
    listed = [j["id"] for j in c.http.get("/v1/jobs?queue=video&limit=1000").json()["jobs"]]
    assert not set(ids) & set(listed), "purged jobs still listed"
    eq(c.http.get("/v1/queues/video/dead").json()["total"], 0)


@suite.test
def test_dead_retry_all_requeues_every_dead_job(c):
    c.redis.cli("DEL", "spool:q:video:dead")
    ids = failed_jobs(c, 3)
    d = c.http.post("/v1/queues/video/dead/retry", {"all": True}).json()
    eq((d["retried"], d["remaining"], d["not_found"], d["not_failed"]), (3, 0, [], []))
    for i in ids:
        eq(c.http.get(f"/v1/jobs/{i}").json()["state"], "queued")
    eq(c.http.post("/v1/queues/video/dead/retry", {"all": True}).json()["retried"], 0, "empty set")


@suite.test
def test_dead_actions_refuse_bad_bodies(c):
    p = "/v1/queues/video/dead/purge"
    good = "0" * 36
    err(c.http.post(p, {"ids": [good] * 1001}), 422, "invalid_field")
    eq(c.http.post(p, {"ids": [good] * 1000}).status, 200, "1000 ids")
    eq(c.http.post(p, {"ids": [good]}).json()["not_found"], [good], "1 id")
    for body in ({}, {"ids": []}, {"ids": ["nope"]}, {"ids": [good], "all": True},
                 {"all": False}, {"all": 1}, {"ids": good}, {"ids": [good], "x": 1}, {"ids": [7]}):
        err(c.http.post(p, body), 422, "invalid_field")
    err(c.http.post(p, b"[]", headers={"Content-Type": "application/json"}), 400, "invalid_json")
    err(c.http.post(p, b"{", headers={"Content-Type": "application/json"}), 400, "invalid_json")
    err(c.http.post(p, b"", headers={"Content-Type": "application/json"}), 400, "invalid_json")
    err(c.http.post(p, b'{"all":true}', headers={"Content-Type": "text/plain"}), 415,
        "unsupported_media_type")
    err(c.http.post(p, b'{"all":true}'), 415, "unsupported_media_type")
    err(c.http.post(p + "?x=1", {"all": True}), 422, "invalid_field")
    big = b'{"ids":["' + b"a" * 70000 + b'"]}'
    r = c.http.post(p, big, headers={"Content-Type": "application/json"})
    eq(r.status, 413, "body past 64 KiB")


@suite.test
def test_jobs_list_filters_by_queue_and_pages(c):
    mine = []
    for _ in range(5):  # one a millisecond at least: jobs of one millisecond have no order
        mine += submit_video(c)
        time.sleep(0.003)
    r = c.http.get("/v1/jobs?queue=video&limit=2")
    eq(r.status, 200)
    p1 = r.json()
    eq([j["id"] for j in p1["jobs"]], mine[::-1][:2], "newest first")
    eq(p1["next"], mine[3], "cursor: the last job of the page")
    p2 = c.http.get(f"/v1/jobs?queue=video&limit=2&before={p1['next']}").json()
    eq([j["id"] for j in p2["jobs"]], mine[::-1][2:4], "second page")
    assert all(j["queue"] == "video" for j in p2["jobs"])
    p3 = c.http.get(f"/v1/jobs?queue=video&limit=1&before={p2['next']}").json()
    eq([j["id"] for j in p3["jobs"]], [mine[0]], "third page")
    eq(c.http.get("/v1/jobs?queue=pdf&state=succeeded&limit=5&type=pdf.export").status, 200)
    assert all(j["queue"] == "pdf" for j in c.http.get("/v1/jobs?queue=pdf").json()["jobs"])
    # the last page has no cursor
    everything = c.http.get("/v1/jobs?limit=1000").json()
    eq(everything["next"], None, "no more pages")
    last = everything["jobs"][-1]["id"]
    eq(c.http.get(f"/v1/jobs?before={last}").json(), {"jobs": [], "next": None}, "after the last")
    for q in ("queue=bad%20q", "queue=", "before=nope", "before=", "limit=1001", "limit=0"):
        err(c.http.get("/v1/jobs?" + q), 422, "invalid_field")
    err(c.http.get("/v1/jobs?before=" + "0" * 36), 422, "invalid_field")  # not listed


@suite.test
def test_history_samples_throughput_from_the_counters(c):
    w = Worker(c.api, queues="video")
    ids = submit_video(c, 2)
    try:
        # let a base sample in, then finish the two jobs, one well and one badly
        time.sleep(1.5)
        w.take()
        eq(w.cmd("succeed"), "ok succeeded")
        w.take()
        eq(w.cmd("fail broken_input bad"), "ok failed")
    finally:
        w.close()
    assert ids

    def counted():
        h = c.http.get("/v1/queues/video/history").json()
        s = h["samples"]
        return (h if sum(x["succeeded"] for x in s) >= 1 and sum(x["failed"] for x in s) >= 1
                else None)
    h = wait_until(counted, 10, 0.2, what="history to count the jobs")
    eq((h["queue"], h["interval_ms"], h["window_ms"]), ("video", 1000, 1800000))
    s = h["samples"][-1]
    assert set(s) == {"at", "ready", "running", "delayed", "dead", "enqueued", "succeeded",
                      "failed", "retried", "cancelled"}, s
    assert s["at"].endswith("Z"), s
    eq(c.http.get("/v1/queues/never/history").json()["samples"], [], "a queue never sampled")
    err(c.http.get("/v1/queues/video/history?x=1"), 422, "invalid_field")


@suite.test
def test_workers_lists_a_real_worker(c):
    pdf = Proc([os.path.join(BIN, "spool-pdf")], env={
        "SPOOL_REDIS_URL": c.redis.url, **c.api.blobs.env(), "SPOOL_CONCURRENCY": "2",
        "SPOOL_LOG_LEVEL": "info"}, name="spool-pdf", logdir=suite.tmp)
    try:
        def listed():
            ws = c.http.get("/v1/workers").json()["workers"]
            return [w for w in ws if w["kind"] == "pdf"] or None
        w = wait_until(listed, 15, 0.1, what="spool-pdf to show in /v1/workers")[0]
        eq((w["queues"], w["concurrency"]), (["pdf"], 2), "queues, concurrency")
        assert w["host"] and w["last_seen"].endswith("Z") and isinstance(w["jobs"], list), w
        eq(w["current"], [j["id"] for j in w["jobs"]], "current jobs are described")
        err(c.http.get("/v1/workers?x=1"), 422, "invalid_field")
        err(c.http.post("/v1/workers"), 405, "method_not_allowed")
    finally:
        pdf.stop()


@suite.test
def test_ui_files_carry_security_headers_and_no_token_is_needed(c):
    h = Http("127.0.0.1", c.tok.port)
    for path, ctype in (("/ui", "text/html"), ("/ui/", "text/html"),
                        ("/ui/jobs/0123", "text/html"), ("/ui/queues/video", "text/html"),
                        ("/ui/dead/video", "text/html"), ("/ui/workers", "text/html"),
                        ("/ui/assets/app.js", "text/javascript"),
                        ("/ui/assets/app.css", "text/css"),
                        ("/ui/assets/chart.min.js", "text/javascript")):
        r = h.get(path)
        eq(r.status, 200, path)
        assert r.headers["content-type"].startswith(ctype), (path, r.headers)
        csp = r.headers.get("content-security-policy", "")
        for part in CSP_MUST:
            assert part in csp, (path, csp)
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
        eq(r.headers.get("x-content-type-options"), "nosniff", path)
        eq(r.headers.get("x-frame-options"), "DENY", path)
        eq(r.headers.get("cache-control"), "no-cache", path)
        etag = r.headers["etag"]
        r2 = h.get(path, headers={"If-None-Match": etag})
        eq((r2.status, r2.body), (304, b""), path + " revalidated")
        eq(r2.headers.get("x-frame-options"), "DENY", path + " 304")
    page = h.get("/ui").body.decode()
    assert "<script>" not in page.replace(" ", "") and " style=" not in page, "inline code"
    # errors under /ui carry the headers too; /v1 data routes need the token
    for path in ("/ui/nope", "/ui/assets/nope.js", "/ui/assets/..%2fx", "/ui/assets/index.html"):
        r = h.get(path)
        eq(r.status, 404, path)
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), path
    err(h.post("/ui"), 405, "method_not_allowed")
    for path in ("/v1/workers", "/v1/queues/video/dead", "/v1/queues/video/history"):
        err(h.get(path), 401, "unauthorized")
        eq(h.get(path, headers={"Authorization": "Bearer other"}).status, 200, path)
    assert "content-security-policy" not in h.get("/healthz").headers


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

#!/usr/bin/env python3
"""Live events over Server-Sent Events: GET /v1/events (?queue=, ?type=) and GET
/v1/jobs/{id}/events on a real spool-api and redis-server. Events are written to the
stream as EVENTS.md says (XADD <prefix>events ... job "<state> <progress> <queue>
<type>"), the way the job scripts write them.

Covered: headers and the retry hint; fan-out with ids and JSON; filters and their
validation (422); Last-Event-ID resuming inside an entry and across a long catch-up
while events keep coming (no gap, no repeat); a trimmed history (gap); heartbeats; the
per-job stream (current state first, ends after a terminal state, 204 when it ended
before, 404); auth (401); the stream limit (503) and the per-address limit; a client
that never reads (dropped, RSS bounded); clients that go away (freed); 500 streams on
one process under 64 MiB; SIGTERM with streams open; spoolctl watch (lines, --json,
the end of a job, reconnecting with Last-Event-ID across an API restart).
"""
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SANITIZED, Queue, Redis, Suite, eq, free_port, wait_until  # noqa: E402
from sse_client import RedisPipe, Sse, SseParser, request_bytes, split_head, vm_rss_kib  # noqa: E402
from test_api import ApiServer  # noqa: E402

suite = Suite("sse")
KEY = "spool:events"
B32 = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id():
    return random.choice("01") + "".join(random.choice(B32) for _ in range(35))


def setup():
    redis = Redis()
    api = ApiServer(suite, redis, {"SPOOL_SSE_HEARTBEAT": "300ms"})
    return {"redis": redis, "api": api, "pipe": RedisPipe(redis.port)}


def teardown(ctx):
    ctx["pipe"].close()
    eq(ctx["api"].stop(), 0, "spool-api exit code after SIGTERM")


def open_stream(api, path="/v1/events", headers=None, token=None, rcvbuf=None):
    return Sse(api.port, path, headers=headers, token=token, rcvbuf=rcvbuf).read_head()


def metric(api, name):
    m = re.search(rf"^{name} (\d+)$", api.http.get("/metrics").body.decode(), re.M)
    return int(m.group(1)) if m else None


def ids(events):
    return [e["id"] for e in events]


def live(s, pipe):
    """Wait until stream s is live: a heartbeat came after its start."""
    s.wait(lambda x: any("ping" in e["comments"] for e in x.events), 5, "a heartbeat")


# ---- the stream itself ---------------------------------------------------------------------

@suite.test
def test_headers_retry_hint_and_heartbeats(ctx):
    s = open_stream(ctx["api"])
    eq(s.status, 200, "status")
    eq(s.headers.get("content-type"), "text/event-stream", "Content-Type")
    eq(s.headers.get("cache-control"), "no-cache", "Cache-Control")
    eq(s.headers.get("x-accel-buffering"), "no", "X-Accel-Buffering")
    s.wait(lambda x: len(x.events) >= 1, 5, "the retry hint")
    eq(s.events[0]["retry"], "3000", "the first block is the retry hint")
    t0 = time.monotonic()
    s.wait(lambda x: sum("ping" in e["comments"] for e in x.events) >= 3, 5, "3 heartbeats")
    took = time.monotonic() - t0
    assert 0.4 < took < 3, f"3 heartbeats at 300 ms took {took:.2f}s"
    eq(s.job_events(), [], "no job events on an idle stream")
    s.close()


@suite.test
def test_events_fan_out_with_ids_and_json(ctx):
    api, pipe = ctx["api"], ctx["pipe"]
    every = open_stream(api)
    pdfs = open_stream(api, "/v1/events?queue=pdf")
    videos = open_stream(api, "/v1/events?type=video.transcode")
    both = open_stream(api, "/v1/events?queue=pdf&type=pdf.export")
    for s in (every, pdfs, videos, both):
        live(s, pipe)
    a, b = new_id(), new_id()
    e = pipe.xadd(KEY, [(a, "running", 40, "video", "video.transcode"),
                        (b, "succeeded", 100, "pdf", "pdf.export")])
    every.wait(lambda x: len(x.job_events()) >= 2, 5, "two events")
    ms = int(e.split("-")[0])
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    eq([ev["data"] for ev in every.job_events()],
       [{"id": f"{e}/0", "job_id": a, "state": "running", "progress": 40, "queue": "video",
         "type": "video.transcode", "at": at},
        {"id": f"{e}/1", "job_id": b, "state": "succeeded", "progress": 100, "queue": "pdf",
         "type": "pdf.export", "at": at}], "events")
    eq(ids(every.job_events()), [f"{e}/0", f"{e}/1"], "id: lines")
    for s, want in ((pdfs, [f"{e}/1"]), (videos, [f"{e}/0"]), (both, [f"{e}/1"])):
        s.wait(lambda x: len(x.job_events()) >= 1, 5, "a filtered event")
        time.sleep(0.2)
        s.wait(lambda x: True)
        eq(ids(s.job_events()), want, "filtered stream")
    # pairs that are not events (a malformed writer) are skipped, the rest delivered
    e2 = pipe.xadd(KEY, [(a, "bogus", 1, "video", "video.transcode"),
                         (b, "running", 7, "pdf", "pdf.export")])
    every.wait(lambda x: len(x.job_events()) >= 3, 5, "the good pair")
    eq(every.job_events()[2]["id"], f"{e2}/1", "the malformed pair is skipped")
    for s in (every, pdfs, videos, both):
        s.close()


@suite.test
def test_bad_parameters_and_headers_get_422(ctx):
    api = ctx["api"]
    q64, q65 = "q" * 64, "q" * 65
    t64, t65 = "t" * 64, "t" * 65
    for path, field in (("/v1/events?queue=bad%20q", "queue"), ("/v1/events?queue=", "queue"),
                        (f"/v1/events?queue={q65}", "queue"), ("/v1/events?type=Video", "type"),
                        (f"/v1/events?type={t65}", "type"), ("/v1/events?type=", "type"),
                        ("/v1/events?queue=a/b", "queue"), ("/v1/events?state=queued", "state"),
                        (f"/v1/jobs/{new_id()}/events?queue=video", "queue")):
        s = open_stream(api, path)
        eq(s.status, 422 if "/jobs/" not in path else s.status, path)
        if "/jobs/" in path:
            continue  # an unknown job: checked below
        eq(s.json["error"]["code"], "invalid_field", path)
        eq(s.json["error"]["field"], field, path)
        s.close()
    for path in (f"/v1/events?queue={q64}", f"/v1/events?type={t64}",
                 "/v1/events?queue=A.b_c-9&type=x.y-z_0"):
        s = open_stream(api, path)
        eq(s.status, 200, path)
        s.close()
    for bad in ("x", "1-", "-1", "1-0/", "1-0/x", "1-0/100001", "99999999999999999999999-0",
                "1-0 /1", "1-0;rm"):
        s = open_stream(api, headers={"Last-Event-ID": bad})
        eq(s.status, 422, f"Last-Event-ID {bad!r}")
        eq(s.json["error"]["field"], "Last-Event-ID", bad)
        s.close()
    s = open_stream(api, headers={"Last-Event-ID": ""})  # what a client sends with no id yet
    eq(s.status, 200, "an empty Last-Event-ID")
    s.close()
    r = api.http.request("POST", "/v1/events", b"")
    eq(r.status, 405, "POST /v1/events")
    eq(r.json()["error"]["code"], "method_not_allowed", "405 code")


# ---- resuming ------------------------------------------------------------------------------

@suite.test
def test_last_event_id_resumes_inside_an_entry_without_gaps(ctx):
    api, pipe = ctx["api"], ctx["pipe"]
    a, b, c = new_id(), new_id(), new_id()
    e1 = pipe.xadd(KEY, [(a, "running", 1, "video", "video.transcode"),
                         (b, "running", 2, "video", "video.transcode"),
                         (c, "running", 3, "pdf", "pdf.export")])
    e2 = pipe.xadd(KEY, [(a, "running", 4, "video", "video.transcode")])
    s = open_stream(api, headers={"Last-Event-ID": f"{e1}/0"})
    s.wait(lambda x: len(x.job_events()) >= 3, 5, "the catch-up")
    eq(ids(s.job_events()), [f"{e1}/1", f"{e1}/2", f"{e2}/0"], "caught up after e1/0")
    e3 = pipe.xadd(KEY, [(b, "succeeded", 100, "video", "video.transcode")])
    s.wait(lambda x: len(x.job_events()) >= 4, 5, "the live event")
    eq(ids(s.job_events())[3:], [f"{e3}/0"], "then live, nothing repeated")
    s.close()
    # a whole entry as the id; and a filter applies to the catch-up as well
    s = open_stream(api, "/v1/events?queue=video", headers={"Last-Event-ID": e1})
    s.wait(lambda x: len(x.job_events()) >= 2, 5, "the catch-up")
    time.sleep(0.3)
    s.wait(lambda x: True)
    eq(ids(s.job_events()), [f"{e2}/0", f"{e3}/0"], "after the whole of e1, video only")
    s.close()


@suite.test
def test_long_catch_up_while_events_keep_coming(ctx):
    """A client resumes 3000 entries back while a writer adds more: it gets every event
    exactly once, in order, across the hand-over from XRANGE to the live fan-out."""
    api, redis = ctx["api"], ctx["redis"]
    pipe = RedisPipe(redis.port)
    job = new_id()
    start = pipe.xadd(KEY, [(job, "queued", 0, "video", "video.transcode")])
    written = []
    for i in range(0, 3000, 500):
        replies = pipe.run([["XADD", KEY, "*", job, f"running {k % 101} video video.transcode",
                             new_id(), "queued 0 pdf pdf.export"] for k in range(i, i + 500)])
        written += replies
    stop = threading.Event()

    def writer():
        p = RedisPipe(redis.port)
        while not stop.is_set():
            written.append(p.xadd(KEY, [(job, "running", 5, "video", "video.transcode")]))
            time.sleep(0.002)
        p.close()
    t = threading.Thread(target=writer)
    t.start()
    s = open_stream(api, "/v1/events?queue=video", headers={"Last-Event-ID": start})
    try:
        s.wait(lambda x: len(x.job_events()) >= 3000, 30, "the catch-up")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join()
    want = [f"{e}/0" for e in written]
    s.wait(lambda x: len(x.job_events()) >= len(want), 10, "every event")
    got = ids(s.job_events())
    eq(len(got), len(want), "event count")
    eq(got, want, "every event once, in order")
    s.close()
    pipe.close()


@suite.test
def test_job_stream_resumes_across_a_long_stretch_of_other_jobs(ctx):
    api, pipe, redis = ctx["api"], ctx["pipe"], ctx["redis"]
    jid = Queue(redis).enqueue("video", "video.transcode", {"preset": "mp4-720p"})
    start = pipe.xadd(KEY, [(jid, "running", 1, "video", "video.transcode")])
    for i in range(0, 4000, 500):
        pipe.run([["XADD", KEY, "*", new_id(), "running 3 pdf pdf.export"] for _ in range(500)])
    mid = pipe.xadd(KEY, [(new_id(), "queued", 0, "pdf", "pdf.export"),
                          (jid, "running", 60, "video", "video.transcode")])
    for i in range(0, 2000, 500):
        pipe.run([["XADD", KEY, "*", new_id(), "running 3 pdf pdf.export"] for _ in range(500)])
    s = open_stream(api, f"/v1/jobs/{jid}/events", headers={"Last-Event-ID": f"{start}/0"})
    s.wait(lambda x: len(x.job_events()) >= 1, 10, "the job's event past 4000 others")
    eq(ids(s.job_events()), [f"{mid}/1"], "only the job's event")
    end = pipe.xadd(KEY, [(jid, "failed", 60, "video", "video.transcode")])
    s.wait_end(10)
    eq(ids(s.job_events()), [f"{mid}/1", f"{end}/0"], "then live, then the end")
    s.close()


@suite.test
def test_a_trimmed_history_says_gap(ctx):
    redis = Redis()  # a stream of its own, to trim
    api = ApiServer(suite, redis, {"SPOOL_SSE_HEARTBEAT": "300ms"}, name="api-gap")
    pipe = RedisPipe(redis.port)
    try:
        job = new_id()
        es = [pipe.xadd(KEY, [(job, "running", i, "video", "video.transcode")], f"{1000 + i}-0")
              for i in range(10)]
        eq(pipe.run([["XTRIM", KEY, "MAXLEN", "3"]])[0], 7, "trimmed")
        s = open_stream(api, headers={"Last-Event-ID": f"{es[2]}/0"})
        s.wait(lambda x: len(x.job_events()) >= 3, 5, "what is kept")
        gap = [e for e in s.events if e["event"] == "gap"]
        eq(len(gap), 1, "one gap notice")
        eq(gap[0]["data"]["oldest"], es[7], "the oldest kept")
        assert s.events.index(gap[0]) < s.events.index(s.job_events()[0]), "gap comes first"
        eq(ids(s.job_events()), [f"{e}/0" for e in es[7:]], "then the kept entries")
        s.close()
        for last in (f"{es[7]}/0", es[8], es[9]):  # nothing after these was trimmed
            s = open_stream(api, headers={"Last-Event-ID": last})
            live(s, pipe)
            eq([e for e in s.events if e["event"] == "gap"], [], f"no gap after {last}")
            s.close()
        # (a client that saw exactly the entry before the oldest kept one, es[6], is told
        # "gap" too: the stream keeps no record that nothing lay between them)
        # the per-job stream: a gap, then the job's state (it cannot be replayed)
        q = Queue(redis)
        jid = q.enqueue("video", "video.transcode", {"preset": "mp4-720p"})
        s = open_stream(api, f"/v1/jobs/{jid}/events", headers={"Last-Event-ID": "5-0/0"})
        s.wait(lambda x: len(x.job_events()) >= 1, 5, "the state")
        time.sleep(0.3)
        s.wait(lambda x: True)
        eq([e["event"] for e in s.events if e["event"] or e["data"]], ["gap", None],
           "gap, then the state (not the rest of the history after it)")
        eq(s.job_events()[0]["data"]["state"], "queued", "the state now")
        s.close()
        # a catch-up that trimming overtakes while its client reads slowly says so
        pad = "video." + "x" * 56
        first = None
        for _ in range(15):
            got = pipe.run([["XADD", KEY, "*", job, f"running 5 video {pad}"]
                            for _ in range(2000)])
            first = first or got[0]
        slow = Sse(api.port, "/v1/events", headers={"Last-Event-ID": first}, rcvbuf=4096)
        slow.read_head()
        time.sleep(1)  # the catch-up fills the socket buffers and waits
        pipe.run([["XTRIM", KEY, "MAXLEN", "10"]])
        last = pipe.xadd(KEY, [(job, "running", 6, "video", "video.transcode")])
        slow.wait(lambda x: any(e["id"] == f"{last}/0" for e in x.job_events()), 60,
                  "the live event after the trim")
        kinds = [e["event"] for e in slow.events if e["event"] or e["data"]]
        eq(kinds.count("gap"), 1, "one gap notice mid-stream")
        got = slow.job_events()
        assert 0 < kinds.index("gap") < len(kinds) - 11, "the notice comes mid-stream"
        key = [tuple(map(int, re.split("[-/]", e["id"]))) for e in got]
        eq(key, sorted(key), "ids only go up")
        eq(len(set(key)), len(key), "none twice")
        slow.close()
    finally:
        pipe.close()
        eq(api.stop(), 0, "exit code")
        redis.destroy()


@suite.test
def test_redis_down_and_back(ctx):
    """Open streams outlive a Redis restart (heartbeats go on; the reader reconnects and
    reads on from where it was); what needs Redis to start answers 503 meanwhile."""
    redis = Redis(aof=True)
    api = ApiServer(suite, redis, {"SPOOL_SSE_HEARTBEAT": "300ms"}, name="api-redis")
    try:
        jid = Queue(redis).enqueue("video", "video.transcode", {"preset": "mp4-720p"})
        pipe = RedisPipe(redis.port)
        s = open_stream(api)
        live(s, None)
        e1 = pipe.xadd(KEY, [(jid, "running", 10, "video", "video.transcode")])
        s.wait(lambda x: len(x.job_events()) >= 1, 5, "the first event")
        pipe.close()
        redis.stop()
        n = len(s.events)
        s.wait(lambda x: sum("ping" in e["comments"] for e in x.events[n:]) >= 2, 5,
               "heartbeats while Redis is down")
        for path, headers in ((f"/v1/jobs/{jid}/events", None),
                              ("/v1/events", {"Last-Event-ID": e1})):
            x = open_stream(api, path, headers=headers)
            eq(x.status, 503, f"{path} {headers} while Redis is down")
            eq(x.json["error"]["code"], "redis_unavailable", "code")
            assert x.headers.get("retry-after"), "Retry-After"
            x.close()
        redis.start()
        pipe = RedisPipe(redis.port)
        e2 = pipe.xadd(KEY, [(jid, "running", 20, "video", "video.transcode")])
        s.wait(lambda x: len(x.job_events()) >= 2, 10, "the event after the restart")
        eq(ids(s.job_events()), [f"{e1}/0", f"{e2}/0"], "nothing lost, nothing twice")
        x = open_stream(api, "/v1/events", headers={"Last-Event-ID": f"{e1}/0"})
        x.wait(lambda y: len(y.job_events()) >= 1, 5, "a resume after the restart")
        eq(ids(x.job_events()), [f"{e2}/0"], "resumed")
        x.close()
        s.close()
        pipe.close()
    finally:
        eq(api.stop(), 0, "exit code")
        redis.destroy()


# ---- one job -------------------------------------------------------------------------------

@suite.test
def test_job_stream_starts_with_the_state_and_ends_after_the_end(ctx):
    api, pipe, redis = ctx["api"], ctx["pipe"], ctx["redis"]
    q = Queue(redis)
    jid = q.enqueue("video", "video.transcode", {"preset": "mp4-720p"})
    other = q.enqueue("video", "video.transcode", {"preset": "mp4-720p"})
    s = open_stream(api, f"/v1/jobs/{jid}/events")
    eq(s.status, 200, "status")
    s.wait(lambda x: len(x.job_events()) >= 1, 5, "the current state")
    first = s.job_events()[0]
    eq((first["data"]["job_id"], first["data"]["state"], first["data"]["progress"],
        first["data"]["queue"], first["data"]["type"]),
       (jid, "queued", 0, "video", "video.transcode"), "the current state first")
    assert re.fullmatch(r"\d+-\d+", first["id"]), f"its id is a stream position: {first['id']}"
    pipe.xadd(KEY, [(other, "running", 0, "video", "video.transcode")])
    e1 = pipe.xadd(KEY, [(jid, "running", 0, "video", "video.transcode"),
                         (other, "running", 10, "video", "video.transcode")])
    e2 = pipe.xadd(KEY, [(jid, "running", 50, "video", "video.transcode")])
    e3 = pipe.xadd(KEY, [(other, "running", 20, "video", "video.transcode"),
                         (jid, "succeeded", 100, "video", "video.transcode")])
    s.wait_end(5)
    eq(ids(s.job_events())[1:], [f"{e1}/0", f"{e2}/0", f"{e3}/1"], "only this job's events")
    eq(s.job_events()[-1]["data"]["state"], "succeeded", "the last event")
    s.close()
    # resuming inside the job's history: the rest of it, then the end
    s = open_stream(api, f"/v1/jobs/{jid}/events", headers={"Last-Event-ID": first["id"]})
    s.wait_end(5)
    eq(ids(s.job_events()), [f"{e1}/0", f"{e2}/0", f"{e3}/1"], "resumed, then ended")
    s.close()


@suite.test
def test_job_stream_of_an_ended_job(ctx):
    api, pipe, redis = ctx["api"], ctx["pipe"], ctx["redis"]
    q = Queue(redis)
    jid = q.enqueue("video", "video.transcode", {"preset": "mp4-720p"})
    q.cancel(jid)
    s = open_stream(api, f"/v1/jobs/{jid}/events")
    s.wait_end(5)
    eq([e["data"]["state"] for e in s.job_events()], ["cancelled"], "the end state, then the end")
    s.close()
    # a client that saw events after the end (an EventSource reconnecting): 204, stop
    e = pipe.xadd(KEY, [(new_id(), "queued", 0, "pdf", "pdf.export")])
    s = open_stream(api, f"/v1/jobs/{jid}/events", headers={"Last-Event-ID": f"{e}/0"})
    eq(s.status, 204, "nothing more will come")
    s.close()
    # one whose last id is older than the end gets the end state
    s = open_stream(api, f"/v1/jobs/{jid}/events", headers={"Last-Event-ID": "1-0/0"})
    s.wait_end(5)
    eq([ev["data"]["state"] for ev in s.job_events()], ["cancelled"], "missed the end")
    s.close()


@suite.test
def test_job_stream_404_for_unknown_or_malformed_ids(ctx):
    api = ctx["api"]
    for path in (f"/v1/jobs/{new_id()}/events", "/v1/jobs/nope/events",
                 "/v1/jobs/" + "0" * 37 + "/events", "/v1/jobs/%2e%2e/events"):
        s = open_stream(api, path)
        eq(s.status, 404, path)
        eq(s.json["error"]["code"], "not_found", path)
        s.close()
    s = open_stream(api, f"/v1/jobs/{new_id()}/events/x")
    eq(s.status, 404, "a deeper path")
    eq(s.json["error"]["code"], "no_such_route", "a deeper path")
    s.close()


@suite.test
def test_real_jobs_from_enqueue_to_the_end(ctx):
    """The scripts' own events (common/lua): a job submitted through the API, run by a
    worker of the shared runtime with progress steps, and one cancelled through the
    API; the all-jobs stream, the per-job stream and spoolctl watch see them."""
    api, redis = ctx["api"], ctx["redis"]
    every = open_stream(api, "/v1/events?queue=test")
    live(every, None)
    q = Queue(redis)
    jid = q.enqueue("test", "test.noop", {"sleep_ms": 1500})
    one = open_stream(api, f"/v1/jobs/{jid}/events")
    one.wait(lambda x: len(x.job_events()) >= 1, 5, "the job's state")
    watch = spoolctl(api, "--json", "watch", jid)
    worker = subprocess.Popen(
        [os.path.join(os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(
            os.path.dirname(BIN), "build/release/tests")), "spool-test-worker")],
        env=dict(os.environ, SPOOL_REDIS_URL=redis.url, SPOOL_QUEUES="test",
                 SPOOL_DATA_DIR=os.path.join(suite.tmp, "worker-data")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        one.wait_end(20)
        states = [e["data"]["state"] for e in one.job_events()]
        eq(states[0], "queued", "the state first")
        eq(states[-1], "succeeded", "ends with the end")
        assert "running" in states, states
        running = [e["data"]["progress"] for e in one.job_events()
                   if e["data"]["state"] == "running"]
        eq(running, sorted(running), "progress only goes up")
        assert any(0 < p < 100 for p in running), f"progress steps: {running}"
        out, _ = watch.communicate(timeout=10)
        eq(watch.returncode, 0, "spoolctl watch exit code")
        eq([json.loads(x)["state"] for x in out.decode().splitlines()][-1], "succeeded",
           "spoolctl watch's last line")
        every.wait(lambda x: any(e["data"]["state"] == "succeeded" for e in x.job_events()), 5,
                   "the end on the all-jobs stream")
        mine = [e["data"] for e in every.job_events() if e["data"]["job_id"] == jid]
        eq([d["state"] for d in mine][0], "queued", "enqueue wrote an event")
        eq({(d["queue"], d["type"]) for d in mine}, {("test", "test.noop")}, "queue and type")
        eq(ids(every.job_events()), sorted(ids(every.job_events()),
                                           key=lambda i: tuple(map(int, re.split("[-/]", i)))),
           "ids in order")
    finally:
        worker.terminate()
        worker.wait(10)
        every.close()
        one.close()
    # cancelled through the API while queued (no worker now)
    r = api.http.post("/v1/exports", json.dumps({"title": "t", "rows": [{"a": 1}]}).encode(),
                      headers={"Content-Type": "application/json"})
    eq(r.status, 202, "export accepted")
    pid = r.json()["id"]
    s = open_stream(api, f"/v1/jobs/{pid}/events")
    s.wait(lambda x: len(x.job_events()) >= 1, 5, "the state")
    eq(api.http.delete(f"/v1/jobs/{pid}").status, 200, "cancel")
    s.wait_end(5)
    eq([e["data"]["state"] for e in s.job_events()], ["queued", "cancelled"], "then the end")
    s.close()


# ---- auth and limits ------------------------------------------------------------------------

@suite.test
def test_tokens_guard_both_routes(ctx):
    redis = ctx["redis"]
    api = ApiServer(suite, redis, {"SPOOL_API_TOKENS": "s3cret,other"}, name="api-auth")
    try:
        jid = Queue(redis).enqueue("video", "video.transcode", {"preset": "mp4-720p"})
        for path in ("/v1/events", f"/v1/jobs/{jid}/events"):
            for token in (None, "wrong", "s3cre"):
                s = open_stream(api, path, token=token)
                eq(s.status, 401, f"{path} with {token!r}")
                eq(s.json["error"]["code"], "unauthorized", path)
                s.close()
            s = open_stream(api, path, token="other")
            eq(s.status, 200, f"{path} with a token")
            s.wait(lambda x: len(x.events) >= 1, 5, "the first block")
            s.close()
    finally:
        eq(api.stop(), 0, "exit code")


@suite.test
def test_stream_limit_and_per_address_limit(ctx):
    redis = ctx["redis"]
    api = ApiServer(suite, redis, {"SPOOL_SSE_MAX_STREAMS": "3", "SPOOL_SSE_HEARTBEAT": "200ms",
                                   "SPOOL_MAX_CONNECTIONS_PER_IP": "6"}, name="api-limit")
    try:
        streams = [open_stream(api) for _ in range(3)]
        eq([s.status for s in streams], [200] * 3, "up to the limit")
        s = open_stream(api)
        eq(s.status, 503, "past the stream limit")
        eq(s.json["error"]["code"], "too_many_streams", "code")
        assert s.headers.get("retry-after"), "Retry-After"
        s.close()
        eq(api.http.get("/healthz").status, 200, "other requests still served")
        streams.pop().close()
        wait_until(lambda: metric(api, "spool_api_event_streams") == 2, 5,
                   what="the closed stream to be freed")
        s = open_stream(api)
        eq(s.status, 200, "room again")
        streams.append(s)
        # the per-address limit (6) counts streams too: 3 open and 3 more, then refused
        extra = [socket.create_connection(("127.0.0.1", api.port)) for _ in range(4)]
        time.sleep(0.3)
        cut = 0
        for x in extra:
            x.settimeout(3)
            x.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                cut += x.recv(100) == b""
            except (ConnectionResetError, socket.timeout):
                cut += 1
            x.close()
        assert cut >= 1, "a connection past SPOOL_MAX_CONNECTIONS_PER_IP is cut"
        for s in streams:
            s.close()
    finally:
        eq(api.stop(), 0, "exit code")


@suite.test
def test_a_client_that_never_reads_costs_bounded_memory_and_is_closed(ctx):
    """A burst far past the 64 KiB buffer: a reading client gets every event (its stream
    falls back to reading Redis at its pace when it lags), one that never reads holds no
    more memory than its buffer and is closed by the idle timeout."""
    redis = ctx["redis"]
    api = ApiServer(suite, redis, {"SPOOL_SSE_HEARTBEAT": "300ms", "SPOOL_CONN_TIMEOUT": "3s"},
                    name="api-stuck")
    pipe = RedisPipe(redis.port)
    try:
        stuck = Sse(api.port, "/v1/events", rcvbuf=4096)
        stuck.read_head()
        good = open_stream(api)
        live(good, None)
        rss0 = vm_rss_kib(api.proc.pid)
        behind0 = metric(api, "spool_api_event_streams_behind_total")
        job = new_id()
        pad = "video." + "x" * 56  # a long type: ~300 bytes per event
        total = 0
        for _ in range(15):  # 30,000 events, ~9 MB: past every socket buffer
            pipe.run([["XADD", KEY, "*", job, f"running {k % 101} video {pad}"]
                      for k in range(2000)])
            total += 2000
        good.wait(lambda x: len(x.job_events()) >= total, 60, "the reading client's events")
        got = ids(good.job_events())
        eq(len(got), total, "the reading client got every event")
        eq(len(set(got)), total, "none twice")
        rss1 = vm_rss_kib(api.proc.pid)
        if not SANITIZED:  # ASan's shadow memory and quarantine say nothing of ours
            assert rss1 - rss0 < 16 * 1024, f"RSS grew {rss1 - rss0} KiB"
        assert metric(api, "spool_api_event_streams_behind_total") > behind0, \
            "a stream fell behind and caught up from Redis"
        wait_until(lambda: metric(api, "spool_api_event_streams") == 1, 15,
                   what="the client that never reads to be closed")
        good.close()
        stuck.close()
    finally:
        pipe.close()
        eq(api.stop(), 0, "exit code")


@suite.test
def test_clients_that_go_away_are_freed(ctx):
    api = ctx["api"]
    base = metric(api, "spool_api_event_streams")
    streams = [open_stream(api) for _ in range(50)]
    wait_until(lambda: metric(api, "spool_api_event_streams") == base + 50, 5,
               what="50 streams open")
    for s in streams:
        s.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset, as a client that vanished
    wait_until(lambda: metric(api, "spool_api_event_streams") == base, 5,
               what="every stream freed (noticed by the heartbeat)")


@suite.test
def test_500_streams_on_one_process_under_64_mib(ctx):
    import selectors
    redis = ctx["redis"]
    api = ApiServer(suite, redis, {"SPOOL_MAX_CONNECTIONS_PER_IP": "0"}, name="api-500")
    pipe = RedisPipe(redis.port)
    sel = selectors.DefaultSelector()
    conns = []
    try:
        for i in range(500):
            s = socket.create_connection(("127.0.0.1", api.port))
            s.sendall(request_bytes("/v1/events" + ("?queue=video" if i % 2 else "")))
            s.setblocking(False)
            c = {"s": s, "head": b"", "p": None}
            conns.append(c)
            sel.register(s, selectors.EVENT_READ, c)

        def pump(pred, timeout):
            end = time.monotonic() + timeout
            while not pred():
                assert time.monotonic() < end, "timed out"
                for key, _ in sel.select(0.2):
                    c = key.data
                    data = c["s"].recv(65536)
                    if c["p"] is None:
                        c["head"] += data
                        got = split_head(c["head"])
                        if got:
                            assert got[0] == 200, f"status {got[0]}"
                            c["p"] = SseParser()
                            c["p"].feed(got[2])
                    else:
                        c["p"].feed(data)
        pump(lambda: all(c["p"] is not None for c in conns), 30)
        wait_until(lambda: metric(api, "spool_api_event_streams") == 500, 10,
                   what="500 streams open")
        job = new_id()
        for k in range(20):
            pipe.xadd(KEY, [(job, "running", k, "video", "video.transcode")])
        pump(lambda: all(len([e for e in c["p"].events if e["data"]]) >= 20 for c in conns), 30)
        rss = vm_rss_kib(api.proc.pid)
        print(f"# 500 streams: VmRSS {rss} KiB", flush=True)
        if not SANITIZED:
            assert rss < 64 * 1024, f"VmRSS {rss} KiB with 500 streams"
        threads = len(os.listdir(f"/proc/{api.proc.pid}/task"))
        assert threads < 40, f"{threads} threads for 500 streams"
    finally:
        for c in conns:
            c["s"].close()
        pipe.close()
        eq(api.stop(), 0, "exit code")


@suite.test
def test_sigterm_ends_open_streams(ctx):
    redis = ctx["redis"]
    api = ApiServer(suite, redis, name="api-term")
    streams = [open_stream(api) for _ in range(5)]
    t0 = time.monotonic()
    eq(api.stop(), 0, "exit code")
    took = time.monotonic() - t0
    assert took < 5, f"shutdown took {took:.1f}s with streams open"
    for s in streams:
        s.wait_end(5)
        s.close()


# ---- spoolctl watch -------------------------------------------------------------------------

def spoolctl(api, *args):
    return subprocess.Popen([os.path.join(BIN, "spoolctl"), "--server",
                             f"http://127.0.0.1:{api.port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@suite.test
def test_spoolctl_watch_a_job_until_it_ends(ctx):
    api, pipe, redis = ctx["api"], ctx["pipe"], ctx["redis"]
    q = Queue(redis)
    for final, code in (("succeeded", 0), ("failed", 1)):
        jid = q.enqueue("video", "video.transcode", {"preset": "mp4-720p"})
        for json_out in (False, True):
            p = spoolctl(api, *(["--json"] if json_out else []), "watch", jid)
            wait_until(lambda: metric(api, "spool_api_event_streams") >= 1, 5, what="the stream")
            time.sleep(0.2)
            pipe.xadd(KEY, [(jid, "running", 30, "video", "video.transcode")])
            pipe.xadd(KEY, [(jid, final, 100 if final == "succeeded" else 30, "video",
                             "video.transcode")])
            out, err = p.communicate(timeout=10)
            eq(p.returncode, code, f"exit code after {final} ({err.decode()})")
            lines = out.decode().splitlines()
            eq(len(lines), 3, f"state, running, {final}: {lines}")
            if json_out:
                evs = [json.loads(x) for x in lines]
                eq([e["state"] for e in evs], ["queued", "running", final], "states")
                eq({e["job_id"] for e in evs}, {jid}, "job ids")
            else:
                assert jid in lines[1] and "running" in lines[1] and "30%" in lines[1], lines[1]
                assert final in lines[2], lines[2]
    p = spoolctl(api, "watch", new_id())
    eq(p.wait(10), 3, "an unknown job exits 3")
    p = spoolctl(api, "watch", "--queue", "bad queue")
    eq(p.wait(10), 2, "a bad --queue exits 2")


@suite.test
def test_spoolctl_watch_reconnects_where_it_left_off(ctx):
    redis = ctx["redis"]
    port = free_port()
    env = {"SPOOL_LISTEN": f"127.0.0.1:{port}", "SPOOL_SSE_HEARTBEAT": "300ms"}
    api = ApiServer(suite, redis, env, name="api-re1")
    pipe = RedisPipe(redis.port)
    p = spoolctl(api, "--json", "watch", "--type", "pdf.export")
    try:
        wait_until(lambda: metric(api, "spool_api_event_streams") == 1, 5, what="the stream")
        job = new_id()
        e1 = pipe.xadd(KEY, [(job, "queued", 0, "pdf", "pdf.export")])
        time.sleep(0.5)
        eq(api.stop(), 0, "exit code")
        e2 = pipe.xadd(KEY, [(job, "running", 10, "pdf", "pdf.export"),
                             (new_id(), "queued", 0, "video", "video.transcode")])
        api = ApiServer(suite, redis, env, name="api-re2")
        e3 = pipe.xadd(KEY, [(job, "succeeded", 100, "pdf", "pdf.export")])
        lines = []
        deadline = time.monotonic() + 15
        while len(lines) < 3 and time.monotonic() < deadline:
            line = p.stdout.readline()
            if line:
                lines.append(json.loads(line))
        eq([x["id"] for x in lines], [f"{e1}/0", f"{e2}/0", f"{e3}/0"],
           "every pdf event once, across the restart")
    finally:
        p.terminate()
        p.wait(5)
        pipe.close()
        eq(api.stop(), 0, "exit code")


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

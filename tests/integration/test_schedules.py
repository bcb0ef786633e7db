#!/usr/bin/env python3
"""Schedules against real spool-api processes and one real redis-server: three APIs
firing an `@every 1s` schedule make exactly one job per tick (no gap, no duplicate,
checked through the API and in Redis), and still do after two of them are killed -9;
a delayed job taken by a real spool-pdf starts not before its run_at and within a
second after; after every API was down over several ticks `skip` fires none of the
missed ticks and `run_once` exactly one; a paused schedule fires nothing, PATCH
changes take effect, DELETE stops it; the routes' validation (the job template judged
as the POST routes judge their bodies) and limits (name, number of schedules,
template size) at limit-1, limit and limit+1; metrics; spoolctl's schedule commands.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, LOOPBACK_ALLOW, Proc, Redis, Suite, eq, wait_until  # noqa: E402
from test_api import ApiServer  # noqa: E402

suite = Suite("schedules")
EXPORT = {"type": "pdf.export", "params": {"title": "tick", "rows": [{"a": 1}]}}
JOB_MAX = 64 * 1024


def tick_ms(iso):
    import datetime
    return round(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def runs(http, name, limit=1000):
    r = http.get(f"/v1/schedules/{name}/runs?limit={limit}")
    eq(r.status, 200, f"{r}")
    return r.json()["runs"]


def create(http, name, cron="@every 1s", job=EXPORT, **kw):
    return http.post("/v1/schedules", body=dict({"name": name, "cron": cron, "job": job}, **kw))


def patch(http, name, body):
    return http.request("PATCH", f"/v1/schedules/{name}", body=body)


def setup():
    redis = Redis()
    return {"redis": redis}


def teardown(ctx):
    ctx["redis"].destroy()


def api_on(ctx, prefix, env=None):
    e = {"SPOOL_KEY_PREFIX": prefix, **(env or {})}
    return ApiServer(suite, ctx["redis"], env=e, name=f"api-{prefix.strip(':')}")


@suite.test
def test_three_apis_make_one_job_per_tick_and_still_do_with_two_killed(ctx):
    prefix = "three:"
    apis = [api_on(ctx, prefix) for _ in range(3)]
    http = apis[0].http
    try:
        t0 = time.time()
        r = create(http, "every-second")
        eq(r.status, 201, f"{r}")
        time.sleep(20)
        for a in apis[1:]:
            a.proc.signal(signal.SIGKILL)
            a.proc.wait(10)
        t_kill = time.time()
        time.sleep(10)
        eq(patch(http, "every-second", {"paused": True}).status, 200)
        t1 = time.time()
        got = runs(http, "every-second")
        ticks = sorted(tick_ms(x["tick_at"]) for x in got)
        ids = [x["job_id"] for x in got]
        assert len(ticks) >= 28, f"{len(ticks)} ticks in 30 s"
        eq(len(set(ticks)), len(ticks), "one run per tick")
        eq(len(set(ids)), len(ids), "one job per run")
        eq([b - a for a, b in zip(ticks, ticks[1:])], [1000] * (len(ticks) - 1),
           "consecutive seconds, no gap")
        assert ticks[0] <= t0 * 1000 + 1600 and ticks[-1] >= t1 * 1000 - 1600, \
            (t0, t1, ticks[0], ticks[-1])
        assert [t for t in ticks if t > t_kill * 1000 + 1000], "ticks after the kill"
        # Redis: exactly these jobs of this template exist, each once.
        index = ctx["redis"].cli("ZRANGE", f"{prefix}jobs", "0", "-1").split()
        pdf = [j for j in index
               if ctx["redis"].cli("HGET", f"{prefix}job:{j}", "type").strip() == "pdf.export"]
        eq(sorted(pdf), sorted(ids), "the jobs in Redis are the schedule's runs")
        for x in got:
            eq((x["state"], x["job"]["type"], x["job"]["params"]["title"]),
               ("queued", "pdf.export", "tick"), f"run {x['job_id']}")
        s = http.get("/v1/schedules/every-second").json()
        eq((s["runs_total"], s["missed_total"], s["paused"], s["next_run_at"]),
           (len(ticks), 0, True, None), f"{s}")
        eq(s["last_run_at"][:19], got[0]["tick_at"][:19], "last_run_at is the latest run")
        # Every process fired: each one's log names ticks of the schedule.
        fired = [a.proc.output().count("schedule every-second: tick") for a in apis]
        assert all(n > 0 for n in fired), f"ticks each process saw: {fired}"
        m = http.get("/metrics").body.decode()
        assert f'spool_schedule_ticks_total{{outcome="fired"}} {len(ticks)}' in m, m
        assert 'spool_schedules{paused="true"} 1' in m, m
    finally:
        for a in apis:
            a.stop(signal.SIGKILL)


@suite.test
def test_a_delayed_job_starts_not_before_run_at_and_within_a_second(ctx):
    api = api_on(ctx, "delay:")
    pdf = Proc([os.path.join(BIN, "spool-pdf")], env={
        "SPOOL_REDIS_URL": ctx["redis"].url, **api.blobs.env(), "SPOOL_QUEUES": "pdf",
        "SPOOL_KEY_PREFIX": "delay:", "SPOOL_LOG_LEVEL": "info", **LOOPBACK_ALLOW},
        name="spool-pdf", logdir=suite.tmp)
    try:
        for i in range(2):
            r = api.http.post("/v1/exports", body={"title": f"later {i}", "rows": [{"a": i}],
                                                   "delay": 2})
            eq((r.status, r.json()["state"]), (202, "scheduled"), f"{r}")
            job = r.json()["id"]
            done = wait_until(lambda: api.http.get(f"/v1/jobs/{job}").json()["state"]
                              in ("succeeded", "failed") and api.http.get(f"/v1/jobs/{job}").json(),
                              15, 0.05, what="the delayed export to run")
            eq(done["state"], "succeeded", f"{done}")
            late = tick_ms(done["started_at"]) - tick_ms(done["run_at"])
            assert 0 <= late <= 1000, f"started {late} ms after run_at: {done}"
    finally:
        pdf.stop()
        api.stop()


@suite.test
def test_after_every_api_was_down_skip_fires_none_of_the_missed_and_run_once_one(ctx):
    """Each schedule judged on its own (the two need not fire in the same round), with a
    grace that a loaded machine's late rounds stay within: skip's first tick after the
    restart was not missed and those before it were passed over; run_once's first was
    a missed tick (made more than the grace after it) and only those before it were
    passed over."""
    prefix = "missed:"
    grace = 2000
    env = {"SPOOL_SCHEDULE_GRACE": "2s"}
    apis = [api_on(ctx, prefix, env) for _ in range(2)]
    http = apis[0].http
    for name, policy in (("skipper", "skip"), ("catcher", "run_once")):
        eq(create(http, name, missed=policy).status, 201)
    wait_until(lambda: all(len(runs(http, n)) >= 2 for n in ("skipper", "catcher")), 10, 0.1,
               what="both schedules to fire")
    for a in apis:
        a.proc.signal(signal.SIGKILL)
        a.proc.wait(10)
    last = {n: max(tick_ms(x["tick_at"]) for x in runs_via_redis(ctx, prefix, n))
            for n in ("skipper", "catcher")}
    time.sleep(6)  # about six ticks go by with no process to fire them
    api = api_on(ctx, prefix, env)
    try:
        def fired_after(n):
            return sorted((tick_ms(x["tick_at"]), tick_ms(x["job"]["created_at"]))
                          for x in runs(api.http, n) if tick_ms(x["tick_at"]) > last[n])
        wait_until(lambda: all(len(fired_after(n)) >= 2 for n in ("skipper", "catcher")), 15,
                   0.1, what="both schedules to fire after the restart")
        for n in ("skipper", "catcher"):
            eq(patch(api.http, n, {"paused": True}).status, 200)
        missed = {}
        for n in ("skipper", "catcher"):
            after = fired_after(n)
            ticks = [t for t, _ in after]
            eq([b - a for a, b in zip(ticks, ticks[1:])], [1000] * (len(ticks) - 1),
               f"{n}: consecutive after the restart")
            missed[n] = api.http.get(f"/v1/schedules/{n}").json()["missed_total"]
            eq(missed[n], (ticks[0] - last[n]) // 1000 - 1, f"{n}: the ticks passed over")
            first_tick, first_made = after[0]
            if n == "skipper":
                assert first_made - first_tick <= grace + 500, \
                    f"skip fired a missed tick: made {first_made - first_tick} ms after it"
            else:
                assert first_made - first_tick > grace, \
                    f"run_once fired no missed tick: made {first_made - first_tick} ms after it"
        assert missed["skipper"] >= 3, missed
        assert missed["catcher"] >= 2, missed
        m = api.http.get("/metrics").body.decode()
        assert f'spool_schedule_ticks_total{{outcome="missed"}} {missed["skipper"] + missed["catcher"]}' in m, m
    finally:
        api.stop()


@suite.test
def test_a_tick_fired_again_after_its_idempotency_key_expired_makes_no_second_job(ctx):
    """A process that dies between making a tick's job and moving the schedule on
    leaves the tick due; the next firer, after the idempotency key expired, finds the
    job by the tick's own id."""
    prefix = "crash:"
    env = {"SPOOL_IDEMPOTENCY_TTL": "1s", "SPOOL_SCHEDULE_GRACE": "1s"}
    r = ctx["redis"]
    api = api_on(ctx, prefix, env)
    try:
        eq(create(api.http, "crashy", cron="@every 5s", missed="run_once").status, 201)
        wait_until(lambda: runs_via_redis(ctx, prefix, "crashy"), 8, 0.02, what="a first tick")
    finally:
        api.stop(signal.SIGKILL)
    got = runs_via_redis(ctx, prefix, "crashy")
    eq(len(got), 1, f"{got}")
    tick = tick_ms(got[0]["tick_at"])
    job = got[0]["job_id"]
    # The crash before the advance: the schedule as it was before tick was fired.
    r.cli("HSET", f"{prefix}sched:crashy", "last_tick", str(tick - 1), "next_at", str(tick))
    r.cli("ZADD", f"{prefix}schedules:due", str(tick), "crashy")
    fired = int(r.cli("HGET", f"{prefix}sched:crashy", "fired").strip())
    time.sleep(1.6)  # the tick's idempotency key expires
    keys = r.cli("KEYS", f"{prefix}idem:*").split()
    eq(keys, [], "the idempotency key expired")
    api = api_on(ctx, prefix, env)
    try:
        wait_until(lambda: int(r.cli("HGET", f"{prefix}sched:crashy", "fired").strip()) > fired,
                   8, 0.02, what="the tick fired again")
        eq(patch(api.http, "crashy", {"paused": True}).status, 200)
        index = r.cli("ZRANGE", f"{prefix}jobs", "0", "-1").split()
        ticks = sorted(tick_ms(x["tick_at"]) for x in runs_via_redis(ctx, prefix, "crashy"))
        eq(ticks[0], tick, "the tick fired again is the first one")
        eq(len(ticks), len(set(ticks)), f"one run per tick: {ticks}")
        eq(len(index), len(ticks), f"one job per tick: jobs {index}, ticks {ticks}")
        assert job in index, (job, index)
        ready = r.cli("LRANGE", f"{prefix}q:pdf:ready", "0", "-1").split()
        eq(sorted(ready), sorted(index), "each job queued once")
    finally:
        api.stop()


@suite.test
def test_an_idempotency_ttl_shorter_than_the_grace_is_refused_at_start(ctx):
    base = {"SPOOL_REDIS_URL": ctx["redis"].url, "SPOOL_LISTEN": "127.0.0.1:0",
            "SPOOL_KEY_PREFIX": "ttl:"}
    for ttl, grace, sched, ok in (("59s", "1m", "on", False), ("1m", "1m", "on", True),
                                  ("1s", "1m", "off", True)):
        env = dict(os.environ, **base, SPOOL_IDEMPOTENCY_TTL=ttl, SPOOL_SCHEDULE_GRACE=grace,
                   SPOOL_SCHEDULER=sched)
        p = subprocess.Popen([os.path.join(BIN, "spool-api")], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            if ok:
                time.sleep(1)
                eq(p.poll(), None, f"ttl {ttl} grace {grace} scheduler {sched}: still running")
                p.send_signal(signal.SIGTERM)
                p.wait(15)
            else:
                eq(p.wait(10), 2, f"ttl {ttl} grace {grace}")
                err = p.stderr.read()
                assert "SPOOL_IDEMPOTENCY_TTL" in err and "SPOOL_SCHEDULE_GRACE" in err, err
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_calls(ctx, cmd):
    for line in ctx["redis"].cli("INFO", "commandstats").splitlines():
        if line.startswith(f"cmdstat_{cmd}:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


@suite.test
def test_a_full_queue_neither_spins_the_loop_nor_starves_other_schedules(ctx):
    """70 schedules whose queue is full (more than a round's batch of 64) and one on
    another queue: the healthy one fires every tick; the stuck ones are tried again
    after a backoff, not every round; the warnings are rate-limited."""
    prefix = "full:"
    r = ctx["redis"]
    r.cli("RPUSH", f"{prefix}q:pdf:ready", *[f"filler{i}" for i in range(20)])
    api = api_on(ctx, prefix, {"SPOOL_QUEUE_LIMIT": "20", "SPOOL_LOG_LEVEL": "info"})
    video = {"type": "video.transcode", "params": {"source_url": "https://example.com/v.mp4"}}
    try:
        for i in range(70):
            eq(create(api.http, f"stuck{i:02d}").status, 201)
        eq(create(api.http, "zz-healthy", job=video).status, 201)
        time.sleep(2)  # every stuck schedule has failed once
        cpu0, t0 = cpu_s(api.proc.pid), time.time()
        hget0, lines0 = redis_calls(ctx, "hgetall"), api.proc.output().count("not made")
        time.sleep(8)
        window = time.time() - t0
        cpu = cpu_s(api.proc.pid) - cpu0
        hget = redis_calls(ctx, "hgetall") - hget0
        lines = api.proc.output().count("not made") - lines0
        eq(patch(api.http, "zz-healthy", {"paused": True}).status, 200)
        ticks = sorted(tick_ms(x["tick_at"]) for x in runs(api.http, "zz-healthy"))
        assert len(ticks) >= 9, f"the healthy schedule fired {len(ticks)} ticks in 10 s"
        eq([b - a for a, b in zip(ticks, ticks[1:])], [1000] * (len(ticks) - 1),
           "the healthy schedule fired every tick")
        eq(runs(api.http, "stuck00"), [], "a full queue takes no job")
        # Each stuck schedule is read at most about once a second (no spinning).
        assert hget <= 71 * (window + 2), f"{hget} HGETALLs in {window:.1f} s"
        assert cpu <= 0.1 * window, f"spool-api used {cpu:.2f} s of CPU in {window:.1f} s"
        assert lines <= window / 10 + 2, f"{lines} warnings in {window:.1f} s"
        assert api_sched_errors(api) > 70, "the failures are counted"
    finally:
        api.stop()


def api_sched_errors(api):
    m = api.http.get("/metrics").body.decode()
    for line in m.splitlines():
        if line.startswith("spool_schedule_errors_total"):
            return float(line.split()[-1])
    raise AssertionError(m)


@suite.test
def test_after_sigterm_no_tick_fires_while_requests_drain(ctx):
    import socket
    prefix = "term:"
    api = api_on(ctx, prefix)
    sock = None
    try:
        eq(create(api.http, "every", cron="@every 1s").status, 201)
        wait_until(lambda: len(runs_via_redis(ctx, prefix, "every")) >= 1, 5, 0.05,
                   what="a first tick")
        # A request in flight: the stop waits for it (up to SPOOL_SHUTDOWN_GRACE).
        sock = socket.create_connection(("127.0.0.1", api.port))
        sock.sendall(b"POST /v1/exports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"title\":")
        wait_until(lambda: api.in_flight() >= 1, 5, 0.05, what="the request in flight")
        api.proc.signal(signal.SIGTERM)
        t_term = time.time() * 1000
        time.sleep(3)
        assert api.proc.alive(), "spool-api still drains the request"
        late = [x for x in runs_via_redis(ctx, prefix, "every") if tick_ms(x["tick_at"]) > t_term]
        eq(late, [], "no tick fired after SIGTERM")
    finally:
        if sock:
            sock.close()
        api.stop(signal.SIGKILL)


@suite.test
def test_ticks_of_a_template_that_no_longer_validates_count_as_invalid_not_missed(ctx):
    prefix = "invalid:"
    api = api_on(ctx, prefix)
    try:
        eq(create(api.http, "broken").status, 201)
        wait_until(lambda: runs(api.http, "broken"), 5, 0.05, what="a first tick")
        # What a stored template that today's validation refuses looks like.
        ctx["redis"].cli("HSET", f"{prefix}sched:broken", "job",
                         json.dumps({"type": "pdf.export", "params": {"rows": [{"a": 1}]}}))
        n = len(runs(api.http, "broken"))
        wait_until(lambda: api.http.get("/v1/schedules/broken").json()["invalid_total"] >= 2, 6,
                   0.1, what="ticks passed over as invalid")
        s = api.http.get("/v1/schedules/broken").json()
        eq(s["missed_total"], 0, f"{s}")
        assert len(runs(api.http, "broken")) <= n + 1, "no job for the invalid ticks"
        m = api.http.get("/metrics").body.decode()
        assert 'spool_schedule_ticks_total{outcome="missed"} 0' in m, m
        inv = [ln for ln in m.splitlines() if ln.startswith('spool_schedule_ticks_total{outcome="invalid"}')]
        assert inv and int(inv[0].split()[-1]) >= 2, inv
    finally:
        api.stop()


def runs_via_redis(ctx, prefix, name):
    out = ctx["redis"].cli("ZRANGE", f"{prefix}sched:{name}:runs", "0", "-1", "WITHSCORES").split()
    from datetime import datetime, timezone
    return [{"job_id": out[i], "tick_at": datetime.fromtimestamp(int(out[i + 1]) / 1000, timezone.utc)
             .isoformat().replace("+00:00", "Z")} for i in range(0, len(out), 2)]


@suite.test
def test_paused_fires_nothing_patch_takes_effect_and_delete_stops_it(ctx):
    api = api_on(ctx, "patch:")
    http = api.http
    try:
        r = create(http, "later", paused=True)
        eq((r.status, r.json()["paused"], r.json()["next_run_at"]), (201, True, None), f"{r}")
        time.sleep(2.2)
        eq(runs(http, "later"), [], "a paused schedule fires nothing")
        r = patch(http, "later", {"paused": False})
        eq((r.status, r.json()["paused"]), (200, False), f"{r}")
        assert r.json()["next_run_at"], r.json()
        wait_until(lambda: len(runs(http, "later")) >= 2, 5, 0.1, what="the resumed schedule")
        # A new interval: ticks from then on are whole multiples of 3 s.
        r = patch(http, "later", {"cron": "@every 3s", "job": {"type": "pdf.export", "params": {
            "title": "changed", "rows": [{"b": 2}]}}})
        eq((r.status, r.json()["cron"]), (200, "@every 3s"), f"{r}")
        t_change = time.time() * 1000
        wait_until(lambda: len([x for x in runs(http, "later") if tick_ms(x["tick_at"]) > t_change]) >= 2,
                   10, 0.1, what="two ticks of the new interval")
        new = [x for x in runs(http, "later") if tick_ms(x["tick_at"]) > t_change]
        eq([tick_ms(x["tick_at"]) % 3000 for x in new], [0] * len(new), "every 3 s")
        eq({x["job"]["params"]["title"] for x in new}, {"changed"}, "the new template")
        # missed and timezone change; a cron expression with a zone
        r = patch(http, "later", {"missed": "run_once", "timezone": "Europe/Berlin"})
        eq((r.status, r.json()["missed"], r.json()["timezone"]), (200, "run_once", "Europe/Berlin"))
        r = http.delete("/v1/schedules/later")
        eq((r.status, r.json()["name"]), (200, "later"), f"{r}")
        eq(http.get("/v1/schedules/later").status, 404)
        eq(http.delete("/v1/schedules/later").status, 404)
        eq(http.get("/v1/schedules/later/runs").status, 404)
        before = len(ctx["redis"].cli("ZRANGE", "patch:jobs", "0", "-1").split())
        time.sleep(2.5)
        eq(len(ctx["redis"].cli("ZRANGE", "patch:jobs", "0", "-1").split()), before,
           "a deleted schedule makes no job")
        # Created again under its name: a new generation, its own ticks (no collision
        # with the old one's idempotency keys).
        eq(create(http, "later").status, 201)
        wait_until(lambda: len(runs(http, "later")) >= 1, 5, 0.1, what="the new schedule")
        eq(http.delete("/v1/schedules/later").status, 200)
    finally:
        api.stop()


def refused(r, status, field=None, code=None):
    eq(r.status, status, f"{r}")
    e = r.json()["error"]
    if field is not None:
        eq(e.get("field"), field, f"{e}")
    if code is not None:
        eq(e["code"], code, f"{e}")


@suite.test
def test_validation_names_the_field_and_limits_hold_at_the_edges(ctx):
    api = api_on(ctx, "limits:", {"SPOOL_MAX_SCHEDULES": "3", "SPOOL_SCHEDULER": "off",
                                 "SPOOL_INLINE_DATASET_MAX": "128K"})
    http = api.http
    try:
        video = {"type": "video.transcode", "params": {"source_url": "https://example.com/v.mp4"}}
        cases = [
            ({"cron": "@daily", "job": EXPORT}, "name"),
            ({"name": "a", "job": EXPORT}, "cron"),
            ({"name": "a", "cron": "@daily"}, "job"),
            ({"name": "a", "cron": "61 * * * *", "job": EXPORT}, "cron"),
            ({"name": "a", "cron": "0 0 30 2 *", "job": EXPORT}, "cron"),
            ({"name": "a", "cron": "@every 0s", "job": EXPORT}, "cron"),
            ({"name": "a", "cron": "@daily", "timezone": "Mars/Olympus", "job": EXPORT}, "timezone"),
            ({"name": "a", "cron": "@daily", "timezone": "../../etc/passwd", "job": EXPORT}, "timezone"),
            *[({"name": "a", "cron": "@daily", "timezone": tz, "job": EXPORT}, "timezone")
              for tz in ("localtime", "posixrules", "right/UTC", "posix/Europe/Berlin", "Factory",
                         "XYZ-3", "+01", "EST+5", "utc")],
            ({"name": "a", "cron": "@daily", "missed": "sometimes", "job": EXPORT}, "missed"),
            ({"name": "a", "cron": "@daily", "paused": "yes", "job": EXPORT}, "paused"),
            ({"name": "a", "cron": "@daily", "job": EXPORT, "colour": 1}, "colour"),
            ({"name": "a", "cron": "@daily", "job": {"type": "x", "params": {}}}, "job.type"),
            ({"name": "a", "cron": "@daily", "job": {"type": "pdf.export"}}, "job.params"),
            ({"name": "a", "cron": "@daily", "job": dict(EXPORT, extra=1)}, "job"),
            ({"name": "a", "cron": "@daily", "job": {"type": "pdf.export", "params": {"rows": [{"a": 1}]}}},
             "job.params.title"),
            ({"name": "a", "cron": "@daily", "job": {"type": "pdf.export", "params": {
                "title": "t", "rows": [{"a": 1}], "page_size": "A9"}}}, "job.params.page_size"),
            ({"name": "a", "cron": "@daily", "job": {"type": "video.transcode", "params": {}}},
             "job.params.source_url"),
            ({"name": "a", "cron": "@daily", "job": {"type": "video.transcode", "params": {
                "source_url": "http://127.0.0.1/v.mp4"}}}, "job.params.source_url"),
            ({"name": "a", "cron": "@daily", "job": {"type": "pdf.export", "params": {
                "title": "t", "rows": [{"a": 1}], "delay": 5}}}, "job.params.delay"),
            ({"name": "a", "cron": "@daily", "job": {"type": "video.transcode", "params": dict(
                video["params"], run_at="2030-01-01T00:00:00Z")}}, "job.params.run_at"),
            ({"name": "a", "cron": "@daily", "job": {"type": "pdf.export", "params": {
                "title": "t", "rows": [{"a": "x" * 1000} for _ in range(140)]}}}, "job.params.rows"),
        ]
        for body, field in cases:
            refused(http.post("/v1/schedules", body=body), 422, field, "invalid_field")
        refused(http.post("/v1/schedules", body=b"{nope", headers={"Content-Type": "application/json"}),
                400, code="invalid_json")
        refused(http.post("/v1/schedules", body=b"{}", headers={"Content-Type": "text/plain"}), 415)
        refused(http.post("/v1/schedules", body=b'{"name":"' + b"a" * (1024 * 1024) + b'"}',
                          headers={"Content-Type": "application/json"}), 413)
        refused(http.post("/v1/schedules?x=1", body={}), 422, "x")
        # names: 64 characters and the charset at the edges
        for name, ok in (("n" * 63, True), ("n" * 64, True), ("n" * 65, False), ("a b", False),
                         (".dot", False), ("-dash", False), ("a/b", False), ("ü", False),
                         ("A_z.0-9", True)):
            r = create(http, name, cron="@daily")
            if ok:
                eq(r.status, 201, f"{name}: {r}")
                eq(http.delete(f"/v1/schedules/{name}").status, 200)
            else:
                refused(r, 422, "name")
        eq(http.get("/v1/schedules/" + "n" * 65).status, 404)
        # the number of schedules: limit-1, limit, limit+1
        for i in range(3):
            eq(create(http, f"s{i}", cron="@daily").status, 201, f"schedule {i + 1} of 3")
        refused(create(http, "s3", cron="@daily"), 409, code="too_many_schedules")
        refused(create(http, "s0", cron="@daily"), 409, code="schedule_exists")
        eq(http.delete("/v1/schedules/s2").status, 200)
        eq(create(http, "s3", cron="@daily").status, 201, "room again after a delete")
        page = http.get("/v1/schedules?limit=2").json()
        eq(([s["name"] for s in page["schedules"]], page["next"]), (["s0", "s1"], "s1"))
        page = http.get("/v1/schedules?limit=2&after=s1").json()
        eq(([s["name"] for s in page["schedules"]], page["next"]), (["s3"], None))
        refused(http.get("/v1/schedules?limit=0"), 422, "limit")
        refused(http.get("/v1/schedules?limit=1001"), 422, "limit")
        for i in (0, 1, 3):
            eq(http.delete(f"/v1/schedules/s{i}").status, 200)
        # the template's size as compact JSON: limit-1, limit, limit+1
        def job_of(size):
            base = {"type": "pdf.export", "params": {"title": "t", "rows": []}}
            row = '{"a":""}'
            n_rows = (size - len(json.dumps(base, separators=(",", ":")))) // 501
            rows = [{"a": "x" * (501 - len(row) - 1)} for _ in range(n_rows)]
            base["params"]["rows"] = rows
            cur = len(json.dumps(base, separators=(",", ":")))
            base["params"]["title"] = "t" * (1 + size - cur)
            eq(len(json.dumps(base, separators=(",", ":"))), size, "template size")
            return base
        for size, ok in ((JOB_MAX - 1, True), (JOB_MAX, True), (JOB_MAX + 1, False)):
            r = create(http, f"big{size}", cron="@daily", job=job_of(size))
            if ok:
                eq(r.status, 201, f"a template of {size} bytes: {r}")
                eq(http.delete(f"/v1/schedules/big{size}").status, 200)
            else:
                refused(r, 422, "job")
        # PATCH: the same checks; a schedule that does not exist
        eq(create(http, "p", cron="@daily", job=video).status, 201)
        refused(patch(http, "p", {"cron": "* * *"}), 422, "cron")
        refused(patch(http, "p", {"timezone": "localtime"}), 422, "timezone")
        for tz in ("Etc/GMT-14", "US/Eastern", "UTC"):
            r = patch(http, "p", {"timezone": tz})
            eq((r.status, r.json().get("timezone")), (200, tz), f"{r}")
        refused(patch(http, "p", {"name": "q"}), 422, "name")
        refused(patch(http, "p", {"job": {"type": "video.transcode", "params": {"preset": "x"}}}),
                422, "job.params.preset")
        refused(patch(http, "nope", {"paused": True}), 404, code="not_found")
        refused(http.request("PUT", "/v1/schedules/p", body={}), 405)
        eq(http.request("PATCH", "/v1/schedules/p", body=b"{}",
                        headers={"Content-Type": "application/json"}).status, 200)
        refused(http.get("/v1/schedules/p/runs?before=nope"), 422, "before")
        refused(http.get("/v1/schedules/p/runs?before=" + "0" * 36), 422, "before")
        eq(http.get("/v1/schedules/p/runs").json(), {"runs": [], "next": None})
        eq(http.delete("/v1/schedules/p").status, 200)
    finally:
        api.stop()


@suite.test
def test_spoolctl_creates_shows_pauses_resumes_lists_runs_and_deletes(ctx):
    api = api_on(ctx, "ctl:")
    ctl = os.path.join(BIN, "spoolctl")
    env = dict(os.environ, SPOOL_SERVER=f"http://127.0.0.1:{api.port}")

    def run(*args, ok=True):
        p = subprocess.run([ctl, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=30)
        if ok:
            eq(p.returncode, 0, f"spoolctl {args}: {p.stderr}")
        return p
    try:
        tmpl = json.dumps(EXPORT)
        out = run("schedule", "create", "ctl-every", "--cron", "@every 1s", "--timezone", "UTC",
                  "--missed", "run_once", "--job", tmpl, "--json")
        eq(json.loads(out.stdout)["name"], "ctl-every")
        wait_until(lambda: len(runs(api.http, "ctl-every")) >= 2, 5, 0.1, what="ticks")
        shown = run("schedule", "show", "ctl-every").stdout
        assert "ctl-every" in shown and "@every 1s" in shown and "run_once" in shown, shown
        run("schedule", "pause", "ctl-every")
        eq(api.http.get("/v1/schedules/ctl-every").json()["paused"], True)
        listed = run("schedules").stdout
        assert "ctl-every" in listed and "paused" in listed, listed
        r = json.loads(run("schedule", "runs", "ctl-every", "--json").stdout)
        assert len(r["runs"]) >= 2, r
        text = run("schedule", "runs", "ctl-every").stdout
        assert r["runs"][0]["job_id"] in text, text
        run("schedule", "resume", "ctl-every")
        eq(api.http.get("/v1/schedules/ctl-every").json()["paused"], False)
        p = run("schedule", "create", "bad", "--cron", "@every 0s", "--job", tmpl, ok=False)
        assert p.returncode != 0 and "cron" in p.stderr, (p.returncode, p.stderr)
        run("schedule", "delete", "ctl-every")
        p = run("schedule", "show", "ctl-every", ok=False)
        assert p.returncode != 0 and "not_found" in p.stderr + p.stdout, (p.stdout, p.stderr)
    finally:
        api.stop()


@suite.test
def test_spoolctl_lists_every_page_and_caps_the_job_file(ctx):
    api = api_on(ctx, "ctlpages:", {"SPOOL_SCHEDULER": "off", "SPOOL_MAX_SCHEDULES": "2000"})
    ctl = os.path.join(BIN, "spoolctl")
    env = dict(os.environ, SPOOL_SERVER=f"http://127.0.0.1:{api.port}")

    def run(*args):
        return subprocess.run([ctl, *args], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    try:
        names = [f"p{i:04d}" for i in range(1002)]  # past one page of 1000
        for n in names:
            eq(create(api.http, n, cron="@daily").status, 201, n)
        p = run("schedules", "-q")
        eq(p.returncode, 0, p.stderr)
        eq(p.stdout.split(), names, "every schedule, in order, once")
        p = run("schedules", "--json")
        eq(p.returncode, 0, p.stderr)
        got = json.loads(p.stdout)
        eq(([s["name"] for s in got["schedules"]], got["next"]), (names, None))
        # --job @FILE: at most 1 MiB (limit-1 and limit go to the API, limit+1 does not)
        tmpl = json.dumps(EXPORT)
        for size, ok in ((1024 * 1024 - 1, True), (1024 * 1024, True), (1024 * 1024 + 1, False)):
            path = os.path.join(suite.tmp, f"job-{size}.json")
            with open(path, "w") as f:
                f.write(tmpl + " " * (size - len(tmpl)))
            eq(os.path.getsize(path), size)
            p = run("schedule", "create", f"f{size}", "--cron", "@daily", "--job", "@" + path)
            if ok:
                eq(p.returncode, 0, f"{size}: {p.stderr}")
            else:
                assert p.returncode != 0 and "larger than" in p.stderr, (p.returncode, p.stderr)
                eq(api.http.get(f"/v1/schedules/f{size}").status, 404)
    finally:
        api.stop()


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

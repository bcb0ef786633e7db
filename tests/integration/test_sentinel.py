#!/usr/bin/env python3
"""Redis Sentinel: SPOOL_REDIS_URL=redis-sentinel://[[user:]password@]h:p[,h:p...][/db]#NAME.
Every process finds the master through the sentinels and finds the new one by itself
after a failover. A kill -9 of the master in the middle of a stream of mixed jobs
loses no job that was answered 202 (SPOOL_REDIS_WAIT_REPLICAS=1: a 202 waits until a
replica has the job) and completes none twice; the API and both workers carry on
within a second of the sentinels naming the new master. WAIT's effect is seen with a
stopped replica (503 not_replicated, then the same job for the same Idempotency-Key),
and a sentinel setup that cannot work is said clearly: unreachable sentinels, a master
name they do not know, a malformed URL (refused at start)."""
import json
import os
import re
import signal
import socket
import threading
import time
import types
from datetime import datetime

from harness import (BIN, Http, Proc, Sentinel, Skip, Suite, eq, free_port, make_clip,
                     wait_until)
from test_api import ApiServer

suite = Suite("sentinel")
EXPORT = {"title": "t", "columns": [{"key": "a"}], "rows": [{"a": 1}]}
COLUMNS = [{"key": "name", "label": "Name"}, {"key": "n", "label": "N", "format": "number"}]


def need_binaries():
    if not all(os.access(os.path.join(BIN, b), os.X_OK)
               for b in ("spool-api", "spool-video", "spool-pdf")):
        raise Skip("spool-api, spool-video or spool-pdf not built")


def worker(kind, url, data, wid, **extra):
    env = {"SPOOL_REDIS_URL": url, "SPOOL_DATA_DIR": data, "SPOOL_LOG_FORMAT": "json",
           "SPOOL_WORKER_ID": wid, "SPOOL_VIDEO_THREADS": "1"}
    env.update({k: str(v) for k, v in extra.items()})
    return Proc([os.path.join(BIN, f"spool-{kind}")], env=env, name=wid, logdir=suite.tmp)


def log_lines(proc):
    """The JSON lines of a process's log, each with "t" (the time as a Unix time)."""
    out = []
    for raw in proc.output().splitlines():
        try:
            d = json.loads(raw)
        except ValueError:
            continue
        if isinstance(d, dict) and "msg" in d and "time" in d:
            d["t"] = datetime.fromisoformat(d["time"].replace("Z", "+00:00")).timestamp()
            out.append(d)
    return out


def without(text, *urls):
    """text with every given URL taken out (a log that quotes the URL names "sentinel"
    without saying anything)."""
    for u in urls:
        text = text.replace(u, "<url>")
    return text


# ---- the harness ----------------------------------------------------------------------

@suite.test
def test_harness_a_killed_master_is_replaced_within_ten_seconds():
    s = Sentinel(password="harness-pass")
    try:
        old = s.master_addr()
        eq(s.role(old), "master", "the first master")
        eq(s.cli("SET", "before", "kept"), "OK")
        eq(s.cli("WAIT", 1, 2000), "1", "replicas that have the write")
        assert s.url.startswith("redis-sentinel://:harness-pass@127.0.0.1:") and \
            s.url.endswith("/0#spool") and s.url.count(",") == 2, s.url
        killed = s.kill_master()
        writable = s.wait_failover(old, 15)
        everyone = s.wait_reported_by_all(s.new_master, 10)
        print(f"# kill -9 -> new master {s.new_master} writable and reported: "
              f"{writable - killed:.2f} s; reported by all three sentinels: {everyone - killed:.2f} s",
              flush=True)
        assert writable - killed < 10, f"failover took {writable - killed:.2f} s"
        assert s.new_master != old
        eq(s.master_addr(), s.new_master, "the sentinels' master")
        eq(s.cli("GET", "before"), "kept", "a write the replica had")
        eq(s.cli("SET", "after", "1"), "OK", "a write to the new master")
        t = time.monotonic()
        back = s.restart_old_master()
        print(f"# the old master back as a replica in {time.monotonic() - t:.2f} s", flush=True)
        eq(back.cli("ROLE").splitlines()[0], "slave", "the old master's role")
        eq(back.cli("GET", "after"), "1", "the old master's copy")
    finally:
        s.destroy()
    procs = [n.proc for n in s.nodes] + [p for _, p in s.sentinels]
    eq([p.poll() is None for p in procs], [False] * len(procs), "processes alive after destroy")
    assert not os.path.exists(s.dir), s.dir


# ---- a failover under load -------------------------------------------------------------

JOBS = 60
BURST = 30  # submitted at once, so both queues have work when the master dies


class Submitter(threading.Thread):
    """Submits JOBS jobs (video uploads and PDF exports, alternately), each with its own
    Idempotency-Key, from several threads: the first BURST at once, the rest one every
    100 ms from when the test calls pace() (right after it stops the master, so that
    some are sent during the failover and some after it however long the burst took
    to be accepted and the queues to fill on a loaded machine). A 503 or a connection error is sent again with the same key after 50 ms
    (a client that honoured Retry-After would blur when the API came back), up to 40 s."""

    def __init__(self, port, clip):
        super().__init__(daemon=True)
        self.port, self.clip = port, clip
        self.results = {}       # i -> {"id", "at" (time of the 202), "statuses"}
        self.lock = threading.Lock()
        self.next = 0
        self.errors = []
        self.paced = threading.Event()
        self.t_paced = None

    def pace(self):
        """Start the submissions after the burst, one every 100 ms from now."""
        self.t_paced = time.monotonic()
        self.paced.set()

    def request(self, i):
        key = f"sentinel-{i}"
        if i % 2 == 0:
            return ("/v1/videos?preset=mp4-480p&thumbnail=true", self.clip,
                    {"Content-Type": "video/mp4", "Idempotency-Key": key})
        rows = [[f"job {i} row {n}", n] for n in range(6000)]
        body = json.dumps({"title": f"Sentinel {i}", "columns": COLUMNS, "rows": rows}).encode()
        return "/v1/exports", body, {"Content-Type": "application/json", "Idempotency-Key": key}

    def submit(self, i):
        path, body, headers = self.request(i)
        http = Http("127.0.0.1", self.port)
        statuses = []
        end = time.monotonic() + 40
        while time.monotonic() < end:
            try:
                r = http.post(path, body, headers=headers, timeout=20)
            except OSError as e:
                statuses.append(type(e).__name__)
                time.sleep(0.05)
                continue
            if r.status == 202:
                return {"id": r.json()["id"], "at": time.time(), "statuses": statuses + [202]}
            if r.status == 503:
                statuses.append((503, r.json()["error"]["code"]))
                time.sleep(0.05)
                continue
            return {"id": None, "statuses": statuses + [(r.status, r.body[:200])]}
        return {"id": None, "statuses": statuses + ["gave up after 40 s"]}

    def lane(self):
        while True:
            with self.lock:
                i = self.next
                self.next += 1
            if i >= JOBS:
                return
            if i >= BURST:
                if not self.paced.wait(60):
                    with self.lock:
                        self.errors.append("pace() was not called within 60 s")
                    return
                due = self.t_paced + (i - BURST) * 0.1
                if due > time.monotonic():
                    time.sleep(due - time.monotonic())
            res = self.submit(i)
            with self.lock:
                self.results[i] = res

    def run(self):
        try:
            lanes = [threading.Thread(target=self.lane, daemon=True) for _ in range(4)]
            for t in lanes:
                t.start()
            for t in lanes:
                t.join()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def accepted(self):
        with self.lock:
            return sum(1 for r in self.results.values() if r["id"])


def queue_view(http):
    r = http.get("/v1/queues", timeout=5)
    eq(r.status, 200, r.body)
    return {q["name"]: q for q in r.json()["queues"]}


def first_after(lines, t, prefix):
    return next((d for d in lines if d["t"] > t and d["msg"].startswith(prefix)), None)


@suite.test
def test_a_master_killed_mid_run_loses_no_job_runs_none_twice_and_everyone_reconnects():
    failover_mid_run("kill")


@suite.test
def test_a_master_frozen_through_a_failover_takes_no_work_when_it_wakes():
    """SIGSTOP of the master until the sentinels have promoted a replica, then SIGCONT:
    for about ten seconds the old master is a master again, with the other replica still
    following it (so WAIT 1 passes there), until the sentinels turn it into a replica and
    throw its writes away. No process may go on with it: nothing lost, nothing twice."""
    failover_mid_run("freeze")


def failover_mid_run(how):
    need_binaries()
    # Two replicas: with WAIT 1 the API needs one besides the new master.
    s = Sentinel(replicas=2)
    api = pdf = video = None
    try:
        clip = open(make_clip(os.path.join(suite.tmp, "clip.mp4"), seconds=1, size="160x120",
                              rate=15), "rb").read()
        common = {"SPOOL_REDIS_WAIT_REPLICAS": "1", "SPOOL_LEASE": "8s"}
        api = ApiServer(suite, s, dict(common, SPOOL_LOG_FORMAT="json"), name="api-failover")
        video = worker("video", s.url, api.data, "video-1", **common)
        pdf = worker("pdf", s.url, api.data, "pdf-1", **common)
        sub = Submitter(api.port, clip)
        sub.start()
        # The master dies once the burst is in, while both workers run a job and have
        # more waiting, and while the paced submissions go on.
        wait_until(lambda: sub.accepted() >= BURST or sub.errors, 30, 0.01, what="the burst accepted")

        def busy():
            q = queue_view(api.http)
            return all(q[n]["depth"] >= 1 and q[n]["running"] >= 1 for n in ("pdf", "video")) and q
        seen = wait_until(busy, 10, 0.01, what="both queues busy")
        old = s.master_addr()
        if how == "kill":
            killed = s.kill_master()
        else:
            node = s.node_at(old)
            node.proc.send_signal(signal.SIGSTOP)
            killed = time.time()
        print(f"# master {old} {how} with {sub.accepted()} jobs accepted; queues "
              f"{ {n: (q['depth'], q['running']) for n, q in seen.items()} } (depth, running)", flush=True)
        sub.pace()
        writable = s.wait_failover(old, 15)
        if how == "freeze":
            node.proc.send_signal(signal.SIGCONT)
        everyone = s.wait_reported_by_all(s.new_master, 10)
        sub.join(90)
        assert not sub.is_alive(), "the submissions did not end"
        assert not sub.errors, sub.errors
        refused = {i: r["statuses"] for i, r in sub.results.items() if not r["id"]}
        assert not refused, f"submissions never accepted: {refused}"
        eq(len(sub.results), JOBS, "submissions answered")
        ids = {r["id"]: i for i, r in sub.results.items()}
        eq(len(ids), JOBS, "distinct job ids for distinct keys")

        # Every job ends, succeeded.
        def settled():
            views = {j: api.http.get(f"/v1/jobs/{j}", timeout=10) for j in ids}
            if any(v.status != 200 or v.json()["state"] not in ("succeeded", "failed", "cancelled")
                   for v in views.values()):
                return None
            return {j: v.json() for j, v in views.items()}
        views = wait_until(settled, 60, 0.5, what="every accepted job to end")
        states = {j: v["state"] for j, v in views.items() if v["state"] != "succeeded"}
        if states:
            # What the record and the workers say about each, for the failure message.
            for j in states:
                v = views[j]
                print(f"# {j}: {v['state']}, attempts {v['attempts']}, error "
                      f"{json.dumps(v.get('error'))}", flush=True)
                for p in (api.proc, video, pdf):
                    for d in log_lines(p):
                        if d.get("job") == j or j in d["msg"]:
                            print(f"#   {p.name} {d['t']:.3f} {d.get('level')} {d['msg']}", flush=True)
        eq(states, {}, "jobs that did not succeed")

        # No job besides the accepted ones (a retry with a key made no second job).
        index = set(s.cli("ZRANGE", "spool:jobs", 0, -1).split())
        eq(sorted(index - set(ids)), [], "jobs nobody was answered for")
        eq(sorted(set(ids) - index), [], "accepted jobs missing from the index")

        # Exactly once: one accepted success per job in the workers' logs, the queues'
        # succeeded counters (counted by the step that ends a job) equal to the jobs,
        # one attempt each, each job's outputs once, on disk as recorded.
        lines = {p.name: log_lines(p) for p in (video, pdf)}
        wins, starts, done = {}, {}, {}
        for name, ls in lines.items():
            for d in ls:
                if not d.get("job"):
                    continue
                if d["msg"].startswith("succeeded in"):
                    wins.setdefault(d["job"], []).append(name)
                elif d["msg"].startswith("started "):
                    starts[d["job"]] = starts.get(d["job"], 0) + 1
                elif d["msg"].startswith(("encoded ", "exported ")):
                    done[d["job"]] = done.get(d["job"], 0) + 1
        eq({j: w for j, w in wins.items() if len(w) != 1}, {}, "jobs whose success was logged twice")
        eq(sorted(set(ids) - set(wins)), [], "jobs with no success logged")
        totals = {n: q["totals"]["succeeded"] for n, q in queue_view(api.http).items()}
        eq(sum(totals.values()), JOBS, f"the queues' succeeded counters {totals}")
        attempts = {j: v["attempts"] for j, v in views.items() if v["attempts"] != 1}
        redone = {j: n for j, n in done.items() if n > 1}
        print(f"# jobs started more than once: {sum(1 for n in starts.values() if n > 1)}; "
              f"work done more than once: {len(redone)}; attempts other than 1: {attempts}", flush=True)
        eq(attempts, {}, "jobs with more than one attempt")
        for j, v in views.items():
            want = ["poster.jpg", "video.mp4"] if v["type"] == "video.transcode" else ["export.pdf"]
            eq(sorted(o["name"] for o in v["outputs"]), want, f"outputs of {j}")
            for o in v["outputs"]:
                path = os.path.join(api.data, "jobs", j[-2:], j, o["name"])
                eq(os.path.getsize(path), o["bytes"], f"{path} against its record")

        # Each process found the new master by itself, soon after the sentinels named it.
        lag = everyone - writable
        limit = 1.0 + lag
        first_202 = min((r["at"] for r in sub.results.values() if r["at"] > writable), default=None)
        print(f"# kill -9 -> new master writable and named by a sentinel: {writable - killed:.2f} s; "
              f"named by all three: {everyone - killed:.2f} s (lag {lag:.2f} s)", flush=True)
        late = []
        t = None if first_202 is None else first_202 - writable
        print(f"# first 202 after that: {t if t is None else round(t, 2)} s "
              f"(limit {limit:.2f} s)", flush=True)
        if t is None or t > limit:
            late.append(f"api: first 202 after {t} s")
        for name, ls in lines.items():
            d = first_after(ls, writable, "succeeded in")
            st = first_after(ls, writable, "started ")
            if d is None:
                late.append(f"{name}: no job completed after the failover")
                continue
            # A job the worker started after the failover needs its own run time too.
            run = 0.0
            if st is not None and st["job"] == d["job"]:
                run = int(re.match(r"succeeded in (\d+) ms", d["msg"]).group(1)) / 1000.0
            took = d["t"] - writable
            print(f"# {name}: first job completed {took:.2f} s after (its run after the failover "
                  f"{run:.2f} s; limit {limit + run:.2f} s); first start "
                  f"{'none' if st is None else round(st['t'] - writable, 2)} s after", flush=True)
            if took > limit + run:
                late.append(f"{name}: first completion {took:.2f} s after the failover")
        statuses = [x for r in sub.results.values() for x in r["statuses"] if x != 202]
        print(f"# answers before a 202 during the failover: {len(statuses)} "
              f"{sorted(set(map(str, statuses)))[:6]}", flush=True)
        eq(late, [], "processes that did not carry on within the limit")
        for p in (api.proc, video, pdf):
            assert p.alive(), f"{p.name} exited:\n{p.output()[-2000:]}"
    finally:
        for w in (video, pdf):
            if w:
                w.stop()
        if api:
            api.stop()
        s.destroy()


# ---- WAIT --------------------------------------------------------------------------------

@suite.test
def test_wait_replicas_503s_while_the_replica_is_stopped_and_the_retry_gets_the_same_job():
    need_binaries()
    s = Sentinel(password="wait-pass")
    replica = s.replicas()[0]
    strict = lax = None
    try:
        strict = ApiServer(suite, s, {"SPOOL_REDIS_WAIT_REPLICAS": "1",
                                      "SPOOL_REDIS_WAIT_TIMEOUT": "500ms"}, name="wait-1")
        lax = ApiServer(suite, s, {"SPOOL_REDIS_WAIT_REPLICAS": "0",
                                   "SPOOL_REDIS_WAIT_TIMEOUT": "500ms"}, name="wait-0")
        eq(strict.http.post("/v1/exports", EXPORT).status, 202, "a submit with the replica up")
        before = int(s.cli("ZCARD", "spool:jobs"))
        replica.proc.send_signal(signal.SIGSTOP)
        key = {"Idempotency-Key": "wait-k1"}
        t = time.monotonic()
        r = strict.http.post("/v1/exports", EXPORT, headers=key)
        took = time.monotonic() - t
        print(f"# WAIT 1 with the replica stopped: {r.status} after {took:.2f} s", flush=True)
        eq(r.status, 503, r.body)
        eq(r.json()["error"]["code"], "not_replicated", "error code")
        assert int(r.headers.get("retry-after", "0")) > 0, r.headers
        assert 0.4 <= took < 2.0, f"answered after {took:.2f} s, WAIT timeout 500ms"
        replica.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: s.cli("WAIT", 1, 200) == "1", 10, what="the replica caught up")
        again = strict.http.post("/v1/exports", EXPORT, headers=key)
        eq(again.status, 202, again.body)
        jid = again.json()["id"]
        eq(strict.http.post("/v1/exports", EXPORT, headers=key).json()["id"], jid, "a second retry")
        eq(int(s.cli("ZCARD", "spool:jobs")), before + 1, "jobs made by the key's three requests")
        eq(replica.cli("HGET", f"spool:job:{jid}", "state"), "queued", "the replica's copy")
        # WAIT 0: the stopped replica is not waited for.
        replica.proc.send_signal(signal.SIGSTOP)
        t = time.monotonic()
        r = lax.http.post("/v1/exports", EXPORT, headers={"Idempotency-Key": "wait-k2"})
        took = time.monotonic() - t
        print(f"# WAIT 0 with the replica stopped: {r.status} after {took:.2f} s", flush=True)
        eq(r.status, 202, r.body)
        assert took < 0.3, f"answered after {took:.2f} s"
    finally:
        if replica.proc.poll() is None:
            replica.proc.send_signal(signal.SIGCONT)
        for a in (strict, lax):
            if a:
                a.stop()
        s.destroy()


@suite.test
def test_a_password_alone_before_the_at_sign_is_the_data_nodes_password():
    """Lettuce's redis-sentinel://password@host form: user info without a colon is the
    password (the ":password@" form is what the other tests use)."""
    need_binaries()
    s = Sentinel(password="only-pass")
    url = s.url.replace(":only-pass@", "only-pass@")
    assert url.startswith("redis-sentinel://only-pass@"), url
    api = None
    try:
        api = ApiServer(suite, types.SimpleNamespace(url=url), name="password-only")
        r = api.http.post("/v1/exports", EXPORT)
        eq(r.status, 202, r.body)
        eq(s.cli("HGET", f"spool:job:{r.json()['id']}", "state"), "queued", "the job in Redis")
    finally:
        if api:
            api.stop()
        s.destroy()


# ---- setups that cannot work ---------------------------------------------------------

def assert_quick_503(api, code, word):
    t = time.monotonic()
    r = api.http.get("/readyz", timeout=10) if code == "not_ready" else \
        api.http.post("/v1/exports", EXPORT, timeout=10)
    took = time.monotonic() - t
    eq(r.status, 503, r.body)
    eq(r.json()["error"]["code"], code, "error code")
    assert int(r.headers.get("retry-after", "0")) > 0, r.headers
    assert word in r.json()["error"]["message"].lower(), r.body
    assert took < 3, f"answered after {took:.2f} s"
    return r


@suite.test
def test_unreachable_sentinels_are_named_in_the_log_and_readyz_without_a_hang():
    need_binaries()
    # One sentinel accepts connections and never answers; two ports refuse them.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    url = (f"redis-sentinel://127.0.0.1:{silent.getsockname()[1]},127.0.0.1:{free_port()},"
           f"127.0.0.1:{free_port()}/0#spool")
    api = w = None
    try:
        api = ApiServer(suite, types.SimpleNamespace(url=url), name="no-sentinels")
        w = worker("pdf", url, api.data, "pdf-nosentinel")
        wait_until(lambda: "sentinel" in without(api.proc.output(), url).lower(), 10,
                   what="the API's log to name the sentinels")
        r = assert_quick_503(api, "not_ready", "sentinel")
        print(f"# /readyz: {r.json()['error']['message']}", flush=True)
        assert_quick_503(api, "redis_unavailable", "sentinel")
        wait_until(lambda: "sentinel" in without(w.output(), url).lower(), 10,
                   what="the worker's log to name the sentinels")
        assert w.alive() and api.proc.alive(), "a process gave up"
        print("# api log: " + without(api.proc.output(), url).strip().splitlines()[-1][:300], flush=True)
    finally:
        for p in (w, api):
            if p:
                p.stop()
        silent.close()


@suite.test
def test_a_master_name_the_sentinels_do_not_know_is_said_so():
    need_binaries()
    s = Sentinel()
    url = s.url.replace("#spool", "#nosuchmaster")
    api = w = None
    try:
        api = ApiServer(suite, types.SimpleNamespace(url=url), name="wrong-name")
        w = worker("video", url, api.data, "video-wrongname")
        know = re.compile(r"(don't|do not|doesn't|does not|no sentinel) know|unknown master", re.I)
        for p in (api.proc, w):
            wait_until(lambda: know.search(without(p.output(), url)) and "nosuchmaster" in
                       without(p.output(), url), 10, what=f"{p.name}'s log to say the name is unknown")
        r = assert_quick_503(api, "not_ready", "nosuchmaster")
        print(f"# /readyz: {r.json()['error']['message']}", flush=True)
        assert w.alive() and api.proc.alive(), "a process gave up"
    finally:
        for p in (w, api):
            if p:
                p.stop()
        s.destroy()


# (URL, what the message must say: the problem itself, not only the expected syntax)
NO_NAME = r"\bmaster\b"
NO_HOST = r"\b(missing|no|empty)\b[^.]*\b(host|sentinel)s?\b"
MALFORMED = [
    ("redis-sentinel://127.0.0.1:26379/0", NO_NAME),
    ("redis-sentinel://127.0.0.1:26379/0#", NO_NAME),
    ("redis-sentinel:///0#spool", NO_HOST),
    ("redis-sentinel://#spool", NO_HOST),
    ("redis-sentinel://127.0.0.1:26379,/0#spool", NO_HOST),
]


@suite.test
def test_a_malformed_sentinel_url_stops_every_binary_at_start_naming_the_problem():
    need_binaries()
    wrong = []
    for url, why in MALFORMED:
        for b in ("spool-api", "spool-pdf", "spool-video"):
            p = Proc([os.path.join(BIN, b)], env={"SPOOL_REDIS_URL": url,
                                                  "SPOOL_LISTEN": "127.0.0.1:0",
                                                  "SPOOL_DATA_DIR": os.path.join(suite.tmp, "bad")},
                     name=b, logdir=suite.tmp)
            try:
                code = p.wait(10)
            except AssertionError:
                code = None
            said = without(p.output(), url).strip()
            p.stop()
            if code in (0, None) or not re.search(why, said, re.I):
                wrong.append(f"{b} with {url}: exit {code}, said {said[-300:]!r}")
        print(f"# {url}: {said.splitlines()[-1][:200] if said else ''}", flush=True)
    eq(wrong, [], "binaries that did not refuse the URL clearly")


if __name__ == "__main__":
    raise SystemExit(suite.run())

#!/usr/bin/env python3
"""make bench-sse: live events (Server-Sent Events) at scale on one spool-api process.

Starts a private redis-server and one spool-api (default settings but no per-address
connection limit, since every client here is 127.0.0.1), opens BENCH_SSE_STREAMS
(default 500) streams on GET /v1/events from BENCH_SSE_PROCS (default 4) client
processes, then writes BENCH_SSE_EVENTS (default 200) job events to the event stream,
one XADD every BENCH_SSE_INTERVAL_MS (default 20), as the job scripts do (EVENTS.md).
Each event carries its send time (wall clock, ns) in its job type, so every client
measures the delay from the state change (the XADD) to the event's arrival. Then real
jobs: BENCH_SSE_JOBS (default 100) PDF exports submitted through the API and cancelled
at once, one every BENCH_SSE_INTERVAL_MS, whose events the job scripts write
themselves (enqueue and cancel); their delay is measured from the stream entry's time
(the script's own clock, Redis's, ms resolution). It prints spool-api's VmRSS with
every stream open and at the end, its threads, and the delivery latency p50/p99/max
over every (event, stream) pair, with PASS or MISS against the targets: p99 <= 50 ms,
RSS < 64 MiB, every event delivered to every stream.

Environment: BENCH_SSE_STREAMS, BENCH_SSE_PROCS, BENCH_SSE_EVENTS, BENCH_SSE_JOBS,
BENCH_SSE_INTERVAL_MS, SPOOL_BIN_DIR.
"""
import http.client
import json
import multiprocessing
import os
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from sse_client import RedisPipe, SseParser, request_bytes, split_head, vm_rss_kib  # noqa: E402

BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
STREAMS = int(os.environ.get("BENCH_SSE_STREAMS", "500"))
PROCS = max(1, int(os.environ.get("BENCH_SSE_PROCS", "4")))
EVENTS = int(os.environ.get("BENCH_SSE_EVENTS", "200"))
JOBS = int(os.environ.get("BENCH_SSE_JOBS", "100"))
INTERVAL_MS = float(os.environ.get("BENCH_SSE_INTERVAL_MS", "20"))
P99_TARGET_MS = 50
RSS_TARGET_KIB = 64 * 1024
KEY = "spool:events"
JOB = "0benchbenchbenchbenchbenchbenchbench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


TYPE_RE = re.compile(rb'"type":"b\.(\d+)"')
REAL_RE = re.compile(rb'"id":"(\d+)-\d+/\d+","job_id":"[0-9a-z]+","state":"[a-z]+",'
                     rb'"progress":\d+,"queue":"pdf","type":"pdf\.export"')


class FastParser(SseParser):
    """Chunked decoding as SseParser, but only the send times of the bench's events are
    picked out of the text (a JSON parse per event would make the clients, not the
    server, the thing measured)."""

    def __init__(self):
        super().__init__()
        self.sent = []
        self.real = []  # entry times (ms) of the real jobs' events

    def feed(self, data):
        self.take(data)
        end = self.text.rfind(b"\n\n")
        if end >= 0:
            self.sent += [int(m) for m in TYPE_RE.findall(self.text, 0, end)]
            self.real += [int(m) for m in REAL_RE.findall(self.text, 0, end)]
            self.text = self.text[end + 2:]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_proc(port, n, events, ready, go, out, go2):
    """Open n streams, say so, then read until every stream has `events` events; send
    back the latencies (ms) and how many events each stream got; then the same for the
    real jobs' events (2 per job) once go2 is set."""
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request_bytes("/v1/events"))
        s.setblocking(False)
        c = {"s": s, "head": b"", "p": None, "n": 0, "r": 0}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    lat, real = [], []

    def pump(pred, timeout):
        end = time.monotonic() + timeout
        while not pred() and time.monotonic() < end:
            for key, _ in sel.select(0.2):
                c = key.data
                data = c["s"].recv(262144)
                now = time.time_ns()
                if not data:
                    sel.unregister(c["s"])
                    continue
                if c["p"] is None:
                    c["head"] += data
                    got = split_head(c["head"])
                    if not got:
                        continue
                    if got[0] != 200:
                        raise RuntimeError(f"stream answered {got[0]}")
                    c["p"] = FastParser()
                    data = got[2]
                p = c["p"]
                p.feed(data)
                for t in p.sent:
                    lat.append((now - t) / 1e6)
                for t in p.real:
                    real.append(now / 1e6 - t)
                c["n"] += len(p.sent)
                c["r"] += len(p.real)
                p.sent = []
                p.real = []
    pump(lambda: all(c["p"] is not None for c in conns), 60)
    ready.put(sum(c["p"] is not None for c in conns))
    go.wait()
    pump(lambda: all(c["n"] >= events for c in conns), 60 + events * INTERVAL_MS / 1000)
    out.put((lat, [c["n"] for c in conns]))
    go2.wait()
    pump(lambda: all(c["r"] >= 2 * JOBS for c in conns), 60 + JOBS * INTERVAL_MS / 500)
    out.put((real, [c["r"] for c in conns]))
    for c in conns:
        c["s"].close()


def main():
    tmp = tempfile.mkdtemp(prefix="spool-bench-sse-")
    rport, aport = free_port(), free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", tmp],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = None
    procs = []
    try:
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(rport), "PING"],
                                          capture_output=True).stdout.strip() == b"PONG",
                   10, "redis")
        env = dict(os.environ, SPOOL_REDIS_URL=f"redis://127.0.0.1:{rport}/0",
                   SPOOL_LISTEN=f"127.0.0.1:{aport}", SPOOL_DATA_DIR=os.path.join(tmp, "data"),
                   SPOOL_MAX_CONNECTIONS_PER_IP="0", SPOOL_LOG_LEVEL="warn")
        api = subprocess.Popen([os.path.join(BIN, "spool-api")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", aport), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, 20, "spool-api")
        ctx = multiprocessing.get_context("fork")
        ready, out, go, go2 = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
        per = [STREAMS // PROCS + (1 if i < STREAMS % PROCS else 0) for i in range(PROCS)]
        for n in per:
            p = ctx.Process(target=client_proc, args=(aport, n, EVENTS, ready, go, out, go2))
            p.start()
            procs.append(p)
        opened = sum(ready.get(timeout=120) for _ in procs)
        time.sleep(0.5)
        rss_open = vm_rss_kib(api.pid)
        threads = len(os.listdir(f"/proc/{api.pid}/task"))
        cpu0 = cpu_s(api.pid)
        go.set()
        pipe = RedisPipe(rport)
        t0 = time.monotonic()
        for i in range(EVENTS):
            due = t0 + i * INTERVAL_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pipe.xadd(KEY, [(JOB, "running", i % 101, "video", f"b.{time.time_ns()}")])
        lat, counts = [], []
        for _ in procs:
            lt, cn = out.get(timeout=120 + EVENTS * INTERVAL_MS / 1000)
            lat += lt
            counts += cn
        rss_end = vm_rss_kib(api.pid)
        cpu = cpu_s(api.pid) - cpu0
        wall = time.monotonic() - t0
        # real jobs: submitted and cancelled through the API, their events written by
        # the job scripts
        go2.set()
        conn = http.client.HTTPConnection("127.0.0.1", aport, timeout=30)
        body = json.dumps({"title": "bench", "rows": [{"a": 1}]})
        t1 = time.monotonic()
        for i in range(JOBS):
            due = t1 + i * INTERVAL_MS / 1000
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.request("POST", "/v1/exports", body, {"Content-Type": "application/json"})
            r = conn.getresponse()
            jid = json.loads(r.read())["id"]
            conn.request("DELETE", f"/v1/jobs/{jid}")
            conn.getresponse().read()
        conn.close()
        rlat, rcounts = [], []
        for _ in procs:
            lt, cn = out.get(timeout=120 + JOBS * INTERVAL_MS / 500)
            rlat += lt
            rcounts += cn
        rss_end = max(rss_end, vm_rss_kib(api.pid))
        pipe.close()
        lat.sort()
        want = STREAMS * EVENTS
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
        print(f"bench-sse: {opened} of {STREAMS} streams open on one spool-api "
              f"({threads} threads); {EVENTS} events, one every {INTERVAL_MS:g} ms")
        print(f"  delivered: {len(lat)} of {want} (event, stream) pairs "
              f"{'PASS' if len(lat) == want and min(counts, default=0) == EVENTS else 'MISS'}")
        print(f"  latency from XADD to the client: p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
              f"max {lat[-1] if lat else float('nan'):.2f} ms (target p99 <= {P99_TARGET_MS} ms) "
              f"{'PASS' if p99 <= P99_TARGET_MS else 'MISS'}")
        print(f"  spool-api CPU: {cpu:.2f} s over {wall:.1f} s "
              f"({cpu / (STREAMS * EVENTS) * 1e6:.1f} us per delivery); load average "
              f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        rlat.sort()
        rwant = STREAMS * JOBS * 2
        r50 = statistics.median(rlat) if rlat else float("nan")
        r99 = rlat[min(len(rlat) - 1, int(len(rlat) * 0.99))] if rlat else float("nan")
        print(f"  real jobs ({JOBS} exports submitted and cancelled through the API): "
              f"{len(rlat)} of {rwant} deliveries "
              f"{'PASS' if len(rlat) == rwant else 'MISS'}; latency from the script's entry "
              f"(ms clock) p50 {r50:.1f} ms, p99 {r99:.1f} ms, max "
              f"{rlat[-1] if rlat else float('nan'):.1f} ms "
              f"{'PASS' if r99 <= P99_TARGET_MS else 'MISS'}")
        rss = max(rss_open, rss_end)
        print(f"  spool-api VmRSS: {rss_open / 1024:.1f} MiB with the streams open, "
              f"{rss_end / 1024:.1f} MiB after the events (target < {RSS_TARGET_KIB // 1024} "
              f"MiB) {'PASS' if rss < RSS_TARGET_KIB else 'MISS'}")
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
        if api:
            api.terminate()
            api.wait(30)
        redis.terminate()
        redis.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""make bench-api: spool-api against Flask + Celery, side by side, in one run.

Starts a private redis-server, spool-api (default settings: 4 HTTP threads per core)
and the Flask + Celery baseline (tests/bench/bench_api_celery_app.py) under gunicorn,
then drives both with wrk, the same connection count and the same payload:
  1. POST /v1/exports with a small inline body. spool-api writes the rows to the job's
     dataset file (docs/jobs.md) and runs its enqueue script; Celery .delay()s the task
     with the rows in the message. spool-api is measured twice: with SPOOL_DATA_DIR on
     the disk (a directory and a file per job) and on tmpfs (/dev/shm), because a file
     per job is what the disk's metadata speed decides.
  2. GET /v1/jobs/{id} of an existing job.
It prints requests/s, p50 and p99 latency for each, the ratios, and spool-api's own
server time per request (from its /metrics histogram).

Environment: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 32),
BENCH_GUNICORN_WORKERS (default 2 * cores + 1, gunicorn's advice), SPOOL_BIN_DIR.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
CORES = os.cpu_count() or 1
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", str(2 * CORES + 1)))
PAYLOAD = json.dumps({"title": "Monthly report",
                      "columns": [{"key": "day", "format": "date"},
                                  {"key": "amount", "format": "number", "decimals": 2}],
                      "rows": [{"day": "2024-01-0%d" % i, "amount": i * 10.5} for i in range(1, 6)]})
procs = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, env=None, log=None):
    p = subprocess.Popen(argv, env=dict(os.environ, **(env or {})), stdout=log or subprocess.DEVNULL,
                         stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def stop_all():
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def wait_http(url, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def post(url):
    req = urllib.request.Request(url, PAYLOAD.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


def wrk(url, script=None, conns=None, seconds=None):
    c = conns or CONNS
    argv = ["wrk", f"-t{min(2, c)}", f"-c{c}", f"-d{seconds or SECONDS}s", "--latency",
            "--timeout", "10s"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         check=True).stdout.decode()

    def pct(p):
        m = re.search(r"^\s+%d%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, out, re.M)
        if m is None:
            print(f"(could not read the p{p} latency from wrk:)\n{out}")
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50": pct(50), "p99": pct(99),
            "non2xx": int(bad.group(1)) if bad else 0, "errors": errs.group(0) if errs else "",
            "raw": out}


def server_totals(port, route):
    """(sum of seconds, count) of spool-api's request duration histogram for route."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    s = re.search(r'^spool_api_request_duration_seconds_sum\{route="%s"\} ([\d.]+)$' % re.escape(route), text, re.M)
    c = re.search(r'^spool_api_request_duration_seconds_count\{route="%s"\} (\d+)$' % re.escape(route), text, re.M)
    return (float(s.group(1)), int(c.group(1))) if s and c else (0.0, 0)


def server_time_us(port, route, fn):
    """Run fn() and return spool-api's mean server time per request of route during it."""
    s0, c0 = server_totals(port, route)
    result = fn()
    s1, c1 = server_totals(port, route)
    return result, ((s1 - s0) / (c1 - c0) * 1e6 if c1 > c0 else float("nan"))


def main():
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-api needs {tool} (make deps)")
    tmp = tempfile.mkdtemp(prefix="spool-bench-api-")
    log = open(os.path.join(tmp, "servers.log"), "wb")
    try:
        rport, aport, tport, fport = free_port(), free_port(), free_port(), free_port()
        start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmp], log=log)
        redis_url = f"redis://127.0.0.1:{rport}/0"
        shm = tempfile.mkdtemp(prefix="spool-bench-api-", dir="/dev/shm") \
            if os.path.isdir("/dev/shm") else None
        for port, data, prefix in [(aport, os.path.join(tmp, "data"), "spool:"),
                                   (tport, shm, "shm:")]:
            if data is None:
                continue
            start([os.path.join(BIN, "spool-api")], env={
                "SPOOL_REDIS_URL": redis_url, "SPOOL_DATA_DIR": data, "SPOOL_KEY_PREFIX": prefix,
                # A queue limit is on by default (enqueue by script); keep it on, above
                # what a run can fill.
                "SPOOL_LISTEN": f"127.0.0.1:{port}", "SPOOL_QUEUE_LIMIT": "100000000",
                "SPOOL_LOG_LEVEL": "info", "SPOOL_GC_INTERVAL": "0"}, log=log)
        start(["/usr/bin/python3", "-m", "gunicorn", "-w", str(WORKERS), "-b", f"127.0.0.1:{fport}",
               "--chdir", HERE, "--log-level", "warning", "bench_api_celery_app:app"],
              env={"BENCH_REDIS_URL": redis_url, "PYTHONPATH": HERE}, log=log)
        wait_http(f"http://127.0.0.1:{aport}/healthz")
        api = f"http://127.0.0.1:{aport}"
        api_shm = f"http://127.0.0.1:{tport}" if shm else None
        if api_shm:
            wait_http(api_shm + "/healthz")
        celery = f"http://127.0.0.1:{fport}"
        s_status, spool_job = post(api + "/v1/exports")
        c_status = None
        for _ in range(100):
            try:
                c_status, celery_job = post(celery + "/v1/exports")
                break
            except Exception:
                time.sleep(0.1)
        assert s_status == 202 and c_status == 202, (s_status, c_status)
        script = os.path.join(tmp, "post.lua")
        with open(script, "w") as f:
            f.write('wrk.method = "POST"\nwrk.body = [[%s]]\n'
                    'wrk.headers["Content-Type"] = "application/json"\n' % PAYLOAD)
        threads = re.search(r"(\d+) threads\)", open(log.name, "rb").read().decode(errors="replace"))
        print(f"bench-api: {SECONDS}s per run, wrk -t2 -c{CONNS}, {CORES} cores; spool-api with "
              f"{threads.group(1) if threads else '?'} HTTP threads; gunicorn with {WORKERS} sync "
              f"workers (2 x cores + 1)")
        print(f"payload: {len(PAYLOAD)} bytes of JSON, 5 rows\n")
        # One connection first: the time a small request costs when the server is not
        # saturated (the "well under a millisecond of server time").
        one = {}
        for label, base, path, lua in [("POST /v1/exports, data on disk", api, "/v1/exports", script),
                                       ("POST /v1/exports, data on tmpfs", api_shm, "/v1/exports", script),
                                       ("GET /v1/jobs/{id}", api, "/v1/jobs/" + spool_job["id"], None)]:
            if base is None:
                continue
            port = int(base.rsplit(":", 1)[1])
            route = "/v1/exports" if lua else "/v1/jobs/{id}"
            one[label] = server_time_us(port, route, lambda: wrk(base + path, lua, conns=1, seconds=3))
        post_disk, t_disk = server_time_us(aport, "/v1/exports", lambda: wrk(api + "/v1/exports", script))
        post_shm, t_shm = server_time_us(tport, "/v1/exports", lambda: wrk(api_shm + "/v1/exports", script)) \
            if api_shm else (None, None)
        post_celery = wrk(celery + "/v1/exports", script)
        get_spool, t_get = server_time_us(aport, "/v1/jobs/{id}", lambda: wrk(api + "/v1/jobs/" + spool_job["id"]))
        get_celery = wrk(celery + "/v1/jobs/" + celery_job["id"])
        print("one connection (spool-api alone, not saturated):")
        for label, (r, us) in one.items():
            print(f"  {label:<33} {r['rps']:>7.0f} req/s, p50 {r['p50']:.3f} ms, p99 {r['p99']:.3f} ms, "
                  f"server time {us:.0f} us")
        print(f"\n{CONNS} connections:")
        print(f"{'endpoint':<19} {'server':<27} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'non-2xx':>8}")

        def line(name, label, r):
            print(f"{name:<19} {label:<27} {r['rps']:>9.0f} {r['p50']:>9.3f} {r['p99']:>9.3f} "
                  f"{r['non2xx']:>8}" + (f"  {r['errors']}" if r["errors"] else ""))

        def ratio(name, label, s, c):
            print(f"{name:<19} {label:<27} {s['rps'] / c['rps']:>8.1f}x {c['p50'] / s['p50']:>8.1f}x "
                  f"{c['p99'] / s['p99']:>8.1f}x")
        line("POST /v1/exports", "spool-api, data on disk", post_disk)
        if post_shm:
            line("POST /v1/exports", "spool-api, data on tmpfs", post_shm)
        line("POST /v1/exports", "flask+celery", post_celery)
        ratio("POST /v1/exports", "ratio, disk", post_disk, post_celery)
        if post_shm:
            ratio("POST /v1/exports", "ratio, tmpfs", post_shm, post_celery)
        line("GET /v1/jobs/{id}", "spool-api", get_spool)
        line("GET /v1/jobs/{id}", "flask+celery", get_celery)
        ratio("GET /v1/jobs/{id}", "ratio", get_spool, get_celery)
        print(f"\nspool-api mean server time per request at {CONNS} connections (its /metrics; "
              f"includes waiting for a CPU): POST disk {t_disk:.0f} us"
              + (f", POST tmpfs {t_shm:.0f} us" if t_shm else "") + f", GET {t_get:.0f} us")
        ratios = {"POST, disk": post_disk["rps"] / post_celery["rps"],
                  "GET": get_spool["rps"] / get_celery["rps"]}
        if post_shm:
            ratios["POST, tmpfs"] = post_shm["rps"] / post_celery["rps"]
        print("target: at least 10x Flask + Celery requests/s -> " +
              ", ".join(f"{k} {v:.1f}x ({'met' if v >= 10 else 'NOT met'})" for k, v in ratios.items()))
    finally:
        stop_all()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        for d in os.listdir("/dev/shm") if os.path.isdir("/dev/shm") else []:
            if d.startswith("spool-bench-api-"):
                shutil.rmtree(os.path.join("/dev/shm", d), ignore_errors=True)


if __name__ == "__main__":
    main()

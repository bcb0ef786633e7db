#!/usr/bin/env python3
"""make bench-api: spool-api against Flask + Celery, side by side, in one run.

Starts a private redis-server, spool-api (default settings: four HTTP threads per core,
its blob store in a directory on the disk) and the Flask + Celery baseline
(tests/bench/bench_api_celery_app.py) under gunicorn in two configurations at once:
sync workers (BENCH_GUNICORN_WORKERS, default 2) and threaded gthread workers
(BENCH_GTHREAD=WxT, default 4x4). Both defaults are the fastest found on the 2-core VM
(BENCH_API_SEARCH below, three runs): sync 2 workers ahead of 3, 4 and 5 (gunicorn's
2 x cores + 1); gthread with 4 threads ahead of 1 and 2, and 2x4, 4x4 and 5x4 within
the machine's noise of each other. Three cases:
  1. POST /v1/exports, 5 rows inline (333 bytes): the rows stay in the job record
     (Redis), no file; the peer puts them in the Celery message.
  2. POST /v1/exports, rows just over the inline limit (SPOOL_INLINE_DATASET_MAX,
     16 KiB by default) as canonical NDJSON: spool-api writes them to the job's
     `dataset` blob, a file in the data directory; the peer writes the same NDJSON to a
     file and enqueues its name. The bench checks that both did, request by request
     (a file per accepted request), and that spool's record names the blob.
  3. GET /v1/jobs/{id} of an existing job.
wrk (C, one thread: it uses under a fifth of a core, which the bench prints) sends the
same number of requests (BENCH_REQUESTS, default 2000; half of that in the dataset-file
case) at the same concurrency (BENCH_CONNECTIONS, default 32) to every side; a run ends
when that many answers are in (a few more may be, answered in the same loop turn).
Redis and the CPU time of each side's processes are read from /proc. Rounds (BENCH_ROUNDS, default 5) run every case on every side back to
back, in a rotating order, so that the other work on the machine hits all sides alike;
the summary gives medians over the rounds with the min-max spread, and the ratio
spool-api / the better peer configuration of the same round (median and spread of the
per-round ratios). It prints throughput, p50 and p99 latency, the CPU the servers and
wrk used, spool-api's peak RSS and the peers' total RSS.

BENCH_API_SEARCH=1 instead runs gunicorn sync {2,3,4,5} workers and gthread
{2,3,4,5} x {1,2,4} side by side (or BENCH_SEARCH_CONFIGS, such as s5,2x4,4x1) on the
inline POST and the GET (BENCH_SEARCH_ROUNDS rounds, 3 by default) and prints their
req/s.

Environment: BENCH_REQUESTS, BENCH_CONNECTIONS, BENCH_ROUNDS, BENCH_GUNICORN_WORKERS,
BENCH_GTHREAD, BENCH_WRK_THREADS (default 1), BENCH_API_SEARCH, SPOOL_BIN_DIR.
"""
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CORES = os.cpu_count() or 1
SYNC_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
GTHREAD = tuple(int(x) for x in os.environ.get("BENCH_GTHREAD", "4x4").split("x"))
WRK_THREADS = int(os.environ.get("BENCH_WRK_THREADS", "1"))
RUN_TIMEOUT = 300  # seconds a run may take before the bench gives up
INLINE_MAX = 16384  # spool-api's default SPOOL_INLINE_DATASET_MAX (16K)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def export_body(nrows):
    return {"title": "Monthly report",
            "columns": [{"key": "day", "format": "date"},
                        {"key": "amount", "format": "number", "decimals": 2}],
            "rows": [{"day": "2024-%02d-%02d" % (i // 28 % 12 + 1, i % 28 + 1),
                      "amount": round(i * 10.5, 2)} for i in range(1, nrows + 1)]}


def ndjson_bytes(body):
    return sum(len(json.dumps(r, separators=(",", ":"))) + 1 for r in body["rows"])


SMALL = json.dumps(export_body(5))
# The fewest rows whose canonical NDJSON is over the inline limit: just past it.
_n = 1
while ndjson_bytes(export_body(_n)) <= INLINE_MAX:
    _n += 1
LARGE_ROWS = _n
LARGE = json.dumps(export_body(_n))
procs = []
REDIS_PID = [0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, env=None, log=None):
    p = subprocess.Popen(argv, env=dict(os.environ, **(env or {})), stdout=log or subprocess.DEVNULL,
                         stderr=subprocess.STDOUT, start_new_session=True)
    procs.append(p)
    return p


def stop(p):
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def stop_all():
    for p in reversed(procs):
        stop(p)


def wait_http(url, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def post(url, body):
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, json.loads(r.read())


# ---- processes: CPU and memory from /proc ------------------------------------------

def group_pids(pgid):
    """The live processes of a process group (a server started in its own session)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / TICK


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^%s:\s+(\d+) kB" % key, f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            m = re.search(r"^Pss:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


# ---- load generation ----------------------------------------------------------------

def wrk_script(path, method, body, requests, threads):
    """A wrk script that stops each thread after its share of answers."""
    share = [requests // threads + (1 if i < requests % threads else 0) for i in range(threads)]
    with open(path, "w") as f:
        f.write('local shares = {%s}\nlocal next_share = 1\n' % ", ".join(map(str, share)))
        f.write('function setup(thread)\n  thread:set("limit", shares[next_share])\n'
                '  next_share = next_share + 1\nend\n')
        f.write(f'wrk.method = "{method}"\n')
        if body is not None:
            f.write('wrk.body = [====[%s]====]\nwrk.headers["Content-Type"] = "application/json"\n'
                    % body)
        # wrk's main thread sleeps for -d whatever its threads do: each says on stderr
        # that it is done, and wrk() interrupts wrk once all have (which ends the run).
        f.write('local n = 0\nfunction response(status, headers, body)\n  n = n + 1\n'
                '  if n == limit then\n    wrk.thread:stop()\n'
                '    io.stderr:write("done\\n")\n    io.stderr:flush()\n  end\nend\n')
    return path


def wrk(url, script, conns, server_pids, tmp):
    """Run wrk until the script's request count is answered. Returns its numbers, the
    CPU seconds the server, Redis and wrk used during the run."""
    c = max(conns, WRK_THREADS)
    argv = ["wrk", f"-t{WRK_THREADS}", f"-c{c}", "-d600s", "--latency", "--timeout", "10s",
            "-s", script, url]
    out_path = os.path.join(tmp, "wrk.out")
    cpu0, rcpu0 = cpu_seconds(server_pids()), cpu_seconds([REDIS_PID[0]])
    with open(out_path, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
        done = 0
        while done < WRK_THREADS:
            ready, _, _ = select.select([p.stderr], [], [], RUN_TIMEOUT)
            line = p.stderr.readline() if ready else b""
            if not line:
                break  # wrk ended, or a server stalled: its output says
            done += line.strip() == b"done"
        wall = time.monotonic() - t0
        p.send_signal(signal.SIGINT)
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = 0  # reaped above
        p.stderr.close()
    if done < WRK_THREADS:
        raise RuntimeError(f"{url}: wrk's threads did not all finish within {RUN_TIMEOUT} s:\n"
                           + open(out_path).read())
    cpu1, rcpu1 = cpu_seconds(server_pids()), cpu_seconds([REDIS_PID[0]])
    text = open(out_path).read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"wrk failed:\n{text}")

    def pct(p):
        m = re.search(r"^\s+%d%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, text, re.M)
        if m is None:
            raise RuntimeError(f"could not read the p{p} latency from wrk:\n{text}")
        return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]
    done = int(re.search(r"(\d+) requests in", text).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors:.*", text)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
            "p50": pct(50), "p99": pct(99), "requests": done,
            "non2xx": int(bad.group(1)) if bad else 0,
            "errors": errs.group(0) if errs else "",
            "server_cpu": cpu1 - cpu0, "redis_cpu": rcpu1 - rcpu0, "wrk_cpu": ru.ru_utime + ru.ru_stime, "wall": wall,
            "raw": text}


# ---- sides --------------------------------------------------------------------------

class Side:
    """One server under test: its base URL, how to count what it wrote, its processes."""

    def __init__(self, name, base, proc, data_dir, files):
        self.name, self.base, self.proc, self.data_dir = name, base, proc, data_dir
        self.count_files = files
        self.get_path = None
        self.results = {}      # case -> [result per round]
        self.rss_peak_kib = 0  # the largest total RSS seen after a run
        self.pss_peak_kib = 0

    def pids(self):
        return group_pids(self.proc.pid)

    def sample_memory(self):
        pids = self.pids()
        self.rss_peak_kib = max(self.rss_peak_kib, sum(status_kib(p, "VmRSS") for p in pids))
        self.pss_peak_kib = max(self.pss_peak_kib, sum(pss_kib(p) for p in pids))


def spool_dataset_files(data):
    """The committed dataset blobs in spool's directory store: jobs/XY/<id>/dataset."""
    n = 0
    jobs = os.path.join(data, "jobs")
    if not os.path.isdir(jobs):
        return 0
    for shard in os.scandir(jobs):
        for job in os.scandir(shard.path):
            if os.path.exists(os.path.join(job.path, "dataset")):
                n += 1
    return n


def peer_dataset_files(data):
    return sum(1 for d in os.scandir(data) if os.path.exists(os.path.join(d.path, "dataset")))


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), "--raw", *args], stdout=subprocess.PIPE,
                          check=True).stdout.decode().rstrip("\n")


def check_dataset_case(spool, peer_sides, rport):
    """One large POST to each side: spool's record names the dataset blob of the size
    the rows take, past the inline limit, and the file is there with that size; each
    peer wrote one file. The small body and one row fewer than the large one stay inline
    (no file): the large body is just past the limit."""
    st, job = post(spool.base + "/v1/exports", LARGE)
    assert st == 202, st
    inp = json.loads(redis_cli(rport, "HGET", "spool:job:" + job["id"], "input"))
    assert inp.get("blob") == "dataset" and inp["bytes"] > INLINE_MAX, inp
    jid = job["id"]
    path = os.path.join(spool.data_dir, "jobs", jid[-2:], jid, "dataset")
    assert os.path.getsize(path) == inp["bytes"], (path, inp)
    # The small body, and one row fewer than the large one, stay inline: no file.
    for body in (SMALL, json.dumps(export_body(LARGE_ROWS - 1))):
        st, job = post(spool.base + "/v1/exports", body)
        small = json.loads(redis_cli(rport, "HGET", "spool:job:" + job["id"], "input"))
        assert st == 202 and "inline" in small, small
        assert not os.path.exists(os.path.join(spool.data_dir, "jobs", job["id"][-2:], job["id"]))
    for side in peer_sides:
        before = side.count_files()
        st, _ = post(side.base + "/v1/exports", LARGE)
        assert st == 202 and side.count_files() == before + 1, (side.name, st)
    return inp["bytes"], path


# (case, what it is, its share of BENCH_REQUESTS: the file case is slower on every side)
CASES = [("post-inline", "POST /v1/exports, 5 rows inline (rows in the job record, no file)", 1),
         ("post-file", "POST /v1/exports, rows just over the inline limit (a dataset file)", 0.5),
         ("get", "GET /v1/jobs/{id}", 1)]


def run_case(side, case, requests, conns, tmp):
    if case == "get":
        script = wrk_script(os.path.join(tmp, "get.lua"), "GET", None, requests, WRK_THREADS)
        url = side.base + side.get_path
    else:
        body = SMALL if case == "post-inline" else LARGE
        script = wrk_script(os.path.join(tmp, case + ".lua"), "POST", body, requests, WRK_THREADS)
        url = side.base + "/v1/exports"
    files0 = side.count_files() if side.count_files else None
    r = wrk(url, script, conns, side.pids, tmp)
    if files0 is not None:
        r["files"] = side.count_files() - files0
        want = r["requests"] if case == "post-file" else 0
        # wrk stops with up to one request per connection in flight, which the server
        # may still answer: those are written too.
        if not want <= r["files"] <= want + conns:
            raise RuntimeError(f"{side.name} {case}: {r['files']} dataset files for "
                               f"{r['requests']} requests")
    if r["requests"] < requests or r["non2xx"] or r["errors"]:
        raise RuntimeError(f"{side.name} {case}: {r['requests']} of {requests} requests, "
                           f"{r['non2xx']} non-2xx, {r['errors']}\n{r['raw']}")
    side.sample_memory()
    return r


def start_gunicorn(name, port, redis_url, data, log, workers, threads=None):
    os.makedirs(data, exist_ok=True)
    argv = ["/usr/bin/python3", "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
            "--chdir", HERE, "--log-level", "warning"]
    if threads is not None:
        argv += ["-k", "gthread", "--threads", str(threads)]
    p = start(argv + ["bench_api_celery_app:app"],
              env={"BENCH_REDIS_URL": redis_url, "BENCH_DATA_DIR": data,
                   "BENCH_INLINE_MAX": str(INLINE_MAX), "PYTHONPATH": HERE}, log=log)
    base = f"http://127.0.0.1:{port}"
    side = Side(name, base, p, data, lambda: peer_dataset_files(data))
    for _ in range(100):
        try:
            st, job = post(base + "/v1/exports", SMALL)
            break
        except Exception:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"{name} did not answer")
    side.get_path = "/v1/jobs/" + job["id"]
    return side


def warm_up(sides, tmp):
    for side in sides:
        for case, _, _ in CASES:
            run_case(side, case, 200, CONNS, tmp)


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def search(redis_url, tmp, log):
    """Every configuration up at once, each case run on each in turn, rounds in rotating
    order (as the main bench, so that the machine's other work hits them alike)."""
    rounds = int(os.environ.get("BENCH_SEARCH_ROUNDS", "3"))
    names = os.environ.get("BENCH_SEARCH_CONFIGS", "").split(",") if \
        os.environ.get("BENCH_SEARCH_CONFIGS") else \
        [f"s{w}" for w in (2, 3, 4, 5)] + [f"{w}x{t}" for w in (2, 3, 4, 5) for t in (1, 2, 4)]
    sides = []
    for n in names:
        w, t = (int(n[1:]), None) if n.startswith("s") else map(int, n.split("x"))
        name = f"sync {w}" if t is None else f"gthread {w}x{t}"
        sides.append(start_gunicorn(name, free_port(), redis_url,
                                    os.path.join(tmp, "search-" + n), log, w, t))
    print(f"gunicorn configurations, {REQUESTS} requests at {CONNS} connections per case, "
          f"{rounds} rounds, load average {os.getloadavg()[0]:.2f}; req/s, median (min-max):",
          flush=True)
    for side in sides:
        for case in ("post-inline", "get"):
            run_case(side, case, 200, CONNS, tmp)
    for rnd in range(rounds):
        k = rnd * len(sides) // rounds
        for case in ("post-inline", "get"):
            for side in sides[k:] + sides[:k]:
                side.results.setdefault(case, []).append(
                    run_case(side, case, REQUESTS, CONNS, tmp)["rps"])
    for side in sides:
        r = side.results
        print(f"  {side.name:<14} POST {spread(r['post-inline'], '{:.0f}'):<20} "
              f"GET {spread(r['get'], '{:.0f}')}")


def main():
    # make's Ctrl-C or a kill: the servers (in their own sessions) are stopped all the same
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    for tool in ("wrk", "redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            sys.exit(f"bench-api needs {tool} (make deps)")
    tmp = tempfile.mkdtemp(prefix="spool-bench-api-")
    log = open(os.path.join(tmp, "servers.log"), "wb")
    t_start = time.monotonic()
    try:
        rport, aport = free_port(), free_port()
        REDIS_PID[0] = start(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save",
                              "", "--appendonly", "no", "--dir", tmp], log=log).pid
        redis_url = f"redis://127.0.0.1:{rport}/0"
        if os.environ.get("BENCH_API_SEARCH"):
            search(redis_url, tmp, log)
            return
        data = os.path.join(tmp, "data")
        api = start([os.path.join(BIN, "spool-api")], env={
            "SPOOL_REDIS_URL": redis_url, "SPOOL_DATA_DIR": data, "SPOOL_KEY_PREFIX": "spool:",
            # A queue limit is on by default (enqueue by script); keep it on, above what
            # a run can fill.
            "SPOOL_LISTEN": f"127.0.0.1:{aport}", "SPOOL_QUEUE_LIMIT": "100000000",
            "SPOOL_LOG_LEVEL": "info", "SPOOL_GC_INTERVAL": "0"}, log=log)
        spool = Side("spool-api", f"http://127.0.0.1:{aport}", api, data,
                     lambda: spool_dataset_files(data))
        wait_http(spool.base + "/healthz")
        st, job = post(spool.base + "/v1/exports", SMALL)
        assert st == 202, st
        spool.get_path = "/v1/jobs/" + job["id"]
        sync = start_gunicorn(f"gunicorn sync {SYNC_WORKERS}w", free_port(), redis_url,
                              os.path.join(tmp, "peer-sync"), log, SYNC_WORKERS)
        gthr = start_gunicorn(f"gunicorn gthread {GTHREAD[0]}w x {GTHREAD[1]}t", free_port(),
                              redis_url, os.path.join(tmp, "peer-gthread"), log, *GTHREAD)
        peers = [sync, gthr]
        sides = [spool] + peers
        large_bytes, large_path = check_dataset_case(spool, peers, rport)
        threads = re.search(r"(\d+) threads\)", open(log.name, "rb").read().decode(errors="replace"))
        print(f"bench-api: {REQUESTS} requests per run at {CONNS} connections (wrk -t{WRK_THREADS}), "
              f"{ROUNDS} rounds, {CORES} cores, load average {os.getloadavg()[0]:.2f} at the start")
        print(f"spool-api with {threads.group(1) if threads else '?'} HTTP threads, data in "
              f"{data} ({fs_type(data)}); peers: Flask + Celery under {sync.name} and {gthr.name}")
        print(f"bodies: {len(SMALL)} bytes (5 rows, inline); {len(LARGE)} bytes ({LARGE_ROWS} rows, "
              f"{large_bytes} bytes as NDJSON > {INLINE_MAX}: spool wrote {large_path[len(tmp):]} "
              f"of {large_bytes} bytes and its record says input.blob=dataset; {LARGE_ROWS - 1} rows stay "
              f"inline)\n")
        print("warming up...", flush=True)
        warm_up(sides, tmp)
        for rnd in range(ROUNDS):
            print(f"round {rnd + 1} of {ROUNDS}, load average {os.getloadavg()[0]:.2f}...", flush=True)
            order = sides[rnd % 3:] + sides[:rnd % 3]
            for case, _, share in CASES:
                for side in order:
                    side.results.setdefault(case, []).append(
                        run_case(side, case, int(REQUESTS * share), CONNS, tmp))
        print()
        report(spool, peers)
        print(f"\nspool-api peak RSS (VmHWM): {status_kib(api.pid, 'VmHWM') / 1024:.1f} MiB")
        for p in peers:
            n = len(p.pids())
            print(f"{p.name}: total RSS {p.rss_peak_kib / 1024:.1f} MiB over its {n} processes "
                  f"(master + workers; PSS {p.pss_peak_kib / 1024:.1f} MiB: shared pages counted "
                  f"once), the largest seen after a run")
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
    finally:
        stop_all()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{time.monotonic() - t_start:.0f} s in all (removing the jobs' files included)")


def fs_type(path):
    best, kind = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fs = line.split()[:3]
            if (path + "/").startswith(mnt.rstrip("/") + "/") and len(mnt) >= len(best):
                best, kind = mnt, fs
    return kind


def report(spool, peers):
    sides = [spool] + peers
    for case, label, share in CASES:
        print(f"{label}, {int(REQUESTS * share)} requests a run:")
        print(f"  {'server':<26} {'req/s':>18} {'p50 ms':>20} {'p99 ms':>20} {'CPU us/req':>11} "
              f"{'Redis':>6} {'wrk CPU':>8}")
        for s in sides:
            rs = s.results[case]
            cpu = [r["server_cpu"] / r["requests"] * 1e6 for r in rs]
            rcpu = [r["redis_cpu"] / r["requests"] * 1e6 for r in rs]
            wcpu = [r["wrk_cpu"] / r["wall"] * 100 for r in rs]
            print(f"  {s.name:<26} {spread([r['rps'] for r in rs], '{:.0f}'):>18} "
                  f"{spread([r['p50'] for r in rs], '{:.2f}'):>20} "
                  f"{spread([r['p99'] for r in rs], '{:.1f}'):>20} {med(cpu):>11.0f} "
                  f"{med(rcpu):>6.0f} {max(wcpu):>7.0f}%")
        rps, p50, p99, which = [], [], [], []
        for i, r in enumerate(spool.results[case]):
            best = max(peers, key=lambda p: p.results[case][i]["rps"])
            b = best.results[case][i]
            which.append(best.name)
            rps.append(r["rps"] / b["rps"])
            p50.append(b["p50"] / r["p50"])
            p99.append(b["p99"] / r["p99"])
        for p in peers:
            per = [r["rps"] / q["rps"] for r, q in zip(spool.results[case], p.results[case])]
            cpu = [(q["server_cpu"] + q["redis_cpu"]) / (r["server_cpu"] + r["redis_cpu"])
                   * r["requests"] / q["requests"]
                   for r, q in zip(spool.results[case], p.results[case])]
            print(f"  spool-api / {p.name:<26} req/s {spread(per, '{:.1f}x')}; "
                  f"{med(cpu):.1f}x less CPU per request (server + Redis)")
        best_names = ", ".join(sorted(set(which), key=which.index))
        print(f"  spool-api / best peer of each round ({best_names}): req/s "
              f"{spread(rps, '{:.1f}x')}, p50 {spread(p50, '{:.1f}x')} lower, p99 "
              f"{spread(p99, '{:.1f}x')} lower -> 10x goal {'met' if med(rps) >= 10 else 'NOT met'}\n")
    print("req/s, p50 and p99: median of the rounds (min-max); CPU us/req: the server's "
          "processes (spool-api; gunicorn master + workers); Redis: redis-server's CPU us/req; "
          "wrk CPU: the most wrk used of one core in a run.")


if __name__ == "__main__":
    main()

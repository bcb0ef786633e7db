"""The soak's audit, once the chaos has stopped: wait for every job to end, read the
workers' logs and Redis's counters, verify every output (on disk, with ffprobe or
pdfinfo/pdftotext, and through the API), run a blob GC pass and list what is left.
Each function returns plain data; soak.py turns it into the report and the verdict."""
import hashlib
import http.client
import json
import math
import os
import re
import subprocess
import time
from datetime import datetime

from cluster import PREFIX
from harness import ffprobe, wait_until

TERMINAL = ("succeeded", "failed", "cancelled")
INPUT_BLOBS = {"input", "dataset", "source"}
# Lines a worker logs when a job it started is over for it (see common/worker.c).
OVER = ("succeeded in", "given back", "cancelled after", "failed after", "retrying after",
        "lease lost", "finished after its lease ran out", "could not record the outcome")


def http_get(port, path, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def get_job(port, jid):
    """The job as the API shows it, None for 404; retried while the API is away."""
    for _ in range(100):
        try:
            status, body = http_get(port, f"/v1/jobs/{jid}")
        except OSError:
            time.sleep(0.2)
            continue
        if status == 200:
            return json.loads(body)
        if status == 404:
            return None
        time.sleep(0.2)
    raise AssertionError(f"GET /v1/jobs/{jid} kept failing")


def settle(port, ids, timeout):
    """Wait until every job in ids has ended (or timeout). Returns id -> last view
    (None: the API says 404) and the seconds it took."""
    t0 = time.monotonic()
    views = {}
    todo = list(ids)
    while True:
        left = []
        for jid in todo:
            j = get_job(port, jid)
            views[jid] = j
            if j is not None and j["state"] not in TERMINAL:
                left.append(jid)
        todo = left
        if not todo or time.monotonic() - t0 > timeout:
            return views, time.monotonic() - t0
        time.sleep(1.0)


def redis_jobs(redis):
    """Every job id Redis knows (the index and the job keys), with its record."""
    ids = set(redis.cmd("ZRANGE", PREFIX + "jobs", 0, -1) or [])
    ids |= {k[len(PREFIX) + 4:] for k in redis.cmd("KEYS", PREFIX + "job:*") or []}
    ids = sorted(ids)
    recs = redis.pipeline([("HGETALL", PREFIX + "job:" + j) for j in ids])
    out = {}
    for jid, flat in zip(ids, recs):
        if isinstance(flat, list) and flat:
            out[jid] = dict(zip(flat[0::2], flat[1::2]))
    return out


def plan_tag(rec):
    """The plan tag ("soak-<seed>-<i>") a record carries in its title or filename."""
    for field in ("params", "input"):
        try:
            v = json.loads(rec.get(field) or "null")
        except ValueError:
            continue
        if isinstance(v, dict):
            for k in ("title", "filename"):
                m = re.search(r"soak-\d+-\d+", str(v.get(k, "")))
                if m:
                    return m.group(0)
    return None


def queue_counters(redis):
    out = {}
    for q in ("video", "pdf"):
        flat = redis.cmd("HGETALL", f"{PREFIX}q:{q}:stats") or []
        out[q] = {k: int(v) for k, v in zip(flat[0::2], flat[1::2])}
    return out


# ---- the workers' logs ------------------------------------------------------------------

def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_log(proc):
    lines = []
    with open(proc.logpath, "rb") as f:
        for raw in f:
            try:
                d = json.loads(raw)
            except ValueError:
                continue
            if isinstance(d, dict) and "msg" in d:
                d["t"] = ts(d["time"])
                lines.append(d)
    return lines


def worker_logs(procs):
    """Per job: how often each worker said it started it, finished its work (encoded the
    video / exported the PDF), had the success accepted, or had the result discarded;
    and per killed process the jobs it had started and not finished."""
    per_job = {}
    open_at_kill = []  # (proc, killed_at, job id, when it started there)
    starts = []        # (t, job, proc name)
    for p in procs:
        if not p.worker_id:
            continue
        open_jobs = {}
        for d in read_log(p):
            jid, msg = d.get("job"), d["msg"]
            if not jid:
                continue
            c = per_job.setdefault(jid, {"started": 0, "work_done": 0, "succeeded": 0,
                                         "discarded": 0, "procs": [],
                                         "success_t": []})
            if msg.startswith("started "):
                c["started"] += 1
                c["procs"].append(p.name)
                starts.append((d["t"], jid, p.name))
                open_jobs[jid] = d["t"]
            elif msg.startswith("encoded ") or msg.startswith("exported "):
                c["work_done"] += 1
            elif msg.startswith("succeeded in"):
                c["succeeded"] += 1
                c["success_t"].append(d["t"])
            elif msg.startswith("finished after its lease ran out"):
                c["discarded"] += 1
            if msg.startswith(OVER):
                open_jobs.pop(jid, None)
        if p.killed_at is not None:
            for jid, started in open_jobs.items():
                open_at_kill.append((p.name, p.killed_at, jid, started))
    return per_job, open_at_kill, sorted(starts)


def redelivery(open_at_kill, starts):
    """For each job a kill -9 caught mid-run: seconds from the kill to its next start on
    another worker (None: never started again). A job already started elsewhere before
    the kill (its worker had been frozen past the lease first) is left out."""
    out = []
    for name, killed_at, jid, started in open_at_kill:
        nxt = next((t for t, j, p in starts if j == jid and t > started and p != name), None)
        if nxt is not None and nxt < killed_at:
            continue
        out.append((jid, name, None if nxt is None else nxt - killed_at))
    return out


# ---- outputs -----------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()


def job_dir(data, jid):
    return os.path.join(data, "jobs", jid[-2:], jid)


def expected_outputs(job):
    if job["kind"].startswith("video"):
        return sorted(["video.mp4"] + (["poster.jpg"] if job["thumbnail"] else []))
    return ["export.pdf"]


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def check_video(job, clip, view, path, poster):
    bad = []
    info = ffprobe(path)
    dur = float(info["format"].get("duration", 0))
    if abs(dur - clip["seconds"]) > 0.25:
        bad.append(f"duration {dur:.3f} s, the clip's is {clip['seconds']} s")
    v = [s for s in info["streams"] if s["codec_type"] == "video"]
    a = [s for s in info["streams"] if s["codec_type"] == "audio"]
    if len(v) != 1 or v[0]["codec_name"] != "h264" or (v[0]["width"], v[0]["height"]) != (clip["width"], clip["height"]):
        bad.append(f"video streams {[(s['codec_name'], s['width'], s['height']) for s in v]}")
    if (len(a) == 1 and a[0]["codec_name"] == "aac") != clip["audio"] or len(a) > 1:
        bad.append(f"audio streams {[s['codec_name'] for s in a]}, clip has audio: {clip['audio']}")
    if poster:
        p = ffprobe(poster)["streams"]
        if len(p) != 1 or p[0]["codec_name"] != "mjpeg" or (p[0]["width"], p[0]["height"]) != (clip["width"], clip["height"]):
            bad.append(f"poster {[(s['codec_name'], s.get('width'), s.get('height')) for s in p]}")
    return bad


def check_pdf(job, view, path):
    """pdfinfo's title and page count against the job; the last page has the last row
    and "Page M of M". Returns (problems, (rows, pages))."""
    bad = []
    rc, out, err = run(["pdfinfo", path])
    if rc != 0:
        return [f"pdfinfo: {err.strip()}"], None
    m = re.search(r"^Pages:\s+(\d+)$", out, re.M)
    pages = int(m.group(1)) if m else -1
    t = re.search(r"^Title:\s+(.*)$", out, re.M)
    if not t or t.group(1).strip() != f"Soak {job['tag']}":
        bad.append(f"title {t.group(1) if t else None!r}")
    meta = view.get("metadata") or {}
    if (meta.get("rows"), meta.get("pages")) != (job["rows"], pages):
        bad.append(f"metadata rows/pages {meta.get('rows')}/{meta.get('pages')}, "
                   f"sent {job['rows']} rows, pdfinfo {pages} pages")
    rc, text, err = run(["pdftotext", "-f", str(pages), "-l", str(pages), path, "-"])
    last = f"soak{job['i']}r{job['rows'] - 1}"
    if rc != 0 or last not in text or f"Page {pages} of {pages}" not in text:
        bad.append(f"last page lacks {last!r} or 'Page {pages} of {pages}'")
    return bad, (job["rows"], pages)


def fit_pages(samples):
    """Is there one layout, F rows on the first page and R on each later one, that gives
    every export's page count? Returns ((F, R) ranges, []) or (None, outliers)."""
    feasible = []
    for R in range(1, 301):
        lo, hi = 1, 10**9
        for n, p in samples:
            if p <= 1:
                lo = max(lo, n)
            else:
                lo = max(lo, n - (p - 1) * R)
                hi = min(hi, n - (p - 2) * R - 1)
        if lo <= hi:
            feasible.append((R, lo, hi))
    if feasible:
        return feasible, []
    # No single layout: name the exports off the most common one.
    best, best_out = None, samples
    for R in range(1, 301):
        for F in range(1, 301):
            out = [(n, p) for n, p in samples if p != (1 if n <= F else 1 + math.ceil((n - F) / R))]
            if len(out) < len(best_out):
                best, best_out = (R, F), out
    return None, best_out


def verify_outputs(port, data, plan, media, final):
    """Every succeeded job's outputs: the record's names, the files (size), the API's
    copy (sha256), and the media checks. Returns (problems by tag, counts, page samples)."""
    problems = {}
    counts = {"videos": 0, "pdfs": 0, "served": 0}
    samples = []
    for job in plan:
        jid = job.get("id")
        view = final.get(jid) if jid else None
        if not view or view["state"] != "succeeded":
            continue
        bad = []
        names = sorted(o["name"] for o in view["outputs"])
        if names != expected_outputs(job):
            bad.append(f"outputs {names}, expected {expected_outputs(job)}")
        d = job_dir(data, jid)
        for o in view["outputs"]:
            path = os.path.join(d, o["name"])
            if not os.path.isfile(path):
                bad.append(f"{o['name']} missing on disk")
                continue
            if os.path.getsize(path) != o["bytes"]:
                bad.append(f"{o['name']}: {os.path.getsize(path)} bytes on disk, record says {o['bytes']}")
            status, body = http_get(port, o["url"])
            if status != 200 or hashlib.sha256(body).hexdigest() != sha256_file(path):
                bad.append(f"GET {o['url']}: {status}, {len(body)} bytes, not the file on disk")
            else:
                counts["served"] += 1
        if not bad:
            try:
                if job["kind"].startswith("video"):
                    poster = os.path.join(d, "poster.jpg") if job["thumbnail"] else None
                    bad += check_video(job, media[job["clip"]], view, os.path.join(d, "video.mp4"), poster)
                    counts["videos"] += 1
                else:
                    more, sample = check_pdf(job, view, os.path.join(d, "export.pdf"))
                    bad += more
                    if sample:
                        samples.append(sample)
                    counts["pdfs"] += 1
            except (subprocess.SubprocessError, ValueError, KeyError) as e:
                bad.append(f"probe failed: {e!r}")
        if bad:
            problems[job["tag"]] = bad
    return problems, counts, samples


# ---- the blob store ----------------------------------------------------------------------

CANARY = "0" * 36  # a valid id no job has: its directory is for GC to remove


def plant_canary(data):
    d = job_dir(data, CANARY)
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "input")
    with open(p, "wb") as f:
        f.write(b"canary")
    old = time.time() - 7200
    os.utime(p, (old, old))
    os.utime(d, (old, old))
    return d


def backdate(data, seconds):
    """Make every file and directory of the blob store `seconds` older: the settled
    store as it would be after sitting idle that long (the GC goes by modification
    times)."""
    for dirpath, dirs, files in os.walk(data, topdown=False):
        for name in files + dirs + [None]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds), follow_symlinks=False)


def gc_pass(cluster, timeout=60):
    """One blob GC pass over the settled store, as it would run two hours later: stop
    the API, age the store by two hours (past GC's default minimum age of an hour and
    the ten minutes it spares a staging file), plant a directory of no job (the canary),
    start the API with a GC every second, and wait for the canary to go and two more
    intervals to pass."""
    cluster.api.stop()
    canary = plant_canary(cluster.data)
    backdate(cluster.data, 7200)
    cluster.start_api({"SPOOL_GC_INTERVAL": "1s", "SPOOL_GC_MIN_AGE": "1h"})
    wait_until(lambda: not os.path.exists(canary), timeout, 0.1, what="a blob GC pass")
    time.sleep(2.5)


def blob_files(data):
    out = []
    for dirpath, _, files in os.walk(data):
        for f in files:
            out.append(os.path.join(dirpath, f))
    return out


def leftovers(data, live, expected, api_kills):
    """Files that belong to no live job, each as (path, kind): "cut-upload", an upload's
    staging file (input / dataset) written less than 30 s before an API kill, in a
    directory whose job was never created (the API's GC removes it once it has been dead
    for SPOOL_GC_STAGING_AGE), or its marker in staging/; "no-job", any other file in a
    directory of no job; "live-staging", a staging file ("*.tmp-*") of a live job, or
    its marker (a later attempt removes its predecessors' when it starts); "unlisted", a
    file its job does not list as an input or output; "outside", a file outside
    jobs/<xx>/<id>/ and staging/."""
    out = []
    for path in blob_files(data):
        rel = os.path.relpath(path, data)
        parts = rel.split(os.sep)
        name = parts[-1]
        marker = re.match(r"^([0-9a-z]{36})\.((input|dataset)?.*\.tmp-[0-9a-f]+)$", name)
        if len(parts) == 2 and parts[0] == "staging" and marker:
            # a writer's marker (blob.c): "<id>.<staging file name>", judged as that file
            if marker.group(1) in live:
                out.append((rel, "live-staging"))
            else:
                mtime = os.path.getmtime(path)
                cut = marker.group(3) and any(0 <= k - mtime < 30 for k in api_kills)
                out.append((rel, "cut-upload" if cut else "no-job"))
        elif len(parts) != 4 or parts[0] != "jobs":
            out.append((rel, "outside"))
        elif parts[2] not in live:
            mtime = os.path.getmtime(path)
            cut = re.match(r"^(input|dataset)\.tmp-", name) and any(0 <= k - mtime < 30 for k in api_kills)
            out.append((rel, "cut-upload" if cut else "no-job"))
        elif ".tmp-" in name:
            out.append((rel, "live-staging"))
        elif name not in INPUT_BLOBS and name not in expected.get(parts[2], ()):
            out.append((rel, "unlisted"))
    return out

#!/usr/bin/env python3
"""spool on several hosts sharing nothing but Redis and an S3 store (issue 13).

Each process runs in its own network namespace (harness.Netns: `ip netns`, a bridge in
the infra host, a veth pair to each other host, 10.A.B.0/24 addresses inside the
namespaces only): Redis and the S3 store (s3rver behind the signature-checking proxy)
in "infra", spool-api in "api", spool-video in "video", spool-pdf in "pdf", and this
test's client in "client" (the test process's thread enters it: every request, boto3
and redis-cli included, goes over the bridge). Every spool process has its own empty
data, scratch and temporary directories, so no file is shared.

100 jobs, half video transcodes of small generated clips uploaded through the API and
half PDF exports (inline rows kept in the job record, larger inline rows, CSV and
NDJSON bodies stored as datasets), must all succeed once each, by the worker of their
kind; every output downloads through the API and checks out (ffprobe, pdfinfo) and is
byte for byte the object in the store; the store's log shows each blob written and
read from the host that should (the upload by the API, the input read and outputs
written by the worker, downloads read by the API); nothing is left behind: no
multipart upload, no file in any process's directories, no signing fault.

Skipped, saying why, where network namespaces cannot be made (not root, no `ip`,
namespaces refused)."""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, S3, SANITIZED, Http, Netns, Proc, Redis, Suite, eq,  # noqa: E402
                     ffprobe, make_clip, wait_until)

SLOW = 3 if SANITIZED else 1
JOBS = 100
DEADLINE = 150 * SLOW          # seconds for all jobs to end once submitted
PREFIX = "mh/"                 # key prefix in the bucket
HOSTS = ["infra", "api", "video", "pdf", "client"]  # the first is the hub
# (seconds, WxH, audio, noisy): small clips, each its own size and length so an output
# can be matched to its input; the noisy one, lossless, is over the store's part size
# (5 MiB), so the API uploads it in parts.
CLIPS = [(1.0, "160x120", True, False), (0.8, "192x144", False, False),
         (1.2, "176x128", True, False), (0.6, "128x96", True, False),
         (1.0, "144x176", False, False), (1.6, "320x240", True, True)]
BIG_CLIP = 5

suite = Suite("multihost")


class Ctx:
    pass


def proc_env(ctx, role, **extra):
    """role's environment: Redis and the store in infra, and directories of its own:
    data and tmp made empty, scratch left for the process to make (so that it exists
    afterwards shows it was used)."""
    dirs = {k: os.path.join(ctx.root, role, k) for k in ("data", "scratch", "tmp")}
    os.makedirs(dirs["data"])
    os.makedirs(dirs["tmp"])
    ctx.dirs[role] = dirs
    env = {"SPOOL_REDIS_URL": ctx.redis.url, "SPOOL_DATA_DIR": dirs["data"],
           "SPOOL_SCRATCH_DIR": dirs["scratch"], "TMPDIR": dirs["tmp"],
           "SPOOL_LOG_FORMAT": "json", "SPOOL_LOG_LEVEL": "info",
           **ctx.s3.spool_env(prefix=PREFIX)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_api(ctx):
    addr = ctx.net.addr("api")
    proc = Proc([os.path.join(BIN, "spool-api")], name="spool-api", logdir=ctx.root,
                netns=ctx.net.ns("api"),
                env=proc_env(ctx, "api", SPOOL_LISTEN=f"{addr}:0", SPOOL_API_THREADS=2))

    def port():
        m = re.search(r"\(port (\d+),", proc.output())
        if not m and not proc.alive():
            raise AssertionError("spool-api exited:\n" + proc.output()[-3000:])
        return m and int(m.group(1))
    ctx.api = proc
    ctx.http = Http(addr, wait_until(port, 20 * SLOW, what="spool-api to listen"))


def start_worker(ctx, role, binary, **extra):
    proc = Proc([os.path.join(BIN, binary)], name=binary, logdir=ctx.root,
                netns=ctx.net.ns(role),
                env=proc_env(ctx, role, SPOOL_WORKER_ID=ctx.net.ns(role), **extra))
    wait_until(lambda: '"ready: queues' in proc.output() or not proc.alive(), 20 * SLOW,
               what=f"{binary} to be ready")
    if not proc.alive():
        raise AssertionError(f"{binary} exited:\n" + proc.output()[-3000:])
    return proc


def setup():
    ctx = Ctx()
    ctx.root = suite.tmp
    ctx.dirs = {}
    ctx.net = Netns(HOSTS)            # Skip where namespaces cannot be made
    ctx.net.enter("client")           # this thread is the client host from here on
    infra = ctx.net.ns("infra")
    ctx.redis = Redis(host=ctx.net.addr("infra"), netns=infra)
    ctx.s3 = S3(host=ctx.net.addr("infra"), netns=infra)
    ctx.clips = [make_clip(os.path.join(ctx.root, f"clip{i}.mp4"), seconds=s, size=size,
                           audio=audio,
                           extra=["-vf", "noise=alls=100:allf=t", "-qp", "0"] if noisy else [])
                 for i, (s, size, audio, noisy) in enumerate(CLIPS)]
    big = os.path.getsize(ctx.clips[BIG_CLIP])
    if big <= 5 * 1024 * 1024:
        raise AssertionError(f"the noisy clip has {big} bytes, not more than a part")
    start_api(ctx)
    ctx.video = start_worker(ctx, "video", "spool-video", SPOOL_QUEUES="video",
                             SPOOL_CONCURRENCY=2, SPOOL_VIDEO_THREADS=1)
    ctx.pdf = start_worker(ctx, "pdf", "spool-pdf", SPOOL_QUEUES="pdf", SPOOL_CONCURRENCY=2)
    ctx.jobs = []                     # [(id, kind, what was asked)]
    return ctx


def teardown(ctx):
    for p in (ctx.video, ctx.pdf, ctx.api):
        p.stop()
    ctx.net.leave()


# ---- what is submitted -------------------------------------------------------------------

def rows(n, seed):
    return [{"item": f"row {seed}-{i}", "qty": (i * 7 + seed) % 1000, "price": round(i * 1.25 + seed, 2),
             "day": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}"} for i in range(n)]


def submit_video(ctx, i):
    clip = BIG_CLIP if i % 10 == 4 else i % BIG_CLIP
    preset = "webm-720p" if i % 10 == 9 else "mp4-480p"
    thumbnail = i % 2 == 0
    with open(ctx.clips[clip], "rb") as f:
        body = f.read()
    r = ctx.http.post(f"/v1/videos?preset={preset}&thumbnail={'on' if thumbnail else 'off'}"
                      f"&filename=clip{clip}.mp4", body, headers={"Content-Type": "video/mp4"})
    eq(r.status, 202, f"POST /v1/videos: {r}")
    return r.json()["id"], "video", {"clip": clip, "preset": preset, "thumbnail": thumbnail,
                                     "bytes": len(body)}


def submit_pdf(ctx, i):
    title = f"Multihost export {i}"
    kind = i % 4
    if kind in (0, 1):   # inline rows: small ones stay in the record, larger ones are a blob
        data = rows(20 if kind == 0 else 400, i)
        r = ctx.http.post("/v1/exports", {"title": title, "rows": data})
    elif kind == 2:      # a CSV body, stored as the dataset
        data = rows(60, i)
        csv = "item,qty,price,day\n" + "".join(f"{d['item']},{d['qty']},{d['price']},{d['day']}\n"
                                              for d in data)
        r = ctx.http.post(f"/v1/exports?title={title.replace(' ', '%20')}", csv.encode(),
                          headers={"Content-Type": "text/csv"})
    else:                # an NDJSON body, stored as the dataset
        data = rows(90, i)
        nd = "".join(json.dumps(d) + "\n" for d in data)
        r = ctx.http.post(f"/v1/exports?title={title.replace(' ', '%20')}&orientation=landscape",
                          nd.encode(), headers={"Content-Type": "application/x-ndjson"})
    eq(r.status, 202, f"POST /v1/exports: {r}")
    return r.json()["id"], "pdf", {"title": title, "rows": len(data), "dataset": kind != 0}


def wait_ended(ctx, job_id, deadline):
    """The job once it has ended (long polls on its ETag), or its last state at deadline."""
    r = ctx.http.get(f"/v1/jobs/{job_id}")
    while True:
        eq(r.status, 200, f"GET /v1/jobs/{job_id}")
        job = r.json()
        left = deadline - time.monotonic()
        if job["state"] in ("succeeded", "failed", "cancelled") or left <= 0:
            return job
        r = ctx.http.get(f"/v1/jobs/{job_id}?wait={max(1, min(10, int(left)))}",
                         headers={"If-None-Match": r.headers["etag"]}, timeout=30)
        if r.status == 304:
            r = ctx.http.get(f"/v1/jobs/{job_id}")


def log_events(proc):
    """(job id, message) of each JSON log line of proc that names a job."""
    out = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            rec = json.loads(line)
            if "job" in rec:
                out.append((rec["job"], rec["msg"]))
    return out


# ---- the tests ------------------------------------------------------------------------------

@suite.test
def test_each_process_runs_on_its_own_host(ctx):
    """spool-api, spool-video and spool-pdf each in a network namespace of its own,
    Redis and the store together in infra, none of them in the machine's namespace nor
    the client's; each spool process listens or connects only on its host's address."""
    def netns_of(pid):
        return os.readlink(f"/proc/{pid}/ns/net")
    seen = {"api": netns_of(ctx.api.pid), "video": netns_of(ctx.video.pid),
            "pdf": netns_of(ctx.pdf.pid), "redis": netns_of(ctx.redis.proc.pid),
            "s3proxy": netns_of(ctx.s3.proxy.pid), "s3rver": netns_of(ctx.s3.s3rver.pid),
            "machine": ctx.net.machine, "client": os.readlink("/proc/thread-self/ns/net")}
    eq(len({seen["redis"], seen["s3proxy"], seen["s3rver"]}), 1, f"infra's processes: {seen}")
    eq(len({seen[k] for k in ("api", "video", "pdf", "redis", "machine", "client")}), 6,
       f"distinct network namespaces: {seen}")
    for role in ("api", "video", "pdf"):
        out = subprocess.run(["ip", "-n", ctx.net.ns(role), "-4", "-o", "addr"],
                             stdout=subprocess.PIPE, check=True).stdout.decode()
        eq(sorted(re.findall(r"inet (\S+)", out)), sorted(["127.0.0.1/8", f"{ctx.net.addr(role)}/24"]),
           f"{role}'s addresses")
    # Nothing of spool's on the client's loopback: it reaches the API over the bridge.
    eq(ctx.http.host, ctx.net.addr("api"), "the API's address")
    eq(ctx.http.get("/healthz").status, 200, "GET /healthz from the client host")


@suite.test
def test_a_hundred_mixed_jobs_succeed_once_each(ctx):
    start = time.monotonic()
    for i in range(JOBS):
        ctx.jobs.append(submit_video(ctx, i // 2) if i % 2 == 0 else submit_pdf(ctx, i // 2))
    submitted = time.monotonic()
    deadline = submitted + DEADLINE
    ctx.records = {job_id: wait_ended(ctx, job_id, deadline) for job_id, _, _ in ctx.jobs}
    print(f"# {JOBS} jobs submitted in {submitted - start:.1f}s, all ended "
          f"{time.monotonic() - submitted:.1f}s later", flush=True)
    not_done = {j: (r["state"], r["error"]) for j, r in ctx.records.items() if r["state"] != "succeeded"}
    eq(not_done, {}, "jobs that did not succeed")
    eq(sorted({r["attempts"] for r in ctx.records.values()}), [1], "attempts of the jobs")
    # Who ran each job: the record's worker, and the workers' own logs. A worker logs a
    # success once Redis has it, so its line may come just after the record changes.
    def successes(proc):
        return sum(1 for _, m in log_events(proc) if m.startswith("succeeded in "))
    wait_until(lambda: successes(ctx.video) >= JOBS // 2 and successes(ctx.pdf) >= JOBS // 2,
               15, 0.1, what="a success line in the workers' logs for every job")
    logs = {"video": log_events(ctx.video), "pdf": log_events(ctx.pdf)}
    for job_id, kind, _ in ctx.jobs:
        worker = ctx.redis.cli("HGET", f"spool:job:{job_id}", "worker")
        eq(worker, ctx.net.ns(kind), f"worker in the record of {kind} job {job_id}")
        for role, events in logs.items():
            mine = [m for j, m in events if j == job_id]
            started = [m for m in mine if m.startswith("started ")]
            done = [m for m in mine if m.startswith("succeeded in ")]
            want = 1 if role == kind else 0
            eq((len(started), len(done)), (want, want),
               f"spool-{role}'s log: starts and successes of {kind} job {job_id} ({mine})")
    eq(sum(1 for _, k, _ in ctx.jobs if k == "video"), JOBS // 2, "video jobs")


@suite.test
def test_every_output_downloads_through_the_api_and_checks_out(ctx):
    c = ctx.s3.client()
    for job_id, kind, asked in ctx.jobs:
        rec = ctx.records[job_id]
        outs = {o["name"]: o for o in rec["outputs"]}
        if kind == "video":
            ext = "webm" if asked["preset"].startswith("webm") else "mp4"
            want = {f"video.{ext}"} | ({"poster.jpg"} if asked["thumbnail"] else set())
        else:
            want = {"export.pdf"}
        eq(set(outs), want, f"outputs of {kind} job {job_id}")
        for name, o in outs.items():
            r = ctx.http.get(o["url"])
            eq(r.status, 200, f"GET {o['url']}")
            eq((len(r.body), r.headers["content-type"]), (o["bytes"], o["content_type"]),
               f"{o['url']}: size and type")
            stored = c.get_object(Bucket=ctx.s3.bucket, Key=f"{PREFIX}jobs/{job_id}/{name}")
            eq(stored["Body"].read() == r.body, True, f"{o['url']} is the object in the store")
            path = os.path.join(ctx.root, f"{job_id}-{name}")
            with open(path, "wb") as f:
                f.write(r.body)
            if name.startswith("video."):
                check_video(path, asked, job_id)
            elif name == "poster.jpg":
                eq(r.body[:3], b"\xff\xd8\xff", f"{o['url']}: JPEG magic")
            else:
                check_pdf(path, asked, rec, job_id)
            os.unlink(path)


def check_video(path, asked, job_id):
    seconds, size, audio, _ = CLIPS[asked["clip"]]
    p = ffprobe(path)
    kinds = sorted(s["codec_type"] for s in p["streams"])
    eq(kinds, ["audio", "video"] if audio else ["video"], f"{job_id}: streams")
    v = next(s for s in p["streams"] if s["codec_type"] == "video")
    codec = "vp9" if asked["preset"].startswith("webm") else "h264"
    eq((v["codec_name"], f"{v['width']}x{v['height']}"), (codec, size), f"{job_id}: video stream")
    dur = float(p["format"]["duration"])
    if abs(dur - seconds) > 0.15:
        raise AssertionError(f"{job_id}: duration {dur}, the clip's is {seconds}")


def check_pdf(path, asked, rec, job_id):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=30)
    eq(out.returncode, 0, f"{job_id}: pdfinfo: {out.stderr.decode()}")
    info = dict(line.split(":", 1) for line in out.stdout.decode().splitlines() if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    eq(info["Title"], asked["title"], f"{job_id}: title")
    eq(int(info["Pages"]), rec["metadata"]["pages"], f"{job_id}: pages")
    eq(rec["metadata"]["rows"], asked["rows"], f"{job_id}: rows")


# "s3proxy: ADDR "METHOD /BUCKET/KEY[?query] HTTP/1.1" STATUS SIZE"
REQUEST = re.compile(r'^s3proxy: (\S+) "(\w+) /([^/ ?]+)/([^ ?]*)(\?\S*)? HTTP/[\d.]+" (\d+)')


@suite.test
def test_blobs_move_between_hosts_only_through_the_store(ctx):
    """From the store's log, by the address of the host that sent each request: the
    API writes a job's upload or dataset and reads outputs for downloads; the worker
    of the job's kind reads that input and writes the outputs; nobody else touches a
    job's objects (but this test, which only reads). The uploads over a part went up in
    parts, from the API. No multipart upload is left open, no request was refused."""
    api, worker = ctx.net.addr("api"), {k: ctx.net.addr(k) for k in ("video", "pdf")}
    seen, mine, multipart = {}, set(), {}
    for line in ctx.s3.proxy.output().splitlines():
        m = REQUEST.match(line)
        if not m:
            continue
        addr, method, bucket, key, query, status = m.groups()
        parts = key.split("/")
        if bucket != ctx.s3.bucket or len(parts) != 4 or f"{parts[0]}/" != PREFIX or parts[1] != "jobs":
            continue
        op = {"PUT": "write", "POST": "write", "GET": "read", "HEAD": "read"}.get(method, method)
        if addr == ctx.net.addr("client"):
            mine.add(op)
            continue
        seen.setdefault((parts[2], parts[3]), set()).add((op, addr, status[0]))
        if method == "POST" and (query or "").startswith("?uploads"):
            multipart.setdefault((parts[2], parts[3]), []).append(addr)
    for job_id, kind, asked in ctx.jobs:
        w = worker[kind]
        inputs = {"input"} if kind == "video" else ({"dataset"} if asked["dataset"] else set())
        for name in inputs:
            eq(seen.pop((job_id, name), None), {("write", api, "2"), ("read", w, "2")},
               f"requests for {kind} job {job_id}'s {name}")
        for o in ctx.records[job_id]["outputs"]:
            eq(seen.pop((job_id, o["name"]), None), {("write", w, "2"), ("read", api, "2")},
               f"requests for {kind} job {job_id}'s {o['name']}")
    eq(seen, {}, "requests for other objects of the jobs")
    eq(mine, {"read"}, "what this test's own requests did")
    big = {(j, "input"): [api] for j, k, a in ctx.jobs if k == "video" and a["clip"] == BIG_CLIP}
    eq(multipart, big, "multipart uploads started (by whom)")
    objects = ctx.s3.objects(PREFIX)
    want = {f"{PREFIX}jobs/{j}/{n}" for j, k, a in ctx.jobs
            for n in [o["name"] for o in ctx.records[j]["outputs"]] +
            (["input"] if k == "video" else ["dataset"] if a["dataset"] else [])}
    eq(set(objects), want, "objects in the store")
    eq(ctx.s3.uploads_in_progress(), [], "multipart uploads left open")
    eq(ctx.s3.requests_refused(), [], "requests the proxy refused (signing faults)")


@suite.test
def test_no_process_kept_a_file_of_its_own_or_shared_one(ctx):
    """Stopped with SIGTERM, each process exits 0 and leaves its directories as it got
    them: nothing in its data or temporary directory, and the workers' scratch
    directories (which they did use) empty again."""
    for p in (ctx.video, ctx.pdf, ctx.api):
        eq(p.stop(signal.SIGTERM), 0, f"{p.name}'s exit code after SIGTERM")
    left = {}
    for role, dirs in ctx.dirs.items():
        for kind, d in dirs.items():
            for base, subdirs, files in os.walk(d):  # nothing if d does not exist
                for n in subdirs + files:
                    rel = os.path.relpath(os.path.join(base, n), d)
                    left.setdefault(f"{role} {kind}", []).append(rel)
    eq(left, {}, "files left in the processes' directories")
    for role in ("video", "pdf"):
        eq(os.path.isdir(ctx.dirs[role]["scratch"]), True, f"spool-{role}'s scratch directory")


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

#!/usr/bin/env python3
"""make test-compose: spool in Docker with its blobs in an object store, end to end.

It builds the images (deploy/Dockerfile, deploy/redis/, deploy/s3/ from the base
images scripts/base-images.sh makes), brings up docker-compose.yml with
docker-compose.s3.yml under a project name of its own, with three video workers and two
PDF workers, and then, through the API port the project publishes on the host:

  - submits mixed jobs: video uploads (clips made by ffmpeg), PDF exports from CSV
    uploads and from inline rows;
  - kills (SIGKILL) a video worker's container while it transcodes;
  - waits, bounded, until every job has ended, and checks that each one succeeded,
    once: its attempts are 1, or 2 for the job the killed container was running, and
    the workers' logs show one success per job across all containers;
  - checks that every worker container took jobs, that every output downloads whole
    (and with a Range) and is what it claims (ffprobe, pdfinfo), that the blobs are
    objects in the store and not files in the containers, and that no container mounts
    a volume another one mounts (the store's and Redis's own aside).

Then, briefly, docker-compose.yml alone (the directory mode) under a second project: a
video and an export succeed through the blobs volume the API and both workers share.

Everything the run created (containers, networks, volumes) is removed on every exit
path; the images stay, tagged SPOOL_IMAGE_TAG (default test-compose), so a rerun builds
only what changed. Logs in build/test-compose/: the builds and ups (PROJECT.log), and
every container's (compose-s3.log, compose-dir.log).
Needs root (the Docker engine; scripts/base-images.sh starts it) and ffmpeg,
ffprobe, pdfinfo (deps/debian.txt). Settings: TEST_COMPOSE_VIDEOS (6),
TEST_COMPOSE_EXPORTS (8), TEST_COMPOSE_TIMEOUT (600 s for the jobs).
Prints "test-compose: passed ..." with the times and exits 0, or names what failed
and exits 1."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGDIR = os.path.join(ROOT, "build", "test-compose")
FILES = ("docker-compose.yml", "docker-compose.s3.yml")
VIDEO_WORKERS, PDF_WORKERS = 3, 2
N_VIDEOS = int(os.environ.get("TEST_COMPOSE_VIDEOS", "6"))
N_EXPORTS = int(os.environ.get("TEST_COMPOSE_EXPORTS", "8"))
JOB_TIMEOUT = float(os.environ.get("TEST_COMPOSE_TIMEOUT", "600"))
TAG = os.environ.get("SPOOL_IMAGE_TAG", "test-compose")
PROJECT = f"spool-test-compose-{os.getpid()}"


def say(msg):
    print(f"[test-compose] {msg}", flush=True)


class Failed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failed(msg)


def eq(a, b, what):
    if a != b:
        raise Failed(f"{what}: got {a!r}, want {b!r}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(argv, timeout=600, log=None, check_rc=True, **kw):
    """Run argv; its output goes to log (a path, appended) or is returned."""
    if log:
        with open(log, "ab") as f:
            f.write(f"\n$ {' '.join(argv)}\n".encode())
            f.flush()
            p = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=timeout, **kw)
        if check_rc and p.returncode != 0:
            with open(log, "rb") as f:
                tail = f.read()[-4000:].decode(errors="replace")
            raise Failed(f"{' '.join(argv[:6])}... exited {p.returncode}; the end of {log}:\n{tail}")
        return ""
    kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.run(argv, stdout=subprocess.PIPE, timeout=timeout, **kw)
    if check_rc and p.returncode != 0:
        raise Failed(f"{' '.join(argv)} exited {p.returncode}: {(p.stderr or b'').decode(errors='replace')[-2000:]}")
    return p.stdout.decode(errors="replace")


class Compose:
    """docker-compose with a project name, files and environment of this run's."""

    def __init__(self, project, files, env):
        self.project = project
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SPOOL_", "COMPOSE_", "AWS_"))}
        self.env.update(env, SPOOL_IMAGE_TAG=TAG)
        self.argv = ["docker-compose", "-p", project]
        for f in files:
            self.argv += ["-f", os.path.join(ROOT, f)]
        self.started = False

    def __call__(self, *args, **kw):
        return run(self.argv + list(args), env=self.env, cwd=ROOT, **kw)

    def up(self, log, *args):
        self.started = True
        self("up", "-d", "--no-build", *args, log=log, timeout=600)

    def containers(self, service=None):
        """Container ids of the project (of one service), running or not."""
        argv = ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.project}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(run(argv).split())

    def tear_down(self, logfile):
        """Save every container's log to logfile, then remove the containers, the network
        and every volume they mounted (anonymous ones too). True when nothing is left."""
        if not self.started:
            return True
        try:
            with open(logfile, "w") as f:
                subprocess.run(self.argv + ["logs", "--no-color", "--timestamps"], env=self.env,
                               cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.SubprocessError):
            pass
        self.started = False
        mounted = set()
        for cid in self.containers():
            try:
                mounted |= {m["Name"] for m in inspect(cid)["Mounts"] if m.get("Name")}
            except (Failed, ValueError, IndexError):
                pass
        t = time.monotonic()
        p = subprocess.run(self.argv + ["down", "-v", "--remove-orphans", "--timeout", "10"],
                           env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        left = run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"],
                   check_rc=False).split()
        vols = run(["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={self.project}"],
                   check_rc=False).split()
        vols += sorted(mounted & set(run(["docker", "volume", "ls", "-q"], check_rc=False).split()))
        if p.returncode != 0 or left or vols:
            say(f"tear-down of {self.project} left containers {left} volumes {vols}: {p.stdout.decode()[-1000:]}")
            return False
        say(f"{self.project} torn down in {time.monotonic() - t:.0f} s (containers, network, volumes)")
        return True


def inspect(cid):
    return json.loads(run(["docker", "inspect", cid]))[0]


def logs(cid):
    return run(["docker", "logs", cid], check_rc=False, stderr=subprocess.STDOUT)


def log_events(cid):
    """The JSON log lines of a spool container: [(msg, job)]."""
    out = []
    for line in logs(cid).splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and "msg" in e:
            out.append((e["msg"], e.get("job")))
    return out


class Api:
    def __init__(self, port, token):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def request(self, method, path, body=None, ctype=None, headers=None, timeout=60):
        h = {"Authorization": f"Bearer {self.token}"}
        if ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, ctype=None, want=(200,)):
        status, _, data = self.request(method, path, body, ctype)
        check(status in want, f"{method} {path}: {status} {data[:500]!r}")
        return json.loads(data)


def make_clip(path, seconds, size="640x360"):
    run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path])
    return path


def pdf_pages(path):
    out = run(["pdfinfo", path])
    m = re.search(r"^Pages:\s+(\d+)", out, re.M)
    check(m, f"pdfinfo {path}: no page count")
    return int(m.group(1))


def submit_jobs(api, tmp):
    """Video uploads and PDF exports, interleaved; {id: (kind, expectation)}."""
    jobs = {}
    # A small clip and one of about 30 MB, which the API uploads to the store in parts;
    # long enough that a transcode takes seconds, so a worker can be killed in the middle.
    clips = [(make_clip(os.path.join(tmp, "small.mp4"), 30), 30),
             (make_clip(os.path.join(tmp, "large.mp4"), 40, "1280x720"), 40)]
    for i in range(max(N_VIDEOS, N_EXPORTS)):
        if i < N_VIDEOS:
            clip, seconds = clips[i % len(clips)]
            with open(clip, "rb") as f:
                body = f.read()
            j = api.json("POST", "/v1/videos?preset=mp4-480p&thumbnail=true", body, "video/mp4", want=(202,))
            jobs[j["id"]] = ("video", {"seconds": seconds})
        if i < N_EXPORTS:
            rows = 400 + 150 * i
            if i % 2 == 0:
                csv = "id,name,amount\n" + "".join(f"{r},Customer {r},{r * 0.75:.2f}\n" for r in range(1, rows + 1))
                j = api.json("POST", f"/v1/exports?title=Customers+{i}", csv.encode(), "text/csv", want=(202,))
                last = f"Customer {rows}"
            else:
                doc = {"title": f"Sales {i}", "columns": [
                    {"key": "region", "label": "Region"},
                    {"key": "total", "label": "Total", "format": "number", "decimals": 2}],
                    "rows": [{"region": f"Region {r}", "total": r * 1.5} for r in range(1, rows + 1)]}
                j = api.json("POST", "/v1/exports", json.dumps(doc).encode(), "application/json", want=(202,))
                last = f"Region {rows}"
            jobs[j["id"]] = ("pdf", {"rows": rows, "last": last})
    return jobs


def kill_a_video_worker_mid_job(api, compose, jobs):
    """SIGKILL the container of a video worker that is transcoding; (container, job)."""
    videos = [j for j, (k, _) in jobs.items() if k == "video"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for jid in videos:
            rec = api.json("GET", f"/v1/jobs/{jid}")
            if rec["state"] != "running" or not 5 <= rec["progress"] <= 60:
                continue
            for cid in compose.containers("video-worker"):
                if any(m.startswith("started ") and j == jid for m, j in log_events(cid)):
                    run(["docker", "kill", "--signal", "KILL", cid])
                    say(f"killed video worker {cid[:12]} at {rec['progress']}% of job {jid}")
                    return cid, jid
        time.sleep(0.3)
    raise Failed("no video job was seen running between 5% and 60% within 180 s")


def wait_all_ended(api, jobs):
    deadline = time.monotonic() + JOB_TIMEOUT
    recs = {}
    while True:
        recs = {jid: api.json("GET", f"/v1/jobs/{jid}") for jid in jobs}
        left = [j for j, r in recs.items() if r["state"] not in ("succeeded", "failed", "cancelled")]
        if not left:
            return recs
        if time.monotonic() > deadline:
            raise Failed(f"{len(left)} jobs not ended after {JOB_TIMEOUT:.0f} s: "
                         + ", ".join(f"{j} {recs[j]['state']} {recs[j]['progress']}%" for j in left))
        time.sleep(1)


def check_downloads(api, recs, jobs, tmp):
    for jid, rec in recs.items():
        kind, want = jobs[jid]
        names = sorted(o["name"] for o in rec["outputs"])
        eq(names, ["poster.jpg", "video.mp4"] if kind == "video" else ["export.pdf"], f"{jid} outputs")
        for o in rec["outputs"]:
            status, headers, data = api.request("GET", o["url"], timeout=120)
            eq(status, 200, f"GET {o['url']}")
            eq(len(data), o["bytes"], f"{o['url']}: bytes downloaded vs the job's outputs")
            eq(headers.get("Content-Type"), o["content_type"], f"{o['url']} Content-Type")
            path = os.path.join(tmp, f"{jid}-{o['name']}")
            with open(path, "wb") as f:
                f.write(data)
            if o["name"] == "video.mp4":
                probe = json.loads(run(["ffprobe", "-v", "error", "-print_format", "json", "-show_format",
                                        "-show_streams", path]))
                dur = float(probe["format"]["duration"])
                check(abs(dur - want["seconds"]) < 1.0, f"{jid}: video.mp4 lasts {dur} s, want {want['seconds']}")
                check({s["codec_type"] for s in probe["streams"]} == {"video", "audio"}, f"{jid}: streams")
                status, headers, part = api.request("GET", o["url"], headers={"Range": "bytes=100-1123"})
                eq((status, part), (206, data[100:1124]), f"{o['url']}: a range")
            if o["name"] == "export.pdf":
                check(data.startswith(b"%PDF-"), f"{jid}: export.pdf is not a PDF")
                eq(pdf_pages(path), rec["metadata"]["pages"], f"{jid}: pages vs metadata")
                eq(rec["metadata"]["rows"], want["rows"], f"{jid}: rows")


def check_no_shared_volume(compose):
    """The API and the workers mount only volumes of their own; the store and Redis
    theirs; nothing mounts the directory mode's blobs volume. Returns a summary."""
    owners = {}
    for cid in compose.containers():
        info = inspect(cid)
        svc = info["Config"]["Labels"]["com.docker.compose.service"]
        env = dict(e.split("=", 1) for e in info["Config"]["Env"])
        for m in info["Mounts"]:
            key = m.get("Name") or m.get("Source")
            owners.setdefault(key, []).append((svc, cid[:12], m["Destination"], m["Type"]))
            if svc in ("api", "video-worker", "pdf-worker"):
                eq(m["Type"], "volume", f"{svc} {cid[:12]} mounts {key}")
                check(not key.endswith("_blobs"), f"{svc} {cid[:12]} mounts the shared blobs volume")
        if svc in ("api", "video-worker", "pdf-worker"):
            check(env.get("SPOOL_BLOB_URL", "").startswith("s3://"), f"{svc}: SPOOL_BLOB_URL {env.get('SPOOL_BLOB_URL')}")
    shared = {k: v for k, v in owners.items() if len(v) > 1}
    eq(shared, {}, "volumes mounted by more than one container")
    for key, users in owners.items():
        svc = users[0][0]
        if svc == "redis":
            check(key.endswith("_redis-data") or key.endswith("redis.conf"), f"redis mounts {key}")
        if svc == "s3":
            check(key.endswith("_s3-data"), f"s3 mounts {key}")
    return len(owners)


def check_blobs_are_objects(compose, recs):
    """Every job's outputs are objects in the store's bucket; the containers of the API
    and the workers hold no file but their scratch directories' lock files."""
    s3 = compose.containers("s3")[0]
    listing = run(["docker", "exec", s3, "find", "/data", "-type", "f", "-name", "*._S3rver_object"])
    for jid, rec in recs.items():
        for o in rec["outputs"]:
            check(f"/jobs/{jid}/{o['name']}._S3rver_object" in listing, f"{jid}/{o['name']} is not in the store")
    for svc in ("api", "video-worker", "pdf-worker"):
        for cid in compose.containers(svc):
            if not inspect(cid)["State"]["Running"]:
                continue
            files = run(["docker", "exec", cid, "find", "/var/lib/spool/data", "-type", "f"]).split()
            eq([f for f in files if os.path.basename(f) != "lock"], [], f"{svc} {cid[:12]}: files left in its volume")


def wait_ready(api):
    deadline = time.monotonic() + 120
    while True:
        try:
            if api.request("GET", "/readyz", timeout=5)[0] == 200:
                return
        except OSError:
            pass
        check(time.monotonic() < deadline, "the API is not ready 120 s after up")
        time.sleep(0.5)


def s3_mode(compose, api, log, tmp, times):
    """The run the module's docstring describes."""
    t = time.monotonic()
    say(f"up: project {compose.project} (docker-compose.s3.yml), {VIDEO_WORKERS} video and "
        f"{PDF_WORKERS} PDF workers, API on {api.base}")
    compose.up(log, "--scale", f"video-worker={VIDEO_WORKERS}", "--scale", f"pdf-worker={PDF_WORKERS}")
    wait_ready(api)
    eq(api.request("GET", "/v1/queues", headers={"Authorization": "Bearer wrong"})[0], 401,
       "a wrong token is refused")
    times["up"] = time.monotonic() - t

    t = time.monotonic()
    jobs = submit_jobs(api, tmp)
    say(f"submitted {sum(k == 'video' for k, _ in jobs.values())} video uploads and "
        f"{sum(k == 'pdf' for k, _ in jobs.values())} PDF exports")
    killed_cid, killed_job = kill_a_video_worker_mid_job(api, compose, jobs)
    recs = wait_all_ended(api, jobs)
    times["jobs"] = time.monotonic() - t

    # Every job succeeded, once.
    bad = {j: (r["state"], r["error"]) for j, r in recs.items() if r["state"] != "succeeded"}
    eq(bad, {}, "jobs that did not succeed")
    attempts = {j: r["attempts"] for j, r in recs.items()}
    want = {j: 2 if j == killed_job else 1 for j in recs}
    eq(attempts, want, "attempts (2 only for the job whose worker was killed)")
    started, succeeded, took = {}, {}, {}
    for svc in ("video-worker", "pdf-worker"):
        for cid in compose.containers(svc):
            for msg, jid in log_events(cid):
                if jid not in jobs:
                    continue
                if msg.startswith("started "):
                    started.setdefault(jid, []).append(cid[:12])
                    took.setdefault(svc, set()).add(cid[:12])
                elif msg.startswith("succeeded in "):
                    succeeded.setdefault(jid, []).append(cid[:12])
    eq({j: len(v) for j, v in succeeded.items()}, {j: 1 for j in jobs}, "successes logged per job")
    eq({j: len(v) for j, v in started.items()}, want, "starts logged per job (one per attempt)")
    check(killed_cid[:12] in started[killed_job] and killed_cid[:12] not in succeeded[killed_job],
          f"the killed container {killed_cid[:12]} started {killed_job} and did not finish it")
    check(len(set(started[killed_job])) == 2, f"{killed_job} ran again on another container")
    eq({s: len(c) for s, c in took.items()}, {"video-worker": VIDEO_WORKERS, "pdf-worker": PDF_WORKERS},
       "worker containers that took jobs")
    state = inspect(killed_cid)["State"]
    say(f"the killed container is {'running again (restart policy)' if state['Running'] else 'stopped'}")

    check_downloads(api, recs, jobs, tmp)
    check_blobs_are_objects(compose, recs)
    n_mounts = check_no_shared_volume(compose)
    say(f"{len(jobs)} jobs succeeded once each ({killed_job} twice attempted after its worker was "
        f"killed); {len(took['video-worker'])} video and {len(took['pdf-worker'])} PDF containers took "
        f"jobs; outputs downloaded and checked; blobs in the store; {n_mounts} mounts, none shared")


def directory_mode(compose, api, log, tmp, times):
    """docker-compose.yml alone still works: a video and an export through the shared
    blobs volume, which the API and both workers mount."""
    t = time.monotonic()
    say(f"up: project {compose.project} (docker-compose.yml alone: the shared blobs volume)")
    compose.up(log)
    wait_ready(api)
    clip = make_clip(os.path.join(tmp, "dir.mp4"), 5)
    with open(clip, "rb") as f:
        v = api.json("POST", "/v1/videos?preset=mp4-480p&thumbnail=true", f.read(), "video/mp4", want=(202,))
    p = api.json("POST", "/v1/exports?title=Directory", b"a,b\n1,2\n3,4\n", "text/csv", want=(202,))
    jobs = {v["id"]: ("video", {"seconds": 5}), p["id"]: ("pdf", {"rows": 2})}
    recs = wait_all_ended(api, jobs)
    eq({j: (r["state"], r["attempts"]) for j, r in recs.items()}, {j: ("succeeded", 1) for j in jobs},
       "directory mode: states and attempts")
    check_downloads(api, recs, jobs, tmp)
    users = {}
    for cid in compose.containers():
        info = inspect(cid)
        svc = info["Config"]["Labels"]["com.docker.compose.service"]
        check(not any(e.startswith("SPOOL_BLOB_URL=") for e in info["Config"]["Env"]), f"{svc}: SPOOL_BLOB_URL set")
        for m in info["Mounts"]:
            if m.get("Name", "").endswith("_blobs"):
                users.setdefault(m["Name"], set()).add(svc)
    eq(sorted(map(sorted, users.values())), [["api", "pdf-worker", "video-worker"]],
       "services sharing the blobs volume")
    times["directory mode"] = time.monotonic() - t
    say("directory mode: a video and an export succeeded through the shared blobs volume")


def main():
    os.makedirs(LOGDIR, exist_ok=True)
    log = os.path.join(LOGDIR, f"{PROJECT}.log")
    open(log, "w").close()
    t_start = time.monotonic()
    times = {}
    token = secrets.token_hex(16)
    ports = (free_port(), free_port())
    s3 = Compose(PROJECT, FILES, {"SPOOL_API_PORT": str(ports[0]), "SPOOL_API_TOKENS": token,
                                  "SPOOL_S3_ACCESS_KEY": "spool-test-" + secrets.token_hex(4),
                                  "SPOOL_S3_SECRET_KEY": secrets.token_hex(20),
                                  # Three transcodes share this host: one codec thread each.
                                  "SPOOL_VIDEO_THREADS": "1"})
    plain = Compose(PROJECT + "-dir", FILES[:1], {"SPOOL_API_PORT": str(ports[1]), "SPOOL_API_TOKENS": token,
                                                  "SPOOL_VIDEO_THREADS": "1"})
    tmp = tempfile.mkdtemp(prefix="spool-test-compose-")

    def on_signal(sig, frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    ok = False
    try:
        t = time.monotonic()
        run(["bash", os.path.join(ROOT, "scripts", "base-images.sh")], log=log, timeout=1800)
        times["base images"] = time.monotonic() - t

        # The three spool services share one image: build it once, then Redis and the store.
        t = time.monotonic()
        say(f"docker-compose build (images tagged {TAG}; log {log})")
        s3("build", "api", "redis", "s3", log=log, timeout=3600)
        times["build"] = time.monotonic() - t

        s3_mode(s3, Api(ports[0], token), log, tmp, times)
        ok = s3.tear_down(os.path.join(LOGDIR, "compose-s3.log"))
        check(ok, "the S3 mode's project was not removed whole")
        directory_mode(plain, Api(ports[1], token), log, tmp, times)
        ok = plain.tear_down(os.path.join(LOGDIR, "compose-dir.log"))
        check(ok, "the directory mode's project was not removed whole")
        say("passed in " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
            + f"; total {time.monotonic() - t_start:.0f} s")
    except Failed as e:
        say(f"FAILED: {e}")
        ok = False
    except KeyboardInterrupt as e:
        say(f"interrupted ({e or 'Ctrl-C'})")
        ok = False
    except Exception:
        traceback.print_exc()
        say("FAILED: an unexpected error (above)")
        ok = False
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for c, name in ((s3, "compose-s3.log"), (plain, "compose-dir.log")):
            if c.started and not c.tear_down(os.path.join(LOGDIR, name)):
                ok = False
            c.started = False
        subprocess.run(["rm", "-rf", tmp])
    if not ok:
        say(f"logs: {LOGDIR}/ ({os.path.basename(log)}, compose-s3.log, compose-dir.log)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

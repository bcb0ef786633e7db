"""Scale test: 1 spool-api, 4 worker processes (2 video, 2 pdf), 200 mixed jobs through
the real binaries over HTTP. In the middle, a video worker is killed (SIGKILL) and
restarted, and so is the API. Every job must end succeeded with exactly one set of
outputs: the expected names on the job, the same files on disk, nothing else."""
import json
import os
import signal
import time

from harness import BIN, Http, Proc, Redis, Suite, eq, free_port, make_clip, wait_until

suite = Suite("scale")
JOBS = int(os.environ.get("SPOOL_SCALE_JOBS", "200"))


def binaries_present():
    return all(os.access(os.path.join(BIN, b), os.X_OK)
               for b in ("spool-api", "spool-video", "spool-pdf"))


class Cluster:
    def __init__(self, tmp):
        self.redis = Redis(aof=True)
        self.data = os.path.join(tmp, "data")
        self.port = free_port()
        self.env = {"SPOOL_REDIS_URL": self.redis.url, "SPOOL_DATA_DIR": self.data,
                    "SPOOL_LOG_FORMAT": "text", "SPOOL_LEASE": "4s", "SPOOL_WORKER_TTL": "3s",
                    "SPOOL_GRACE": "10s", "SPOOL_VIDEO_THREADS": "1"}
        self.api = None
        self.workers = {}
        self.start_api()
        for name in ("video-1", "video-2", "pdf-1", "pdf-2"):
            self.start_worker(name)
        self.http = Http("127.0.0.1", self.port)

    def start_api(self):
        env = dict(self.env, SPOOL_LISTEN=f"127.0.0.1:{self.port}")
        self.api = Proc([os.path.join(BIN, "spool-api")], env=env, name="api")
        wait_until(lambda: self._healthy(), 15, what="spool-api /healthz")

    def _healthy(self):
        try:
            return Http("127.0.0.1", self.port).get("/healthz", timeout=2).status == 200
        except OSError:
            return False

    def start_worker(self, name):
        binary = "spool-video" if name.startswith("video") else "spool-pdf"
        self.workers[name] = Proc([os.path.join(BIN, binary)], env=self.env, name=name)

    def stop(self):
        for w in self.workers.values():
            w.stop()
        if self.api:
            self.api.stop()
        self.redis.destroy()


def submit(c, i, clip):
    """Submit job i; retried with the same Idempotency-Key across an API restart."""
    key = f"scale-{i}"
    for attempt in range(100):
        try:
            if i % 2 == 0:
                with open(clip, "rb") as f:
                    body = f.read()
                r = c.http.post("/v1/videos?preset=mp4-480p&thumbnail=true", body=body,
                                headers={"Content-Type": "video/mp4", "Idempotency-Key": key})
            else:
                rows = [[f"row {n} of job {i}", n, n * 1.5] for n in range(60)]
                r = c.http.post("/v1/exports", body={
                    "title": f"Export {i}",
                    "columns": [{"key": "name", "label": "Name"},
                                {"key": "n", "label": "N", "format": "number"},
                                {"key": "x", "label": "X", "format": "number", "decimals": 2}],
                    "rows": rows}, headers={"Idempotency-Key": key})
            if r.status in (200, 201, 202):
                return r.json()["id"]
            if r.status in (429, 503):
                time.sleep(0.2)
                continue
            raise AssertionError(f"submit {i}: {r}")
        except OSError:
            time.sleep(0.2)  # the API is restarting
    raise AssertionError(f"submit {i} never accepted")


@suite.test
def test_two_hundred_jobs_survive_worker_and_api_restarts(c):
    if c is None:
        print("# SKIP spool-api, spool-video or spool-pdf not built")
        return
    clip = make_clip(os.path.join(suite.tmp, "clip.mp4"), seconds=1, size="160x120", rate=15)
    ids = []
    for i in range(JOBS):
        if i == JOBS // 4:
            c.workers["video-1"].kill()
            c.start_worker("video-1")
        if i == JOBS // 2:
            c.api.kill()
            c.start_api()
        ids.append(submit(c, i, clip))
    eq(len(set(ids)), JOBS, "distinct job ids")

    def all_done():
        states = {}
        for jid in ids:
            r = c.http.get(f"/v1/jobs/{jid}")
            st = r.json()["state"] if r.status == 200 else f"http {r.status}"
            states[st] = states.get(st, 0) + 1
        return states if states.get("succeeded", 0) == JOBS else None

    try:
        wait_until(all_done, 600, 1.0, what="all jobs succeeded")
    except AssertionError:
        raise AssertionError(f"not all succeeded: {all_done() or 'see states'}")
    for n, jid in enumerate(ids):
        job = c.http.get(f"/v1/jobs/{jid}").json()
        want = ["poster.jpg", "video.mp4"] if n % 2 == 0 else ["export.pdf"]
        eq(sorted(o["name"] for o in job["outputs"]), want, f"outputs of job {n}")
        d = os.path.join(c.data, "jobs", jid[-2:], jid)
        inputs = {"input", "dataset", "source"}
        files = sorted(f for f in os.listdir(d) if f not in inputs)
        eq(files, want, f"files of job {n}")
        for o in job["outputs"]:
            eq(os.path.getsize(os.path.join(d, o["name"])), o["bytes"], f"size of {o['name']}")


def setup():
    return Cluster(suite.tmp) if binaries_present() else None


def teardown(c):
    if c:
        c.stop()


if __name__ == "__main__":
    raise SystemExit(suite.run(setup, teardown))

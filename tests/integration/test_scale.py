"""Scale test: 1 spool-api, 4 worker processes (2 video, 2 pdf), 200 mixed jobs through
the real binaries over HTTP. In the middle, a video worker is killed (SIGKILL) while it
is running a job, and restarted, and so is the API. Every job must end succeeded with
exactly one set of outputs: the expected names on the job, the same files on disk,
nothing else; the killed worker's job on its second attempt."""
import json
import os
import signal
import time

from harness import BIN, Http, Proc, Queue, Redis, Suite, eq, free_port, make_clip, wait_until

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
        self.queue = Queue(self.redis)  # the job records as workers write them (worker id)
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

    def start_worker(self, name, worker_id=None):
        """Start worker `name`; its id in job records is worker_id (default: name)."""
        binary = "spool-video" if name.startswith("video") else "spool-pdf"
        env = dict(self.env, SPOOL_WORKER_ID=worker_id or name)
        self.workers[name] = Proc([os.path.join(BIN, binary)], env=env, name=name)

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


def kill_while_running(c, name):
    """SIGKILL worker `name` if it is running a job now; return that job's id, or None
    when it is not (nothing is done then). The worker is stopped (SIGSTOP) before its
    job is looked at again, so the job cannot end between that look and the kill."""
    r = c.http.get("/v1/jobs?state=running&type=video.transcode&limit=20")
    if r.status != 200:
        return None
    for job in r.json()["jobs"]:
        rec = c.queue.get(job["id"])
        if not rec or rec["state"] != "running" or rec["worker"] != name:
            continue
        w = c.workers[name]
        w.signal(signal.SIGSTOP)
        time.sleep(0.2)  # a request the worker sent just before it stopped reaches Redis
        rec = c.queue.get(job["id"])
        if rec["state"] == "running" and rec["worker"] == name and rec["attempts"] == 1:
            w.kill()
            return job["id"]
        w.signal(signal.SIGCONT)
    return None


@suite.test
def test_two_hundred_jobs_survive_worker_and_api_restarts(c):
    if c is None:
        print("# SKIP spool-api, spool-video or spool-pdf not built")
        return
    clip = make_clip(os.path.join(suite.tmp, "clip.mp4"), seconds=1, size="160x120", rate=15)
    ids = []
    victim = None  # the job video-1 was running when it was killed
    for i in range(JOBS):
        # From a quarter of the way on, video-1 is killed at the first look that finds
        # it running a job; the new process has another id, so the records tell the two
        # apart.
        if i >= JOBS // 4 and victim is None:
            victim = kill_while_running(c, "video-1")
            if victim:
                print(f"# video-1 killed running {victim} after {i} submissions", flush=True)
                c.start_worker("video-1", "video-1-restarted")
        if i == JOBS // 2:
            c.api.kill()
            c.start_api()
        ids.append(submit(c, i, clip))
    # Should the workers have kept pace with every submission, more video jobs follow
    # until video-1 is caught running one.
    while victim is None:
        assert len(ids) < JOBS + 100, "video-1 was never seen running a job"
        ids.append(submit(c, 2 * len(ids), clip))  # even, past every i so far: a video
        time.sleep(0.05)
        victim = kill_while_running(c, "video-1")
        if victim:
            print(f"# video-1 killed running {victim} after {len(ids)} submissions", flush=True)
            c.start_worker("video-1", "video-1-restarted")
    eq(len(set(ids)), len(ids), "distinct job ids")

    def all_done():
        states = {}
        for jid in ids:
            r = c.http.get(f"/v1/jobs/{jid}")
            st = r.json()["state"] if r.status == 200 else f"http {r.status}"
            states[st] = states.get(st, 0) + 1
        return states if states.get("succeeded", 0) == len(ids) else None

    try:
        wait_until(all_done, 600, 1.0, what="all jobs succeeded")
    except AssertionError:
        raise AssertionError(f"not all succeeded: {all_done() or 'see states'}")
    # The killed worker's job: its lease ran out, the attempt counted, and another
    # worker ran it to the end, leaving one set of outputs.
    job = c.http.get(f"/v1/jobs/{victim}").json()
    eq((job["state"], job["attempts"]), ("succeeded", 2), f"state and attempts of {victim}")
    rec = c.queue.get(victim)
    assert rec["worker"] != "video-1", f"{victim} finished on the killed worker ({rec['worker']})"
    eq(sorted(o["name"] for o in job["outputs"]), ["poster.jpg", "video.mp4"],
       f"outputs of {victim}")
    for n, jid in enumerate(ids):
        job = c.http.get(f"/v1/jobs/{jid}").json()
        video = n % 2 == 0 or n >= JOBS  # the extra jobs, if any, are videos
        want = ["poster.jpg", "video.mp4"] if video else ["export.pdf"]
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

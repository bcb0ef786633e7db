"""The soak's client side: the media and data it submits (clips made with ffmpeg, rows
and CSV bodies), the plan of jobs (kinds, sizes, which carry an Idempotency-Key), and
the submitting client, which retries the way a real one does: on a connection error, a
503 or a 429 it sends the same request again (with the same Idempotency-Key when it
has one) after a backoff that honours Retry-After.

Every job can be traced back to its plan entry from the record alone: an export's title
and a video's filename carry the plan index ("soak-<seed>-<i>")."""
import json
import os
import random
import threading
import time
import http.client

from harness import make_clip

# Clips: (name, seconds, size, rate, audio). Tiny, so 250 transcodes take minutes.
CLIPS = [("a", 1, "160x120", 15, True), ("b", 2, "176x144", 12, False),
         ("c", 1, "320x240", 15, True)]

# Job kinds and their share of the plan.
KINDS = [
    ("video_raw", 0.33),        # raw video/mp4 body, parameters in the query string
    ("video_multipart", 0.06),  # multipart/form-data: file, preset, thumbnail
    ("video_slow", 0.05),       # raw body sent in pieces over ~1.5 s (an API kill can cut it)
    ("video_bad", 0.03),        # a clip cut in half, text, noise: fails at once, intended
    ("pdf_inline", 0.24),       # JSON rows small enough to stay in the job record
    ("pdf_json_file", 0.10),    # JSON rows past SPOOL_INLINE_DATASET_MAX: a dataset file
    ("pdf_csv", 0.19),          # text/csv body: always a dataset file
]

# Inline rows are NDJSON in the record up to SPOOL_INLINE_DATASET_MAX (16 KiB); a third
# of the inline exports take 8 to 16 KiB (the band an 8 KiB buffer once refused).
INLINE_SMALL = (3, 180)        # up to 4.3 KiB
INLINE_BAND = (360, 580)       # 8.3 to 14.8 KiB of NDJSON
JSON_FILE_ROWS = (800, 3000)   # 19 KiB and more
CSV_ROWS = (5, 2500)

COLUMNS = [{"key": "name", "label": "Name"},
           {"key": "n", "label": "N", "format": "number"},
           {"key": "x", "label": "X", "format": "number", "decimals": 2}]


def make_media(dir):
    """The clips (and their bad variants) the plan uploads: name -> (path, info)."""
    media = {}
    for name, secs, size, rate, audio in CLIPS:
        path = make_clip(os.path.join(dir, f"clip-{name}.mp4"), seconds=secs, size=size,
                         rate=rate, audio=audio)
        w, h = map(int, size.split("x"))
        media[name] = {"path": path, "seconds": secs, "width": w, "height": h, "audio": audio,
                       "body": open(path, "rb").read()}
    half = media["a"]["body"][: len(media["a"]["body"]) // 2]
    media["bad-half"] = {"body": half, "expect_code": ("corrupt_input",)}
    media["bad-text"] = {"body": b"this is a text file, not a video\n" * 40,
                         "expect_code": ("unsupported_input",)}
    # Noise that looks like MP3 to libavformat, whose demuxer then gives up with EINVAL.
    media["bad-noise"] = {"body": random.Random(4).randbytes(5000),
                          "expect_code": ("corrupt_input", "unsupported_input")}
    return media


def row_marker(i, n):
    return f"soak{i}r{n}"


def plan_jobs(cfg, rng):
    """The list of jobs to submit: dicts with index, kind, key (or None), and what the
    request and the checks need."""
    kinds, weights = zip(*KINDS)
    jobs = []
    for i in range(cfg.jobs):
        kind = rng.choices(kinds, weights)[0]
        j = {"i": i, "kind": kind, "tag": f"soak-{cfg.seed}-{i}", "replay": False}
        j["key"] = j["tag"] if rng.random() < cfg.key_share else None
        if j["key"] and rng.random() < cfg.replay_share:
            j["replay"] = True  # sent again after its 202: must answer the same job
        if kind.startswith("video"):
            if kind == "video_bad":
                j["clip"] = rng.choice(["bad-half", "bad-text", "bad-noise"])
                j["expect"] = "failed"
            else:
                j["clip"] = rng.choice([c[0] for c in CLIPS])
                j["expect"] = "succeeded"
            j["thumbnail"] = rng.random() < 0.6
        else:
            j["expect"] = "succeeded"
            if kind == "pdf_inline":
                lo, hi = INLINE_SMALL
                if rng.random() < 0.3:
                    lo, hi = INLINE_BAND
            elif kind == "pdf_json_file":
                lo, hi = JSON_FILE_ROWS
            else:
                lo, hi = CSV_ROWS
            j["rows"] = rng.randint(lo, hi)
        jobs.append(j)
    return jobs


def request_of(job, media):
    """(method, path, headers, body, pieces) of a plan entry; pieces > 1 sends the body
    slowly in that many parts."""
    i, tag = job["i"], job["tag"]
    h = {}
    if job["key"]:
        h["Idempotency-Key"] = job["key"]
    kind = job["kind"]
    if kind in ("video_raw", "video_slow", "video_bad"):
        thumb = "true" if job["thumbnail"] else "false"
        h["Content-Type"] = "video/mp4"
        path = f"/v1/videos?preset=mp4-480p&thumbnail={thumb}&filename={tag}.mp4"
        return "POST", path, h, media[job["clip"]]["body"], 8 if kind == "video_slow" else 1
    if kind == "video_multipart":
        boundary = f"soakboundary{i}x"
        parts = []
        for name, value in (("preset", "mp4-480p"), ("thumbnail", "true" if job["thumbnail"] else "false")):
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                         f"{value}\r\n".encode())
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{tag}.mp4\"\r\nContent-Type: video/mp4\r\n\r\n".encode())
        parts.append(media[job["clip"]]["body"])
        parts.append(f"\r\n--{boundary}--\r\n".encode())
        h["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        return "POST", "/v1/videos", h, b"".join(parts), 1
    title = f"Soak {tag}"
    if kind == "pdf_csv":
        lines = ["name,n,x"] + [f"{row_marker(i, n)},{n},{n * 1.25:.2f}" for n in range(job["rows"])]
        h["Content-Type"] = "text/csv"
        q = "title=" + title.replace(" ", "%20")
        return "POST", f"/v1/exports?{q}", h, ("\n".join(lines) + "\n").encode(), 1
    rows = [[row_marker(i, n), n, n * 1.5] for n in range(job["rows"])]
    body = json.dumps({"title": title, "columns": COLUMNS, "rows": rows}).encode()
    h["Content-Type"] = "application/json"
    return "POST", "/v1/exports", h, body, 1


class Stats:
    """What the client saw, counted under a lock (several client threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.samples = {}

    def add(self, what, n=1, sample=None):
        with self.lock:
            self.c[what] = self.c.get(what, 0) + n
            if sample is not None:
                self.samples.setdefault(what, [])
                if len(self.samples[what]) < 5:
                    self.samples[what].append(sample)

    def get(self, what):
        return self.c.get(what, 0)


def send(port, method, path, headers, body, pieces, timeout=30):
    """One HTTP request on a fresh connection: (status, headers, body bytes). A body in
    several pieces goes out with a pause between them, as a slow client's would."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers)
        h["Content-Length"] = str(len(body))
        c.putrequest(method, path, skip_accept_encoding=True)
        for k, v in h.items():
            c.putheader(k, v)
        c.endheaders()
        if pieces <= 1:
            c.send(body)
        else:
            step = (len(body) + pieces - 1) // pieces
            for off in range(0, len(body), step):
                c.send(body[off:off + step])
                time.sleep(1.5 / pieces)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


class Client:
    """Submits the plan from several threads, paced over cfg.seconds."""

    def __init__(self, cfg, port, media, plan, rng_seed):
        self.cfg, self.port, self.media, self.plan = cfg, port, media, plan
        self.stats = Stats()
        self.results = {}  # plan index -> {"id", "status", "accepted_at", "replay_id", ...}
        self.lock = threading.Lock()
        self.next = 0
        self.rng = random.Random(rng_seed)
        self.t0 = None

    def run(self):
        self.t0 = time.monotonic()
        threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.cfg.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _take(self):
        with self.lock:
            if self.next >= len(self.plan):
                return None
            job = self.plan[self.next]
            self.next += 1
        due = self.t0 + job["i"] * self.cfg.seconds / max(1, len(self.plan))
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return job

    def _worker(self):
        while True:
            job = self._take()
            if job is None:
                return
            res = self.submit(job)
            if res.get("id") and job["replay"]:
                again = self.submit(job, replay=True)
                res["replay_id"] = again.get("id")
                self.stats.add("replays")
                if again.get("id") != res["id"]:
                    self.stats.add("replay_mismatch", sample=(job["tag"], res["id"], again))
            with self.lock:
                self.results[job["i"]] = res

    def submit(self, job, replay=False):
        """Send job's request until it is answered for good: {"id", "status", ...}."""
        method, path, headers, body, pieces = request_of(job, self.media)
        deadline = time.monotonic() + self.cfg.submit_timeout
        backoff = 0.1
        tries = 0
        while True:
            tries += 1
            self.stats.add("requests")
            wait = None
            try:
                status, h, data = send(self.port, method, path, headers, body, pieces)
            except ConnectionRefusedError:
                self.stats.add("conn_refused")
                wait = backoff
            except (OSError, http.client.HTTPException) as e:
                # Reset, closed without an answer, timed out: the request may or may not
                # have made a job. With a key the retry is safe; without one a real client
                # retries too, and the audit counts any job made twice that way.
                self.stats.add("conn_error", sample=type(e).__name__)
                wait = backoff
            else:
                if status == 202:
                    jid = json.loads(data)["id"]
                    return {"id": jid, "status": 202, "accepted_at": time.time(), "tries": tries}
                if status in (503, 429):
                    self.stats.add(f"http_{status}")
                    try:
                        wait = min(float(h.get("retry-after", "1")), 5.0)
                    except ValueError:
                        wait = 1.0
                    wait = max(wait * self.rng.uniform(0.5, 1.0), 0.05)
                else:
                    msg = data[:300].decode(errors="replace")
                    self.stats.add(f"http_{status}", sample=(job["tag"], msg))
                    return {"id": None, "status": status, "body": msg, "tries": tries}
            if time.monotonic() + wait > deadline:
                self.stats.add("gave_up", sample=job["tag"])
                return {"id": None, "status": "gave up", "tries": tries}
            time.sleep(wait)
            backoff = min(backoff * 2, 2.0)

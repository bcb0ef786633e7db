#!/usr/bin/env python3
"""spool-api over HTTP against a real Redis: every route and error status, idempotent
POSTs, long-polls woken by a real worker (api-test-worker drives the queue through
sp_consumer_*), ETags, outputs with Range, cancel, retry, listing, queues, metrics,
bearer auth, 429 on a full queue and 503 with Redis down. In the blob store that
SPOOL_TEST_BLOBS names (a directory, or S3 through harness.S3), cross-checked at the end.

The helpers here (ApiServer, Worker, raw sockets) are also used by test_api_uploads.py.
"""
import json
import os
import re
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, ROOT, SANITIZED, Http, Proc, Redis, Suite, blob_store,  # noqa: E402
                     check_blob_stores, eq, wait_until)

TEST_BIN_DIR = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
WORKER_BIN = os.path.join(os.path.dirname(TEST_BIN_DIR), "api", "api-test-worker")


class ApiServer:
    """A spool-api on a free port (SPOOL_LISTEN=127.0.0.1:0; the port is read from its
    log), with its own blob store (harness.blob_store) unless given one to share."""

    def __init__(self, suite, redis, env=None, name="spool-api", blobs=None):
        self.redis = redis
        self.prefix = (env or {}).get("SPOOL_KEY_PREFIX", "spool:")
        self.blobs = blobs or blob_store(suite, f"data-{name}-{uuid.uuid4().hex[:6]}")
        self.blobs.watch(redis, self.prefix)
        e = {"SPOOL_REDIS_URL": redis.url, **self.blobs.env(),
             "SPOOL_LISTEN": "127.0.0.1:0", "SPOOL_LOG_LEVEL": "debug",
             "SPOOL_API_THREADS": "2"}
        e.update(env or {})
        self.proc = Proc([os.path.join(BIN, "spool-api")], env=e, name=name, logdir=suite.tmp)

        def started():
            m = re.search(r"\(port (\d+),", self.proc.output())
            if m:
                return m
            if not self.proc.alive():
                raise AssertionError("spool-api exited:\n" + self.proc.output())
            return None
        self.port = int(wait_until(started, 20, what="spool-api to listen").group(1))
        self.http = Http("127.0.0.1", self.port)

    def stop(self, sig=None):
        import signal
        return self.proc.stop(sig or signal.SIGTERM)

    def peak_rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return -1

    def job_dirs(self):
        """Ids of the jobs with anything in the blob store (committed or not)."""
        return self.blobs.jobs()

    # For the suites that run with the directory store only:
    @property
    def data(self):
        return self.blobs.root

    def blob(self, job_id, name):
        return os.path.join(self.blobs.job_dir(job_id), name)

    def in_flight(self):
        m = re.search(r"^spool_api_requests_in_flight (\d+)$",
                      self.http.get("/metrics").body.decode(), re.M)
        return int(m.group(1)) - 1  # this scrape is one of them


class Worker:
    """api-test-worker: takes jobs from the real queue and finishes them on command."""

    def __init__(self, api, queues="video,pdf"):
        import subprocess
        # Jobs earlier tests left waiting would be taken first: empty the ready lists
        # (their records stay, queued, and are never taken).
        api.redis.cli("DEL", f"{api.prefix}q:pdf:ready", f"{api.prefix}q:video:ready")
        self.p = subprocess.Popen([WORKER_BIN, api.redis.url, api.prefix, api.blobs.location,
                                   queues], env=dict(os.environ, **api.blobs.env()),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def cmd(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().strip()

    def take(self, want=None):
        r = self.cmd("take 5000")
        assert r.startswith("taken "), r
        got = r.split()[1]
        if want is not None:
            eq(got, want, "job taken")
        return got

    def close(self):
        try:
            self.cmd("quit")
        except Exception:
            pass
        self.p.wait(10)


def connect(api, timeout=30):
    s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(s, timeout=30):
    """Read one HTTP response from socket s: (status, headers, body)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response: {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def post_raw(api, path, body, ctype):
    """POST with Content-Length, reading the answer even when the server answers (and
    stops reading) before the whole body is sent: (status, json)."""
    s = connect(api)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _, data = read_response(s)
    s.close()
    return status, json.loads(data)


def export(api, body=None, headers=None, **kw):
    return api.http.post("/v1/exports", body if body is not None else
                         {"title": "Report", "rows": [{"a": 1, "b": "x"}]}, headers=headers, **kw)


def multipart(fields, boundary=None):
    """Encode [(name, value, filename or None, content type or None)]."""
    b = boundary or ("spoolb" + uuid.uuid4().hex)
    out = b""
    for name, value, filename, ctype in fields:
        out += f"--{b}\r\n".encode()
        disp = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disp += f'; filename="{filename}"'
        out += (disp + "\r\n").encode()
        if ctype:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + (value if isinstance(value, bytes) else value.encode()) + b"\r\n"
    out += f"--{b}--\r\n".encode()
    return out, f"multipart/form-data; boundary={b}"


def pattern(n, start=0):
    """The bytes api-test-worker writes: byte i is i % 251."""
    block = bytes(range(251))
    reps = (start + n) // 251 + 2
    return (block * reps)[start:start + n]


suite = Suite("api")


def setup():
    redis = Redis()
    api = ApiServer(suite, redis, {"SPOOL_MAX_JSON_BYTES": "256k"})
    return {"redis": redis, "api": api}


def teardown(ctx):
    eq(ctx["api"].stop(), 0, "spool-api exit code after SIGTERM")


# ---- health, routing ------------------------------------------------------------------

@suite.test
def test_healthz_and_readyz_answer(ctx):
    api = ctx["api"]
    r = api.http.get("/healthz")
    eq(r.status, 200)
    eq(r.json(), {"status": "ok"})
    r = api.http.get("/readyz")
    eq(r.status, 200)
    eq(r.json()["status"], "ready")


@suite.test
def test_unknown_routes_404_and_wrong_methods_405(ctx):
    api = ctx["api"]
    r = api.http.get("/v2/nothing")
    eq(r.status, 404)
    eq(r.json()["error"]["code"], "no_such_route")
    r = api.http.request("PUT", "/v1/exports", b"{}")
    eq(r.status, 405)
    eq(r.headers["allow"], "POST")
    eq(r.json()["error"]["code"], "method_not_allowed")
    r = api.http.get("/v1/videos")
    eq(r.status, 405)


@suite.test
def test_unknown_and_malformed_job_ids_are_404(ctx):
    api = ctx["api"]
    for path in ["/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z",
                 "/v1/jobs/nope", "/v1/jobs/" + "z" * 36, "/v1/jobs/%2500abc",
                 "/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z/outputs/video.mp4",
                 "/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z/outputs/.video"]:
        r = api.http.get(path)
        eq(r.status, 404, path)
        eq(r.json()["error"]["code"], "not_found", path)
    r = api.http.get("/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z/outputs/..%2f..%2fx")
    eq(r.status, 404)
    # An encoded NUL would cut the id or name short once decoded: refused as it is.
    for path in ["/v1/jobs/%00abc", "/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z%00/outputs/x",
                 "/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z/outputs/video.mp4%00.txt",
                 "/v1/jobs?state=failed%00x"]:
        r = api.http.get(path)
        eq(r.status, 400, path)
        eq(r.json()["error"]["code"], "bad_request", path)
    eq(api.http.delete("/v1/jobs/x").status, 404)
    # A route that reads no body refuses a large one instead of reading it all.
    r = api.http.request("DELETE", "/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z", b"x" * 100)
    eq(r.status, 404)
    s = connect(api)
    s.sendall(b"DELETE /v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z HTTP/1.1\r\nHost: x\r\n"
              b"Content-Length: 100000000\r\n\r\n" + b"x" * 200000)
    eq(read_response(s)[0], 413)
    s.close()
    eq(api.http.post("/v1/jobs/00d21bha1zzm2t2gacnpx0vfkw4p4r0tjh5z/retry").status, 404)


# ---- exports ----------------------------------------------------------------------------

@suite.test
def test_export_with_inline_rows_is_accepted_as_a_job(ctx):
    api = ctx["api"]
    body = {"title": "Sales", "columns": [{"key": "n", "format": "number", "decimals": 2}],
            "rows": [{"n": 1.5}, [2]], "orientation": "landscape", "compression": "fast"}
    r = export(api, body)
    eq(r.status, 202, r.body)
    job = r.json()
    eq(r.headers["location"], f"/v1/jobs/{job['id']}")
    eq(r.headers["etag"], '"1"')
    for k, v in {"type": "pdf.export", "queue": "pdf", "state": "queued", "progress": 0,
                 "attempts": 0, "max_attempts": 3, "started_at": None, "finished_at": None,
                 "error": None, "outputs": []}.items():
        eq(job[k], v, k)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", job["created_at"]), job
    eq(job["params"]["orientation"], "landscape")
    eq(job["params"]["compression"], "fast")
    eq(job["params"]["columns"][0]["decimals"], 2)
    # Small inline rows travel in the job record: no file is written.
    eq(job["input"], {"inline": '{"n":1.5}\n[2]\n', "format": "ndjson", "bytes": 14})
    assert job["id"] not in api.job_dirs(), "no dataset file for a small export"
    got = api.http.get(f"/v1/jobs/{job['id']}").json()
    eq(got["id"], job["id"])
    eq(got["params"], job["params"])
    eq(got["created_at"], job["created_at"])


@suite.test
def test_export_with_large_inline_rows_writes_the_dataset_blob(ctx):
    api = ctx["api"]
    rows = [{"name": f"row {i} " + "x" * 40} for i in range(1000)]  # about 55 KB of NDJSON
    r = export(api, {"title": "Big", "rows": rows})
    eq(r.status, 202, r.body)
    job = r.json()
    data = api.blobs.read(job["id"], "dataset")
    eq(data.count(b"\n"), 1000, "rows in the dataset blob")
    eq(job["input"], {"blob": "dataset", "format": "ndjson", "bytes": len(data)})


@suite.test
def test_export_from_source_url_stores_no_file(ctx):
    api = ctx["api"]
    r = export(api, {"title": "T", "source_url": "https://example.com/data.csv?sig=1"})
    eq(r.status, 202, r.body)
    job = r.json()
    eq(job["input"], {"url": "https://example.com/data.csv?sig=1", "format": "csv"})
    assert job["id"] not in api.job_dirs()


@suite.test
def test_export_csv_and_ndjson_bodies_stream_to_the_dataset(ctx):
    api = ctx["api"]
    csv = b'id,"full name",amount\r\n1,"Doe, Jane",3.5\r\n2,"multi\nline",4\r\n'
    r = api.http.post("/v1/exports?title=People&columns=" +
                      '%5B%7B%22key%22%3A%22amount%22%2C%22format%22%3A%22number%22%7D%5D',
                      csv, headers={"Content-Type": "text/csv; charset=utf-8"})
    eq(r.status, 202, r.body)
    job = r.json()
    eq(job["input"], {"blob": "dataset", "format": "csv", "bytes": len(csv)})
    eq(job["params"]["title"], "People")
    eq(api.blobs.read(job["id"], "dataset"), csv)
    nd = b'{"a":1}\n{"a":2,"b":"x"}\n'
    r = api.http.post("/v1/exports?title=N&compression=fast", nd,
                      headers={"Content-Type": "application/x-ndjson"})
    eq(r.status, 202, r.body)
    eq(r.json()["input"]["format"], "ndjson")
    eq(r.json()["params"]["compression"], "fast")


@suite.test
def test_bad_datasets_are_422_with_the_line_and_leave_nothing(ctx):
    api = ctx["api"]
    before = api.job_dirs()
    cases = [
        ("/v1/exports?title=T", b"a,b\n1,2\n3\n", "text/csv", "body", "CSV line 3"),
        ("/v1/exports?title=T", b"a,b\n1,\"2\n", "text/csv", "body", "not closed"),
        ("/v1/exports?title=T&columns=%5B%7B%22key%22%3A%22zz%22%7D%5D", b"a,b\n1,2\n",
         "text/csv", "columns[0].key", "no column 'zz'"),
        ("/v1/exports?title=T", b'{"a":1}\nnot json\n', "application/x-ndjson", "body",
         "NDJSON line 2"),
        ("/v1/exports", b"a\n1\n", "text/csv", "title", "title is required"),
        ("/v1/exports?title=T&colour=red", b"a\n1\n", "text/csv", "colour", "unknown"),
        ("/v1/exports?title=T&compression=9", b"a\n1\n", "text/csv", "compression",
         "compression must be default or fast"),
    ]
    for path, body, ctype, field, text in cases:
        r = api.http.post(path, body, headers={"Content-Type": ctype})
        eq(r.status, 422, (path, body))
        err = r.json()["error"]
        eq(err["code"], "invalid_field")
        eq(err["field"], field, body)
        assert text in err["message"], err
    eq(api.job_dirs(), before, "blob directories after refused datasets")


@suite.test
def test_invalid_export_fields_are_422_naming_the_field(ctx):
    api = ctx["api"]
    cases = [
        ({"rows": [{"a": 1}]}, "title"),
        ({"title": "t", "rows": [{"a": 1}], "page_size": "A3"}, "page_size"),
        ({"title": "t", "rows": [{"a": 1}], "compression": "max"}, "compression"),
        ({"title": "t", "rows": [{"a": 1}], "compression": 1}, "compression"),
        ({"title": "t", "columns": [{"key": "a"}, {"key": "b", "align": "middle"}],
          "rows": []}, "columns[1].align"),
        ({"title": "t", "rows": [{"a": 1}, {"a": [1]}]}, "rows[1].a"),
        ({"title": "t", "source_url": "file:///etc/passwd", "format": "csv"}, "source_url"),
        ({"title": "t"}, "rows"),
        ({"title": "t", "rows": [{"a": 1}], "bogus": True}, "bogus"),
    ]
    before = api.job_dirs()
    for body, field in cases:
        r = export(api, body)
        eq(r.status, 422, body)
        err = r.json()["error"]
        eq(err["code"], "invalid_field")
        eq(err["field"], field, body)
        assert err["message"], err
    eq(api.job_dirs(), before, "blob directories after refused requests")


@suite.test
def test_bad_json_is_400_and_wrong_types_415(ctx):
    api = ctx["api"]
    for body in [b"{", b'{"title":"t","title":"u"}', b"\xff", b""]:
        r = api.http.post("/v1/exports", body, headers={"Content-Type": "application/json"})
        eq(r.status, 400, body)
        eq(r.json()["error"]["code"], "invalid_json")
    r = api.http.post("/v1/exports", b"x", headers={"Content-Type": "text/plain"})
    eq(r.status, 415)
    eq(r.json()["error"]["code"], "unsupported_media_type")
    r = api.http.post("/v1/exports", b"x")
    eq(r.status, 415)
    r = api.http.post("/v1/videos", b"x", headers={"Content-Type": "image/png"})
    eq(r.status, 415)
    r = api.http.post("/v1/exports?title=t", b"a\n1\n", headers={"Content-Type": "text/csv; charset=latin1"})
    eq(r.status, 415)


@suite.test
def test_json_over_the_limit_is_413(ctx):
    api = ctx["api"]
    rows = [{"text": "x" * 1000} for _ in range(300)]  # about 300 KB > 256k
    r = export(api, {"title": "big", "rows": rows})
    eq(r.status, 413)
    eq(r.json()["error"]["code"], "payload_too_large")
    # The same without Content-Length (chunked): refused while it streams.
    s = connect(api)
    s.sendall(b"POST /v1/exports HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    status = None
    for i in range(10):
        # valid JSON so far (the body is read as it streams), just too much of it
        chunk = (b'{"title":"t","rows":[' if i == 0 else b"") + b" " * 65536
        try:
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            break
    status, _, body = read_response(s)
    s.close()
    eq(status, 413)
    eq(json.loads(body)["error"]["code"], "payload_too_large")
    # /v1/videos has its own JSON path (a source_url request): the same limit.
    r = api.http.post("/v1/videos", json.dumps({"source_url": "http://127.0.0.1/" + "a" * 300000}),
                      headers={"Content-Type": "application/json"})
    eq(r.status, 413)
    eq(r.json()["error"]["code"], "payload_too_large")


# ---- videos -------------------------------------------------------------------------------

@suite.test
def test_video_from_source_url(ctx):
    api = ctx["api"]
    r = api.http.post("/v1/videos", {"source_url": "https://cdn.example.com/in.mov",
                                     "preset": "webm-720p", "thumbnail": False})
    eq(r.status, 202, r.body)
    job = r.json()
    eq(job["type"], "video.transcode")
    eq(job["queue"], "video")
    eq(job["params"], {"preset": "webm-720p", "thumbnail": False})
    eq(job["input"], {"url": "https://cdn.example.com/in.mov"})
    r = api.http.post("/v1/videos", {"source_url": "https://x/y", "preset": "mp4-4k"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "preset")
    r = api.http.post("/v1/videos", {"preset": "mp4-720p"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "source_url")
    r = api.http.post("/v1/videos?preset=mp4-480p", {"source_url": "https://x/y"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "preset")


@suite.test
def test_video_raw_upload_with_query_parameters(ctx):
    api = ctx["api"]
    data = os.urandom(300_000)
    r = api.http.post("/v1/videos?preset=mp4-480p&thumbnail=off&filename=clip.mov&priority=high",
                      data, headers={"Content-Type": "video/quicktime"})
    eq(r.status, 202, r.body)
    job = r.json()
    eq(job["params"], {"preset": "mp4-480p", "thumbnail": False})
    eq(job["priority"], "high")
    eq(job["input"], {"blob": "input", "bytes": len(data), "content_type": "video/quicktime",
                      "filename": "clip.mov"})
    eq(api.blobs.read(job["id"], "input") == data, True, "stored upload equals the body")
    before = api.job_dirs()
    for path, field in [("/v1/videos?preset=nope", "preset"),
                        ("/v1/videos?thumbnail=maybe", "thumbnail"),
                        ("/v1/videos?preset=mp4-480p&preset=mp4-720p", "preset"),
                        ("/v1/videos?size=big", "size")]:
        r = api.http.post(path, data, headers={"Content-Type": "video/mp4"})
        eq(r.status, 422, path)
        eq(r.json()["error"]["field"], field, path)
    r = api.http.post("/v1/videos", b"", headers={"Content-Type": "video/mp4"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "body")
    eq(api.job_dirs(), before, "blob directories after refused uploads")


@suite.test
def test_video_multipart_upload_fields_before_and_after_the_file(ctx):
    api = ctx["api"]
    data = os.urandom(200_000) + b"\r\n--spoolb" + os.urandom(1000)
    body, ctype = multipart([("preset", "mp4-1080p", None, None),
                             ("file", data, "My Clip.mp4", "video/mp4"),
                             ("thumbnail", "false", None, None)])
    r = api.http.post("/v1/videos", body, headers={"Content-Type": ctype})
    eq(r.status, 202, r.body)
    job = r.json()
    eq(job["params"], {"preset": "mp4-1080p", "thumbnail": False})
    eq(job["input"], {"blob": "input", "bytes": len(data), "content_type": "video/mp4",
                      "filename": "My Clip.mp4"})
    eq(api.blobs.read(job["id"], "input") == data, True, "stored file equals the part")
    before = api.job_dirs()
    cases = [
        (multipart([("preset", "mp4-720p", None, None)]), 422, "file"),
        (multipart([("file", b"", "a.mp4", "video/mp4")]), 422, "file"),
        (multipart([("file", b"x", "a.mp4", None), ("file", b"y", "b.mp4", None)]), 422, "file"),
        (multipart([("file", b"x", "a.mp4", None), ("preset", "bad", None, None)]), 422, "preset"),
        (multipart([("colour", "red", None, None), ("file", b"x", "a.mp4", None)]), 422, "colour"),
        (multipart([("file", b"x", "a.txt", "text/plain")]), 415, None),
    ]
    for (b, ct), status, field in cases:
        r = api.http.post("/v1/videos", b, headers={"Content-Type": ct})
        eq(r.status, status, b[:200])
        if field:
            eq(r.json()["error"]["field"], field)
    for b in [b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc",  # no end
              b"garbage", b"--x\r\nNo-Colon\r\n\r\n\r\n--x--"]:
        r = api.http.post("/v1/videos", b, headers={"Content-Type": "multipart/form-data; boundary=x"})
        eq(r.status, 400, b)
        eq(r.json()["error"]["code"], "invalid_multipart")
    r = api.http.post("/v1/videos", b"x", headers={"Content-Type": "multipart/form-data"})
    eq(r.status, 400)
    eq(api.job_dirs(), before, "blob directories after refused uploads")


# ---- idempotency ------------------------------------------------------------------------------

@suite.test
def test_idempotency_key_returns_the_first_job_and_refuses_a_different_request(ctx):
    api = ctx["api"]
    key = {"Idempotency-Key": "order-" + uuid.uuid4().hex}
    body = {"title": "Invoice", "rows": [{"n": 1}]}
    r1 = export(api, body, headers=key)
    eq(r1.status, 202)
    # The 202 body is the job as recorded (the keyed path runs a script in Redis).
    eq(api.http.get(r1.headers["location"]).json()["created_at"], r1.json()["created_at"])
    dirs = api.job_dirs()
    r2 = export(api, body, headers=key)
    eq(r2.status, 202)
    eq(r2.json()["id"], r1.json()["id"])
    eq(r2.headers.get("idempotent-replayed"), "true")
    eq(r2.headers["location"], r1.headers["location"])
    eq(api.job_dirs(), dirs, "a replay leaves no new files")
    r3 = export(api, {"title": "Invoice", "rows": [{"n": 2}]}, headers=key)
    eq(r3.status, 409)
    eq(r3.json()["error"]["code"], "idempotency_conflict")
    eq(api.job_dirs(), dirs)
    # An upload repeated with another multipart boundary is the same request.
    key = {"Idempotency-Key": "up-" + uuid.uuid4().hex}
    fields = [("file", b"0123456789" * 1000, "a.mp4", "video/mp4"), ("preset", "mp4-480p", None, None)]
    b1, c1 = multipart(fields)
    b2, c2 = multipart(fields)
    assert c1 != c2
    u1 = api.http.post("/v1/videos", b1, headers=dict(key, **{"Content-Type": c1}))
    dirs = api.job_dirs()
    u2 = api.http.post("/v1/videos", b2, headers=dict(key, **{"Content-Type": c2}))
    eq((u1.status, u2.status), (202, 202))
    eq(u2.json()["id"], u1.json()["id"])
    fields[1] = ("preset", "mp4-720p", None, None)
    b3, c3 = multipart(fields)
    eq(api.http.post("/v1/videos", b3, headers=dict(key, **{"Content-Type": c3})).status, 409)
    # The replayed and the conflicting upload were stored before the key was looked up:
    # both are removed.
    eq(api.job_dirs(), dirs, "blobs after a replayed and a conflicting upload")
    r = export(api, body, headers={"Idempotency-Key": "has space"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "Idempotency-Key")


# ---- one job: ETag, long-poll ----------------------------------------------------------------------

@suite.test
def test_etag_and_if_none_match_give_304(ctx):
    api = ctx["api"]
    job = export(api).json()
    r = api.http.get(f"/v1/jobs/{job['id']}")
    eq(r.status, 200)
    etag = r.headers["etag"]
    r = api.http.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
    eq(r.status, 304)
    eq(r.body, b"")
    eq(r.headers["etag"], etag)
    r = api.http.get(f"/v1/jobs/{job['id']}", headers={"If-None-Match": '"999"'})
    eq(r.status, 200)


def later(seconds, fn):
    t = threading.Timer(seconds, fn)
    t.start()
    return t


@suite.test
def test_long_poll_wakes_on_progress_and_on_the_end(ctx):
    api = ctx["api"]
    w = Worker(api)
    try:
        job = export(api, {"title": "lp", "rows": [{"a": 1}], "priority": "high"}).json()
        w.take(job["id"])
        r = api.http.get(f"/v1/jobs/{job['id']}")
        eq(r.json()["state"], "running")
        eq(r.json()["attempts"], 1)
        etag = r.headers["etag"]
        later(0.5, lambda: w.cmd("progress 40"))
        t0 = time.monotonic()
        r = api.http.get(f"/v1/jobs/{job['id']}?wait=20", headers={"If-None-Match": etag})
        took = time.monotonic() - t0
        eq(r.status, 200)
        eq(r.json()["progress"], 40)
        assert 0.4 < took < 3, f"long-poll answered after {took:.2f}s"
        assert r.headers["etag"] != etag
        later(0.3, lambda: (w.cmd("output export.pdf application/pdf 1000"), w.cmd("succeed")))
        r = api.http.get(f"/v1/jobs/{job['id']}?wait=20", headers={"If-None-Match": r.headers["etag"]})
        eq(r.status, 200)
        eq(r.json()["state"], "succeeded")
        eq(r.json()["progress"], 100)
        assert r.json()["finished_at"]
        # A finished job answers at once, even when asked to wait.
        t0 = time.monotonic()
        r = api.http.get(f"/v1/jobs/{job['id']}?wait=20", headers={"If-None-Match": r.headers["etag"]})
        eq(r.status, 304)
        assert time.monotonic() - t0 < 1
    finally:
        w.close()


@suite.test
def test_long_poll_times_out_with_304_and_waits_without_etag(ctx):
    api = ctx["api"]
    job = export(api).json()
    etag = api.http.get(f"/v1/jobs/{job['id']}").headers["etag"]
    t0 = time.monotonic()
    r = api.http.get(f"/v1/jobs/{job['id']}?wait=1", headers={"If-None-Match": etag})
    took = time.monotonic() - t0
    eq(r.status, 304)
    assert 0.9 < took < 2.5, took
    # Without If-None-Match: the next change (here a cancel through the API) wakes it.
    later(0.4, lambda: api.http.delete(f"/v1/jobs/{job['id']}"))
    t0 = time.monotonic()
    r = api.http.get(f"/v1/jobs/{job['id']}?wait=10")
    eq(r.status, 200)
    eq(r.json()["state"], "cancelled")
    assert time.monotonic() - t0 < 3
    for bad in ["-1", "x", "100000"]:
        r = api.http.get(f"/v1/jobs/{job['id']}?wait={bad}")
        eq(r.status, 422, bad)
        eq(r.json()["error"]["field"], "wait")
    eq(api.http.get(f"/v1/jobs/{job['id']}?colour=1").status, 422)


@suite.test
def test_many_long_polls_wait_without_holding_threads(ctx):
    api = ctx["api"]
    job = export(api).json()
    etag = api.http.get(f"/v1/jobs/{job['id']}").headers["etag"]
    results = []

    def poll():
        r = api.http.get(f"/v1/jobs/{job['id']}?wait=10", headers={"If-None-Match": etag})
        results.append((r.status, r.json()["state"] if r.status == 200 else None))
    threads = [threading.Thread(target=poll) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    # 20 waiting polls on 2 HTTP threads: other requests are still served at once.
    t0 = time.monotonic()
    eq(api.http.get("/healthz").status, 200)
    assert time.monotonic() - t0 < 0.5
    m = re.search(r"^spool_api_longpoll_waiting (\d+)$", api.http.get("/metrics").body.decode(), re.M)
    eq(int(m.group(1)), 20, "waiting long-polls")
    eq(api.http.delete(f"/v1/jobs/{job['id']}").status, 200)
    for t in threads:
        t.join(10)
    eq(sorted(results), [(200, "cancelled")] * 20)


# ---- outputs and Range ---------------------------------------------------------------------------

@suite.test
def test_outputs_download_with_range(ctx):
    # The video is larger than one S3 part (5 MiB in s3 mode): a multipart upload, read
    # back with ranged GETs on either side of and across the parts' boundary.
    api = ctx["api"]
    n, part = 5 * 1024 * 1024 + 100_000, 5 * 1024 * 1024
    w = Worker(api)
    try:
        r = api.http.post("/v1/videos?priority=high", os.urandom(1000), headers={"Content-Type": "video/mp4"})
        job = r.json()
        w.take(job["id"])
        eq(w.cmd(f"output video.mp4 video/mp4 {n}"), "ok")
        eq(w.cmd("output poster.jpg image/jpeg 5000"), "ok")
        eq(w.cmd("succeed"), "ok succeeded")
    finally:
        w.close()
    got = api.http.get(f"/v1/jobs/{job['id']}").json()
    eq(got["state"], "succeeded")
    api.blobs.check_outputs(got)
    outs = {o["name"]: o for o in got["outputs"]}
    eq(outs["video.mp4"], {"name": "video.mp4", "url": f"/v1/jobs/{job['id']}/outputs/video.mp4",
                           "content_type": "video/mp4", "bytes": n})
    eq(got["metadata"], {"pages": 1, "rows": 2})
    url = outs["video.mp4"]["url"]
    r = api.http.get(url)
    eq(r.status, 200)
    eq(r.headers["content-type"], "video/mp4")
    eq(r.headers["content-length"], str(n))
    eq(r.headers["accept-ranges"], "bytes")
    eq(r.headers["content-disposition"], 'attachment; filename="video.mp4"')
    eq(r.body == pattern(n), True, "file body")
    for first, last in [(1000, 1999), (part - 10, part + 9), (part, part + 99)]:
        r = api.http.get(url, headers={"Range": f"bytes={first}-{last}"})
        eq(r.status, 206)
        eq(r.headers["content-range"], f"bytes {first}-{last}/{n}")
        eq(r.headers["content-length"], str(last - first + 1))
        eq(r.body == pattern(last - first + 1, first), True, f"range body {first}-{last}")
    r = api.http.get(url, headers={"Range": "bytes=-10"})
    eq((r.status, r.headers["content-range"]), (206, f"bytes {n - 10}-{n - 1}/{n}"))
    eq(r.body == pattern(10, n - 10), True)
    r = api.http.get(url, headers={"Range": f"bytes={n - 1000}-"})
    eq((r.status, len(r.body)), (206, 1000))
    eq(r.body == pattern(1000, n - 1000), True, "open-ended range body")
    r = api.http.get(url, headers={"Range": "bytes=0-0"})
    eq((r.status, r.headers["content-range"], r.body), (206, f"bytes 0-0/{n}", pattern(1)))
    r = api.http.get(url, headers={"Range": f"bytes={n}-"})
    eq(r.status, 416)
    eq(r.headers["content-range"], f"bytes */{n}")
    r = api.http.get(url, headers={"Range": "bytes=0-1,5-6"})
    eq((r.status, len(r.body)), (200, n))
    r = api.http.request("HEAD", url)
    eq((r.status, r.headers["content-length"], r.body), (200, str(n), b""))
    eq(api.http.get(f"/v1/jobs/{job['id']}/outputs/poster.jpg").headers["content-type"], "image/jpeg")
    # Only listed outputs are served: not the upload, not other names.
    eq(api.http.get(f"/v1/jobs/{job['id']}/outputs/input").status, 404)
    eq(api.http.get(f"/v1/jobs/{job['id']}/outputs/nope.mp4").status, 404)
    queued = export(api).json()
    eq(api.http.get(f"/v1/jobs/{queued['id']}/outputs/export.pdf").status, 404)


# ---- cancel, retry, list, queues, metrics -------------------------------------------------------

@suite.test
def test_cancel_queued_running_and_ended_jobs(ctx):
    api = ctx["api"]
    job = export(api).json()
    r = api.http.delete(f"/v1/jobs/{job['id']}")
    eq(r.status, 200)
    eq(r.json()["state"], "cancelled")
    r = api.http.delete(f"/v1/jobs/{job['id']}")
    eq(r.status, 409)
    eq(r.json()["error"]["code"], "job_ended")
    w = Worker(api)
    try:
        job = export(api, {"title": "c", "rows": [{"a": 1}], "priority": "high"}).json()
        w.take(job["id"])
        r = api.http.delete(f"/v1/jobs/{job['id']}")
        eq(r.status, 202)
        eq(r.json()["state"], "running")
        eq(r.json()["cancel_requested"], True)
        eq(w.cmd("progress 10"), "ok cancel")
    finally:
        w.close()


@suite.test
def test_failed_job_is_retried_from_the_dead_letter_list(ctx):
    api = ctx["api"]
    w = Worker(api)
    try:
        job = export(api, {"title": "f", "rows": [{"a": 1}], "priority": "high"}).json()
        w.take(job["id"])
        eq(w.cmd("fail bad_dataset the dataset has no rows"), "ok failed")
        got = api.http.get(f"/v1/jobs/{job['id']}").json()
        eq(got["state"], "failed")
        eq(got["error"], {"code": "bad_dataset", "message": "the dataset has no rows", "retryable": False})
        dead = [q for q in api.http.get("/v1/queues").json()["queues"] if q["name"] == "pdf"][0]["dead"]
        assert dead >= 1
        r = api.http.post(f"/v1/jobs/{job['id']}/retry")
        eq(r.status, 202)
        eq(r.headers["location"], f"/v1/jobs/{job['id']}")
        eq((r.json()["state"], r.json()["attempts"], r.json()["error"]), ("queued", 0, None))
        # The failed attempt stays in the job's attempt log after the retry.
        log = r.json()["attempt_log"]
        eq(len(log), 1, log)
        eq((log[0]["attempt"], log[0]["outcome"], log[0]["error"]),
           (1, "failed", {"code": "bad_dataset", "message": "the dataset has no rows"}))
        assert log[0]["started_at"] <= log[0]["ended_at"] and log[0]["ended_at"].endswith("Z"), log
        r = api.http.post(f"/v1/jobs/{job['id']}/retry")
        eq(r.status, 409)
        eq(r.json()["error"]["code"], "job_not_failed")
        # A retryable failure shows when the next attempt is due.
        job2 = export(api, {"title": "r", "rows": [{"a": 1}], "priority": "high"}).json()
        w.take(job2["id"])
        eq(w.cmd("retry fetch_failed upstream 503"), "ok retrying")
        got = api.http.get(f"/v1/jobs/{job2['id']}").json()
        eq(got["state"], "retrying")
        assert got["next_attempt_at"], got
        eq(got["error"]["retryable"], True)
        eq([(e["outcome"], e["error"]["code"]) for e in got["attempt_log"]],
           [("retrying", "fetch_failed")])
        eq(api.http.get(f"/v1/jobs/{job2['id']}").json()["attempt_log"][0]["attempt"], 1)
    finally:
        w.close()


@suite.test
def test_list_jobs_with_filters(ctx):
    api = ctx["api"]
    a = export(api).json()
    time.sleep(0.005)  # the order is by creation millisecond
    b = export(api).json()
    r = api.http.get("/v1/jobs?type=pdf.export&limit=2")
    eq(r.status, 200)
    jobs = r.json()["jobs"]
    eq([j["id"] for j in jobs], [b["id"], a["id"]], "newest first")
    r = api.http.get("/v1/jobs?state=cancelled&limit=1000")
    assert r.json()["jobs"] and all(j["state"] == "cancelled" for j in r.json()["jobs"])
    r = api.http.get("/v1/jobs?type=video.transcode")
    assert all(j["type"] == "video.transcode" for j in r.json()["jobs"])
    for q, field in [("state=done", "state"), ("limit=0", "limit"), ("limit=x", "limit"),
                     ("type=A%20B", "type"), ("sort=id", "sort")]:
        r = api.http.get("/v1/jobs?" + q)
        eq(r.status, 422, q)
        eq(r.json()["error"]["field"], field)


@suite.test
def test_queues_show_depths_per_queue(ctx):
    api = ctx["api"]
    before = {q["name"]: q for q in api.http.get("/v1/queues").json()["queues"]}
    export(api)
    r = api.http.get("/v1/queues")
    eq(r.status, 200)
    body = r.json()
    q = {q["name"]: q for q in body["queues"]}
    eq(q["pdf"]["depth"], before["pdf"]["depth"] + 1)
    for k in ("depth", "running", "delayed", "dead", "workers", "totals"):
        assert k in q["pdf"], k
    # No worker runs here; the API's own webhook deliverer is the one in the registry.
    eq([w["kind"] for w in body["workers"]], ["webhook"])
    eq(body["workers"][0]["queues"], ["webhooks"])


@suite.test
def test_a_paused_queue_holds_its_jobs_until_resumed(ctx):
    api = ctx["api"]
    w = Worker(api, queues="pdf")
    try:
        r = api.http.post("/v1/queues/pdf/pause")
        eq(r.status, 200, r.body)
        eq(r.json()["name"], "pdf")
        eq(r.json()["paused"], True)
        assert r.json()["paused_at"].endswith("Z"), r.json()
        eq(api.http.post("/v1/queues/pdf/pause").status, 200, "pausing twice")
        job = export(api)
        eq(job.status, 202, "a paused queue still takes jobs")
        eq(w.cmd("take 1500"), "none no job arrived", "a worker of a paused queue")
        eq(api.http.get(f"/v1/jobs/{job.json()['id']}").json()["state"], "queued")
        q = {q["name"]: q for q in api.http.get("/v1/queues").json()["queues"]}
        eq(q["pdf"]["paused"], True)
        assert all(not v["paused"] for k, v in q.items() if k != "pdf"), q
        text = api.http.get("/metrics").body.decode()
        assert re.search(r'^spool_queue_paused\{queue="pdf"\} 1$', text, re.M), text[:3000]
        r = api.http.post("/v1/queues/pdf/resume")
        eq(r.status, 200, r.body)
        eq(r.json()["paused"], False)
        eq(r.json()["paused_at"], None)
        w.take(job.json()["id"])
        text = api.http.get("/metrics").body.decode()
        assert re.search(r'^spool_queue_paused\{queue="pdf"\} 0$', text, re.M)
        # A queue that never saw a job can be paused ahead, and is listed from then on.
        eq(api.http.post("/v1/queues/later/pause").json()["depth"], 0)
        q = {q["name"]: q for q in api.http.get("/v1/queues").json()["queues"]}
        eq(q["later"]["paused"], True)
        eq(api.http.post("/v1/queues/later/resume").status, 200)
        for bad in ("/v1/queues/a%20b/pause", "/v1/queues/" + "q" * 65 + "/pause",
                    "/v1/queues/%00/pause", "/v1/queues//pause"):
            r = api.http.post(bad)
            assert r.status in (400, 404), (bad, r.status)
            assert r.json()["error"]["code"], r.body
        r = api.http.get("/v1/queues/pdf/pause")
        eq(r.status, 405)
        eq(r.headers["allow"], "POST")
        eq(api.http.post("/v1/queues/pdf/stop").status, 404)
    finally:
        api.http.post("/v1/queues/pdf/resume")
        w.close()


@suite.test
def test_delayed_jobs_are_scheduled_until_due_and_can_be_cancelled(ctx):
    import datetime
    api = ctx["api"]
    w = Worker(api, queues="pdf")
    try:
        # delay in seconds (a JSON number), as a duration string, or in a query string.
        t0 = time.time()
        job = export(api, {"title": "later", "rows": [{"a": 1}], "delay": 1.5}).json()
        eq(job["state"], "scheduled")
        run_at = datetime.datetime.fromisoformat(job["run_at"].replace("Z", "+00:00")).timestamp()
        assert 1.0 < run_at - t0 < 3.0, (job["run_at"], t0)
        eq(w.cmd("maintain"), "ok 0 0", "nothing due yet")
        eq(w.cmd("take 300"), "none no job arrived", "a scheduled job is not taken")
        while time.time() < run_at + 0.05:
            time.sleep(0.05)
        eq(w.cmd("maintain"), "ok 1 0", "due: promoted")
        w.take(job["id"])
        assert time.time() >= run_at, "ran before its time"
        eq(w.cmd("succeed"), "ok succeeded")
        got = api.http.get(f"/v1/jobs/{job['id']}").json()
        eq((got["state"], got["run_at"]), ("succeeded", job["run_at"]))
        # run_at an hour ahead, with an offset; cancelled while scheduled it never runs.
        at = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=1)))
              + datetime.timedelta(hours=1)).replace(microsecond=0)
        later = export(api, {"title": "l", "rows": [{"a": 1}], "run_at": at.isoformat()}).json()
        eq(later["state"], "scheduled")
        eq(datetime.datetime.fromisoformat(later["run_at"].replace("Z", "+00:00")), at)
        r = api.http.delete(f"/v1/jobs/{later['id']}")
        eq((r.status, r.json()["state"]), (200, "cancelled"))
        # Text forms: CSV body with ?delay=, and a duration string in JSON.
        status, body = post_raw(api, "/v1/exports?title=t&delay=90s", b"a\n1\n", "text/csv")
        eq((status, body["state"]), (202, "scheduled"))
        eq(api.http.delete(f"/v1/jobs/{body['id']}").status, 200)
        r = api.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4", "delay": "5m"})
        eq((r.status, r.json()["state"]), (202, "scheduled"))
        eq(api.http.delete(f"/v1/jobs/{r.json()['id']}").status, 200)
        # A time already past runs at once.
        past = export(api, {"title": "p", "rows": [{"a": 1}],
                            "run_at": "2020-01-01T00:00:00Z"}).json()
        eq(past["state"], "queued")
        w.take(past["id"])
        eq(w.cmd("succeed"), "ok succeeded")
        # At the limit and past it; bad forms name the field.
        eq(export(api, {"title": "x", "rows": [{"a": 1}], "delay": 366 * 86400}).status, 202)
        for body, field in (({"delay": 366 * 86400 + 2}, "delay"), ({"delay": -1}, "delay"),
                            ({"delay": "soon"}, "delay"), ({"delay": True}, "delay"),
                            ({"run_at": "2026-12-24T06:00:00"}, "run_at"),
                            ({"run_at": "tomorrow"}, "run_at"), ({"run_at": 1765000000}, "run_at"),
                            ({"run_at": "2999-01-01T00:00:00Z"}, "run_at"),
                            ({"run_at": "2026-12-24T06:00:00Z", "delay": 5}, "delay")):
            r = export(api, dict({"title": "b", "rows": [{"a": 1}]}, **body))
            eq(r.status, 422, body)
            eq(r.json()["error"]["field"], field, body)
    finally:
        w.close()


@suite.test
def test_metrics_count_requests_and_show_queues(ctx):
    api = ctx["api"]
    export(api)
    api.http.get("/v1/jobs/nope")
    text = api.http.get("/metrics").body.decode()
    eq(api.http.get("/metrics").headers["content-type"].startswith("text/plain; version=0.0.4"), True)
    m = re.search(r'^spool_api_requests_total\{route="/v1/exports",code="202"\} (\d+)$', text, re.M)
    assert m and int(m.group(1)) >= 1, text[:2000]
    assert re.search(r'^spool_api_requests_total\{route="/v1/jobs/\{id\}",code="404"\} \d+$', text, re.M)
    assert re.search(r'^spool_api_request_duration_seconds_bucket\{route="/v1/exports",le="0.001"\} \d+$', text, re.M)
    assert re.search(r'^spool_api_request_duration_seconds_count\{route="/v1/exports"\} \d+$', text, re.M)
    assert re.search(r'^spool_queue_jobs\{queue="pdf",state="queued"\} \d+$', text, re.M)
    assert re.search(r'^spool_jobs_total\{queue="pdf",outcome="cancelled"\} \d+$', text, re.M)
    assert re.search(r"^spool_redis_up 1$", text, re.M)


# ---- auth, limits, Redis down --------------------------------------------------------------------

@suite.test
def test_bearer_tokens_guard_v1_but_not_health(ctx):
    api = ApiServer(suite, ctx["redis"], {"SPOOL_API_TOKENS": "alpha, beta",
                                          "SPOOL_KEY_PREFIX": "auth:"}, name="auth")
    try:
        eq(api.http.get("/healthz").status, 200)
        eq(api.http.get("/metrics").status, 200)
        r = api.http.get("/v1/queues")
        eq(r.status, 401)
        eq(r.json()["error"]["code"], "unauthorized")
        assert r.headers["www-authenticate"].startswith("Bearer")
        for h in ["Bearer gamma", "Basic YWxwaGE=", "Bearer alph", "Bearer alphaa"]:
            eq(api.http.get("/v1/queues", headers={"Authorization": h}).status, 401, h)
        # Refused before the body is read: an upload without a token leaves nothing.
        r = api.http.post("/v1/videos", os.urandom(5000), headers={"Content-Type": "video/mp4"})
        eq(r.status, 401)
        eq(api.job_dirs(), [])
        eq(api.http.get("/v1/queues", headers={"Authorization": "Bearer beta"}).status, 200)
        r = api.http.post("/v1/exports", {"title": "t", "rows": [{"a": 1}]},
                          headers={"Authorization": "bearer alpha"})
        eq(r.status, 202)
    finally:
        eq(api.stop(), 0)


@suite.test
def test_full_queue_is_429_with_retry_after(ctx):
    api = ApiServer(suite, ctx["redis"], {"SPOOL_QUEUE_LIMIT": "2", "SPOOL_KEY_PREFIX": "full:"},
                    name="full")
    try:
        eq(export(api).status, 202)
        csv_key = {"Content-Type": "text/csv", "Idempotency-Key": "full-csv"}
        first = api.http.post("/v1/exports?title=t", b"a\n1\n", headers=csv_key)
        eq(first.status, 202, first.body)
        dirs = api.job_dirs()
        r = export(api)
        eq(r.status, 429)
        eq(r.json()["error"]["code"], "queue_full")
        assert int(r.headers["retry-after"]) > 0
        eq(api.job_dirs(), dirs, "no files for a refused job")
        # Uploads are refused before their body is read.
        r = api.http.post("/v1/exports?title=t", b"a\n1\n", headers={"Content-Type": "text/csv"})
        eq(r.status, 429)
        eq(r.json()["error"]["code"], "queue_full")
        eq(api.job_dirs(), dirs, "no files for a refused upload")
        # A client retrying a request whose job exists gets it, full queue or not.
        again = api.http.post("/v1/exports?title=t", b"a\n1\n", headers=csv_key)
        eq(again.status, 202, again.body)
        eq(again.json()["id"], first.json()["id"], "the job the first request made")
        eq(api.job_dirs(), dirs, "no files for the replayed request")
        # The video queue has room.
        r = api.http.post("/v1/videos", b"x" * 1000, headers={"Content-Type": "video/mp4"})
        eq(r.status, 202)
        eq(sorted(api.job_dirs()), sorted(dirs + [r.json()["id"]]))
    finally:
        eq(api.stop(), 0)


@suite.test
def test_redis_down_is_503_with_retry_after_and_no_partial_state(ctx):
    redis = Redis(aof=True)
    api = ApiServer(suite, redis, name="down")
    try:
        job = export(api).json()
        redis.stop()
        for r in [export(api), api.http.get(f"/v1/jobs/{job['id']}"),
                  api.http.post("/v1/videos", os.urandom(10000), headers={"Content-Type": "video/mp4"}),
                  api.http.get("/v1/queues"), api.http.delete(f"/v1/jobs/{job['id']}"),
                  api.http.get(f"/v1/jobs/{job['id']}?wait=5"), api.http.get("/readyz")]:
            eq(r.status, 503, r.body)
            assert int(r.headers["retry-after"]) > 0
            assert r.json()["error"]["code"] in ("redis_unavailable", "not_ready"), r.body
        eq(api.http.get("/healthz").status, 200)
        m = api.http.get("/metrics").body.decode()
        assert re.search(r"^spool_redis_up 0$", m, re.M)
        # Series read from Redis are left out, not zeros (a counter reset to Prometheus).
        assert "spool_schedule_ticks_total" not in m and "spool_schedules{" not in m, m
        assert re.search(r"^spool_schedule_errors_total \d+$", m, re.M), m
        eq(api.job_dirs(), [], "no files: the refused requests left none (small exports have none)")
        redis.start()
        wait_until(lambda: api.http.get("/readyz").status == 200, 10, what="ready again")
        eq(api.http.get(f"/v1/jobs/{job['id']}").status, 200)
        eq(export(api).status, 202)
    finally:
        eq(api.stop(), 0)
        redis.destroy()


def take_storage_away(api):
    """Make api's blob store refuse every write: the directory replaced by a file (root
    ignores permissions), or the object store answering every request 503 (s3proxy
    --faults, after the signature check). Returns (words /readyz's message has then, a
    function that puts the store back)."""
    if api.blobs.kind == "s3":
        s3 = api.blobs.s3
        s3.inject("*", 503, "ServiceUnavailable", 1_000_000)
        return "503", lambda: open(s3.faults_path, "w").close()
    away = api.data + ".away"
    os.rename(api.data, away)
    with open(api.data, "w") as f:
        f.write("not a directory")

    def back():
        if os.path.isfile(api.data):
            os.unlink(api.data)
        os.rename(away, api.data)
    return "data directory", back


@suite.test
def test_storage_gone_is_503_on_readyz_and_uploads_with_no_job_left(ctx):
    api = ApiServer(suite, ctx["redis"], {"SPOOL_KEY_PREFIX": "st:"}, name="storage")
    back = None
    try:
        eq(api.http.get("/readyz").status, 200)
        words, back = take_storage_away(api)
        r = api.http.get("/readyz")
        eq(r.status, 503, r.body)
        eq(r.json()["error"]["code"], "not_ready")
        assert words in r.json()["error"]["message"], r.body
        assert int(r.headers["retry-after"]) > 0
        big_rows = [{"name": "x" * 100} for _ in range(400)]  # past the inline limit: a file
        for r in [api.http.post("/v1/videos", os.urandom(10000),
                                headers={"Content-Type": "video/mp4"}),
                  export(api, {"title": "t", "rows": big_rows})]:
            eq(r.status, 503, r.body)
            eq(r.json()["error"]["code"], "storage_unavailable")
            assert int(r.headers["retry-after"]) > 0
        eq(api.redis.cli("KEYS", "st:job:*"), "", "no job recorded")
        eq(api.http.get("/healthz").status, 200)
        back()
        back = None
        wait_until(lambda: api.http.get("/readyz").status == 200, 10, what="ready again")
        eq(api.job_dirs(), [], "blobs of the refused uploads")
        eq(api.http.post("/v1/videos", os.urandom(10000),
                         headers={"Content-Type": "video/mp4"}).status, 202)
    finally:
        if back:
            back()
        eq(api.stop(), 0)


@suite.test
def test_sigterm_answers_waiting_long_polls_and_exits_cleanly(ctx):
    api = ApiServer(suite, ctx["redis"], {"SPOOL_KEY_PREFIX": "term:"}, name="term")
    job = export(api).json()
    etag = api.http.get(f"/v1/jobs/{job['id']}").headers["etag"]
    out = {}

    def poll():
        t0 = time.monotonic()
        r = api.http.get(f"/v1/jobs/{job['id']}?wait=30", headers={"If-None-Match": etag})
        out["status"], out["took"] = r.status, time.monotonic() - t0
    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    code = api.stop()
    t.join(10)
    eq(code, 0, "exit code")
    assert time.monotonic() - t0 < 5
    eq(out.get("status"), 304)
    assert out["took"] < 5, out


@suite.test
def test_blob_stores_hold_what_the_jobs_report(ctx):
    # Last: every succeeded job's outputs, read back independently (boto3 in s3 mode).
    check_blob_stores(suite)


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

#!/usr/bin/env python3
"""Webhooks end to end: callback_url at submit (every body form of POST /v1/videos and
POST /v1/exports, its length limit and hostile forms, SPOOL_WEBHOOK_URL), and spool-api's
deliverer against a real HTTP receiver on loopback started here: at-least-once delivery
through the queue with retries (a receiver that fails three times gets one accepted
delivery per job, all with the same Spool-Event-Id), signatures verified here with
Python's hmac from the documented recipe, the answer's status and excerpt on the
delivery job, dead-lettering when attempts run out, SSRF refusals (loopback and metadata
addresses in every notation, and a name that resolves to loopback) without
SPOOL_OUTBOUND_ALLOW, the per-attempt timeout, redirects not followed, and the deliverer
turned off with SPOOL_WEBHOOK_CONCURRENCY=0; and end to end, deliveries made by the
step that ends a job (common/lua): a real PDF export, a failed one and a cancelled job
each announced once, signed.

The deliverer's own tests make their delivery jobs with qtool the way the contract
describes them: type webhook.deliver on queue webhooks, params {"job_id","event","url"}.
"""
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, ROOT, SANITIZED, Http, Proc, Queue, Redis, Skip, Suite,  # noqa: E402
                     eq, wait_until)

API = os.path.join(BIN, "spool-api")
SLOW = 3 if SANITIZED else 1
SECRET = "whsec_" + uuid.uuid4().hex
UNIFORM = ("cannot reach the URL's host: it does not resolve, does not answer, refuses the "
           "connection or TLS, or its address is not one this server may fetch from")
suite = Suite("webhooks")


# ---- the receiver ------------------------------------------------------------------------

class Receiver:
    """A real HTTP server on a loopback address that records every POST. What it
    answers depends on the path:
      /ok                 200 "thanks"
      /flaky/N/...        500 to the first N requests of each Spool-Event-Id, then 200
      /status/CODE/...    CODE with a long body holding control characters
      /slow/SECS/...      200 after SECS seconds
      /redirect/...       302 to /ok
    """

    def __init__(self, host="127.0.0.1"):
        self.requests = []
        self.lock = threading.Lock()
        self.seen = {}  # (path prefix, event id) -> requests so far
        recv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                recv._handle(self)

            def do_GET(self):  # a source_url that is not there: a job that fails
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that hung up early (a timeout, a cut answer) is expected

        self.srv = Server((host, 0), Handler)
        self.port = self.srv.server_address[1]
        self.host = host
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{h}:{self.port}{path}"

    def _handle(self, h):
        n = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(n)
        parts = h.path.split("/")
        event_id = h.headers.get("Spool-Event-Id", "")
        status, answer, extra = 200, b"thanks", {}
        if parts[1] == "flaky":
            key = (h.path, event_id)
            with self.lock:
                self.seen[key] = self.seen.get(key, 0) + 1
                k = self.seen[key]
            if k <= int(parts[2]):
                status, answer = 500, b"not yet"
        elif parts[1] == "status":
            status = int(parts[2])
            answer = b"\x1b[31mdown\x00 for maintenance\r\n" + "é".encode() * 400 + b"\xff"
        elif parts[1] == "slow":
            time.sleep(float(parts[2]))
        elif parts[1] == "redirect":
            status, answer, extra = 302, b"", {"Location": "/ok"}
        with self.lock:
            self.requests.append({"path": h.path, "headers": dict(h.headers), "body": body,
                                  "status": status, "at": time.time()})
        h.send_response(status)
        for k, v in extra.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(answer)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.wfile.write(answer)

    def got(self, prefix):
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(prefix)]


def verify_signature(secret, header, body, tolerance=300):
    """The recipe docs/webhooks.md gives receivers: t and v1 from the header, HMAC-SHA256
    of "t." + the raw body under the secret, compared in constant time, and t recent."""
    fields = dict(p.split("=", 1) for p in header.split(","))
    expected = hmac.new(secret.encode(), fields["t"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return (hmac.compare_digest(expected, fields["v1"]) and
            abs(time.time() - int(fields["t"])) <= tolerance)


def check_docs_recipes(req):
    """docs/webhooks.md's own recipes, run as written: its Python verify() and its shell
    lines (openssl) accept a delivery as received and refuse it once the body changes."""
    with open(os.path.join(ROOT, "docs", "webhooks.md")) as f:
        doc = f.read()
    py = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    sh = re.search(r"```sh\n(.*?)```", doc, re.S).group(1)
    ns = {}
    exec(py, ns)
    sig, body = req["headers"]["Spool-Signature"], req["body"]
    assert ns["verify"](SECRET, sig, body), "docs' Python recipe"
    assert not ns["verify"](SECRET, sig, body.replace(b"pdf.export", b"pdf.exporx"))
    d = os.path.join(suite.tmp, "recipe-" + uuid.uuid4().hex[:6])
    os.makedirs(d)
    for what, data, want in (("as received", body, "valid\n"), ("changed", body + b"x", "")):
        with open(os.path.join(d, "body.json"), "wb") as f:
            f.write(data)
        p = subprocess.run(["sh", "-c", sh], cwd=d, stdout=subprocess.PIPE, timeout=30,
                           env=dict(os.environ, SIG=sig, SPOOL_WEBHOOK_SECRET=SECRET))
        eq(p.stdout.decode(), want, f"docs' shell recipe, body {what}")


# ---- the API -----------------------------------------------------------------------------

class Api:
    """A spool-api on a free port (read from its log) with its own key prefix."""

    def __init__(self, ctx, prefix, env=None, check=True):
        e = {"SPOOL_REDIS_URL": ctx["redis"].url, "SPOOL_DATA_DIR": ctx["data"],
             "SPOOL_LISTEN": "127.0.0.1:0", "SPOOL_KEY_PREFIX": prefix,
             "SPOOL_LOG_FORMAT": "text", "SPOOL_API_THREADS": "2",
             "SPOOL_WEBHOOK_RETRY_BASE": "50ms", "SPOOL_WEBHOOK_RETRY_CAP": "200ms"}
        e.update(env or {})
        self.prefix = prefix
        self.queue = Queue(ctx["redis"], prefix)
        self.proc = Proc([API], env=e, name="api-" + prefix.strip(":"), logdir=suite.tmp)
        if not check:
            return

        def started():
            m = re.search(r"\(port (\d+),", self.proc.output())
            if m:
                return m
            if not self.proc.alive():
                raise AssertionError("spool-api exited:\n" + self.proc.output())
            return None
        self.port = int(wait_until(started, 20 * SLOW, what="spool-api to listen").group(1))
        self.http = Http("127.0.0.1", self.port)

    def job(self, jid):
        r = self.http.get(f"/v1/jobs/{jid}")
        eq(r.status, 200, f"GET job {jid}")
        return r.json()

    def deliver(self, job_id, url, event="job.succeeded", attempts=6):
        """A delivery job as the contract (WEBHOOK.md) describes it."""
        return self.queue.enqueue("webhooks", "webhook.deliver",
                                  {"job_id": job_id, "event": event, "url": url}, attempts)

    def wait_delivery(self, did, states, timeout=20):
        return wait_until(lambda: (lambda j: j if j["state"] in states else None)(self.job(did)),
                          timeout * SLOW, 0.05, what=f"delivery {did} to reach {states}")


def export(api, **extra):
    r = api.http.post("/v1/exports", {"title": "t", "rows": [{"a": 1}], **extra})
    eq(r.status, 202, f"export {r.body[:300]!r}")
    return r.json()


def setup():
    if not os.access(API, os.X_OK):
        raise Skip("spool-api is not built")
    ctx = {"redis": Redis(), "data": os.path.join(suite.tmp, "data")}
    os.makedirs(ctx["data"])
    ctx["recv"] = Receiver()
    # main: loopback allowed, signed, quick retries.
    ctx["main"] = Api(ctx, "wh:", {"SPOOL_OUTBOUND_ALLOW": "127.0.0.1,::1",
                                   "SPOOL_WEBHOOK_SECRET": SECRET,
                                   "SPOOL_WEBHOOK_MAX_ATTEMPTS": "6",
                                   "SPOOL_WEBHOOK_TIMEOUT": "2s"})
    # strict: no allow-list, defaults otherwise.
    ctx["strict"] = Api(ctx, "strict:")
    # off: no deliverer here, and a default callback URL for every job.
    ctx["default_url"] = ctx["recv"].url("/default")
    ctx["off"] = Api(ctx, "off:", {"SPOOL_OUTBOUND_ALLOW": "127.0.0.1",
                                   "SPOOL_WEBHOOK_CONCURRENCY": "0",
                                   "SPOOL_WEBHOOK_URL": ctx["default_url"]})
    return ctx


def teardown(ctx):
    for name in ("main", "strict", "off", "e2e"):
        if name in ctx:
            eq(ctx[name].proc.stop(), 0, f"{name} spool-api exit code after SIGTERM")


# ---- submit: callback_url ---------------------------------------------------------------

def multipart(fields, file_bytes=b"\x00" * 64):
    boundary = "b" + uuid.uuid4().hex
    out = b""
    for name, value in fields:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                .encode() + value + b"\r\n")
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode() + file_bytes
    out += f"\r\n--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def submit_forms(api, url):
    """POST a job with callback_url = url in each body form the two routes take; yields
    (form, response)."""
    q = urllib.parse.quote(url, safe="")
    yield "video json", api.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4",
                                                     "callback_url": url})
    yield "video raw", api.http.post(f"/v1/videos?filename=a.mp4&callback_url={q}",
                                     b"\x00" * 64, headers={"Content-Type": "video/mp4"})
    body, ct = multipart([("preset", b"mp4-720p"), ("callback_url", url.encode())])
    yield "video multipart", api.http.post("/v1/videos", body, headers={"Content-Type": ct})
    yield "export json", api.http.post("/v1/exports", {"title": "t", "rows": [{"a": 1}],
                                                       "callback_url": url})
    yield "export json source_url", api.http.post(
        "/v1/exports", {"title": "t", "source_url": "https://example.com/d.csv",
                        "callback_url": url})
    yield "export csv", api.http.post(f"/v1/exports?title=t&callback_url={q}", b"a,b\n1,2\n",
                                      headers={"Content-Type": "text/csv"})
    yield "export ndjson", api.http.post(f"/v1/exports?title=t&callback_url={q}",
                                         b'{"a":1}\n', headers={"Content-Type":
                                                                "application/x-ndjson"})


@suite.test
def test_callback_url_is_accepted_in_every_body_form_and_stored(ctx):
    api, redis = ctx["main"], ctx["redis"]
    url = ctx["recv"].url("/ok?token=abc&x=%2F")
    for form, r in submit_forms(api, url):
        eq(r.status, 202, f"{form}: {r.body[:300]!r}")
        j = r.json()
        eq(j["callback_url"], url, form)
        eq(api.job(j["id"])["callback_url"], url, form + " (GET)")
        eq(redis.cli("HGET", f"wh:job:{j['id']}", "callback_url"), url, form + " record")
        eq(redis.cli("HGET", f"wh:job:{j['id']}", "callback_attempts"), "6",
           form + " callback_attempts (SPOOL_WEBHOOK_MAX_ATTEMPTS)")
    # Without one (and no SPOOL_WEBHOOK_URL): null, and nothing on the record.
    j = export(api)
    eq(j["callback_url"], None)
    eq(redis.cli("HEXISTS", f"wh:job:{j['id']}", "callback_url"), "0")


@suite.test
def test_spoolctl_submits_callback_url(ctx):
    api, url = ctx["main"], ctx["recv"].url("/ok/ctl")
    ctl = os.path.join(BIN, "spoolctl")
    if not os.access(ctl, os.X_OK):
        raise Skip("spoolctl is not built")
    csv = os.path.join(suite.tmp, "ctl.csv")
    with open(csv, "w") as f:
        f.write("a,b\n1,2\n")
    clip = os.path.join(suite.tmp, "ctl.mp4")
    with open(clip, "wb") as f:
        f.write(b"\x00" * 64)
    for args in (["export", csv], ["export", "https://example.com/d.csv"],
                 ["submit-video", clip], ["submit-video", "https://example.com/v.mp4"]):
        p = subprocess.run([ctl, "--server", f"http://127.0.0.1:{api.port}", "--json", *args,
                            "--callback-url", url], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 0, f"spoolctl {args}: {p.stderr.decode()}")
        eq(api.job(json.loads(p.stdout)["id"])["callback_url"], url, f"spoolctl {args}")


@suite.test
def test_callback_attempts_default_to_12(ctx):
    j = export(ctx["strict"], callback_url="https://example.com/hook")
    eq(ctx["redis"].cli("HGET", f"strict:job:{j['id']}", "callback_attempts"), "12")


@suite.test
def test_callback_url_length_limit_in_every_form(ctx):
    api = ctx["main"]
    head = "https://example.com/"
    for n in (2047, 2048, 2049):
        url = head + "a" * (n - len(head))
        eq(len(url), n)
        for form, r in submit_forms(api, url):
            if n <= 2048:
                eq(r.status, 202, f"{form} at {n} bytes: {r.body[:200]!r}")
                eq(r.json()["callback_url"], url)
            else:
                eq(r.status, 422, f"{form} at {n} bytes")
                err = r.json()["error"]
                eq(err["field"], "callback_url", form)
                assert "at most 2048 bytes" in err["message"], err


@suite.test
def test_hostile_callback_urls_are_refused_with_422_naming_the_field(ctx):
    api = ctx["main"]
    bad = ["ftp://example.com/x", "file:///etc/passwd", "javascript:alert(1)", "//example.com/",
           "https://user:pw@example.com/", "https://example.com@evil.example/", "http://",
           "https://example.com/a b", "https://ex\u00e4mple.com/", "https://example.com/\r\nX: 1",
           ""]
    for url in bad:
        for form, r in submit_forms(api, url):
            eq(r.status, 422, f"{form} {url!r}: {r.body[:200]!r}")
            eq(r.json()["error"]["field"], "callback_url", f"{form} {url!r}")
            eq(r.json()["error"]["code"], "invalid_field", f"{form} {url!r}")
    # Not a string.
    for v in (1, None, ["https://example.com/"], {"u": 1}, True):
        r = api.http.post("/v1/exports", {"title": "t", "rows": [{"a": 1}], "callback_url": v})
        eq(r.status, 422, repr(v))
        eq(r.json()["error"]["field"], "callback_url")
        r = api.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4",
                                         "callback_url": v})
        eq(r.status, 422, repr(v))
    # A NUL byte: JSON \u0000 and a form field are 422 naming the field; %00 in a URL is
    # refused as a whole (400, as everywhere in the API).
    r = api.http.post("/v1/exports", b'{"title":"t","rows":[{"a":1}],'
                      b'"callback_url":"https://example.com/\\u0000.evil.example/"}',
                      headers={"Content-Type": "application/json"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "callback_url")
    assert "NUL" in r.json()["error"]["message"], r.json()
    body, ct = multipart([("callback_url", b"https://example.com/\x00x")])
    r = api.http.post("/v1/videos", body, headers={"Content-Type": ct})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "callback_url")
    r = api.http.post("/v1/exports?title=t&callback_url=https://example.com/%00x", b"a\n1\n",
                      headers={"Content-Type": "text/csv"})
    eq(r.status, 400)
    # Given twice.
    r = api.http.post("/v1/exports?title=t&callback_url=https://a.example/"
                      "&callback_url=https://b.example/", b"a\n1\n",
                      headers={"Content-Type": "text/csv"})
    eq(r.status, 422)
    eq(r.json()["error"]["field"], "callback_url")
    r = api.http.post("/v1/exports", b'{"title":"t","rows":[{"a":1}],"callback_url":'
                      b'"https://a.example/","callback_url":"https://b.example/"}',
                      headers={"Content-Type": "application/json"})
    eq(r.status, 400)


INTERNAL = ["http://127.0.0.1:{port}/hook", "http://127.1:{port}/hook",
            "http://2130706433:{port}/hook", "http://0x7f000001:{port}/hook",
            "http://0177.0.0.1:{port}/hook", "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:{port}/hook", "http://[::ffff:127.0.0.1]:{port}/hook",
            "http://localhost:{port}/hook", "http://10.1.2.3/hook", "http://0.0.0.0:{port}/"]


@suite.test
def test_internal_callback_urls_are_refused_at_submit_without_the_allow_list(ctx):
    strict, main = ctx["strict"], ctx["main"]
    for tmpl in INTERNAL:
        url = tmpl.format(port=ctx["recv"].port)
        for form, r in submit_forms(strict, url):
            eq(r.status, 422, f"{form} {url}: {r.body[:200]!r}")
            err = r.json()["error"]
            eq(err["field"], "callback_url", url)
            assert "refused" in err["message"], err
    # The allow-list opens loopback (and only what it lists).
    eq(export(main, callback_url=ctx["recv"].url("/ok"))["callback_url"], ctx["recv"].url("/ok"))
    r = main.http.post("/v1/exports", {"title": "t", "rows": [{"a": 1}],
                                       "callback_url": "http://169.254.169.254/"})
    eq(r.status, 422)


@suite.test
def test_spool_webhook_url_is_the_default_callback(ctx):
    off = ctx["off"]
    j = export(off)
    eq(j["callback_url"], ctx["default_url"])
    eq(ctx["redis"].cli("HGET", f"off:job:{j['id']}", "callback_url"), ctx["default_url"])
    own = ctx["recv"].url("/ok/own")
    eq(export(off, callback_url=own)["callback_url"], own)
    r = off.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4"})
    eq(r.status, 202)
    eq(r.json()["callback_url"], ctx["default_url"])


@suite.test
def test_a_bad_spool_webhook_url_stops_the_start(ctx):
    for url, why in (("ftp://example.com/", "http"), ("http://127.0.0.1/hook", "public"),
                     ("https://u:p@example.com/", "user name")):
        api = Api(ctx, "bad:", {"SPOOL_WEBHOOK_URL": url}, check=False)
        eq(api.proc.wait(20 * SLOW), 2, f"exit code with SPOOL_WEBHOOK_URL={url}")
        out = api.proc.output()
        assert "SPOOL_WEBHOOK_URL" in out and why in out, out
    api = Api(ctx, "bad:", {"SPOOL_WEBHOOK_RETRY_BASE": "2h", "SPOOL_WEBHOOK_RETRY_CAP": "1h"},
              check=False)
    eq(api.proc.wait(20 * SLOW), 2)
    assert "SPOOL_WEBHOOK_RETRY_CAP" in api.proc.output()


# ---- delivery -----------------------------------------------------------------------------

@suite.test
def test_flaky_receiver_gets_exactly_one_accepted_delivery_per_job(ctx):
    api, recv = ctx["main"], ctx["recv"]
    path = f"/flaky/3/{uuid.uuid4().hex[:8]}"
    jobs = [export(api, callback_url=recv.url(path)) for _ in range(3)]
    deliveries = {api.deliver(j["id"], recv.url(path), attempts=6): j for j in jobs}
    for did in deliveries:
        d = api.wait_delivery(did, ("succeeded", "failed"))
        eq(d["state"], "succeeded", f"delivery {did}: {d}")
        eq(d["attempts"], 4, "three failures, then the accepted one")
        eq(d["metadata"]["status"], 200)
        eq(d["metadata"]["response"], "thanks")
        eq(d["metadata"]["signed"], True)
        eq(d["error"], None)
    time.sleep(1.5)  # nothing more arrives once a delivery is accepted
    got = recv.got(path)
    eq(len(got), 12, "4 requests for each of 3 deliveries")
    for did, job in deliveries.items():
        mine = [r for r in got if r["headers"].get("Spool-Event-Id") == did]
        eq([r["status"] for r in mine], [500, 500, 500, 200], f"answers to {did}")
        expected = api.http.get(f"/v1/jobs/{job['id']}").body  # the job exactly as GET shows it
        for r in mine:
            h = r["headers"]
            eq(h["Content-Type"], "application/json")
            assert h["User-Agent"].startswith("spool-webhook/"), h
            eq(h["Spool-Event"], "job.succeeded")
            eq(r["body"], expected, "the body is the job's JSON as GET /v1/jobs/{id} shows it")
            assert verify_signature(SECRET, h["Spool-Signature"], r["body"]), h
            # The recipe fails for another body, another secret or an old timestamp.
            assert not verify_signature(SECRET, h["Spool-Signature"], r["body"] + b" ")
            assert not verify_signature(SECRET + "x", h["Spool-Signature"], r["body"])
            assert not verify_signature(SECRET, h["Spool-Signature"], r["body"], tolerance=-1)
        eq(json.loads(mine[-1]["body"])["id"], job["id"])
    check_docs_recipes(got[-1])
    # Retries back off: each attempt came after the one before.
    for did in deliveries:
        at = [r["at"] for r in got if r["headers"].get("Spool-Event-Id") == did]
        assert at == sorted(at), at


@suite.test
def test_status_and_excerpt_on_the_delivery_then_dead_letter(ctx):
    api, recv, redis = ctx["main"], ctx["recv"], ctx["redis"]
    path = f"/status/503/{uuid.uuid4().hex[:8]}"
    j = export(api)
    did = api.deliver(j["id"], recv.url(path), event="job.failed", attempts=3)
    d = wait_until(lambda: (lambda d: d if d["attempts"] >= 1 and d["state"] != "running"
                            else None)(api.job(did)), 20 * SLOW, 0.05, what="first attempt")
    assert d["state"] in ("retrying", "queued", "failed"), d
    eq(d["metadata"]["status"], 503)
    excerpt = d["metadata"]["response"]
    assert excerpt.startswith("?[31mdown? for maintenance\r\né"), repr(excerpt[:40])
    assert len(excerpt.encode()) <= 512, len(excerpt.encode())
    eq(d["error"]["code"], "callback_status")
    assert "HTTP 503" in d["error"]["message"], d["error"]
    d = api.wait_delivery(did, ("failed",))
    eq(d["attempts"], 3)
    eq(d["error"]["code"], "callback_status")
    eq(len(recv.got(path)), 3)
    assert redis.cli("ZSCORE", "wh:q:webhooks:dead", did) != "", "on the dead-letter set"
    q = {q["name"]: q for q in api.http.get("/v1/queues").json()["queues"]}
    assert q["webhooks"]["dead"] >= 1, q["webhooks"]
    # A dead delivery can be retried like any job: the receiver still fails it.
    eq(api.http.post(f"/v1/jobs/{did}/retry").status, 202)
    api.wait_delivery(did, ("failed",))
    eq(len(recv.got(path)), 6)


@suite.test
def test_refused_destinations_fail_at_once_without_the_allow_list(ctx):
    strict, recv = ctx["strict"], ctx["recv"]
    j = export(strict)
    urls = [t.format(port=recv.port).replace("/hook", f"/refused-{i}")
            for i, t in enumerate(INTERNAL)]
    # A name that resolves to loopback is refused when connecting (after DNS).
    try:
        host = socket.gethostname()
        addrs = {a[4][0] for a in socket.getaddrinfo(host, recv.port, socket.AF_INET)}
        if addrs and all(a.startswith("127.") for a in addrs):
            urls.append(f"http://{host}:{recv.port}/refused-by-name")
    except OSError:
        pass
    before = len(recv.requests)
    dids = {strict.deliver(j["id"], u, attempts=5): u for u in urls}
    for did, url in dids.items():
        d = strict.wait_delivery(did, ("failed",))
        eq(d["attempts"], 1, f"{url}: refused is permanent")
        eq(d["error"]["code"], "callback_unreachable", url)
        eq(d["error"]["message"], UNIFORM, url)
        eq(d["error"]["retryable"], False, url)
    eq(recv.got("/refused"), [], "the receiver got nothing")
    eq(len(recv.requests), before, "the receiver got nothing at all")
    print(f"# refused {len(dids)} destinations: {sorted(dids.values())}")


@suite.test
def test_unreachable_receiver_is_retried_with_the_uniform_error(ctx):
    api = ctx["main"]
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    j = export(api)
    did = api.deliver(j["id"], f"http://127.0.0.1:{port}/closed", attempts=2)
    d = api.wait_delivery(did, ("failed",))
    eq(d["attempts"], 2, "a closed port is retried")
    eq(d["error"]["code"], "callback_unreachable")
    eq(d["error"]["message"], UNIFORM)
    eq(d["metadata"]["status"], None)


@suite.test
def test_each_attempt_has_a_timeout(ctx):
    api, recv = ctx["main"], ctx["recv"]
    path = f"/slow/4/{uuid.uuid4().hex[:8]}"
    j = export(api)
    t0 = time.monotonic()
    did = api.deliver(j["id"], recv.url(path), attempts=1)
    d = api.wait_delivery(did, ("failed",))
    took = time.monotonic() - t0
    assert took < 3.9, f"SPOOL_WEBHOOK_TIMEOUT=2s, the delivery took {took:.1f}s"
    assert 1900 <= d["metadata"]["duration_ms"] < 3000, d["metadata"]
    eq(d["error"]["code"], "callback_unreachable")  # no answer before the timeout


@suite.test
def test_redirects_are_not_followed(ctx):
    api, recv = ctx["main"], ctx["recv"]
    path = f"/redirect/{uuid.uuid4().hex[:8]}"
    before = len(recv.got("/ok"))
    j = export(api)
    did = api.deliver(j["id"], recv.url(path), attempts=1)
    d = api.wait_delivery(did, ("failed",))
    eq(d["metadata"]["status"], 302)
    eq(d["error"]["code"], "callback_status")
    eq(len(recv.got("/ok")), before, "the redirect's target was not asked")


@suite.test
def test_bad_delivery_params_fail_permanently(ctx):
    api, recv = ctx["main"], ctx["recv"]
    q = api.queue
    cases = [({"job_id": "nope", "event": "job.succeeded", "url": recv.url("/ok")},
              "invalid_delivery"),
             ({"job_id": "00d2a6fb3pqbj4xfgddxjbk1e4ven5332qha", "event": "job.succeeded",
               "url": recv.url("/ok")}, "job_not_found"),
             ({"job_id": export(api)["id"], "event": "job.succeeded\r\nX: 1",
               "url": recv.url("/ok")}, "invalid_delivery"),
             ({"job_id": export(api)["id"], "event": "job.succeeded",
               "url": "https://u:p@example.com/"}, "invalid_callback_url")]
    for params, code in cases:
        did = q.enqueue("webhooks", "webhook.deliver", params, 5)
        d = api.wait_delivery(did, ("failed",))
        eq((d["attempts"], d["error"]["code"]), (1, code), json.dumps(params))


@suite.test
def test_the_deliverer_is_a_worker_in_the_registry(ctx):
    workers = ctx["main"].http.get("/v1/queues").json()["workers"]
    mine = [w for w in workers if w["kind"] == "webhook"]
    eq(len(mine), 1, json.dumps(workers))
    eq(mine[0]["queues"], ["webhooks"])
    eq(mine[0]["concurrency"], 2)


@suite.test
def test_no_deliveries_with_concurrency_0(ctx):
    off, recv = ctx["off"], ctx["recv"]
    j = export(off)
    did = off.deliver(j["id"], recv.url("/off"), attempts=2)
    time.sleep(2)
    eq(off.job(did)["state"], "queued", "nobody takes it")
    eq(recv.got("/off"), [])
    eq([w for w in off.http.get("/v1/queues").json()["workers"] if w["kind"] == "webhook"], [])
    assert "webhooks: delivering" not in off.proc.output()


@suite.test
def test_pausing_the_webhooks_queue_holds_deliveries(ctx):
    api, recv = ctx["main"], ctx["recv"]
    path = f"/ok/paused-{uuid.uuid4().hex[:8]}"
    eq(api.http.post("/v1/queues/webhooks/pause").status, 200)
    try:
        did = api.deliver(export(api)["id"], recv.url(path))
        time.sleep(1.5)
        eq(api.job(did)["state"], "queued", "held while paused")
        eq(recv.got(path), [])
    finally:
        eq(api.http.post("/v1/queues/webhooks/resume").status, 200)
    eq(api.wait_delivery(did, ("succeeded",))["state"], "succeeded")
    eq(len(recv.got(path)), 1)


@suite.test
def test_a_slow_receiver_holds_up_only_deliveries(ctx):
    """Two deliveries hanging on a receiver take the two delivery threads; the API keeps
    answering at once, and a third waits its turn instead of making a thread."""
    api, recv = ctx["main"], ctx["recv"]
    tag = uuid.uuid4().hex[:8]
    j = export(api)
    slow = [api.deliver(j["id"], recv.url(f"/slow/1.5/{tag}/{i}"), attempts=1) for i in range(3)]
    wait_until(lambda: sum(api.job(d)["state"] == "running" for d in slow) == 2, 10 * SLOW,
               0.02, what="two deliveries running")
    t0 = time.monotonic()
    eq(api.http.get("/healthz").status, 200)
    export(api)
    assert time.monotonic() - t0 < 0.5 * SLOW, "the API answers while deliveries hang"
    eq(sum(api.job(d)["state"] == "queued" for d in slow), 1, "the third waits")
    for d in slow:
        eq(api.wait_delivery(d, ("succeeded",))["state"], "succeeded")


# ---- end to end: jobs that end create their deliveries (common/lua) ------------------------

def e2e_api(ctx):
    """Its own key prefix: the main API's queues hold the other tests' jobs."""
    if "e2e" not in ctx:
        ctx["e2e"] = Api(ctx, "e2e:", {"SPOOL_OUTBOUND_ALLOW": "127.0.0.1",
                                       "SPOOL_WEBHOOK_SECRET": SECRET,
                                       "SPOOL_WEBHOOK_MAX_ATTEMPTS": "6"})
    return ctx["e2e"]


def delivery_of(api, req):
    """The delivery job a received request names, checked against the request."""
    did = req["headers"]["Spool-Event-Id"]
    d = api.job(did)
    eq((d["type"], d["queue"]), ("webhook.deliver", "webhooks"))
    return d


@suite.test
def test_a_real_pdf_export_with_callback_url_gets_one_signed_delivery(ctx):
    """A real spool-pdf renders the export; its end makes the delivery, which a receiver
    that fails twice accepts on the third attempt: one accepted delivery, one event id."""
    api, recv = e2e_api(ctx), ctx["recv"]
    tag = uuid.uuid4().hex[:8]
    ok_url, bad_url = recv.url(f"/flaky/2/e2e-{tag}"), recv.url(f"/e2e-{tag}/failed")
    env = {"SPOOL_REDIS_URL": ctx["redis"].url, "SPOOL_DATA_DIR": ctx["data"],
           "SPOOL_KEY_PREFIX": "e2e:", "SPOOL_LOG_FORMAT": "text",
           "SPOOL_OUTBOUND_ALLOW": "127.0.0.1"}
    worker = Proc([os.path.join(BIN, "spool-pdf")], env=env, name="spool-pdf", logdir=suite.tmp)
    try:
        job = export(api, callback_url=ok_url)
        failing = api.http.post("/v1/exports", {"title": "t", "format": "csv",
                                                "source_url": recv.url("/missing.csv"),
                                                "callback_url": bad_url})
        eq(failing.status, 202)
        wait_until(lambda: [r["status"] for r in recv.got(f"/flaky/2/e2e-{tag}")][-1:] == [200]
                   and recv.got(f"/e2e-{tag}/failed"), 60 * SLOW, 0.05,
                   what="the deliveries of the two exports")
    finally:
        worker.stop()
    time.sleep(1.5)  # and no more
    got = recv.got(f"/flaky/2/e2e-{tag}")
    eq([r["status"] for r in got], [500, 500, 200], "attempts of the export's delivery")
    eq(len({r["headers"]["Spool-Event-Id"] for r in got}), 1, "one event id for all")
    ok = got[-1]
    body = json.loads(ok["body"])
    eq((body["id"], body["state"]), (job["id"], "succeeded"))
    eq([o["name"] for o in body["outputs"]], ["export.pdf"])
    eq(ok["body"], api.http.get(f"/v1/jobs/{job['id']}").body)
    eq(ok["headers"]["Spool-Event"], "job.succeeded")
    for r in got:
        assert verify_signature(SECRET, r["headers"]["Spool-Signature"], r["body"]), r["headers"]
    d = delivery_of(api, ok)
    eq((d["state"], d["attempts"]), ("succeeded", 3))
    eq(d["params"], {"job_id": job["id"], "event": "job.succeeded", "url": ok_url})
    eq(d["max_attempts"], 6, "the job's callback_attempts (SPOOL_WEBHOOK_MAX_ATTEMPTS)")
    eq(d["metadata"]["status"], 200)
    bad, = recv.got(f"/e2e-{tag}/failed")
    eq(json.loads(bad["body"])["state"], "failed")
    eq(bad["headers"]["Spool-Event"], "job.failed")
    assert verify_signature(SECRET, bad["headers"]["Spool-Signature"], bad["body"])


@suite.test
def test_a_cancelled_job_is_announced_and_a_job_without_callback_is_not(ctx):
    api, recv = e2e_api(ctx), ctx["recv"]
    path = f"/e2e-cancel/{uuid.uuid4().hex[:8]}"
    # No video worker runs here: the job waits in its queue until it is cancelled.
    r = api.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4",
                                     "callback_url": recv.url(path)})
    eq(r.status, 202)
    jid = r.json()["id"]
    before = len(recv.requests)
    quiet = api.http.post("/v1/videos", {"source_url": "https://example.com/v.mp4"}).json()["id"]
    eq(api.http.delete(f"/v1/jobs/{quiet}").status, 200)
    eq(api.http.delete(f"/v1/jobs/{jid}").status, 200)
    wait_until(lambda: recv.got(path), 20 * SLOW, 0.05, what="the cancel's delivery")
    time.sleep(1)
    got, = recv.got(path)
    eq(got["headers"]["Spool-Event"], "job.cancelled")
    eq(json.loads(got["body"])["state"], "cancelled")
    eq(len(recv.requests), before + 1, "nothing for the job without a callback_url")


sys.exit(suite.run(setup, teardown))

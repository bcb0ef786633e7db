#!/usr/bin/env python3
"""The outbound guard end to end (SSRF): the real spool-api, spool-pdf and spool-video
against sources on loopback and on a "public" address.

The suite runs in a private network and mount namespace it makes for itself (you need
root): loopback there is its own, 1.1.1.1 and 2606:4700:4700::1111 are put on it as
public addresses a test server listens on, and a private /etc/hosts gives names to
both (rebind.test resolves to 127.0.0.1: DNS rebinding as the resolver sees it). The
namespaces are anonymous, so they vanish with the suite's processes on every exit
path; nothing outside changes. Where namespaces cannot be made, the tests that need
them print a TAP SKIP line and the rest run on the machine's loopback.
"""
import ctypes
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, ROOT, SANITIZED, Http, Proc, Queue, Redis, Skip, Suite, eq,  # noqa: E402
                     free_port, wait_until)

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
PDFQ = os.path.join(TEST_BIN, "pdfq")
VTOOL = os.path.join(TEST_BIN, "bench_video_tool")
SLOW = 3 if SANITIZED else 1
PUBLIC4 = "1.1.1.1"
PUBLIC6 = "2606:4700:4700::1111"
UNIFORM = ("cannot reach the URL's host: it does not resolve, does not answer, refuses the "
           "connection or TLS, or its address is not one this server may fetch from")


def enter_namespace():
    """Move this process into new network and mount namespaces with loopback up, the
    public addresses on it and a private /etc/hosts. Returns None, or why not."""
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
    MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
    old = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        if libc.unshare(CLONE_NEWNET | CLONE_NEWNS) != 0:
            return f"unshare: {os.strerror(ctypes.get_errno())}"
        try:
            if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
                raise OSError(ctypes.get_errno(), "making / private")
            hosts = os.path.join(tempfile.mkdtemp(prefix="spool-it-hosts-"), "hosts")
            with open(hosts, "w") as f:
                f.write(f"127.0.0.1 localhost\n{PUBLIC4} public.test\n{PUBLIC6} public6.test\n"
                        "127.0.0.1 rebind.test\n")
            if libc.mount(hosts.encode(), b"/etc/hosts", None, MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), "bind-mounting /etc/hosts")
            for cmd in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", f"{PUBLIC4}/32", "dev", "lo"],
                        ["ip", "addr", "add", f"{PUBLIC6}/128", "dev", "lo"]):
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, timeout=10)
            socket.getaddrinfo("public.test", 80)
            return None
        except (OSError, subprocess.SubprocessError) as e:
            libc.setns(old, CLONE_NEWNET)  # back to the machine's network
            return f"setting up the namespace: {e}"
    finally:
        os.close(old)


NO_NS = enter_namespace()
suite = Suite("outbound")


def need_ns():
    if NO_NS:
        raise Skip(f"needs a private network namespace ({NO_NS})")


class Server:
    """An HTTP server on addr (port 0) in a thread. It counts the connections it
    accepts and the requests by path; /r?to=URL answers 302 to URL; other paths answer
    a small CSV naming the server (a secret, on the internal one)."""

    def __init__(self, addr, secret):
        outer = self
        self.conns, self.hits = 0, {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                if self.path.startswith("/r?"):
                    to = urllib.parse.parse_qs(self.path[3:])["to"][0]
                    self.send_response(302)
                    self.send_header("Location", to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = f"what,value\nsecret,{secret}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # a webhook receiver
                outer.hits["POST " + self.path] = outer.hits.get("POST " + self.path, 0) + 1
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"got it")

            def log_message(self, *a):
                pass

        class Srv(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            daemon_threads = True

            def get_request(self):
                r = super().get_request()
                outer.conns += 1
                return r

        self.srv = Srv((addr, 0), Handler)
        self.port = self.srv.server_address[1]
        host = f"[{addr}]" if ":" in addr else addr
        self.url = f"http://{host}:{self.port}"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


class Silent:
    """A port that accepts connections and never says a word (a timeout after connect)."""

    def __init__(self, addr):
        self.s = socket.socket()
        self.s.bind((addr, 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.held = []
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            try:
                self.held.append(self.s.accept()[0])
            except OSError:
                return

    def close(self):
        self.s.close()
        for c in self.held:
            c.close()


def pdfq(*args, prefix="spool:"):
    p = subprocess.run([PDFQ, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, SPOOL_KEY_PREFIX=prefix), timeout=30)
    if p.returncode != 0:
        raise AssertionError(f"pdfq {args[0]}: {p.stderr.decode()}")
    return p.stdout.decode().strip()


class Ctx:
    def __init__(self):
        self.redis = Redis()
        self.data = os.path.join(suite.tmp, "data")
        os.makedirs(self.data)
        self.internal = Server("127.0.0.1", "INTERNAL-SECRET")
        self.public = Server(PUBLIC4, "public-data") if not NO_NS else None
        self.public6 = Server(PUBLIC6, "public-six") if not NO_NS else None
        self.procs = []

    def env(self, prefix, **extra):
        e = {"SPOOL_REDIS_URL": self.redis.url, "SPOOL_DATA_DIR": self.data,
             "SPOOL_KEY_PREFIX": prefix, "SPOOL_LOG_LEVEL": "info",
             "SPOOL_MAINTAIN_INTERVAL": "100ms", "SPOOL_RENEW_INTERVAL": "200ms"}
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def start(self, binary, prefix, **extra):
        p = Proc([os.path.join(BIN, binary)], env=self.env(prefix, **extra),
                 name=f"{binary}-{prefix.strip(':')}", logdir=suite.tmp)
        self.procs.append(p)
        wait_until(lambda: "ready:" in p.output() or not p.alive(), 15 * SLOW, 0.05,
                   what=f"{binary} ready")
        assert p.alive(), p.output()
        return p


def setup():
    return Ctx()


def teardown(ctx):
    for p in ctx.procs:
        p.stop()
    for s in (ctx.internal, ctx.public, ctx.public6):
        if s:
            s.close()


def export(ctx, prefix, url, fmt="csv"):
    """Enqueue a pdf.export of url straight onto the queue (as the API would after its
    own checks) with one attempt, so a failure is final at once."""
    job_id = pdfq("newid")
    pdfq("enqueue", ctx.redis.url, job_id, json.dumps({"title": "T"}),
         json.dumps({"url": url, "format": fmt}), 1, prefix=prefix)
    return job_id


def outcome(ctx, prefix, job_id, timeout=30):
    rec = {}

    def done():
        rec.update(json.loads(pdfq("get", ctx.redis.url, job_id, prefix=prefix)))
        return rec["state"] in ("succeeded", "failed")

    wait_until(done, timeout * SLOW, 0.05, what=f"job {job_id} to end")
    return rec


def pdf_text(ctx, job_id):
    path = pdfq("path", ctx.data, job_id, "export.pdf")
    return subprocess.run(["pdftotext", path, "-"], stdout=subprocess.PIPE, check=True,
                          timeout=60).stdout.decode()


def expect_uniform(rec, what, prefix="cannot fetch the dataset: "):
    eq(rec["state"], "failed", f"{what}: state")
    eq(rec["error"], {"code": "source_unreachable", "message": prefix + UNIFORM,
                      "retryable": True}, f"{what}: error")


def internal_forms(port):
    return {"direct": f"http://127.0.0.1:{port}/secret.csv",
            "decimal": f"http://2130706433:{port}/secret.csv",
            "mapped": f"http://[::ffff:127.0.0.1]:{port}/secret.csv",
            "hex": f"http://0x7f.1:{port}/secret.csv"}


@suite.test
def test_loopback_sources_fail_uniformly_and_are_never_connected(ctx):
    w = ctx.start("spool-pdf", "strict:")
    before = ctx.internal.conns
    closed = free_port()
    urls = dict(internal_forms(ctx.internal.port),
                closed=f"http://127.0.0.1:{closed}/secret.csv")
    ids = {k: export(ctx, "strict:", u) for k, u in urls.items()}
    recs = {k: outcome(ctx, "strict:", i) for k, i in ids.items()}
    for k, rec in recs.items():
        expect_uniform(rec, k)
        eq(rec["attempts"], 1, f"{k}: attempts")
    # An open port and a closed one look the same to the job.
    eq(recs["direct"]["error"], recs["closed"]["error"], "open vs closed port")
    eq(ctx.internal.conns - before, 0, "connections to the loopback server")
    # The operator's log says what was refused and why.
    wait_until(lambda: w.output().count("source_url not fetched") >= len(urls), 5, 0.05,
               what="the refusals in the worker's log")
    assert "127.0.0.1 is a loopback address" in w.output(), w.output()[-2000:]


@suite.test
def test_allow_list_lets_the_same_fetches_through(ctx):
    ctx.start("spool-pdf", "allowed:", SPOOL_OUTBOUND_ALLOW="127.0.0.1")
    before = ctx.internal.hits.get("/secret.csv", 0)
    ids = {k: export(ctx, "allowed:", u) for k, u in internal_forms(ctx.internal.port).items()}
    for k, i in ids.items():
        rec = outcome(ctx, "allowed:", i)
        eq(rec["state"], "succeeded", f"{k}: state ({rec['error']})")
        assert "INTERNAL-SECRET" in pdf_text(ctx, i), f"{k}: the source's rows are in the PDF"
    eq(ctx.internal.hits.get("/secret.csv", 0) - before, len(ids), "requests to the server")
    # Allowed and reached, a closed port is still the uniform error.
    rec = outcome(ctx, "allowed:", export(ctx, "allowed:", f"http://127.0.0.1:{free_port()}/x"))
    expect_uniform(rec, "closed port, allowed")


@suite.test
def test_bad_allow_lists_stop_every_binary_at_start(ctx):
    for binary in ("spool-api", "spool-pdf", "spool-video"):
        for bad in ("10.0.0.1/8", "127.1", "not a host"):
            p = subprocess.run([os.path.join(BIN, binary), "--outbound-allow", f"::1,{bad}"],
                               env=dict(os.environ, **ctx.env("bad:", SPOOL_LISTEN="127.0.0.1:0")),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            out = p.stdout.decode()
            eq(p.returncode, 2, f"{binary} {bad!r}: exit code ({out})")
            assert "SPOOL_OUTBOUND_ALLOW" in out and bad in out, f"{binary}: {out}"
        help_text = subprocess.run([os.path.join(BIN, binary), "--help"], stdout=subprocess.PIPE,
                                   timeout=10).stdout.decode()
        assert "--outbound-allow" in help_text and "SPOOL_OUTBOUND_ALLOW" in help_text, binary


@suite.test
def test_api_refuses_internal_source_urls_at_submit(ctx):
    port = ctx.internal.port
    refused = list(internal_forms(port).values()) + [
        f"http://127.1:{port}/", f"http://0177.0.0.1:{port}/", f"http://017700000001:{port}/",
        f"http://127.0.0.1.:{port}/", f"http://%31%32%37.0.0.1:{port}/",
        "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/latest/",
        "http://[::1]/", "http://[fe80::1%25eth0]/", "http://0/", "http://10.0.0.8/x.csv",
        "http://localhost/x.csv", "http://LOCALHOST./x.csv", "http://api.localhost/x.csv",
        "http://user@127.0.0.1/x.csv"]
    strict = Proc([os.path.join(BIN, "spool-api")],
                  env=ctx.env("api:", SPOOL_LISTEN="127.0.0.1:0"), name="api-strict",
                  logdir=suite.tmp)
    allowing = Proc([os.path.join(BIN, "spool-api")],
                    env=ctx.env("api:", SPOOL_LISTEN="127.0.0.1:0",
                                SPOOL_OUTBOUND_ALLOW="127.0.0.0/8, ::1, localhost"),
                    name="api-allowing", logdir=suite.tmp)
    ctx.procs += [strict, allowing]
    apis = []
    for p in (strict, allowing):
        m = wait_until(lambda: re.search(r"\(port (\d+),", p.output()), 20,
                       what="spool-api to listen")
        apis.append(Http("127.0.0.1", int(m.group(1))))
    api, lenient = apis
    for url in refused:
        for path, body in (("/v1/videos", {"source_url": url}),
                           ("/v1/exports", {"title": "t", "source_url": url, "format": "csv"})):
            r = api.post(path, json.dumps(body), headers={"Content-Type": "application/json"})
            eq(r.status, 422, f"{path} {url}: status ({r.body[:300]!r})")
            err = r.json()["error"]
            eq((err["code"], err["field"]), ("invalid_field", "source_url"), f"{path} {url}")
            assert "public addresses" in err["message"], err
    r = api.post("/v1/exports", json.dumps({"title": "t", "source_url": "http://2130706433/x.csv"}),
                 headers={"Content-Type": "application/json"})
    assert "127.0.0.1 is a loopback address" in r.json()["error"]["message"], r.json()
    # Names that need DNS, and public addresses, are the worker's to judge.
    for url in ("https://example.com/x.csv", "http://8.8.8.8/x.csv", "http://rebind.test/x.csv"):
        r = api.post("/v1/exports", json.dumps({"title": "t", "source_url": url}),
                     headers={"Content-Type": "application/json"})
        eq(r.status, 202, f"{url}: status ({r.body[:300]!r})")
    # The allow-list lets through what it names, and nothing else.
    for url in refused:
        r = lenient.post("/v1/exports", json.dumps({"title": "t", "source_url": url,
                                                     "format": "csv"}),
                         headers={"Content-Type": "application/json"})
        want = 422 if any(h in url for h in ("169.254", "fd00:", "fe80", "//0/", "10.0.0.8",
                                             "api.localhost")) else 202
        eq(r.status, want, f"allowed API, {url}: status ({r.body[:300]!r})")


@suite.test
def test_public_addresses_and_names_are_fetched_without_an_allow_list(ctx):
    need_ns()
    ctx.start("spool-pdf", "public:")
    urls = {"v4": f"{ctx.public.url}/rows.csv",
            "name": f"http://public.test:{ctx.public.port}/rows.csv",
            "mapped": f"http://[::ffff:{PUBLIC4}]:{ctx.public.port}/rows.csv",
            "v6": f"{ctx.public6.url}/rows.csv",
            "v6 name": f"http://public6.test:{ctx.public6.port}/rows.csv"}
    for k, url in urls.items():
        job_id = export(ctx, "public:", url)
        rec = outcome(ctx, "public:", job_id)
        eq(rec["state"], "succeeded", f"{k}: state ({rec['error']})")
        assert "public-" in pdf_text(ctx, job_id), f"{k}: rows in the PDF"


@suite.test
def test_redirects_and_names_to_loopback_are_refused(ctx):
    need_ns()
    ctx.start("spool-pdf", "hops:")
    port = ctx.internal.port
    before_conns, before_hits = ctx.internal.conns, sum(ctx.public.hits.values())
    targets = dict(internal_forms(port), rebound=f"http://rebind.test:{port}/secret.csv")
    urls = {f"redirect to {k}": f"{ctx.public.url}/r?to={urllib.parse.quote(u, safe='')}"
            for k, u in targets.items()}
    urls["rebinding name"] = targets["rebound"]
    urls["redirect by name"] = (f"http://public.test:{ctx.public.port}/r?to="
                                + urllib.parse.quote(targets["direct"], safe=""))
    for k, url in urls.items():
        expect_uniform(outcome(ctx, "hops:", export(ctx, "hops:", url)), k)
    eq(ctx.internal.conns - before_conns, 0, "connections to the loopback server")
    eq(sum(ctx.public.hits.values()) - before_hits, len(urls) - 1, "redirects served")


@suite.test
def test_unreachable_public_destinations_fail_like_refused_ones(ctx):
    need_ns()
    silent = Silent(PUBLIC4)
    try:
        ctx.start("spool-pdf", "unreach:", SPOOL_PDF_FETCH_TIMEOUT="1s")
        closed = socket.socket()
        closed.bind((PUBLIC4, 0))
        closed_port = closed.getsockname()[1]
        closed.close()
        urls = {"refused by the guard": f"http://127.0.0.1:{ctx.internal.port}/secret.csv",
                "connection refused": f"http://{PUBLIC4}:{closed_port}/x.csv",
                "no such name": "http://nosuch.test/x.csv",
                "TLS to a plain HTTP port": f"https://{PUBLIC4}:{ctx.public.port}/x.csv",
                "no answer (timeout)": f"http://{PUBLIC4}:{silent.port}/x.csv"}
        recs = {k: outcome(ctx, "unreach:", export(ctx, "unreach:", u)) for k, u in urls.items()}
        for k, rec in recs.items():
            expect_uniform(rec, k)
        eq(len({json.dumps(r["error"]) for r in recs.values()}), 1, "one error for all")
        # The video worker says the same (without the PDF worker's prefix).
        venv = ctx.env("vunreach:", SPOOL_FETCH_CONNECT_TIMEOUT="1s")
        w = ctx.start("spool-video", "vunreach:", SPOOL_FETCH_CONNECT_TIMEOUT="1s")
        for k in ("refused by the guard", "connection refused"):
            out = subprocess.run([VTOOL, "enqueue", "--url", urls[k], "--max-attempts", "1"],
                                 env=dict(os.environ, **venv), stdout=subprocess.PIPE,
                                 check=True, timeout=30).stdout.decode().strip()

            def ended():
                rec = json.loads(subprocess.run([VTOOL, "get", out], env=dict(os.environ, **venv),
                                                stdout=subprocess.PIPE, check=True,
                                                timeout=30).stdout)
                return rec if rec["state"] in ("failed", "succeeded") else None
            expect_uniform(wait_until(ended, 30 * SLOW, 0.05, what=f"video job ({k})"),
                           f"video, {k}", prefix="")
        assert w.alive()
    finally:
        silent.close()


@suite.test
def test_allow_list_names_and_redirects_in_a_private_network(ctx):
    need_ns()
    ctx.start("spool-pdf", "named:", SPOOL_OUTBOUND_ALLOW="rebind.test")
    port = ctx.internal.port
    before = ctx.internal.hits.get("/secret.csv", 0)
    named = f"http://rebind.test:{port}/secret.csv"
    ok = [named, f"{ctx.public.url}/r?to={urllib.parse.quote(named, safe='')}"]
    for url in ok:
        job_id = export(ctx, "named:", url)
        rec = outcome(ctx, "named:", job_id)
        eq(rec["state"], "succeeded", f"{url}: state ({rec['error']})")
        assert "INTERNAL-SECRET" in pdf_text(ctx, job_id)
    eq(ctx.internal.hits.get("/secret.csv", 0) - before, len(ok), "requests to the named host")
    # The name is allowed, not its address.
    expect_uniform(outcome(ctx, "named:", export(ctx, "named:", f"http://127.0.0.1:{port}/s")),
                   "the allowed name's address, by number")


@suite.test
def test_webhooks_reach_public_receivers_and_never_internal_ones(ctx):
    """Deliveries go through the same guard: spool-api without an allow-list delivers to
    public receivers (addresses and names, IPv4 and IPv6), accepts a callback_url whose
    name needs DNS at submit, and refuses the delivery once the name resolves to loopback
    (permanently, with the uniform message), never connecting there."""
    need_ns()
    p = Proc([os.path.join(BIN, "spool-api")],
             env=ctx.env("hook:", SPOOL_LISTEN="127.0.0.1:0", SPOOL_WEBHOOK_RETRY_BASE="50ms",
                         SPOOL_WEBHOOK_RETRY_CAP="100ms"), name="api-hooks", logdir=suite.tmp)
    ctx.procs.append(p)
    m = wait_until(lambda: re.search(r"\(port (\d+),", p.output()), 20 * SLOW,
                   what="spool-api to listen")
    api = Http("127.0.0.1", int(m.group(1)))
    port, port6, iport = ctx.public.port, ctx.public6.port, ctx.internal.port
    rebound = f"http://rebind.test:{iport}/hook"
    r = api.post("/v1/exports", json.dumps({"title": "t", "rows": [{"a": 1}],
                                            "callback_url": rebound}),
                 headers={"Content-Type": "application/json"})
    eq(r.status, 202, f"a name is judged when the delivery connects ({r.body[:200]!r})")
    job = r.json()["id"]
    q = Queue(ctx.redis, "hook:")
    public = {"v4": f"{ctx.public.url}/hook-v4", "name": f"http://public.test:{port}/hook-name",
              "v6": f"{ctx.public6.url}/hook-v6",
              "v6 name": f"http://public6.test:{port6}/hook-v6name"}
    before = ctx.internal.conns

    def ended(did):
        j = json.loads(api.get(f"/v1/jobs/{did}").body)
        return j if j["state"] in ("succeeded", "failed") else None

    for k, url in public.items():
        did = q.enqueue("webhooks", "webhook.deliver",
                        {"job_id": job, "event": "job.succeeded", "url": url}, 3)
        d = wait_until(lambda: ended(did), 20 * SLOW, 0.05, what=f"delivery to {k}")
        eq((d["state"], d["metadata"]["status"]), ("succeeded", 200), f"{k}: {d['error']}")
    eq(sum(v for h, v in ctx.public.hits.items() if h.startswith("POST /hook-")) +
       sum(v for h, v in ctx.public6.hits.items() if h.startswith("POST /hook-")), 4,
       "deliveries the public receivers got")
    did = q.enqueue("webhooks", "webhook.deliver",
                    {"job_id": job, "event": "job.succeeded", "url": rebound}, 3)
    d = wait_until(lambda: ended(did), 20 * SLOW, 0.05, what="the rebound delivery")
    eq((d["state"], d["attempts"]), ("failed", 1), "refused at once")
    eq(d["error"], {"code": "callback_unreachable", "message": UNIFORM, "retryable": False})
    eq(ctx.internal.conns - before, 0, "connections to the loopback server")
    assert "refused by the outbound guard" in p.output(), p.output()[-2000:]


@suite.test
def test_every_binary_stops_cleanly(ctx):
    """Last: SIGTERM ends each API and worker this suite started with exit code 0 (a
    sanitizer build also fails here on a leak)."""
    codes = {p.name: p.stop() for p in ctx.procs}
    eq({k: c for k, c in codes.items() if c != 0}, {}, "non-zero exit codes")


if __name__ == "__main__":
    raise SystemExit(suite.run(setup, teardown))

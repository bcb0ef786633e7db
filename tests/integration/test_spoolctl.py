#!/usr/bin/env python3
"""spoolctl, the real binary: its command line and exit codes on their own, then
against the real spool-api (and the real spool-video and spool-pdf when they are built)
with a private Redis: uploads streamed from files and standard input, URLs, wait with
long-polls (lines when piped, a bar on a terminal, JSON objects with --json), downloads
checked with ffprobe and pdfinfo, cancel, retry, timeouts, interrupts, bearer tokens,
429 retries with one idempotency key, health and readiness.

Tests that need a binary that is not built yet report "ok N - name # SKIP <why>"."""
import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, LOOPBACK_ALLOW, SANITIZED, Proc, Redis, Suite, eq, ffprobe, free_port,  # noqa: E402
                     make_clip, serve_files, wait_until)

CTL = os.path.join(BIN, "spoolctl")
API = os.path.join(BIN, "spool-api")
VIDEO = os.path.join(BIN, "spool-video")
PDF = os.path.join(BIN, "spool-pdf")
UNKNOWN_ID = "00d21bzzkbx640ad5ygv9st98bkmmj38rc19"


class Skip(Exception):
    pass


class SkippingSuite(Suite):
    """harness.Suite with TAP "# SKIP" for tests whose binaries are not built."""

    def run(self, setup=None, teardown=None):
        tests = self.tests
        wrapped = []
        for fn in tests:
            def make(fn):
                def call(ctx):
                    try:
                        fn(ctx)
                    except Skip as s:
                        call.skipped = str(s)
                call.__name__ = fn.__name__
                call.skipped = None
                return call
            wrapped.append(make(fn))
        self.tests = []
        print(f"1..{len(wrapped)}", flush=True)
        ctx = setup() if setup else None
        failed = 0
        try:
            for i, fn in enumerate(wrapped, 1):
                start = time.monotonic()
                try:
                    fn(ctx)
                    if fn.skipped is not None:
                        print(f"ok {i} - {fn.__name__} # SKIP {fn.skipped}", flush=True)
                    else:
                        print(f"ok {i} - {fn.__name__} ({time.monotonic() - start:.2f}s)",
                              flush=True)
                except Exception:
                    import traceback
                    failed += 1
                    print(f"not ok {i} - {fn.__name__}", flush=True)
                    for line in traceback.format_exc().splitlines():
                        print("# " + line)
                    sys.stdout.flush()
        finally:
            if teardown:
                teardown(ctx)
        return 1 if failed else 0


suite = SkippingSuite("spoolctl")


def need(*bins):
    for b in bins:
        if not os.access(b, os.X_OK):
            raise Skip(f"{os.path.basename(b)} not built")


def ctl(*args, server=None, env=None, stdin=None, timeout=120):
    """Run spoolctl; returns (exit code, stdout, stderr)."""
    e = dict(os.environ)
    e.pop("SPOOL_SERVER", None)
    e.pop("SPOOL_TOKEN", None)
    if server:
        e["SPOOL_SERVER"] = server
    e.update(env or {})
    p = subprocess.run([CTL, *map(str, args)], env=e, stdin=stdin if stdin is not None else subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def ok(res, what):
    rc, out, err = res
    if rc != 0:
        raise AssertionError(f"{what}: exit {rc}\nstdout: {out}\nstderr: {err}")
    return out


class Api:
    """A spool-api on a free port (read from its log) with its own key prefix."""

    def __init__(self, ctx, prefix, env=None, redis_url=None):
        e = {"SPOOL_REDIS_URL": redis_url or ctx["redis"].url, "SPOOL_DATA_DIR": ctx["data"],
             "SPOOL_LISTEN": "127.0.0.1:0", "SPOOL_KEY_PREFIX": prefix,
             "SPOOL_LOG_FORMAT": "text", "SPOOL_API_THREADS": "2", **LOOPBACK_ALLOW}
        e.update(env or {})
        self.proc = Proc([API], env=e, name="api-" + prefix.strip(":"), logdir=suite.tmp)

        def started():
            m = re.search(r"\(port (\d+),", self.proc.output())
            if m:
                return m
            if not self.proc.alive():
                raise AssertionError("spool-api exited:\n" + self.proc.output())
            return None
        self.port = int(wait_until(started, 20, what="spool-api to listen").group(1))
        self.url = f"http://127.0.0.1:{self.port}"


def setup():
    ctx = {"redis": Redis(), "data": os.path.join(suite.tmp, "data"), "apis": {}, "workers": []}
    os.makedirs(ctx["data"])
    ctx["files"] = os.path.join(suite.tmp, "files")
    os.makedirs(ctx["files"])
    ctx["httpd"] = serve_files(ctx["files"])
    ctx["files_url"] = f"http://127.0.0.1:{ctx['httpd'].server_address[1]}"
    if os.access(API, os.X_OK):
        # "spool:" has the real workers; "idle:" has none, so its jobs stay queued.
        ctx["apis"]["main"] = Api(ctx, "spool:")
        ctx["apis"]["idle"] = Api(ctx, "idle:", env={"SPOOL_WEBHOOK_CONCURRENCY": "0"})
        base = {"SPOOL_REDIS_URL": ctx["redis"].url, "SPOOL_DATA_DIR": ctx["data"],
                "SPOOL_KEY_PREFIX": "spool:", "SPOOL_LOG_FORMAT": "text", **LOOPBACK_ALLOW}
        for b in (VIDEO, PDF):
            if os.access(b, os.X_OK):
                ctx["workers"].append(Proc([b], env=base, name=os.path.basename(b),
                                           logdir=suite.tmp))
    clip = os.path.join(suite.tmp, "clip.mp4")
    make_clip(clip, seconds=2)
    ctx["clip"] = clip
    # A clip on the local HTTP server, for submit-video URL.
    make_clip(os.path.join(ctx["files"], "clip-url.mp4"), seconds=1, size="640x480")
    csv = os.path.join(ctx["files"], "sales.csv")
    with open(csv, "w") as f:
        f.write("id,region,amount,date\n")
        for i in range(1, 5001):
            f.write(f"{i},region {i % 7},{i * 3}.50,2024-03-{i % 28 + 1:02d}\n")
    ctx["csv"] = csv
    with open(os.path.join(suite.tmp, "rows.json"), "w") as f:
        json.dump([{"a": 1, "b": "x"}, {"a": 2, "b": "y"}], f)
    return ctx


def teardown(ctx):
    for w in ctx["workers"]:
        w.stop()
    for a in ctx["apis"].values():
        a.proc.stop()
    ctx["httpd"].shutdown()
    ctx["redis"].destroy()


def main_api(ctx, *bins):
    need(API, *bins)
    return ctx["apis"]["main"].url


def idle_api(ctx):
    need(API)
    return ctx["apis"]["idle"].url


# ---- the command line on its own ---------------------------------------------------

@suite.test
def test_help_and_version(ctx):
    rc, out, err = ctl("--help")
    eq(rc, 0, "exit")
    for word in ("submit-video", "export", "status", "wait", "download", "cancel", "jobs",
                 "queues", "retry", "health", "Exit codes:", "SPOOL_SERVER", "SPOOL_TOKEN",
                 "--json"):
        assert word in out, f"--help does not mention {word}"
    rc, out, _ = ctl("--version")
    eq(rc, 0, "exit")
    assert re.fullmatch(r"spoolctl \d+\.\d+\.\d+\n", out), out


@suite.test
def test_bad_command_lines_exit_2_before_any_request(ctx):
    cases = [
        ([], "no command given"),
        (["launch"], "unknown command"),
        (["status"], "needs a job id"),
        (["status", "not-an-id"], "is not a job id"),
        (["wait", UNKNOWN_ID, "--timeout", "later"], "--timeout wants a duration"),
        (["jobs", "--limit", "0"], "--limit"),
        (["jobs", "--state", "done"], "--state"),
        (["export", "report.txt"], "cannot tell the format"),
        (["submit-video", "a.mp4", "--preset"], "needs a value"),
        (["queues", "--server", "127.0.0.1:8080"], "http:// or https://"),
        (["download", UNKNOWN_ID, "../../etc/passwd"], "not an output name"),
        (["submit-video", os.path.join(suite.tmp, "missing.mp4")], "cannot read"),
        (["submit-video", suite.tmp], "is a directory"),
        (["export", os.path.join(suite.tmp, "missing.csv")], "cannot read"),
    ]
    port = free_port()  # nothing listens: a request would exit 4, not 2
    for args, says in cases:
        rc, out, err = ctl(*args, server=f"http://127.0.0.1:{port}")
        eq(rc, 2, f"exit of {args}")
        assert says in err, f"{args}: stderr {err!r} lacks {says!r}"
        eq(out, "", f"stdout of {args}")
    # With --json the refusal is also a JSON error on standard output.
    rc, out, err = ctl("--json", "jobs", "--limit", "0", server=f"http://127.0.0.1:{port}")
    eq(rc, 2, "exit")
    doc = json.loads(out)
    eq(doc["error"]["code"], "usage", "code")
    assert "--limit" in doc["error"]["message"], doc


@suite.test
def test_unreachable_server_exits_4_with_a_json_error(ctx):
    port = free_port()
    rc, out, err = ctl("--json", "status", UNKNOWN_ID, server=f"http://127.0.0.1:{port}")
    eq(rc, 4, "exit")
    doc = json.loads(out)
    eq(doc["error"]["code"], "connection_failed", "code")
    assert f"127.0.0.1:{port}" in doc["error"]["message"], doc
    assert "cannot reach the server" in err, err
    rc, _, _ = ctl("health", server=f"http://127.0.0.1:{port}")
    eq(rc, 4, "health exit")


# ---- against the real API -----------------------------------------------------------

def waited_job_id(out):
    """The job id a `submit... --wait` printed first, checking it also said it succeeded."""
    lines = out.splitlines()
    jid = lines[0]
    assert re.fullmatch(r"[0-9a-z]{36}", jid), lines
    assert any(re.fullmatch(jid + r" succeeded in [0-9.]+ (ms|s)", ln) for ln in lines), out
    return jid


@suite.test
def test_video_submit_wait_download_round_trip(ctx):
    url = main_api(ctx, VIDEO)
    clip = make_clip(os.path.join(suite.tmp, "clip-720p.mp4"), seconds=1, size="1280x720")
    rc, out, err = ctl("submit-video", clip, "--preset", "mp4-480p", "--wait", server=url)
    eq(rc, 0, f"exit (stderr {err})")
    jid = waited_job_id(out)
    assert f"{url}/v1/jobs/{jid}/outputs/video.mp4" in out, out
    # Piped: plain lines, never a carriage return or an escape sequence.
    assert "\r" not in out and "\033" not in out, repr(out)

    job = json.loads(ok(ctl("--json", "status", jid, server=url), "status"))
    eq(job["state"], "succeeded", "state")
    eq(job["metadata"]["input"]["video"]["width"], 1280, "probed width")
    sizes = {o["name"]: o["bytes"] for o in job["outputs"]}
    eq(sorted(sizes), ["poster.jpg", "video.mp4"], "outputs")

    dest = os.path.join(suite.tmp, "dl")
    os.makedirs(dest)
    out = ok(ctl("download", jid, "-o", dest, server=url), "download")
    for name, n in sizes.items():
        path = os.path.join(dest, name)
        eq(os.path.getsize(path), n, f"size of {name}")
        assert f"saved {path}" in out, out
    eq([f for f in os.listdir(dest) if f.startswith(".")], [], "no temporary files left")
    probe = ffprobe(os.path.join(dest, "video.mp4"))
    v = [s for s in probe["streams"] if s["codec_type"] == "video"][0]
    eq((v["codec_name"], v["height"]), ("h264", 480), "transcoded stream")

    # One output to standard output, and -q printing only paths.
    p = subprocess.run([CTL, "--server", url, "download", jid, "poster.jpg", "-o", "-"],
                       stdout=subprocess.PIPE, timeout=60)
    eq(p.returncode, 0, "exit")
    eq(p.stdout[:3], b"\xff\xd8\xff", "JPEG magic")
    eq(len(p.stdout), sizes["poster.jpg"], "bytes")
    named = os.path.join(suite.tmp, "poster-copy.jpg")
    out = ok(ctl("-q", "download", jid, "poster.jpg", "-o", named, server=url), "download -q")
    eq(out, named + "\n", "quiet output")
    rc, _, err = ctl("download", jid, "nothing.bin", server=url)
    eq(rc, 3, "unknown output")
    assert "it has: video.mp4, poster.jpg" in err or "it has: poster.jpg, video.mp4" in err, err


@suite.test
def test_video_by_url_is_fetched_transcoded_and_downloads(ctx):
    url = main_api(ctx, VIDEO)
    src = ctx["files_url"] + "/clip-url.mp4"
    rc, out, err = ctl("submit-video", src, "--preset", "mp4-480p", "--wait", server=url)
    eq(rc, 0, f"exit (stdout {out}, stderr {err})")
    jid = waited_job_id(out)

    job = json.loads(ok(ctl("--json", "status", jid, server=url), "status"))
    eq(job["state"], "succeeded", "state")
    eq(job["input"]["url"], src, "the job names the URL")
    eq(job["metadata"]["input"]["video"]["width"], 640, "probed width of the fetched clip")
    sizes = {o["name"]: o["bytes"] for o in job["outputs"]}
    eq(sorted(sizes), ["poster.jpg", "video.mp4"], "outputs")

    dest = os.path.join(suite.tmp, "dl-url")
    os.makedirs(dest)
    ok(ctl("download", jid, "-o", dest, server=url), "download")
    for name, n in sizes.items():
        eq(os.path.getsize(os.path.join(dest, name)), n, f"size of {name}")
    v = [s for s in ffprobe(os.path.join(dest, "video.mp4"))["streams"] if s["codec_type"] == "video"][0]
    eq((v["codec_name"], v["height"]), ("h264", 480), "transcoded stream")


@suite.test
def test_wait_json_streams_one_job_object_per_change(ctx):
    url = main_api(ctx, VIDEO)
    jid = json.loads(ok(ctl("--json", "submit-video", ctx["clip"], server=url), "submit"))["id"]
    rc, out, err = ctl("--json", "wait", jid, server=url)
    eq(rc, 0, f"exit ({err})")
    docs = [json.loads(line) for line in out.splitlines()]
    assert docs, "no output"
    assert all(d["id"] == jid for d in docs), docs
    eq(docs[-1]["state"], "succeeded", "last state")
    eq(docs[-1]["progress"], 100, "last progress")
    progress = [d["progress"] for d in docs]
    eq(progress, sorted(progress), "progress never goes back")


@suite.test
def test_wait_on_a_terminal_draws_a_bar(ctx):
    url = main_api(ctx, VIDEO)
    jid = ok(ctl("submit-video", ctx["clip"], server=url), "submit").split()[0]
    master, slave = pty.openpty()
    p = subprocess.Popen([CTL, "--server", url, "wait", jid], stdout=slave, stderr=slave,
                         stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    eq(p.wait(60), 0, "exit")
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "\r" in text and "\033[K" in text, repr(text[:400])
    assert re.search(r"succeeded +\[#{10,}\] 100%", text), repr(text[-400:])
    assert f"{jid} succeeded in" in text, repr(text[-400:])


@suite.test
def test_exports_from_csv_ndjson_json_stdin_and_url(ctx):
    url = main_api(ctx, PDF)
    out = ok(ctl("export", ctx["csv"], "--title", "Sales 2024", "--wait", server=url), "csv")
    jid = out.split()[0]
    job = json.loads(ok(ctl("--json", "status", jid, server=url), "status"))
    eq(job["metadata"]["rows"], 5000, "rows")
    eq(job["outputs"][0]["name"], "export.pdf", "output")
    pdf = os.path.join(suite.tmp, "sales.pdf")
    ok(ctl("download", jid, "export.pdf", "-o", pdf, server=url), "download")
    info = subprocess.run(["pdfinfo", pdf], stdout=subprocess.PIPE, check=True).stdout.decode()
    assert re.search(r"^Title:\s+Sales 2024$", info, re.M), info
    eq(int(re.search(r"^Pages:\s+(\d+)$", info, re.M).group(1)), job["metadata"]["pages"], "pages")

    nd = os.path.join(suite.tmp, "rows.ndjson")
    with open(nd, "w") as f:
        for i in range(300):
            f.write(json.dumps({"n": i, "word": f"w{i}"}) + "\n")
    rows = os.path.join(suite.tmp, "rows.json")
    ids = {}
    ids["ndjson"] = ok(ctl("-q", "export", nd, server=url), "ndjson").strip()
    ids["json"] = ok(ctl("-q", "export", rows, "--orientation", "landscape", server=url),
                     "json").strip()
    with open(ctx["csv"], "rb") as f:
        ids["stdin"] = ok(ctl("-q", "export", "-", "--format", "csv", server=url, stdin=f),
                          "stdin").strip()
    ids["url"] = ok(ctl("-q", "export", ctx["files_url"] + "/sales.csv", server=url),
                    "url").strip()
    want_rows = {"ndjson": 300, "json": 2, "stdin": 5000, "url": 5000}
    for kind, jid in ids.items():
        rc, out, err = ctl("--json", "wait", jid, "--timeout", "60", server=url)
        eq(rc, 0, f"{kind}: exit ({err})")
        last = json.loads(out.splitlines()[-1])
        eq(last["metadata"]["rows"], want_rows[kind], f"{kind}: rows")
    job = json.loads(ok(ctl("--json", "status", ids["url"], server=url), "status"))
    eq(job["state"], "succeeded", "url job")


@suite.test
def test_failed_job_exits_1_and_retry_runs_it_again(ctx):
    url = main_api(ctx, PDF)
    jid = ok(ctl("-q", "export", ctx["files_url"] + "/nowhere.csv", server=url), "submit").strip()
    rc, out, err = ctl("wait", jid, "--timeout", "60", server=url)
    eq(rc, 1, f"exit ({err})")
    assert re.search(jid + r" failed after 1 attempt: \S+: .*404", out), out
    out = ok(ctl("retry", jid, server=url), "retry")
    assert out.startswith(f"{jid}: "), out
    rc, out, _ = ctl("--json", "wait", jid, "--timeout", "60", server=url)
    eq(rc, 1, "exit after the retry")
    last = json.loads(out.splitlines()[-1])
    eq((last["state"], last["attempts"]), ("failed", 1), "attempts start over")
    # Retrying a job that did not fail is refused (409): exit 6.
    done = ok(ctl("-q", "export", os.path.join(suite.tmp, "rows.json"), "--wait", server=url),
              "export").split()[0]
    rc, out, err = ctl("--json", "retry", done, server=url)
    eq(rc, 6, "retry of a succeeded job")
    eq(json.loads(out)["error"]["code"], "job_not_failed", "code")


@suite.test
def test_queued_job_times_out_then_cancels_once(ctx):
    url = idle_api(ctx)
    jid = ok(ctl("-q", "submit-video", ctx["clip"], server=url), "submit").strip()
    t0 = time.monotonic()
    rc, out, err = ctl("wait", jid, "--timeout", "2", server=url)
    took = time.monotonic() - t0
    eq(rc, 5, f"exit ({err})")
    assert 1.8 < took < 6, f"took {took:.1f}s"
    assert "did not end within 2 s (queued, 0%)" in err, err
    eq(ok(ctl("cancel", jid, server=url), "cancel"), f"{jid}: cancelled\n", "output")
    rc, out, err = ctl("cancel", jid, server=url)
    eq(rc, 6, "second cancel")
    assert "job_ended" in err, err
    rc, out, _ = ctl("wait", jid, server=url)
    eq(rc, 1, "wait on a cancelled job")
    eq(out, f"{jid} cancelled 0%\n{jid} cancelled\n", "output")
    out = ok(ctl("-q", "jobs", "--state", "cancelled", server=url), "jobs")
    assert jid in out.split(), out
    out = ok(ctl("status", jid, server=url), "status")
    assert re.search(r"^state\s+cancelled, 0%$", out, re.M), out


@suite.test
def test_unknown_jobs_exit_3(ctx):
    url = idle_api(ctx)
    for args in (["status"], ["wait"], ["download"], ["cancel"], ["retry"]):
        rc, out, err = ctl(*args, UNKNOWN_ID, server=url)
        eq(rc, 3, f"exit of {args}")
        assert "not_found" in err, err


@suite.test
def test_jobs_and_queues_show_what_runs(ctx):
    url = idle_api(ctx)
    jid = ok(ctl("-q", "export", ctx["csv"], "--priority", "high", server=url), "submit").strip()
    listed = json.loads(ok(ctl("--json", "jobs", "--type", "pdf.export", "--limit", "5",
                               server=url), "jobs"))
    assert jid in [j["id"] for j in listed["jobs"]], listed
    assert len(listed["jobs"]) <= 5
    table = ok(ctl("jobs", server=url), "jobs table")
    assert re.search(r"^ID\s+TYPE\s+STATE\s+PROGRESS\s+ATTEMPTS\s+CREATED$", table, re.M), table
    assert re.search(jid + r"\s+pdf\.export\s+queued\s+0%\s+0/3\s", table), table
    q = json.loads(ok(ctl("--json", "queues", server=url), "queues"))
    pdfq = [e for e in q["queues"] if e["name"] == "pdf"][0]
    assert pdfq["depth"] >= 1, pdfq
    text = ok(ctl("queues", server=url), "queues table")
    assert re.search(r"^pdf\s+\d+\s+0\s+0\s+0\s+0\s", text, re.M), text
    assert "no live workers" in text, text  # nothing serves the idle: prefix
    out = ok(ctl("pause", "pdf", server=url), "pause")
    assert out.startswith("pdf: paused ("), out
    assert re.search(r"^pdf \(paused\)\s+\d+", ok(ctl("queues", server=url), "queues"), re.M)
    eq(json.loads(ok(ctl("--json", "resume", "pdf", server=url), "resume"))["paused"], False)
    rc, _, err = ctl("pause", "no such", server=url)
    eq(rc, 2, "exit for a bad queue name")
    assert "not a queue name" in err, err
    ok(ctl("cancel", jid, server=url), "cancel")
    if len(ctx["workers"]) == 2:
        text = ok(ctl("queues", server=ctx["apis"]["main"].url), "queues with workers")
        assert re.search(r"^WORKER\s+KIND\s+QUEUES", text, re.M), text
        assert re.search(r"\svideo\s+video\s+1\s", text) and re.search(r"\spdf\s+pdf\s+1\s", text), text


@suite.test
def test_bearer_token_from_flag_or_environment(ctx):
    need(API)
    api = Api(ctx, "auth:", env={"SPOOL_API_TOKENS": "t0k3n,other"})
    try:
        rc, out, err = ctl("--json", "jobs", server=api.url)
        eq(rc, 6, "exit without a token")
        eq(json.loads(out)["error"]["code"], "unauthorized", "code")
        ok(ctl("jobs", "--token", "t0k3n", server=api.url), "with --token")
        ok(ctl("jobs", server=api.url, env={"SPOOL_TOKEN": "other"}), "with SPOOL_TOKEN")
        rc, _, _ = ctl("jobs", "--token", "wrong", server=api.url)
        eq(rc, 6, "exit with a wrong token")
        ok(ctl("health", server=api.url), "health needs no token")
    finally:
        api.proc.stop()


@suite.test
def test_full_queue_is_retried_with_one_idempotency_key(ctx):
    url = idle_api(ctx)
    first = ok(ctl("-q", "submit-video", ctx["clip"], "--idempotency-key", "k-1", server=url),
               "first").strip()
    again = ok(ctl("-q", "submit-video", ctx["clip"], "--idempotency-key", "k-1", server=url),
               "same key").strip()
    eq(again, first, "the same key gives the same job")
    ok(ctl("cancel", first, server=url), "cancel")
    api = Api(ctx, "full:", env={"SPOOL_QUEUE_LIMIT": "1"})
    try:
        first = ok(ctl("-q", "submit-video", ctx["clip"], server=api.url), "fills the queue").strip()
        t0 = time.monotonic()
        rc, out, err = ctl("submit-video", ctx["clip"], "--retries", "1", server=api.url)
        eq(rc, 4, f"exit when the queue stays full ({err})")
        assert "the server is busy (HTTP 429); trying again in" in err, err
        assert "queue_full" in err, err
        assert time.monotonic() - t0 >= 1, "waited before retrying"
        ok(ctl("cancel", first, server=api.url), "cancel")
        out = ok(ctl("-q", "submit-video", ctx["clip"], server=api.url), "room again")
        assert re.fullmatch(r"[0-9a-z]{36}\n", out), out
    finally:
        api.proc.stop()


@suite.test
def test_server_limits_short_long_polls_and_uploads_too_large(ctx):
    need(API)
    api = Api(ctx, "small:", env={"SPOOL_MAX_WAIT": "2s", "SPOOL_MAX_UPLOAD_BYTES": "64k"})
    try:
        # wait asks for 30 s long-polls; this server allows 2 s: wait adapts, and still
        # times out on time with exit 5 (not a refusal).
        jid = ok(ctl("-q", "export", os.path.join(suite.tmp, "rows.json"), server=api.url),
                 "submit").strip()
        t0 = time.monotonic()
        rc, out, err = ctl("wait", jid, "--timeout", "4", server=api.url)
        eq(rc, 5, f"exit ({err})")
        assert 3.8 < time.monotonic() - t0 < 9, "timed out on time"
        ok(ctl("cancel", jid, server=api.url), "cancel")
        # Too large: refused before the body is sent (Content-Length) or mid-stream
        # (chunked standard input), exit 6 either way.
        rc, out, err = ctl("--json", "submit-video", ctx["clip"], server=api.url)
        eq(rc, 6, f"exit ({err})")
        eq(json.loads(out)["error"]["code"], "payload_too_large", "code")
        with open(ctx["csv"], "rb") as f:
            rc, out, err = ctl("export", "-", "--format", "csv", server=api.url, stdin=f)
        eq(rc, 6, f"exit for a chunked upload ({err})")
        assert "payload_too_large" in err, err
    finally:
        api.proc.stop()


@suite.test
def test_upload_streams_a_large_file_in_little_memory(ctx):
    url = idle_api(ctx)
    big = os.path.join(suite.tmp, "big.bin")
    size = 128 << 20
    with open(big, "wb") as f:
        f.truncate(size)  # sparse: cheap to make, every byte still goes over the wire
    e = dict(os.environ, SPOOL_SERVER=url)
    p = subprocess.Popen([CTL, "-q", "submit-video", big], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=e)
    # VmHWM is the peak resident size of the process since its exec (getrusage's
    # ru_maxrss would also count the test's own pages from before the exec).
    peak = 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                m = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M)
            peak = max(peak, int(m.group(1))) if m else peak
        except OSError:
            pass
        time.sleep(0.01)
    out, err = p.communicate()
    eq(p.returncode, 0, f"exit ({err.decode()})")
    jid = out.decode().strip()
    stored = os.path.join(ctx["data"], "jobs", jid[-2:], jid, "input")
    eq(os.path.getsize(stored), size, "bytes the API stored")
    print(f"# spoolctl peak RSS during a 128 MiB upload: {peak} KiB")
    assert peak > 0, "the upload ended before it could be measured"
    if not SANITIZED:
        assert peak < 30 * 1024, f"spoolctl peaked at {peak} KiB for a 128 MiB upload"
    ok(ctl("cancel", jid, server=url), "cancel")
    os.unlink(stored)
    os.unlink(big)


@suite.test
def test_health_and_readiness(ctx):
    url = idle_api(ctx)
    eq(ok(ctl("health", server=url), "health"), f"{url} ok\n", "health")
    eq(ok(ctl("health", "--ready", server=url), "ready"), f"{url} ready\n", "ready")
    doc = json.loads(ok(ctl("--json", "health", "--ready", server=url), "ready json"))
    eq(doc["status"], "ready", "status")
    # An API whose Redis is gone is alive but not ready.
    api = Api(ctx, "dead:", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    try:
        ok(ctl("health", server=api.url), "health")
        rc, _, err = ctl("health", "--ready", server=api.url)
        eq(rc, 4, "not ready")
        assert "not_ready" in err, err
    finally:
        api.proc.stop()


@suite.test
def test_interrupt_stops_a_wait_with_130(ctx):
    url = idle_api(ctx)
    jid = ok(ctl("-q", "submit-video", ctx["clip"], server=url), "submit").strip()
    p = subprocess.Popen([CTL, "--server", url, "wait", jid], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(0.7)
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    rc = p.wait(10)
    eq(rc, 130, "exit")
    assert time.monotonic() - t0 < 3, "stopped promptly"
    ok(ctl("cancel", jid, server=url), "cancel")


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

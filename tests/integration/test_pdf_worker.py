#!/usr/bin/env python3
"""spool-pdf end to end: the real worker binary against a private redis-server and the
blob store that SPOOL_TEST_BLOBS names (a directory in a temp dir, or S3 through
harness.S3: PDFs read back with boto3, every succeeded job cross-checked at the end).
Jobs are put in the blob store and enqueued with `pdfq` (a helper on the common
library: the same key names and Lua scripts as spool-api), and the PDFs the worker
writes are checked with poppler (pdfinfo, pdftotext).
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, LOOPBACK_ALLOW, ROOT, SANITIZED, FileHandler, Proc, Redis, Suite,  # noqa: E402
                     blob_store, check_blob_stores, eq, free_port, serve_files, wait_until)

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
PDFQ = os.path.join(TEST_BIN, "pdfq")
WORKER = os.path.join(BIN, "spool-pdf")
SLOW = 4 if SANITIZED else 1  # sanitizer builds run several times slower

suite = Suite("pdf_worker")


class Ctx:
    def __init__(self):
        self.redis = Redis()
        self.blobs = blob_store(suite).watch(self.redis, "spool:")
        self.http = serve_files(suite.tmp)
        self.base_url = f"http://127.0.0.1:{self.http.server_address[1]}"


def pdfq(*args, env=None):
    out = subprocess.run([PDFQ, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})), timeout=30)
    if out.returncode != 0:
        raise AssertionError(f"pdfq {args[0]}: {out.stderr.decode()}")
    return out.stdout.decode().strip()


def write(name, data):
    path = os.path.join(suite.tmp, name)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def ndjson(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def enqueue(ctx, params, data=None, fmt="ndjson", inp=None, max_attempts=3):
    """A pdf.export job: data goes to the blob store as "dataset" unless inp is given."""
    job_id = pdfq("newid")
    if inp is None:
        src = write(f"{job_id}.in", data)
        pdfq("put", ctx.blobs.location, job_id, "dataset", src, env=ctx.blobs.env())
        os.unlink(src)
        inp = {"blob": "dataset", "format": fmt}
    pdfq("enqueue", ctx.redis.url, job_id, json.dumps(params), json.dumps(inp), max_attempts)
    return job_id


def job(ctx, job_id):
    return json.loads(pdfq("get", ctx.redis.url, job_id))


def wait_state(ctx, job_id, states, timeout=60):
    states = (states,) if isinstance(states, str) else states
    last = {}

    def done():
        last.update(job(ctx, job_id))
        return last["state"] in states

    try:
        wait_until(done, timeout * SLOW, 0.05, what=f"job {job_id} to be {states}")
    except AssertionError:
        raise AssertionError(f"job still {last.get('state')}: {last}")
    return dict(last)


def worker(ctx, **env):
    base = {"SPOOL_REDIS_URL": ctx.redis.url, **ctx.blobs.env(),
            "SPOOL_LOG_LEVEL": "info", "SPOOL_RENEW_INTERVAL": "100ms", **LOOPBACK_ALLOW}
    base.update({k: str(v) for k, v in env.items()})
    return Proc([WORKER], env=base, logdir=suite.tmp)


def stop(proc, what="worker"):
    code = proc.stop()
    if code != 0:
        with open(proc.logpath, "rb") as f:
            log = f.read().decode(errors="replace")
        raise AssertionError(f"{what} exited with {code}:\n{log[-4000:]}")


def blob_path(ctx, job_id, name="export.pdf"):
    """A local file with the blob's bytes (in S3, a fresh download)."""
    return ctx.blobs.local_path(job_id, name)


def pdf_staging(ctx, job_id):
    """Local files the PDF of job_id is being written to: its staging file (in S3, its
    scratch file)."""
    return [p for p in ctx.blobs.pending(job_id)
            if not p.startswith("upload:") and ".export.pdf" in "." + os.path.basename(p)]


def pages_of(path):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"pdfinfo {path}: {out.stderr.decode()}")
    for line in out.stdout.decode().splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise AssertionError("no page count")


def text_of(path, first=None, last=None):
    argv = ["pdftotext", "-layout"]
    if first:
        argv += ["-f", str(first), "-l", str(last or first)]
    out = subprocess.run(argv + [path, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=120)
    eq(out.returncode, 0, "pdftotext exit code")
    eq(out.stderr.decode(), "", "pdftotext warnings")
    return out.stdout.decode()


def check_pdf(ctx, job_id, rec, rows, header, last_row):
    """The job's one output is a valid PDF whose pages, header, footers and last row are
    what the job's metadata says."""
    path = blob_path(ctx, job_id)
    eq(rec["outputs"], [{"name": "export.pdf", "content_type": "application/pdf",
                         "bytes": os.path.getsize(path)}], "outputs")
    ctx.blobs.check_outputs(dict(rec, id=job_id))
    eq(rec["metadata"]["rows"], rows, "metadata rows")
    pages = pages_of(path)
    eq(rec["metadata"]["pages"], pages, "metadata pages vs pdfinfo")
    first = text_of(path, 1)
    for label in header:
        assert label in first, f"header {label!r} missing on page 1"
    assert f"Page 1 of {pages}" in first, "first footer"
    last = text_of(path, pages)
    for label in header:
        assert label in last, f"header {label!r} missing on the last page"
    assert f"Page {pages} of {pages}" in last, "last footer"
    assert last_row in last, f"last row {last_row!r} missing"
    return path, pages


def rows_ndjson(n, start=1):
    return ndjson({"id": i, "name": f"Customer {i}", "amount": i * 3 / 4, "when":
                   f"2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T12:00:00Z"} for i in range(start, start + n))


PARAMS = {"title": "Customers", "author": "Integration", "columns": [
    {"key": "id", "label": "ID", "format": "number", "decimals": 0},
    {"key": "name", "label": "Name"},
    {"key": "amount", "label": "Amount", "format": "number", "decimals": 2},
    {"key": "when", "label": "Date", "format": "date"}]}


@suite.test
def test_ndjson_blob_export_succeeds_with_output_and_metadata(ctx):
    w = worker(ctx)
    try:
        jid = enqueue(ctx, PARAMS, rows_ndjson(3000))
        rec = wait_state(ctx, jid, ("succeeded", "failed"))
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        eq(rec["attempts"], 1, "attempts")
        eq(rec["progress"], 100, "progress")
        check_pdf(ctx, jid, rec, 3000, ["ID", "Name", "Amount", "Date"], "Customer 3000")
        last = text_of(blob_path(ctx, jid), rec["metadata"]["pages"])
        assert "2,250.00" in last and "2024-01-05" in last, "formatted number and date"
    finally:
        stop(w)


@suite.test
def test_inline_dataset_in_the_job_record(ctx):
    w = worker(ctx)
    try:
        rows = ndjson([{"id": i, "name": f"Ünïcode {i}", "amount": i, "when": "2024-02-29"}
                       for i in range(1, 41)])
        jid = enqueue(ctx, PARAMS, inp={"inline": rows, "format": "ndjson",
                                        "bytes": len(rows.encode())})
        rec = wait_state(ctx, jid, ("succeeded", "failed"))
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        check_pdf(ctx, jid, rec, 40, ["ID", "Name"], "Ünïcode 40")
        bad = enqueue(ctx, PARAMS, inp={"inline": '{"id": 1}\n{"id":', "format": "ndjson"})
        rec = wait_state(ctx, bad, ("succeeded", "failed"))
        eq(rec["state"], "failed", "a malformed inline dataset fails")
        assert "line 2" in rec["error"]["message"], rec["error"]
        eq(rec["error"]["retryable"], False, "permanently")
    finally:
        stop(w)


@suite.test
def test_csv_and_json_from_source_url(ctx):
    csv = "city,greeting\n" + "".join(f"Zürich {i},\"Grüezi, {i}\"\n" for i in range(500))
    write("cities.csv", csv)
    arr = json.dumps([{"k": f"Ωμέγα {i}", "v": i} for i in range(300)], ensure_ascii=False)
    write("rows.json", arr)
    w = worker(ctx)
    try:
        a = enqueue(ctx, {"title": "From a URL"},
                    inp={"url": f"{ctx.base_url}/cities.csv", "format": "csv"})
        b = enqueue(ctx, {"title": "JSON array"},
                    inp={"url": f"{ctx.base_url}/rows.json", "format": "json"})
        missing = enqueue(ctx, {"title": "404"},
                          inp={"url": f"{ctx.base_url}/nope.csv", "format": "csv"})
        ra = wait_state(ctx, a, ("succeeded", "failed"))
        eq(ra["state"], "succeeded", f"csv state ({ra['error']})")
        check_pdf(ctx, a, ra, 500, ["city", "greeting"], "Grüezi, 499")
        assert ctx.blobs.exists(a, "source"), "the fetched dataset is kept"
        rb = wait_state(ctx, b, ("succeeded", "failed"))
        eq(rb["state"], "succeeded", f"json state ({rb['error']})")
        check_pdf(ctx, b, rb, 300, ["k", "v"], "Ωμέγα 299")
        rm = wait_state(ctx, missing, ("succeeded", "failed"))
        eq(rm["state"], "failed", "404 state")
        eq(rm["error"]["code"], "fetch_failed", "404 error code")
        eq(rm["error"]["retryable"], False, "404 is permanent")
        eq(rm["attempts"], 1, "no retry after a 404")
    finally:
        stop(w)


@suite.test
def test_retryable_fetch_errors_retry_then_fail_retryable(ctx):
    """A source_url that answers 503, and one whose port refuses connections: each
    attempt fails, retryable (fetch_failed for the 503, source_unreachable for the
    closed port); the job waits in `retrying`, is retried, and ends `failed` (still
    retryable) once its attempts are used up."""
    unavailable = f"{ctx.base_url}/status/503/rows.csv"
    refused = f"http://127.0.0.1:{free_port()}/rows.csv"  # bound, then closed
    codes = {"503": "fetch_failed", "refused": "source_unreachable"}
    # This worker promotes due retries at its start only, so a failed attempt stays
    # `retrying` while it runs.
    w = worker(ctx, SPOOL_CONCURRENCY=2, SPOOL_MAINTAIN_INTERVAL="60s")
    try:
        wait_until(lambda: "ready:" in w.output(), 10 * SLOW, 0.05, what="worker ready")
        time.sleep(0.3 * SLOW)  # past its first maintenance pass
        ids = {"503": enqueue(ctx, {"title": "503"}, inp={"url": unavailable, "format": "csv"},
                              max_attempts=2),
               "refused": enqueue(ctx, {"title": "refused"},
                                  inp={"url": refused, "format": "csv"}, max_attempts=2)}
        for k, jid in ids.items():
            rec = wait_state(ctx, jid, ("retrying", "succeeded", "failed"))
            eq((rec["state"], rec["attempts"]), ("retrying", 1), f"{k}: after one attempt")
            eq((rec["error"]["code"], rec["error"]["retryable"]), (codes[k], True),
               f"{k}: error ({rec['error']['message']})")
            eq(ctx.blobs.names(jid) + ctx.blobs.pending(jid), [], f"{k}: no partial source, no PDF")
        eq(FileHandler.hits.get("/status/503/rows.csv"), 1, "503: requests by the first attempt")
        assert "503" in job(ctx, ids["503"])["error"]["message"], job(ctx, ids["503"])["error"]
        time.sleep(0.5)
        eq(job(ctx, ids["503"])["state"], "retrying", "503: still waiting for promotion")
    finally:
        stop(w)
    # A worker with the usual maintenance interval promotes and reruns them.
    w = worker(ctx, SPOOL_CONCURRENCY=2)
    try:
        for k, jid in ids.items():
            rec = wait_state(ctx, jid, ("failed", "succeeded"))
            eq((rec["state"], rec["attempts"]), ("failed", 2), f"{k}: attempts used up")
            eq((rec["error"]["code"], rec["error"]["retryable"]), (codes[k], True),
               f"{k}: final error ({rec['error']['message']})")
            eq(ctx.blobs.names(jid) + ctx.blobs.pending(jid), [], f"{k}: no partial source, no PDF")
    finally:
        stop(w)
    eq(FileHandler.hits.get("/status/503/rows.csv"), 2, "503: one request per attempt")
    msg = job(ctx, ids["503"])["error"]["message"]
    assert "HTTP 503" in msg and "will retry" not in msg, f"final message: {msg!r}"


@suite.test
def test_malformed_datasets_fail_permanently_naming_the_line(ctx):
    w = worker(ctx)
    try:
        cases = [
            ("csv", "a,b\n1,2\n3,4\n5,\"six\"x\n", "line 4: malformed CSV"),
            ("csv", "a,b\n1,2\n3\n", "line 3: the row has 1 fields, expected 2"),
            ("ndjson", '{"a":1}\n{"a":2}\n{"a":\n', "line 3: invalid JSON"),
            ("json", '[{"a":1},\n{"a":2},\n]', "line 3: a ',' before the closing ']'"),
        ]
        ids = [(enqueue(ctx, {"title": "Bad"}, data, fmt), want) for fmt, data, want in cases]
        for jid, want in ids:
            rec = wait_state(ctx, jid, ("succeeded", "failed", "retrying"))
            eq(rec["state"], "failed", "state")
            eq(rec["attempts"], 1, "no retries for a malformed dataset")
            eq(rec["error"]["code"], "invalid_input", "error code")
            eq(rec["error"]["retryable"], False, "retryable")
            assert want in rec["error"]["message"], rec["error"]["message"]
            eq(ctx.blobs.names(jid), ["dataset"], "no PDF for a failed job")
        bad = enqueue(ctx, {"title": "", "columns": []}, "a\n1\n", "csv")
        rec = wait_state(ctx, bad, ("succeeded", "failed", "retrying"))
        eq((rec["state"], rec["error"]["code"]), ("failed", "invalid_params"), "bad params")
    finally:
        stop(w)


@suite.test
def test_cjk_rows_use_the_fallback_font_and_missing_glyphs_are_counted(ctx):
    w = worker(ctx)
    try:
        rows = ndjson([{"id": i, "name": f"山田太郎 {i}", "amount": i, "when": "2024-02-29"}
                       for i in range(1, 301)] +
                      [{"id": 301, "name": "김민준 \U0001F600 \ue000", "amount": 1,
                        "when": "2024-03-01"}])
        jid = enqueue(ctx, PARAMS, rows)
        rec = wait_state(ctx, jid, ("succeeded", "failed"))
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        path, pages = check_pdf(ctx, jid, rec, 301, ["ID", "Name"], "김민준 \ufffd \ufffd")
        text = "".join(text_of(path, n) for n in range(1, pages + 1))
        for i in range(1, 301):
            assert f"山田太郎 {i}" in text, f"row {i}"
        eq(rec["metadata"]["missing_glyphs"], 2, "an emoji and a private-use character")
        fonts = subprocess.run(["pdffonts", path], capture_output=True, timeout=60).stdout
        assert b"WenQuanYi" in fonts, fonts.decode()
    finally:
        stop(w)
    # a fallback that cannot be used stops the worker at start, naming it
    for bad, why in (("/nonexistent/font.ttf", "cannot read the fallback font"),
                     (os.path.abspath(__file__), "is not a TrueType font")):
        w = worker(ctx, SPOOL_PDF_FALLBACK_FONTS=bad)
        code = w.wait(30)
        assert code != 0, "the worker refused to start"
        assert why in w.output() and bad in w.output(), w.output()[-2000:]
    # none: no fallback; CJK characters are then counted, drawn as U+FFFD
    w = worker(ctx, SPOOL_PDF_FALLBACK_FONTS="none")
    try:
        jid = enqueue(ctx, PARAMS, ndjson([{"id": 1, "name": "東京", "amount": 1,
                                            "when": "2024-01-01"}]))
        rec = wait_state(ctx, jid, ("succeeded", "failed"))
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        eq(rec["metadata"]["missing_glyphs"], 2, "two characters without a font")
    finally:
        stop(w)


@suite.test
def test_page_and_memory_limits_fail_the_job_not_the_worker(ctx):
    w = worker(ctx, SPOOL_PDF_MAX_PAGES=20, SPOOL_PDF_MAX_MEMORY="16M")
    try:
        pages = enqueue(ctx, PARAMS, rows_ndjson(2000))
        rec = wait_state(ctx, pages, ("succeeded", "failed", "retrying"))
        eq((rec["state"], rec["error"]["code"], rec["error"]["retryable"]),
           ("failed", "too_large", False), "page limit")
        assert "export too large: the table needs more than 20 pages" in rec["error"]["message"]
        stop(w)
        # libharu's memory does not grow with the page count (the fonts and one page,
        # about 2 MB): a 1 MB cap fails every export, cleanly, and the worker carries on
        w = worker(ctx, SPOOL_PDF_MAX_MEMORY="1M")
        big = enqueue(ctx, {"title": "Big", "columns": [{"key": "n"}]},
                      "n\n" + "".join(f"{i}\n" for i in range(300000)), "csv")
        small = enqueue(ctx, PARAMS, rows_ndjson(10))
        for jid in (big, small):
            rec = wait_state(ctx, jid, ("succeeded", "failed", "retrying"), 120)
            eq((rec["state"], rec["error"]["code"]), ("failed", "too_large"), "memory cap")
            assert "of memory" in rec["error"]["message"], rec["error"]["message"]
            eq(ctx.blobs.pending(jid), [], "staging files removed")
        stop(w)
        # 16 MB is plenty for the 300,000 rows (about 6,800 pages)
        w = worker(ctx, SPOOL_PDF_MAX_MEMORY="16M")
        big = enqueue(ctx, {"title": "Big", "columns": [{"key": "n"}]},
                      "n\n" + "".join(f"{i}\n" for i in range(300000)), "csv")
        rec = wait_state(ctx, big, ("succeeded", "failed", "retrying"), 120)
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        assert w.alive(), "worker still running"
    finally:
        stop(w)


def big_job(ctx, rows=200000, url=False):
    data = "n,label\n" + "".join(f"{i},row {i}\n" for i in range(1, rows + 1))
    params = {"title": "Long", "columns": [{"key": "n"}, {"key": "label"}]}
    if url:
        write("big.csv", data)
        return enqueue(ctx, params, inp={"url": f"{ctx.base_url}/big.csv", "format": "csv"})
    return enqueue(ctx, params, data, "csv")


@suite.test
def test_cancel_stops_a_running_export_between_pages(ctx):
    w = worker(ctx)
    try:
        jid = big_job(ctx, 400000)
        wait_until(lambda: job(ctx, jid)["progress"] >= 12, 60 * SLOW, 0.02,
                   what="the render pass to start")
        t0 = time.monotonic()
        eq(pdfq("cancel", ctx.redis.url, jid), "1", "cancel of a running job")
        rec = wait_state(ctx, jid, ("cancelled", "succeeded", "failed"), 10)
        eq(rec["state"], "cancelled", "state")
        assert time.monotonic() - t0 < 3 * SLOW, "the export stopped within a few seconds"
        eq(ctx.blobs.names(jid), ["dataset"], "no PDF after a cancel")
        eq(ctx.blobs.pending(jid), [], "staging files removed")
        # a job cancelled before any worker took it never runs
        stop(w)
        early = enqueue(ctx, PARAMS, rows_ndjson(5))
        eq(pdfq("cancel", ctx.redis.url, early), "0", "cancel of a queued job")
        w = worker(ctx)
        later = enqueue(ctx, PARAMS, rows_ndjson(5))
        eq(wait_state(ctx, later, ("succeeded", "failed"))["state"], "succeeded", "next job")
        rec = job(ctx, early)
        eq((rec["state"], rec["attempts"]), ("cancelled", 0), "the cancelled job never ran")
        eq(ctx.blobs.names(early), ["dataset"], "no PDF of the cancelled job")
    finally:
        stop(w)


@suite.test
def test_cancel_while_the_pdf_is_written_discards_it(ctx):
    # The PDF is written as it is drawn. Its staging file is swapped for a FIFO before
    # the render opens it (during the layout pass), so the worker writes into a pipe
    # this test reads, and blocks once the pipe is full: the cancel comes while the
    # worker is stuck in a write, and is seen once the test lets it go on. 800,000 rows
    # make the layout pass take a few seconds, so a loaded machine that runs this test
    # late still swaps the file in time (200,000 once lost that race in CI).
    w = worker(ctx)
    try:
        jid = big_job(ctx, 800000)
        path = wait_until(lambda: pdf_staging(ctx, jid), 60 * SLOW, 0.005,
                          what="the staging file")[0]
        os.unlink(path)
        os.mkfifo(path)
        rec = job(ctx, jid)
        assert rec["state"] == "running" and rec["progress"] <= 10, \
            f"the layout pass is still under way when the FIFO is in place: {rec}"
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            p = select.poll()
            p.register(fd, select.POLLIN)
            wait_until(lambda: p.poll(0), 60 * SLOW, 0.01, what="the PDF to be written")
            time.sleep(0.3)  # the pipe fills: the worker waits in a write
            progress = job(ctx, jid)["progress"]
            eq(pdfq("cancel", ctx.redis.url, jid), "1", "cancel of a running job")
            wait_until(lambda: "cancel requested" in w.output(), 10 * SLOW, 0.02,
                       what="the worker to see the cancel")
            os.set_blocking(fd, True)
            head, total, end = b"", 0, time.monotonic() + 60 * SLOW
            while time.monotonic() < end:
                chunk = os.read(fd, 1 << 16) if p.poll(1000) else None
                if chunk == b"":
                    break  # the worker closed the file
                if chunk:
                    head = head or chunk[:5]
                    total += len(chunk)
            else:
                raise AssertionError("the worker did not close the PDF")
        finally:
            os.close(fd)
        eq(head, b"%PDF-", "the worker wrote a PDF")
        assert total > 65536, f"the worker wrote {total} bytes"
        assert progress < 90, f"the render was under way when cancelled ({progress}%)"
        rec = wait_state(ctx, jid, ("cancelled", "succeeded", "failed"), 10)
        eq((rec["state"], rec["outputs"]), ("cancelled", None), "cancelled, no outputs")
        eq((ctx.blobs.names(jid), ctx.blobs.pending(jid)), (["dataset"], []),
           "no PDF, no staging file")
    finally:
        stop(w)


@suite.test
def test_compression_fast_from_the_job_or_the_worker(ctx):
    data = "n,label\n" + "".join(f"{i},row {i} of the table\n" for i in range(1, 20001))
    params = {"title": "Sizes", "columns": [{"key": "n"}, {"key": "label"}]}
    w = worker(ctx)
    try:
        sizes = {}
        for name, extra in (("default", {}), ("fast", {"compression": "fast"})):
            jid = enqueue(ctx, dict(params, **extra), data, "csv")
            rec = wait_state(ctx, jid, ("succeeded", "failed", "retrying"), 120)
            eq(rec["state"], "succeeded", f"{name} ({rec['error']})")
            path, pages = check_pdf(ctx, jid, rec, 20000, ["n", "label"], "row 20000")
            sizes[name] = os.path.getsize(path)
        stop(w)
        w = worker(ctx, SPOOL_PDF_COMPRESSION="fast")
        jid = enqueue(ctx, params, data, "csv")
        rec = wait_state(ctx, jid, ("succeeded", "failed", "retrying"), 120)
        eq(rec["state"], "succeeded", f"worker default fast ({rec['error']})")
        path, _ = check_pdf(ctx, jid, rec, 20000, ["n", "label"], "row 20000")
        sizes["worker"] = os.path.getsize(path)
        assert sizes["fast"] > sizes["default"] * 1.1, sizes
        eq(sizes["worker"], sizes["fast"], "SPOOL_PDF_COMPRESSION=fast as the job's fast")
    finally:
        stop(w)
    # a bad setting stops the worker at start-up, naming it
    out = subprocess.run([WORKER], env=dict(os.environ, SPOOL_REDIS_URL=ctx.redis.url,
                                            **ctx.blobs.env(), SPOOL_PDF_COMPRESSION="11"),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    assert out.returncode != 0, "the worker refuses SPOOL_PDF_COMPRESSION=11"
    assert b"SPOOL_PDF_COMPRESSION must be default, fast or a zlib level" in out.stderr, \
        out.stderr


@suite.test
def test_sigterm_past_the_grace_period_gives_the_job_back(ctx):
    w = worker(ctx, SPOOL_GRACE="200ms")
    jid = big_job(ctx, 400000, url=True)
    wait_until(lambda: job(ctx, jid)["progress"] >= 12, 60 * SLOW, 0.02, what="rendering")
    t0 = time.monotonic()
    stop(w)
    assert time.monotonic() - t0 < 5 * SLOW, "the worker stopped soon after its grace period"
    rec = job(ctx, jid)
    eq((rec["state"], rec["attempts"]), ("queued", 0), "given back, attempt not counted")
    eq(ctx.blobs.names(jid), ["source"], "blobs after the stopped attempt: its fetched dataset, no PDF")
    w = worker(ctx)
    try:
        rec = wait_state(ctx, jid, ("succeeded", "failed"), 120)
        eq((rec["state"], rec["attempts"]), ("succeeded", 1), "redone by the next worker")
        check_pdf(ctx, jid, rec, 400000, ["n", "label"], "row 400000")
        eq(FileHandler.hits.get("/big.csv"), 1, "source_url fetched once, then reused")
    finally:
        stop(w)


@suite.test
def test_killed_worker_job_is_redone_and_ends_with_one_valid_pdf(ctx):
    a = worker(ctx, SPOOL_LEASE="2s")
    jid = big_job(ctx, 400000)
    wait_until(lambda: job(ctx, jid)["progress"] >= 30, 60 * SLOW, 0.02, what="rendering")
    a.kill()
    eq(job(ctx, jid)["state"], "running", "still leased to the dead worker")
    b = worker(ctx, SPOOL_LEASE="2s")
    try:
        rec = wait_state(ctx, jid, ("succeeded", "failed"), 120)
        eq((rec["state"], rec["attempts"]), ("succeeded", 2), "redone after the lease ran out")
        path, _ = check_pdf(ctx, jid, rec, 400000, ["n", "label"], "row 400000")
        eq(ctx.blobs.names(jid), ["dataset", "export.pdf"], "one PDF (a killed attempt's "
           "staging file is not one)")
        eq(ctx.blobs.pending(jid), [], "the killed attempt's staging file, removed")
    finally:
        stop(b)


@suite.test
def test_forty_thousand_page_export_succeeds(ctx):
    # 1.8 million one-line rows: about 41,800 A4 pages
    rows = 1800000
    data = "n\n" + "".join(f"{i}\n" for i in range(1, rows + 1))
    w = worker(ctx, SPOOL_PDF_TIME_LIMIT="10m")
    try:
        t0 = time.monotonic()
        jid = enqueue(ctx, {"title": "Forty thousand pages",
                            "columns": [{"key": "n", "label": "Row", "format": "number"}]},
                      data, "csv")
        rec = wait_state(ctx, jid, ("succeeded", "failed", "retrying"), 150)
        took = time.monotonic() - t0
        eq(rec["state"], "succeeded", f"state ({rec['error']})")
        path, pages = check_pdf(ctx, jid, rec, rows, ["Row"], "1,800,000")
        assert pages > 40000, f"{pages} pages"
        print(f"# {pages} pages, {os.path.getsize(path)} bytes in {took:.1f} s; worker: "
              + [l for l in w.output().splitlines() if "exported" in l][-1].split(": ", 1)[1]
              .split(" job=")[0], flush=True)
    finally:
        stop(w)


@suite.test
def test_two_slots_render_at_once(ctx):
    # Queued before the worker starts: enqueueing one of these takes about as long as
    # rendering it, so jobs queued one by one would meet a free worker each time.
    ids = [enqueue(ctx, PARAMS, rows_ndjson(20000, start=i * 20000 + 1)) for i in range(4)]
    w = worker(ctx, SPOOL_CONCURRENCY=2)
    try:
        recs = [wait_state(ctx, i, ("succeeded", "failed")) for i in ids]
        # From the records' own times (Redis's clock), not by sampling states: some two
        # jobs ran during overlapping intervals.
        spans = sorted((r["started_at"], r["finished_at"]) for r in recs)
        assert all(0 < a < b for a, b in spans), spans
        assert any(spans[k + 1][0] < spans[k][1] for k in range(len(spans) - 1)), \
            f"two jobs ran at the same time: {spans}"
        for i, (jid, rec) in enumerate(zip(ids, recs)):
            eq(rec["state"], "succeeded", f"job {i} ({rec['error']})")
            check_pdf(ctx, jid, rec, 20000, ["ID", "Name"], f"Customer {(i + 1) * 20000}")
    finally:
        stop(w)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@suite.test
def test_no_leak_over_fifty_jobs(ctx):
    w = worker(ctx)
    try:
        samples = []
        for i in range(50):
            jid = enqueue(ctx, PARAMS, rows_ndjson(400, start=i * 400 + 1))
            rec = wait_state(ctx, jid, ("succeeded", "failed"))
            eq(rec["state"], "succeeded", f"job {i}")
            if i in (9, 49):
                samples.append(rss_kb(w.pid))
        growth = samples[1] - samples[0]
        print(f"# worker RSS after 10 jobs {samples[0]} KB, after 50 jobs {samples[1]} KB",
              flush=True)
        if not SANITIZED:  # ASan's quarantine grows RSS on purpose; LSan checks at exit
            assert growth < 4096, f"RSS grew by {growth} KB over 40 jobs"
    finally:
        stop(w)  # under ASan, a leak makes the worker exit non-zero


@suite.test
def test_blob_store_holds_what_the_jobs_report(ctx):
    # Last: every succeeded job's PDF, read back independently (boto3 in s3 mode).
    check_blob_stores(suite)


if __name__ == "__main__":
    sys.exit(suite.run(setup=Ctx))

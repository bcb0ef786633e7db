#!/usr/bin/env python3
"""Every size limit the workers enforce, at the limit minus one, at it and past it: the
real spool-pdf and spool-video against a private redis-server, datasets and clips put
in the blob store or served over loopback HTTP (with a Content-Length, chunked, ended by
closing the connection, gzip-encoded, behind redirects), PDFs checked with poppler and
videos with ffprobe.

At and under a limit a job succeeds with the right output; past it, it fails at once
(one attempt, not retryable) with the documented code and a message naming the limit,
and the worker carries on. Limits with large defaults are set small through their
settings. Where spool-api checks the same limit at submit (1 MiB a CSV record or NDJSON
line, 256 columns), a dataset exactly at it is sent through the real spool-api and must
then succeed in spool-pdf, and one byte or column more, refused by the API, is queued
directly and must fail in spool-pdf with invalid_input.
"""
import functools
import gzip
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, ROOT, SANITIZED, Proc, Queue, Redis, Suite, eq, ffprobe,  # noqa: E402
                     make_clip, wait_until)
from test_api import ApiServer  # noqa: E402

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
PDFQ = os.path.join(TEST_BIN, "pdfq")
SLOW = 4 if SANITIZED else 1
MiB = 1 << 20
MAX_ROW = MiB    # SP_EXPORT_MAX_ROW_BYTES: the API's limit and spool-pdf's default
MAX_COLUMNS = 256  # SP_EXPORT_MAX_COLUMNS
TEXT_MAX = 4000  # spool-pdf: bytes of a title, author, column key or label
URL_MAX = 2048   # sp_fetch_url_valid
BLOB_NAME_MAX = 64

suite = Suite("worker_limits")


# ---- sources over loopback HTTP ---------------------------------------------------------

class SourceHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the suite's files: /NAME with a Content-Length, /chunked/NAME chunked,
    /close/NAME with neither (the body ends when the connection closes), /gzip/NAME
    gzip-encoded with the compressed length, /redirect/K/NAME through K redirects. A
    query string is ignored."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path).path.split("/")
        kind = parts[1] if len(parts) > 2 else ""
        if kind == "redirect":
            k, rest = int(parts[2]), "/".join(parts[3:])
            self.send_response(302)
            self.send_header("Location", f"/redirect/{k - 1}/{rest}" if k > 1 else f"/{rest}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if kind not in ("chunked", "close", "gzip"):
            return super().do_GET()
        path = os.path.join(self.directory, *parts[2:])
        if not os.path.isfile(path):
            return self.send_error(404)
        with open(path, "rb") as f:
            data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif kind == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            data = gzip.compress(data)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for i in range(0, len(data), 4096):
            piece = data[i:i + 4096]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if kind == "chunked" else piece)
        if kind == "chunked":
            self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


class SourceServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)  # a worker hanging up is expected


def serve(directory):
    srv = SourceServer(("127.0.0.1", 0), functools.partial(SourceHandler, directory=directory))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


# ---- the suite's parts ------------------------------------------------------------------

class Ctx:
    def __init__(self):
        self.redis = Redis()
        self.api = ApiServer(suite, self.redis, {"SPOOL_LOG_LEVEL": "info"})
        self.data = self.api.data  # shared by the API and every worker here
        self.www = os.path.join(suite.tmp, "www")
        os.makedirs(self.www)
        self.srv = serve(self.www)
        self.base = f"http://127.0.0.1:{self.srv.server_address[1]}"
        # the API's queue and prefix, default limits
        self.pdf = pdf_worker(self, "spool:", name="spool-pdf-default")


def teardown(ctx):
    stop(ctx.pdf)
    eq(ctx.api.stop(), 0, "spool-api exit code")
    ctx.srv.shutdown()


def worker_env(ctx, prefix, **extra):
    env = {"SPOOL_REDIS_URL": ctx.redis.url, "SPOOL_DATA_DIR": ctx.data,
           "SPOOL_KEY_PREFIX": prefix, "SPOOL_LOG_LEVEL": "info",
           "SPOOL_RENEW_INTERVAL": "100ms", "SPOOL_MAINTAIN_INTERVAL": "100ms",
           # the outbound guard refuses loopback sources without it
           "SPOOL_OUTBOUND_ALLOW": "127.0.0.0/8"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def pdf_worker(ctx, prefix, name="spool-pdf", **extra):
    return Proc([os.path.join(BIN, "spool-pdf")], env=worker_env(ctx, prefix, **extra),
                name=name, logdir=suite.tmp)


def video_worker(ctx, prefix, **extra):
    return Proc([os.path.join(BIN, "spool-video")],
                env=worker_env(ctx, prefix, SPOOL_VIDEO_THREADS=1, **extra),
                name="spool-video", logdir=suite.tmp)


def stop(proc):
    """Stop a worker; it must exit cleanly (a crash or a sanitizer report fails here)."""
    code = proc.stop()
    if code != 0:
        raise AssertionError(f"{proc.name} exited with {code}:\n{proc.output()[-4000:]}")


def pdfq(prefix, *args):
    out = subprocess.run([PDFQ, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, SPOOL_KEY_PREFIX=prefix), timeout=60)
    if out.returncode != 0:
        raise AssertionError(f"pdfq {args[0]}: {out.stderr.decode()}")
    return out.stdout.decode().strip()


def b(data):
    return data.encode() if isinstance(data, str) else data


def pdf_job(ctx, prefix, params, data=None, fmt="csv", inp=None, blob="dataset"):
    """Queue a pdf.export job directly (no API): data goes to the blob store as blob."""
    job_id = pdfq(prefix, "newid")
    if inp is None:
        src = os.path.join(suite.tmp, job_id + ".in")
        with open(src, "wb") as f:
            f.write(b(data))
        pdfq(prefix, "put", ctx.data, job_id, blob, src)
        os.unlink(src)
        inp = {"blob": blob, "format": fmt}
    pdfq(prefix, "enqueue", ctx.redis.url, job_id, json.dumps(params), json.dumps(inp), 3)
    return job_id


def via_api(ctx, body, ctype, query="title=Limits"):
    """POST /v1/exports; returns the response."""
    return ctx.api.http.post("/v1/exports?" + query if query else "/v1/exports", b(body),
                             headers={"Content-Type": ctype}, timeout=60)


def api_job(ctx, body, ctype="text/csv", query="title=Limits"):
    r = via_api(ctx, body, ctype, query)
    eq(r.status, 202, f"spool-api accepts it ({r.body[:300]!r})")
    return r.json()["id"]


def api_refuses(ctx, body, ctype, words, query="title=Limits"):
    r = via_api(ctx, body, ctype, query)
    eq(r.status, 422, f"spool-api refuses it ({r.body[:300]!r})")
    assert words in r.json()["error"]["message"], r.json()


def pdf_done(ctx, prefix, job_id, timeout=60):
    """The job once it has succeeded, failed or gone to `retrying` (a retry is a fault
    here: limits fail for good at once)."""
    last = {}

    def done():
        last.update(json.loads(pdfq(prefix, "get", ctx.redis.url, job_id)))
        return last["state"] in ("succeeded", "failed", "retrying", "cancelled")

    try:
        wait_until(done, timeout * SLOW, 0.05, what=f"job {job_id} to end")
    except AssertionError:
        raise AssertionError(f"job still {last.get('state')}: {last}")
    return dict(last)


def blob_path(ctx, job_id, name):
    return os.path.join(ctx.data, "jobs", job_id[-2:], job_id, name)


def pdftext(path, first=None):
    argv = ["pdftotext", "-layout"] + (["-f", str(first), "-l", str(first)] if first else [])
    out = subprocess.run(argv + [path, "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=120)
    eq((out.returncode, out.stderr.decode()), (0, ""), f"pdftotext {path}")
    return out.stdout.decode()


def pdfinfo(path):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60)
    eq((out.returncode, out.stderr.decode()), (0, ""), f"pdfinfo {path}")
    return dict(line.split(":", 1) for line in out.stdout.decode().splitlines() if ":" in line)


def pdf_ok(ctx, prefix, job_id, rows, texts=(), what=""):
    """The job succeeded on its first attempt with a PDF of `rows` rows (pages as pdfinfo
    counts them) holding every string in texts (on its first or last page when it has
    more than 10). Returns (record, text)."""
    rec = pdf_done(ctx, prefix, job_id)
    eq((rec["state"], rec["attempts"], rec["error"]), ("succeeded", 1, None), f"{what}: outcome")
    path = blob_path(ctx, job_id, "export.pdf")
    eq(rec["outputs"], [{"name": "export.pdf", "content_type": "application/pdf",
                         "bytes": os.path.getsize(path)}], f"{what}: outputs")
    eq(rec["metadata"]["rows"], rows, f"{what}: rows")
    pages = int(pdfinfo(path)["Pages"])
    eq(rec["metadata"]["pages"], pages, f"{what}: pages vs pdfinfo")
    text = pdftext(path) if pages <= 10 else pdftext(path, 1) + pdftext(path, pages)
    for t in texts:
        assert t in text, f"{what}: {t[:80]!r} missing from the PDF"
    return rec, text


def pdf_fails(ctx, prefix, job_id, code, words, what=""):
    """The job failed on its first attempt, for good, with code and a message holding
    words; no PDF, and no fetched source left."""
    rec = pdf_done(ctx, prefix, job_id)
    err = rec["error"] or {}
    eq((rec["state"], rec["attempts"], err.get("code"), err.get("retryable")),
       ("failed", 1, code, False), f"{what}: outcome ({err.get('message')})")
    assert words in err["message"], f"{what}: {err['message']!r} does not say {words!r}"
    assert not os.path.exists(blob_path(ctx, job_id, "export.pdf")), f"{what}: no PDF"
    assert not os.path.exists(blob_path(ctx, job_id, "source")), f"{what}: no partial source"
    return rec


def write_www(ctx, name, data):
    with open(os.path.join(ctx.www, name), "wb") as f:
        f.write(b(data))


def csv_record(n, end="\n"):
    """A one-column CSV whose only record takes n bytes."""
    return "a" + end + "x" * n + end


def ndjson_line(n, end="\n"):
    """An NDJSON dataset whose only line takes n bytes: {"a":"xxx..."}."""
    return '{"a":"' + "x" * (n - 8) + '"}' + end


def csv_of_size(n):
    """A one-column CSV of exactly n bytes (n >= 8): rows of 1234, then one of y's."""
    body = "a\n" + "1234\n" * ((n - 8) // 5)
    return body + "y" * (n - len(body) - 1) + "\n"


# ---- spool-pdf: the limits spool-api shares ---------------------------------------------

@suite.test
def test_csv_record_of_1_mib_passes_api_and_worker_one_byte_more_fails_both(ctx):
    """A CSV record's bytes, its own line end not counted (line ends inside a quoted field
    counted): 1 MiB passes spool-api and renders in spool-pdf, with LF, CRLF or across
    lines; 1 MiB + 1 is a 422 at the API and invalid_input in the worker."""
    quoted = lambda n: 'a\n"x\r\n' + "x" * (n - 5) + '"\n'  # noqa: E731 - n bytes, 2 lines
    ok = {"1 MiB - 1, LF": csv_record(MAX_ROW - 1), "1 MiB, LF": csv_record(MAX_ROW),
          "1 MiB, CRLF": csv_record(MAX_ROW, "\r\n"), "1 MiB, quoted CRLF inside": quoted(MAX_ROW)}
    ids = {k: api_job(ctx, v) for k, v in ok.items()}
    ids.update({k + ", queued directly": pdf_job(ctx, "spool:", {"title": "At"}, v)
                for k, v in ok.items()})
    for k, jid in ids.items():
        pdf_ok(ctx, "spool:", jid, 1, ["x" * 40], k)
    past = {"LF": csv_record(MAX_ROW + 1), "CRLF": csv_record(MAX_ROW + 1, "\r\n"),
            "quoted": quoted(MAX_ROW + 1)}
    for k, v in past.items():
        api_refuses(ctx, v, "text/csv", f"longer than {MAX_ROW} bytes")
    ids = {k: pdf_job(ctx, "spool:", {"title": "Past"}, v) for k, v in past.items()}
    for k, jid in ids.items():
        pdf_fails(ctx, "spool:", jid, "invalid_input",
                  f"line 2: the row is longer than {MAX_ROW} bytes", f"1 MiB + 1, {k}")
    assert ctx.pdf.alive(), "the worker carries on"


@suite.test
def test_a_csv_byte_order_mark_is_skipped_by_api_and_worker_alike(ctx):
    """A spreadsheet's UTF-8 byte order mark before the header is no part of the first
    column's name in spool-api (a column named in params.columns is found) nor in
    spool-pdf, and an NDJSON body may start with one too; a body of only a BOM is empty
    to both. Found by fuzz_dataset_agree."""
    bom = "\ufeff"
    cols = urllib.parse.quote(json.dumps([{"key": "id", "label": "Ident"}, {"key": "name"}]))
    jid = api_job(ctx, bom + "id,name\r\n7,Zoe\r\n", query=f"title=Bom&columns={cols}")
    _, text = pdf_ok(ctx, "spool:", jid, 1, ["Ident", "Zoe"], "BOM, columns by name")
    assert "\ufeff" not in text and "\ufffd" not in text, text
    jid = api_job(ctx, bom + '{"id":8,"name":"Yan"}\r\n', "application/x-ndjson",
                  query=f"title=Bom&columns={cols}")
    pdf_ok(ctx, "spool:", jid, 1, ["Ident", "Yan"], "NDJSON after a BOM")
    api_refuses(ctx, bom, "text/csv", "the CSV body is empty")
    api_refuses(ctx, bom, "application/x-ndjson", "the NDJSON body has no rows")
    for fmt in ("csv", "ndjson"):
        jid = pdf_job(ctx, "spool:", {"title": "Bom"}, bom, fmt)
        pdf_fails(ctx, "spool:", jid, "invalid_input", "the data names no columns",
                  f"only a BOM, {fmt}")


@suite.test
def test_ndjson_line_of_1_mib_passes_api_and_worker_one_byte_more_fails_both(ctx):
    """An NDJSON line (or a JSON body's row written as one) of 1 MiB passes spool-api and
    renders, also when its cell text grows five times (reals inside a JSON value are
    written with 17 digits); 1 MiB + 1 is refused by both."""
    reals = '{"a":[0.1' + ",0.1" * ((MAX_ROW - 12) // 4)
    reals += " " * (MAX_ROW - len(reals) - 2) + "]}\n"
    eq(len(reals), MAX_ROW + 1, "the line of reals takes 1 MiB")
    # {"title":..., "rows":[{"a": "xxx"}]}: the row's canonical NDJSON line takes n bytes
    body = lambda n: json.dumps({"title": "Rows", "rows": [{"a": "x" * (n - 8)}]})  # noqa: E731
    ids = {"1 MiB - 1": api_job(ctx, ndjson_line(MAX_ROW - 1), "application/x-ndjson"),
           "1 MiB": api_job(ctx, ndjson_line(MAX_ROW), "application/x-ndjson"),
           "1 MiB of 0.1s": api_job(ctx, reals, "application/x-ndjson"),
           "a JSON row of 1 MiB": api_job(ctx, body(MAX_ROW), "application/json", query=""),
           "1 MiB, queued directly": pdf_job(ctx, "spool:", {"title": "At"}, ndjson_line(MAX_ROW),
                                             "ndjson"),
           "1 MiB of 0.1s, queued directly": pdf_job(ctx, "spool:", {"title": "At"}, reals,
                                                     "ndjson")}
    for k, jid in ids.items():
        pdf_ok(ctx, "spool:", jid, 1, ["0.10000000000000001" if "0.1" in k else "x" * 40], k)
    api_refuses(ctx, ndjson_line(MAX_ROW + 1), "application/x-ndjson",
                f"NDJSON line 1 is longer than {MAX_ROW} bytes")
    api_refuses(ctx, body(MAX_ROW + 1), "application/json", f"more than {MAX_ROW} bytes",
                query="")
    past = {"LF": ndjson_line(MAX_ROW + 1), "CRLF": ndjson_line(MAX_ROW + 1, "\r\n"),
            "no final line end": ndjson_line(MAX_ROW + 1, "")}
    ids = {k: pdf_job(ctx, "spool:", {"title": "Past"}, v, "ndjson") for k, v in past.items()}
    for k, jid in ids.items():
        pdf_fails(ctx, "spool:", jid, "invalid_input",
                  f"line 1: the row is longer than {MAX_ROW} bytes", f"1 MiB + 1, {k}")
    # with CRLF the line end is not counted either (spool-api writes NDJSON with LF)
    pdf_ok(ctx, "spool:", pdf_job(ctx, "spool:", {"title": "CRLF"},
                                  ndjson_line(MAX_ROW, "\r\n"), "ndjson"), 1, ["x" * 40], "CRLF")


@suite.test
def test_columns_that_fit_the_page_pass_api_and_worker_one_more_fails_both(ctx):
    """As many columns as fit across the page at SP_EXPORT_MIN_COLUMN (32 on A4
    landscape), named by a CSV header, by the first NDJSON object's keys or given as
    params.columns, pass spool-api and make a one-page PDF whose text shows every column;
    one more is refused by both (it would print no text), and past the absolute limit
    of 256 columns both refuse the header itself."""
    fit = 32  # sp_export_columns_fit(A4, landscape)
    land = "title=Limits&orientation=landscape"

    def csv(n):
        return "".join(",".join(f"{p}{i}" for i in range(n)) + "\n" for p in ("c", ""))

    def nd(n):
        return json.dumps({f"c{i}": i for i in range(n)}) + "\n"

    def given(n):
        return {"title": "Given", "orientation": "landscape",
                "columns": [{"key": f"c{i}"} for i in range(n)], "rows": [list(range(n))]}

    params = {"title": "At", "orientation": "landscape"}
    ids = {"CSV fit-1": api_job(ctx, csv(fit - 1), query=land),
           "CSV fit": api_job(ctx, csv(fit), query=land),
           "NDJSON fit": api_job(ctx, nd(fit), "application/x-ndjson", query=land),
           "params.columns fit": api_job(ctx, json.dumps(given(fit)), "application/json",
                                         query=""),
           "CSV fit, queued directly": pdf_job(ctx, "spool:", params, csv(fit)),
           "NDJSON fit, queued directly": pdf_job(ctx, "spool:", params, nd(fit), "ndjson")}
    for k, jid in ids.items():
        last = str((fit - 2) if k.startswith("CSV fit-1") else (fit - 1))
        rec, text = pdf_ok(ctx, "spool:", jid, 1, [], k)
        eq(rec["metadata"]["pages"], 1, f"{k}: pages")
        assert last in text.split(), f"{k}: the last column's value {last} is not shown"
    api_refuses(ctx, csv(fit + 1), "text/csv", "columns fit across", query=land)
    api_refuses(ctx, nd(fit + 1), "application/x-ndjson", "columns fit across", query=land)
    api_refuses(ctx, json.dumps(given(fit + 1)), "application/json", "columns fit across",
                query="")
    api_refuses(ctx, csv(MAX_COLUMNS + 1), "text/csv", f"more than {MAX_COLUMNS} fields",
                query=land)
    g = given(fit + 1)
    past = [(pdf_job(ctx, "spool:", params, csv(fit + 1)), "invalid_input",
             f"{fit + 1} columns do not fit across an A4 landscape page: at most {fit} do"),
            (pdf_job(ctx, "spool:", params, nd(fit + 1), "ndjson"), "invalid_input",
             f"{fit + 1} columns do not fit across an A4 landscape page"),
            (pdf_job(ctx, "spool:", {"title": "Given", "orientation": "landscape",
                                     "columns": g["columns"]},
                     json.dumps(g["rows"][0]) + "\n", "ndjson"), "invalid_input",
             f"{fit + 1} columns do not fit across an A4 landscape page"),
            (pdf_job(ctx, "spool:", params, csv(MAX_COLUMNS + 1)), "invalid_input",
             f"line 1: the header has {MAX_COLUMNS + 1} columns; at most {MAX_COLUMNS}"),
            (pdf_job(ctx, "spool:", params, csv(fit) + "1," * fit + "1\n"),
             "invalid_input", f"line 3: the row has {fit + 1} fields, expected {fit} as in the "
             f"header")]
    for jid, code, words in past:
        pdf_fails(ctx, "spool:", jid, code, words, words)


READ_SIZE = 64 * 1024  # spool-pdf reads datasets in blocks of this size


def across_reads(fmt, end, at, marker=""):
    """A dataset whose row ending `at` (the offset of its line end) falls where the line
    end straddles spool-pdf's 64 KiB reads, then 20 more rows: (data, rows, lines)."""
    def row(i, n):  # n bytes
        if fmt == "csv":
            return (f"r{i} " + "x" * n)[:n - len(marker.encode())] + marker
        text = (f"r{i} " + "x" * n)[:n - 8 - len(marker.encode())] + marker
        return '{"a":"' + text + '"}'
    data = ("a" + end) if fmt == "csv" else ""
    i = 0
    while len(data.encode()) + 200 < at:
        data += row(i, 60) + end
        i += 1
    data += row(i, at - len(data.encode())) + end
    assert len(data.encode()) == at + len(end.encode()), (len(data.encode()), at)
    for j in range(i + 1, i + 21):
        data += row(j, 60) + end
    rows = i + 21
    return data, rows, rows + (1 if fmt == "csv" else 0)


@suite.test
def test_line_ends_and_characters_across_the_64_kib_read_blocks(ctx):
    """A CRLF, a lone CR or a two-byte character split between two of spool-pdf's reads:
    every row is read once, line numbers stay right (an error after the split names its
    true line), and the character is whole."""
    jobs = []
    for fmt, end in (("csv", "\r\n"), ("csv", "\r"), ("ndjson", "\r\n")):
        for at in (READ_SIZE - 2, READ_SIZE - 1, READ_SIZE):
            data, rows, lines = across_reads(fmt, end, at)
            bad = "1,2" + end if fmt == "csv" else "{bad" + end
            what = f"{fmt} {end!r} at {at}"
            jobs.append((what, rows, None, pdf_job(ctx, "spool:", {"title": "R"}, data, fmt)))
            jobs.append((what + " then a bad line", None, lines + 1,
                         pdf_job(ctx, "spool:", {"title": "R"}, data + bad, fmt)))
    for fmt, after in (("csv", 0), ("ndjson", 2)):  # "é" as bytes READ_SIZE - 1 and READ_SIZE
        data, rows, _ = across_reads(fmt, "\n", READ_SIZE + 1 + after, marker=" Zé")
        assert data.encode()[READ_SIZE - 1:READ_SIZE + 1] == "é".encode(), "é straddles"
        jobs.append((f"{fmt} é across reads", rows, None,
                     pdf_job(ctx, "spool:", {"title": "R"}, data, fmt)))
    for what, rows, bad_line, jid in jobs:
        if bad_line is None:
            _, text = pdf_ok(ctx, "spool:", jid, rows, [], what)
            if "é" in what:
                assert " Zé" in text and "\ufffd" not in text, f"{what}: the é is whole"
        else:
            pdf_fails(ctx, "spool:", jid, "invalid_input", f"line {bad_line}: ", what)


# ---- spool-pdf: its own settings --------------------------------------------------------

@suite.test
def test_row_bytes_set_low_counts_every_format_and_line_end_alike(ctx):
    """SPOOL_PDF_MAX_ROW_BYTES at its least, 1024: a CSV record, an NDJSON line or a JSON
    array element of 1023 or 1024 bytes renders whatever ends its line; 1025 fails."""
    limit = 1024
    w = pdf_worker(ctx, "rowbytes:", SPOOL_PDF_MAX_ROW_BYTES=limit, SPOOL_CONCURRENCY=2)
    try:
        forms = {
            "CSV LF": ("csv", lambda n: csv_record(n, "\n")),
            "CSV CRLF": ("csv", lambda n: csv_record(n, "\r\n")),
            "CSV CR": ("csv", lambda n: csv_record(n, "\r")),
            "CSV no final line end": ("csv", lambda n: csv_record(n, "\n")[:-1]),
            "NDJSON LF": ("ndjson", lambda n: ndjson_line(n)),
            "NDJSON CRLF": ("ndjson", lambda n: ndjson_line(n, "\r\n")),
            "JSON array": ("json", lambda n: "[\n" + ndjson_line(n, "") + "\n]\n"),
        }
        jobs = [(k, n, pdf_job(ctx, "rowbytes:", {"title": k}, make(n), fmt))
                for k, (fmt, make) in forms.items() for n in (limit - 1, limit, limit + 1)]
        for k, n, jid in jobs:
            what = f"{k}, {n} bytes"
            if n <= limit:
                pdf_ok(ctx, "rowbytes:", jid, 1, ["x" * 40], what)
            else:
                line = 1 if k.startswith("NDJSON") else 2
                pdf_fails(ctx, "rowbytes:", jid, "invalid_input",
                          f"line {line}: the row is longer than {limit} bytes", what)
    finally:
        stop(w)


@suite.test
def test_rows_limit_at_minus_one_at_and_past(ctx):
    """SPOOL_PDF_MAX_ROWS=100: 99 and 100 rows render, 101 fail as too large."""
    w = pdf_worker(ctx, "rows:", SPOOL_PDF_MAX_ROWS=100)
    try:
        ids = {n: pdf_job(ctx, "rows:", {"title": f"{n} rows"},
                          "n,label\n" + "".join(f"{i},row {i}\n" for i in range(1, n + 1)))
               for n in (99, 100, 101)}
        for n in (99, 100):
            pdf_ok(ctx, "rows:", ids[n], n, [f"row {n}"], f"{n} rows")
        pdf_fails(ctx, "rows:", ids[101], "too_large",
                  "export too large: the dataset has more than 100 rows, the limit of this "
                  "worker", "101 rows")
    finally:
        stop(w)


def numbers_per_page(path, pages):
    counts = []
    for p in range(1, pages + 1):
        counts.append(sum(1 for line in pdftext(path, p).splitlines()
                          if re.fullmatch(r"\s*\d+\s*", line)))
    return counts


@suite.test
def test_pages_limit_at_minus_one_at_and_past(ctx):
    """SPOOL_PDF_MAX_PAGES=2: one page, two full pages, and one row more (a third page)."""
    # How many one-line rows a page holds (the first has the title): from a PDF
    # rendered without the limit.
    params = {"title": "Pages", "columns": [{"key": "n", "label": "N"}]}
    data = lambda n: "n\n" + "".join(f"{i}\n" for i in range(1, n + 1))  # noqa: E731
    rec, _ = pdf_ok(ctx, "spool:", pdf_job(ctx, "spool:", params, data(300)), 300)
    jid = rec["id"]
    per = numbers_per_page(blob_path(ctx, jid, "export.pdf"), 3)
    assert per[0] < per[1] == per[2], f"rows per page {per}"
    w = pdf_worker(ctx, "pages:", SPOOL_PDF_MAX_PAGES=2)
    try:
        cases = {1: per[0], 2: per[0] + per[1], 3: per[0] + per[1] + 1}
        ids = {p: pdf_job(ctx, "pages:", params, data(n)) for p, n in cases.items()}
        for p in (1, 2):
            rec, _ = pdf_ok(ctx, "pages:", ids[p], cases[p], [f"Page {p} of {p}"], f"{p} pages")
            eq(rec["metadata"]["pages"], p, "pages")
        pdf_fails(ctx, "pages:", ids[3], "too_large",
                  "export too large: the table needs more than 2 pages (3 so far), the limit of "
                  "this worker", "3 pages")
    finally:
        stop(w)


@suite.test
def test_memory_limit_at_the_peak_passes_one_byte_less_fails(ctx):
    """SPOOL_PDF_MAX_MEMORY set to exactly what an export needs (the peak the worker logs,
    above the least setting, 1M) lets it through; one byte less fails it as too large."""
    params = {"title": "Memory", "columns": [{"key": "n"}]}
    data = "n\n" + "".join(f"{i}\n" for i in range(150000))
    jid = pdf_job(ctx, "spool:", params, data)
    rec, _ = pdf_ok(ctx, "spool:", jid, 150000, ["149999"], "unlimited")

    def peak():
        lines = [line for line in ctx.pdf.output().splitlines()
                 if jid in line and "exported" in line]
        return lines and int(re.search(r"PDF memory peak (\d+) bytes", lines[0]).group(1))
    need = wait_until(peak, 10, what="the export's log line")
    assert need > 1 * MiB, f"the export needs {need} bytes, under the least limit"
    for limit in (need, need - 1):
        w = pdf_worker(ctx, "memory:", SPOOL_PDF_MAX_MEMORY=limit)
        try:
            jid = pdf_job(ctx, "memory:", params, data)
            if limit == need:
                got, _ = pdf_ok(ctx, "memory:", jid, 150000, ["149999"], "at the peak")
                eq(got["metadata"], rec["metadata"], "the same document")
            else:
                pdf_fails(ctx, "memory:", jid, "too_large",
                          f"export too large: the document needs more than {limit} bytes of "
                          "memory", "one byte under the peak")
        finally:
            stop(w)


@suite.test
def test_input_limit_for_blobs_and_every_kind_of_download(ctx):
    """SPOOL_PDF_MAX_INPUT=8K: a dataset of 8191 or 8192 bytes renders, 8193 fails as too
    large, whether it is in the blob store or downloaded with a Content-Length, chunked,
    ended by closing the connection, or gzip-encoded (the decoded size counts)."""
    limit = 8192
    for n in (limit - 1, limit, limit + 1):
        eq(len(csv_of_size(n)), n, "dataset size")
        write_www(ctx, f"in-{n}.csv", csv_of_size(n))
    w = pdf_worker(ctx, "input:", SPOOL_PDF_MAX_INPUT="8K", SPOOL_CONCURRENCY=2)
    try:
        jobs = []
        for n in (limit - 1, limit, limit + 1):
            jobs.append((f"blob of {n}", n,
                         pdf_job(ctx, "input:", {"title": "Blob"}, csv_of_size(n))))
            for how in ("", "chunked/", "close/", "gzip/"):
                url = f"{ctx.base}/{how}in-{n}.csv"
                jobs.append((f"{how or 'length/'}{n}", n, pdf_job(
                    ctx, "input:", {"title": "URL"}, inp={"url": url, "format": "csv"})))
        for what, n, jid in jobs:
            if n <= limit:
                rows = csv_of_size(n).count("\n") - 1
                pdf_ok(ctx, "input:", jid, rows, ["1234"], what)
            elif what.startswith("blob"):
                pdf_fails(ctx, "input:", jid, "too_large",
                          f"the dataset is {n} bytes, the limit is {limit}", what)
            else:
                pdf_fails(ctx, "input:", jid, "too_large",
                          f"is larger than the limit of {limit} bytes", what)
    finally:
        stop(w)


@suite.test
def test_cell_lines_limit_cuts_the_line_past_it(ctx):
    """SPOOL_PDF_CELL_LINES=2: a cell of one or two lines shows whole, of three is cut
    after the second, which ends in an ellipsis."""
    w = pdf_worker(ctx, "lines:", SPOOL_PDF_CELL_LINES=2)
    try:
        rows = [{"t": "one-A"}, {"t": "one-B\ntwo-B"}, {"t": "one-C\ntwo-C\nthree-C"}]
        jid = pdf_job(ctx, "lines:", {"title": "Lines"},
                      "".join(json.dumps(r) + "\n" for r in rows), "ndjson")
        _, text = pdf_ok(ctx, "lines:", jid, 3, ["one-A", "one-B", "two-B", "one-C", "two-C…"])
        assert "three-C" not in text, "the third line is cut"
        eq(text.count("…"), 1, "one ellipsis")
    finally:
        stop(w)


@suite.test
def test_settings_past_their_range_stop_the_worker_at_start(ctx):
    """A limit's own bounds: the least and most values start a worker, one past refuses
    to start (exit 2) naming the setting."""
    cases = [("spool-pdf", "SPOOL_PDF_CELL_LINES", ("1", "50"), ("0", "51")),
             ("spool-pdf", "SPOOL_PDF_MAX_ROW_BYTES", ("1024", "1G"), ("1023", "1073741825")),
             ("spool-pdf", "SPOOL_PDF_MAX_MEMORY", ("1M",), (str(1 * MiB - 1),)),
             ("spool-pdf", "SPOOL_PDF_MAX_INPUT", ("1",), ("0",)),
             ("spool-video", "SPOOL_FETCH_MAX_REDIRECTS", ("0", "50"), ("51", "-1"))]
    started = []
    for prog, var, good, bad in cases:
        for v in bad:
            p = subprocess.run([os.path.join(BIN, prog)], env=dict(os.environ, **worker_env(
                ctx, "range:", **{var: v})), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=30)
            eq(p.returncode, 2, f"{var}={v}: exit code ({p.stdout.decode()[-300:]})")
            assert var in p.stdout.decode(), f"{var}={v}: {p.stdout.decode()!r}"
        for v in good:
            started.append((f"{var}={v}", Proc([os.path.join(BIN, prog)], name=prog,
                                                env=worker_env(ctx, "range:", **{var: v}),
                                                logdir=suite.tmp)))
    try:
        for what, w in started:
            wait_until(lambda: "ready:" in w.output() or not w.alive(), 20 * SLOW, 0.05,
                       what=f"a worker with {what} to start")
            assert w.alive(), f"{what}: {w.output()[-500:]}"
    finally:
        for _, w in started:
            w.signal(signal.SIGTERM)
        for what, w in started:
            eq(w.wait(30), 0, f"{what}: exit code")


@suite.test
def test_title_author_key_and_label_take_4000_bytes_not_4001(ctx):
    """spool-api allows 1000 bytes; spool-pdf, whose limit is what was queued, 4000."""
    jobs = []
    for n in (TEXT_MAX - 1, TEXT_MAX, TEXT_MAX + 1):
        t = "T" * n
        jobs += [("title", n, pdf_job(ctx, "spool:", {"title": t}, "a\n1\n")),
                 ("author", n, pdf_job(ctx, "spool:", {"title": "A", "author": t}, "a\n1\n")),
                 ("label", n, pdf_job(ctx, "spool:", {"title": "L", "columns": [
                     {"key": "a", "label": t}]}, "a\n1\n")),
                 ("key", n, pdf_job(ctx, "spool:", {"title": "K", "columns": [{"key": t}]},
                                    t + "\nvalue\n"))]
    for field, n, jid in jobs:
        what = f"{field} of {n} bytes"
        if n <= TEXT_MAX:
            rec, text = pdf_ok(ctx, "spool:", jid, 1, ["TTTTTTTTTT"] if field != "author" else [],
                               what)
            if field in ("title", "label"):  # at most three lines, the last cut short
                assert "TTTT…" in text, f"{what}: cut with an ellipsis"
            if field == "author":
                eq(pdfinfo(blob_path(ctx, jid, "export.pdf"))["Author"].strip(), "T" * n, what)
        else:
            where = f"params.columns[0].{field}" if field in ("key", "label") else f"params.{field}"
            pdf_fails(ctx, "spool:", jid, "invalid_params", f"{where} is too long or holds a NUL",
                      what)


def padded_url(base, path, n):
    """base + path + a query string padding the URL to exactly n bytes."""
    url = base + path + "?pad="
    return url + "p" * (n - len(url))


@suite.test
def test_source_url_length_blob_name_length_and_redirects(ctx):
    """A source_url of 2048 bytes is fetched, 2049 is refused; a blob name of 64
    characters is read, 65 is refused; five redirects are followed, six are not."""
    write_www(ctx, "small.csv", "a\nsmall\n")
    cases = [
        ("URL of 2048 bytes", pdf_job(ctx, "spool:", {"title": "U"}, inp={
            "url": padded_url(ctx.base, "/small.csv", URL_MAX), "format": "csv"}), None, None),
        ("URL of 2049 bytes", pdf_job(ctx, "spool:", {"title": "U"}, inp={
            "url": padded_url(ctx.base, "/small.csv", URL_MAX + 1), "format": "csv"}),
         "invalid_input", "input.url must be an http or https URL"),
        ("blob name of 63", pdf_job(ctx, "spool:", {"title": "B"}, "a\nsmall\n",
                                    blob="b" * (BLOB_NAME_MAX - 1)), None, None),
        ("blob name of 64", pdf_job(ctx, "spool:", {"title": "B"}, "a\nsmall\n",
                                    blob="b" * BLOB_NAME_MAX), None, None),
        ("blob name of 65", pdf_job(ctx, "spool:", {"title": "B"}, inp={
            "blob": "b" * (BLOB_NAME_MAX + 1), "format": "csv"}),
         "invalid_input", "input.blob must be a blob name"),
    ]
    for k in (4, 5, 6):
        cases.append((f"{k} redirects", pdf_job(ctx, "spool:", {"title": "R"}, inp={
            "url": f"{ctx.base}/redirect/{k}/small.csv", "format": "csv"}),
            "fetch_failed" if k > 5 else None, "too many redirects"))
    for what, jid, code, words in cases:
        if code is None:
            pdf_ok(ctx, "spool:", jid, 1, ["small"], what)
        else:
            pdf_fails(ctx, "spool:", jid, code, words, what)


# ---- spool-video ------------------------------------------------------------------------

def clip_of_size(src, n):
    """src (an MP4) with a `free` box appended so that it takes exactly n bytes."""
    with open(src, "rb") as f:
        data = f.read()
    pad = n - len(data)
    assert pad >= 8, "the clip is too big for the padding"
    return data + pad.to_bytes(4, "big") + b"free" + b"\0" * (pad - 8)


def video_done(q, job_id, timeout=60):
    return q.wait_state(job_id, ("succeeded", "failed", "retrying", "cancelled"), timeout * SLOW)


def video_ok(ctx, q, job_id, what):
    rec = video_done(q, job_id)
    eq((rec["state"], rec["attempts"], rec["error"]), ("succeeded", 1, None), f"{what}: outcome")
    probe = ffprobe(blob_path(ctx, job_id, "video.mp4"))
    eq([s["codec_name"] for s in probe["streams"]], ["h264", "aac"], f"{what}: streams")
    return rec


def video_fails(ctx, q, job_id, code, words, what):
    rec = video_done(q, job_id)
    err = rec["error"] or {}
    eq((rec["state"], rec["attempts"], err.get("code"), err.get("retryable")),
       ("failed", 1, code, False), f"{what}: outcome ({err.get('message')})")
    assert words in err["message"], f"{what}: {err['message']!r} does not say {words!r}"
    for name in ("source", "video.mp4"):
        assert not os.path.exists(blob_path(ctx, job_id, name)), f"{what}: no {name}"


@suite.test
def test_video_fetch_limit_with_and_without_a_content_length(ctx):
    """SPOOL_FETCH_MAX_BYTES=N: a source of N - 1 or N bytes is transcoded, N + 1 fails as
    too large, whether the server sends a Content-Length, chunks, closes the connection
    at the end, or gzip-encodes (the decoded size counts)."""
    src = make_clip(os.path.join(suite.tmp, "clip.mp4"), seconds=0.5, size="160x120")
    limit = os.path.getsize(src) + 4096
    for n in (limit - 1, limit, limit + 1):
        write_www(ctx, f"clip-{n}.mp4", clip_of_size(src, n))
    w = video_worker(ctx, "vfetch:", SPOOL_FETCH_MAX_BYTES=limit)
    q = Queue(ctx.redis, "vfetch:")
    params = {"preset": "mp4-480p", "thumbnail": False}
    try:
        jobs = [(f"{how or 'length/'}{n}", n, q.enqueue("video", "video.transcode", params, 3,
                                                         {"url": f"{ctx.base}/{how}clip-{n}.mp4"}))
                for n in (limit - 1, limit, limit + 1)
                for how in ("", "chunked/", "close/", "gzip/")
                if n != limit - 1 or how == ""]
        for what, n, jid in jobs:
            if n <= limit:
                video_ok(ctx, q, jid, what)
            else:
                video_fails(ctx, q, jid, "too_large", f"larger than the limit of {limit} bytes",
                            what)
    finally:
        stop(w)


@suite.test
def test_video_source_url_length_and_redirects(ctx):
    """SPOOL_FETCH_MAX_REDIRECTS=2: two redirects are followed, three are not; a
    source_url of 2048 bytes is fetched, 2049 is refused."""
    src = make_clip(os.path.join(suite.tmp, "short.mp4"), seconds=0.5, size="160x120")
    shutil.copy(src, os.path.join(ctx.www, "short.mp4"))
    w = video_worker(ctx, "vredir:", SPOOL_FETCH_MAX_REDIRECTS=2)
    q = Queue(ctx.redis, "vredir:")
    params = {"preset": "mp4-480p", "thumbnail": False}
    try:
        urls = {"1 redirect": f"{ctx.base}/redirect/1/short.mp4",
                "2 redirects": f"{ctx.base}/redirect/2/short.mp4",
                "3 redirects": f"{ctx.base}/redirect/3/short.mp4",
                "URL of 2048 bytes": padded_url(ctx.base, "/short.mp4", URL_MAX),
                "URL of 2049 bytes": padded_url(ctx.base, "/short.mp4", URL_MAX + 1)}
        ids = {k: q.enqueue("video", "video.transcode", params, 3, {"url": u})
               for k, u in urls.items()}
        for k in ("1 redirect", "2 redirects", "URL of 2048 bytes"):
            video_ok(ctx, q, ids[k], k)
        video_fails(ctx, q, ids["3 redirects"], "fetch_failed", "too many redirects", "3 redirects")
        video_fails(ctx, q, ids["URL of 2049 bytes"], "fetch_failed", "is not an http or https URL",
                    "URL of 2049 bytes")
    finally:
        stop(w)


if __name__ == "__main__":
    sys.exit(suite.run(setup=Ctx, teardown=teardown))

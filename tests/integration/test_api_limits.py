#!/usr/bin/env python3
"""Every size limit and buffer of spool-api at the limit minus one, at it, and past it,
and sweeps of body sizes across the inline-rows threshold: no valid request may get a
5xx, and what is refused is refused with the right status and the field it concerns.
The two sides of the inline threshold (and the largest inline record, all control
characters, which JSON escapes sixfold) are then rendered by a real spool-pdf, so both
storage paths are proven end to end.
"""
import json
import os
import random
import socket
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Proc, Redis, Suite, eq, wait_until  # noqa: E402
from test_api import ApiServer, connect, multipart, post_raw, read_response  # noqa: E402

INLINE = 16 * 1024          # SPOOL_INLINE_DATASET_MAX (the default)
JSON_MAX = 256 * 1024       # SPOOL_MAX_JSON_BYTES for this suite
UPLOAD_MAX = 1024 * 1024    # SPOOL_MAX_UPLOAD_BYTES for this suite
ROW_MAX = 1024 * 1024       # SP_EXPORT_MAX_ROW_BYTES
COLUMNS_MAX = 256           # SP_EXPORT_MAX_COLUMNS
VIDEO_JSON_MAX = 64 * 1024  # a /v1/videos JSON request

suite = Suite("api_limits")


def setup():
    redis = Redis()
    api = ApiServer(suite, redis, {"SPOOL_MAX_JSON_BYTES": str(JSON_MAX),
                                   "SPOOL_MAX_UPLOAD_BYTES": str(UPLOAD_MAX),
                                   "SPOOL_QUEUE_LIMIT": "0"})
    return {"redis": redis, "api": api}


def teardown(ctx):
    eq(ctx["api"].stop(), 0, "spool-api exit code after SIGTERM")


def post(api, path, body, ctype="application/json", headers=None):
    h = {"Content-Type": ctype}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return api.http.post(path, body, headers=h)


def post_chunked(api, path, body, ctype="application/json"):
    """The same body without Content-Length, in 16 KiB chunks: (status, json)."""
    s = connect(api)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
              "Transfer-Encoding: chunked\r\n\r\n".encode())
    try:
        for i in range(0, len(body), 16384):
            part = body[i:i + 16384]
            s.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, _, data = read_response(s)
    s.close()
    return status, json.loads(data)


def ok(r, what):
    if r.status != 202:
        raise AssertionError(f"{what}: expected 202, got {r.status} {r.body[:300]!r}")
    return r.json()


def refused(r, status, field=None, what=""):
    eq(r.status, status, f"{what} status ({r.body[:200]!r})")
    err = r.json()["error"]
    if field is not None:
        eq(err.get("field"), field, f"{what} field")
    return err


def rows_of_ndjson_size(n, fill="x"):
    """Rows whose canonical NDJSON takes exactly n bytes (n >= 9): {"t":"..."} lines of up
    to 1000 bytes each, their text as much of `fill` as fits (JSON may write a character
    of it in several bytes) and 'x' for the rest."""
    cost = len(json.dumps(fill, ensure_ascii=False).encode()) - 2
    rows = []
    while n > 0:
        take = min(n, 1000)
        if n - take and n - take < 9:
            take = n - 9
        room = take - 9  # {"t":""} and the newline
        k = room // cost
        rows.append({"t": fill * k + "x" * (room - k * cost)})
        n -= take
    return rows


def canonical(rows):
    return "".join(json.dumps(r, separators=(",", ":"), ensure_ascii=False) + "\n" for r in rows)


# ---- the inline threshold --------------------------------------------------------------

@suite.test
def test_inline_rows_at_the_threshold_stay_in_the_record_and_past_it_go_to_a_file(ctx):
    api = ctx["api"]
    for size in (INLINE - 1, INLINE, INLINE + 1):
        rows = rows_of_ndjson_size(size)
        want = canonical(rows)
        eq(len(want.encode()), size, "the rows' NDJSON size")
        job = ok(post(api, "/v1/exports", {"title": "t", "rows": rows}), f"rows of {size} B")
        if size <= INLINE:
            eq(job["input"], {"inline": want, "format": "ndjson", "bytes": size}, str(size))
            assert job["id"] not in api.job_dirs(), f"{size}: no file for inline rows"
        else:
            eq(job["input"], {"blob": "dataset", "format": "ndjson", "bytes": size}, str(size))
            with open(api.blob(job["id"], "dataset"), encoding="utf-8") as f:
                eq(f.read(), want, "the dataset blob")
        ctx.setdefault("threshold_jobs", []).append((job["id"], len(rows)))


@suite.test
def test_inline_rows_that_escape_twice_at_the_threshold(ctx):
    # 16 KiB of NDJSON made of '"' and '\\', which the job record's JSON string escapes
    # again: the record holds twice the threshold.
    api = ctx["api"]
    for fill in ('"', "\\", "\x01"):
        rows = rows_of_ndjson_size(INLINE, fill=fill)
        eq(len(canonical(rows).encode()), INLINE)
        job = ok(post(api, "/v1/exports", {"title": "esc", "rows": rows}), f"fill {fill!r}")
        eq(job["input"]["bytes"], INLINE)
        got = api.http.get(f"/v1/jobs/{job['id']}").json()
        eq(got["input"]["inline"], canonical(rows), f"fill {fill!r} read back")
        ctx.setdefault("threshold_jobs", []).append((job["id"], len(rows)))


@suite.test
def test_body_sizes_swept_across_the_inline_threshold_never_fail(ctx):
    # Every body from 1 KiB to 40 KiB in 512-byte steps, with mixed rows (objects and
    # arrays, UTF-8, escapes, numbers): all accepted, stored inline or as a file
    # according to their NDJSON size, never a 5xx.
    api = ctx["api"]
    rnd = random.Random(12)
    cols = [{"key": "a"}, {"key": "b", "format": "number"}, {"key": "c"}]
    words = ["Nord", "Süd", "tab\there", 'quote"s', "back\\slash", "€uro", "😀", "x" * 50]
    seen_inline = seen_file = 0
    for target in range(1024, 40 * 1024 + 1, 512):
        rows, size = [], 0
        while size < target:
            if rnd.random() < 0.5:
                row = {"a": rnd.choice(words), "b": rnd.randint(-10**9, 10**9), "c": None}
            else:
                row = [rnd.choice(words), rnd.random() * 1e6, rnd.choice([True, False])]
            rows.append(row)
            size += len(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode()) + 1
        r = post(api, "/v1/exports", {"title": "sweep", "columns": cols, "rows": rows})
        job = ok(r, f"body for {target} B of rows")
        nd = job["input"]["bytes"]
        if "inline" in job["input"]:
            assert nd <= INLINE, (target, nd)
            seen_inline += 1
        else:
            assert nd > INLINE and job["input"]["blob"] == "dataset", (target, job["input"])
            seen_file += 1
        # the rows as the worker will read them: one line per row, in order
        data = (job["input"]["inline"].encode() if "inline" in job["input"] else
                open(api.blob(job["id"], "dataset"), "rb").read())
        eq(data.count(b"\n"), len(rows), f"rows stored for {target}")
        eq(json.loads(data.split(b"\n")[0]), rows[0], "the first row, read back")
    assert seen_inline > 10 and seen_file > 10, (seen_inline, seen_file)


@suite.test
def test_threshold_jobs_render_in_a_real_pdf_worker(ctx):
    # Both storage paths (and the escaped record) end to end.
    api = ctx["api"]
    jobs = ctx["threshold_jobs"]
    api.redis.cli("DEL", f"{api.prefix}q:pdf:ready")
    for job_id, _ in jobs:
        api.redis.cli("RPUSH", f"{api.prefix}q:pdf:ready", job_id)
    w = Proc([os.path.join(BIN, "spool-pdf")],
             env={"SPOOL_REDIS_URL": api.redis.url, "SPOOL_DATA_DIR": api.data,
                  "SPOOL_LOG_LEVEL": "info"}, name="spool-pdf", logdir=suite.tmp)
    try:
        for job_id, nrows in jobs:
            def done(job_id=job_id):
                j = api.http.get(f"/v1/jobs/{job_id}").json()
                return j if j["state"] in ("succeeded", "failed") else None
            j = wait_until(done, 60, 0.1, f"job {job_id}")
            eq(j["state"], "succeeded", f"{job_id}: {j['error']}")
            eq(j["metadata"]["rows"], nrows, "rows rendered")
            pdf = api.http.get(f"/v1/jobs/{job_id}/outputs/export.pdf")
            eq(pdf.status, 200)
            assert pdf.body.startswith(b"%PDF-"), pdf.body[:10]
    finally:
        w.stop()


# ---- body limits ---------------------------------------------------------------------------

def padded_export(n):
    """A valid export body of exactly n bytes (padded with spaces)."""
    head = b'{"title":"pad","rows":[{"a":1}]}'
    return head + b" " * (n - len(head))


@suite.test
def test_json_body_at_the_limit_and_one_byte_past(ctx):
    api = ctx["api"]
    for n, want in ((JSON_MAX - 1, 202), (JSON_MAX, 202), (JSON_MAX + 1, 413)):
        r = post(api, "/v1/exports", padded_export(n))
        eq(r.status, want, f"{n} bytes with Content-Length")
        status, body = post_chunked(api, "/v1/exports", padded_export(n))
        eq(status, want, f"{n} bytes chunked")
        if want == 413:
            eq(body["error"]["code"], "payload_too_large")


@suite.test
def test_video_json_body_at_64k_and_past(ctx):
    # Refused bodies are 422 (a URL that long is invalid), but not 413, up to the limit.
    api = ctx["api"]
    for n, want in ((VIDEO_JSON_MAX - 1, 422), (VIDEO_JSON_MAX, 422), (VIDEO_JSON_MAX + 1, 413)):
        head = b'{"source_url":"http://example.com/a.mp4"}'
        body = head + b" " * (n - len(head))
        r = post(api, "/v1/videos", body)
        if want == 422:  # the padded body is valid: accepted
            want = 202
        eq(r.status, want, f"{n} bytes")


@suite.test
def test_upload_at_the_limit_and_one_byte_past(ctx):
    api = ctx["api"]
    for n, want in ((UPLOAD_MAX - 1, 202), (UPLOAD_MAX, 202), (UPLOAD_MAX + 1, 413)):
        body = os.urandom(n)
        status, _ = post_raw(api, "/v1/videos", body, "video/mp4")
        eq(status, want, f"raw upload of {n} bytes")
        status, _ = post_chunked(api, "/v1/videos", body, ctype="video/mp4")
        eq(status, want, f"chunked raw upload of {n} bytes")
    # a CSV body has the same limit
    header = b"a\n"
    for n, want in ((UPLOAD_MAX, 202), (UPLOAD_MAX + 1, 413)):
        line = b"x" * 1000 + b"\n"
        body = header + line * ((n - len(header)) // len(line))
        body += b"y" * (n - len(body) - 1) + b"\n"
        eq(len(body), n)
        status, _ = post_raw(api, "/v1/exports?title=t", body, "text/csv")
        eq(status, want, f"CSV of {n} bytes")


# ---- dataset limits, shared with spool-pdf ------------------------------------------------

# Columns must fit across the page at SP_EXPORT_MIN_COLUMN (24 pt): 21 on A4 portrait, 32
# on A4 landscape, 22 and 30 on Letter. Past 256 a CSV header is refused while it streams.
FIT = {("A4", "portrait"): 21, ("A4", "landscape"): 32, ("Letter", "portrait"): 22,
       ("Letter", "landscape"): 30}


@suite.test
def test_csv_columns_at_the_limit_and_past(ctx):
    api = ctx["api"]
    for (size, orient), fit in FIT.items():
        for n, want in ((fit - 1, 202), (fit, 202), (fit + 1, 422)):
            header = ",".join(f"c{i}" for i in range(n)) + "\n"
            row = ",".join(str(i) for i in range(n)) + "\n"
            r = post(api, f"/v1/exports?title=wide&page_size={size}&orientation={orient}",
                     (header + row).encode(), ctype="text/csv")
            eq(r.status, want, f"{n} CSV columns on {size} {orient} ({r.body[:200]!r})")
            if want == 422:
                assert f"at most {fit} columns fit across" in r.json()["error"]["message"]
    header = ",".join(f"c{i}" for i in range(COLUMNS_MAX + 1)) + "\n"
    r = post(api, "/v1/exports?title=wide&orientation=landscape", header.encode(), ctype="text/csv")
    eq(r.status, 422, "257 CSV columns")
    assert "more than 256 fields" in r.json()["error"]["message"], r.json()


@suite.test
def test_given_columns_and_first_row_keys_at_the_limit_and_past(ctx):
    api = ctx["api"]
    for (size, orient), fit in FIT.items():
        page = {"page_size": size, "orientation": orient}
        for n, want in ((fit - 1, 202), (fit, 202), (fit + 1, 422)):
            what = f"{size} {orient}, {n}"
            cols = [{"key": f"c{i}"} for i in range(n)]
            r = post(api, "/v1/exports", dict(page, title="t", columns=cols, rows=[[0] * n]))
            eq(r.status, want, f"{what} given columns")
            if want == 422:
                eq(r.json()["error"]["field"], "columns")
            r = post(api, "/v1/exports", dict(page, title="t", rows=[{f"k{i}": i
                                                                      for i in range(n)}]))
            eq(r.status, want, f"{what}: a first row with {n} keys")
            if want == 422:
                eq(r.json()["error"]["field"], "rows[0]")
            nd = (json.dumps({f"k{i}": i for i in range(n)}) + "\n").encode()
            r = post(api, f"/v1/exports?title=t&page_size={size}&orientation={orient}", nd,
                     ctype="application/x-ndjson")
            eq(r.status, want, f"{what}: an NDJSON first row with {n} keys")


@suite.test
def test_dataset_rows_at_one_mib_and_past(ctx):
    api = ctx["api"]
    api_up = ctx.get("big_api")
    if api_up is None:  # the suite's upload limit is 1 MiB: a second API for this
        api_up = ApiServer(suite, ctx["redis"], {"SPOOL_MAX_JSON_BYTES": "4M"}, name="api-big")
        ctx["big_api"] = api_up
    for extra, want in ((-1, 202), (0, 202), (1, 422)):
        n = ROW_MAX + extra
        # a CSV record of n bytes (its line end not counted)
        rec = b"a,b\n" + b"1," + b"x" * (n - 2) + b"\n"
        r = post(api_up, "/v1/exports?title=t", rec, ctype="text/csv")
        eq(r.status, want, f"a CSV record of {n} bytes")
        # an NDJSON line of n bytes
        line = b'["' + b"x" * (n - 4) + b'"]\n'
        r = post(api_up, "/v1/exports?title=t&columns=" + urllib.parse.quote('[{"key":"a"}]'),
                 line, ctype="application/x-ndjson")
        eq(r.status, want, f"an NDJSON line of {n} bytes")
        # an inline row that takes n bytes as NDJSON
        r = post(api_up, "/v1/exports", {"title": "t", "rows": [{"t": "x" * (n - 8)}]})
        eq(r.status, want, f"an inline row of {n} bytes")
        if want == 422:
            eq(r.json()["error"]["field"], "rows[0]")


@suite.test
def test_text_fields_at_their_limits(ctx):
    api = ctx["api"]
    cases = [
        ("title", lambda n: {"title": "t" * n, "rows": [{"a": 1}]}, 1000, "title"),
        ("author", lambda n: {"title": "t", "author": "a" * n, "rows": [{"a": 1}]}, 1000,
         "author"),
        ("column key", lambda n: {"title": "t", "columns": [{"key": "k" * n}], "rows": []}, 256,
         "columns[0].key"),
        ("column label", lambda n: {"title": "t", "columns": [{"key": "k", "label": "l" * n}],
                                    "rows": []}, 1000, "columns[0].label"),
    ]
    for what, make, limit, field in cases:
        for n in (limit - 1, limit):
            ok(post(api, "/v1/exports", make(n)), f"{what} of {n} bytes")
        refused(post(api, "/v1/exports", make(limit + 1)), 422, field, f"{what} of {limit + 1}")
    # multi-byte characters count as bytes: 500 two-byte characters are 1000 bytes
    ok(post(api, "/v1/exports", {"title": "é" * 500, "rows": [{"a": 1}]}), "500 x é")
    refused(post(api, "/v1/exports", {"title": "é" * 500 + "x", "rows": [{"a": 1}]}), 422,
            "title")


@suite.test
def test_the_largest_valid_export_request_is_accepted(ctx):
    # As many columns as fit (32, A4 landscape) with the longest keys and labels, and
    # every other field at its longest: inside the members' budget and the body limit.
    api_big = ctx.get("big_api")
    n = FIT[("A4", "landscape")]
    cols = [{"key": f"{i:03d}" + "k" * 253, "label": "l" * 1000, "width": 100, "align": "right",
             "format": "number", "decimals": 2, "thousands": False} for i in range(n)]
    body = {"title": "t" * 1000, "author": "a" * 1000, "columns": cols, "rows": [],
            "page_size": "A4", "orientation": "landscape", "font": "mono", "priority": "high"}
    job = ok(post(api_big, "/v1/exports", body), "the largest request")
    eq(len(job["params"]["columns"]), n)


@suite.test
def test_request_parameters_at_their_limits(ctx):
    api = ctx["api"]
    # Idempotency-Key: 255 characters, not 256
    for n, want in ((254, 202), (255, 202), (256, 422)):
        r = post(api, "/v1/exports", {"title": "t", "rows": [{"a": 1}]},
                 headers={"Idempotency-Key": "k" * n})
        eq(r.status, want, f"Idempotency-Key of {n}")
    # source_url: 2048 bytes, not 2049
    for n, want in ((2047, 202), (2048, 202), (2049, 422)):
        url = "https://example.com/"
        url += "a" * (n - len(url) - 4) + ".csv"
        eq(len(url), n)
        r = post(api, "/v1/exports", {"title": "t", "source_url": url})
        eq(r.status, want, f"source_url of {n}")
        r = post(api, "/v1/videos", {"source_url": url})
        eq(r.status, want, f"video source_url of {n}")
    # ?filename= of a raw upload: 255 bytes
    for n, want in ((254, 202), (255, 202), (256, 422)):
        r = post(api, "/v1/videos?filename=" + "f" * n, b"\x00" * 100, ctype="video/mp4")
        eq(r.status, want, f"filename of {n}")
    # a multipart form field: 2049 bytes (the longest field, callback_url, is 2048)
    for n, want in ((2048, 422), (2049, 422), (2050, 422)):
        body, ct = multipart([("preset", "p" * n, None, None), ("file", b"x" * 100, "a.mp4",
                                                                 "video/mp4")])
        err = refused(post(api, "/v1/videos", body, ctype=ct), want, "preset", f"preset of {n}")
        if n <= 2049:
            assert "preset must be one of" in err["message"], err
        else:
            assert "longer than 2049 bytes" in err["message"], err
    # ?wait= up to SPOOL_MAX_WAIT (60 s)
    job = ok(post(api, "/v1/exports", {"title": "t", "rows": [{"a": 1}]}), "a job")
    etag = '"1"'
    r = api.http.get(f"/v1/jobs/{job['id']}?wait=61", headers={"If-None-Match": etag})
    refused(r, 422, "wait", "wait=61")
    r = api.http.get(f"/v1/jobs/{job['id']}?wait=60", headers={"If-None-Match": '"0"'})
    eq(r.status, 200, "wait=60 (answered at once: the ETag differs)")


@suite.test
def test_members_budget_and_nesting(ctx):
    api = ctx["api"]
    r = post(api, "/v1/exports", b'{"title":"t","columns":' + b"[" * 17 + b"]" * 17 + b"}")
    err = refused(r, 422, "columns", "17 levels")
    assert "nests deeper" in err["message"], err
    ok(post(api, "/v1/exports", {"title": "t", "rows": [{"a": 1}],
                                 "author": "a" * 1000}), "a normal request")


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

#!/usr/bin/env python3
"""The API's description of itself against the real spool-api: /openapi.json served
(open, cached, revalidated) and identical to api/openapi.json; `redocly lint` (the
pinned @redocly/cli in deps/npm, every rule an error) passes it and fails a broken
copy; the routes it describes are exactly the routes api/route.c's table serves, with
the same methods, and each answers; the error codes are api/reply.c's; real answers
(jobs, lists, queues, dead-letter sets, history, errors, and the workers list with a
real spool-pdf running a job) validate against its schemas with Debian's
python3-jsonschema; every dashboard address the description names serves the
dashboard; /docs/api serves api/openapi.html, which is what scripts/openapi-html.py
makes of the description now, under a CSP that allows nothing from elsewhere, and
headless Chromium draws it without a console message.

The event streams (SSE) are read as a client reads them: their events, gap notice and
heartbeats validate too, and a real webhook delivery matches the webhook described.
A route described before its branch lands goes on UNLANDED (a field on UNLANDED_FIELDS)
until the router serves it.
"""
import http.server as http_server
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, LOOPBACK_ALLOW, ROOT, Http, Proc, Redis, Suite, eq, wait_until  # noqa: E402
from sse_client import Sse  # noqa: E402
from test_api import ApiServer, Worker  # noqa: E402

suite = Suite("openapi")
SPEC_PATH = os.path.join(ROOT, "api", "openapi.json")
PAGE_PATH = os.path.join(ROOT, "api", "openapi.html")
NPM_DIR = os.environ.get("SPOOL_NPM_DIR", os.path.join(ROOT, "build", "npm"))
REDOCLY = os.path.join(NPM_DIR, "node_modules", "@redocly", "cli", "bin", "cli.js")
SYS_PYTHON = "/usr/bin/python3"  # Debian's, with python3-jsonschema (deps/debian.txt)
TOKEN = "openapi-test-token"
WEBHOOK_SECRET = "openapi-webhook-secret"
METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")

# Described, and served by branches not merged yet: path -> methods. Each must answer
# 404 no_such_route here; when its branch lands, take it off this list.
UNLANDED = {}

# A value for each path parameter: well-formed, naming nothing that exists (but the
# dashboard's files, which are all there is under /ui/assets).
SAMPLE = {"{id}": "0" + "a" * 35, "{name}": "video"}
SAMPLE_FOR = {"/ui/assets/{name}": {"{name}": "app.js"}}


def spec():
    with open(SPEC_PATH, encoding="utf-8") as f:
        return json.load(f)


def described():
    """{path: {METHOD}} of the description."""
    return {p: {m.upper() for m in item if m in METHODS} for p, item in spec()["paths"].items()}


def router_table():
    """{label: {METHOD}} from api/route.c's table (the labels are the paths)."""
    src = open(os.path.join(ROOT, "api", "route.c")).read()
    table = src[src.index("api__routes[API_R_COUNT] = {"):]
    table = table[:table.index("};")]
    out = {}
    for label, bits in re.findall(r'\[API_R_\w+\]\s*=\s*\{"([^"]+)",\s*([^}]+)\}', table):
        if label == "other":
            continue
        out[label] = {b.strip()[len("API_M_"):] for b in bits.split("|")}
    assert len(out) >= 10, f"parsed too few routes from api/route.c: {out}"
    return out


def concrete(path):
    out = path
    for k, v in dict(SAMPLE, **SAMPLE_FOR.get(path, {})).items():
        out = out.replace(k, v)
    assert "{" not in out, f"no sample value for a parameter of {path}"
    return out


def validate(pairs):
    """Validate each (schema name, instance) against the description's schemas with
    Debian's python3-jsonschema (Draft 2020-12, OpenAPI 3.1's dialect); a schema given
    as an object rather than a name may refer to the named ones. Returns one error
    message (or None) per pair."""
    code = r"""
import json, sys
import jsonschema
doc, pairs = json.load(sys.stdin)
out = []
for name, inst in pairs:
    own = name if isinstance(name, dict) else {"$ref": "#/components/schemas/" + name}
    schema = dict(own, **{"$schema": "https://json-schema.org/draft/2020-12/schema",
                          "components": doc["components"]})
    v = jsonschema.Draft202012Validator(schema)
    errs = sorted(v.iter_errors(inst), key=lambda e: list(e.absolute_path))
    out.append("; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errs[:3]) or None)
print(json.dumps(out))
"""
    p = subprocess.run([SYS_PYTHON, "-I", "-c", code], input=json.dumps([spec(), pairs]).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, ("jsonschema failed (python3-jsonschema is in deps/debian.txt): "
                               + p.stderr.decode())
    return json.loads(p.stdout)


def assert_valid(pairs):
    for (name, inst), err in zip(pairs, validate(pairs)):
        assert err is None, f"{json.dumps(name)[:200]} does not describe {json.dumps(inst)[:400]}: {err}"


def redocly(*args, cwd=None):
    assert os.path.exists(REDOCLY), (f"{REDOCLY} is missing: `make test-build` installs "
                                     "deps/npm (scripts/npm-deps.sh)")
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true",
               NO_COLOR="1")
    p = subprocess.run(["node", REDOCLY, *args], cwd=cwd or ROOT, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180)
    return p.returncode, p.stdout.decode(errors="replace")


def setup():
    redis = Redis()
    # loopback source_urls: a local server holds a job running for the workers test
    api = ApiServer(suite, redis, env={"SPOOL_API_TOKENS": TOKEN, **LOOPBACK_ALLOW,
                                       "SPOOL_WEBHOOK_SECRET": WEBHOOK_SECRET,
                                       "SPOOL_WEBHOOK_RETRY_BASE": "50ms",
                                       "SPOOL_WEBHOOK_RETRY_CAP": "200ms",
                                       "SPOOL_SSE_HEARTBEAT": "300ms"})
    authed = Http("127.0.0.1", api.port, token=TOKEN)
    return {"redis": redis, "api": api, "http": authed, "anon": api.http}


def teardown(ctx):
    ctx["api"].stop()
    ctx["redis"].destroy()


# ---- /openapi.json ------------------------------------------------------------------

@suite.test
def test_openapi_json_is_served_open_and_cached(ctx):
    anon = ctx["anon"]
    eq(anon.get("/v1/queues").status, 401, "a /v1 route without the token")
    r = anon.get("/openapi.json")
    eq(r.status, 200, "GET /openapi.json without a token")
    eq(r.headers.get("content-type"), "application/json")
    assert r.body == open(SPEC_PATH, "rb").read(), ("the served description is not "
                                                    "api/openapi.json (rebuild spool-api)")
    doc = r.json()
    eq(doc["openapi"], "3.1.0")
    assert "max-age=" in r.headers.get("cache-control", ""), r.headers
    etag = r.headers.get("etag", "")
    assert re.fullmatch(r'"[0-9a-f]{16}"', etag), f"ETag {etag!r}"
    again = anon.get("/openapi.json", headers={"If-None-Match": etag})
    eq(again.status, 304, "If-None-Match with the ETag")
    eq(again.body, b"", "a 304's body")
    eq(again.headers.get("etag"), etag)
    eq(anon.get("/openapi.json", headers={"If-None-Match": '"0000000000000000"'}).status, 200,
       "If-None-Match with another ETag")
    head = anon.request("HEAD", "/openapi.json")
    eq((head.status, head.body), (200, b""), "HEAD")
    eq(int(head.headers["content-length"]), len(r.body), "HEAD's Content-Length")
    post = anon.post("/openapi.json", body=b"")
    eq(post.status, 405, "POST /openapi.json")
    eq(post.headers.get("allow"), "GET, HEAD")


@suite.test
def test_redocly_lint_passes_the_description(ctx):
    rc, out = redocly("lint", "--config", "api/redocly.yaml", "api/openapi.json")
    eq(rc, 0, f"redocly lint:\n{out}")
    assert "valid" in out, out


@suite.test
def test_redocly_lint_fails_a_broken_description(ctx):
    """The same lint run fails on a dangling reference, an undeclared path parameter and
    an operation without a 4xx answer: it can fail, so its pass above means something."""
    breakages = {
        "dangling $ref": lambda d: d["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"].update({"$ref": "#/components/schemas/NoSuchThing"}),
        "undeclared path parameter": lambda d: d["paths"].__setitem__(
            "/v1/jobs/{other}", {"get": {"operationId": "x", "summary": "x", "tags": ["jobs"],
                                         "responses": {"200": {"description": "x"},
                                                       "404": {"description": "x"}}}}),
        "no 4xx answer": lambda d: d["paths"]["/v1/queues"]["get"]["responses"].pop("400")
        and d["paths"]["/v1/queues"]["get"]["responses"].pop("401"),
    }
    rules = {"dangling $ref": "no-unresolved-refs",
             "undeclared path parameter": "path-parameters-defined",
             "no 4xx answer": "operation-4xx-response"}
    with tempfile.TemporaryDirectory() as tmp:
        for what, breakit in breakages.items():
            d = spec()
            breakit(d)
            path = os.path.join(tmp, "broken.json")
            with open(path, "w") as f:
                json.dump(d, f)
            rc, out = redocly("lint", "--config", os.path.join(ROOT, "api", "redocly.yaml"), path)
            assert rc != 0, f"redocly lint passed a description with a {what}:\n{out}"
            assert rules[what] in out, f"{what}: {rules[what]} is not named:\n{out}"


# ---- routes -------------------------------------------------------------------------

@suite.test
def test_every_served_route_is_described_with_its_methods(ctx):
    served = router_table()
    desc = described()
    landed = {p: m for p, m in desc.items() if p not in UNLANDED}
    eq(sorted(set(served) - set(landed)), [], "routes api/route.c serves that are not described")
    eq(sorted(set(landed) - set(served)),
       [], "described routes api/route.c does not serve (and not in UNLANDED)")
    for path, methods in served.items():
        eq(sorted(landed[path]), sorted(methods), f"methods of {path}")
    for path, methods in UNLANDED.items():
        eq(sorted(desc.get(path, set())), sorted(methods), f"methods described for {path}")


def streams(path, method):
    """Whether the operation's 200 is an event stream (which does not end)."""
    op = spec()["paths"][path][method.lower()]
    return op["responses"].get("200", {}).get("$ref", "").endswith("/EventStream")


def open_stream(ctx, path, headers=None):
    """An event stream as a client opens it: its answer's head read."""
    return Sse(ctx["api"].port, path, headers=headers, token=TOKEN).read_head()


@suite.test
def test_every_described_route_is_served(ctx):
    http = ctx["http"]
    for path, methods in described().items():
        for m in sorted(methods):
            if streams(path, m):
                s = open_stream(ctx, concrete(path))
                s.close()
                code = s.json["error"]["code"] if s.json else None
                assert code != "no_such_route" and s.status != 405, f"{m} {path}: {s.status}"
                continue
            r = http.request(m, concrete(path))
            code = r.json()["error"]["code"] if r.body.startswith(b'{"error"') else None
            if path in UNLANDED:
                eq((r.status, code), (404, "no_such_route"),
                   f"{m} {path} answers now: take it off UNLANDED")
                continue
            assert code != "no_such_route", f"{m} {path}: {r}"
            assert r.status != 405, f"{m} {path}: {r}"


# Parameters and body fields described before their branch lands: not sent below.
UNLANDED_FIELDS = set()
# A valid value for each query parameter and form field the POSTs and lists describe.
VALUES = {"preset": "mp4-480p", "thumbnail": "on", "sprite": "off", "priority": "high", "filename": "clip.mp4",
          "title": "T", "author": "A", "columns": '[{"key":"a"}]', "page_size": "Letter",
          "orientation": "landscape", "font": "mono", "compression": "fast",
          "state": "queued", "type": "pdf.export", "queue": "pdf", "limit": "3", "wait": "0",
          "offset": "1", "callback_url": "https://example.com/hooks/spool", "delay": "90s",
          "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))}
# run_at and delay exclude each other: every query parameter is sent with run_at, and
# delay in a request of its own.
ALONE = ("delay",)


def query_params(path, method):
    """Names of the query parameters of an operation (its path's and its own)."""
    item = spec()["paths"][path]
    params = item.get("parameters", []) + item[method].get("parameters", [])
    out = []
    for p in params:
        if "$ref" in p:
            name = p["$ref"].rsplit("/", 1)[-1]
            p = spec()["components"]["parameters"][name]
        if p["in"] == "query" and p["name"] not in UNLANDED_FIELDS:
            out.append(p["name"])
    return out


@suite.test
def test_every_described_body_form_and_parameter_is_accepted(ctx):
    """Each Content-Type a POST describes is taken (no 415), a type it does not is
    refused with 415, and each query parameter, form field and JSON member described
    is known to the API (each request below is accepted)."""
    http = ctx["http"]
    doc = spec()
    # every body form
    bodies = {
        "/v1/videos": {
            "video/*": ("video/mp4", b"\x00" * 64),
            "application/octet-stream": ("application/octet-stream", b"\x00" * 64),
            "application/json": ("application/json", b'{"source_url":"https://example.com/a.mp4"}'),
            "multipart/form-data": ("multipart/form-data; boundary=XyZ",
                                    b'--XyZ\r\nContent-Disposition: form-data; name="file"; '
                                    b'filename="a.mp4"\r\nContent-Type: video/mp4\r\n\r\n'
                                    + b"\x00" * 64 + b"\r\n--XyZ--\r\n"),
        },
        "/v1/exports": {
            "application/json": ("application/json", b'{"title":"t","rows":[{"a":1}]}'),
            "text/csv": ("text/csv", b"a\n1\n"),
            "application/x-ndjson": ("application/x-ndjson", b'{"a":1}\n'),
            "application/ndjson": ("application/ndjson", b'{"a":1}\n'),
            "application/jsonl": ("application/jsonl", b'{"a":1}\n'),
            "application/x-jsonlines": ("application/x-jsonlines", b'{"a":1}\n'),
        },
    }
    for path, forms in bodies.items():
        described_types = set(doc["paths"][path]["post"]["requestBody"]["content"])
        eq(sorted(described_types), sorted(forms), f"body forms of {path}")
        for mt, (ctype, body) in forms.items():
            q = "?title=t" if path == "/v1/exports" and mt != "application/json" else ""
            r = http.post(path + q, body=body, headers={"Content-Type": ctype})
            eq(r.status, 202, f"POST {path} as {ctype}: {r}")
        r = http.post(path, body=b"x", headers={"Content-Type": "text/plain"})
        eq(r.status, 415, f"POST {path} as text/plain: {r}")
    # every query parameter, on the form that takes it
    raw = [k for k in query_params("/v1/videos", "post") if k not in ALONE]
    r = http.post("/v1/videos?" + urlencode({k: VALUES[k] for k in raw}), body=b"\x00" * 64,
                  headers={"Content-Type": "video/mp4"})
    eq(r.status, 202, f"a raw video with {raw}: {r}")
    eq((r.json()["params"]["preset"], r.json()["priority"], r.json()["callback_url"],
        r.json()["state"]), ("mp4-480p", "high", VALUES["callback_url"], "scheduled"))
    for k in ALONE:
        r = http.post(f"/v1/videos?{k}={VALUES[k]}", body=b"\x00" * 64,
                      headers={"Content-Type": "video/mp4"})
        eq((r.status, r.json()["state"]), (202, "scheduled"), f"a raw video with {k}")
    xq = [k for k in query_params("/v1/exports", "post") if k not in ALONE]
    r = http.post("/v1/exports?" + urlencode({k: VALUES[k] for k in xq}), body=b"a\n1\n",
                  headers={"Content-Type": "text/csv"})
    eq(r.status, 202, f"a CSV export with {xq}: {r}")
    eq((r.json()["params"]["page_size"], r.json()["state"]), ("Letter", "scheduled"))
    for k in ALONE:
        r = http.post(f"/v1/exports?title=t&{k}={VALUES[k]}", body=b"a\n1\n",
                      headers={"Content-Type": "text/csv"})
        eq((r.status, r.json()["state"]), (202, "scheduled"), f"a CSV export with {k}")
    # before: a cursor must be a job the list holds (this CSV export)
    values = dict(VALUES, before=r.json()["id"])
    lq = query_params("/v1/jobs", "get")
    r = http.get("/v1/jobs?" + urlencode({k: values[k] for k in lq}))
    eq(r.status, 200, f"GET /v1/jobs {lq}: {r}")
    dq = query_params("/v1/queues/{name}/dead", "get")
    r = http.get("/v1/queues/pdf/dead?" + urlencode({k: values[k] for k in dq}))
    eq(r.status, 200, f"GET /v1/queues/{{name}}/dead {dq}: {r}")
    for path in ("/v1/workers", "/v1/queues/{name}/history", "/v1/queues/{name}/dead/retry",
                 "/v1/queues/{name}/dead/purge"):
        method = "post" if path.endswith(("retry", "purge")) else "get"
        eq(query_params(path, method), [], f"{path} describes no query parameter")
        r = http.request(method.upper(), concrete(path) + "?x=1",
                         body={"all": True} if method == "post" else None)
        eq(r.status, 422, f"{path} with a parameter: {r}")
    r = http.get(f"/v1/jobs/{SAMPLE['{id}']}?" + urlencode({k: VALUES[k] for k in
                                                           query_params("/v1/jobs/{id}", "get")}))
    eq(r.status, 404, f"GET /v1/jobs/{{id}} with its parameters: {r}")
    eq(http.post("/v1/videos?colour=red", body=b"\x00", headers={"Content-Type": "video/mp4"}).status,
       422, "an undescribed parameter")
    # every multipart field, and every member of the JSON bodies
    fields = [f for f in doc["components"]["schemas"]["VideoMultipart"]["properties"]
              if f not in UNLANDED_FIELDS and f != "file" and f not in ALONE]
    parts = b"".join(b'--XyZ\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n'
                     % (f.encode(), VALUES[f].encode()) for f in fields)
    parts += (b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n'
              b"Content-Type: video/mp4\r\n\r\n" + b"\x00" * 64 + b"\r\n--XyZ--\r\n")
    r = http.post("/v1/videos", body=parts,
                  headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    eq(r.status, 202, f"multipart with {fields}: {r}")
    eq(r.json()["callback_url"], VALUES["callback_url"], "callback_url as a form field")
    eq(r.json()["state"], "scheduled", "run_at as a form field")
    video = {"source_url": "https://example.com/a.mp4", "preset": "webm-720p", "thumbnail": False,
             "sprite": False, "priority": "high", "callback_url": VALUES["callback_url"], "run_at": VALUES["run_at"]}
    eq(sorted(list(video) + list(ALONE)),
       sorted(f for f in doc["components"]["schemas"]["VideoJsonRequest"]["properties"]
              if f not in UNLANDED_FIELDS), "members of a video JSON request")
    eq(http.post("/v1/videos", body=video).status, 202, "a video JSON request with every member")
    for k in ALONE:
        r = http.post("/v1/videos", body={"source_url": video["source_url"], k: VALUES[k]})
        eq((r.status, r.json()["state"]), (202, "scheduled"), f"a video JSON request with {k}")
    export = {"title": "t", "author": "a", "columns": [{"key": "a", "label": "A", "width": 80,
                                                       "align": "right", "format": "number",
                                                       "decimals": 2, "thousands": False}],
              "page_size": "A4", "orientation": "portrait", "font": "serif",
              "compression": "default", "priority": "normal", "callback_url": VALUES["callback_url"],
              "run_at": VALUES["run_at"]}
    members = doc["components"]["schemas"]["ExportJsonRequest"]["properties"]
    eq(sorted(list(export) + ["rows", "source_url", "format"] + list(ALONE)),
       sorted(f for f in members if f not in UNLANDED_FIELDS), "members of an export JSON request")
    eq(sorted(export["columns"][0]), sorted(doc["components"]["schemas"]["ExportColumn"]["properties"]),
       "members of a column")
    r = http.post("/v1/exports", body=dict(export, rows=[{"a": 1}]))
    eq(r.status, 202, f"an export with rows and every other member: {r}")
    assert_valid([("Job", r.json())])
    r = http.post("/v1/exports", body=dict(export, source_url="https://example.com/d", format="csv"))
    eq(r.status, 202, f"an export with source_url and format: {r}")
    # each form of the dead-letter actions' body
    forms = doc["components"]["schemas"]["DeadSelection"]["oneOf"]
    eq(sorted(m for f in forms for m in f["properties"]), ["all", "ids"], "dead-letter body forms")
    for path in ("/v1/queues/pdf/dead/retry", "/v1/queues/pdf/dead/purge"):
        for body in ({"ids": [SAMPLE["{id}"]]}, {"all": True}):
            r = http.post(path, body=body)
            eq(r.status, 200, f"POST {path} {body}: {r}")
        eq(http.post(path, body=b"{}", headers={"Content-Type": "text/plain"}).status, 415,
           f"POST {path} as text/plain")


@suite.test
def test_error_codes_are_the_ones_reply_c_uses(ctx):
    src = open(os.path.join(ROOT, "api", "reply.c")).read()
    table = src[src.index("api__errors[API_E_COUNT] = {"):]
    table = table[:table.index("};")]
    used = re.findall(r'\[API_E_\w+\]\s*=\s*\{(\d+),\s*"([a-z_]+)"', table)
    assert len(used) > 15, used
    enum = spec()["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    eq(sorted(enum), sorted(c for _, c in used), "error codes")
    # each code's status has a response in the description that names the code
    text = json.dumps(spec()["components"]["responses"])
    for status, c in used:
        if c not in ("no_such_route", "method_not_allowed"):  # answered outside any operation
            assert f"`{c}`" in text, f"no response describes {status} {c}"


# ---- answers against the schemas ------------------------------------------------------

@suite.test
def test_real_answers_validate_against_the_schemas(ctx):
    http, anon = ctx["http"], ctx["anon"]
    pairs = []

    def want(status, r, schema):
        eq(r.status, status, f"{r}")
        pairs.append((schema, r.json()))

    export = {"title": "Sales", "columns": [{"key": "a", "format": "number", "decimals": 1}],
              "rows": [{"a": 1.5}, [2]]}
    r = http.post("/v1/exports", body=export, headers={"Idempotency-Key": "oa-1"})
    want(202, r, "Job")
    job = r.json()["id"]
    want(202, http.post("/v1/exports", body=export, headers={"Idempotency-Key": "oa-1"}), "Job")
    csv = http.post("/v1/exports?title=T&page_size=letter", body=b"a,b\n1,2\n",
                    headers={"Content-Type": "text/csv"})
    want(202, csv, "Job")
    want(202, http.post("/v1/videos?preset=mp4-480p&filename=c.mp4", body=b"\x00" * 100,
                        headers={"Content-Type": "video/mp4"}), "Job")
    want(200, http.get(f"/v1/jobs/{job}"), "Job")
    want(200, http.get("/v1/jobs?limit=5"), "JobList")
    want(200, http.get("/v1/jobs?state=queued&type=pdf.export"), "JobList")
    page = http.get("/v1/jobs?queue=pdf&limit=1")
    want(200, page, "JobList")
    assert page.json()["next"], f"a page of one of several jobs has a cursor: {page.json()}"
    want(200, http.get(f"/v1/jobs?queue=pdf&limit=1&before={page.json()['next']}"), "JobList")
    want(200, http.get("/v1/queues/pdf/dead?limit=2"), "DeadList")
    want(200, http.get("/v1/queues/never-used/dead"), "DeadList")
    want(200, http.post("/v1/queues/pdf/dead/retry", body={"ids": [job]}), "DeadRetried")
    want(200, http.post("/v1/queues/pdf/dead/purge", body={"ids": [SAMPLE["{id}"]]}), "DeadPurged")
    want(200, http.get("/v1/queues/pdf/history"), "QueueHistory")
    want(200, http.get("/v1/workers"), "WorkerList")
    want(200, http.delete(f"/v1/jobs/{job}"), "Job")
    want(200, http.post("/v1/queues/pdf/pause"), "QueueState")
    want(200, http.get("/v1/queues"), "QueueList")
    want(200, http.post("/v1/queues/pdf/resume"), "QueueState")
    want(200, anon.get("/healthz"), "Health")
    want(200, anon.get("/readyz"), "Ready")
    # errors
    want(401, anon.get("/v1/jobs"), "Error")
    want(404, http.get("/v1/jobs/" + SAMPLE["{id}"]), "Error")
    want(404, http.get("/v1/nothing"), "Error")
    want(409, http.delete(f"/v1/jobs/{job}"), "Error")
    want(409, http.post("/v1/exports", body={"title": "other", "rows": [{"a": 1}]},
                        headers={"Idempotency-Key": "oa-1"}), "Error")
    want(415, http.post("/v1/exports", body=b"x", headers={"Content-Type": "text/plain"}), "Error")
    want(422, http.post("/v1/exports", body={"rows": [[1]]}), "Error")
    want(422, http.get("/v1/jobs?limit=0"), "Error")
    want(400, http.post("/v1/exports", body=b"{nope", headers={"Content-Type": "application/json"}),
         "Error")
    want(405, http.delete("/v1/queues"), "Error")
    want(405, http.delete("/v1/queues/pdf/dead"), "Error")
    want(404, http.get("/v1/queues/" + "q" * 65 + "/history"), "Error")
    want(422, http.post("/v1/queues/pdf/dead/retry", body={"ids": [], "all": True}), "Error")
    want(415, http.post("/v1/queues/pdf/dead/purge", body=b'{"all":true}',
                        headers={"Content-Type": "text/plain"}), "Error")
    want(413, http.post("/v1/queues/pdf/dead/purge", body=b'{"ids":["' + b"a" * 70000 + b'"]}',
                        headers={"Content-Type": "application/json"}), "Error")
    want(404, anon.get("/ui/assets/nope.js"), "Error")
    assert_valid(pairs)
    codes = {p[1]["error"]["code"] for p in pairs if p[0] == "Error"}
    eq(len(codes), 10, f"distinct error codes checked: {sorted(codes)}")


@suite.test
def test_schedule_answers_validate_against_the_schemas(ctx):
    """Schedules: created (201 with Location), listed, read, changed, their runs (jobs
    made by the real firing loop), deleted, and their errors, each against its schema."""
    http = ctx["http"]
    pairs = []

    def want(status, r, schema):
        eq(r.status, status, f"{r}")
        pairs.append((schema, r.json()))
    body = {"name": "oa-every", "cron": "@every 1s", "timezone": "Europe/Berlin",
            "missed": "run_once", "job": {"type": "pdf.export",
                                          "params": {"title": "t", "rows": [{"a": 1}]}}}
    r = http.post("/v1/schedules", body=body)
    want(201, r, "Schedule")
    for h in documented_headers("/v1/schedules", "post", 201):
        assert h.lower() in r.headers, f"POST /v1/schedules 201 lacks {h}: {r.headers}"
    want(201, http.post("/v1/schedules", body={
        "name": "oa-video", "cron": "0 3 * * MON-FRI", "paused": True,
        "job": {"type": "video.transcode", "params": {"source_url": "https://example.com/v.mp4"}}}),
        "Schedule")
    wait_until(lambda: len(http.get("/v1/schedules/oa-every/runs").json()["runs"]) >= 2, 10, 0.1,
               what="two runs")
    want(200, http.get("/v1/schedules/oa-every/runs?limit=1"), "ScheduleRuns")
    nxt = pairs[-1][1]["next"]
    assert nxt, pairs[-1][1]
    want(200, http.get(f"/v1/schedules/oa-every/runs?limit=1&before={nxt}"), "ScheduleRuns")
    want(200, http.get("/v1/schedules?limit=1"), "ScheduleList")
    want(200, http.get("/v1/schedules?after=oa-every"), "ScheduleList")
    want(200, http.get("/v1/schedules/oa-every"), "Schedule")
    want(200, http.request("PATCH", "/v1/schedules/oa-every", body={"paused": True}), "Schedule")
    want(200, http.request("PATCH", "/v1/schedules/oa-video", body={"paused": False,
                                                                   "cron": "@hourly"}), "Schedule")
    want(409, http.post("/v1/schedules", body=body), "Error")
    want(422, http.post("/v1/schedules", body=dict(body, name="x", cron="99 * * * *")), "Error")
    want(404, http.get("/v1/schedules/none"), "Error")
    want(200, http.delete("/v1/schedules/oa-every"), "Schedule")
    want(200, http.delete("/v1/schedules/oa-video"), "Schedule")
    assert_valid(pairs)


def documented_headers(path, method, status):
    """The response headers the description gives for an operation's status."""
    doc = spec()
    r = doc["paths"][path][method]["responses"][str(status)]
    if "$ref" in r:
        r = doc["components"]["responses"][r["$ref"].rsplit("/", 1)[-1]]
    return set(r.get("headers", {}))


@suite.test
def test_jobs_through_the_queue_match_the_description(ctx):
    """Through the real queue (api-test-worker): a running job, one that succeeded with
    an output, a failed one (its attempt_log, the dead-letter set) retried, one retrying,
    one purged from the dead-letter set: each answer validates, and carries the headers
    the description names (ETag, Location, Content-Range...)."""
    http = ctx["http"]
    pairs = []

    def check(path, method, status, r, schema=None, skip=()):
        eq(r.status, status, f"{method.upper()} {path}: {r}")
        for h in documented_headers(path, method, status) - set(skip):
            assert h.lower() in r.headers, f"{method.upper()} {path} {status} lacks {h}: {r.headers}"
        if schema:
            pairs.append((schema, r.json()))

    w = Worker(ctx["api"], queues="pdf")
    try:
        body = {"title": "out", "rows": [{"a": 1}]}
        r = http.post("/v1/exports", body=body, headers={"Idempotency-Key": "oa-out"})
        check("/v1/exports", "post", 202, r, "Job", skip={"Idempotent-Replayed"})
        job = r.json()["id"]
        r = http.post("/v1/exports", body=body, headers={"Idempotency-Key": "oa-out"})
        check("/v1/exports", "post", 202, r, "Job")
        w.take(job)
        eq(w.cmd("progress 40"), "ok")
        r = http.get(f"/v1/jobs/{job}")
        check("/v1/jobs/{id}", "get", 200, r, "Job")
        eq((r.json()["state"], r.json()["progress"]), ("running", 40))
        eq(w.cmd("output export.pdf application/pdf 1000"), "ok")
        eq(w.cmd("succeed"), "ok succeeded")
        r = http.get(f"/v1/jobs/{job}")
        check("/v1/jobs/{id}", "get", 200, r, "Job")
        eq([o["name"] for o in r.json()["outputs"]], ["export.pdf"])
        check("/v1/jobs/{id}", "get", 304,
              http.get(f"/v1/jobs/{job}", headers={"If-None-Match": r.headers["etag"]}))
        out = f"/v1/jobs/{job}/outputs/export.pdf"
        tmpl = "/v1/jobs/{id}/outputs/{name}"
        r = http.get(out)
        check(tmpl, "get", 200, r)
        eq((len(r.body), r.headers["content-type"]), (1000, "application/pdf"))
        check(tmpl, "get", 206, http.get(out, headers={"Range": "bytes=10-19"}))
        check(tmpl, "get", 416, http.get(out, headers={"Range": "bytes=5000-"}), "Error")
        check(tmpl, "get", 404, http.get(f"/v1/jobs/{job}/outputs/nothing.pdf"), "Error")
        # a failure, then a retry
        r = http.post("/v1/exports", body={"title": "bad", "rows": [{"a": 1}]})
        failed = r.json()["id"]
        w.take(failed)
        eq(w.cmd("fail invalid_input row 1 is wrong"), "ok failed")
        r = http.get(f"/v1/jobs/{failed}")
        check("/v1/jobs/{id}", "get", 200, r, "Job")
        eq(r.json()["error"]["code"], "invalid_input")
        log = r.json()["attempt_log"]
        eq([(e["attempt"], e["outcome"], e["error"]["code"]) for e in log],
           [(1, "failed", "invalid_input")], f"attempt_log {log}")
        r = http.get("/v1/queues/pdf/dead")
        check("/v1/queues/{name}/dead", "get", 200, r, "DeadList")
        assert failed in [j["id"] for j in r.json()["jobs"]], r.json()
        check("/v1/jobs/{id}/retry", "post", 202, http.post(f"/v1/jobs/{failed}/retry"), "Job")
        check("/v1/jobs/{id}/retry", "post", 409, http.post(f"/v1/jobs/{failed}/retry"), "Error")
        r = http.get(f"/v1/jobs/{failed}")
        check("/v1/jobs/{id}", "get", 200, r, "Job")
        eq((r.json()["state"], len(r.json()["attempt_log"])), ("queued", 1), "the log survives a retry")
        check("/v1/jobs", "get", 401, ctx["anon"].get("/v1/jobs"), "Error")
        # an attempt that will be retried: retrying, next_attempt_at, a log entry
        again = w.take()  # the retried job (the only one queued on pdf)
        eq(again, failed, "the retried job is taken again")
        eq(w.cmd("retry fetch_failed try later"), "ok retrying")
        r = http.get(f"/v1/jobs/{failed}")
        check("/v1/jobs/{id}", "get", 200, r, "Job")
        eq((r.json()["state"], [e["outcome"] for e in r.json()["attempt_log"]]),
           ("retrying", ["failed", "retrying"]), "a retrying job and its log")
        assert r.json()["next_attempt_at"], r.json()
        # a dead job purged by id, then retry-all and purge-all on an empty set
        r = http.post("/v1/exports", body={"title": "dead", "rows": [{"a": 1}]})
        dead = r.json()["id"]
        w.take(dead)
        eq(w.cmd("fail invalid_input for good"), "ok failed")
        r = http.post("/v1/queues/pdf/dead/purge", body={"ids": [dead, failed]})
        check("/v1/queues/{name}/dead/purge", "post", 200, r, "DeadPurged")
        eq((r.json()["purged"], r.json()["not_found"]), (1, [failed]), f"purge {r.json()}")
        eq(http.get(f"/v1/jobs/{dead}").status, 404, "a purged job")
        check("/v1/queues/{name}/dead/retry", "post", 200,
              http.post("/v1/queues/pdf/dead/retry", body={"all": True}), "DeadRetried")
        check("/v1/queues/{name}/dead/purge", "post", 200,
              http.post("/v1/queues/pdf/dead/purge", body={"all": True}), "DeadPurged")
    finally:
        w.close()
    assert_valid(pairs)


@suite.test
def test_workers_with_a_real_worker_running_a_job_match_the_description(ctx):
    """A real spool-pdf (SPOOL_QUEUES=pdf) heartbeats while it runs an export whose
    source_url a local server holds open: GET /v1/workers lists it with that job in
    `current` and `jobs`, GET /v1/queues with it among the workers; both validate."""
    http = ctx["http"]
    release = threading.Event()

    class Held(http_server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(30)
            body = b"a,b\n1,2\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass
    srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Held)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    api = ctx["api"]
    api.redis.cli("DEL", f"{api.prefix}q:pdf:ready")  # earlier tests' exports: never run
    pdf = Proc([os.path.join(BIN, "spool-pdf")], env={
        "SPOOL_REDIS_URL": api.redis.url, **api.blobs.env(), "SPOOL_QUEUES": "pdf",
        "SPOOL_LOG_LEVEL": "info", **LOOPBACK_ALLOW}, name="spool-pdf", logdir=suite.tmp)
    try:
        r = http.post("/v1/exports", body={"title": "held", "source_url":
                                           f"http://127.0.0.1:{srv.server_address[1]}/d.csv"})
        eq(r.status, 202, f"{r}")
        job = r.json()["id"]

        def running():
            r = http.get("/v1/workers")
            eq(r.status, 200, f"{r}")
            ws = [w for w in r.json()["workers"] if job in w["current"]]
            return (r, ws[0]) if ws else None
        r, w = wait_until(running, 20, 0.1, what="spool-pdf to list the held job in /v1/workers")
        eq((w["kind"], w["queues"]), ("pdf", ["pdf"]), f"the worker {w}")
        eq([(j["id"], j["state"]) for j in w["jobs"]], [(job, "running")], f"its jobs {w['jobs']}")
        queues = http.get("/v1/queues")
        eq(queues.status, 200, f"{queues}")
        assert [x for x in queues.json()["workers"] if x["id"] == w["id"]], queues.json()
        pdfq = [q for q in queues.json()["queues"] if q["name"] == "pdf"]
        assert pdfq and pdfq[0]["workers"] >= 1, queues.json()
        assert_valid([("WorkerList", r.json()), ("QueueList", queues.json())])
        eq(http.request("HEAD", "/v1/workers").status, 200, "HEAD /v1/workers")
        release.set()
        wait_until(lambda: http.get(f"/v1/jobs/{job}").json()["state"] == "succeeded", 30, 0.1,
                   what="the held export to finish")
    finally:
        release.set()
        pdf.stop()
        srv.shutdown()
        srv.server_close()


@suite.test
def test_a_real_webhook_delivery_matches_the_description(ctx):
    """A job with a callback_url at a local receiver ends (api-test-worker): what
    spool-api POSTs there carries each header the jobEnded webhook describes, each
    valid against its schema (the signature checks out with the secret), and a body
    that is the job (the Job schema, as GET /v1/jobs/{id} shows it); the receiver's
    500 is retried, as described, until it answers 2xx."""
    http = ctx["http"]
    got, answers = [], [500, 204]

    class Receiver(http_server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((dict(self.headers), body))
            self.send_response(answers[min(len(got), len(answers)) - 1])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    w = Worker(ctx["api"], queues="pdf")
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/hook?k=1"
        r = http.post("/v1/exports", body={"title": "hooked", "rows": [{"a": 1}],
                                           "callback_url": url})
        eq((r.status, r.json()["callback_url"]), (202, url), f"{r}")
        job = r.json()["id"]
        w.take(job)
        eq(w.cmd("succeed"), "ok succeeded")
        # the 500 is retried after a backoff (SPOOL_WEBHOOK_RETRY_BASE: 50ms here)
        wait_until(lambda: len(got) >= 2, 20, 0.05, what="the first delivery and its retry")
        deliveries = http.get("/v1/jobs?type=webhook.deliver&queue=webhooks").json()["jobs"]
        mine = [d for d in deliveries if d["params"]["job_id"] == job]
        eq(len(mine), 1, f"one delivery job for {job}: {deliveries}")
        wait_until(lambda: http.get(f"/v1/jobs/{mine[0]['id']}").json()["state"] == "succeeded",
                   10, 0.05, what="the delivery to end succeeded on a 204")
    finally:
        w.close()
        srv.shutdown()
        srv.server_close()
    hook = spec()["webhooks"]["jobEnded"]["post"]
    now = http.get(f"/v1/jobs/{job}")
    pairs = []
    for headers, body in got:
        h = {k.lower(): v for k, v in headers.items()}
        eq(h.get("content-type"), "application/json", "Content-Type")
        for p in hook["parameters"]:
            v = h.get(p["name"].lower())
            if v is None:
                assert not p.get("required"), f"{p['name']} missing: {headers}"
                continue
            pairs.append((p["schema"], v))
        eq(h["spool-event"], "job.succeeded", "Spool-Event")
        eq(h["spool-event-id"], mine[0]["id"], "Spool-Event-Id: the delivery's id")
        sig = dict(part.split("=", 1) for part in h["spool-signature"].split(","))
        mac = hmac.new(WEBHOOK_SECRET.encode(), sig["t"].encode() + b"." + body,
                       hashlib.sha256).hexdigest()
        assert hmac.compare_digest(mac, sig["v1"]), f"bad signature {h['spool-signature']}"
        pairs.append((hook["requestBody"]["content"]["application/json"]["schema"],
                      json.loads(body)))
        eq(json.loads(body), now.json(), "the body is the job as GET /v1/jobs/{id} shows it")
    eq(len(got), 2, "one delivery refused with 500, then one taken")
    assert_valid(pairs)
    assert_valid([("Job", http.get(f"/v1/jobs/{mine[0]['id']}").json())])


@suite.test
def test_event_streams_match_the_description(ctx):
    """A job cancelled while a per-job stream and a filtered all-jobs stream follow it:
    the retry hint, each event (Event), the heartbeat and the headers are as described;
    the per-job stream ends after the end, and a resume after it is 204; a resume into a
    trimmed history starts with a gap notice (EventGap); bad requests are 404 and 422."""
    http = ctx["http"]
    r = http.post("/v1/exports", body={"title": "watched", "rows": [{"a": 1}]})
    job = r.json()["id"]
    one = open_stream(ctx, f"/v1/jobs/{job}/events")
    every = open_stream(ctx, "/v1/events?queue=pdf&type=pdf.export")
    pairs = []
    try:
        for s, path in ((one, "/v1/jobs/{id}/events"), (every, "/v1/events")):
            eq(s.status, 200, path)
            eq(s.headers.get("content-type"), "text/event-stream", path)
            want = documented_headers(path, "get", 200)
            eq(sorted(h for h in want if h.lower() not in s.headers), [], f"{path} headers")
            eq((s.headers["cache-control"], s.headers["x-accel-buffering"]), ("no-cache", "no"))
        eq(http.delete(f"/v1/jobs/{job}").status, 200, "cancel")
        one.wait_end(10)
        every.wait(lambda x: any(e["data"] and e["data"].get("state") == "cancelled"
                                 and e["data"]["job_id"] == job for e in x.job_events()),
                   10, "the cancel on the all-jobs stream")
        every.wait(lambda x: any("ping" in e["comments"] for e in x.events), 5, "a heartbeat")
        for s in (one, every):
            eq(s.events[0]["retry"], "3000", "the retry hint first")
            for e in s.job_events():
                eq(e["id"], e["data"]["id"], "the SSE id is the event's id")
                pairs.append(("Event", e["data"]))
        eq([(e["data"]["job_id"], e["data"]["state"]) for e in one.job_events()],
           [(job, "queued"), (job, "cancelled")], "the state first, then the end")
        last = one.job_events()[-1]["id"]
    finally:
        one.close()
        every.close()
    # a resume after the end: 204
    s = open_stream(ctx, f"/v1/jobs/{job}/events", headers={"Last-Event-ID": last})
    s.close()
    eq(s.status, 204, "a per-job resume after its end")
    eq(s.headers.get("cache-control"), "no-cache")
    # a resume into a trimmed history: the gap notice first
    ctx["redis"].cli("XTRIM", "spool:events", "MAXLEN", "1")
    s = open_stream(ctx, "/v1/events", headers={"Last-Event-ID": "1-0/0"})
    try:
        s.wait(lambda x: any(e["event"] == "gap" for e in x.events), 5, "the gap notice")
        gap = [e for e in s.events if e["event"] == "gap"][0]
        pairs.append(("EventGap", gap["data"]))
    finally:
        s.close()
    assert_valid(pairs)
    assert_valid([("EventId", last), ("EventId", gap["data"]["oldest"])])
    # refusals
    errors = []
    for path, headers, status in (
            (f"/v1/jobs/{SAMPLE['{id}']}/events", None, 404),
            (f"/v1/jobs/{job}/events?queue=pdf", None, 422),
            ("/v1/events?colour=red", None, 422),
            ("/v1/events?queue=bad%20name", None, 422),
            ("/v1/events", {"Last-Event-ID": "yesterday"}, 422)):
        s = open_stream(ctx, path, headers=headers)
        s.close()
        eq(s.status, status, f"{path} {headers}: {s.body[:200]}")
        errors.append(("Error", s.json))
    assert_valid(errors)
    assert all(validate([("EventId", "yesterday"), ("EventId", "1-0/x")])), "EventId refuses"


@suite.test
def test_dashboard_addresses_the_description_names_serve_the_page(ctx):
    """Each address /ui's description lists answers the dashboard's page (no token);
    an address it does not list is 404 no_such_route; each file the page loads is
    under /ui/assets/{name}."""
    anon = ctx["anon"]
    op = spec()["paths"]["/ui"]["get"]
    named = sorted(set(re.findall(r"`(/ui[^`?]*)`", op["description"])))
    assert len(named) >= 7, named
    page = anon.get("/ui")
    eq((page.status, page.headers.get("content-type")), (200, "text/html; charset=utf-8"))
    for addr in named:
        r = anon.get(concrete(addr))
        eq((r.status, r.body), (200, page.body), f"GET {addr}")
        assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), addr
    for addr in ("/ui/nope", "/uix", "/ui/assets/", "/ui/assets/.hidden"):
        r = anon.get(addr)
        eq((r.status, r.json()["error"]["code"]), (404, "no_such_route"), f"GET {addr}")
    loaded = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', page.body.decode())
    assert len(loaded) >= 3, loaded
    for path in loaded:
        r = anon.get(path)
        eq(r.status, 200, path)
        assert r.headers["content-type"].split(";")[0] in op_types("/ui/assets/{name}"), r.headers


def op_types(path):
    """The media types the 200 of GET path describes."""
    doc = spec()
    resp = doc["paths"][path]["get"]["responses"]["200"]
    if "$ref" in resp:
        resp = doc["components"]["responses"][resp["$ref"].rsplit("/", 1)[-1]]
    return set(resp["content"])


@suite.test
def test_the_schemas_refuse_what_the_api_does_not_send(ctx):
    """The validation above can fail: a job with a field the description lacks, a wrong
    state or a missing field, and an error with an unknown code, are each refused."""
    r = ctx["http"].post("/v1/exports", body={"title": "x", "rows": [{"a": 1}]})
    eq(r.status, 202, f"{r}")
    job = r.json()
    eq(validate([("Job", job)]), [None], "the job as it is")
    bad_state = dict(job, state="sleeping")
    extra = dict(job, surprise=1)
    missing = {k: v for k, v in job.items() if k != "progress"}
    errs = validate([("Job", bad_state), ("Job", extra), ("Job", missing),
                     ("Error", {"error": {"code": "oops", "message": "m"}}),
                     ("QueueList", {"queues": [{"name": "q"}], "workers": []})])
    for e, what in zip(errs, ("a bad state", "an unknown field", "a missing field",
                              "an unknown error code", "a queue without its counts")):
        assert e, f"the schemas accepted {what}"


# ---- /docs/api ---------------------------------------------------------------------

@suite.test
def test_docs_page_is_generated_from_the_current_description(ctx):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "page.html")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "openapi-html.py"),
                        SPEC_PATH, out], check=True, timeout=60)
        fresh = open(out, "rb").read()
    assert fresh == open(PAGE_PATH, "rb").read(), ("api/openapi.html is out of date with "
                                                   "api/openapi.json: run `make openapi-docs`")


@suite.test
def test_docs_page_is_served_and_loads_nothing_from_elsewhere(ctx):
    r = ctx["anon"].get("/docs/api")
    eq(r.status, 200, "GET /docs/api without a token")
    eq(r.headers.get("content-type"), "text/html; charset=utf-8")
    assert r.body == open(PAGE_PATH, "rb").read(), ("the served page is not api/openapi.html "
                                                    "(rebuild spool-api)")
    assert len(r.body) < 2 * 1024 * 1024, len(r.body)
    csp = r.headers.get("content-security-policy", "")
    for part in ("default-src 'none'", "style-src 'unsafe-inline'", "frame-ancestors 'self'"):
        assert part in csp, f"CSP {csp!r} lacks {part}"
    assert "script-src" not in csp, csp
    eq(r.headers.get("x-content-type-options"), "nosniff")
    eq(r.headers.get("x-frame-options"), "SAMEORIGIN")
    eq(ctx["anon"].get("/docs/api", headers={"If-None-Match": r.headers["etag"]}).status, 304)
    page = r.body.decode()
    assert "<script" not in page.lower(), "the page has a script (its CSP would block it)"
    for attr, url in re.findall(r'\b(src|href)="([^"]*)"', page):
        assert url.startswith("#") or url == "/openapi.json", f"{attr}={url!r} leaves the page"
    assert not re.search(r"@import|url\(", page), "the styles load something"
    # every operation and schema of the description is on the page
    doc = spec()
    for path, item in doc["paths"].items():
        for m, op in item.items():
            if m in METHODS:
                assert f'id="op-{op["operationId"]}"' in page, f"{m} {path} is not on the page"
    for name, item in doc.get("webhooks", {}).items():
        for m, op in item.items():
            assert f'id="op-{op["operationId"]}"' in page, f"webhook {name} is not on the page"
    for name in doc["components"]["schemas"]:
        assert f'id="schema-{name}"' in page, f"schema {name} is not on the page"
    # text from the description is escaped, never markup
    assert "&lt;token&gt;" in page and "<token>" not in page



def chromium_console(url, tmp):
    """Load url in headless Chromium: (the DOM it built, its console lines, which carry
    every CSP refusal)."""
    exe = shutil.which("chromium")
    assert exe, "chromium is missing (deps/debian.txt)"
    p = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp}",
                        "--dump-dom", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=120)
    eq(p.returncode, 0, f"chromium: {p.stderr.decode(errors='replace')[-2000:]}")
    lines = [ln for ln in p.stderr.decode(errors="replace").splitlines() if ":CONSOLE" in ln]
    return p.stdout.decode(errors="replace"), lines


@suite.test
def test_docs_page_renders_in_chromium_within_its_csp(ctx):
    """The page as a browser gets it from spool-api, CSP and all: drawn without a single
    console message. The control: the same page under a CSP without 'unsafe-inline'
    styles is refused, so a refusal would have shown."""
    api = ctx["api"]
    with tempfile.TemporaryDirectory() as tmp:
        dom, console = chromium_console(f"http://127.0.0.1:{api.port}/docs/api",
                                        os.path.join(tmp, "a"))
        eq(console, [], "console messages of /docs/api")
        assert 'id="op-submitExport"' in dom and "</article>" in dom, dom[:500]
        page = open(PAGE_PATH, "rb").read()

        class Strict(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Security-Policy", "default-src 'none'")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass
        srv = http_server.ThreadingHTTPServer(("127.0.0.1", 0), Strict)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            _, console = chromium_console(f"http://127.0.0.1:{srv.server_address[1]}/",
                                          os.path.join(tmp, "b"))
        finally:
            srv.shutdown()
            srv.server_close()
        assert any("Content Security Policy" in ln for ln in console), console


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

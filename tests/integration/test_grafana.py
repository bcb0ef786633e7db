#!/usr/bin/env python3
"""deploy/grafana/spool.json, the Grafana dashboard for spool-api's /metrics: it parses
as a dashboard (panels placed, each query on the dashboard's Prometheus variable), it
shows what an operator needs (queue depth by state, throughput, failure rate, request
rate, p50 and p99 latency, workers, Redis), and every metric, label and label value its
queries name is one that a real spool-api's /metrics exposes: a spool-api on a private
Redis is scraped after it has served requests and queued jobs."""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Redis, Suite, eq  # noqa: E402
from test_api import ApiServer  # noqa: E402

suite = Suite("grafana")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "spool.json")

# PromQL's words that are not metric names (functions, aggregations, keywords).
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "rate", "irate", "increase", "histogram_quantile", "clamp_min",
    "clamp_max", "and", "or", "unless", "topk", "bottomk", "abs",
}


def dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def queries(d):
    """[(where, PromQL)] of every panel target and template variable."""
    out = []
    for p in d["panels"]:
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"]))
    for v in d.get("templating", {}).get("list", []):
        q = v.get("query")
        if v.get("type") == "query":
            out.append((f"variable {v['name']}", q["query"] if isinstance(q, dict) else q))
    return out


def selectors(expr):
    """[(metric, {label: (op, value)})] of each metric selector in a PromQL expression,
    and every other bare word (which must be a PromQL word)."""
    e = re.sub(r"\[[^\]]*\]", " ", expr)                 # range durations
    e = re.sub(r"label_values\(([^,()]+),\s*\w+\)", r"\1", e)  # a variable's query
    e = re.sub(r"(?<![\w.])\d+(\.\d+)?(e[-+]?\d+)?\b", " ", e)  # numbers
    e = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", e)  # grouping labels
    found, words = [], []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?|\{[^}]*\}", e):
        name, matchers = m.group(1), m.group(2)
        if name is None:
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        if name.lower() in PROMQL_WORDS and not matchers:
            words.append(name)
            continue
        labels = {}
        for lm in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers or ""):
            labels[lm.group(1)] = (lm.group(2), lm.group(3))
        found.append((name, labels))
    return found, words


def scrape_families(text):
    """{sample name: [label dicts]} from Prometheus text."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([A-Za-z_:][A-Za-z0-9_:]*)(\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s', line)
        assert m, f"not a sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.setdefault(m.group(1), []).append(labels)
    return out


def setup():
    redis = Redis()
    api = ApiServer(suite, redis)
    h = api.http
    # Requests of several routes and statuses, and jobs on both queues, so that every
    # family (the histogram, the per-queue ones) has samples.
    eq(h.post("/v1/exports", body={"title": "g", "rows": [{"a": 1}]}).status, 202)
    eq(h.post("/v1/videos", body=b"\x00" * 64, headers={"Content-Type": "video/mp4"}).status, 202)
    eq(h.post("/v1/queues/pdf/pause").status, 200)
    eq(h.get("/v1/jobs/" + "0" * 36).status, 404)
    eq(h.get("/v1/queues").status, 200)
    r = h.get("/metrics")
    eq(r.status, 200)
    return {"redis": redis, "api": api, "metrics": scrape_families(r.body.decode())}


def teardown(ctx):
    ctx["api"].stop()
    ctx["redis"].destroy()


@suite.test
def test_dashboard_parses_and_its_panels_are_placed(ctx):
    d = dashboard()
    for key in ("title", "uid", "panels", "schemaVersion", "templating"):
        assert key in d, f"the dashboard has no {key}"
    ids = [p["id"] for p in d["panels"]]
    eq(len(ids), len(set(ids)), "panel ids are unique")
    names = [v["name"] for v in d["templating"]["list"]]
    assert "datasource" in names, names
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{p['title']}: {g}"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel at {(x, y)}"
                cells.add((x, y))
        if p["type"] == "row":
            continue
        assert p["targets"], f"{p['title']} has no query"
        eq(p["datasource"], {"type": "prometheus", "uid": "${datasource}"},
           f"{p['title']}'s data source")
        for t in p["targets"]:
            eq(t.get("datasource"), p["datasource"], f"{p['title']} {t['refId']}'s data source")
            assert t["expr"].count("(") == t["expr"].count(")"), f"unbalanced: {t['expr']}"


@suite.test
def test_dashboard_shows_what_an_operator_needs(ctx):
    text = {p["title"]: " ".join(t["expr"] for t in p.get("targets", []))
            for p in dashboard()["panels"]}
    want = {
        "Queue depth by state": r"max by \(queue, state\) \(spool_queue_jobs",
        "Throughput": r"rate\(spool_jobs_total\{[^}]*outcome=~\"[^\"]*succeeded",
        "Failure rate": r"outcome=\"failed\"",
        "Requests by route and status": r"rate\(spool_api_requests_total",
        "Latency p50 and p99 by route": r"histogram_quantile\(0\.5,.*histogram_quantile\(0\.99,",
        "Live workers": r"spool_workers",
        "Redis up": r"spool_redis_up",
    }
    for title, pattern in want.items():
        assert title in text, f"no panel {title!r}: {sorted(text)}"
        assert re.search(pattern, text[title]), f"{title}: {text[title]!r} lacks {pattern}"


@suite.test
def test_every_metric_the_dashboard_names_is_exposed(ctx):
    exposed = ctx["metrics"]
    used = set()
    for where, expr in queries(dashboard()):
        sels, _ = selectors(expr)
        assert sels, f"{where}: no metric in {expr!r}"
        for name, labels in sels:
            used.add(name)
            assert name in exposed, (f"{where} names {name}, which /metrics does not expose "
                                     f"(it has {sorted(exposed)})")
            seen = exposed[name]
            for label, (op, value) in labels.items():
                assert any(label in s for s in seen), f"{where}: {name} has no label {label}"
                if op == "=":
                    assert any(s.get(label) == value for s in seen), \
                        f"{where}: no {name} sample has {label}={value!r}"
                if op == "=~" and re.fullmatch(r"[a-z_|]+", value):
                    for alt in value.split("|"):
                        assert any(s.get(label) == alt for s in seen), \
                            f"{where}: no {name} sample has {label}={alt!r}"
    # and the families the README lists are all on the dashboard
    for family in ("spool_api_requests_total", "spool_api_request_duration_seconds_bucket",
                   "spool_queue_jobs", "spool_jobs_total", "spool_queue_paused", "spool_workers",
                   "spool_redis_up"):
        assert family in used, f"the dashboard does not use {family}"


@suite.test
def test_metric_check_catches_a_name_metrics_lacks(ctx):
    """The check above can fail: a misspelt metric and a label value no sample has."""
    exposed = ctx["metrics"]
    for expr in ('sum(rate(spool_job_total[5m]))', 'max(spool_queue_jobs{state="sleeping"})'):
        (name, labels), = selectors(expr)[0]
        ok = name in exposed and all(any(s.get(k) == v for s in exposed[name])
                                     for k, (_, v) in labels.items())
        assert not ok, f"{expr} passed"


@suite.test
def test_only_promql_words_besides_metrics(ctx):
    for where, expr in queries(dashboard()):
        _, words = selectors(expr)
        for w in words:
            assert w.lower() in PROMQL_WORDS, f"{where}: unknown word {w!r}"


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))

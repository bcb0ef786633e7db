#!/usr/bin/python3
"""make bench-pdf: 100,000 rows x 8 columns to PDF, spool against ReportLab, side by side
in one run, on the same generated data.

Contenders (every one writes the same table: title, header on every page, measured
column widths, text wrapped to 3 lines then cut with an ellipsis, right-aligned
formatted numbers, dates, zebra rows, "Page N of M", DejaVu TrueType embedded, A4,
compression on):

  spool (export pipeline)   bench_pdf_driver: the code spool-pdf's handler runs
                            (dataset reader, three passes, libharu), on the CSV file
  spool-pdf worker          the real worker end to end: the job enqueued in a private
                            Redis, the dataset in the blob store, until "succeeded"
  ReportLab canvas          drawn by hand on reportlab.pdfgen.canvas (two passes)
  ReportLab LongTable       platypus LongTable with Paragraph cells (the idiomatic API)

For each: wall seconds, pages, pages/s, peak RSS (getrusage of the child; VmHWM for the
long-running worker) and file size; then the ratios against the targets (>= 10x faster
than LongTable, >= 3x faster than the canvas, peak RSS <= LongTable's).

Environment: BENCH_PDF_ROWS (default 100000), BENCH_PDF_LONGTABLE=0 to skip LongTable
(it takes minutes), BENCH_PDF_DIR for the work files (default a temp dir, removed).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Redis, wait_until  # noqa: E402

BIN = os.environ.get("SPOOL_BIN_DIR", os.path.join(ROOT, "bin"))
TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
DRIVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TEST_BIN, "bench", "bench_pdf_driver")
ROWS = int(os.environ.get("BENCH_PDF_ROWS", "100000"))
LONGTABLE = os.environ.get("BENCH_PDF_LONGTABLE", "1") != "0"
REPORTLAB = os.path.join(HERE, "bench_pdf_reportlab.py")

PARAMS = {"title": "Sales report — Q1 2024", "author": "spool bench", "columns": [
    {"key": "id", "label": "ID", "format": "number", "decimals": 0},
    {"key": "date", "label": "Date", "format": "date"},
    {"key": "customer", "label": "Customer"},
    {"key": "city", "label": "City"},
    {"key": "category", "label": "Category"},
    {"key": "quantity", "label": "Qty", "format": "number"},
    {"key": "price", "label": "Price", "format": "number", "decimals": 2},
    {"key": "note", "label": "Note"}]}


def generate(path, rows):
    """The dataset: 8 columns, names and cities with accents, Cyrillic and Greek."""
    rnd = random.Random(7)
    names = ["Ana", "Björn", "Zoë", "Łukasz", "Иван", "Σοφία", "José", "Amélie", "Chloé", "Søren"]
    cities = ["Paris", "Köln", "Zürich", "Kraków", "Москва", "Αθήνα", "São Paulo", "Reykjavík",
              "Málaga", "Genève"]
    cats = ["hardware", "software", "services", "consulting", "training"]
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
             "incididunt ut labore").split()
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,date,customer,city,category,quantity,price,note\n")
        for i in range(rows):
            note = " ".join(rnd.choice(words) for _ in range(rnd.randint(2, 14)))
            f.write(f"{i + 1},2024-{i % 12 + 1:02d}-{i % 28 + 1:02d}T10:00:00Z,"
                    f"{rnd.choice(names)} {rnd.choice(names)},{rnd.choice(cities)},"
                    f"{rnd.choice(cats)},{rnd.randint(1, 5000)},{rnd.random() * 10000:.2f},"
                    f"\"{note}\"\n")


def run_child(argv, env=None):
    """Run argv; return (seconds, peak RSS in KB, stdout)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, **(env or {})))
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    secs = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}):\n{err.decode()[-2000:]}")
    return secs, ru.ru_maxrss, out.decode()


def pdf_pages(path):
    out = subprocess.run(["pdfinfo", path], stdout=subprocess.PIPE, check=True).stdout.decode()
    return int([l for l in out.splitlines() if l.startswith("Pages:")][0].split()[1])


def hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def run_worker(work, csv):
    """The real spool-pdf, end to end: enqueue, wait for succeeded."""
    pdfq = os.path.join(TEST_BIN, "pdfq")
    data = os.path.join(work, "blobs")
    redis = Redis()
    worker = None
    try:
        env = dict(os.environ, SPOOL_REDIS_URL=redis.url, SPOOL_DATA_DIR=data,
                   SPOOL_LOG_LEVEL="warn")
        worker = subprocess.Popen([os.path.join(BIN, "spool-pdf")], env=env,
                                  stderr=subprocess.DEVNULL)
        q = lambda *a: subprocess.run([pdfq, *a], stdout=subprocess.PIPE, check=True,
                                      env=env).stdout.decode().strip()
        job = q("newid")
        q("put", data, job, "dataset", csv)
        time.sleep(0.3)  # the worker is up and waiting on its queue
        t0 = time.monotonic()
        q("enqueue", redis.url, job, json.dumps(PARAMS), json.dumps({"blob": "dataset",
                                                                     "format": "csv"}))
        rec = {}

        def done():
            rec.update(json.loads(q("get", redis.url, job)))
            return rec["state"] in ("succeeded", "failed")
        wait_until(done, 600, 0.01, what="the benchmark job")
        secs = time.monotonic() - t0
        if rec["state"] != "succeeded":
            raise SystemExit(f"worker job failed: {rec}")
        rss = hwm_kb(worker.pid)
        path = q("path", data, job, "export.pdf")
        return secs, rss, path
    finally:
        if worker:
            worker.terminate()
            worker.wait(30)
        redis.destroy()


def main():
    work = os.environ.get("BENCH_PDF_DIR") or tempfile.mkdtemp(prefix="spool-bench-pdf-")
    os.makedirs(work, exist_ok=True)
    try:
        csv = os.path.join(work, "data.csv")
        params = os.path.join(work, "params.json")
        generate(csv, ROWS)
        with open(params, "w", encoding="utf-8") as f:
            json.dump(PARAMS, f, ensure_ascii=False)
        print(f"bench-pdf: {ROWS:,} rows x 8 columns ({os.path.getsize(csv) / 1e6:.1f} MB CSV), "
              f"A4, DejaVu Sans embedded, compression on", flush=True)

        results = []

        def record(name, secs, rss_kb, path):
            pages = pdf_pages(path)
            results.append({"name": name, "secs": secs, "pages": pages, "rss_mb": rss_kb / 1024,
                            "bytes": os.path.getsize(path)})
            r = results[-1]
            print(f"  {name:<24} {secs:8.2f} s {pages:6d} pages {pages / secs:8.0f} pages/s "
                  f"{r['rss_mb']:8.1f} MB RSS {r['bytes'] / 1e6:7.1f} MB", flush=True)

        out = os.path.join(work, "spool.pdf")
        secs, rss, stdout = run_child([DRIVER, params, csv, "csv", out])
        record("spool (export pipeline)", secs, rss, out)
        detail = json.loads(stdout)
        print(f"    fonts {detail['font_ms']} ms, sample {detail['sample_ms']} ms, layout {detail['layout_ms']} ms, "
              f"render {detail['render_ms']} ms, save {detail['save_ms']} ms; libharu memory "
              f"peak {detail['pdf_memory_peak'] / 2**20:.1f} MiB", flush=True)

        secs, rss, path = run_worker(work, csv)
        record("spool-pdf worker (e2e)", secs, rss, path)

        out = os.path.join(work, "canvas.pdf")
        secs, rss, _ = run_child(["/usr/bin/python3", REPORTLAB, "canvas", csv, params, out])
        record("ReportLab canvas", secs, rss, out)

        if LONGTABLE:
            print("  (ReportLab LongTable takes minutes on this many rows)", flush=True)
            out = os.path.join(work, "longtable.pdf")
            secs, rss, _ = run_child(["/usr/bin/python3", REPORTLAB, "longtable", csv, params,
                                      out])
            record("ReportLab LongTable", secs, rss, out)

        by = {r["name"]: r for r in results}
        spool = by["spool (export pipeline)"]
        e2e = by["spool-pdf worker (e2e)"]
        canvas = by["ReportLab canvas"]
        print("ratios (ReportLab time / spool time, pipeline | worker end to end):")

        def target(what, ok):
            print(f"  {what:<58} {'target met' if ok else 'target MISSED'}")

        f1, f2 = canvas["secs"] / spool["secs"], canvas["secs"] / e2e["secs"]
        target(f"vs canvas: {f1:5.1f}x | {f2:5.1f}x faster (target >= 3x)", min(f1, f2) >= 3)
        if "ReportLab LongTable" in by:
            lt = by["ReportLab LongTable"]
            f1, f2 = lt["secs"] / spool["secs"], lt["secs"] / e2e["secs"]
            target(f"vs LongTable: {f1:5.1f}x | {f2:5.1f}x faster (target >= 10x)",
                   min(f1, f2) >= 10)
            target(f"peak RSS: {spool['rss_mb']:.0f} | {e2e['rss_mb']:.0f} MB vs LongTable "
                   f"{lt['rss_mb']:.0f} MB (target <=)",
                   max(spool["rss_mb"], e2e["rss_mb"]) <= lt["rss_mb"])
        else:
            print("  LongTable skipped (BENCH_PDF_LONGTABLE=0)")
        print(json.dumps({"rows": ROWS, "results": results}))
    finally:
        if not os.environ.get("BENCH_PDF_DIR"):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
